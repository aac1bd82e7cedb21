/* fl_core.c — the flusher component: sets up its modules and runs a batch through them
 * (apply → dead letters → offsets; then completion: lag, clean-marks, figures). */
#include <inttypes.h>
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
    fl->ap.offsets_by = conf->flusher.group_id;
    fl->ap.offsets_guard = 1;
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
    COUNTER(rewinds, "wb_flusher_rewinds_total",
            "Partitions rewound to the offset PostgreSQL records (it was behind the consumer).");
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
    /* The writer runs the batch it holds after a failure, else the filling one. */
    fl_offsets_ranges(&fl->off, fl->w.batch.n > 0 ? &fl->w.batch : &fl->batch);
    fl_writer_submit(&fl->w, &fl->batch);
}

static int rewind_ranges(fl_t *fl, fl_batch_t *b);

int fl_collect(fl_t *fl, int timeout_ms, wb_err_t *err, char *errstr, size_t errstr_size)
{
    if (!fl_writer_collect(&fl->w, timeout_ms, err, errstr, errstr_size)) return 0;
    if (*err == WB_OK) {
        batch_complete(fl, &fl->w.batch);
    } else if (fl->w.batch.rewind && rewind_ranges(fl, &fl->w.batch) == 0) {
        /* Not an outage: the rest of the batch is retried at once. */
        *err = WB_OK;
    }
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
        fl_offsets_ranges(&fl->off, b);
        wb_err_t err = batch_apply(fl, b, errstr, errstr_size);
        if (err != WB_OK && b->rewind && rewind_ranges(fl, b) == 0) {
            i = -1; /* what is left of b, and fl->batch, are applied next */
            continue;
        }
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

/* ------------------------------------------ the database's applied offsets */

/* Drops the pending messages of p (they come again after the seek). */
static void drop_part(fl_t *fl, const fl_part_t *p)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    fl_batch_drop(&fl->w.batch, l);
    fl_batch_drop(&fl->batch, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Pauses (pause 1), or seeks to offset and resumes, partition p. Returns 0
 * or -1 (the seek failed; the partition stays paused). */
static int part_move(fl_t *fl, const fl_part_t *p, int pause, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    int rc = 0;

    if (pause) {
        rd_kafka_pause_partitions(fl->consumer, l);
    } else {
        tp->offset = offset;
        rd_kafka_error_t *error = rd_kafka_seek_partitions(fl->consumer, l, 5000);
        if (error || tp->err) {
            WB_WARN("partition %s [%" PRId32 "]: seek to %" PRId64 " failed: %s", p->topic,
                    p->partition, offset,
                    error ? rd_kafka_error_string(error) : rd_kafka_err2str(tp->err));
            rc = -1;
        } else if (!fl->outage) {
            rd_kafka_resume_partitions(fl->consumer, l);
        }
        if (error) rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void count_gone(fl_t *fl)
{
    fl->ngone = 0;
    for (size_t i = 0; i < fl->off.nparts; i++) {
        const fl_part_t *p = &fl->off.parts[i];
        if (!p->assigned || !p->gone) continue;
        if (fl->ngone++ == 0)
            snprintf(fl->gone_reason, sizeof(fl->gone_reason),
                     "partition %s [%" PRId32 "]: PostgreSQL needs offset %" PRId64
                     ", the topic starts at %" PRId64 " (retention)",
                     p->topic, p->partition, p->needed, p->earliest);
    }
    fl_ready_update(fl);
}

/* Brings partition p in line with what the database records (recorded):
 * rewinds it, holds it (the topic lost what the database needs) or, held
 * before, lets it go on. Writer idle. */
static void part_settle(fl_t *fl, fl_part_t *p, int64_t recorded)
{
    int64_t lo = -1, hi = -1, start;
    rd_kafka_resp_err_t kerr =
        rd_kafka_query_watermark_offsets(fl->consumer, p->topic, p->partition, &lo, &hi, 5000);

    if (kerr) {
        /* Without the earliest offset a seek could land below it, and the
         * consumer would skip to the earliest silently: hold and ask later. */
        WB_WARN("partition %s [%" PRId32 "]: cannot read its earliest offset (%s); holding it",
                p->topic, p->partition, rd_kafka_err2str(kerr));
        if (!p->gone) {
            part_move(fl, p, 1, 0);
            drop_part(fl, p);
            p->gone = 1;
            p->needed = recorded;
            p->earliest = -1;
        }
        return;
    }
    switch (fl_pgoffsets_decide(p->committed, recorded, lo, &start)) {
    case FL_START_GONE:
        if (!p->gone || p->earliest != lo)
            WB_ERROR("partition %s [%" PRId32 "]: PostgreSQL records offset %" PRId64
                     " but the topic starts at %" PRId64
                     ": the events between are gone (retention); the partition is paused, "
                     "nothing is skipped. Restore a newer backup, or accept the loss by deleting "
                     "its row from " FL_PGOFFSETS_TABLE " (see flusher/README.md)",
                     p->topic, p->partition, recorded, lo);
        if (!p->gone) {
            part_move(fl, p, 1, 0);
            drop_part(fl, p);
        }
        p->gone = 1;
        p->needed = recorded;
        p->earliest = lo;
        break;
    case FL_START_REWIND:
        WB_WARN("partition %s [%" PRId32 "]: PostgreSQL records offset %" PRId64
                ", the consumer group is at %" PRId64
                ": rewinding to the database's offset (it was restored or failed over)",
                p->topic, p->partition, recorded, p->committed);
        part_move(fl, p, 1, 0);
        drop_part(fl, p);
        if (part_move(fl, p, 0, recorded) == 0) {
            p->committed = recorded;
            p->gone = 0;
            wb_counter_add(fl->m.rewinds, 1);
        } else {
            p->gone = 1; /* held: tried again at the next check */
            p->needed = recorded;
            p->earliest = lo;
        }
        break;
    case FL_START_KEEP:
        if (p->gone) {
            WB_INFO("partition %s [%" PRId32 "]: resuming at %" PRId64, p->topic, p->partition,
                    p->committed);
            if (part_move(fl, p, 0, p->committed >= 0 ? p->committed : RD_KAFKA_OFFSET_BEGINNING) ==
                0)
                p->gone = 0;
        }
        break;
    }
}

/* After an apply refused for ranges the database is behind: settles each
 * such partition (its messages leave b); the rest of b is left to apply.
 * Returns 0, or -1 out of memory (nothing settled: retried as an outage). */
static int rewind_ranges(fl_t *fl, fl_batch_t *b)
{
    /* Settling drops messages of b, which owns the topic names: copy. */
    size_t n = b->nranges;
    fl_range_t *r = malloc((n ? n : 1) * sizeof(*r));
    char(*topics)[256] = malloc((n ? n : 1) * sizeof(*topics));

    b->rewind = 0;
    if (!r || !topics) {
        free(r);
        free(topics);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        r[i] = b->ranges[i];
        snprintf(topics[i], sizeof(topics[i]), "%s", b->ranges[i].topic);
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].recorded < 0) continue;
        fl_part_t *p = fl_offsets_part(&fl->off, topics[i], r[i].partition);
        if (!p) continue;
        if (p->committed < r[i].from) p->committed = r[i].from;
        part_settle(fl, p, r[i].recorded);
    }
    free(r);
    free(topics);
    count_gone(fl);
    return 0;
}

wb_err_t fl_offsets_check(fl_t *fl, char *errstr, size_t errstr_size)
{
    const char *topic = fl->conf->kafka.topic_changes;
    int32_t *parts = NULL;
    int64_t *rec = NULL;
    size_t n = 0;
    wb_err_t err;

    fl->offsets_check_due = 0;
    if ((err = fl_apply_pg_ensure(&fl->ap, errstr, errstr_size)) != WB_OK) return err;
    parts = malloc((fl->off.nparts + 1) * sizeof(*parts));
    rec = malloc((fl->off.nparts + 1) * sizeof(*rec));
    if (!parts || !rec) {
        wb_set_err(errstr, errstr_size, "out of memory");
        err = WB_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < fl->off.nparts; i++)
        if (fl->off.parts[i].assigned && !strcmp(fl->off.parts[i].topic, topic))
            parts[n++] = fl->off.parts[i].partition;
    err = fl_pgoffsets_read(fl->ap.pg, topic, parts, n, rec, errstr, errstr_size);
    for (size_t i = 0; err == WB_OK && i < n; i++) {
        fl_part_t *p = fl_offsets_part(&fl->off, topic, parts[i]);
        int64_t lo = -1, hi = -1;
        if (!p) continue;
        if (!p->gone) {
            if (rec[i] < 0) continue;
            /* The earliest offset, known from fetching, else asked once. */
            if ((rd_kafka_get_watermark_offsets(fl->consumer, topic, p->partition, &lo, &hi) ||
                 lo < 0) &&
                rd_kafka_query_watermark_offsets(fl->consumer, topic, p->partition, &lo, &hi, 5000))
                lo = -1;
            if ((p->committed < 0 || rec[i] >= p->committed) && (lo < 0 || rec[i] >= lo))
                continue; /* not behind the consumer, and still in the topic */
        }
        part_settle(fl, p, rec[i]);
    }
    count_gone(fl);
out:
    free(parts);
    free(rec);
    return err;
}

void fl_ready_update(fl_t *fl)
{
    int ready = !fl->outage && fl->ngone == 0;

    wb_http_set_ready(fl->http, ready,
                      ready        ? NULL
                      : fl->outage ? fl->outage_reason
                                   : fl->gone_reason);
    wb_gauge_set(fl->m.ready, ready);
}

void fl_pause_gone(fl_t *fl)
{
    for (size_t i = 0; i < fl->off.nparts; i++)
        if (fl->off.parts[i].assigned && fl->off.parts[i].gone)
            part_move(fl, &fl->off.parts[i], 1, 0);
}
