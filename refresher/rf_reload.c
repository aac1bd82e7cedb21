/* rf_reload.c — refresh-ahead: collapse requests, read rows per entity, one pipelined fill per key.
 *
 * What a reload does to the cache is decided by the `fill` script
 * (common/core/lua/fill.lua, invariant 8):
 *   absent entry, or clean and older than the row -> the row's value and
 *     version, clean, with the entity's TTL (reloads_total);
 *   clean at the row's version -> only the TTL is extended (ttl_extended_total);
 *   newer than the row -> untouched (skipped_newer_total);
 *   dirty -> untouched, not even its TTL: it is pinned until the flusher
 *     has written it (skipped_dirty_total);
 *   soft-deleted row -> a clean tombstone with the row's version, never the
 *     stale value (a newer or dirty entry is still left alone).
 * A key with NO row in PostgreSQL gets no fill at all (rows_missing_total):
 * a dirty entry must stay as it is, and a clean one is left to expire on
 * its remaining TTL rather than deleted or extended — it may have been
 * filled by a cache-aside loader from a source other than the table, and
 * without a row there is no version to decide with.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "rf_util.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_entry.h"
#include "wb_rand.h"
#include "wb_table.h"
#include "wb_ttl.h"
#include "wb_util.h"

#define RF_FILL_CHUNK 512 /* script calls per Redis pipeline */

/* A requested key's row, borrowed from a PGresult. */
typedef struct row_s {
    int found;
    wb_row_t row;
} row_t;

/* ------------------------------------------------------------------ intake */

static void record_offset(rf_batch_t *b, const rd_kafka_message_t *msg)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(b->offsets, topic, msg->partition);

    if (!tp) {
        tp = rd_kafka_topic_partition_list_add(b->offsets, topic, msg->partition);
        tp->offset = -1;
    }
    if (msg->offset + 1 > tp->offset) tp->offset = msg->offset + 1;
}

void rf_batch_add(rf_t *rf, const rd_kafka_message_t *msg)
{
    rf_batch_t *b = &rf->batch;
    wb_event_t ev;
    char errstr[256];
    const wb_entity_t *ent;

    if (b->nmsgs == 0) b->opened_ms = wb_time_mono_ms();
    b->nmsgs++;
    record_offset(b, msg);
    rf->t_requests++;
    wb_counter_add(rf->m.requests, 1);
    if (wb_event_refresh_from_message(msg, &ev, errstr, sizeof(errstr)) != WB_OK) {
        /* A refresh request is a hint, not data: log and move on. */
        wb_counter_add(rf->m.invalid, 1);
        WB_WARN("ignoring refresh request at %s [%" PRId32 "] @%" PRId64 ": %s",
                rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset, errstr);
        return;
    }
    ent = rf_entity_for_key(rf->conf, ev.entity, ev.entitylen, ev.key, ev.keylen);
    if (!ent) {
        wb_counter_add(rf->m.invalid, 1);
        WB_WARN("ignoring refresh request for \"%.*s\" (entity \"%.*s\"): no configured entity "
                "fits the key",
                (int)(ev.keylen > 200 ? 200 : ev.keylen), ev.key, (int)ev.entitylen, ev.entity);
        return;
    }
    if (!rf_collapse_admit(rf->collapse, ev.key, ev.keylen, wb_time_mono_ms(), b->seq)) {
        rf->t_collapsed++;
        wb_counter_add(rf->m.collapsed, 1);
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        rf_item_t *items = realloc(b->items, cap * sizeof(*items));
        if (!items) {
            WB_ERROR("out of memory growing the refresh batch; request for %.*s dropped",
                     (int)ev.keylen, ev.key);
            return;
        }
        b->items = items;
        b->cap = cap;
    }
    rf_item_t *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    if (!(it->key = malloc(ev.keylen + 1))) return;
    memcpy(it->key, ev.key, ev.keylen);
    it->key[ev.keylen] = '\0';
    it->keylen = ev.keylen;
    it->ent = ent;
    it->topic = rd_kafka_topic_name(msg->rkt);
    it->partition = msg->partition;
    b->n++;
}

int rf_batch_due(const rf_t *rf, int64_t now_ms)
{
    const rf_batch_t *b = &rf->batch;
    const wb_config_t *conf = rf->conf;

    if (b->nmsgs == 0) return 0;
    /* Collapsed requests cost nothing to keep, but their offsets should not
     * wait forever: a bounded count of them closes the batch too. */
    return b->n >= (size_t)conf->refresher.batch_max_keys ||
           b->nmsgs >= 16 * (size_t)conf->refresher.batch_max_keys ||
           now_ms - b->opened_ms >= conf->refresher.batch_max_wait_ms;
}

