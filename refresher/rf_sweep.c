/* rf_sweep.c — the dirty sweeper (invariant 9): re-publish entries dirty for too long.
 *
 * Only the replica holding the lease (the key <dirty_index>:sweeper, taken
 * with SET NX PX lease_ms, renewed and released by token-compare scripts)
 * sweeps, so with several replicas each stuck entry is published once per
 * pass. The lease and every dirty-index command are wb_entry.h's. A pass:
 *   1. Redis TIME, then wb_entry_dirty_range: the members scored before
 *      (now - sweep_after_ms), at most sweep_max_per_pass — the entries
 *      dirty for longer than that;
 *   2. per member, the `sweep_check` script: gone or clean -> unindexed in the
 *      same atomic step; dirty -> its v, ver, wt, del and entity;
 *   3. each dirty entry's change event again, with the SAME version, entity
 *      (the one the put stored in the entry; the key's prefix only for an
 *      entry written without one) and write time, the value or a Kafka
 *      tombstone — the flusher's version guard makes a duplicate harmless;
 *   4. wait for Kafka's acknowledgements;
 *   5. wb_entry_dirty_bump to the pass time for the acknowledged ones: the
 *      entry stays indexed (it is still dirty until the flusher cleans it)
 *      but is not sent again before another sweep_after_ms. A member the
 *      flusher removed meanwhile stays removed, and the score of a newer
 *      put is never lowered.
 * Entries Kafka refused are backed off: their score moves to the pass time
 * plus sweep_after_ms, so they are retried after twice that and, since a
 * pass takes the lowest scores first, never keep other stranded writes out
 * of a pass. What Kafka will NEVER take (a value above the topic's
 * max.message.bytes, an invalid record: rf_sweep_permanent) is poison: an
 * ERROR line and wb_refresher_sweep_poison_total, and its score moves an
 * hour ahead (it stays dirty and pinned in the cache, readable; the
 * operator shortens it or raises the topic's limit). Entries not answered
 * within the delivery wait keep their score. A clean entry is never
 * published: the `sweep_check` script reads and decides atomically.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "rf_util.h"
#include "wb_cli.h"
#include "wb_entry.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_loop.h"
#include "wb_redis.h"
#include "wb_util.h"

#define RF_SWEEP_CHUNK       512  /* commands per Redis pipeline */
#define RF_SWEEP_DELIVERY_MS 5000 /* longest wait for acknowledgements per pass */
#define RF_SWEEP_POISON_US   (INT64_C(3600) * 1000000) /* a poison entry's next try */

int rf_sweep_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return 1;
    default:
        return 0;
    }
}

/* msg_opaque of a re-published event: the pass number and the index in
 * rf->swept, so a late report of an abandoned pass is recognised. */
static void *pack_opaque(uint32_t pass, size_t idx)
{
    return (void *)(uintptr_t)(((uint64_t)pass << 32) | (uint64_t)(idx + 1));
}

/* Runs on the thread that polls the producer: ours (rf_sweep_pass and the
 * daemon loop), so it may touch rf. */
void rf_sweep_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    rf_t *rf = opaque;
    uint64_t v = (uint64_t)(uintptr_t)msg->_private;
    uint32_t pass = (uint32_t)(v >> 32);
    size_t idx = (size_t)(v & 0xffffffffu);

    (void)rk;
    if (pass != rf->pass_seq || idx == 0 || idx > rf->nswept) return;
    rf_swept_t *s = &rf->swept[idx - 1];
    if (s->state != RF_SWEPT_PENDING) return;
    if (msg->err && rf_sweep_permanent(msg->err)) {
        s->state = RF_SWEPT_POISON;
        WB_ERROR("re-publishing %s (version %" PRId64 ", %zu bytes): Kafka will never accept it: "
                 "%s; it stays dirty in the cache and is tried again in an hour (raise the "
                 "topic's max.message.bytes, or overwrite or delete the key)",
                 s->key, s->version, s->valuelen, rd_kafka_err2str(msg->err));
    } else if (msg->err) {
        s->state = RF_SWEPT_FAILED;
        WB_WARN("re-publishing %s failed: %s", s->key, rd_kafka_err2str(msg->err));
    } else {
        s->state = RF_SWEPT_DELIVERED;
    }
}

static void swept_clear(rf_t *rf)
{
    for (size_t i = 0; i < rf->nswept; i++)
        free(rf->swept[i].key);
    rf->nswept = 0;
}

