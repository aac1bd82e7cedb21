/* fl_offsets.h — the flusher's offsets and lag: partitions, commits, lag gauges. */
#ifndef FL_OFFSETS_H
#define FL_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "fl_batch.h"
#include "wb_metrics.h"

/* One partition this process has seen assigned: lag bookkeeping. */
typedef struct fl_part_s {
    char *topic;
    int32_t partition;
    int assigned;
    int64_t committed;      /* next offset committed by us (or found at assignment), -1 unknown */
    int64_t committed_time; /* write time (us) of the last committed event, 0 unknown */
    int64_t taken;          /* offset after the last message taken into a batch, -1 none yet */
    /* The database needs an offset the topic no longer holds (retention):
     * the partition is paused; needed and earliest say what is missing. */
    int gone;
    int64_t needed, earliest;
    wb_gauge_t *lag_msgs, *lag_secs;
} fl_part_t;

/* At most one asynchronous offset commit per this many ms: with the idle
 * flush a busy-but-not-full flusher writes hundreds of small batches a
 * second, and one commit request each would crowd the group coordinator
 * (its heartbeats go unanswered, the session times out). */
#define FL_COMMIT_EVERY_MS 100

/* Polling thread, except fl_offsets_commit_batch and commit_pending
 * (whoever applies; the polling thread only while the writer is idle). */
typedef struct fl_offsets_s {
    int commit; /* 0: replay without a group (positions are not saved) */
    /* Offsets of applied batches not sent to the broker yet (at most
     * FL_COMMIT_EVERY_MS old while batches keep coming); NULL: none. */
    rd_kafka_topic_partition_list_t *pending;
    int64_t last_commit_ms;        /* monotonic time of the last asynchronous commit */
    wb_counter_t *commit_failures; /* borrowed metric handles; may be NULL */
    wb_metric_family_t *lag_msgs, *lag_secs;
    fl_part_t *parts;
    size_t nparts;
} fl_offsets_t;

/* Zeroes o (commits on) and keeps the metric handles (borrowed, NULL ok). */
void fl_offsets_init(fl_offsets_t *o, wb_counter_t *commit_failures, wb_metric_family_t *lag_msgs,
                     wb_metric_family_t *lag_secs);
/* Frees the partition table. */
void fl_offsets_fini(fl_offsets_t *o);

/* The entry of a partition, created (unassigned, committed -1) on first
 * sight. NULL out of memory. */
fl_part_t *fl_offsets_part(fl_offsets_t *o, const char *topic, int32_t partition);
/* Marks the partitions in parts assigned (their committed offsets
 * unknown again) or not. */
void fl_offsets_set_assigned(fl_offsets_t *o, const rd_kafka_topic_partition_list_t *parts,
                             int assigned);

/* Sets b's ranges (b->ranges_ok 1; 0 out of memory): per partition, from
 * = where the consumer stood before b (the offset committed last, or found
 * at assignment or rewind; else b's first offset) and next = b's last
 * offset + 1. Call before each apply of b, after the previous batch was
 * settled. */
void fl_offsets_ranges(fl_offsets_t *o, fl_batch_t *b);
/* Adds b's offsets to the pending ones and commits those on consumer,
 * asynchronously, unless the last commit is less than FL_COMMIT_EVERY_MS
 * old (fl_offsets_commit_pending sends them later); call only after b's
 * PostgreSQL commit and dead-letter acknowledgement. A failure is counted
 * and logged (the events are re-applied later, which the version guard
 * absorbs). */
void fl_offsets_commit_batch(fl_offsets_t *o, rd_kafka_t *consumer, const fl_batch_t *b);
/* Commits the pending offsets asynchronously if the last commit is
 * FL_COMMIT_EVERY_MS old. Not while the writer runs (it adds to them). */
void fl_offsets_commit_pending(fl_offsets_t *o, rd_kafka_t *consumer);
/* Records b's offsets and event times as committed (for lag). */
void fl_offsets_settle(fl_offsets_t *o, const fl_batch_t *b);
/* The result of an asynchronous commit (the consumer's offset-commit
 * callback): counts and logs a failure. */
void fl_offsets_commit_result(fl_offsets_t *o, rd_kafka_resp_err_t err,
                              const rd_kafka_topic_partition_list_t *offsets);
/* Commits synchronously on consumer the offsets committed last for the
 * partitions in parts (NULL: all assigned), so they are on the broker
 * before the partitions move or the process leaves; their pending ones are
 * covered by that and dropped. */
void fl_offsets_commit_sync(fl_offsets_t *o, rd_kafka_t *consumer,
                            const rd_kafka_topic_partition_list_t *parts);
/* Sets the lag gauges of every partition from consumer's watermarks. */
void fl_offsets_update_lag(fl_offsets_t *o, rd_kafka_t *consumer);
/* 1 when every assigned partition (not held: gone) has been taken up to
 * the high watermark consumer saw at its last fetch (librdkafka's cached
 * watermarks; no broker call): nothing more to fetch right now, so an
 * idle writer may take the batch at once (fl_batch_due). A partition
 * whose watermark is unknown yet counts as caught up. After a seek back
 * `taken` may be ahead of the position until the next message: that only
 * makes one batch leave early. */
int fl_offsets_caught_up(const fl_offsets_t *o, rd_kafka_t *consumer);
/* Sum of the lag gauges (messages). */
double fl_offsets_lag(const fl_offsets_t *o);

#endif /* FL_OFFSETS_H */
