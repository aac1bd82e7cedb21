/* wb_client.c — opening, closing and inspecting a client handle (see wb_client_int.h for the
 * design). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wb_client_int.h"
#include "wb_column.h"
#include "wb_key.h"
#include "wb_log.h"
#include "wb_util.h"

#define RPOOL_MAX_IDLE  64 /* idle Redis connections kept (one per busy caller thread) */
#define PGPOOL_MAX_IDLE 8  /* PostgreSQL is only on the miss and write-through paths */

/* The common modules log through the process-wide wb_log sink. The most
 * recently opened client owns it and forwards to its callback; when that
 * client closes, lines are dropped: a library never prints. */
static pthread_mutex_t g_sink_mu = PTHREAD_MUTEX_INITIALIZER;
static wb_client_t *g_sink_owner;

static void log_forward(int level, const char *line, void *opaque)
{
    wb_client_t *client = opaque;

    if (client->log_cb) client->log_cb(level, line, client->log_opaque);
}

static void log_drop(int level, const char *line, void *opaque)
{
    (void)level, (void)line, (void)opaque;
}

static void sink_install(wb_client_t *client)
{
    pthread_mutex_lock(&g_sink_mu);
    g_sink_owner = client;
    wb_log_set_sink(log_forward, client);
    pthread_mutex_unlock(&g_sink_mu);
}

static void sink_uninstall(wb_client_t *client)
{
    pthread_mutex_lock(&g_sink_mu);
    if (g_sink_owner == client) {
        g_sink_owner = NULL;
        wb_log_set_sink(log_drop, NULL);
    }
    pthread_mutex_unlock(&g_sink_mu);
}

static void client_free(wb_client_t *client)
{
    if (!client) return;
    sink_uninstall(client);
    wb_producer_destroy(client->producer,
                        client->conf ? client->conf->producer.kafka_timeout_ms : 0);
    wb_pgpool_destroy(client->pgpool);
    wb_rpool_destroy(client->rpool);
    wb_config_destroy(client->conf);
    free(client);
}

