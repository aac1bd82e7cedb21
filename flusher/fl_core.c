/* fl_core.c — the batch path shared by the daemon and replay: decode, coalesce,
 * version-guarded upsert in one transaction, dead letters, offsets, clean-marking. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flusher.h"
#include "wb_coalesce.h"
#include "wb_daemon.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_schema.h"
#include "wb_scripts.h"
#include "wb_upsert.h"
#include "wb_util.h"

#define FL_CLEAN_MAX      1000000 /* beyond this, clean-marks are dropped (entries stay dirty: safe) */
#define FL_CLEAN_CHUNK    512     /* script calls per Redis pipeline */
#define FL_DLQ_TIMEOUT_MS 10000
#define FL_PURGE_LIMIT    10000 /* tombstones per DELETE, so one purge never holds locks long */

#define FL_SEEK_TIMEOUT_MS 10000
/* Rows whose parameters would come near PostgreSQL's 1 GiB limit on one
 * protocol message are split before sending: a Bind message above it is
 * a protocol violation (08P01) that also ends the connection. */
#define FL_STMT_MAX_BYTES (((size_t)1 << 30) - ((size_t)1 << 20))

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
    wb_backoff_init(&fl->redis_backoff, conf->flusher.retry_initial_ms, conf->flusher.retry_max_ms,
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
    return WB_OK;
}

