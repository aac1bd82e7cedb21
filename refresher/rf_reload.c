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
#include "rf_request.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_entry.h"
#include "wb_log.h"
#include "wb_pg.h"
#include "wb_rand.h"
#include "wb_table.h"
#include "wb_ttl.h"
#include "wb_util.h"

#define RF_FILL_CHUNK 512 /* script calls per Redis pipeline */

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
    rf_request_t req;
    char errstr[256];

    if (b->nmsgs == 0) b->opened_ms = wb_time_mono_ms();
    b->nmsgs++;
    record_offset(b, msg);
    rf->t_requests++;
    wb_counter_add(rf->m.requests, 1);
    if (rf_request_from_message(rf->conf, msg, &req, errstr, sizeof(errstr)) != WB_OK) {
        /* A refresh request is a hint, not data: anyone who can produce to
         * the topic sends them, so one that cannot be served is dropped
         * here rather than fail the query of a whole batch. */
        wb_counter_add(rf->m.invalid, 1);
        WB_WARN("ignoring refresh request at %s [%" PRId32 "] @%" PRId64 ": %s",
                rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset, errstr);
        return;
    }
    if (!rf_collapse_admit(rf->collapse, req.key, req.keylen, wb_time_mono_ms(), b->seq)) {
        rf->t_collapsed++;
        wb_counter_add(rf->m.collapsed, 1);
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        rf_item_t *items = realloc(b->items, cap * sizeof(*items));
        if (!items) {
            WB_ERROR("out of memory growing the refresh batch; request for %.*s dropped",
                     (int)req.keylen, req.key);
            return;
        }
        b->items = items;
        b->cap = cap;
    }
    rf_item_t *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    if (!(it->key = malloc(req.keylen + 1))) return;
    memcpy(it->key, req.key, req.keylen);
    it->key[req.keylen] = '\0';
    it->keylen = req.keylen;
    it->ent = req.ent;
    it->topic = rd_kafka_topic_name(msg->rkt);
    it->partition = msg->partition;
    b->n++;
    b->bytes += (int64_t)req.keylen;
}

int rf_batch_due(const rf_t *rf, int64_t now_ms)
{
    const rf_batch_t *b = &rf->batch;
    const wb_config_t *conf = rf->conf;

    if (b->nmsgs == 0) return 0;
    /* Collapsed requests cost nothing to keep, but their offsets should not
     * wait forever: a bounded count of them closes the batch too. */
    return b->n >= (size_t)conf->refresher.batch_max_keys ||
           b->bytes >= conf->refresher.batch_max_bytes ||
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
    b->bytes = 0;
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

    b->bytes = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (rd_kafka_topic_partition_list_find(parts, b->items[i].topic, b->items[i].partition)) {
            free(b->items[i].key);
            dropped++;
            continue;
        }
        b->bytes += (int64_t)b->items[i].keylen;
        b->items[j++] = b->items[i];
    }
    b->n = j;
    for (int i = 0; i < parts->cnt; i++)
        rd_kafka_topic_partition_list_del(b->offsets, parts->elems[i].topic,
                                          parts->elems[i].partition);
    if (b->offsets->cnt == 0) {
        b->n = 0;
        b->nmsgs = 0;
        b->bytes = 0;
    }
    if (dropped) WB_INFO("dropped %zu pending refreshes of revoked partitions", dropped);
}

/* ------------------------------------------------------------------ reload */

static int cmp_item_ent(const void *a, const void *b)
{
    const rf_item_t *x = a, *y = b;
    return x->ent == y->ent ? 0 : (x->ent < y->ent ? -1 : 1);
}

/* One reload: rows are read streamed (one at a time) and filled in chunks
 * of at most RF_FILL_CHUNK rows and refresher.batch.max_bytes bytes, so
 * what is held is one chunk, not every row of the batch. */
typedef struct reload_s {
    rf_t *rf;
    wb_entry_fill_req_t *req; /* the chunk: RF_FILL_CHUNK of each */
    PGresult **res;           /* the rows' results (values borrowed by req) */
    wb_entry_fill_res_t *out;
    size_t n;
    int64_t bytes;
    size_t missing; /* requested keys without a row */
    uint64_t count[6];
} reload_t;