void rf_batch_discard(rf_t *rf)
{
    rf_batch_t *b = &rf->batch;

    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].key);
    b->n = 0;
    b->nmsgs = 0;
    if (b->offsets) {
        rd_kafka_topic_partition_list_destroy(b->offsets);
        b->offsets = rd_kafka_topic_partition_list_new(8);
    }
    b->seq++;
}

void rf_batch_drop_partitions(rf_t *rf, const rd_kafka_topic_partition_list_t *parts)
{
    rf_batch_t *b = &rf->batch;
    size_t j = 0, dropped = 0;

    for (size_t i = 0; i < b->n; i++) {
        if (rd_kafka_topic_partition_list_find(parts, b->items[i].topic, b->items[i].partition)) {
            free(b->items[i].key);
            dropped++;
            continue;
        }
        b->items[j++] = b->items[i];
    }
    b->n = j;
    for (int i = 0; i < parts->cnt; i++)
        rd_kafka_topic_partition_list_del(b->offsets, parts->elems[i].topic,
                                          parts->elems[i].partition);
    if (b->offsets->cnt == 0) {
        b->n = 0;
        b->nmsgs = 0;
    }
    if (dropped) WB_INFO("dropped %zu pending refreshes of revoked partitions", dropped);
}

/* ------------------------------------------------------------------ reload */

static int cmp_item_ent(const void *a, const void *b)
{
    const rf_item_t *x = a, *y = b;
    return x->ent == y->ent ? 0 : (x->ent < y->ent ? -1 : 1);
}

/* Reads the rows of items[lo, hi) (one entity) into rows[lo, hi); *res
 * keeps the values alive. */
static wb_err_t select_rows(rf_t *rf, rf_item_t *items, size_t lo, size_t hi, row_t *rows,
                            PGresult **res, char *errstr, size_t errstr_size)
{
    const wb_entity_t *ent = items[lo].ent;
    size_t n = hi - lo;
    const char **ids = malloc(n * sizeof(*ids));
    size_t *lens = malloc(n * sizeof(*lens));
    rf_item_t *by_id = NULL;
    wb_err_t err = WB_ERR_NOMEM;

    *res = NULL;
    if (!ids || !lens) {
        wb_set_err(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = lo; i < hi; i++) {
        size_t off = wb_entity_id_offset(ent, items[i].key, items[i].keylen);
        ids[i - lo] = items[i].key + off;
        lens[i - lo] = items[i].keylen - off;
        HASH_ADD_KEYPTR(hh, by_id, items[i].key + off, items[i].keylen - off, &items[i]);
    }
    wb_table_keys_t req = {ent, ids, lens, n};
    if ((err = wb_table_select(rf->pg, &req, res, errstr, errstr_size)) != WB_OK) goto out;
    for (int r = 0; r < PQntuples(*res); r++) {
        rf_item_t *it = NULL;
        wb_row_t row;

        if ((err = wb_table_row_decode(*res, r, ent, &row, errstr, errstr_size)) != WB_OK) goto out;
        HASH_FIND(hh, by_id, row.key, row.keylen, it);
        if (!it) continue;
        rows[it - items].found = 1;
        rows[it - items].row = row;
    }
    err = WB_OK;
out:
    HASH_CLEAR(hh, by_id);
    free(ids);
    free(lens);
    return err;
}

/* One pipelined fill per found row. */
static wb_err_t fill_rows(rf_t *rf, rf_item_t *items, const row_t *rows, size_t n, char *errstr,
                          size_t errstr_size)
{
    uint64_t count[6] = {0};
    size_t done = 0;
    wb_err_t err;

    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) return err;
    while (done < n) {
        wb_entry_fill_req_t req[RF_FILL_CHUNK];
        wb_entry_fill_res_t res[RF_FILL_CHUNK];
        size_t idx[RF_FILL_CHUNK], nc = 0;

        for (; done < n && nc < RF_FILL_CHUNK; done++) {
            const wb_row_t *row = &rows[done].row;
            const rf_item_t *it = &items[done];
            if (!rows[done].found) continue;
            int64_t ttl = wb_ttl_fill(rf->conf, it->ent, wb_rand_next(&rf->rng));
            /* A live row with a NULL value (written by hand) reads as empty. */
            const char *value = row->value ? row->value : "";
            req[nc] = (wb_entry_fill_req_t){.key = it->key,
                                            .keylen = it->keylen,
                                            .value = row->deleted ? NULL : value,
                                            .len = row->deleted ? 0 : row->valuelen,
                                            .version = row->version,
                                            .ttl_ms = ttl,
                                            .is_deleted = row->deleted,
                                            .entity = it->ent->name};
            idx[nc++] = done;
        }
        if (nc == 0) break;
        err = wb_entry_fill_many(rf->redis, req, nc, res, errstr, errstr_size);
        if (err != WB_OK) {
            rf_redis_drop(rf);
            return err;
        }
        for (size_t i = 0; i < nc; i++) {
            if (res[i].err == WB_OK) {
                count[res[i].code]++;
            } else {
                count[0]++;
                WB_WARN("fill of %s: %s", items[idx[i]].key, res[i].error);
            }
        }
    }
    wb_counter_add(rf->m.fill_errors, count[0]);
    wb_counter_add(rf->m.reloaded, count[WB_ENTRY_FILL_CREATED] + count[WB_ENTRY_FILL_REPLACED]);
    wb_counter_add(rf->m.extended, count[WB_ENTRY_FILL_EXTENDED]);
    wb_counter_add(rf->m.skipped_newer, count[WB_ENTRY_FILL_SKIPPED_NEWER]);
    wb_counter_add(rf->m.skipped_dirty, count[WB_ENTRY_FILL_SKIPPED_DIRTY]);
    rf->t_reloaded += count[WB_ENTRY_FILL_CREATED] + count[WB_ENTRY_FILL_REPLACED];
    rf->t_extended += count[WB_ENTRY_FILL_EXTENDED];
    rf->t_newer += count[WB_ENTRY_FILL_SKIPPED_NEWER];
    rf->t_dirty += count[WB_ENTRY_FILL_SKIPPED_DIRTY];
    return WB_OK;
}