wb_err_t wb_client_open_config(wb_config_t *conf, wb_log_fn log_cb, void *log_opaque,
                               wb_client_t **clientp, char *errstr, size_t errstr_size)
{
    wb_client_t *client = NULL;
    redisContext *ctx = NULL;
    wb_err_t err;
    int level;

    if (clientp) *clientp = NULL;
    if (!conf || !clientp) {
        wb_set_err(errstr, errstr_size, "wb_client_open: conf and clientp must be set");
        return WB_ERR_INVALID_ARG;
    }
    client = calloc(1, sizeof(*client));
    if (!client) {
        wb_set_err(errstr, errstr_size, "wb_client_open: out of memory");
        return WB_ERR_NOMEM;
    }
    client->log_cb = log_cb;
    client->log_opaque = log_opaque;
    sink_install(client);
    level = wb_log_level_parse(conf->log.level);
    if (level >= 0) wb_log_set_level((wb_log_level_t)level);

    client->rpool = wb_rpool_new(conf, RPOOL_MAX_IDLE);
    client->pgpool = wb_pgpool_new(conf, PGPOOL_MAX_IDLE);
    if (!client->rpool || !client->pgpool) {
        wb_set_err(errstr, errstr_size, "wb_client_open: out of memory");
        err = WB_ERR_NOMEM;
        goto fail;
    }
    /* Fail early on a wrong address or password rather than on the first
     * put; like every new pooled connection, it loads the scripts. */
    err = wb_rpool_get(client->rpool, &ctx, NULL, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    wb_rpool_put(client->rpool, ctx);
    err = wb_producer_new(conf, &client->producer, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    client->conf = conf; /* ownership moves only on success */
    *clientp = client;
    WB_DEBUG("wbcache client open: redis %s:%d, kafka %s", conf->redis.host, conf->redis.port,
             conf->kafka.brokers);
    return WB_OK;

fail:
    client_free(client);
    return err;
}

wb_err_t wb_client_open(const char *config_path, wb_log_fn log_cb, void *log_opaque,
                        wb_client_t **clientp, char *errstr, size_t errstr_size)
{
    wb_config_t *conf = NULL;
    wb_err_t err;

    if (clientp) *clientp = NULL;
    err = wb_config_load(config_path ? config_path : wb_config_default_path(), &conf, errstr,
                         errstr_size);
    if (err != WB_OK) return err;
    err = wb_client_open_config(conf, log_cb, log_opaque, clientp, errstr, errstr_size);
    if (err != WB_OK) wb_config_destroy(conf);
    return err;
}

wb_err_t wb_client_flush(wb_client_t *client, int timeout_ms)
{
    if (!client) return WB_ERR_INVALID_ARG;
    return wb_producer_flush(client->producer, timeout_ms);
}

void wb_client_close(wb_client_t *client)
{
    client_free(client);
}

void wb_client_stats(wb_client_t *client, wb_stats_t *stats)
{
    wb_client_counters_t *s;

    if (!stats) return;
    memset(stats, 0, sizeof(*stats));
    if (!client) return;
    s = &client->stats;
    stats->puts = atomic_load(&s->puts);
    stats->put_errors = atomic_load(&s->put_errors);
    stats->through_writes = atomic_load(&s->through_writes);
    stats->hits = atomic_load(&s->hits);
    stats->misses = atomic_load(&s->misses);
    stats->loads = atomic_load(&s->loads);
    stats->refresh_requests = atomic_load(&s->refresh_requests);
    stats->kafka_errors = wb_producer_errors(client->producer);
    stats->queue_depth = wb_producer_depth(client->producer);
}

void wb_value_free(wb_value_t *value)
{
    if (!value) return;
    free(value->data);
    memset(value, 0, sizeof(*value));
}

wb_err_t wb_client_key(wb_client_t *client, const char *entity, const char *id,
                       const wb_entity_t **entp, char *buf, size_t *lenp)
{
    char why[128];
    const wb_entity_t *ent;
    wb_err_t err;

    if (!entity || !(ent = wb_config_entity(client->conf, entity))) {
        WB_DEBUG("unknown entity \"%s\"", entity ? entity : "(null)");
        return WB_ERR_UNKNOWN_ENTITY;
    }
    err = wb_key_build(ent, id, buf, lenp, why, sizeof(why));
    if (err != WB_OK) {
        WB_DEBUG("entity %s: invalid id: %s", ent->name, why);
        return err;
    }
    *entp = ent;
    return WB_OK;
}

wb_err_t wb_client_check_value(const wb_entity_t *ent, const char *key, const void *value,
                               size_t len)
{
    char why[320];

    if (wb_column_check(ent->value_type, value, len, why, sizeof(why)) == WB_OK) return WB_OK;
    WB_WARN("%s: write refused, nothing written: %s", key, why);
    return WB_ERR_INVALID_ARG;
}

int64_t wb_client_jitter_ttl(int64_t ttl_ms, int pct, uint64_t rnd)
{
    int64_t span, off;

    if (ttl_ms <= 0 || pct <= 0) return ttl_ms;
    if (pct > 100) pct = 100;
    span = ttl_ms * pct / 100; /* jitter in [-span, +span] */
    if (span == 0) return ttl_ms;
    off = (int64_t)(rnd % (uint64_t)(2 * span + 1)) - span;
    return ttl_ms + off > 0 ? ttl_ms + off : 1;
}

uint64_t wb_client_rand(void)
{
    static _Thread_local uint64_t state;
    uint64_t x;

    if (state == 0) state = wb_random_seed() | 1;
    /* xorshift64*: fast, per thread, good enough for jitter and tokens
     * (a lock token only has to differ between concurrent holders). */
    x = state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void wb_client_request_refresh(wb_client_t *client, const wb_entity_t *ent, const char *key,
                               size_t keylen, int64_t version)
{
    wb_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = WB_EVENT_REFRESH;
    ev.key = key;
    ev.keylen = keylen;
    ev.entity = ent->name;
    ev.entitylen = strlen(ent->name);
    ev.version = version > 0 ? version : 0;
    ev.time_us = wb_time_real_us();
    if (wb_producer_send_refresh(client->producer, &ev) == WB_OK)
        atomic_fetch_add(&client->stats.refresh_requests, 1);
    else
        WB_DEBUG("refresh request for %s not queued", key);
}

wb_err_t wb_client_redis(wb_client_t *client, wb_redis_op_fn op, void *arg, char *errstr,
                         size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        redisContext *ctx = NULL;
        int reused = 0, retry;
        wb_err_t err;

        err = wb_rpool_get(client->rpool, &ctx, &reused, errstr, errstr_size);
        if (err != WB_OK) return err;
        err = op(ctx, arg, errstr, errstr_size);
        retry = err != WB_OK && reused && attempt == 0 && wb_rpool_is_stale(ctx);
        wb_rpool_put(client->rpool, ctx);
        if (!retry) return err;
        WB_DEBUG("redis: pooled connection was stale (%s); reconnecting", errstr ? errstr : "");
        wb_rpool_drop_idle(client->rpool);
    }
}

wb_err_t wb_client_pg(wb_client_t *client, wb_pg_op_fn op, void *arg, char *errstr,
                      size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        PGconn *conn = NULL;
        int reused = 0, retry;
        wb_err_t err;

        err = wb_pgpool_get(client->pgpool, &conn, &reused, errstr, errstr_size);
        if (err != WB_OK) return err;
        err = op(conn, arg, errstr, errstr_size);
        retry = err != WB_OK && reused && attempt == 0 && PQstatus(conn) == CONNECTION_BAD;
        wb_pgpool_put(client->pgpool, conn);
        if (!retry) return err;
    }
}
