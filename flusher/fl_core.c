/* fl_core.c — the batch path shared by the daemon and replay: decode, coalesce,
 * version-guarded upsert in one transaction, dead letters, offsets, clean-marking. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flusher.h"
#include "wb_coalesce.h"
#include "wb_daemon.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_schema.h"
#include "wb_upsert.h"
#include "wb_util.h"

#define FL_DLQ_TIMEOUT_MS 10000
#define FL_PURGE_LIMIT    10000 /* tombstones per DELETE, so one purge never holds locks long */

#define FL_SEEK_TIMEOUT_MS 10000
/* Rows whose parameters would come near PostgreSQL's 1 GiB limit on one
 * protocol message are split before sending: a Bind message above it is
 * a protocol violation (08P01) that also ends the connection. */
#define FL_STMT_MAX_BYTES (((size_t)1 << 30) - ((size_t)1 << 20))

static wb_err_t writer_start(fl_t *fl);
static void writer_stop(fl_t *fl);
static void batch_free(fl_batch_t *b);

/* ------------------------------------------------------------------ setup */

static const double batch_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10};

wb_err_t fl_init(fl_t *fl, const wb_config_t *conf, const char *progname)
{
    fl_metrics_t *m = &fl->m;

    memset(fl, 0, sizeof(*fl));
    fl->conf = conf;
    fl->progname = progname;
    fl->commit_offsets = 1;
    wb_backoff_init(&fl->backoff, conf->flusher.retry_initial_ms, conf->flusher.retry_max_ms,
                    wb_random_seed());
    if (!(m->reg = wb_metrics_new())) return WB_ERR_NOMEM;
#define COUNTER(field, name, help)                                                                 \
    m->field = wb_metrics_counter_with(wb_metrics_counter(m->reg, name, help, NULL), NULL)
    COUNTER(consumed, "wb_flusher_events_consumed_total", "Change events consumed from Kafka.");
    COUNTER(coalesced, "wb_flusher_events_coalesced_total",
            "Events dropped because a newer version of the key was in the same batch.");
    COUNTER(upserted, "wb_flusher_rows_upserted_total",
            "Rows inserted or updated in PostgreSQL (deletes included).");
    COUNTER(stale, "wb_flusher_rows_stale_total",
            "Rows not written because PostgreSQL already held an equal or newer version.");
    COUNTER(deletes, "wb_flusher_deletes_total", "Soft deletes sent to PostgreSQL.");
    COUNTER(batches, "wb_flusher_batches_total", "Batches committed.");
    COUNTER(dead_letters, "wb_flusher_dead_letters_total", "Events sent to the dead-letter topic.");
    COUNTER(retries, "wb_flusher_retries_total",
            "Batch attempts that failed for an outage and were retried.");
    COUNTER(cleaned, "wb_flusher_clean_marked_total", "Clean-mark script calls answered by Redis.");
    COUNTER(clean_dropped, "wb_flusher_clean_dropped_total",
            "Clean-marks dropped because the backlog was full (entries stay dirty).");
    COUNTER(purged, "wb_flusher_tombstones_purged_total", "Tombstone rows purged.");
    COUNTER(commit_failures, "wb_flusher_commit_failures_total",
            "Offset commits that failed after PostgreSQL committed (events are re-delivered).");
    COUNTER(forgotten, "wb_flusher_poison_forgotten_total",
            "Dirty cache entries of dead-lettered events dropped (reads fall back to PostgreSQL).");
#undef COUNTER
    m->batch_seconds = wb_metrics_histogram_with(
        wb_metrics_histogram(m->reg, "wb_flusher_batch_duration_seconds",
                             "Time to apply and commit one batch.", batch_buckets,
                             sizeof(batch_buckets) / sizeof(batch_buckets[0]), NULL),
        NULL);
    m->clean_pending =
        wb_metrics_gauge_with(wb_metrics_gauge(m->reg, "wb_flusher_clean_pending",
                                               "Clean-marks waiting for Redis.", NULL),
                              NULL);
    m->ready = wb_metrics_gauge_with(
        wb_metrics_gauge(m->reg, "wb_flusher_ready", "1 when consuming, 0 during an outage.", NULL),
        NULL);
    m->lag_msgs =
        wb_metrics_gauge(m->reg, "wb_flusher_lag_messages",
                         "Messages after the last committed offset.", "topic", "partition", NULL);
    m->lag_secs = wb_metrics_gauge(m->reg, "wb_flusher_lag_seconds",
                                   "Age of the last committed event while lag_messages > 0.",
                                   "topic", "partition", NULL);
    if (writer_start(fl) != WB_OK || fl_cleaner_start(fl) != WB_OK) {
        fl_fini(fl);
        return WB_ERR_NOMEM;
    }
    return WB_OK;
}

void fl_fini(fl_t *fl)
{
    fl_batch_discard(fl);
    writer_stop(fl);
    batch_free(&fl->batch);
    batch_free(&fl->inflight);
    fl_cleaner_stop(fl);
    for (size_t i = 0; i < fl->nparts; i++)
        free(fl->parts[i].topic);
    free(fl->parts);
    if (fl->dlq) {
        rd_kafka_flush(fl->dlq, 5000);
        rd_kafka_destroy(fl->dlq);
    }
    if (fl->pg) PQfinish(fl->pg);
    /* The HTTP server renders the registry: stop it first. */
    wb_http_stop(fl->http);
    wb_metrics_destroy(fl->m.reg);
    memset(fl, 0, sizeof(*fl));
}

/* Whether a failed statement says the rows themselves are bad (poison).
 * Only the event's own content may: data exceptions (invalid JSON, bad
 * UTF-8, NUL in text), integrity violations (a CHECK the operator added),
 * program limits (a document nested too deep). Everything else, including
 * errors wb_pg_sqlstate_is_transient calls non-transient such as a syntax
 * error, is retried as an outage: dead-lettering a batch for a server or
 * schema problem would skip data. */
