/* lib_harness.c — the libwbcache integration tests' harness: config, services, reading back. */
#include "lib_harness.h"

#include "wb_entry.h"

const char *lh_env(const char *name, const char *def)
{
    return wb_test_env(name, def);
}

void lh_die(const char *what, const char *detail)
{
    fprintf(stderr, "harness: %s: %s\n", what, detail ? detail : "");
    abort();
}

size_t lh_config_yaml(const lh_t *h, const char *producer_extra, char *yaml, size_t size)
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
        lh_env("WB_PG_DSN", WB_TEST_PG_DSN), producer_extra ? producer_extra : "");
    if (n < 0 || (size_t)n >= size) lh_die("config", "too long");
    return (size_t)n;
}

wb_config_t *lh_config(const lh_t *h, const char *producer_extra)
{
    char yaml[4096], errstr[2048];
    wb_config_t *conf = NULL;
    size_t n = lh_config_yaml(h, producer_extra, yaml, sizeof(yaml));

    if (wb_config_load_string("<test>", yaml, n, &conf, errstr, sizeof(errstr)) != WB_OK)
        lh_die("config", errstr);
    return conf;
}

void lh_log(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN) fprintf(stderr, "  [lib] %s\n", line);
}

wb_client_t *lh_client(const lh_t *h, const char *producer_extra)
{
    char errstr[1024];
    wb_client_t *client = NULL;
    wb_config_t *conf = lh_config(h, producer_extra);

    if (wb_client_open_config(conf, lh_log, NULL, &client, errstr, sizeof(errstr)) != WB_OK)
        lh_die("wb_client_open_config", errstr);
    return client;
}

static void lh_quiet_notice(void *arg, const char *message)
{
    (void)arg, (void)message; /* "relation already exists, skipping" */
}

void lh_setup(lh_t *h)
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
    if (wb_rc_connect(h->conf, &h->redis, errstr, sizeof(errstr)) != WB_OK) lh_die("redis", errstr);
    h->pg = PQconnectdb(lh_env("WB_PG_DSN", WB_TEST_PG_DSN));
    if (PQstatus(h->pg) != CONNECTION_OK) lh_die("postgres", PQerrorMessage(h->pg));
    PQsetNoticeProcessor(h->pg, lh_quiet_notice, NULL);
    /* Tables for item, hot and doc: ghost's must stay missing. */
    for (size_t i = 0; i < 4; i++)
        if (i != 2 &&
            wb_table_create(h->pg, &h->conf->entities[i], errstr, sizeof(errstr)) != WB_OK)
            lh_die("schema", errstr);
}

void lh_teardown(lh_t *h)
{
    char errstr[512];

    if (h->admin) {
        wb_kafka_delete_topic(h->admin, h->changes, 10000, errstr, sizeof(errstr));
        wb_kafka_delete_topic(h->admin, h->refresh, 10000, errstr, sizeof(errstr));
        rd_kafka_destroy(h->admin);
    }
    if (h->redis) {
        /* Dirty test entries have no TTL: remove every key of this run. */
        char match[96];
        snprintf(match, sizeof(match), "*%s*", h->tag);
        wb_test_redis_del_matching(h->redis, match);
        wb_rc_free(h->redis);
    }
    if (h->pg) PQfinish(h->pg);
    wb_config_destroy(h->conf);
    memset(h, 0, sizeof(*h));
}

void lh_redis_reconnect(lh_t *h)
{
    char errstr[512];

    wb_rc_t *fresh = NULL;

    if (wb_rc_connect(h->conf, &fresh, errstr, sizeof(errstr)) != WB_OK)
        lh_die("redis reconnect", errstr);
    wb_rc_free(h->redis);
    h->redis = fresh;
}

const char *lh_id(const lh_t *h, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s-%s", h->tag, name);
    return buf;
}

const char *lh_key(const lh_t *h, char *buf, size_t size, const char *prefix, const char *id)
{
    char body[1100];

    snprintf(body, sizeof(body), "%s%s", prefix, id);
    return wb_test_key(buf, size, h->conf->redis.dirty_shards, body);
}

char *lh_hget(lh_t *h, const char *key, const char *field)
{
    redisReply *r = wb_test_redis(h->redis, "HGET %s %s", key, field);
    char *s = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "");

    if (r) freeReplyObject(r);
    return s;
}

long long lh_int(lh_t *h, const char *fmt, const char *a, const char *b)
{
    redisReply *r = b ? wb_test_redis(h->redis, fmt, a, b) : wb_test_redis(h->redis, fmt, a);
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

long long lh_pttl(lh_t *h, const char *key)
{
    return lh_int(h, "PTTL %s", key, NULL);
}

long long lh_dirty_score(lh_t *h, const char *key)
{
    char idx[WB_ENTRY_KEY_MAX];
    int shard = 0;

    if (!wb_entry_key_tag(key, strlen(key), &shard)) return -1;
    wb_entry_index_key(h->dirty, shard, idx, sizeof(idx));
    return lh_int(h, "ZSCORE %s %s", idx, key);
}

PGresult *lh_sql(lh_t *h, const char *sql, int n, const char *p1, const char *p2, const char *p3)
{
    const char *params[3] = {p1, p2, p3};
    PGresult *res = PQexecParams(h->pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) lh_die(sql, PQerrorMessage(h->pg));
    return res;
}

/* A consumer of this run's group name.suffix reading every partition of
 * topic from the beginning; aborts when it cannot. */
static rd_kafka_t *lh_reader(lh_t *h, const char *client_id, const char *suffix, const char *topic)
{
    char errstr[512], group[160];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;

    snprintf(group, sizeof(group), "%s.%s", h->tag, suffix);
    if (wb_kafka_conf_new(h->conf, client_id, 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kc, group, &rk, errstr, sizeof(errstr)) != WB_OK)
        lh_die("consumer", errstr);
    if (wb_test_kafka_assign_all(rk, topic) != 0) lh_die("metadata", topic);
    return rk;
}

int lh_consume(lh_t *h, const char *topic, const char *key, int refresh, lh_msg_t *out, int max,
               int want, int timeout_ms)
{
    char errstr[512];
    int64_t deadline = wb_time_mono_ms() + timeout_ms;
    rd_kafka_t *rk = lh_reader(h, "libtest-reader", "reader", topic);
    int n = 0;

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

int lh_count_prefix(lh_t *h, const char *topic, const char *prefix, int want, int timeout_ms)
{
    int64_t deadline = wb_time_mono_ms() + timeout_ms;
    rd_kafka_t *rk = lh_reader(h, "libtest-counter", "counter", topic);
    size_t plen = strlen(prefix), ptag = wb_entry_key_tag(prefix, plen, NULL);
    int n = 0;

    /* Both compared after their shard tags: a prefix of ids may have none. */
    prefix += ptag;
    plen -= ptag;
    while (n < want && wb_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

        if (!m) continue;
        if (!m->err) {
            size_t tag = wb_entry_key_tag(m->key, m->key_len, NULL);
            if (m->key_len - tag >= plen && memcmp((char *)m->key + tag, prefix, plen) == 0) n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

void lh_msgs_free(lh_msg_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
    }
}

int lh_services(const char *cmd, const char *service)
{
    return wb_test_services(cmd, service);
}

void lh_sleep_ms(int ms)
{
    wb_test_sleep_ms(ms);
}