static void chunk_clear(reload_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        PQclear(r->res[i]);
    r->n = 0;
    r->bytes = 0;
}

/* One pipelined fill per row of the chunk; the chunk is empty after. */
static wb_err_t chunk_fill(reload_t *r, char *errstr, size_t errstr_size)
{
    rf_t *rf = r->rf;
    wb_err_t err = WB_OK;

    if (r->n == 0) return WB_OK;
    if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) goto out;
    err = wb_entry_fill_many(rf->redis, r->req, r->n, r->out, errstr, errstr_size);
    if (err != WB_OK) {
        rf_redis_drop(rf);
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->out[i].err == WB_OK) {
            r->count[r->out[i].code]++;
        } else {
            r->count[0]++;
            WB_WARN("fill of %.*s: %s", (int)r->req[i].keylen, r->req[i].key, r->out[i].error);
        }
    }
out:
    chunk_clear(r);
    return err;
}

/* Whether a failed read is the ids' fault, not the server's: a data
 * exception or a program limit on a healthy connection (the checks on
 * arrival should leave none). */
static int is_content_error(const rf_t *rf, const char *sqlstate)
{
    if (!rf->pg || PQstatus(rf->pg) != CONNECTION_OK || !sqlstate[0] ||
        wb_pg_sqlstate_is_transient(sqlstate))
        return 0;
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "54", 2) == 0;
}

/* Reads the rows of items[lo, hi) (one entity), streamed, and fills them.
 * A read that fails for its content is split in halves, and a single key
 * that fails on its own is dropped (a refresh request is only a hint):
 * never a batch retried forever. Returns WB_OK, WB_ERR_PG (PostgreSQL
 * outage) or WB_ERR_REDIS (Redis outage); filled rows may be filled again
 * by the retry, which the version check makes harmless. */
