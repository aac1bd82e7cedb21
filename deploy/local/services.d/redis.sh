# deploy/local/services.d/redis.sh — the Redis server of deploy/local/services.
#
# Sourced by deploy/local/services after its settings (HOST, REDIS_PORT,
# RDIR); uses deploy/lib/sh/common.sh and the front script's fail/log_mark.
# Runs redis-server in $RDIR/data with a config written on every start. With
# WB_REDIS_TLS=1 it listens only on its TLS port, behind stunnel
# (services.d/stunnel.sh: certificates, TLS settings, redis_cli_args).

launch_redis() {
    local port=$REDIS_PORT
    mkdir -p "$RDIR/data"
    if ((REDIS_TLS)); then
        tls_certs
        port=$REDIS_TLS_PORT
    fi
    cat >"$RDIR/redis.conf" <<EOF
# written by deploy/local/services on every start; edits are lost
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize no
logfile ""
dir $RDIR/data
# A test cache: no persistence; the write-behind pipeline is what makes
# writes durable (Kafka, then PostgreSQL).
appendonly no
save ""
# Only keys with a TTL may be evicted: dirty write-behind entries carry none
# (invariant 2, docs/ARCHITECTURE.md), so eviction can never drop an undurable write.
maxmemory ${WB_REDIS_MAXMEMORY:-256mb}
maxmemory-policy volatile-lru
EOF
    ((REDIS_TLS)) && redis_tls_conf >>"$RDIR/redis.conf"
    port_open "$port" && fail redis "$RDIR/redis.log" \
        "port $port is in use by a process this script did not start (pick another WB_BASE_PORT)"
    log_mark "$RDIR/redis.log" "redis-server on $HOST:$port"
    (cd "$RDIR/data" && exec setsid redis-server "$RDIR/redis.conf") >>"$RDIR/redis.log" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$RDIR/redis.pid"
}

wait_redis() {
    local deadline=$1 pid=$2 out
    redis_cli_args
    while :; do
        pid_alive "$pid" || fail redis "$RDIR/redis.log" "redis-server (pid $pid) exited"
        out=$("${REDIS_CLI[@]}" ping 2>/dev/null) || true
        [[ $out == PONG ]] && return 0
        now_ms
        ((REPLY < deadline)) || fail redis "$RDIR/redis.log" "no PONG within ${REDIS_TIMEOUT} s"
        sleep 0.05
    done
}

redis_answers() {
    local out
    redis_cli_args
    out=$("${REDIS_CLI[@]}" ping 2>/dev/null) && [[ $out == PONG ]]
}

# ------------------------------------------------------------ Redis Cluster
# With WB_REDIS_CLUSTER=1, `up` also runs a Redis Cluster of three masters
# and three replicas: services rcluster0 .. rcluster5, one redis-server each
# on $RC_PORT + i (cluster bus: that port + 10, set by cluster-port: Redis's
# default of port + 10000 falls in Linux's ephemeral range, 32768-60999, where
# an outgoing connection of anything on the machine may hold it), data,
# nodes.conf and log
# in $DATA/rcluster<i>, stopped by pid like the others. The first `up`
# builds the cluster (redis-cli --cluster create, one replica per master);
# later ones find it formed (nodes.conf keeps it).
readonly RC_NODES=6

