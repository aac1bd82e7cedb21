/* flusher.h — the flusher component: its modules composed, for the daemon loop and replay. */
#ifndef WB_FLUSHER_H
#define WB_FLUSHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "fl_apply.h"
#include "fl_batch.h"
#include "fl_clean.h"
#include "fl_dlq.h"
#include "fl_offsets.h"
#include "fl_pgoffsets.h"
#include "fl_purge.h"
#include "fl_topic.h"
#include "fl_writer.h"
#include "wb_backoff.h"
#include "wb_config.h"
#include "wb_http.h"
#include "wb_metrics.h"

/* Metric handles; every pointer may be NULL (updates are then no-ops). */
typedef struct fl_metrics_s {
    wb_metrics_t *reg;
    wb_counter_t *consumed, *coalesced, *upserted, *stale, *deletes, *batches, *dead_letters;
    wb_counter_t *retries, *cleaned, *clean_dropped, *purged, *commit_failures, *forgotten;
    wb_counter_t *rewinds;
    wb_counter_t *refused;
    wb_histogram_t *batch_seconds;
    wb_gauge_t *clean_pending, *ready;
    wb_metric_family_t *lag_msgs, *lag_secs;
} fl_metrics_t;

/* The flusher: a batch fills on the polling thread (fl_batch) while the
 * writer (fl_writer) applies the previous one: PostgreSQL (fl_apply), dead
 * letters (fl_dlq), offsets (fl_offsets); a completed batch goes to the
 * cleaner (fl_clean). Each module is handed what it needs; only this
 * component and its owners (daemon.c, replay.c) see all of them. */
typedef struct fl_s {
    const wb_config_t *conf;
    rd_kafka_t *consumer; /* the owner's (daemon.c, replay.c): created, closed there */
    wb_http_t *http;
    fl_metrics_t m;
    const char *entity_filter; /* replay --entity: other entities are skipped */

    fl_batch_t batch; /* being filled by the polling thread */
    fl_apply_t ap;
    fl_dlq_t dlq;
    fl_offsets_t off;
    fl_writer_t w;
    fl_cleaner_t cl;
    fl_purge_t purge;

    /* Database (or dead-letter) outage: partitions paused, retried with backoff. */
    int outage;
    int64_t retry_at_ms;
    wb_backoff_t backoff;
    const char *outage_reason; /* what /readyz says: static, never the error text */
    /* Partitions the database needs offsets of that the topic lost
     * (fl_offsets' gone ones), and what /readyz says about them. */
    size_t ngone;
    char gone_reason[256];
    int offsets_check_due; /* set at assignment: compare with the database soon */

    /* Totals for the summary log line and replay's report. */
    uint64_t t_consumed, t_upserted, t_stale, t_coalesced, t_dead, t_batches, t_skipped;
} fl_t;

/* ---- fl_core.c ---- */

/* Zeroes fl and keeps conf (borrowed). Creates the metric registry and
 * starts the writer and cleaner threads. fl must not move afterwards. */
wb_err_t fl_init(fl_t *fl, const wb_config_t *conf);
/* Stops the threads and frees everything fl owns (not the consumer, which
 * its owner closes before). */
void fl_fini(fl_t *fl);

/* Takes into msgs (room for FL_TAKE_MAX) what cq holds (fl_batch_take;
 * the fetcher is not nudged during an outage). Polling thread. */
ssize_t fl_take(fl_t *fl, rd_kafka_queue_t *cq, int timeout_ms, int64_t *nudged_ms,
                rd_kafka_message_t **msgs);
/* fl_batch_add to fl->batch, counted as consumed. Polling thread. */
int fl_consume(fl_t *fl, rd_kafka_message_t *msg);
/* Events held by fl (filling, in the writer, or held for a retry). */
size_t fl_pending(const fl_t *fl);

/* ---- the writer (daemon): one batch applies while the next one fills ----
 * A batch is applied as: PostgreSQL transaction, dead letters, offset
 * commit (asynchronous; in offset order, after the commit). Completion
 * (partition bookkeeping, clean-marks, totals) runs on the polling thread
 * in fl_collect. */

/* Starts the writer on the batch it holds after a failure (a retry) or,
 * if none, on fl->batch (moved; fl->batch is left empty). The writer must
 * not be busy. */
void fl_submit(fl_t *fl);
/* Waits up to timeout_ms (< 0: for ever) for the writer's run to end.
 * Returns 0 if the writer is idle or still running; otherwise 1 with *err:
 * WB_OK when the batch is done and gone, else an outage (WB_ERR_PG /
 * WB_ERR_KAFKA, reason in errstr) and the batch is held in the writer for
 * the next fl_submit, resumed at the step that failed. */
int fl_collect(fl_t *fl, int timeout_ms, wb_err_t *err, char *errstr, size_t errstr_size);

/* ---- synchronous (replay, revocation, shutdown) ---- */

/* Waits for the writer, then applies on this thread the batch it holds
 * (if any) and fl->batch, in that order. WB_OK: nothing is pending.
 * Otherwise what failed stays pending (resumed at the step that failed)
 * and the error is an outage (WB_ERR_PG / WB_ERR_KAFKA). */
wb_err_t fl_flush(fl_t *fl, char *errstr, size_t errstr_size);
/* Waits for the writer, then forgets the pending messages of the given
 * partitions (revoked or lost while they could not be applied): they were
 * not committed, so the new owner gets them again. */
void fl_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts);
/* Waits for the writer, then destroys every pending message without
 * applying anything. */
void fl_discard(fl_t *fl);
/* ---- the database's applied offsets (fl_pgoffsets) ---- */

/* Compares the offsets the database records for the assigned partitions
 * with where the consumer stands, and rewinds every partition the
 * database is behind (restored, failed over, or behind the group's
 * offsets at assignment) to the recorded offset; one the topic no longer
 * holds is paused and reported (not ready) until the database is behind
 * no more (an operator acted). Only while the writer is idle and holds no
 * batch. WB_ERR_PG with errstr when the database cannot be read. Polling
 * thread. */
wb_err_t fl_offsets_check(fl_t *fl, char *errstr, size_t errstr_size);
/* Sets /readyz and wb_flusher_ready from fl->outage and the partitions
 * the database lacks offsets of (fl->ngone). */
void fl_ready_update(fl_t *fl);
/* Pauses again the partitions fl_offsets_check holds (after a resume of
 * every partition). */
void fl_pause_gone(fl_t *fl);

/* The consumer's offset-commit callback (polling thread; opaque is fl). */
void fl_offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque);

/* ---- daemon.c / replay.c ---- */
int fl_run(const wb_config_t *conf);
int fl_replay(const wb_config_t *conf, int argc, char **argv);

#endif /* WB_FLUSHER_H */
