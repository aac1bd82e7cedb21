# deploy/local/services.d/kafka.sh — the Kafka broker (KRaft, one node) of deploy/local/services.
#
# Sourced by deploy/local/services after its settings (HOST, KAFKA_PORT,
# KCTL_PORT, BROKERS, KDIR, KAFKA_HOME, LIBS, HERE); uses
# deploy/lib/sh/common.sh and the front script's fail/log_mark/file_size/
# read_config. The jars come from Maven Central (deploy/local/pom.xml) into
# the cache once; topics are created from the config's names.

find_java() {
    if [[ -n ${WB_JAVA:-} ]]; then
        JAVA=$WB_JAVA
        return
    fi
    local j
    for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        [[ -x $j ]] && JAVA=$j && return
    done
    JAVA=$(command -v java) || die "no java found: run '$0 install' as root"
}

KCAT=
find_kcat() {
    KCAT=$(command -v kcat || command -v kafkacat) || die "kcat/kafkacat not found: run '$0 install' as root"
}

# Writes the tools' log4j2 config (WARN to stderr, so tool output on stdout
# stays clean) next to the jars.
write_tools_log4j() {
    [[ -f $KAFKA_HOME/tools-log4j2.properties ]] && return 0
    cat >"$KAFKA_HOME/tools-log4j2.properties.tmp" <<'EOF'
# written by deploy/local/services: Kafka command-line tools log WARN to stderr
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
    mv "$KAFKA_HOME/tools-log4j2.properties.tmp" "$KAFKA_HOME/tools-log4j2.properties"
}

