# deploy/local/services.d/postgresql.sh — the PostgreSQL server of deploy/local/services.
#
# Sourced by deploy/local/services after its settings (HOST, PG_PORT,
# PG_DSN, DATA); uses deploy/lib/sh/common.sh and the front script's
# fail/log_mark/pid_ours. A cluster of its own under $DATA/postgres (see
# pg_paths), role and database wbcache, password login over TCP.

PG_BIN=
find_pg_bin() {
    local d v best=0
    for d in /usr/lib/postgresql/*/bin; do
        v=${d#/usr/lib/postgresql/}
        v=${v%%[!0-9]*}
        [[ -x $d/postgres && -n $v ]] && ((v > best)) && best=$v && PG_BIN=$d
    done
    [[ -n $PG_BIN ]] || die "no PostgreSQL server under /usr/lib/postgresql: run '$0 install' as root"
}

# PostgreSQL runs as the `postgres` OS user when we are root (it refuses to
# run as root), else as ourselves.
PG_AS=()
if ((EUID == 0)); then PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
readonly PG_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8)

# Sets PGROOT/PGDATA/PGSOCK. Normally PGROOT = $DATA/postgres. When we are
# root and the postgres user cannot walk into $DATA (say it is under /root),
# $DATA/postgres becomes a symlink to a dir under /var/tmp that it can reach.
pg_paths() {
    local want=${1:-}
    PGROOT=$DATA/postgres
    if [[ -L $PGROOT ]]; then
        PGROOT=$(readlink -f "$PGROOT")
    elif [[ $want == create ]] && ((EUID == 0)) && [[ ! -d $PGROOT ]] &&
        ! "${PG_AS[@]}" test -x "$DATA"; then
        local sum
        sum=$(printf '%s' "$DATA" | cksum)
        local alt=/var/tmp/wbcache-pg-${sum%% *}
        mkdir -p "$alt"
        ln -sfn "$alt" "$DATA/postgres"
        say "postgres: user 'postgres' cannot reach $DATA; keeping its files in $alt (symlinked from $DATA/postgres)"
        PGROOT=$alt
    fi
    PGDATA=$PGROOT/pgdata
    PGSOCK=$PGROOT/run
    # A Unix socket path must fit in 107 bytes.
    if ((${#PGSOCK} + 16 > 107)); then
        local s
        s=$(printf '%s' "$PGROOT" | cksum)
        PGSOCK=/tmp/wbcache-pgsock-${s%% *}
    fi
}

pg_log() { REPLY=$PGROOT/postgres.log; }

# After a postmaster was killed (SIGKILL in a fault drill, or by stop after
# its time limit) its lock files name a pid that is gone, only a zombie (this
# machine's pid 1 reaps late) or, after a reboot, some other process; any of
# these PostgreSQL may take for a live server. Once no live process works in
# the data dir any more (orphaned backends exit by themselves when they see
# the postmaster gone), the locks are stale and are removed.
pg_clear_stale_locks() {
    local f pid i d busy
    for f in "$PGDATA/postmaster.pid" "$PGSOCK/.s.PGSQL.$PG_PORT.lock"; do
        [[ -f $f ]] || continue
        { read -r pid <"$f"; } 2>/dev/null || pid=
        pid_ours postgres "$pid" && return 0 # a live postmaster: let PostgreSQL decide
        for ((i = 0; i < 100; i++)); do
            busy=
            for d in /proc/[0-9]*; do
                [[ $d/cwd -ef $PGDATA ]] && pid_alive "${d#/proc/}" && busy=${d#/proc/} && break
            done
            [[ -n $busy ]] || break
            sleep 0.1
        done
        [[ -z $busy ]] || return 0 # still in use: PostgreSQL will say by whom
        rm -f "$PGDATA/postmaster.pid" "$PGSOCK/.s.PGSQL.$PG_PORT.lock" "$PGSOCK/.s.PGSQL.$PG_PORT"
        return 0
    done
}

launch_postgres() {
    find_pg_bin
    pg_paths create
    pg_log
    local log=$REPLY
    mkdir -p "$PGROOT"
    port_open "$PG_PORT" && fail postgres "$log" \
        "port $PG_PORT is in use by a process this script did not start (pick another WB_BASE_PORT)"
    pg_clear_stale_locks
    if [[ ! -f $PGDATA/PG_VERSION ]]; then
        local t0
        now_ms && t0=$REPLY
        rm -rf "$PGDATA"
        install -d -m 0700 "$PGDATA"
        ((EUID == 0)) && chown postgres:postgres "$PGDATA"
        # Local (Unix socket) connections are trusted: the socket dir is
        # mode 0700, so only the server's OS user (and root) can reach it.
        # TCP connections, even on loopback, need a password (SCRAM).
        if ! "${PG_AS[@]}" "${PG_ENV[@]}" "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 >"$PGROOT/initdb.log" 2>&1; then
            fail postgres "$PGROOT/initdb.log" "initdb failed"
        fi
        printf "\n# deploy/local/services: ports, sockets and test tuning\ninclude_if_exists = 'wbcache.conf'\n" >>"$PGDATA/postgresql.conf"
        say "postgres: initdb $PGDATA in $(since "$t0")"
    fi
    install -d -m 0700 "$PGSOCK"
    ((EUID == 0)) && chown postgres:postgres "$PGSOCK"
    cat >"$PGDATA/wbcache.conf" <<EOF
# written by deploy/local/services on every start; edits are lost
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PGSOCK'
shared_buffers = 256MB
# Durability is the product under test: fsync stays on.
fsync = on
full_page_writes = on
log_line_prefix = '%m [%p] '
EOF
    ((EUID == 0)) && chown postgres:postgres "$PGDATA/wbcache.conf"
    log_mark "$log" "postgres on $HOST:$PG_PORT"
    (cd "$PGDATA" && exec setsid "${PG_AS[@]}" "${PG_ENV[@]}" "$PG_BIN/postgres" -D "$PGDATA") \
        >>"$log" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$PGROOT/postgres.pid"
}

pg_answers() {
    find_pg_bin
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2
}

wait_postgres() {
    local deadline=$1 pid=$2 log
    pg_log && log=$REPLY
    while :; do
        pid_alive "$pid" || fail postgres "$log" "postgres (pid $pid) exited"
        "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 1 && break
        now_ms
        ((REPLY < deadline)) || fail postgres "$log" "not accepting connections within ${PG_TIMEOUT} s"
        sleep 0.05
    done
    # Role and database, created once (the statements only run when absent).
    local out
    if ! out=$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCK" -p "$PG_PORT" -U postgres -d postgres 2>&1 <<'SQL'
SELECT 'CREATE ROLE wbcache LOGIN CREATEDB PASSWORD ''wbcache'''
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wbcache') \gexec
SELECT 'CREATE DATABASE wbcache OWNER wbcache'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'wbcache') \gexec
SQL
    ); then
        fail postgres "$log" "could not create role/database wbcache: $out"
    fi
    out=$("$PG_BIN/psql" -X -tA "$PG_DSN connect_timeout=5" -c 'select 1' 2>&1) || true
    [[ $out == 1 ]] || fail postgres "$log" "'select 1' as wbcache over TCP failed: $out"
    # The application's own table of the example mapped entity (config/wbcache.yaml: account).
    out=$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_DSN connect_timeout=5" \
        -c 'SET client_min_messages = warning' -f "$REPO/config/accounts.sql" 2>&1) ||
        fail postgres "$log" "config/accounts.sql failed: $out"
}
