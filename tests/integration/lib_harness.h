/* lib_harness.h — shared helpers of the libwbcache integration tests (header-only).
 *
 * Every test process gets a tag (pid + time) that names its own Kafka
 * topics, dirty index and key ids, so reruns and parallel checkouts never
 * see each other's data; the entity tables are shared (ids are unique).
 * Entities of the test config:
 *   item   prefix "li:", table wb_libtest_items, text, TTL 60 s, no refresh-ahead
 *   hot    prefix "lh:", table wb_libtest_hot,   text, TTL 4 s, refresh_ahead 0.5
 *   ghost  prefix "lg:", table wb_libtest_ghost_missing (never created: PostgreSQL fails)
 *   doc    prefix "ld:", table wb_libtest_docs,  jsonb, TTL 60 s
 * Services come from the WB_* variables of `deploy/local/services exec`. */
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

#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_redis.h"
#include "wb_schema.h"
#include "wb_util.h"
#include "wbcache.h"

#define LH_FN       static __attribute__((unused))
#define LH_SERVICES WB_SOURCE_DIR "/deploy/local/services"

typedef struct lh_s {
    char tag[64];
    char changes[128], refresh[128], dirty[128];
    wb_config_t *conf; /* the harness's own copy (for topics, Redis, PostgreSQL) */
    redisContext *redis;
    PGconn *pg;
    rd_kafka_t *admin;
} lh_t;

LH_FN const char *lh_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

LH_FN void lh_die(const char *what, const char *detail)
{
    fprintf(stderr, "harness: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* Writes the YAML of this test process's config into yaml[size];
 * producer_extra is YAML lines (indented two spaces) added under producer:.
 * Returns the length. */
LH_FN size_t lh_config_yaml(const lh_t *h, const char *producer_extra, char *yaml, size_t size)
{
    int n = snprintf(
        yaml, size,
        "redis:\n  host: %s\n  port: %s\n  timeout_ms: 1000\n  dirty_index: \"%s\"\n"
        "kafka:\n  brokers: %s\n  topics:\n    changes: %s\n    refresh: %s\n"
        "    dead_letter: %s.dlq\n  partitions: 3\n"
        "postgres:\n  dsn: \"%s\"\n  connect_timeout_ms: 2000\n  statement_timeout_ms: 5000\n"
        "producer:\n  ttl_jitter_pct: 0\n  negative_ttl_ms: 3000\n  lock_ttl_ms: 2000\n"
        "  lock_wait_ms: 5000\n  refresh_dedupe_ms: 1000\n%s"
        "log:\n  level: info\n"
        "entities:\n"
        "  - {name: item, prefix: \"li:\", table: wb_libtest_items, ttl_ms: 60000, "
        "value_type: text}\n"
        "  - {name: hot, prefix: \"lh:\", table: wb_libtest_hot, ttl_ms: 4000, "
        "refresh_ahead: 0.5, value_type: text}\n"
        "  - {name: ghost, prefix: \"lg:\", table: wb_libtest_ghost_missing, ttl_ms: 60000, "
        "value_type: text}\n"
        "  - {name: doc, prefix: \"ld:\", table: wb_libtest_docs, ttl_ms: 60000, "
        "value_type: jsonb}\n",
        lh_env("WB_REDIS_HOST", "127.0.0.1"), lh_env("WB_REDIS_PORT", "26370"), h->dirty,
        lh_env("WB_KAFKA_BROKERS", "127.0.0.1:26372"), h->changes, h->refresh, h->tag,
        lh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache "
                            "password=wbcache"),
        producer_extra ? producer_extra : "");
    if (n < 0 || (size_t)n >= size) lh_die("config", "too long");
    return (size_t)n;
}

/* A config for this test process (see lh_config_yaml). The caller owns the
 * result. */
LH_FN wb_config_t *lh_config(const lh_t *h, const char *producer_extra)
{
    char yaml[4096], errstr[2048];
    wb_config_t *conf = NULL;
    size_t n = lh_config_yaml(h, producer_extra, yaml, sizeof(yaml));

    if (wb_config_load_string("<test>", yaml, n, &conf, errstr, sizeof(errstr)) != WB_OK)
        lh_die("config", errstr);
    return conf;
}

/* Log callback: library warnings to stderr (visible in ctest output). */
LH_FN void lh_log(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN) fprintf(stderr, "  [lib] %s\n", line);
}