static int64_t reply_i64(const redisReply *r)
{
    int64_t v = 0;
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING && wb_parse_i64(r->str, r->len, &v) == 0) return v;
    return 0;
}

/* Redis TIME in microseconds: the clock the entries' write times and the
 * index scores come from (never mix in this host's clock). */
static wb_err_t redis_time(rf_t *rf, int64_t *now_us, char *errstr, size_t errstr_size)
{
    static const char *argv[1] = {"TIME"};
    static const size_t argvlen[1] = {4};
    redisReply *r = NULL;
    wb_err_t err = wb_rc_command(rf->redis, -1, 1, argv, argvlen, &r, errstr, errstr_size);

    if (err != WB_OK) {
        rf_redis_drop(rf);
        return err;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        wb_set_err(errstr, errstr_size, "redis TIME: unexpected reply");
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    *now_us = reply_i64(r->element[0]) * 1000000 + reply_i64(r->element[1]);
    freeReplyObject(r);
    return WB_OK;
}

/* After a failed Redis call: an I/O error drops the connection (it is
 * made again, with backoff, by rf_redis_ensure). */
static wb_err_t redis_failed(rf_t *rf, wb_err_t err)
{
    if (rf->redis && wb_rc_failed(rf->redis)) rf_redis_drop(rf);
    return err;
}

/* Takes or renews the lease. *leader = whether we hold it now. */
static wb_err_t lease(rf_t *rf, char *errstr, size_t errstr_size)
{
    int ok = 0;
    wb_err_t err;

    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) return err;
    if (rf->leader) {
        err = wb_entry_lease_renew(rf->redis, rf->lease_key, rf->token, rf->lease_ms, &ok, errstr,
                                   errstr_size);
        if (err != WB_OK) return redis_failed(rf, err);
        if (ok) return WB_OK;
        rf->leader = 0;
        wb_gauge_set(rf->m.leader, 0);
        WB_WARN("sweeper lease %s is no longer ours (it expired while this replica was stalled, "
                "or Redis lost its data); taking it again if it is free",
                rf->lease_key);
    }
    err = wb_entry_lease_take(rf->redis, rf->lease_key, rf->token, rf->lease_ms, &ok, errstr,
                              errstr_size);
    if (err != WB_OK) return redis_failed(rf, err);
    if (ok) {
        rf->leader = 1;
        wb_gauge_set(rf->m.leader, 1);
        WB_INFO("sweeper lease %s taken: this replica sweeps", rf->lease_key);
    }
    return WB_OK;
}

void rf_sweep_release(rf_t *rf)
{
    char errstr[256];
    wb_err_t err;

    if (!rf->leader) return;
    if ((err = rf_redis_ensure(rf, errstr, sizeof(errstr))) == WB_OK)
        err = redis_failed(rf, wb_entry_release(rf->redis, rf->lease_key, rf->token, NULL, errstr,
                                                sizeof(errstr)));
    if (err == WB_OK)
        WB_INFO("sweeper lease released");
    else
        WB_WARN("could not release the sweeper lease (it expires by itself): %s", errstr);
    rf->leader = 0;
    wb_gauge_set(rf->m.leader, 0);
}

/* Step 2 for members[lo, hi): unindex gone/clean, collect dirty. */
static wb_err_t check_chunk(rf_t *rf, const wb_entry_keys_t *members, size_t lo, size_t hi,
                            size_t *unindexed, char *errstr, size_t errstr_size)
{
    wb_entry_check_res_t res[RF_SWEEP_CHUNK];
    size_t n = hi - lo;
    wb_err_t err;

    if (n == 0 || n > RF_SWEEP_CHUNK) return WB_OK;
    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) return err;
    err = wb_entry_sweep_check_many(rf->redis, rf->dirty_index, members->v + lo, n, res, errstr,
                                    errstr_size);
    if (err != WB_OK) {
        rf_redis_drop(rf);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        const wb_entry_key_t *m = &members->v[lo + i];
        wb_entry_check_res_t *c = &res[i];
        if (c->err != WB_OK) {
            WB_WARN("sweep check of %.*s: %s", (int)m->keylen, m->key, c->error);
        } else if (!c->dirty) {
            (*unindexed)++;
        } else {
            rf_swept_t *s = &rf->swept[rf->nswept];
            memset(s, 0, sizeof(*s));
            if ((s->key = malloc(m->keylen + 1 + c->len + 1))) {
                memcpy(s->key, m->key, m->keylen);
                s->key[m->keylen] = '\0';
                memcpy(s->key + m->keylen + 1, c->value, c->len);
                s->key[m->keylen + 1 + c->len] = '\0';
                s->keylen = m->keylen;
                s->value = s->key + m->keylen + 1;
                s->valuelen = c->len;
                s->version = c->version;
                s->write_us = c->write_us;
                s->is_delete = c->is_delete;
                memcpy(s->entity, c->entity, sizeof(s->entity));
                s->state = RF_SWEPT_SKIPPED; /* until queued */
                rf->nswept++;
            }
        }
        wb_entry_check_clear(c);
    }
    return WB_OK;
}

