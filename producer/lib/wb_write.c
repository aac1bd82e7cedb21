/* wb_write.c — write-behind: wb_put, wb_del and the pipelined wb_put_batch.
 *
 * Order of a write (why it is safe):
 *   1. reserve a slot of the bounded Kafka queue — a full queue rejects the
 *      write before Redis is touched (WB_ERR_QUEUE_FULL, nothing written);
 *   2. the put script: new version (invariant 1), dirty, no TTL, in the
 *      dirty index (invariant 2) — from here on the write cannot be lost:
 *      if step 3 never happens the sweeper re-publishes it;
 *   3. the change event (invariant 3). ack: cache returns now (a produce
 *      failure is counted and logged; the entry stays dirty); ack: log
 *      waits for the broker's acknowledgement (acks=all).
 * ack: replica adds `WAIT 1 producer.replica_timeout_ms` to step 2, on the
 * connection that ran the script (in a batch: one WAIT per master that ran
 * any of it): Redis replicates asynchronously, so without it a master that
 * fails right after the script can take an acknowledged write with it
 * before its event was sent. The event is sent whatever WAIT said (the
 * write is in the cache); a WAIT that confirmed no replica fails the call.
 */
#include <stdlib.h>
#include <string.h>

#include "wb_client_int.h"
#include "wb_key.h"
#include "wb_log.h"
#include "wb_entry.h"
#include "wb_util.h"

static wb_ack_t resolve_ack(const wb_client_t *client, wb_ack_t ack)
{
    if (ack == WB_ACK_CACHE || ack == WB_ACK_LOG || ack == WB_ACK_REPLICA) return ack;
    ack = client->conf->producer.ack;
    return ack == WB_ACK_LOG || ack == WB_ACK_REPLICA ? ack : WB_ACK_CACHE;
}

static int kafka_wait_ms(const wb_client_t *client)
{
    return client->conf->producer.kafka_timeout_ms > 0 ? client->conf->producer.kafka_timeout_ms
                                                       : 5000;
}

void wb_write_event(wb_event_t *ev, const wb_entity_t *ent, const char *key, size_t keylen,
                    const void *value, size_t len, int is_delete, int64_t version, int64_t time_us)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = WB_EVENT_CHANGE;
    ev->key = key;
    ev->keylen = keylen;
    ev->is_delete = is_delete;
    ev->value = is_delete ? NULL : (value ? value : "");
    ev->valuelen = is_delete ? 0 : len;
    ev->version = version;
    ev->time_us = time_us;
    ev->entity = ent->name;
    ev->entitylen = strlen(ent->name);
}

/* Checks one write's arguments, the value against the entity's column
 * type included; on WB_OK *entp is its entity and key its cache key. */
static wb_err_t check_write(wb_client_t *client, const char *entity, const char *id,
                            const void *value, size_t len, int is_delete, const wb_entity_t **entp,
                            char *key, size_t *keylen)
{
    wb_err_t err;

    if (!is_delete && !value && len > 0) return WB_ERR_INVALID_ARG;
    err = wb_client_key(client, entity, id, entp, key, keylen);
    if (err != WB_OK) return err;
    if (!is_delete && len > (size_t)client->conf->producer.max_value_bytes) {
        WB_DEBUG("%s: value of %zu bytes is above producer.max_value_bytes (%d)", key, len,
                 client->conf->producer.max_value_bytes);
        return WB_ERR_TOO_LARGE;
    }
    if (!wb_producer_fits(client->producer, *keylen, is_delete ? 0 : len)) {
        WB_DEBUG("%s: value of %zu bytes does not fit in a Kafka message (raise "
                 "kafka.properties message.max.bytes and the changes topic's "
                 "max.message.bytes)",
                 key, len);
        return WB_ERR_TOO_LARGE;
    }
    return is_delete ? WB_OK : wb_client_check_value(*entp, key, value, len);
}

/* ---------------------------------------------------------------- single */