static wb_err_t reload_range(reload_t *r, rf_item_t *items, size_t lo, size_t hi, char *errstr,
                             size_t errstr_size)
{
    rf_t *rf = r->rf;
    const wb_entity_t *ent = items[lo].ent;
    size_t n = hi - lo, found = 0;
    const char **ids = malloc(n * sizeof(*ids));
    size_t *lens = malloc(n * sizeof(*lens));
    rf_item_t *by_id = NULL;
    wb_table_result_t st = {0};
    int content = 0;
    wb_err_t err = WB_ERR_NOMEM;

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
    wb_table_keys_t keys = {ent, ids, lens, n};
    if ((err = wb_table_select_send(rf->pg, &keys, errstr, errstr_size)) != WB_OK) goto out;
    for (;;) {
        PGresult *res = NULL;
        rf_item_t *it = NULL;
        wb_row_t row;

        err = wb_table_select_next(rf->pg, ent, &res, &st, errstr, errstr_size);
        if (err != WB_OK) {
            content = is_content_error(rf, st.sqlstate);
            break;
        }
        if (!res) break;
        if ((err = wb_table_row_decode(res, 0, ent, &row, errstr, errstr_size)) != WB_OK) {
            PQclear(res);
            wb_table_select_drain(rf->pg);
            break;
        }
        HASH_FIND(hh, by_id, row.key, row.keylen, it);
        if (!it) {
            PQclear(res);
            continue;
        }
        found++;
        /* A live row with a NULL value (written by hand) reads as empty. */
        const char *value = row.value ? row.value : "";
        r->res[r->n] = res;
        r->req[r->n++] =
            (wb_entry_fill_req_t){.key = it->key,
                                  .keylen = it->keylen,
                                  .value = row.deleted ? NULL : value,
                                  .len = row.deleted ? 0 : row.valuelen,
                                  .version = row.version,
                                  .ttl_ms = wb_ttl_fill(rf->conf, it->ent, wb_rand_next(&rf->rng)),
                                  .is_deleted = row.deleted,
                                  .entity = it->ent->name};
        r->bytes += (int64_t)(it->keylen + row.valuelen);
        if (r->n == RF_FILL_CHUNK || r->bytes >= rf->conf->refresher.batch_max_bytes) {
            if ((err = chunk_fill(r, errstr, errstr_size)) != WB_OK) {
                wb_table_select_drain(rf->pg);
                goto out;
            }
        }
    }
    if (err == WB_OK) {
        r->missing += n - found;
        err = chunk_fill(r, errstr, errstr_size);
        goto out;
    }
    chunk_clear(r); /* a failed read is retried whole, or split */
    if (!content) goto out;
    HASH_CLEAR(hh, by_id);
    if (n == 1) {
        char shown[256];
        wb_escape(shown, sizeof(shown), items[lo].key, items[lo].keylen, WB_ESC_HIGH);
        wb_counter_add(rf->m.invalid, 1);
        WB_WARN("dropping the refresh of %s: PostgreSQL refuses the id (%s)", shown, errstr);
        err = WB_OK;
        goto out;
    }
    WB_WARN("reload of %zu keys of %s failed for its content (%s); splitting it", n, ent->table,
            errstr);
    err = reload_range(r, items, lo, lo + n / 2, errstr, errstr_size);
    if (err == WB_OK) err = reload_range(r, items, lo + n / 2, hi, errstr, errstr_size);
out:
    HASH_CLEAR(hh, by_id);
    free(ids);
    free(lens);
    return err;
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
    reload_t r = {.rf = rf};
    wb_err_t err = WB_OK;

    if (b->nmsgs == 0) return WB_OK;
    if (b->n > 0) {
        r.req = malloc(RF_FILL_CHUNK * sizeof(*r.req));
        r.res = malloc(RF_FILL_CHUNK * sizeof(*r.res));
        r.out = malloc(RF_FILL_CHUNK * sizeof(*r.out));
        if (!r.req || !r.res || !r.out) {
            wb_set_err(errstr, errstr_size, "out of memory");
            err = WB_ERR_NOMEM;
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
            err = reload_range(&r, b->items, lo, hi, errstr, errstr_size);
            if (err == WB_ERR_REDIS) {
                rf_set_down(rf, RF_DEP_REDIS, errstr);
                goto out;
            }
            if (err != WB_OK) goto pg_down;
            lo = hi;
        }
        rf_set_up(rf, RF_DEP_PG);
        /* Also when no row was found: Redis is checked on every batch. */
        if ((err = rf_redis_ensure(rf, errstr, errstr_size)) != WB_OK) {
            rf_set_down(rf, RF_DEP_REDIS, errstr);
            goto out;
        }
        rf_set_up(rf, RF_DEP_REDIS);
        wb_counter_add(rf->m.fill_errors, r.count[0]);
        wb_counter_add(rf->m.reloaded,
                       r.count[WB_ENTRY_FILL_CREATED] + r.count[WB_ENTRY_FILL_REPLACED]);
        wb_counter_add(rf->m.extended, r.count[WB_ENTRY_FILL_EXTENDED]);
        wb_counter_add(rf->m.skipped_newer, r.count[WB_ENTRY_FILL_SKIPPED_NEWER]);
        wb_counter_add(rf->m.skipped_dirty, r.count[WB_ENTRY_FILL_SKIPPED_DIRTY]);
        wb_counter_add(rf->m.missing, r.missing);
        rf->t_reloaded += r.count[WB_ENTRY_FILL_CREATED] + r.count[WB_ENTRY_FILL_REPLACED];
        rf->t_extended += r.count[WB_ENTRY_FILL_EXTENDED];
        rf->t_newer += r.count[WB_ENTRY_FILL_SKIPPED_NEWER];
        rf->t_dirty += r.count[WB_ENTRY_FILL_SKIPPED_DIRTY];
        rf->t_missing += r.missing;
    }
    commit_offsets(rf);
    double secs = (double)(wb_time_mono_us() - t0) / 1e6;
    wb_histogram_observe(rf->m.batch_seconds, secs);
    wb_counter_add(rf->m.batches, 1);
    WB_DEBUG("refresh batch: %zu requests, %zu keys, %zu without row, %.1f ms", b->nmsgs, b->n,
             r.missing, secs * 1e3);
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
    free(r.req);
    free(r.res);
    free(r.out);
    return err;
}
