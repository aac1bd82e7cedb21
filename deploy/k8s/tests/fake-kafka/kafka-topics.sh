#!/bin/sh
# Test double of Kafka's admin tools for deploy/check-k8s (step "scripts"): logs
# each call to $FAKE_KAFKA_LOG, keeps a copy of the --command-config file, and
# answers --describe with $FAKE_PARTITIONS partitions.
printf '%s %s\n' "$(basename "$0")" "$*" >>"$FAKE_KAFKA_LOG"
while [ $# -gt 0 ]; do
    case $1 in
    --command-config) cp "$2" "$FAKE_KAFKA_LOG.props" ;;
    --describe) printf 'Topic: t\tTopicId: x\tPartitionCount: %s\tReplicationFactor: 3\tConfigs:\n' "$FAKE_PARTITIONS" ;;
    esac
    shift
done