typedef struct put_op_s {
    const wb_config_t *conf;
    const char *entity; /* stored in the entry (its `e`) */
    const char *key;
    size_t keylen;
    const void *value;
    size_t len;
    int is_delete;
    int wait;          /* ack: replica: WAIT after the script */
    wb_err_t wait_err; /* what WAIT said (the script itself succeeded) */
    char wait_errstr[WB_ERRSTR_MAX];
    int64_t version, time_us;
} put_op_t;

static wb_err_t put_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    put_op_t *op = arg;
    wb_entry_put_req_t req = {.key = op->key,
                              .keylen = op->keylen,
                              .value = op->value,
                              .len = op->len,
                              .is_delete = op->is_delete,
                              .dirty_index = op->conf->redis.dirty_index,
                              .entity = op->entity};
    wb_entry_put_res_t res;
    wb_err_t err;

    if (op->wait) wb_rc_wait_begin(rc);
    err = wb_entry_put(rc, &req, &res, errstr, errstr_size);
    if (err == WB_OK) op->version = res.version, op->time_us = res.time_us;
    if (err == WB_OK && op->wait)
        op->wait_err = wb_rc_wait(rc, 1, op->conf->producer.replica_timeout_ms, op->wait_errstr,
                                  sizeof(op->wait_errstr));
    return err;
}

static wb_err_t write_one(wb_client_t *client, const char *entity, const char *id,
                          const void *value, size_t len, int is_delete, wb_ack_t ack,
                          int64_t *versionp)
{
    char key[WB_KEY_MAX], errstr[WB_ERRSTR_MAX];
    const wb_entity_t *ent = NULL;
    wb_waiter_t *w = NULL;
    wb_log_scope_t *prev_log;
    put_op_t op;
    wb_event_t ev;
    size_t keylen = 0;
    wb_err_t err;

    if (!client) return WB_ERR_INVALID_ARG;
    prev_log = wb_log_scope_enter(&client->log);
    err = check_write(client, entity, id, value, len, is_delete, &ent, key, &keylen);
    if (err != WB_OK) goto fail;
    ack = resolve_ack(client, ack);
    /* Allocated before Redis so that running out of memory cannot strand
     * a write that Redis already holds. */
    if (ack == WB_ACK_LOG && !(w = wb_waiter_new(1))) {
        err = WB_ERR_NOMEM;
        goto fail;
    }
    if (wb_producer_reserve(client->producer, 1) == 0) {
        err = WB_ERR_QUEUE_FULL;
        WB_DEBUG("%s: local event queue full (%d); nothing written", key,
                 client->conf->producer.queue_max);
        goto fail;
    }
    memset(&op, 0, sizeof(op));
    op.conf = client->conf;
    op.entity = ent->name;
    op.key = key;
    op.keylen = keylen;
    op.value = value;
    op.len = len;
    op.is_delete = is_delete;
    op.wait = ack == WB_ACK_REPLICA;
    err = wb_client_redis(client, put_op, &op, errstr, sizeof(errstr));
    if (err != WB_OK) {
        wb_producer_unreserve(client->producer, 1);
        WB_WARN("%s: %s", key, errstr);
        goto fail;
    }

    wb_write_event(&ev, ent, key, keylen, value, len, is_delete, op.version, op.time_us);
    err = wb_producer_send(client->producer, &ev, w, 0, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s version %lld is in the cache (dirty) but not queued for Kafka: %s", key,
                (long long)op.version, errstr);
        if (ack == WB_ACK_CACHE)
            err = WB_OK; /* acknowledged by the cache; the sweeper sends it */
        else
            goto fail;
    }
    if (ack == WB_ACK_LOG) {
        err = wb_waiter_wait(w, kafka_wait_ms(client));
        if (err == WB_OK) err = wb_waiter_result(w, 0);
        if (err != WB_OK) {
            WB_WARN("%s version %lld: Kafka did not acknowledge: %s (the entry stays dirty)", key,
                    (long long)op.version, wb_err2str(err));
            goto fail;
        }
    }
    if (ack == WB_ACK_REPLICA && op.wait_err != WB_OK) {
        err = op.wait_err;
        WB_WARN("%s version %lld is in the cache but no replica confirmed it: %s", key,
                (long long)op.version, op.wait_errstr);
        goto fail;
    }
    wb_waiter_release(w);
    atomic_fetch_add(&client->stats.puts, 1);
    if (versionp) *versionp = op.version;
    wb_log_scope_leave(prev_log);
    return WB_OK;