static int is_content_error(const PGconn *pg, const char *sqlstate)
{
    if (!pg || PQstatus(pg) != CONNECTION_OK || !sqlstate || wb_pg_sqlstate_is_transient(sqlstate))
        return 0;
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 ||
           strncmp(sqlstate, "54", 2) == 0;
}

wb_err_t fl_pg_ensure(fl_t *fl, char *errstr, size_t errstr_size)
{
    wb_err_t err;

    if (fl->pg && PQstatus(fl->pg) == CONNECTION_OK && PQtransactionStatus(fl->pg) == PQTRANS_IDLE)
        return WB_OK;
    if (fl->pg) {
        PQfinish(fl->pg);
        fl->pg = NULL;
    }
    err = wb_pg_connect(fl->conf, &fl->pg, errstr, errstr_size);
    if (err != WB_OK) return err == WB_ERR_CONFIG ? WB_ERR_CONFIG : WB_ERR_PG;
    /* On every new connection: a restored database may lack the tables. */
    err = wb_schema_ensure(fl->pg, fl->conf, errstr, errstr_size);
    if (err != WB_OK) {
        PQfinish(fl->pg);
        fl->pg = NULL;
    }
    return err;
}

static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    fl_t *fl = opaque;
    (void)rk;
    if (msg->err) {
        fl->dlq_failed++;
        WB_WARN("dead-letter delivery failed: %s", rd_kafka_err2str(msg->err));
    }
}

wb_err_t fl_dlq_open(fl_t *fl, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kc = wb_daemon_kafka_conf(fl->conf, "flusher", 0, errstr, errstr_size);

    if (!kc) return WB_ERR_KAFKA;
    rd_kafka_conf_set_dr_msg_cb(kc, dlq_dr_cb);
    rd_kafka_conf_set_opaque(kc, fl);
    if (wb_kafka_producer_new(kc, 1, &fl->dlq, errstr, errstr_size) != WB_OK) {
        rd_kafka_conf_destroy(kc);
        return WB_ERR_KAFKA;
    }
    return WB_OK;
}

/* ------------------------------------------------------------------ batch */

static void poison(fl_item_t *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void poison(fl_item_t *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(it->reason);
    if (vasprintf(&it->reason, fmt, ap) < 0) it->reason = NULL;
    va_end(ap);
    it->state = FL_ITEM_POISON;
}

/* Decodes one message and finds its entity; an undecodable one is poison. */
static void decode_one(const fl_t *fl, const rd_kafka_message_t *msg, fl_item_t *it)
{
    char errstr[256], name[WB_EVENT_ENTITY_MAX + 1];

    memset(it, 0, sizeof(*it));
    if (wb_event_from_message(msg, &it->ev, errstr, sizeof(errstr)) != WB_OK) {
        poison(it, "undecodable: %s", errstr);
        return;
    }
    if (!wb_event_entity_cstr(&it->ev, name, sizeof(name)) ||
        !(it->ent = wb_config_entity(fl->conf, name))) {
        poison(it, "unknown entity \"%.*s\"", (int)it->ev.entitylen, it->ev.entity);
        return;
    }
    size_t plen = strlen(it->ent->prefix);
    if (it->ev.keylen <= plen || memcmp(it->ev.key, it->ent->prefix, plen) != 0) {
        poison(it, "key does not start with the prefix \"%s\" of entity %s", it->ent->prefix,
               it->ent->name);
        return;
    }
    if (fl->entity_filter && strcmp(fl->entity_filter, it->ent->name) != 0) {
        it->state = FL_ITEM_SKIP;
        return;
    }
    it->state = FL_ITEM_GOOD;
}

static void items_free(fl_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].reason);
        b->items[i].reason = NULL;
    }
}

/* Back to the state of arrival, after an apply attempt that failed (or
 * before one that follows new arrivals): the whole batch is applied again,
 * which the version guard makes harmless. */
static int dedup_grow(fl_batch_t *b);

static void batch_redecode(const fl_t *fl, fl_batch_t *b)
{
    items_free(b);
    for (size_t i = 0; i < b->n; i++)
        decode_one(fl, b->msgs[i], &b->items[i]);
    b->redecode = 0;
    b->dedup_ok = dedup_grow(b) == 0;
}

static void batch_reset_counts(fl_batch_t *b)
{
    b->nwinners = 0;
    b->upserted = b->stale = b->deletes = b->coalesced = b->skipped = b->dead = 0;
}