launch_rcluster() {
    local i=$1 port=$((RC_PORT + $1)) dir=$DATA/rcluster$1
    ((port + 10 <= 65535)) || die "WB_REDIS_CLUSTER_PORT: bus port $((port + 10)) is above 65535"
    mkdir -p "$dir/data"
    cat >"$dir/redis.conf" <<CONF
# written by deploy/local/services on every start; edits are lost
bind $HOST
port $port
protected-mode yes
daemonize no
logfile ""
dir $dir/data
appendonly no
save ""
maxmemory ${WB_REDIS_MAXMEMORY:-256mb}
maxmemory-policy volatile-lru
cluster-enabled yes
cluster-port $((port + 10))
cluster-config-file $dir/data/nodes.conf
cluster-node-timeout 5000
CONF
    # No persistence (save ""), but a replica's full sync leaves the
    # master's snapshot on disk as dump.rdb, which a restart would load: a
    # cache from minutes ago, its dirty entries older than what PostgreSQL
    # holds. A node starts empty, as the standalone one does (a restarted
    # replica gets its data from its master).
    rm -f "$dir/data/dump.rdb"
    port_open "$port" && fail "rcluster$i" "$dir/rcluster$i.log" \
        "port $port is in use by a process this script did not start (pick another WB_REDIS_CLUSTER_PORT)"
    port_open "$((port + 10))" && fail "rcluster$i" "$dir/rcluster$i.log" \
        "bus port $((port + 10)) is in use by a process this script did not start (pick another WB_REDIS_CLUSTER_PORT)"
    log_mark "$dir/rcluster$i.log" "redis-server (cluster node $i) on $HOST:$port"
    (cd "$dir/data" && exec setsid redis-server "$dir/redis.conf") >>"$dir/rcluster$i.log" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$dir/rcluster$i.pid"
}

wait_rcluster() {
    local deadline=$1 pid=$2 i=$3 out
    while :; do
        pid_alive "$pid" || fail "rcluster$i" "$DATA/rcluster$i/rcluster$i.log" "redis-server (pid $pid) exited"
        out=$(redis-cli -h "$HOST" -p "$((RC_PORT + i))" ping 2>/dev/null) || true
        [[ $out == PONG ]] && return 0
        now_ms
        ((REPLY < deadline)) || fail "rcluster$i" "$DATA/rcluster$i/rcluster$i.log" "no PONG within ${REDIS_TIMEOUT} s"
        sleep 0.05
    done
}

rcluster_answers() {
    local out
    out=$(redis-cli -h "$HOST" -p "$((RC_PORT + $1))" ping 2>/dev/null) && [[ $out == PONG ]]
}

# cluster_state of node i ("ok", "fail"), into REPLY.
rcluster_state() {
    REPLY=$(redis-cli -h "$HOST" -p "$((RC_PORT + $1))" cluster info 2>/dev/null | tr -d '\r' |
        sed -n 's/^cluster_state://p')
}

# Builds the cluster if node 0 knows no other node, then waits until every
# node says cluster_state:ok.
rcluster_form() {
    local t0 known i addrs=() deadline log=$DATA/rcluster0/rcluster0.log
    now_ms && t0=$REPLY
    known=$(redis-cli -h "$HOST" -p "$RC_PORT" cluster info 2>/dev/null | tr -d '\r' |
        sed -n 's/^cluster_known_nodes://p')
    if [[ $known == 1 ]]; then
        for ((i = 0; i < RC_NODES; i++)); do addrs+=("$HOST:$((RC_PORT + i))"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >>"$log" 2>&1 ||
            fail rcluster "$log" "redis-cli --cluster create failed"
    fi
    now_ms
    deadline=$((REPLY + REDIS_TIMEOUT * 1000))
    for ((i = 0; i < RC_NODES; i++)); do
        while rcluster_state "$i" && [[ $REPLY != ok ]]; do
            now_ms
            ((REPLY < deadline)) || fail rcluster "$log" "node $i: cluster_state is not ok within ${REDIS_TIMEOUT} s"
            sleep 0.1
        done
    done
    # cluster_state ok says every slot has a master; a replica may still be
    # in its first sync, and until its link is up a WAIT (ack: replica)
    # counts no replica. Up means every replica's link is up.
    local linked
    while :; do
        linked=0
        for ((i = 0; i < RC_NODES; i++)); do
            redis-cli -h "$HOST" -p "$((RC_PORT + i))" info replication 2>/dev/null | tr -d '\r' |
                grep -qx 'master_link_status:up' && linked=$((linked + 1))
        done
        ((linked >= RC_NODES / 2)) && break
        now_ms
        ((REPLY < deadline)) || fail rcluster "$log" "$linked of $((RC_NODES / 2)) replicas have their master link up within ${REDIS_TIMEOUT} s"
        sleep 0.1
    done
    say "rcluster: 3 masters + 3 replicas on $HOST:$RC_PORT..$((RC_PORT + RC_NODES - 1)), cluster_state ok, replicas linked ($(since "$t0"))"
}