/* Step 3: queue one entry's event. Returns 1 if queued. */
static int publish(rf_t *rf, size_t idx, size_t *unknown)
{
    rf_swept_t *s = &rf->swept[idx];
    const wb_entity_t *ent =
        rf_entity_for_key(rf->conf, s->entity, strlen(s->entity), s->key, s->keylen);
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t rerr;

    if (!ent) {
        s->state = RF_SWEPT_UNKNOWN;
        (*unknown)++;
        return 0;
    }
    wb_event_t ev = {.key = s->key,
                     .keylen = s->keylen,
                     .value = s->is_delete ? NULL : s->value,
                     .valuelen = s->is_delete ? 0 : s->valuelen,
                     .is_delete = s->is_delete,
                     .version = s->version,
                     .time_us = s->write_us,
                     .entity = ent->name,
                     .entitylen = strlen(ent->name)};
    if (wb_event_to_rd_headers(&ev, &hdrs) != WB_OK) {
        WB_WARN("dirty entry %s cannot be re-published: not a valid event (version %" PRId64
                ", write time %" PRId64 ")",
                s->key, s->version, s->write_us);
        return 0;
    }
    /* A delete is a Kafka tombstone: a null value. (Computed outside the macro, whose
     * cast would otherwise apply to the condition only.) */
    void *value = s->is_delete ? NULL : (void *)s->value;
    size_t valuelen = s->is_delete ? 0 : s->valuelen;
    for (;;) {
        rerr =
            rd_kafka_producev(rf->producer, RD_KAFKA_V_TOPIC(rf->conf->kafka.topic_changes),
                              RD_KAFKA_V_KEY(s->key, s->keylen), RD_KAFKA_V_VALUE(value, valuelen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_OPAQUE(pack_opaque(rf->pass_seq, idx)), RD_KAFKA_V_END);
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rf->producer, 50);
    }
    if (rerr) {
        rd_kafka_headers_destroy(hdrs);
        s->state = rf_sweep_permanent(rerr) ? RF_SWEPT_POISON : RF_SWEPT_FAILED;
        if (s->state == RF_SWEPT_POISON)
            WB_ERROR("re-publishing %s (version %" PRId64 ", %zu bytes): Kafka will never accept "
                     "it: %s; it stays dirty in the cache and is tried again in an hour",
                     s->key, s->version, s->valuelen, rd_kafka_err2str(rerr));
        else
            WB_WARN("re-publishing %s: %s", s->key, rd_kafka_err2str(rerr));
        return 0;
    }
    s->state = RF_SWEPT_PENDING;
    return 1;
}

/* The score a swept entry in state moves to after a pass at pass_us; 0:
 * it keeps its score (no answer yet: it may still be delivered). */
static int64_t next_score(const rf_t *rf, int state, int64_t pass_us)
{
    switch (state) {
    case RF_SWEPT_PENDING:
        return 0;
    case RF_SWEPT_FAILED: /* backed off: after the others */
        return pass_us + (int64_t)rf->conf->refresher.sweep_after_ms * 1000;
    case RF_SWEPT_POISON:
        return pass_us + RF_SWEEP_POISON_US;
    default: /* delivered, or never publishable as it is: not re-read every pass */
        return pass_us;
    }
}

/* Step 5: move the index score of every entry answered in this pass
 * (next_score): delivered and unpublishable ones to the pass time, failed
 * ones beyond it, poison an hour ahead. */
