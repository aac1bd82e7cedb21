/* wb_client.c — opening, closing and inspecting a client handle (see wb_client_int.h for the
 * design). */
#include <stdlib.h>
#include <string.h>

#include "wb_client_int.h"
#include "wb_column.h"
#include "wb_key.h"
#include "wb_log.h"
#include "wb_sigpipe.h"
#include "wb_util.h"

#define RPOOL_MAX_IDLE  64 /* idle Redis connections kept (one per busy caller thread) */
#define PGPOOL_MAX_IDLE 8  /* PostgreSQL is only on the miss and write-through paths */

static void client_free(wb_client_t *client)
{
    if (!client) return;
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
    wb_log_scope_t *prev_log;
    wb_rc_t *rc = NULL;
    wb_sigpipe_t sigpipe;
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
    level = wb_log_level_parse(conf->log.level);
    wb_log_scope_init(&client->log, log_cb, log_opaque,
                      level >= 0 ? (wb_log_level_t)level : WB_LOG_INFO);
    prev_log = wb_log_scope_enter(&client->log);

    client->rpool = wb_rpool_new(conf, RPOOL_MAX_IDLE);
    client->pgpool = wb_pgpool_new(conf, PGPOOL_MAX_IDLE);
    if (!client->rpool || !client->pgpool) {
        wb_set_err(errstr, errstr_size, "wb_client_open: out of memory");
        err = WB_ERR_NOMEM;
        goto fail;
    }
    /* Fail early on a wrong address or password rather than on the first
     * put; like every new pooled connection, it loads the scripts. */
    wb_sigpipe_block(&sigpipe);
    err = wb_rpool_get(client->rpool, &rc, NULL, errstr, errstr_size);
    if (err == WB_OK) wb_rpool_put(client->rpool, rc);
    wb_sigpipe_restore(&sigpipe);
    if (err != WB_OK) goto fail;
    err = wb_producer_new(conf, &client->log, &client->producer, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    client->conf = conf; /* ownership moves only on success */
    *clientp = client;
    WB_DEBUG("wbcache client open: redis %s:%d, kafka %s", conf->redis.host, conf->redis.port,
             conf->kafka.brokers);
    wb_log_scope_leave(prev_log);
    return WB_OK;

fail:
    client_free(client);
    wb_log_scope_leave(prev_log);
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
    wb_log_scope_t *prev_log;
    wb_err_t err;

    if (!client) return WB_ERR_INVALID_ARG;
    prev_log = wb_log_scope_enter(&client->log);
    err = wb_producer_flush(client->producer, timeout_ms);
    wb_log_scope_leave(prev_log);
    return err;
}

void wb_client_close(wb_client_t *client)
{
    wb_log_scope_t *prev_log;

    if (!client) return;
    /* The scope lives in client: left only after its last line. */
    prev_log = wb_log_scope_enter(&client->log);
    client_free(client);
    wb_log_scope_leave(prev_log);
}

wb_err_t wb_client_set_log_level(wb_client_t *client, wb_log_level_t level)
{
    if (!client || level < WB_LOG_DEBUG || level > WB_LOG_ERROR) return WB_ERR_INVALID_ARG;
    wb_log_scope_set_level(&client->log, level);
    return WB_OK;
}

size_t wb_client_stats(wb_client_t *client, wb_stats_t *stats, size_t stats_size)
{
    wb_client_counters_t *s;
    wb_stats_t all;
    size_t n;

    if (!client || !stats) return 0;
    memset(&all, 0, sizeof(all));
    s = &client->stats;
    all.puts = atomic_load(&s->puts);
    all.put_errors = atomic_load(&s->put_errors);
    all.through_writes = atomic_load(&s->through_writes);
    all.hits = atomic_load(&s->hits);
    all.misses = atomic_load(&s->misses);
    all.loads = atomic_load(&s->loads);
    all.refresh_requests = atomic_load(&s->refresh_requests);
    all.kafka_errors = wb_producer_errors(client->producer);
    all.queue_depth = wb_producer_depth(client->producer);
    all.redis_moved = atomic_load(&s->redis_moved);
    all.redis_ask = atomic_load(&s->redis_ask);
    all.redis_retries = atomic_load(&s->redis_retries);
    /* Whole counters only, and not one byte past what the caller has. */
    n = stats_size < sizeof(all) ? stats_size : sizeof(all);
    n -= n % sizeof(uint64_t);
    memcpy(stats, &all, n);
    return n;
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
    err = wb_key_build(ent, client->conf->redis.dirty_shards, id, buf, lenp, why, sizeof(why));
    if (err != WB_OK) {
        WB_DEBUG("entity %s: invalid id: %s", ent->name, why);
        return err;
    }
    /* A mapped entity's id must read back from its key column unchanged. */
    char idwhy[256];
    if ((err = wb_column_check_id(ent, id, idwhy, sizeof(idwhy))) != WB_OK) {
        WB_WARN("invalid id: %s", idwhy);
        return err;
    }
    *entp = ent;
    return WB_OK;
}

wb_err_t wb_client_check_value(const wb_entity_t *ent, const char *key, const void *value,
                               size_t len)
{
    char why[320];

    if ((WB_ENTITY_MAPPED(ent)
             ? wb_column_check_mapped(ent, value, len, why, sizeof(why))
             : wb_column_check(ent->value_type, value, len, why, sizeof(why))) == WB_OK)
        return WB_OK;
    WB_WARN("%s: write refused, nothing written: %s", key, why);
    return WB_ERR_INVALID_ARG;
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
        wb_rc_t *rc = NULL;
        wb_sigpipe_t sigpipe;
        int reused = 0, retry;
        wb_err_t err;

        /* hiredis writes with write(2): a connection the server closed
         * must fail the write (EPIPE), not kill the application. */
        wb_sigpipe_block(&sigpipe);
        err = wb_rpool_get(client->rpool, &rc, &reused, errstr, errstr_size);
        if (err == WB_OK) {
            wb_rc_counts_t n;

            err = op(rc, arg, errstr, errstr_size);
            wb_rc_take_counts(rc, &n);
            if (n.moved) atomic_fetch_add(&client->stats.redis_moved, n.moved);
            if (n.ask) atomic_fetch_add(&client->stats.redis_ask, n.ask);
            if (n.retries) atomic_fetch_add(&client->stats.redis_retries, n.retries);
            retry = err != WB_OK && reused && attempt == 0 && wb_rpool_is_stale(rc);
            wb_rpool_put(client->rpool, rc);
        } else {
            retry = 0;
        }
        wb_sigpipe_restore(&sigpipe);
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
