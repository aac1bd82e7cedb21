#!/bin/sh
# create-topics.sh — make the three wbcache topics exist with the partition
# count, replication factor, retention and min.insync.replicas of the
# "wbcache-env" ConfigMap (wbcache.env). Run by the create-topics Job in the
# stock apache/kafka image; safe to run again at any time:
#   - a missing topic is created;
#   - a topic with fewer partitions than WB_KAFKA_PARTITIONS gets more (Kafka
#     cannot take partitions away: more than asked is reported, not changed);
#   - retention.ms, min.insync.replicas and cleanup.policy are (re)set.
# Adding partitions moves which partition a key hashes to; events already in
# the log stay where they are, and the version guard keeps PostgreSQL right.
set -eu

bin=${KAFKA_BIN:-/opt/kafka/bin}
bootstrap=${WB_KAFKA_BROKERS:?WB_KAFKA_BROKERS is not set}
partitions=${WB_KAFKA_PARTITIONS:?WB_KAFKA_PARTITIONS is not set}
replication=${WB_TOPIC_REPLICATION_FACTOR:?WB_TOPIC_REPLICATION_FACTOR is not set}
min_isr=${WB_TOPIC_MIN_INSYNC_REPLICAS:?WB_TOPIC_MIN_INSYNC_REPLICAS is not set}
protocol=${WB_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}

say() { printf 'create-topics: %s\n' "$*"; }
die() { printf 'create-topics: %s\n' "$*" >&2; exit 1; }

[ "$min_isr" -le "$replication" ] ||
    die "min.insync.replicas $min_isr is more than the replication factor $replication: no write could succeed"

# The Java admin tools take TLS/SASL settings from a properties file. Values
# are escaped twice: once for the JAAS string, once for the .properties format.
client_props=""
if [ "$protocol" != PLAINTEXT ]; then
    client_props=${TMPDIR:-/tmp}/wbcache-admin.properties
    umask 077
    {
        printf 'security.protocol=%s\n' "$protocol"
        case $protocol in
        SASL_*)
            case ${WB_KAFKA_SASL_MECHANISM:-} in
            SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
            PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
            *) die "SASL mechanism '${WB_KAFKA_SASL_MECHANISM:-}' is not handled here (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)" ;;
            esac
            # JAAS reads a quoted string with Java's StreamTokenizer, which
            # takes \n for a newline: a newline in a secret stays in it and
            # does not end the properties line.
            jaas_quote() {
                printf '%s\n' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' |
                    sed -e ':a' -e '$!N' -e '$!ba' -e 's/\n/\\n/g'
            }
            user=$(jaas_quote "${WBCACHE_KAFKA_SASL_USERNAME:?SASL needs WBCACHE_KAFKA_SASL_USERNAME}")
            pass=$(jaas_quote "${WBCACHE_KAFKA_SASL_PASSWORD:?SASL needs WBCACHE_KAFKA_SASL_PASSWORD}")
            printf 'sasl.mechanism=%s\n' "$WB_KAFKA_SASL_MECHANISM"
            printf '%s required username="%s" password="%s";\n' "$module" "$user" "$pass" |
                sed 's/\\/\\\\/g; s/^/sasl.jaas.config=/'
            ;;
        esac
    } >"$client_props"
fi

# Runs one Kafka admin tool against the cluster, with the client properties.
kafka() {
    tool=$1
    shift
    if [ -n "$client_props" ]; then
        set -- --command-config "$client_props" "$@"
    fi
    "$bin/$tool" --bootstrap-server "$bootstrap" "$@"
}

ensure_topic() {
    name=$1
    retention=$2
    say "$name: want $partitions partitions, replication $replication, retention.ms=$retention, min.insync.replicas=$min_isr"
    kafka kafka-topics.sh --create --if-not-exists --topic "$name" \
        --partitions "$partitions" --replication-factor "$replication" \
        --config cleanup.policy=delete --config "retention.ms=$retention" \
        --config "min.insync.replicas=$min_isr"
    have=$(kafka kafka-topics.sh --describe --topic "$name" |
        sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
    [ -n "$have" ] || die "$name: could not read its partition count"
    if [ "$have" -lt "$partitions" ]; then
        say "$name: $have partitions -> $partitions"
        kafka kafka-topics.sh --alter --topic "$name" --partitions "$partitions"
    elif [ "$have" -gt "$partitions" ]; then
        say "$name: WARNING has $have partitions, more than WB_KAFKA_PARTITIONS=$partitions (Kafka cannot remove partitions; raise WB_KAFKA_PARTITIONS to match)"
    fi
    kafka kafka-configs.sh --alter --entity-type topics --entity-name "$name" \
        --add-config "cleanup.policy=delete,retention.ms=$retention,min.insync.replicas=$min_isr"
}

ensure_topic "${WB_TOPIC_CHANGES:?}" "${WB_CHANGES_RETENTION_MS:?}"
ensure_topic "${WB_TOPIC_REFRESH:?}" "${WB_REFRESH_RETENTION_MS:?}"
ensure_topic "${WB_TOPIC_DLQ:?}" "${WB_DLQ_RETENTION_MS:?}"
kafka kafka-topics.sh --describe --topic "$WB_TOPIC_CHANGES"
say "done"
