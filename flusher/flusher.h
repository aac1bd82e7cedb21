/* flusher.h — internals of wb-flusher shared by its .c files (not a public API). */
#ifndef WB_FLUSHER_H
#define WB_FLUSHER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "wb_backoff.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_http.h"
#include "wb_metrics.h"

/* Metric handles; every pointer may be NULL (updates are then no-ops). */
typedef struct fl_metrics_s {
    wb_metrics_t *reg;
    wb_counter_t *consumed, *coalesced, *upserted, *stale, *deletes, *batches, *dead_letters;
    wb_counter_t *retries, *cleaned, *clean_dropped, *purged, *commit_failures, *forgotten;
    wb_histogram_t *batch_seconds;
    wb_gauge_t *clean_pending, *ready;
    wb_metric_family_t *lag_msgs, *lag_secs;
} fl_metrics_t;

/* One partition this process has seen assigned: lag bookkeeping. */
typedef struct fl_part_s {
    char *topic;
    int32_t partition;
    int assigned;
    int64_t committed;      /* next offset committed by us (or found at assignment), -1 unknown */
    int64_t committed_time; /* write time (us) of the last committed event, 0 unknown */
    wb_gauge_t *lag_msgs, *lag_secs;
} fl_part_t;

/* A pending "mark clean" (or, for a dead-lettered event, "forget") of a
 * cache entry (owned key copy). */
typedef struct fl_clean_s {
    char *key;
    size_t keylen;
    int64_t version;
    int64_t ttl_ms;
    int forget; /* 1: the `forget` script (poison), 0: `clean` (committed) */
} fl_clean_t;

/* Per-message bookkeeping of a batch: decoded when the message arrives,
 * settled by the apply step. */
typedef struct fl_item_s {
    wb_event_t ev;
    const wb_entity_t *ent;
    int state;    /* FL_ITEM_* */
    char *reason; /* poison reason (malloc'ed) when state is FL_ITEM_POISON */
    /* > 0: PostgreSQL refused the event for this newer stored version; the
     * cache entry is cleaned against it, not against ev.version. */
    int64_t stored_version;
} fl_item_t;

enum { FL_ITEM_GOOD = 0, FL_ITEM_POISON = 1, FL_ITEM_SKIP = 2, FL_ITEM_DONE = 3 };

/* A batch: consumed messages (owned) and their items, applied as one. */
typedef struct fl_batch_s {
    rd_kafka_message_t **msgs;
    fl_item_t *items; /* parallel to msgs; items[0..n) are decoded */
    size_t n, cap;
    int64_t bytes;
    int64_t opened_ms; /* monotonic time of the first message */
    int redecode;      /* a failed apply changed items[]: decode them again first */
    /* Newest event per key, kept as messages arrive (open addressing over
     * GOOD items: index + 1, 0 = empty), so the writer sorts only the
     * distinct keys. dedup_ok 0: not usable (after a drop or re-decode). */
    uint32_t *slots;
    size_t nslots;
    int dedup_ok;
    int pg_done;     /* PostgreSQL transaction committed; items[] final */
    int dlq_done;    /* poison messages acknowledged by the dead-letter topic */
    size_t *winners; /* indices applied (for clean-marking), nwinners of them */
    size_t nwinners;
    /* Figures of the committed PostgreSQL step, counted when the batch completes. */
    uint64_t upserted, stale, deletes, coalesced, skipped, dead;
    int64_t apply_us; /* time spent applying (all attempts) */
} fl_batch_t;

/* The writer thread applies one batch at a time (PostgreSQL, dead letters,
 * offsets) while the polling thread consumes and decodes the next one. */
enum { FL_W_IDLE = 0, FL_W_RUNNING = 1, FL_W_DONE = 2 };

/* Working arrays of the PostgreSQL step, grown to the largest batch seen. */
typedef struct fl_scratch_s {
    struct wb_coalesce_item_s *ci;
    size_t *pend, *win, *cand;
    struct wb_row_s *rows;
    size_t cap;
} fl_scratch_t;

typedef struct fl_writer_s {
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* state changed (either direction) */
    int state;         /* FL_W_*, under mu */
    wb_err_t err;      /* result of the last run (state DONE) */
    char errstr[512];
    fl_scratch_t scratch; /* used by whoever applies (never both at once) */
} fl_writer_t;