void fl_fini(fl_t *fl)
{
    fl_batch_discard(fl);
    free(fl->batch.msgs);
    free(fl->batch.items);
    free(fl->batch.winners);
    for (size_t i = 0; i < fl->cq_n; i++)
        free(fl->cq[i].key);
    free(fl->cq);
    for (size_t i = 0; i < fl->nparts; i++)
        free(fl->parts[i].topic);
    free(fl->parts);
    if (fl->dlq) {
        rd_kafka_flush(fl->dlq, 5000);
        rd_kafka_destroy(fl->dlq);
    }
    if (fl->redis) redisFree(fl->redis);
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
    rd_kafka_conf_t *kc = wb_daemon_kafka_conf(fl->conf, "flusher", errstr, errstr_size);

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

static void items_reset(fl_batch_t *b);

int fl_batch_add(fl_t *fl, rd_kafka_message_t *msg)
{
    fl_batch_t *b = &fl->batch;

    /* A message arriving while the batch waits (paused during an outage)
     * joins it; the whole batch is applied again, which the version guard
     * makes harmless. */
    items_reset(b);

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        rd_kafka_message_t **msgs = realloc(b->msgs, cap * sizeof(*msgs));
        if (!msgs) {
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
        b->msgs = msgs;
        b->cap = cap;
    }
    if (b->n == 0) b->opened_ms = wb_time_mono_ms();
    b->msgs[b->n++] = msg;
    b->bytes += (int64_t)(msg->key_len + msg->len);
    b->pg_done = b->dlq_done = 0;
    fl->t_consumed++;
    wb_counter_add(fl->m.consumed, 1);
    return 0;
}

int fl_batch_due(const fl_t *fl, int64_t now_ms)
{
    const fl_batch_t *b = &fl->batch;
    return b->n > 0 && (b->n >= (size_t)fl->conf->flusher.batch_max_events ||
                        b->bytes >= fl->conf->flusher.batch_max_bytes ||
                        now_ms - b->opened_ms >= fl->conf->flusher.batch_max_wait_ms);
}

static void items_reset(fl_batch_t *b)
{
    for (size_t i = 0; i < b->nitems; i++)
        free(b->items[i].reason);
    if (b->nitems) memset(b->items, 0, b->nitems * sizeof(*b->items));
    b->nitems = 0;
}

void fl_batch_discard(fl_t *fl)
{
    fl_batch_t *b = &fl->batch;

    items_reset(b);
    for (size_t i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
    b->bytes = 0;
    b->nwinners = 0;
    b->pg_done = b->dlq_done = 0;
}

void fl_batch_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts)
{
    fl_batch_t *b = &fl->batch;
    size_t j = 0, dropped = 0;

    items_reset(b);
    b->pg_done = b->dlq_done = 0;
    b->bytes = 0;
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
    if (dropped)
        WB_WARN("dropped %zu uncommitted events of revoked partitions; their new owner "
                "re-reads them",
                dropped);
}

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

/* Decodes every message and finds its entity; undecodable ones are poison. */
static void batch_decode(fl_t *fl)
{
    fl_batch_t *b = &fl->batch;
    char errstr[256], name[WB_EVENT_ENTITY_MAX + 1];

    for (size_t i = 0; i < b->n; i++) {
        fl_item_t *it = &b->items[i];
        if (wb_event_from_message(b->msgs[i], &it->ev, errstr, sizeof(errstr)) != WB_OK) {
            poison(it, "undecodable: %s", errstr);
            continue;
        }
        if (!wb_event_entity_cstr(&it->ev, name, sizeof(name)) ||
            !(it->ent = wb_config_entity(fl->conf, name))) {
            poison(it, "unknown entity \"%.*s\"", (int)it->ev.entitylen, it->ev.entity);
            continue;
        }
        size_t plen = strlen(it->ent->prefix);
        if (it->ev.keylen <= plen || memcmp(it->ev.key, it->ent->prefix, plen) != 0) {
            poison(it, "key does not start with the prefix \"%s\" of entity %s", it->ent->prefix,
                   it->ent->name);
            continue;
        }
        if (fl->entity_filter && strcmp(fl->entity_filter, it->ent->name) != 0) {
            it->state = FL_ITEM_SKIP;
            continue;
        }
        it->state = FL_ITEM_GOOD;
    }
}

typedef struct apply_ctx_s {
    fl_t *fl;
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
        a->fl->batch.items[a->idx[lo + (size_t)i - 1]].stored_version =
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
        fl_item_t *it = &a->fl->batch.items[a->idx[lo]];
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
static wb_err_t batch_apply_pg(fl_t *fl, char *errstr, size_t errstr_size)
{
    fl_batch_t *b = &fl->batch;
    const wb_config_t *conf = fl->conf;
    wb_coalesce_item_t *ci = NULL;
    size_t *pend = NULL, *win = NULL;
    wb_row_t *rows = NULL;
    size_t npend = 0;
    uint64_t upserted = 0, sent = 0, deletes = 0, coalesced = 0;
    wb_err_t err = WB_ERR_NOMEM;

    items_reset(b);
    fl_item_t *items = realloc(b->items, b->cap * sizeof(*items));
    if (!items) goto out;
    b->items = items;
    memset(b->items, 0, b->n * sizeof(*b->items));
    b->nitems = b->n;
    size_t *winners = realloc(b->winners, b->cap * sizeof(*winners));
    if (!winners) goto out;
    b->winners = winners;
    b->nwinners = 0;
    ci = malloc(b->n * sizeof(*ci));
    pend = malloc(b->n * sizeof(*pend));
    win = malloc(b->n * sizeof(*win));
    rows = malloc(b->n * sizeof(*rows));
    if (!ci || !pend || !win || !rows) goto out;

    batch_decode(fl);
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == FL_ITEM_GOOD) pend[npend++] = i;

    err = fl_pg_ensure(fl, errstr, errstr_size);
    if (err != WB_OK) goto out;
    if ((err = exec_cmd(fl->pg, "BEGIN", errstr, errstr_size)) != WB_OK) goto out;

    /* Rounds: normally one. A key whose newest event was poison gets its
     * next-newest event in the following round, so the result does not
     * depend on where batch boundaries fell (replay gives the same state). */
    while (npend > 0) {
        for (size_t j = 0; j < npend; j++) {
            const fl_item_t *it = &b->items[pend[j]];
            size_t plen = strlen(it->ent->prefix);
            ci[j] = (wb_coalesce_item_t){(uint32_t)(it->ent - conf->entities), it->ev.key + plen,
                                         it->ev.keylen - plen, it->ev.version};
        }
        size_t nwin = wb_coalesce(ci, npend, win);
        coalesced += npend - nwin;
        for (size_t j = 0; j < nwin; j++) {
            size_t mi = pend[win[j]];
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
            apply_ctx_t a = {fl, b->items[win[lo]].ent, win, rows, 0, errstr, errstr_size};
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
        fl->t_skipped += b->items[i].state == FL_ITEM_SKIP;
    }
    wb_counter_add(fl->m.upserted, upserted);
    wb_counter_add(fl->m.stale, sent - upserted);
    wb_counter_add(fl->m.deletes, deletes);
    wb_counter_add(fl->m.coalesced, coalesced);
    fl->t_upserted += upserted;
    fl->t_stale += sent - upserted;
    fl->t_coalesced += coalesced;
    b->pg_done = 1;
    err = WB_OK;
    goto out;
rollback:
    if (fl->pg && PQstatus(fl->pg) == CONNECTION_OK) exec_cmd(fl->pg, "ROLLBACK", NULL, 0);
out:
    if (err != WB_OK && err != WB_ERR_CONFIG) err = WB_ERR_PG;
    if (err != WB_OK) items_reset(b);
    free(ci);
    free(pend);
    free(win);
    free(rows);
    return err;
}

/* Sends the batch's poison messages to the dead-letter topic and waits for
 * the broker's acknowledgement (their offsets are committed right after). */
static wb_err_t batch_dead_letter(fl_t *fl, char *errstr, size_t errstr_size)
{
    fl_batch_t *b = &fl->batch;
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
    wb_counter_add(fl->m.dead_letters, n);
    fl->t_dead += n;
    return WB_OK;
}

static void batch_commit_offsets(fl_t *fl)
{
    fl_batch_t *b = &fl->batch;
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);

    for (size_t i = 0; i < b->n; i++) {
        const rd_kafka_message_t *msg = b->msgs[i];
        const char *topic = rd_kafka_topic_name(msg->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offs, topic, msg->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(offs, topic, msg->partition);
            tp->offset = -1;
        }
        if (msg->offset + 1 > tp->offset) {
            tp->offset = msg->offset + 1;
            fl_part_t *p = fl_part_get(fl, topic, msg->partition);
            if (p) {
                p->committed = tp->offset;
                if (i < b->nitems && b->items[i].ev.time_us > 0)
                    p->committed_time = b->items[i].ev.time_us;
                else
                    p->committed_time = rd_kafka_message_timestamp(msg, NULL) * 1000;
            }
        }
    }
    if (fl->commit_offsets && offs->cnt > 0) {
        rd_kafka_resp_err_t rerr = rd_kafka_commit(fl->consumer, offs, 0);
        if (rerr) {
            /* PostgreSQL holds the events already; a failed commit only
             * means they are delivered again and absorbed by the version
             * guard (invariant 4), so this is not worth blocking on. */
            wb_counter_add(fl->m.commit_failures, 1);
            WB_WARN("offset commit failed (events will be re-applied): %s", rd_kafka_err2str(rerr));
        }
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

/* Queues one clean-mark or forget. Returns 0, or -1 when the backlog is
 * full or memory ran out: the entry then stays dirty, which is safe (the
 * sweeper re-publishes it and its next delivery queues it again). */
static int cq_push(fl_t *fl, const char *key, size_t keylen, int64_t version, int64_t ttl_ms,
                   int forget)
{
    if (fl->cq_n >= FL_CLEAN_MAX) return -1;
    if (fl->cq_n == fl->cq_cap) {
        size_t cap = fl->cq_cap ? fl->cq_cap * 2 : 4096;
        fl_clean_t *cq = realloc(fl->cq, cap * sizeof(*cq));
        if (!cq) return -1;
        fl->cq = cq;
        fl->cq_cap = cap;
    }
    char *copy = malloc(keylen + 1);
    if (!copy) return -1;
    memcpy(copy, key, keylen);
    copy[keylen] = '\0';
    fl->cq[fl->cq_n++] = (fl_clean_t){copy, keylen, version, ttl_ms, forget};
    return 0;
}

static void clean_enqueue(fl_t *fl)
{
    fl_batch_t *b = &fl->batch;

    for (size_t j = 0; j < b->nwinners; j++) {
        const fl_item_t *it = &b->items[b->winners[j]];
        int64_t v = it->stored_version > 0 ? it->stored_version : it->ev.version;
        if (cq_push(fl, it->ev.key, it->ev.keylen, v, it->ent->ttl_ms, 0) != 0) {
            wb_counter_add(fl->m.clean_dropped, b->nwinners - j);
            break;
        }
    }
    wb_gauge_set(fl->m.clean_pending, (double)fl->cq_n);
}

/* The cache key and version of a dead-lettered message: from the decoded
 * event, or — when it could not be decoded as a whole — straight from the
 * Kafka key and a well-formed wb-version header. Returns 0 if both are
 * known. */
static int poison_key_version(const rd_kafka_message_t *msg, const fl_item_t *it, const char **key,
                              size_t *keylen, int64_t *version)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t vlen = 0;

    if (it->ev.version > 0 && it->ev.key && it->ev.keylen > 0) {
        *key = it->ev.key;
        *keylen = it->ev.keylen;
        *version = it->ev.version;
        return 0;
    }
    if (!msg->key || msg->key_len == 0 || msg->key_len > WB_EVENT_KEY_MAX) return -1;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs ||
        rd_kafka_header_get_last(hdrs, WB_HDR_VERSION, &v, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !v || wb_parse_i64(v, vlen, version) != 0 || *version <= 0)
        return -1;
    *key = msg->key;
    *keylen = msg->key_len;
    return 0;
}

/* Poison must not loop (invariant 7 meets invariant 9): once the dead-letter
 * topic holds a poison event, its cache entry — if it still holds exactly
 * that version, dirty — is forgotten (the `forget` script), so the sweeper
 * does not re-publish it forever and reads fall back to PostgreSQL. */
static void forget_enqueue(fl_t *fl)
{
    fl_batch_t *b = &fl->batch;

    for (size_t i = 0; i < b->n && i < b->nitems; i++) {
        const fl_item_t *it = &b->items[i];
        const char *key = NULL;
        size_t keylen = 0;
        int64_t version = 0;

        if (it->state != FL_ITEM_POISON) continue;
        if (poison_key_version(b->msgs[i], it, &key, &keylen, &version) != 0) continue;
        if (cq_push(fl, key, keylen, version, it->ent ? it->ent->ttl_ms : 0, 1) != 0) {
            wb_counter_add(fl->m.clean_dropped, 1);
            break;
        }
    }
    wb_gauge_set(fl->m.clean_pending, (double)fl->cq_n);
}

wb_err_t fl_batch_flush(fl_t *fl, char *errstr, size_t errstr_size)
{
    fl_batch_t *b = &fl->batch;
    int64_t t0 = wb_time_mono_us();
    wb_err_t err;

    if (b->n == 0) return WB_OK;
    if (!b->pg_done) {
        err = batch_apply_pg(fl, errstr, errstr_size);
        if (err != WB_OK) return err;
    }
    if (!b->dlq_done) {
        err = batch_dead_letter(fl, errstr, errstr_size);
        if (err != WB_OK) return err;
        b->dlq_done = 1;
    }
    batch_commit_offsets(fl);
    clean_enqueue(fl);
    forget_enqueue(fl); /* only now: the dead-letter topic has acknowledged them */
    double secs = (double)(wb_time_mono_us() - t0) / 1e6;
    wb_histogram_observe(fl->m.batch_seconds, secs);
    wb_counter_add(fl->m.batches, 1);
    fl->t_batches++;
    WB_DEBUG("batch: %zu events, %zu rows written, %.1f ms", b->n, b->nwinners, secs * 1e3);
    fl_batch_discard(fl);
    fl_clean_drain(fl);
    return WB_OK;
}

/* ------------------------------------------------------------ clean-marks */

void fl_clean_drain(fl_t *fl)
{
    const char *dirty =
        fl->conf->redis.dirty_index ? fl->conf->redis.dirty_index : WB_REDIS_DEFAULT_DIRTY_INDEX;
    size_t done = 0, forgotten = 0;
    char errstr[256];

    if (fl->cq_n == 0) return;
    if (!fl->redis) {
        int64_t now = wb_time_mono_ms();
        if (now < fl->redis_retry_at_ms) return;
        if (wb_redis_connect(fl->conf, &fl->redis, errstr, sizeof(errstr)) != WB_OK) {
            fl->redis_retry_at_ms = now + wb_backoff_next_ms(&fl->redis_backoff);
            WB_WARN("redis unavailable, %zu entries stay dirty until it is back: %s", fl->cq_n,
                    errstr);
            return;
        }
        wb_backoff_reset(&fl->redis_backoff);
    }
    while (done < fl->cq_n) {
        size_t n = fl->cq_n - done < FL_CLEAN_CHUNK ? fl->cq_n - done : FL_CLEAN_CHUNK;
        wb_script_call_t calls[FL_CLEAN_CHUNK];
        redisReply *replies[FL_CLEAN_CHUNK];
        const char *argv[FL_CLEAN_CHUNK][4];
        size_t argvlen[FL_CLEAN_CHUNK][4];
        char nums[FL_CLEAN_CHUNK][2][24];

        for (size_t i = 0; i < n; i++) {
            const fl_clean_t *c = &fl->cq[done + i];
            int l1 = snprintf(nums[i][0], sizeof(nums[i][0]), "%" PRId64, c->version);
            int l2 = snprintf(nums[i][1], sizeof(nums[i][1]), "%" PRId64, c->ttl_ms);
            argv[i][0] = c->key;
            argvlen[i][0] = c->keylen;
            argv[i][1] = dirty;
            argvlen[i][1] = strlen(dirty);
            argv[i][2] = nums[i][0];
            argvlen[i][2] = (size_t)l1;
            argv[i][3] = nums[i][1];
            argvlen[i][3] = (size_t)l2;
            calls[i] = (wb_script_call_t){c->forget ? WB_SCRIPT_FORGET : WB_SCRIPT_CLEAN, 2, 4,
                                          argv[i], argvlen[i]};
        }
        if (wb_scripts_pipeline(fl->redis, calls, n, replies, errstr, sizeof(errstr)) != WB_OK) {
            WB_WARN("redis clean-marking failed, %zu entries stay dirty for now: %s",
                    fl->cq_n - done, errstr);
            redisFree(fl->redis);
            fl->redis = NULL;
            fl->redis_retry_at_ms = wb_time_mono_ms() + wb_backoff_next_ms(&fl->redis_backoff);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const fl_clean_t *c = &fl->cq[done + i];
            if (replies[i] && replies[i]->type == REDIS_REPLY_ERROR)
                WB_WARN("%s script: %s", c->forget ? "forget" : "clean", replies[i]->str);
            else if (c->forget && replies[i] && replies[i]->type == REDIS_REPLY_INTEGER &&
                     replies[i]->integer == 1) {
                forgotten++;
                WB_INFO("forgot the dirty cache entry %s version %" PRId64
                        " (dead-lettered; reads fall back to PostgreSQL)",
                        c->key, c->version);
            }
            freeReplyObject(replies[i]);
            free(c->key);
        }
        wb_counter_add(fl->m.cleaned, n);
        done += n;
    }
    wb_counter_add(fl->m.forgotten, forgotten);
    if (done > 0) {
        memmove(fl->cq, fl->cq + done, (fl->cq_n - done) * sizeof(*fl->cq));
        fl->cq_n -= done;
    }
    wb_gauge_set(fl->m.clean_pending, (double)fl->cq_n);
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