fail:
    wb_waiter_release(w);
    atomic_fetch_add(&client->stats.put_errors, 1);
    wb_log_scope_leave(prev_log);
    return err;
}

wb_err_t wb_put(wb_client_t *client, const char *entity, const char *id, const void *value,
                size_t len, wb_ack_t ack, int64_t *versionp)
{
    return write_one(client, entity, id, value, len, 0, ack, versionp);
}

wb_err_t wb_del(wb_client_t *client, const char *entity, const char *id, wb_ack_t ack,
                int64_t *versionp)
{
    return write_one(client, entity, id, NULL, 0, 1, ack, versionp);
}

/* ---------------------------------------------------------------- batch */

/* One admitted write of a batch. */
typedef struct bw_s {
    size_t i; /* index in the caller's writes[] */
    const wb_entity_t *ent;
    char *key; /* in the batch's key arena */
    size_t keylen;
} bw_t;

typedef struct batch_op_s {
    const wb_config_t *conf;
    const wb_entry_put_req_t *req;
    wb_entry_put_res_t *res;
    size_t n;
    int wait;          /* ack: replica: one WAIT per master after the pipeline */
    wb_err_t wait_err; /* what WAIT said */
    char wait_errstr[WB_ERRSTR_MAX];
} batch_op_t;

static wb_err_t batch_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    batch_op_t *op = arg;
    wb_err_t err;

    if (op->wait) wb_rc_wait_begin(rc);
    err = wb_entry_put_many(rc, op->req, op->n, op->res, errstr, errstr_size);
    if (err == WB_OK && op->wait)
        op->wait_err = wb_rc_wait(rc, 1, op->conf->producer.replica_timeout_ms, op->wait_errstr,
                                  sizeof(op->wait_errstr));
    return err;
}