static size_t key_hash(const fl_item_t *it)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)it->ent;
    for (size_t i = 0; i < it->ev.keylen; i++)
        h = (h ^ (unsigned char)it->ev.key[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

/* Records item i (GOOD) as its key's newest so far: the highest version,
 * and between equal versions the later one, as wb_coalesce picks. */
static void dedup_add(fl_batch_t *b, size_t i)
{
    const fl_item_t *it = &b->items[i];
    size_t mask = b->nslots - 1;

    for (size_t s = key_hash(it) & mask;; s = (s + 1) & mask) {
        if (b->slots[s] == 0) {
            b->slots[s] = (uint32_t)i + 1;
            return;
        }
        const fl_item_t *o = &b->items[b->slots[s] - 1];
        if (o->ent == it->ent && o->ev.keylen == it->ev.keylen &&
            memcmp(o->ev.key, it->ev.key, it->ev.keylen) == 0) {
            if (it->ev.version >= o->ev.version) b->slots[s] = (uint32_t)i + 1;
            return;
        }
    }
}

/* Sizes the table for b->cap items (load <= 1/2) and refills it. Returns
 * -1 out of memory (the batch then goes without: dedup_ok 0). */
static int dedup_grow(fl_batch_t *b)
{
    size_t want = 16;
    while (want < 2 * b->cap)
        want *= 2;
    if (want != b->nslots) {
        uint32_t *slots = realloc(b->slots, want * sizeof(*slots));
        if (!slots) return -1;
        b->slots = slots;
        b->nslots = want;
    }
    memset(b->slots, 0, b->nslots * sizeof(*b->slots));
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == FL_ITEM_GOOD) dedup_add(b, i);
    return 0;
}

int fl_batch_add(fl_t *fl, rd_kafka_message_t *msg)
{
    fl_batch_t *b = &fl->batch;

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        rd_kafka_message_t **msgs = realloc(b->msgs, cap * sizeof(*msgs));
        fl_item_t *items = msgs ? realloc(b->items, cap * sizeof(*items)) : NULL;
        size_t *winners = items ? realloc(b->winners, cap * sizeof(*winners)) : NULL;
        if (msgs) b->msgs = msgs;
        if (items) b->items = items;
        if (winners) b->winners = winners;
        if (!winners) {
            /* Dropping it is not enough: the next message of its partition
             * would be batched and committed past it. Rewind the partition
             * to it, which also discards what was fetched after it. */
            rd_kafka_resp_err_t rerr =
                rd_kafka_seek(msg->rkt, msg->partition, msg->offset, FL_SEEK_TIMEOUT_MS);

            if (rerr) {
                WB_ERROR("out of memory growing the batch, and cannot rewind %s [%" PRId32
                         "] to %" PRId64 " (%s): aborting rather than skipping it",
                         rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
                         rd_kafka_err2str(rerr));
                abort();
            }
            WB_ERROR("out of memory growing the batch; %s [%" PRId32 "] rewound to %" PRId64,
                     rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset);
            rd_kafka_message_destroy(msg);
            return -1;
        }
        b->cap = cap;
        b->dedup_ok = b->dedup_ok && dedup_grow(b) == 0;
    }
    if (b->n == 0) {
        b->opened_ms = wb_time_mono_ms();
        b->dedup_ok = dedup_grow(b) == 0; /* an empty table for the new batch */
    }
    /* A message arriving while the batch waits (partitions paused during an
     * outage) joins it; the batch is then applied again from the start. */
    if (b->pg_done || b->dlq_done) b->redecode = 1;
    b->pg_done = b->dlq_done = 0;
    b->msgs[b->n] = msg;
    decode_one(fl, msg, &b->items[b->n]);
    if (b->dedup_ok && b->items[b->n].state == FL_ITEM_GOOD) dedup_add(b, b->n);
    b->n++;
    b->bytes += (int64_t)(msg->key_len + msg->len);
    fl->t_consumed++;
    wb_counter_add(fl->m.consumed, 1);
    return 0;
}

int fl_batch_due(const fl_t *fl, int64_t now_ms)
{
    const fl_batch_t *b = &fl->batch;
    return b->n > 0 &&
           (fl_batch_full(fl) || now_ms - b->opened_ms >= fl->conf->flusher.batch_max_wait_ms);
}

ssize_t fl_batch_take(fl_t *fl, rd_kafka_queue_t *cq, int timeout_ms, int64_t *nudged_ms,
                      rd_kafka_message_t **msgs)
{
    size_t max = (size_t)fl->conf->flusher.batch_max_events;
    size_t room = max > fl->batch.n ? max - fl->batch.n : 1;
    if (room > FL_TAKE_MAX) room = FL_TAKE_MAX;
    /* What is there, without waiting; if nothing, wait for one message
     * only (a wait for `room` would hold the first one back). */
    ssize_t n = rd_kafka_consume_batch_queue(cq, 0, msgs, room);
    if (n == 0 && timeout_ms > 0) {
        if (!fl->outage) wb_daemon_nudge_fetcher(fl->consumer, nudged_ms);
        n = rd_kafka_consume_batch_queue(cq, timeout_ms, msgs, 1);
    }
    return n;
}

int fl_batch_full(const fl_t *fl)
{
    const fl_batch_t *b = &fl->batch;
    return b->n >= (size_t)fl->conf->flusher.batch_max_events ||
           b->bytes >= fl->conf->flusher.batch_max_bytes;
}

size_t fl_batch_pending(const fl_t *fl)
{
    return fl->batch.n + fl->inflight.n;
}

/* Destroys the messages of b; keeps its arrays for the next batch. */
static void batch_clear(fl_batch_t *b)
{
    items_free(b);
    for (size_t i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
    b->bytes = 0;
    b->redecode = 0;
    b->dedup_ok = 0;
    b->pg_done = b->dlq_done = 0;
    b->apply_us = 0;
    batch_reset_counts(b);
}

static void batch_free(fl_batch_t *b)
{
    batch_clear(b);
    free(b->msgs);
    free(b->items);
    free(b->winners);
    free(b->slots);
    memset(b, 0, sizeof(*b));
}

static size_t batch_drop(fl_batch_t *b, const rd_kafka_topic_partition_list_t *parts)
{
    size_t j = 0, dropped = 0;

    items_free(b);
    b->pg_done = b->dlq_done = 0;
    b->bytes = 0;
    batch_reset_counts(b);
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_t *msg = b->msgs[i];
        if (rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(msg->rkt),
                                               msg->partition)) {
            rd_kafka_message_destroy(msg);
            dropped++;
            continue;
        }
        b->bytes += (int64_t)(msg->key_len + msg->len);
        b->msgs[j++] = msg;
    }
    b->n = j;
    b->redecode = 1;
    b->dedup_ok = 0; /* indices moved: rebuilt by the re-decode */
    return dropped;
}

typedef struct apply_ctx_s {
    fl_t *fl;
    fl_batch_t *b;
    const wb_entity_t *ent;
    const size_t *idx; /* message indices of the rows */
    wb_row_t *rows;
    size_t applied;
    char *errstr;
    size_t errstr_size;
} apply_ctx_t;