/* The cleaner thread: clean-marks and forgets, FIFO, on its own Redis
 * connection, so the batch path never waits for Redis. */
typedef struct fl_cleaner_s {
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work arrived, or stop */
    pthread_cond_t idle_cv; /* the queue became empty */
    fl_clean_t *q;          /* under mu */
    size_t n, cap;
    size_t busy;         /* entries the thread took and has not settled (under mu) */
    int failing;         /* Redis failed; the thread backs off (under mu) */
    redisContext *redis; /* the thread's own */
    wb_backoff_t backoff;
} fl_cleaner_t;

typedef struct fl_s {
    const wb_config_t *conf;
    const char *progname;
    PGconn *pg; /* the writer's while it runs; the polling thread's when idle */
    rd_kafka_t *consumer;
    rd_kafka_t *dlq;
    wb_http_t *http;
    fl_metrics_t m;
    fl_batch_t batch;    /* being filled by the polling thread */
    fl_batch_t inflight; /* the writer's: applying, or failed and held for a retry */
    fl_writer_t w;
    fl_cleaner_t cl;

    int commit_offsets;        /* 0: replay without a group (positions are not saved) */
    const char *entity_filter; /* replay --entity: other entities are skipped */

    /* Database (or dead-letter) outage: partitions paused, retried with backoff. */
    int outage;
    int64_t retry_at_ms;
    wb_backoff_t backoff;
    char outage_reason[256];

    fl_part_t *parts;
    size_t nparts;

    int64_t dlq_failed; /* delivery failures seen by the dead-letter producer's callback */

    /* Totals for the summary log line and replay's report. */
    uint64_t t_consumed, t_upserted, t_stale, t_coalesced, t_dead, t_batches, t_skipped;
} fl_t;

/* ---- fl_core.c: state shared by the daemon and replay ---- */

/* Zeroes fl and keeps conf (borrowed). Creates the metric registry and
 * starts the writer and cleaner threads. fl must not move afterwards. */
wb_err_t fl_init(fl_t *fl, const wb_config_t *conf, const char *progname);
/* Stops the threads and frees everything fl owns (not the consumer, which
 * its owner closes before). */
void fl_fini(fl_t *fl);

/* Connects PostgreSQL if it is not, and (once per connection) creates or
 * verifies the tables. WB_ERR_CONFIG means the schema is wrong (fatal). */
wb_err_t fl_pg_ensure(fl_t *fl, char *errstr, size_t errstr_size);

/* Creates the dead-letter producer. */
wb_err_t fl_dlq_open(fl_t *fl, char *errstr, size_t errstr_size);

/* Takes ownership of msg (a consumed, error-free message), decodes it and
 * appends it to fl->batch. Returns 0, or -1 when the batch could not grow
 * (out of memory): msg is destroyed and its partition rewound to it, so it
 * is consumed again later and nothing after it can be committed past it;
 * the caller must not count it as taken. If even the rewind fails the
 * process aborts rather than skip a message. Polling thread. */
int fl_batch_add(fl_t *fl, rd_kafka_message_t *msg);
/* Messages per consume call (one call per message costs 2-3 times more). */
#define FL_TAKE_MAX 1024

/* Takes into msgs (room for FL_TAKE_MAX) what the consumer queue cq holds,
 * at most what fl->batch still has room for; if it holds nothing, wakes a
 * stalled fetcher (wb_daemon_nudge_fetcher; not during an outage) and
 * waits up to timeout_ms for one message. Rebalance callbacks are served
 * inside. Returns how many (the caller owns them), 0 or -1 for none.
 * Polling thread. */
ssize_t fl_batch_take(fl_t *fl, rd_kafka_queue_t *cq, int timeout_ms, int64_t *nudged_ms,
                      rd_kafka_message_t **msgs);
/* 1 when fl->batch must be applied now (size limits or age). */
int fl_batch_due(const fl_t *fl, int64_t now_ms);
/* 1 when fl->batch reached max_events or max_bytes. While the writer is
 * busy a batch that is only old keeps filling up to this (bigger batches
 * under load: more coalescing, fewer statements). */