wb_err_t wb_put_batch(wb_client_t *client, wb_write_t *writes, size_t n, wb_ack_t ack)
{
    char key[WB_KEY_MAX], errstr[WB_ERRSTR_MAX];
    const char *idx;
    bw_t *bw = NULL;
    wb_entry_put_req_t *req = NULL;
    wb_entry_put_res_t *res = NULL;
    char *arena = NULL;
    wb_waiter_t *w = NULL;
    size_t nvalid = 0, nadmit = 0, arena_len = 0, off = 0, i, k;
    wb_err_t err = WB_OK, first = WB_OK;
    wb_log_scope_t *prev_log;
    batch_op_t op;

    if (!client || (n > 0 && !writes)) return WB_ERR_INVALID_ARG;
    if (n == 0) return WB_OK;
    prev_log = wb_log_scope_enter(&client->log);
    ack = resolve_ack(client, ack);
    idx = client->conf->redis.dirty_index;

    /* Pass 1: check every write; size the key arena. */
    for (i = 0; i < n; i++) {
        const wb_entity_t *ent;
        size_t keylen;

        writes[i].version = 0;
        writes[i].err = check_write(client, writes[i].entity, writes[i].id, writes[i].value,
                                    writes[i].len, writes[i].value == NULL, &ent, key, &keylen);
        if (writes[i].err == WB_OK) {
            nvalid++;
            arena_len += keylen + 1;
        }
    }
    bw = calloc(nvalid ? nvalid : 1, sizeof(*bw));
    req = calloc(nvalid ? nvalid : 1, sizeof(*req));
    res = calloc(nvalid ? nvalid : 1, sizeof(*res));
    arena = malloc(arena_len ? arena_len : 1);
    if (ack == WB_ACK_LOG) w = wb_waiter_new(n);
    if (!bw || !req || !res || !arena || (ack == WB_ACK_LOG && !w)) {
        for (i = 0; i < n; i++)
            if (writes[i].err == WB_OK) writes[i].err = WB_ERR_NOMEM;
        goto done;
    }

    /* Pass 2: admit as many as the queue has room for, build the calls. */
    nadmit = wb_producer_reserve(client->producer, nvalid);
    for (i = 0, k = 0; i < n; i++) {
        wb_write_t *wr = &writes[i];
        bw_t *b;

        if (wr->err != WB_OK) continue;
        if (k == nadmit) {
            wr->err = WB_ERR_QUEUE_FULL;
            continue;
        }
        b = &bw[k];
        b->i = i;
        wb_client_key(client, wr->entity, wr->id, &b->ent, key, &b->keylen);
        b->key = arena + off;
        memcpy(b->key, key, b->keylen + 1);
        off += b->keylen + 1;
        req[k] = (wb_entry_put_req_t){.key = b->key,
                                      .keylen = b->keylen,
                                      .value = wr->value,
                                      .len = wr->value ? wr->len : 0,
                                      .is_delete = wr->value == NULL,
                                      .dirty_index = idx,
                                      .entity = b->ent->name};
        k++;
    }
    if (nadmit < nvalid)
        WB_DEBUG("batch: local event queue full; %zu of %zu writes rejected", nvalid - nadmit,
                 nvalid);
    if (nadmit == 0) goto done;

    /* One pipelined round trip for all admitted writes. */
    memset(&op, 0, sizeof(op));
    op.conf = client->conf;
    op.wait = ack == WB_ACK_REPLICA;
    op.req = req;
    op.res = res;
    op.n = nadmit;
    err = wb_client_redis(client, batch_op, &op, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("batch of %zu: %s", nadmit, errstr);
        wb_producer_unreserve(client->producer, nadmit);
        for (k = 0; k < nadmit; k++)
            writes[bw[k].i].err = err;
        goto done;
    }

    /* Then the events, in batch order (one key keeps its order within a
     * partition). */
    for (k = 0; k < nadmit; k++) {
        wb_write_t *wr = &writes[bw[k].i];
        wb_event_t ev;

        if (res[k].err != WB_OK) {
            WB_WARN("%s: put script: %s", bw[k].key, res[k].error);
            wb_producer_unreserve(client->producer, 1);
            wr->err = WB_ERR_REDIS;
            continue;
        }
        wr->version = res[k].version;
        wb_write_event(&ev, bw[k].ent, bw[k].key, bw[k].keylen, wr->value, wr->len,
                       wr->value == NULL, wr->version, res[k].time_us);
        err = wb_producer_send(client->producer, &ev, w, bw[k].i, errstr, sizeof(errstr));
        if (err != WB_OK) {
            WB_WARN("%s version %lld is in the cache (dirty) but not queued for Kafka: %s",
                    bw[k].key, (long long)wr->version, errstr);
            if (ack == WB_ACK_LOG) wr->err = err;
        }
        /* ack: replica: a master that did not confirm fails every write of
         * the batch (WAIT does not say which master's writes are missing). */
        if (ack == WB_ACK_REPLICA && op.wait_err != WB_OK) wr->err = op.wait_err;
    }
    if (ack == WB_ACK_REPLICA && op.wait_err != WB_OK)
        WB_WARN("batch of %zu is in the cache but no replica confirmed it: %s", nadmit,
                op.wait_errstr);
    if (ack == WB_ACK_LOG) {
        /* One wait for the whole batch; a slot without a report by then is
         * WB_ERR_TIMEOUT. */
        wb_waiter_wait(w, kafka_wait_ms(client));
        for (k = 0; k < nadmit; k++) {
            wb_write_t *wr = &writes[bw[k].i];

            if (wr->err == WB_OK) wr->err = wb_waiter_result(w, bw[k].i);
        }
    }

done:
    for (i = 0; i < n; i++) {
        if (writes[i].err == WB_OK) {
            atomic_fetch_add(&client->stats.puts, 1);
        } else {
            atomic_fetch_add(&client->stats.put_errors, 1);
            writes[i].version = 0;
            if (first == WB_OK) first = writes[i].err;
        }
    }
    wb_waiter_release(w);
    free(arena);
    free(res);
    free(req);
    free(bw);
    wb_log_scope_leave(prev_log);
    return first;
}