static wb_err_t exec_cmd(PGconn *pg, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(pg, sql);
    wb_err_t err = WB_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
        wb_set_err(errstr, errstr_size, "postgresql: %s: %.*s", sql, (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
    }
    PQclear(res);
    return err;
}

/* Upper estimate of the parameter bytes of n rows (four arrays). */
static size_t rows_bytes(const wb_row_t *rows, size_t n)
{
    size_t total = 4 * 20;

    for (size_t i = 0; i < n; i++)
        total += 8 + rows[i].keylen + (rows[i].deleted ? 0 : rows[i].valuelen) + 12 + 5;
    return total;
}

/* Failures caused by the size of the statement, not by the database or
 * the rows: the parameters could not be built (an array over PostgreSQL's
 * 1 GiB limit, or out of memory: nothing was sent), the statement ran into
 * statement_timeout (57014) or the server ran out of memory (53200). A
 * smaller statement can succeed, so the range is split rather than
 * retried whole forever. */
static int is_size_error(wb_err_t err, const PGconn *pg, const char *sqlstate)
{
    if (err == WB_ERR_TOO_LARGE || err == WB_ERR_NOMEM) return 1;
    if (!pg || PQstatus(pg) != CONNECTION_OK) return 0;
    return strcmp(sqlstate, "57014") == 0 || strcmp(sqlstate, "53200") == 0;
}

/* Finds the rows of rows[lo, hi) the version guard refused because
 * PostgreSQL holds a newer version, and records that version in their
 * items: cleaning the cache against the refused event's own version would
 * mark an obsolete dirty value clean (say a write-through committed V' but
 * failed to set the cache, over a write-behind V still dirty: the cache
 * would serve V for a whole TTL). Cleaned against V', such an entry loses
 * its value and reloads. Runs in the upsert's transaction, which holds the
 * rows' locks (ON CONFLICT locks a row even when its WHERE refuses it), so
 * the versions read are the ones that stay. */
static wb_err_t find_refused(apply_ctx_t *a, size_t lo, size_t hi)
{
    static const int formats[2] = {1, 1};
    char table[WB_PG_QUOTED_MAX], *sql = NULL;
    wb_upsert_params_t p;
    PGresult *res = NULL;
    wb_err_t err;

    memset(&p, 0, sizeof(p));
    if (wb_pg_quote_ident(a->ent->table, table, sizeof(table)) != WB_OK) {
        wb_set_err(a->errstr, a->errstr_size, "table name %s cannot be quoted", a->ent->table);
        return WB_ERR_PG;
    }
    err = wb_upsert_params_build(a->ent->value_type, a->rows + lo, hi - lo, &p);
    if (err == WB_OK &&
        asprintf(&sql,
                 "SELECT u.i, t.\"version\" FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY "
                 "AS u(k, ver, i) JOIN %s AS t ON t.\"key\" = u.k WHERE t.\"version\" > u.ver",
                 table) < 0) {
        sql = NULL;
        err = WB_ERR_NOMEM;
    }
    if (err != WB_OK) {
        wb_set_err(a->errstr, a->errstr_size, "finding the refused rows of %s: %s", a->ent->table,
                   wb_err2str(err));
        goto out;
    }
    const unsigned int types[2] = {p.types[0], p.types[2]};
    const char *const vals[2] = {p.data[0], p.data[2]};
    const int lens[2] = {p.len[0], p.len[2]};
    res = PQexecParams(a->fl->pg, sql, 2, types, vals, lens, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(a->fl->pg);
        wb_set_err(a->errstr, a->errstr_size, "finding the refused rows of %s: %.*s", a->ent->table,
                   (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        long long i = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (i < 1 || (unsigned long long)i > hi - lo) continue;
        a->b->items[a->idx[lo + (size_t)i - 1]].stored_version =
            strtoll(PQgetvalue(res, r, 1), NULL, 10);
    }
out:
    PQclear(res);
    free(sql);
    wb_upsert_params_free(&p);
    return err;
}

static wb_err_t apply_range(apply_ctx_t *a, size_t lo, size_t hi);

static wb_err_t apply_halves(apply_ctx_t *a, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2;
    wb_err_t err = apply_range(a, lo, mid);

    return err == WB_OK ? apply_range(a, mid, hi) : err;
}

/* Upserts rows[lo, hi) under a savepoint. On a content error, bisects to
 * find the rows PostgreSQL rejects on their own and marks them poison, so
 * every other row of the batch is still written (invariant 7). On a size
 * error (is_size_error) of more than one row, bisects too: smaller
 * statements get through; a single row too large for any statement is
 * poison. Returns WB_ERR_PG only for errors that are not the rows' fault
 * (an outage). */
static wb_err_t apply_range(apply_ctx_t *a, size_t lo, size_t hi)
{
    PGconn *pg = a->fl->pg;
    char st[6], detail[512];
    size_t applied = 0;
    int size_err;
    wb_err_t err;

    if (hi - lo > 1 && rows_bytes(a->rows + lo, hi - lo) > FL_STMT_MAX_BYTES)
        return apply_halves(a, lo, hi);
    if (exec_cmd(pg, "SAVEPOINT wb_rows", a->errstr, a->errstr_size) != WB_OK) return WB_ERR_PG;
    err = wb_upsert_rows(pg, a->ent, a->rows + lo, hi - lo, &applied, st, detail, sizeof(detail));
    if (err == WB_OK) {
        a->applied += applied;
        if (applied < hi - lo && find_refused(a, lo, hi) != WB_OK) return WB_ERR_PG;
        return exec_cmd(pg, "RELEASE SAVEPOINT wb_rows", a->errstr, a->errstr_size);
    }
    size_err = is_size_error(err, pg, st);
    if ((!size_err && !is_content_error(pg, st)) ||
        (size_err && hi - lo == 1 && err != WB_ERR_TOO_LARGE)) {
        wb_set_err(a->errstr, a->errstr_size, "%s%s%s", detail, *st ? " SQLSTATE " : "", st);
        return WB_ERR_PG;
    }
    if (exec_cmd(pg, "ROLLBACK TO SAVEPOINT wb_rows; RELEASE SAVEPOINT wb_rows", a->errstr,
                 a->errstr_size) != WB_OK)
        return WB_ERR_PG;
    if (hi - lo == 1) {
        fl_item_t *it = &a->b->items[a->idx[lo]];
        if (size_err)
            poison(it, "too large for one PostgreSQL statement: %s", detail);
        else
            poison(it, "rejected by PostgreSQL (SQLSTATE %s): %s", st, detail);
        return WB_OK;
    }
    if (size_err)
        WB_WARN("upsert of %zu rows into %s failed (%s%s%s); splitting it", hi - lo, a->ent->table,
                detail, *st ? " SQLSTATE " : "", st);
    return apply_halves(a, lo, hi);
}

static int cmp_item_key(const fl_item_t *x, const fl_item_t *y)
{
    if (x->ent != y->ent) return x->ent < y->ent ? -1 : 1;
    if (x->ev.keylen != y->ev.keylen) return x->ev.keylen < y->ev.keylen ? -1 : 1;
    return memcmp(x->ev.key, y->ev.key, x->ev.keylen);
}

/* The PostgreSQL step: one transaction, one statement per table (more only
 * when bisecting around poison). */
static wb_err_t batch_apply_pg(fl_t *fl, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    const wb_config_t *conf = fl->conf;
    fl_scratch_t *sc = &fl->w.scratch;
    wb_coalesce_item_t *ci;
    size_t *pend, *win;
    wb_row_t *rows;
    size_t npend = 0;
    uint64_t upserted = 0, sent = 0, deletes = 0, coalesced = 0;
    wb_err_t err = WB_ERR_NOMEM;

    if (b->redecode) batch_redecode(fl, b);
    batch_reset_counts(b);
    if (sc->cap < b->n) {
        /* Grow-only: a steady flusher allocates nothing per batch. */
        size_t cap = b->cap;
        wb_coalesce_item_t *nci = realloc(sc->ci, cap * sizeof(*nci));
        if (nci) sc->ci = nci;
        size_t *np = nci ? realloc(sc->pend, cap * sizeof(*np)) : NULL;
        if (np) sc->pend = np;
        size_t *nw = np ? realloc(sc->win, cap * sizeof(*nw)) : NULL;
        if (nw) sc->win = nw;
        wb_row_t *nr = nw ? realloc(sc->rows, cap * sizeof(*nr)) : NULL;
        if (nr) sc->rows = nr;
        size_t *nc = nr ? realloc(sc->cand, cap * sizeof(*nc)) : NULL;
        if (nc) sc->cand = nc;
        if (!nc) {
            wb_set_err(errstr, errstr_size, "out of memory for a batch of %zu events", b->n);
            goto out;
        }
        sc->cap = cap;
    }
    ci = sc->ci;
    pend = sc->pend;
    win = sc->win;
    rows = sc->rows;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == FL_ITEM_GOOD) pend[npend++] = i;
    /* Round 1 sorts only each key's newest event, known from arrival. */
    size_t ncand = 0;
    if (b->dedup_ok) {
        for (size_t k = 0; k < b->nslots; k++)
            if (b->slots[k]) sc->cand[ncand++] = b->slots[k] - 1;
    }
    int round = 0;

    err = fl_pg_ensure(fl, errstr, errstr_size);
    if (err != WB_OK) goto out;
    if ((err = exec_cmd(fl->pg, "BEGIN", errstr, errstr_size)) != WB_OK) goto out;

    /* Rounds: normally one. A key whose newest event was poison gets its
     * next-newest event in the following round, so the result does not
     * depend on where batch boundaries fell (replay gives the same state). */
    while (npend > 0) {
        const size_t *src = pend;
        size_t nsrc = npend;
        if (round++ == 0 && b->dedup_ok) {
            src = sc->cand;
            nsrc = ncand;
        }
        for (size_t j = 0; j < nsrc; j++) {
            const fl_item_t *it = &b->items[src[j]];
            size_t plen = strlen(it->ent->prefix);
            ci[j] = (wb_coalesce_item_t){(uint32_t)(it->ent - conf->entities), it->ev.key + plen,
                                         it->ev.keylen - plen, it->ev.version};
        }
        size_t nwin = wb_coalesce(ci, nsrc, win);
        coalesced += npend - nwin;
        for (size_t j = 0; j < nwin; j++) {
            size_t mi = src[win[j]];
            const fl_item_t *it = &b->items[mi];
            win[j] = mi; /* from now on: message indices */
            size_t plen = strlen(it->ent->prefix);
            rows[j] = (wb_row_t){it->ev.key + plen, it->ev.keylen - plen, it->ev.value,
                                 it->ev.valuelen,   it->ev.is_delete,     it->ev.version};
        }
        /* One statement per entity: winners come grouped by entity. */
        for (size_t lo = 0; lo < nwin;) {
            size_t hi = lo + 1;
            while (hi < nwin && b->items[win[hi]].ent == b->items[win[lo]].ent)
                hi++;
            apply_ctx_t a = {fl, b, b->items[win[lo]].ent, win, rows, 0, errstr, errstr_size};
            err = apply_range(&a, lo, hi);
            if (err != WB_OK) goto rollback;
            upserted += a.applied;
            lo = hi;
        }
        /* Settle this round; collect events of keys whose winner was poison. */
        size_t nnext = 0, npois = 0;
        for (size_t j = 0; j < nwin; j++) {
            fl_item_t *it = &b->items[win[j]];
            if (it->state == FL_ITEM_POISON) {
                win[npois++] = win[j];
                continue;
            }
            it->state = FL_ITEM_DONE;
            b->winners[b->nwinners++] = win[j];
            sent++;
            deletes += it->ev.is_delete ? 1 : 0;
        }
        for (size_t j = 0; j < npend && npois > 0; j++) {
            fl_item_t *it = &b->items[pend[j]];
            if (it->state != FL_ITEM_GOOD) continue;
            for (size_t p = 0; p < npois; p++) {
                if (cmp_item_key(it, &b->items[win[p]]) == 0) {
                    pend[nnext++] = pend[j];
                    break;
                }
            }
        }
        coalesced -= nnext; /* they were counted as coalesced away, but get another chance */
        npend = nnext;
    }
    if ((err = exec_cmd(fl->pg, "COMMIT", errstr, errstr_size)) != WB_OK) goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].state == FL_ITEM_GOOD)
            b->items[i].state = FL_ITEM_DONE; /* coalesced away: the newer version is written */
        b->skipped += b->items[i].state == FL_ITEM_SKIP;
    }
    b->upserted = upserted;
    b->stale = sent - upserted;
    b->deletes = deletes;
    b->coalesced = coalesced;
    b->pg_done = 1;
    err = WB_OK;
    goto out;
