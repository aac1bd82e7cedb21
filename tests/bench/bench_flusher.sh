#!/usr/bin/env bash
# bench_flusher.sh — events/s into PostgreSQL: wb-flusher (Kafka → PostgreSQL) next to a
# raw upsert of the same rows without Kafka, for N events over K uniform keys and
# over zipf(1.1) keys, in one run. Needs the services up (deploy/local/services up)
# and a build (default build/ci; BUILD=dir to choose).
#
#   tests/bench/bench_flusher.sh [N] [K] [BATCH]      (default 1000000 100000 10000)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$repo/build/ci}
n=${1:-1000000}
k=${2:-100000}
batch=${3:-10000}
services=$repo/deploy/local/services
eval "$("$services" env)"
export PGOPTIONS="-c client_min_messages=warning"
work=$(mktemp -d)
bin=$work/bench_upsert
flusher_pid=
cleanup() {
    [ -n "$flusher_pid" ] && kill "$flusher_pid" 2>/dev/null && wait "$flusher_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The tool links the project's static library and its dependencies.
cc -O2 -std=gnu11 -I"$repo/common" -I"$repo/producer/include" $(pkg-config --cflags hiredis rdkafka libpq) "$repo/tests/bench/bench_upsert.c" \
    "$build/libwbcache.a" $(pkg-config --libs hiredis rdkafka libpq yaml-0.1 libmicrohttpd) \
    -lpthread -lm -o "$bin"

config() { # name table topic group
    cat >"$work/$1.yaml" <<YAML
redis: {host: 127.0.0.1, port: $WB_REDIS_PORT, dirty_index: "bench:dirty"}
kafka:
  brokers: $WB_KAFKA_BROKERS
  topics: {changes: $3, dead_letter: $3.dlq}
  partitions: 4
postgres: {dsn: "$WB_PG_DSN", schema: create}
flusher:
  group_id: $4
  http_listen: "127.0.0.1:$((WB_BASE_PORT + 40))"
  batch: {max_events: $batch, max_wait_ms: 100, max_bytes: 67108864}
log: {level: info}
entities:
  - {name: item, prefix: "item:", table: $2, ttl_ms: 60000, value_type: text}
YAML
}

tag=bench_$$_$(date +%s)
printf '%-8s %-28s %12s\n' dist path events/s
for dist in uniform zipf; do
    config raw_$dist ${tag}_raw_$dist ${tag}.$dist.raw ${tag}_g
    config fl_$dist ${tag}_fl_$dist ${tag}.$dist ${tag}_g_$dist
    "$bin" produce "$work/fl_$dist.yaml" "$n" "$k" "$dist"
    raw=$("$bin" raw "$work/raw_$dist.yaml" "$n" "$k" "$dist" "$batch")
    values=$("$bin" values "$work/raw_$dist.yaml" "$n" "$k" "$dist" "$batch")
    # Drop the flusher's table so it starts empty, like the raw run.
    psql "$WB_PG_DSN" -qc "DROP TABLE IF EXISTS ${tag}_fl_$dist" >/dev/null
    t0=$(date +%s.%N)
    "$build/wb-flusher" -c "$work/fl_$dist.yaml" \
        2>"$work/flusher_$dist.log" &
    flusher_pid=$!
    "$bin" wait "$work/fl_$dist.yaml" "$n" "$k" "$dist" 600 >/dev/null
    t1=$(date +%s.%N)
    kill -TERM "$flusher_pid"; wait "$flusher_pid" || true; flusher_pid=
    secs=$(echo "$t1 - $t0" | bc -l)
    printf '%-8s %-28s %12.0f   (%s s incl. start-up; %s)\n' "$dist" "wb-flusher (Kafka->PG)" \
        "$(echo "$n / $secs" | bc -l)" "$(printf %.2f "$secs")" \
        "$(grep -o 'rows written [0-9]*, already newer [0-9]*, coalesced [0-9]*' "$work/flusher_$dist.log" | tail -1)"
    printf '%-8s %-28s %12s   (%s)\n' "$dist" "raw unnest upsert" "$(echo "$raw" | sed 's/.*: \([0-9]*\) events.*/\1/')" "$raw"
    printf '%-8s %-28s %12s   (%s)\n' "$dist" "raw multi-row VALUES" "$(echo "$values" | sed 's/.*: \([0-9]*\) events.*/\1/')" "$values"
    psql "$WB_PG_DSN" -qc "DROP TABLE IF EXISTS ${tag}_fl_$dist; DROP TABLE IF EXISTS ${tag}_raw_$dist" >/dev/null
    "$bin" drop "$work/fl_$dist.yaml" 0 0 x
done