# Copies Kafka's jars (and a logging binding) from Maven Central into
# $LIBS once; the stamp holds the pom's checksum, written only on success.
fetch_kafka() {
    local pom=$HERE/pom.xml stamp=$KAFKA_HOME/.fetched want got=
    want=$(cksum <"$pom")
    [[ -r $stamp ]] && got=$(<"$stamp")
    if [[ $got == "$want" ]]; then
        write_tools_log4j
        return 0
    fi
    mkdir -p "$KAFKA_HOME"
    lock_file 8 "$KAFKA_HOME/.lock" 900
    got=
    [[ -r $stamp ]] && got=$(<"$stamp")
    if [[ $got != "$want" ]]; then
        command -v mvn >/dev/null || die "maven not found: run '$0 install' as root"
        say "install: fetching Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS"
        local t0
        now_ms && t0=$REPLY
        rm -rf "$LIBS.new"
        if ! mvn -B -q -Dstyle.color=never -f "$pom" \
            org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$LIBS.new" >"$KAFKA_HOME/fetch.log" 2>&1; then
            tail -n 30 "$KAFKA_HOME/fetch.log" >&2
            die "Maven could not fetch the Kafka jars (full log: $KAFKA_HOME/fetch.log)"
        fi
        [[ -f $LIBS.new/kafka_2.13-$KAFKA_VERSION.jar ]] || die "Maven ran but $LIBS.new has no kafka_2.13-$KAFKA_VERSION.jar"
        rm -rf "$LIBS"
        mv "$LIBS.new" "$LIBS"
        printf '%s\n' "$want" >"$stamp"
        local jars=("$LIBS"/*.jar)
        say "install: ${#jars[@]} jars fetched in $(since "$t0")"
    fi
    exec 8>&-
    write_tools_log4j
}

write_kafka_config() {
    mkdir -p "$KDIR/data"
    cat >"$KDIR/server.properties" <<EOF
# written by deploy/local/services on every start; edits are lost
# One node acting as broker and KRaft controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KCTL_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KCTL_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KCTL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KDIR/data
num.partitions=$PARTITIONS
auto.create.topics.enable=false
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A test box: fewer internal partitions (faster first group join), no 3 s
# wait before the first rebalance, a small cleaner buffer (default 128 MiB).
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
share.coordinator.state.topic.num.partitions=8
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=33554432
EOF
    cat >"$KDIR/log4j2.properties" <<'EOF'
# written by deploy/local/services: WARN, plus the "Kafka Server started" line
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF
}

# Runs a Kafka Java tool class with the jars; JVM flags for a fast start.
java_tool() {
    "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.properties" -cp "$LIBS/*" "$@"
}

KAFKA_LOG_OFFSET=0
launch_kafka() {
    find_java
    write_kafka_config
    local log=$KDIR/kafka.log p
    for p in "$KAFKA_PORT" "$KCTL_PORT"; do
        port_open "$p" && fail kafka "$log" \
            "port $p is in use by a process this script did not start (pick another WB_BASE_PORT)"
    done
    if [[ ! -f $KDIR/data/meta.properties ]]; then
        local t0 id
        now_ms && t0=$REPLY
        id=$(java_tool kafka.tools.StorageTool random-uuid 2>>"$log") ||
            fail kafka "$log" "StorageTool random-uuid failed"
        printf '%s\n' "$id" >"$KDIR/cluster.id"
        java_tool kafka.tools.StorageTool format --standalone -t "$id" -c "$KDIR/server.properties" \
            --ignore-formatted >>"$log" 2>&1 </dev/null 9>&- || fail kafka "$log" "StorageTool format failed"
        say "kafka: formatted $KDIR/data (cluster id $id) in $(since "$t0")"
    fi
    log_mark "$log" "kafka on $BROKERS (controller $HOST:$KCTL_PORT)"
    KAFKA_LOG_OFFSET=$(file_size "$log")
    (cd "$KDIR" && exec setsid "$JAVA" -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$KDIR/server.properties") >>"$log" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$KDIR/kafka.pid"
}

# Sets KAFKA_TOPICS to the broker's topic names, one per line; fails when
# the broker does not answer.
kafka_topics() {
    local out
    out=$("$KCAT" -L -b "$BROKERS" -m "${1:-3}" 2>/dev/null) || return 1
    KAFKA_TOPICS=$(sed -n 's/^  topic "\(.*\)" with .*/\1/p' <<<"$out")
}

# Creates whichever of the configured topics (and wb.ready) are missing:
# all in one JVM (WbCreateTopics.java), else TopicCommand in parallel.
ensure_topics() {
    local log=$KDIR/kafka.log want=() missing=() t
    read_config
    want=("$TOPIC_CHANGES:$PARTITIONS" "$TOPIC_REFRESH:$PARTITIONS" "$TOPIC_DLQ:$PARTITIONS" "wb.ready:1")
    kafka_topics 10 || fail kafka "$log" "broker at $BROKERS does not answer metadata requests"
    for t in "${want[@]}"; do
        grep -qxF -- "${t%:*}" <<<"$KAFKA_TOPICS" || missing+=("$t")
    done
    ((${#missing[@]})) || return 0
    local t0 out
    now_ms && t0=$REPLY
    if ! out=$(timeout 90 "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$KAFKA_HOME/tools-log4j2.properties" -cp "$LIBS/*" \
        "$HERE/WbCreateTopics.java" "$BROKERS" "${missing[@]}" 2>&1 </dev/null 9>&-); then
        printf '%s\n' "$out" >>"$log"
        warn "kafka: one-JVM topic creation failed (see $log); falling back to TopicCommand"
        local pids=() rc=0
        for t in "${missing[@]}"; do
            java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --create \
                --if-not-exists --topic "${t%:*}" --partitions "${t##*:}" --replication-factor 1 \
                >>"$log" 2>&1 </dev/null 9>&- &
            pids+=($!)
        done
        for t in "${pids[@]}"; do wait "$t" || rc=1; done
        ((rc == 0)) || fail kafka "$log" "could not create topics: ${missing[*]}"
    fi
    say "kafka: created topics ${missing[*]%:*} in $(since "$t0")"
}

# The broker is usable when a message produced to wb.ready comes back.
kafka_roundtrip() {
    local deadline=$1 log=$KDIR/kafka.log token got err=
    token="wbcache-ready $$ $EPOCHREALTIME"
    while :; do
        if err=$(printf '%s\n' "$token" | "$KCAT" -P -b "$BROKERS" -t wb.ready -p 0 \
            -X acks=all -X message.timeout.ms=10000 2>&1) &&
            got=$(timeout 15 "$KCAT" -C -b "$BROKERS" -t wb.ready -p 0 -o -1 -c 1 -e -q 2>&1); then
            [[ $got == "$token" ]] && return 0
            err="consumed '$got', expected '$token'"
        fi
        now_ms
        ((REPLY < deadline)) || fail kafka "$log" "produce/consume check on wb.ready failed: $err"
        sleep 0.5
    done
}

wait_kafka() {
    local deadline=$1 pid=$2 log=$KDIR/kafka.log
    while :; do
        pid_alive "$pid" || fail kafka "$log" "broker (pid $pid) exited"
        if ((KAFKA_LOG_OFFSET >= 0)); then
            tail -c +"$((KAFKA_LOG_OFFSET + 1))" "$log" | grep -q 'Kafka Server started' && break
        else
            kafka_topics 2 && break
        fi
        now_ms
        ((REPLY < deadline)) || fail kafka "$log" "not started within ${KAFKA_TIMEOUT} s"
        sleep 0.1
    done
    ensure_topics
    kafka_roundtrip "$deadline"
}
