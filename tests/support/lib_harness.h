/* lib_harness.h — the libwbcache integration tests' harness (lib_harness.c).
 *
 * Every test process gets a tag (pid + time) that names its own Kafka
 * topics, dirty index and key ids, so reruns and parallel checkouts never
 * see each other's data; the entity tables are shared (ids are unique).
 * Entities of the test config:
 *   item   prefix "li:", table wb_libtest_items, text, TTL 60 s, no refresh-ahead
 *   hot    prefix "lh:", table wb_libtest_hot,   text, TTL 4 s, refresh_ahead 0.5
 *   ghost  prefix "lg:", table wb_libtest_ghost_missing (never created: PostgreSQL fails)
 *   doc    prefix "ld:", table wb_libtest_docs,  jsonb, TTL 60 s
 * Services come from the WB_* variables of `deploy/local/services exec`.
 * The harness aborts the test process on any setup error. */
#ifndef LIB_HARNESS_H
#define LIB_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "test_proc.h"
#include "test_services.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_redis.h"
#include "wb_table.h"
#include "wb_util.h"
#include "wbcache.h"

typedef struct lh_s {
    char tag[64];
    char changes[128], refresh[128], dirty[128];
    wb_config_t *conf; /* the harness's own copy (for topics, Redis, PostgreSQL) */
    wb_rc_t *redis;    /* routed by key: wb_test_redis */
    PGconn *pg;
    rd_kafka_t *admin;
} lh_t;

/* One consumed Kafka message, copied. */
typedef struct lh_msg_s {
    char *key;
    size_t keylen;
    char *value; /* NULL for a Kafka null value */
    size_t valuelen;
    int64_t version;
    int64_t time_us;
    int is_delete;
    int kind;
    char entity[64];
} lh_msg_t;

/* wb_test_env under this harness's prefix. */
const char *lh_env(const char *name, const char *def);

/* Prints "harness: what: detail" and aborts. */
void lh_die(const char *what, const char *detail);

/* Writes the YAML of this test process's config into yaml[size];
 * producer_extra is YAML lines (indented two spaces) added under producer:.
 * Returns the length. */
size_t lh_config_yaml(const lh_t *h, const char *producer_extra, char *yaml, size_t size);

/* A config for this test process (see lh_config_yaml). The caller owns the
 * result. */
wb_config_t *lh_config(const lh_t *h, const char *producer_extra);

/* Log callback: library warnings to stderr (visible in ctest output). */
void lh_log(wb_log_level_t level, const char *line, void *opaque);

/* A client on lh_config(h, producer_extra); the caller closes it. */
wb_client_t *lh_client(const lh_t *h, const char *producer_extra);

/* Names, topics, connections and the tables of item, hot and doc. */
void lh_setup(lh_t *h);

/* Deletes the topics and every Redis key of this run, disconnects. */
void lh_teardown(lh_t *h);

/* Reconnects the harness's Redis context (after a Redis restart its old
 * socket is dead even though no error was seen yet). */
void lh_redis_reconnect(lh_t *h);

/* A unique id: "<tag>-<name>" in buf; returns buf. */
const char *lh_id(const lh_t *h, const char *name, char *buf, size_t size);

/* The cache key of prefix + id as the library builds it ("{N}" + prefix +
 * id, wb_entry.h) in buf; returns buf. */
const char *lh_key(const lh_t *h, char *buf, size_t size, const char *prefix, const char *id);

/* HGET field of key as a new string ("" when absent); caller frees. */
char *lh_hget(lh_t *h, const char *key, const char *field);

/* A Redis command of one or two string arguments (b NULL: one) as a number:
 * the integer, a string parsed, -1 for nil, -999 otherwise. */
long long lh_int(lh_t *h, const char *fmt, const char *a, const char *b);

long long lh_pttl(lh_t *h, const char *key);

/* Score of key in its dirty-index shard, -1 when absent. */
long long lh_dirty_score(lh_t *h, const char *key);

/* Runs sql with up to 3 text parameters; returns the result (caller
 * PQclear) or aborts on error. */
PGresult *lh_sql(lh_t *h, const char *sql, int n, const char *p1, const char *p2, const char *p3);

/* Reads topic from the beginning (all partitions) until want messages with
 * this key arrived or timeout_ms passed; decodes each with the codec
 * (refresh: 1 for a refresh request). Returns how many were stored in
 * out[0..max); free them with lh_msgs_free. */
int lh_consume(lh_t *h, const char *topic, const char *key, int refresh, lh_msg_t *out, int max,
               int want, int timeout_ms);

/* Counts the messages of topic (from the beginning) whose key starts with
 * prefix after its shard tag, reading until want were seen or timeout_ms passed. */
int lh_count_prefix(lh_t *h, const char *topic, const char *prefix, int want, int timeout_ms);

void lh_msgs_free(lh_msg_t *m, int n);

/* Runs `deploy/local/services CMD SERVICE`; returns its exit status. */
int lh_services(const char *cmd, const char *service);

void lh_sleep_ms(int ms);

#endif /* LIB_HARNESS_H */
