/* wb_through.c — write-through: version from Redis, committed upsert in PostgreSQL, then the cache.
 *
 * 1. The `version` script reserves V above every version the key had and
 *    below every later one (field rv; see common/core/lua/version.lua), without touching
 *    the cached value — if PostgreSQL then fails, the cache is unchanged.
 * 2. wb_table_upsert(n = 1) in autocommit: the same version-guarded
 *    statement the flusher uses, so there is one upsert code path.
 *    applied == 0 means PostgreSQL already holds a newer version (a later
 *    write-behind put got flushed first): WB_ERR_STALE — unless the row
 *    holds exactly V: the first attempt committed and only its answer was
 *    lost with the connection, so the retry found its own write. That is
 *    success (the version probe, wb_table_probe, tells them apart).
 * 3. The `through` script sets the entry to V, DIRTY, without TTL, in the
 *    dirty index — exactly what `put` leaves for a write-behind write — also
 *    over an OLDER DIRTY write-behind value: V is durable and newer, and
 *    keeping the older dirty value (as the fill script would) would let
 *    the flusher later mark that older value clean. A newer entry is left
 *    alone (it is pinned for its own event).
 * 4. V's change event goes to Kafka in the background, as with ack: cache
 *    (invariant 11: the log holds every write PostgreSQL holds, so replay
 *    rebuilds it). The entry stays pinned until the flusher has consumed
 *    that event: PostgreSQL already holds V (the guard applies nothing),
 *    and the clean-mark at V gives the entry its TTL. An event that cannot
 *    be queued or delivered is re-published by the sweeper, like any dirty
 *    entry. Not waited for: the write is committed, and a slow or absent
 *    Kafka must not fail it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_client_int.h"
#include "wb_key.h"
#include "wb_log.h"
#include "wb_entry.h"
#include "wb_table.h"
#include "wb_util.h"

typedef struct through_op_s {
    const wb_config_t *conf;
    const char *entity; /* stored in the entry (its `e`) */
    const char *key;
    size_t keylen;
    const void *value;
    size_t len;
    int64_t version;
    int64_t reserve_ms;
    int applied;
} through_op_t;

static wb_err_t version_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    through_op_t *op = arg;

    return wb_entry_version(rc, op->key, op->keylen, op->conf->redis.dirty_index, op->reserve_ms,
                            &op->version, errstr, errstr_size);
}

static wb_err_t set_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    through_op_t *op = arg;
    wb_entry_through_req_t req = {.key = op->key,
                                  .keylen = op->keylen,
                                  .dirty_index = op->conf->redis.dirty_index,
                                  .value = op->value,
                                  .len = op->len,
                                  .version = op->version,
                                  .entity = op->entity};

    return wb_entry_through(rc, &req, &op->applied, errstr, errstr_size);
}

typedef struct upsert_s {
    wb_table_rows_t req;
    wb_table_result_t res;
} upsert_t;

static wb_err_t upsert_op(PGconn *conn, void *arg, char *errstr, size_t errstr_size)
{
    upsert_t *u = arg;
    return wb_table_upsert(conn, &u->req, &u->res, errstr, errstr_size);
}

/* Runs the one-row upsert; a pooled connection found dead (PostgreSQL
 * restarted while it sat idle: the statement never reached a server) is
 * replaced once. *applied = rows written (0: the version guard refused). */
static wb_err_t upsert(wb_client_t *client, const wb_entity_t *ent, const wb_row_t *row,
                       size_t *applied, char *errstr, size_t errstr_size)
{
    upsert_t u = {.req = {ent, row, 1}};
    wb_err_t err = wb_client_pg(client, upsert_op, &u, errstr, errstr_size);

    *applied = u.res.rows;
    return err;
}

/* The version PostgreSQL holds for row's key in ent's table (-1: no row). */
static wb_err_t stored_version(wb_client_t *client, const wb_entity_t *ent, const wb_row_t *row,
                               int64_t *version, char *errstr, size_t errstr_size)
{
    wb_table_rows_t req = {ent, row, 1};
    PGconn *conn = NULL;
    wb_err_t err;

    *version = -1;
    err = wb_pgpool_get(client->pgpool, &conn, NULL, errstr, errstr_size);
    if (err != WB_OK) return err;
    err = wb_table_probe(conn, &req, version, errstr, errstr_size);
    wb_pgpool_put(client->pgpool, conn);
    return err;
}

/* Step 4: queues V's change event without waiting (a failure is logged;
 * the entry stays dirty and the sweeper delivers it). */
