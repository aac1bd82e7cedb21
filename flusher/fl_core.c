/* fl_core.c — the flusher component: sets up its modules and runs a batch through them
 * (apply → dead letters → offsets; then completion: lag, clean-marks, figures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flusher.h"
#include "wb_log.h"
#include "wb_util.h"

static wb_err_t batch_apply(void *arg, fl_batch_t *b, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ setup */

static const double batch_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10};

wb_err_t fl_init(fl_t *fl, const wb_config_t *conf)
{
    fl_metrics_t *m = &fl->m;

    memset(fl, 0, sizeof(*fl));
    fl->conf = conf;
    fl_apply_init(&fl->ap, conf);
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
    COUNTER(refused, "wb_flusher_refused_writes_total",
            "Newest dirty writes PostgreSQL refused for a version it holds that Redis never "
            "handed out: dead-lettered with the reason.");
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
    fl_offsets_init(&fl->off, m->commit_failures, m->lag_msgs, m->lag_secs);
    fl_purge_init(&fl->purge, conf, m->purged);
    fl_clean_metrics_t cm = {m->cleaned, m->clean_dropped, m->forgotten, m->refused,
                             m->clean_pending};
    if (fl_writer_start(&fl->w, batch_apply, fl) != WB_OK ||
        fl_cleaner_start(&fl->cl, conf, &cm) != WB_OK) {
        fl_fini(fl);
        return WB_ERR_NOMEM;
    }
    return WB_OK;
}

void fl_fini(fl_t *fl)
{
    fl_discard(fl);
    fl_writer_stop(&fl->w);
    fl_batch_free(&fl->batch);
    fl_cleaner_stop(&fl->cl);
    fl_offsets_fini(&fl->off);
    fl_dlq_close(&fl->dlq);
    fl_apply_fini(&fl->ap);
    /* The HTTP server renders the registry: stop it first. */
    wb_http_stop(fl->http);
    wb_metrics_destroy(fl->m.reg);
    memset(fl, 0, sizeof(*fl));
}

/* ----------------------------------------------------------------- intake */

ssize_t fl_take(fl_t *fl, rd_kafka_queue_t *cq, int timeout_ms, int64_t *nudged_ms,
                rd_kafka_message_t **msgs)
{
    return fl_batch_take(&fl->batch, fl->conf->flusher.batch_max_events, cq,
                         fl->outage ? NULL : fl->consumer, timeout_ms, nudged_ms, msgs);
}

int fl_consume(fl_t *fl, rd_kafka_message_t *msg)
{
    if (fl_batch_add(&fl->batch, fl->conf, fl->entity_filter, msg) != 0) return -1;
    fl->t_consumed++;
    wb_counter_add(fl->m.consumed, 1);
    return 0;
}

size_t fl_pending(const fl_t *fl)
{
    return fl->batch.n + fl->w.batch.n;
}

/* ------------------------------------------------------------------ apply */

/* The steps of a batch that touch PostgreSQL and Kafka; each one done is
 * remembered, so a retry resumes at the step that failed. Writer thread
 * (or the polling thread while the writer is idle). */
static wb_err_t batch_apply(void *arg, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    fl_t *fl = arg;
    int64_t t0 = wb_time_mono_us();
    wb_err_t err = WB_OK;

    if (!b->pg_done) {
        if (b->redecode) fl_batch_redecode(b, fl->conf, fl->entity_filter);
        err = fl_apply_batch(&fl->ap, b, errstr, errstr_size);
    }
    if (err == WB_OK && !b->dlq_done) {
        err = fl_dlq_send(&fl->dlq, b, errstr, errstr_size);
        if (err == WB_OK) b->dlq_done = 1;
    }
    /* Offsets only after the commit and the dead-letter acknowledgement
     * (invariant 5). */
    if (err == WB_OK) fl_offsets_commit_batch(&fl->off, fl->consumer, b);
    b->apply_us += wb_time_mono_us() - t0;
    return err;
}

/* After a batch is applied: partition bookkeeping, clean-marks and
 * forgets to the cleaner, figures; then the messages go. Polling thread. */
static void batch_complete(fl_t *fl, fl_batch_t *b)
{
    fl_offsets_settle(&fl->off, b);
    fl_clean_push(&fl->cl, b);
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
    fl_batch_clear(b);
}

void fl_offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    fl_t *fl = opaque;
    (void)rk;
    fl_offsets_commit_result(&fl->off, err, offsets);
}

/* ----------------------------------------------------------------- writer */

void fl_submit(fl_t *fl)
{
    fl_writer_submit(&fl->w, &fl->batch);
}

int fl_collect(fl_t *fl, int timeout_ms, wb_err_t *err, char *errstr, size_t errstr_size)
{
    if (!fl_writer_collect(&fl->w, timeout_ms, err, errstr, errstr_size)) return 0;
    if (*err == WB_OK) batch_complete(fl, &fl->w.batch);
    return 1;
}

/* ------------------------------------------------------------ synchronous */

/* Waits until the writer is idle; a result it held is collected (a
 * failed batch stays held in the writer). */
static void writer_join(fl_t *fl)
{
    wb_err_t err;
    char errstr[512];

    if (fl_collect(fl, -1, &err, errstr, sizeof(errstr)) && err != WB_OK) {
        /* The caller goes on; the main loop retries the held batch after
         * a backoff, as for a failure it collected itself. */
        fl->retry_at_ms = wb_time_mono_ms() + wb_backoff_next_ms(&fl->backoff);
        WB_WARN("batch held for a retry: %s", errstr);
    }
}

wb_err_t fl_flush(fl_t *fl, char *errstr, size_t errstr_size)
{
    fl_batch_t *order[2] = {&fl->w.batch, &fl->batch};

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

void fl_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts)
{
    writer_join(fl);
    size_t dropped = fl_batch_drop(&fl->w.batch, parts) + fl_batch_drop(&fl->batch, parts);
    if (dropped)
        WB_WARN("dropped %zu uncommitted events of revoked partitions; their new owner "
                "re-reads them",
                dropped);
}

void fl_discard(fl_t *fl)
{
    writer_join(fl);
    fl_batch_clear(&fl->w.batch);
    fl_batch_clear(&fl->batch);
}
