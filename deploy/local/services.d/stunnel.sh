# deploy/local/services.d/stunnel.sh — TLS Redis for deploy/local/services
# (WB_REDIS_TLS=1): certificates, redis-server's TLS settings and the
# TLS-originating stunnel in front of it.
#
# hiredis 0.14 (Debian's) cannot speak TLS, so wbcache reaches a TLS-only
# Redis through a sidecar: stunnel (client = yes) listens in clear text on
# 127.0.0.1:$REDIS_PORT, the usual Redis port, and connects with TLS to
# redis-server's tls-port ($REDIS_TLS_PORT; its plain port is disabled),
# verifying the server certificate against the CA and presenting a client
# certificate. Every program keeps redis.host/port pointing at stunnel.
#
# Sourced by deploy/local/services after its settings (HOST, REDIS_PORT,
# RDIR, DATA); uses deploy/lib/sh/common.sh and the front script's fail,
# log_mark and pid_ours. Files: $TLS_DIR (ca.crt/.key, server.crt/.key,
# client.crt/.key, made once with openssl), $SDIR (stunnel.conf written on
# every start, stunnel.log, stunnel.pid).
#
# Settings (environment):
#   WB_REDIS_TLS=1               Redis speaks only TLS, behind stunnel
#   WB_REDIS_TLS_AUTH_CLIENTS    redis-server's tls-auth-clients: yes (default;
#                                a client without a certificate from the CA is
#                                refused), optional or no
#   WB_REDIS_TLS_CLIENT_CERT=0   stunnel presents no client certificate

REDIS_TLS=0
[[ ${WB_REDIS_TLS:-0} == 1 ]] && REDIS_TLS=1
REDIS_TLS_PORT=$((BASE + 12))
TLS_DIR=$DATA/tls
SDIR=$DATA/stunnel
REDIS_TLS_AUTH_CLIENTS=${WB_REDIS_TLS_AUTH_CLIENTS:-yes}
case $REDIS_TLS_AUTH_CLIENTS in
yes | no | optional) ;;
*) die "WB_REDIS_TLS_AUTH_CLIENTS must be yes, no or optional (got '$REDIS_TLS_AUTH_CLIENTS')" ;;
esac

# Makes a CA, a server certificate for $HOST and localhost and a client
# certificate, all signed by the CA, once per data dir (2 years; test use).
tls_certs() {
    [[ -s $TLS_DIR/client.crt ]] && return 0
    mkdir -p "$TLS_DIR"
    local log=$TLS_DIR/openssl.log
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 730 -subj '/CN=wbcache test CA' \
            -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST" \
                -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" &&
            openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
                -CAcreateserial -days 730 -out "$TLS_DIR/server.crt" \
                -extfile <(printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$HOST") &&
            openssl req -newkey rsa:2048 -nodes -subj '/CN=wbcache' \
                -keyout "$TLS_DIR/client.key" -out "$TLS_DIR/client.csr" &&
            openssl x509 -req -in "$TLS_DIR/client.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
                -CAcreateserial -days 730 -out "$TLS_DIR/client.crt" \
                -extfile <(printf 'extendedKeyUsage=clientAuth\n')
    } >"$log" 2>&1 || fail redis "$log" "openssl could not make the test certificates"
    chmod 600 "$TLS_DIR"/*.key
}

# The lines launch_redis adds to redis.conf in TLS mode.
redis_tls_conf() {
    cat <<EOF
# WB_REDIS_TLS=1: TLS only, on tls-port; clients come through stunnel
port 0
tls-port $REDIS_TLS_PORT
tls-cert-file $TLS_DIR/server.crt
tls-key-file $TLS_DIR/server.key
tls-ca-cert-file $TLS_DIR/ca.crt
tls-auth-clients $REDIS_TLS_AUTH_CLIENTS
EOF
}

# redis-cli arguments that reach the running Redis directly: its TLS port
# with the client certificate in TLS mode, else its plain port.
redis_cli_args() {
    if ((REDIS_TLS)); then
        REDIS_CLI=(redis-cli -h "$HOST" -p "$REDIS_TLS_PORT" --tls --cacert "$TLS_DIR/ca.crt"
            --cert "$TLS_DIR/client.crt" --key "$TLS_DIR/client.key")
    else
        REDIS_CLI=(redis-cli -h "$HOST" -p "$REDIS_PORT")
    fi
}

launch_stunnel() {
    mkdir -p "$SDIR"
    local cert=
    if [[ ${WB_REDIS_TLS_CLIENT_CERT:-1} != 0 ]]; then
        cert="cert = $TLS_DIR/client.crt
key = $TLS_DIR/client.key"
    fi
    cat >"$SDIR/stunnel.conf" <<EOF
; written by deploy/local/services on every start; edits are lost
foreground = yes
pid =
syslog = no
debug = notice
[redis]
client = yes
accept = $HOST:$REDIS_PORT
connect = $HOST:$REDIS_TLS_PORT
verifyChain = yes
CAfile = $TLS_DIR/ca.crt
checkIP = $HOST
$cert
EOF
    port_open "$REDIS_PORT" && fail stunnel "$SDIR/stunnel.log" \
        "port $REDIS_PORT is in use by a process this script did not start (pick another WB_BASE_PORT)"
    log_mark "$SDIR/stunnel.log" "stunnel on $HOST:$REDIS_PORT -> TLS $HOST:$REDIS_TLS_PORT"
    (cd "$SDIR" && exec setsid stunnel "$SDIR/stunnel.conf") >>"$SDIR/stunnel.log" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$SDIR/stunnel.pid"
}

# Waits until a PING through stunnel gets PONG (so the TLS handshake, the
# certificates and Redis all work).
wait_stunnel() {
    local deadline=$1 pid=$2 out
    while :; do
        pid_alive "$pid" || fail stunnel "$SDIR/stunnel.log" "stunnel (pid $pid) exited"
        out=$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) || true
        [[ $out == PONG ]] && return 0
        now_ms
        ((REPLY < deadline)) || fail stunnel "$SDIR/stunnel.log" "no PONG through stunnel within ${REDIS_TIMEOUT} s"
        sleep 0.05
    done
}

# A running Redis keeps the mode it was started in (plain or TLS, read from
# its redis.conf): `up` and `start-one` adopt it, saying so, rather than
# mixing modes. To switch, `stop-one redis` first.
redis_mode_check() {
    local running=0
    grep -q '^tls-port ' "$RDIR/redis.conf" 2>/dev/null && running=1
    ((running == REDIS_TLS)) && return 0
    if ((running)); then
        say "redis: runs with TLS (started with WB_REDIS_TLS=1): keeping it, with its stunnel"
    else
        say "redis: runs in plain text (started without WB_REDIS_TLS=1): keeping it; 'stop-one redis' first to switch"
    fi
    REDIS_TLS=$running
}

stunnel_answers() {
    local out
    out=$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) && [[ $out == PONG ]]
}