static void publish(wb_client_t *client, const wb_entity_t *ent, const char *key, size_t keylen,
                    const through_op_t *op)
{
    char errstr[WB_ERRSTR_MAX];
    wb_event_t ev;

    if (wb_producer_reserve(client->producer, 1) == 0) {
        WB_WARN("%s version %lld is in the cache (dirty) but the local event queue is full (%d); "
                "the sweeper will deliver it",
                key, (long long)op->version, client->conf->producer.queue_max);
        return;
    }
    wb_write_event(&ev, ent, key, keylen, op->value, op->len, 0, op->version, wb_time_real_us());
    if (wb_producer_send(client->producer, &ev, NULL, 0, errstr, sizeof(errstr)) != WB_OK)
        WB_WARN("%s version %lld is in the cache (dirty) but not queued for Kafka: %s", key,
                (long long)op->version, errstr);
}

wb_err_t wb_put_through(wb_client_t *client, const char *entity, const char *id, const void *value,
                        size_t len, int64_t *versionp)
{
    char key[WB_KEY_MAX], errstr[WB_ERRSTR_MAX];
    const wb_entity_t *ent = NULL;
    wb_log_scope_t *prev_log;
    through_op_t op;
    wb_row_t row;
    size_t keylen = 0, applied = 0;
    wb_err_t err;

    if (!client || (!value && len > 0)) return WB_ERR_INVALID_ARG;
    prev_log = wb_log_scope_enter(&client->log);
    err = wb_client_key(client, entity, id, &ent, key, &keylen);
    if (err != WB_OK) goto fail;
    if (len > (size_t)client->conf->producer.max_value_bytes ||
        !wb_producer_fits(client->producer, keylen, len)) {
        /* Its event could never be delivered, not even by the sweeper. */
        err = WB_ERR_TOO_LARGE;
        goto fail;
    }
    /* Before the version is reserved: a refused value touches nothing. */
    err = wb_client_check_value(ent, key, value, len);
    if (err != WB_OK) goto fail;
    memset(&op, 0, sizeof(op));
    op.conf = client->conf;
    op.entity = ent->name;
    op.key = key;
    op.keylen = keylen;
    op.value = value ? value : "";
    op.len = len;
    /* The reservation only has to outlive the PostgreSQL write. */
    op.reserve_ms = (int64_t)client->conf->postgres.connect_timeout_ms +
                    client->conf->postgres.statement_timeout_ms + 1000;
    err = wb_client_redis(client, version_op, &op, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s: %s", key, errstr);
        goto fail;
    }

    memset(&row, 0, sizeof(row));
    row.key = id;
    row.keylen = strlen(id);
    row.value = op.value;
    row.valuelen = len;
    row.version = op.version;
    err = upsert(client, ent, &row, &applied, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s: write-through: %s (cache not touched)", key, errstr);
        if (err != WB_ERR_TIMEOUT && err != WB_ERR_NOMEM) err = WB_ERR_PG;
        goto fail;
    }
    if (applied == 0) {
        int64_t held = -1;

        err = stored_version(client, ent, &row, &held, errstr, sizeof(errstr));
        if (err != WB_OK) {
            WB_WARN("%s: write-through version %lld not applied, and the row cannot be read: %s",
                    key, (long long)op.version, errstr);
            if (err != WB_ERR_TIMEOUT && err != WB_ERR_NOMEM) err = WB_ERR_PG;
            goto fail;
        }
        if (held != op.version) {
            WB_DEBUG("%s: write-through version %lld refused: PostgreSQL holds %lld", key,
                     (long long)op.version, (long long)held);
            err = WB_ERR_STALE;
            goto fail;
        }
        WB_DEBUG("%s: write-through version %lld was already committed (answer lost)", key,
                 (long long)op.version);
    }
    atomic_fetch_add(&client->stats.through_writes, 1);

    err = wb_client_redis(client, set_op, &op, errstr, sizeof(errstr));
    if (err != WB_OK)
        /* Committed, but the cache may still serve the previous value, and
         * nothing pins V for the sweeper: the caller must know, so this is
         * an error. The event below still puts V in the log, and the
         * flusher's clean-mark at V drops an older cached value. */
        WB_WARN("%s: version %lld committed in PostgreSQL but the cache was not updated: %s", key,
                (long long)op.version, errstr);
    publish(client, ent, key, keylen, &op);
    if (err != WB_OK) goto fail;
    if (versionp) *versionp = op.version;
    wb_log_scope_leave(prev_log);
    return WB_OK;

fail:
    atomic_fetch_add(&client->stats.put_errors, 1);
    wb_log_scope_leave(prev_log);
    return err;
}