static void commit_offsets(rf_t *rf)
{
    rf_batch_t *b = &rf->batch;

    if (b->offsets->cnt == 0) return;
    rd_kafka_resp_err_t rerr = rd_kafka_commit(rf->consumer, b->offsets, 0);
    if (rerr) {
        /* The fills are done; a failed commit only means these requests
         * come again, and a repeated fill is harmless. */
        wb_counter_add(rf->m.commit_failures, 1);
        WB_WARN("offset commit failed (requests will be re-read): %s", rd_kafka_err2str(rerr));
    } else {
        rf_set_up(rf, RF_DEP_KAFKA);
    }
}

wb_err_t rf_batch_flush(rf_t *rf, char *errstr, size_t errstr_size)
{
    rf_batch_t *b = &rf->batch;
    int64_t t0 = wb_time_mono_us();
    PGresult **res = NULL;
    row_t *rows = NULL;
    size_t ngroups = 0, missing = 0;
    wb_err_t err = WB_OK;

    if (b->nmsgs == 0) return WB_OK;
    if (b->n > 0) {
        err = WB_ERR_NOMEM;
        rows = calloc(b->n, sizeof(*rows));
        res = calloc(b->n, sizeof(*res));
        if (!rows || !res) {
            wb_set_err(errstr, errstr_size, "out of memory");
            goto out;
        }
        /* Grouping by entity gives one query per table; the order of the
         * fills does not matter (each is its own version check). */
        qsort(b->items, b->n, sizeof(*b->items), cmp_item_ent);
        if ((err = rf_pg_ensure(rf, errstr, errstr_size)) != WB_OK) goto pg_down;
        for (size_t lo = 0; lo < b->n;) {
            size_t hi = lo + 1;
            while (hi < b->n && b->items[hi].ent == b->items[lo].ent)
                hi++;
            err = select_rows(rf, b->items, lo, hi, rows, &res[ngroups++], errstr, errstr_size);
            if (err != WB_OK) goto pg_down;
            lo = hi;
        }
        rf_set_up(rf, RF_DEP_PG);
        for (size_t i = 0; i < b->n; i++)
            missing += !rows[i].found;
        err = fill_rows(rf, b->items, rows, b->n, errstr, errstr_size);
        if (err != WB_OK) {
            rf_set_down(rf, RF_DEP_REDIS, errstr);
            goto out;
        }
        rf_set_up(rf, RF_DEP_REDIS);
        wb_counter_add(rf->m.missing, missing);
        rf->t_missing += missing;
    }
    commit_offsets(rf);
    double secs = (double)(wb_time_mono_us() - t0) / 1e6;
    wb_histogram_observe(rf->m.batch_seconds, secs);
    wb_counter_add(rf->m.batches, 1);
    WB_DEBUG("refresh batch: %zu requests, %zu keys, %zu without row, %.1f ms", b->nmsgs, b->n,
             missing, secs * 1e3);
    rf_batch_discard(rf);
    err = WB_OK;
    goto out;
pg_down:
    if (err == WB_ERR_CONFIG) {
        /* A table name that cannot be quoted: these requests can never be
         * served; the config loader should have refused it. */
        WB_ERROR("%s", errstr);
    }
    rf_set_down(rf, RF_DEP_PG, errstr);
    err = WB_ERR_PG;
out:
    for (size_t i = 0; i < ngroups; i++)
        PQclear(res[i]);
    free(res);
    free(rows);
    return err;
}