static wb_err_t bump(rf_t *rf, int64_t pass_us, char *errstr, size_t errstr_size)
{
    static const int states[] = {RF_SWEPT_DELIVERED, RF_SWEPT_FAILED, RF_SWEPT_POISON};
    wb_entry_key_t *keys = NULL;
    wb_err_t err = WB_OK;

    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) return err;
    if (!(keys = calloc(rf->nswept ? rf->nswept : 1, sizeof(*keys)))) {
        wb_set_err(errstr, errstr_size, "out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t k = 0; k < sizeof(states) / sizeof(states[0]) && err == WB_OK; k++) {
        int64_t score = next_score(rf, states[k], pass_us);
        size_t n = 0;
        for (size_t i = 0; i < rf->nswept; i++) {
            const rf_swept_t *s = &rf->swept[i];
            if (next_score(rf, s->state, pass_us) == score && s->state != RF_SWEPT_PENDING)
                keys[n++] = (wb_entry_key_t){s->key, s->keylen};
        }
        if (n > 0)
            err = wb_entry_dirty_bump(rf->redis, rf->dirty_index, score, keys, n, errstr,
                                      errstr_size);
    }
    free(keys);
    if (err != WB_OK) rf_redis_drop(rf);
    return err;
}

wb_err_t rf_sweep_pass(rf_t *rf, char *errstr, size_t errstr_size)
{
    const wb_config_t *conf = rf->conf;
    int64_t t0 = wb_time_mono_us(), now_us = 0;
    wb_entry_keys_t members = {0};
    size_t unindexed = 0, unknown = 0, queued = 0, delivered = 0, failed = 0, poison = 0;
    int64_t oldest_us = 0;
    wb_err_t err;

    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) goto redis_down;
    if ((err = lease(rf, errstr, errstr_size)) != WB_OK) goto redis_down;
    if (!rf->leader) return WB_OK;
    if (rf->producer && rd_kafka_fatal_error(rf->producer, NULL, 0)) {
        /* An idempotent producer that hit a fatal error accepts nothing
         * more: start a new one (the entries simply wait a pass). */
        WB_WARN("sweeper producer failed fatally; creating a new one");
        rf->pass_seq++;
        if (rf->changes_rkt) rd_kafka_topic_destroy(rf->changes_rkt);
        rf->changes_rkt = NULL;
        rd_kafka_destroy(rf->producer);
        rf->producer = NULL;
    }
    if (!rf->producer) {
        if ((err = rf_producer_open(rf, errstr, errstr_size)) != WB_OK) {
            rf_set_down(rf, RF_DEP_KAFKA, errstr);
            return err;
        }
    }
    /* Acknowledgements of an earlier pass still outstanding mean Kafka is
     * not taking messages: queueing the same entries again would only pile
     * up duplicates. */
    rd_kafka_poll(rf->producer, 0);
    if (rd_kafka_outq_len(rf->producer) > 0) {
        wb_set_err(errstr, errstr_size,
                   "%d re-published events of an earlier pass still unacknowledged",
                   rd_kafka_outq_len(rf->producer));
        rf_set_down(rf, RF_DEP_KAFKA, errstr);
        return WB_ERR_KAFKA;
    }
    if ((err = redis_time(rf, &now_us, errstr, errstr_size)) != WB_OK) goto redis_down;
    err = wb_entry_dirty_range(rf->redis, rf->dirty_index, conf->redis.dirty_shards,
                               now_us - (int64_t)conf->refresher.sweep_after_ms * 1000,
                               conf->refresher.sweep_max_per_pass, &members, errstr, errstr_size);
    if (err != WB_OK) {
        redis_failed(rf, err);
        goto redis_down;
    }

    rf->pass_seq++;
    swept_clear(rf);
    if (members.n > 0) {
        rf_swept_t *swept = realloc(rf->swept, members.n * sizeof(*swept));
        if (!swept) {
            wb_set_err(errstr, errstr_size, "out of memory");
            wb_entry_keys_clear(&members);
            return WB_ERR_NOMEM;
        }
        rf->swept = swept;
    }
    for (size_t lo = 0; lo < members.n; lo += RF_SWEEP_CHUNK) {
        size_t hi = lo + RF_SWEEP_CHUNK < members.n ? lo + RF_SWEEP_CHUNK : members.n;
        if ((err = check_chunk(rf, &members, lo, hi, &unindexed, errstr, errstr_size)) != WB_OK) {
            wb_entry_keys_clear(&members);
            goto redis_down;
        }
    }
    wb_entry_keys_clear(&members);
    rf_set_up(rf, RF_DEP_REDIS);

    for (size_t i = 0; i < rf->nswept; i++)
        queued += (size_t)publish(rf, i, &unknown);
    if (queued > 0) {
        int64_t deadline = wb_time_mono_ms() + RF_SWEEP_DELIVERY_MS;
        for (;;) {
            size_t open = 0;
            rd_kafka_poll(rf->producer, 50);
            for (size_t i = 0; i < rf->nswept; i++)
                open += rf->swept[i].state == RF_SWEPT_PENDING;
            if (open == 0 || wb_time_mono_ms() >= deadline) break;
            /* A stop request does not wait for a slow broker: whatever is
             * not acknowledged keeps its score and is sent again later. */
            if (wb_loop_stopping()) break;
        }
    }
    for (size_t i = 0; i < rf->nswept; i++) {
        const rf_swept_t *s = &rf->swept[i];
        if (s->state == RF_SWEPT_DELIVERED) {
            delivered++;
            if (oldest_us == 0 || s->write_us < oldest_us) oldest_us = s->write_us;
        } else if (s->state == RF_SWEPT_PENDING || s->state == RF_SWEPT_FAILED) {
            failed++;
        } else if (s->state == RF_SWEPT_POISON) {
            poison++;
        }
    }
    if (rf->nswept > 0 && (err = bump(rf, now_us, errstr, errstr_size)) != WB_OK) {
        /* They were delivered: counting them is right; without the bump they
         * are only sent once more. */
        WB_WARN("sweep: could not move the index scores: %s", errstr);
        rf_set_down(rf, RF_DEP_REDIS, errstr);
    }
    wb_counter_add(rf->m.swept, delivered);
    wb_counter_add(rf->m.sweep_failed, failed);
    wb_counter_add(rf->m.unindexed, unindexed);
    wb_counter_add(rf->m.unknown_entity, unknown);
    wb_counter_add(rf->m.sweep_poison, poison);
    wb_counter_add(rf->m.passes, 1);
    wb_gauge_set(rf->m.swept_oldest_age, oldest_us > 0 ? (double)(now_us - oldest_us) / 1e6 : 0.0);
    wb_histogram_observe(rf->m.pass_seconds, (double)(wb_time_mono_us() - t0) / 1e6);
    rf->t_swept += delivered;
    rf->t_unindexed += unindexed;
    if (delivered || failed || unindexed)
        WB_INFO("sweep: re-published %zu dirty entries (oldest written %.1f s ago), %zu not "
                "acknowledged, %zu unindexed (gone or clean)",
                delivered, oldest_us > 0 ? (double)(now_us - oldest_us) / 1e6 : 0.0, failed,
                unindexed);
    if (unknown)
        WB_WARN("sweep: %zu dirty entries match no configured entity; they cannot reach "
                "PostgreSQL until an entity with their prefix is configured",
                unknown);
    if (failed > 0) {
        wb_set_err(errstr, errstr_size, "kafka did not acknowledge %zu of %zu re-published events",
                   failed, queued);
        rf_set_down(rf, RF_DEP_KAFKA, errstr);
        return WB_ERR_KAFKA;
    }
    if (queued > 0) rf_set_up(rf, RF_DEP_KAFKA);
    return WB_OK;
redis_down:
    rf_set_down(rf, RF_DEP_REDIS, errstr);
    return err;
}

wb_err_t rf_sweep_gauges(rf_t *rf, char *errstr, size_t errstr_size)
{
    wb_entry_dirty_stats_t st;
    wb_err_t err;

    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) return err;
    err = wb_entry_dirty_stats(rf->redis, rf->dirty_index, rf->conf->redis.dirty_shards, &st,
                               errstr, errstr_size);
    if (err != WB_OK) {
        if (!wb_rc_failed(rf->redis))
            return WB_OK; /* an odd reply: the gauges just keep their values */
        rf_redis_drop(rf);
        return err;
    }
    double age = 0;
    if (st.has_oldest) {
        age = ((double)st.now_us - st.oldest_us) / 1e6;
        if (age < 0) age = 0;
    }
    wb_gauge_set(rf->m.dirty_entries, (double)st.count);
    wb_gauge_set(rf->m.dirty_oldest_age, age);
    return WB_OK;
}