LH_FN wb_client_t *lh_client(const lh_t *h, const char *producer_extra)
{
    char errstr[1024];
    wb_client_t *client = NULL;
    wb_config_t *conf = lh_config(h, producer_extra);

    if (wb_client_open_config(conf, lh_log, NULL, &client, errstr, sizeof(errstr)) != WB_OK)
        lh_die("wb_client_open_config", errstr);
    return client;
}

LH_FN void lh_quiet_notice(void *arg, const char *message)
{
    (void)arg, (void)message; /* "relation already exists, skipping" */
}

LH_FN void lh_setup(lh_t *h)
{
    char errstr[1024];
    rd_kafka_conf_t *kc = NULL;

    memset(h, 0, sizeof(*h));
    snprintf(h->tag, sizeof(h->tag), "lt%d_%lld", (int)getpid(),
             (long long)(wb_time_real_ms() % 1000000000));
    snprintf(h->changes, sizeof(h->changes), "%s.changes", h->tag);
    snprintf(h->refresh, sizeof(h->refresh), "%s.refresh", h->tag);
    snprintf(h->dirty, sizeof(h->dirty), "%s:dirty", h->tag);
    h->conf = lh_config(h, NULL);
    if (wb_kafka_conf_new(h->conf, "libtest", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_producer_new(kc, 0, &h->admin, errstr, sizeof(errstr)) != WB_OK)
        lh_die("kafka", errstr);
    if (wb_kafka_create_topic(h->admin, h->changes, 3, 30000, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_create_topic(h->admin, h->refresh, 1, 30000, errstr, sizeof(errstr)) != WB_OK)
        lh_die("create topics", errstr);
    if (wb_redis_connect(h->conf, &h->redis, errstr, sizeof(errstr)) != WB_OK)
        lh_die("redis", errstr);
    h->pg = PQconnectdb(lh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache "
                                            "user=wbcache password=wbcache"));
    if (PQstatus(h->pg) != CONNECTION_OK) lh_die("postgres", PQerrorMessage(h->pg));
    PQsetNoticeProcessor(h->pg, lh_quiet_notice, NULL);
    /* Tables for item, hot and doc: ghost's must stay missing. */
    for (size_t i = 0; i < 4; i++)
        if (i != 2 &&
            wb_schema_create(h->pg, &h->conf->entities[i], errstr, sizeof(errstr)) != WB_OK)
            lh_die("schema", errstr);
}

LH_FN void lh_teardown(lh_t *h)
{
    char errstr[512];

    if (h->admin) {
        wb_kafka_delete_topic(h->admin, h->changes, 10000, errstr, sizeof(errstr));
        wb_kafka_delete_topic(h->admin, h->refresh, 10000, errstr, sizeof(errstr));
        rd_kafka_destroy(h->admin);
    }
    if (h->redis) {
        /* Dirty test entries have no TTL: remove every key of this run. */
        char match[96], cursor[32] = "0";
        snprintf(match, sizeof(match), "*%s*", h->tag);
        do {
            redisReply *r = redisCommand(h->redis, "SCAN %s MATCH %s COUNT 1000", cursor, match);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                if (r) freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                redisReply *d = redisCommand(h->redis, "DEL %s", r->element[1]->element[i]->str);
                if (d) freeReplyObject(d);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        redisFree(h->redis);
    }
    if (h->pg) PQfinish(h->pg);
    wb_config_destroy(h->conf);
    memset(h, 0, sizeof(*h));
}

/* Reconnects the harness's Redis context (after a Redis restart its old
 * socket is dead even though no error was seen yet). */
LH_FN void lh_redis_reconnect(lh_t *h)
{
    char errstr[512];

    if (wb_redis_reconnect(h->conf, &h->redis, errstr, sizeof(errstr)) != WB_OK)
        lh_die("redis reconnect", errstr);
}

/* A unique id: "<tag>-<name>". */
LH_FN const char *lh_id(const lh_t *h, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s-%s", h->tag, name);
    return buf;
}

/* HGET field of key as a new string ("" when absent); caller frees. */
LH_FN char *lh_hget(lh_t *h, const char *key, const char *field)
{
    redisReply *r = redisCommand(h->redis, "HGET %s %s", key, field);
    char *s = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "");

    if (r) freeReplyObject(r);
    return s;
}

LH_FN long long lh_int(lh_t *h, const char *fmt, const char *a, const char *b)
{
    redisReply *r = b ? redisCommand(h->redis, fmt, a, b) : redisCommand(h->redis, fmt, a);
    long long v = -999;

    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else if (r && r->type == REDIS_REPLY_NIL)
        v = -1;
    if (r) freeReplyObject(r);
    return v;
}

LH_FN long long lh_pttl(lh_t *h, const char *key)
{
    return lh_int(h, "PTTL %s", key, NULL);
}

/* Score of key in the dirty index, -1 when absent. */
LH_FN long long lh_dirty_score(lh_t *h, const char *key)
{
    return lh_int(h, "ZSCORE %s %s", h->dirty, key);
}

/* Runs sql with up to 3 text parameters; returns the result (caller
 * PQclear) or aborts on error. */
LH_FN PGresult *lh_sql(lh_t *h, const char *sql, int n, const char *p1, const char *p2,
                       const char *p3)
{
    const char *params[3] = {p1, p2, p3};
    PGresult *res = PQexecParams(h->pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) lh_die(sql, PQerrorMessage(h->pg));
    return res;
}

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

/* Reads topic from the beginning (all partitions) until want messages with
 * this key arrived or timeout_ms passed; decodes each with the codec
 * (refresh: 1 for a refresh request). Returns how many were stored in
 * out[0..max). */
LH_FN int lh_consume(lh_t *h, const char *topic, const char *key, int refresh, lh_msg_t *out,
                     int max, int want, int timeout_ms)
{
    char errstr[512], group[160];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    int64_t deadline = wb_time_mono_ms() + timeout_ms;
    int n = 0;

    snprintf(group, sizeof(group), "%s.reader", h->tag);
    if (wb_kafka_conf_new(h->conf, "libtest-reader", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kc, group, &rk, errstr, sizeof(errstr)) != WB_OK)
        lh_die("consumer", errstr);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) lh_die("metadata", topic);
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (n < want && wb_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        wb_event_t ev;

        if (!m) continue;
        if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 &&
            n < max) {
            wb_err_t err = refresh ? wb_event_refresh_from_message(m, &ev, errstr, sizeof(errstr))
                                   : wb_event_from_message(m, &ev, errstr, sizeof(errstr));
            if (err != WB_OK) lh_die("decode", errstr);
            lh_msg_t *o = &out[n++];
            memset(o, 0, sizeof(*o));
            o->key = strndup(ev.key, ev.keylen);
            o->keylen = ev.keylen;
            o->value = ev.value ? strndup(ev.value, ev.valuelen) : NULL;
            o->valuelen = ev.valuelen;
            o->version = ev.version;
            o->time_us = ev.time_us;
            o->is_delete = ev.is_delete;
            o->kind = (int)ev.kind;
            snprintf(o->entity, sizeof(o->entity), "%.*s", (int)ev.entitylen, ev.entity);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* Counts the messages of topic (from the beginning) whose key starts with
 * prefix, reading until want were seen or timeout_ms passed. */
LH_FN int lh_count_prefix(lh_t *h, const char *topic, const char *prefix, int want, int timeout_ms)
{
    char errstr[512], group[160];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    int64_t deadline = wb_time_mono_ms() + timeout_ms;
    size_t plen = strlen(prefix);
    int n = 0;

    snprintf(group, sizeof(group), "%s.counter", h->tag);
    if (wb_kafka_conf_new(h->conf, "libtest-counter", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kc, group, &rk, errstr, sizeof(errstr)) != WB_OK)
        lh_die("consumer", errstr);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) lh_die("metadata", topic);
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (n < want && wb_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

        if (!m) continue;
        if (!m->err && m->key_len >= plen && memcmp(m->key, prefix, plen) == 0) n++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

LH_FN void lh_msgs_free(lh_msg_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
    }
}

/* Runs `deploy/local/services CMD SERVICE`; returns its exit status. */
LH_FN int lh_services(const char *cmd, const char *service)
{
    char line[512];

    snprintf(line, sizeof(line), "%s %s %s >&2", LH_SERVICES, cmd, service);
    return system(line);
}

LH_FN void lh_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

#endif /* LIB_HARNESS_H */