int fl_batch_full(const fl_t *fl);
/* Events held by fl (filling, in the writer, or held for a retry). */
size_t fl_batch_pending(const fl_t *fl);

/* ---- the writer (daemon): one batch applies while the next one fills ----
 * A batch is applied as: PostgreSQL transaction, dead letters, offset
 * commit (asynchronous; in offset order, after the commit). Completion
 * (partition bookkeeping, clean-marks, totals) runs on the polling thread
 * in fl_writer_collect. */

/* 1 while the writer runs or holds an uncollected result. */
int fl_writer_busy(fl_t *fl);
/* Starts the writer on the batch it holds after a failure (a retry) or,
 * if none, on fl->batch (moved; fl->batch is left empty). The writer must
 * not be busy. */
void fl_writer_submit(fl_t *fl);
/* Waits up to timeout_ms (< 0: for ever) for the writer's run to end.
 * Returns 0 if the writer is idle or still running; otherwise 1 with *err:
 * WB_OK when the batch is done and gone, else an outage (WB_ERR_PG /
 * WB_ERR_KAFKA, reason in errstr) and the batch is held in fl->inflight for
 * the next fl_writer_submit, resumed at the step that failed. */
int fl_writer_collect(fl_t *fl, int timeout_ms, wb_err_t *err, char *errstr, size_t errstr_size);

/* ---- synchronous (replay, revocation, shutdown) ---- */

/* Waits for the writer, then applies on this thread the batch it holds
 * (if any) and fl->batch, in that order. WB_OK: nothing is pending.
 * Otherwise what failed stays pending (resumed at the step that failed)
 * and the error is an outage (WB_ERR_PG / WB_ERR_KAFKA). */
wb_err_t fl_batch_flush(fl_t *fl, char *errstr, size_t errstr_size);
/* Waits for the writer, then forgets the pending messages of the given
 * partitions (revoked or lost while they could not be applied): they were
 * not committed, so the new owner gets them again. */
void fl_batch_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts);
/* Waits for the writer, then destroys every pending message without
 * applying anything. */
void fl_batch_discard(fl_t *fl);
/* Commits synchronously the offsets this process committed last for the
 * partitions in parts (NULL: all it has assigned), so they are on the
 * broker before the partitions move or the process leaves. */
void fl_commit_sync(fl_t *fl, const rd_kafka_topic_partition_list_t *parts);
/* The consumer's offset-commit callback (polling thread): counts failures. */
void fl_offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque);

/* ---- fl_clean.c: the cleaner thread ---- */

/* Starts / stops the cleaner (fl_init / fl_fini do). Stopping logs what is
 * left: those entries stay dirty (safe: the sweeper re-publishes them). */
wb_err_t fl_cleaner_start(fl_t *fl);
void fl_cleaner_stop(fl_t *fl);
/* Queues the clean-marks of a completed batch's winners and the forgets of
 * its dead-lettered events. Never blocks on Redis; beyond a backlog limit
 * entries are dropped (they stay dirty: safe). Polling thread. */
void fl_clean_push(fl_t *fl, const fl_batch_t *b);
/* Waits up to timeout_ms for every queued entry to be answered by Redis;
 * returns at once while Redis is failing. Returns how many are pending. */
size_t fl_clean_wait(fl_t *fl, int64_t timeout_ms);
/* Entries queued or being sent. */
size_t fl_clean_pending(fl_t *fl);

/* Partition bookkeeping. */
fl_part_t *fl_part_get(fl_t *fl, const char *topic, int32_t partition);
void fl_parts_update_lag(fl_t *fl);

/* Deletes tombstones older than flusher.tombstone_retention_ms (all tables). */
wb_err_t fl_purge(fl_t *fl, char *errstr, size_t errstr_size);

/* ---- daemon.c / replay.c ---- */
int fl_run(const wb_config_t *conf);
int fl_replay(const wb_config_t *conf, int argc, char **argv);

/* ---- iso8601.c ---- */
/* Parses "YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|+HH:MM|-HH:MM|+HHMM]" (a space may
 * stand for T; no zone means UTC) into milliseconds since the epoch.
 * Returns 0, or -1 with the reason in errstr. */
int fl_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size);

#endif /* WB_FLUSHER_H */
