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