rollback:
    if (fl->pg && PQstatus(fl->pg) == CONNECTION_OK) exec_cmd(fl->pg, "ROLLBACK", NULL, 0);
out:
    if (err != WB_OK && err != WB_ERR_CONFIG) err = WB_ERR_PG;
    if (err != WB_OK) {
        b->redecode = 1;
        batch_reset_counts(b);
    }
    return err;
}

/* Sends the batch's poison messages to the dead-letter topic and waits for
 * the broker's acknowledgement (their offsets are committed right after). */
static wb_err_t batch_dead_letter(fl_t *fl, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    int64_t failed_before = fl->dlq_failed;
    size_t n = 0;

    for (size_t i = 0; i < b->n; i++) {
        const fl_item_t *it = &b->items[i];
        const rd_kafka_message_t *msg = b->msgs[i];
        rd_kafka_headers_t *orig = NULL, *hdrs;
        wb_header_t dh[WB_EVENT_NHDRS];
        char scratch[WB_EVENT_SCRATCH];
        size_t ndh = 0;
        rd_kafka_resp_err_t rerr;

        if (it->state != FL_ITEM_POISON) continue;
        WB_WARN("dead-lettering %s [%" PRId32 "] @%" PRId64 ": %s", rd_kafka_topic_name(msg->rkt),
                msg->partition, msg->offset, it->reason ? it->reason : "poison");
        if (rd_kafka_message_headers(msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
            hdrs = rd_kafka_headers_copy(orig);
        else
            hdrs = rd_kafka_headers_new(WB_EVENT_NHDRS);
        if (wb_event_encode_dlq_headers(
                it->reason ? it->reason : "poison", rd_kafka_topic_name(msg->rkt), msg->partition,
                msg->offset, dh, WB_EVENT_NHDRS, &ndh, scratch, sizeof(scratch)) != WB_OK ||
            wb_event_add_rd_headers(hdrs, dh, ndh) != WB_OK) {
            rd_kafka_headers_destroy(hdrs);
            wb_set_err(errstr, errstr_size, "cannot build dead-letter headers");
            return WB_ERR_KAFKA;
        }
        for (;;) {
            rerr = rd_kafka_producev(
                fl->dlq, RD_KAFKA_V_TOPIC(fl->conf->kafka.topic_dead_letter),
                RD_KAFKA_V_KEY(msg->key, msg->key_len), RD_KAFKA_V_VALUE(msg->payload, msg->len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
            if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(fl->dlq, 100);
        }
        if (rerr) {
            rd_kafka_headers_destroy(hdrs);
            wb_set_err(errstr, errstr_size, "dead-letter produce: %s", rd_kafka_err2str(rerr));
            return WB_ERR_KAFKA;
        }
        n++;
    }
    if (n == 0) return WB_OK;
    rd_kafka_flush(fl->dlq, FL_DLQ_TIMEOUT_MS);
    if (rd_kafka_outq_len(fl->dlq) > 0 || fl->dlq_failed != failed_before) {
        wb_set_err(errstr, errstr_size, "dead-letter topic %s did not acknowledge %zu events",
                   fl->conf->kafka.topic_dead_letter, n);
        return WB_ERR_KAFKA;
    }
    b->dead = n;
    return WB_OK;
}

/* Commits the batch's offsets, asynchronously: the writer goes on with the
 * next batch. Each commit is issued after its batch's PostgreSQL commit
 * (invariant 5). librdkafka retries a failed commit request, so an older
 * commit may land after a newer one: that only moves the group back, which
 * means re-delivery, absorbed by the version guard (invariant 4), never a
 * skip. fl_offset_commit_cb counts failures; revocation and shutdown
 * commit synchronously (fl_commit_sync). */
static void batch_commit_offsets(fl_t *fl, const fl_batch_t *b)
{
    rd_kafka_topic_partition_list_t *offs;
    rd_kafka_topic_partition_t *tp = NULL;
    const rd_kafka_topic_t *last_rkt = NULL;
    int32_t last_part = -1;

    if (!fl->commit_offsets || b->n == 0) return;
    offs = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *msg = b->msgs[i];
        if (msg->rkt != last_rkt || msg->partition != last_part) {
            const char *topic = rd_kafka_topic_name(msg->rkt);
            tp = rd_kafka_topic_partition_list_find(offs, topic, msg->partition);
            if (!tp) {
                tp = rd_kafka_topic_partition_list_add(offs, topic, msg->partition);
                tp->offset = -1;
            }
            last_rkt = msg->rkt;
            last_part = msg->partition;
        }
        if (msg->offset + 1 > tp->offset) tp->offset = msg->offset + 1;
    }
    rd_kafka_resp_err_t rerr = rd_kafka_commit(fl->consumer, offs, 1);
    if (rerr) {
        wb_counter_add(fl->m.commit_failures, 1);
        WB_WARN("offset commit failed (events will be re-applied): %s", rd_kafka_err2str(rerr));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

void fl_offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    fl_t *fl = opaque;
    (void)rk;

    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    /* PostgreSQL holds the events already: they are only delivered again. */
    wb_counter_add(fl->m.commit_failures, 1);
    WB_WARN("offset commit failed (events will be re-applied): %s", rd_kafka_err2str(err));
}

void fl_commit_sync(fl_t *fl, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *offs;

    if (!fl->commit_offsets || !fl->consumer) return;
    offs = rd_kafka_topic_partition_list_new((int)fl->nparts + 1);
    for (size_t i = 0; i < fl->nparts; i++) {
        const fl_part_t *p = &fl->parts[i];
        if (p->committed < 0) continue;
        if (parts ? !rd_kafka_topic_partition_list_find(parts, p->topic, p->partition)
                  : !p->assigned)
            continue;
        rd_kafka_topic_partition_list_add(offs, p->topic, p->partition)->offset = p->committed;
    }
    if (offs->cnt > 0) {
        rd_kafka_resp_err_t rerr = rd_kafka_commit(fl->consumer, offs, 0);
        if (rerr && rerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            WB_WARN("offset commit of %d partitions failed (their events will be re-applied): %s",
                    offs->cnt, rd_kafka_err2str(rerr));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

/* The steps of a batch that touch PostgreSQL and Kafka; each one done is
 * remembered, so a retry resumes at the step that failed. Writer thread
 * (or the polling thread while the writer is idle). */
static wb_err_t batch_apply(fl_t *fl, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    int64_t t0 = wb_time_mono_us();
    wb_err_t err = WB_OK;

    if (!b->pg_done) err = batch_apply_pg(fl, b, errstr, errstr_size);
    if (err == WB_OK && !b->dlq_done) {
        err = batch_dead_letter(fl, b, errstr, errstr_size);
        if (err == WB_OK) b->dlq_done = 1;
    }
    /* Offsets only after the commit and the dead-letter acknowledgement
     * (invariant 5). */
    if (err == WB_OK) batch_commit_offsets(fl, b);
    b->apply_us += wb_time_mono_us() - t0;
    return err;
}

/* After a batch is applied: partition bookkeeping, clean-marks and
 * forgets to the cleaner, figures; then the messages go. Polling thread. */
static void batch_complete(fl_t *fl, fl_batch_t *b)
{
    const rd_kafka_topic_t *last_rkt = NULL;
    int32_t last_part = -1;
    fl_part_t *p = NULL;

    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *msg = b->msgs[i];
        if (msg->rkt != last_rkt || msg->partition != last_part) {
            p = fl_part_get(fl, rd_kafka_topic_name(msg->rkt), msg->partition);
            last_rkt = msg->rkt;
            last_part = msg->partition;
        }
        if (p && msg->offset + 1 > p->committed) {
            p->committed = msg->offset + 1;
            p->committed_time = b->items[i].ev.time_us > 0
                                    ? b->items[i].ev.time_us
                                    : rd_kafka_message_timestamp(msg, NULL) * 1000;
        }
    }
    fl_clean_push(fl, b);
    wb_counter_add(fl->m.upserted, b->upserted);
    wb_counter_add(fl->m.stale, b->stale);
    wb_counter_add(fl->m.deletes, b->deletes);
    wb_counter_add(fl->m.coalesced, b->coalesced);
    wb_counter_add(fl->m.dead_letters, b->dead);
    wb_counter_add(fl->m.batches, 1);
    wb_histogram_observe(fl->m.batch_seconds, (double)b->apply_us / 1e6);
    fl->t_upserted += b->upserted;
    fl->t_stale += b->stale;
    fl->t_coalesced += b->coalesced;
    fl->t_dead += b->dead;
    fl->t_skipped += b->skipped;
    fl->t_batches++;
    WB_DEBUG("batch: %zu events, %zu rows written, %.1f ms", b->n, b->nwinners,
             (double)b->apply_us / 1e3);
    batch_clear(b);
}

/* ----------------------------------------------------------------- writer */

static void *writer_main(void *arg)
{
    fl_t *fl = arg;
    fl_writer_t *w = &fl->w;
    char errstr[sizeof(w->errstr)];

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != FL_W_RUNNING && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state != FL_W_RUNNING) break; /* stop, and nothing to run */
        pthread_mutex_unlock(&w->mu);
        errstr[0] = '\0';
        wb_err_t err = batch_apply(fl, &fl->inflight, errstr, sizeof(errstr));
        pthread_mutex_lock(&w->mu);
        w->err = err;
        memcpy(w->errstr, errstr, sizeof(errstr));
        w->state = FL_W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static wb_err_t writer_start(fl_t *fl)
{
    fl_writer_t *w = &fl->w;
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, writer_main, fl) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return WB_ERR_NOMEM;
    }
    w->started = 1;
    return WB_OK;
}

static void writer_stop(fl_t *fl)
{
    fl_writer_t *w = &fl->w;

    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->scratch.ci);
    free(w->scratch.pend);
    free(w->scratch.win);
    free(w->scratch.rows);
    free(w->scratch.cand);
    memset(w, 0, sizeof(*w));
}

int fl_writer_busy(fl_t *fl)
{
    int busy;
    if (!fl->w.started) return 0;
    pthread_mutex_lock(&fl->w.mu);
    busy = fl->w.state != FL_W_IDLE;
    pthread_mutex_unlock(&fl->w.mu);
    return busy;
}

void fl_writer_submit(fl_t *fl)
{
    fl_writer_t *w = &fl->w;

    if (fl->inflight.n == 0) {
        /* Hand the filled batch over; the polling thread keeps the empty
         * arrays of the previous one for the next. */
        fl_batch_t t = fl->inflight;
        fl->inflight = fl->batch;
        fl->batch = t;
    }
    pthread_mutex_lock(&w->mu);
    w->state = FL_W_RUNNING;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int fl_writer_collect(fl_t *fl, int timeout_ms, wb_err_t *err, char *errstr, size_t errstr_size)
{
    fl_writer_t *w = &fl->w;
    struct timespec until = wb_time_mono_deadline(timeout_ms);

    if (!w->started) return 0;
    pthread_mutex_lock(&w->mu);
    while (w->state == FL_W_RUNNING && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
            break;
    }
    if (w->state != FL_W_DONE) {
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    *err = w->err;
    if (errstr && errstr_size) snprintf(errstr, errstr_size, "%s", w->errstr);
    w->state = FL_W_IDLE;
    pthread_mutex_unlock(&w->mu);
    if (*err == WB_OK) batch_complete(fl, &fl->inflight);
    return 1;
}

/* ------------------------------------------------------------ synchronous */

/* Waits until the writer is idle; a result it held is collected (a
 * failed batch stays held in fl->inflight). */
static void writer_join(fl_t *fl)
{
    wb_err_t err;
    char errstr[512];

    if (fl_writer_collect(fl, -1, &err, errstr, sizeof(errstr)) && err != WB_OK) {
        /* The caller goes on; the main loop retries the held batch after
         * a backoff, as for a failure it collected itself. */
        fl->retry_at_ms = wb_time_mono_ms() + wb_backoff_next_ms(&fl->backoff);
        WB_WARN("batch held for a retry: %s", errstr);
    }
}

wb_err_t fl_batch_flush(fl_t *fl, char *errstr, size_t errstr_size)
{
    fl_batch_t *order[2] = {&fl->inflight, &fl->batch};

    writer_join(fl);
    for (int i = 0; i < 2; i++) {
        fl_batch_t *b = order[i];
        if (b->n == 0) continue;
        wb_err_t err = batch_apply(fl, b, errstr, errstr_size);
        if (err != WB_OK) return err;
        batch_complete(fl, b);
    }
    return WB_OK;
}

void fl_batch_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts)
{
    writer_join(fl);
    size_t dropped = batch_drop(&fl->inflight, parts) + batch_drop(&fl->batch, parts);
    if (dropped)
        WB_WARN("dropped %zu uncommitted events of revoked partitions; their new owner "
                "re-reads them",
                dropped);
}

void fl_batch_discard(fl_t *fl)
{
    writer_join(fl);
    batch_clear(&fl->inflight);
    batch_clear(&fl->batch);
}

/* ------------------------------------------------------------- partitions */

fl_part_t *fl_part_get(fl_t *fl, const char *topic, int32_t partition)
{
    char pbuf[16];

    for (size_t i = 0; i < fl->nparts; i++)
        if (fl->parts[i].partition == partition && strcmp(fl->parts[i].topic, topic) == 0)
            return &fl->parts[i];
    fl_part_t *parts = realloc(fl->parts, (fl->nparts + 1) * sizeof(*parts));
    if (!parts) return NULL;
    fl->parts = parts;
    fl_part_t *p = &fl->parts[fl->nparts];
    memset(p, 0, sizeof(*p));
    if (!(p->topic = strdup(topic))) return NULL;
    fl->nparts++;
    p->partition = partition;
    p->committed = -1;
    snprintf(pbuf, sizeof(pbuf), "%" PRId32, partition);
    p->lag_msgs = wb_metrics_gauge_with(fl->m.lag_msgs, topic, pbuf, NULL);
    p->lag_secs = wb_metrics_gauge_with(fl->m.lag_secs, topic, pbuf, NULL);
    return p;
}

void fl_parts_update_lag(fl_t *fl)
{
    int64_t now_us = wb_time_real_us();

    for (size_t i = 0; i < fl->nparts; i++) {
        fl_part_t *p = &fl->parts[i];
        int64_t lo = -1, hi = -1;

        if (!p->assigned) {
            wb_gauge_set(p->lag_msgs, 0);
            wb_gauge_set(p->lag_secs, 0);
            continue;
        }
        if (rd_kafka_get_watermark_offsets(fl->consumer, p->topic, p->partition, &lo, &hi) ||
            hi < 0)
            continue;
        int64_t from = p->committed >= 0 ? p->committed : lo;
        int64_t lag = hi - from > 0 ? hi - from : 0;
        wb_gauge_set(p->lag_msgs, (double)lag);
        wb_gauge_set(p->lag_secs, lag > 0 && p->committed_time > 0
                                      ? (double)(now_us - p->committed_time) / 1e6
                                      : 0.0);
    }
}

/* ------------------------------------------------------------------ purge */

wb_err_t fl_purge(fl_t *fl, char *errstr, size_t errstr_size)
{
    const wb_config_t *conf = fl->conf;
    char st[6];

    if (conf->flusher.tombstone_retention_ms <= 0) return WB_OK;
    wb_err_t err = fl_pg_ensure(fl, errstr, errstr_size);
    if (err != WB_OK) return err;
    for (size_t i = 0; i < conf->nentities; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(conf->entities[j].table, conf->entities[i].table) == 0;
        if (seen) continue;
        for (int round = 0; round < 100; round++) {
            size_t purged = 0;
            err = wb_schema_purge(fl->pg, &conf->entities[i], conf->flusher.tombstone_retention_ms,
                                  FL_PURGE_LIMIT, &purged, st, errstr, errstr_size);
            if (err != WB_OK) return err;
            wb_counter_add(fl->m.purged, purged);
            if (purged > 0)
                WB_INFO("purged %zu tombstones older than %" PRId64 " ms from \"%s\"", purged,
                        conf->flusher.tombstone_retention_ms, conf->entities[i].table);
            if (purged < FL_PURGE_LIMIT) break;
        }
    }
    return WB_OK;
}
