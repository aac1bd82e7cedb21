/* flusher.h — internals of wb-flusher shared by its .c files (not a public API). */
#ifndef WB_FLUSHER_H
#define WB_FLUSHER_H

#include <stddef.h>
#include <stdint.h>

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

/* Per-message bookkeeping of the batch in flight. */
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

/* The batch in flight: consumed messages (owned) waiting to be applied. */
typedef struct fl_batch_s {
    rd_kafka_message_t **msgs;
    fl_item_t *items; /* parallel to msgs, filled by the apply step */
    size_t nitems;    /* items[0..nitems) are filled (may own reasons) */
    size_t n, cap;
    int64_t bytes;
    int64_t opened_ms; /* monotonic time of the first message */
    int pg_done;       /* PostgreSQL transaction committed; items[] final */
    int dlq_done;      /* poison messages acknowledged by the dead-letter topic */
    size_t *winners;   /* indices applied (for clean-marking), nwinners of them */
    size_t nwinners;
} fl_batch_t;

typedef struct fl_s {
    const wb_config_t *conf;
    const char *progname;
    PGconn *pg;
    redisContext *redis;
    rd_kafka_t *consumer;
    rd_kafka_t *dlq;
    wb_http_t *http;
    fl_metrics_t m;
    fl_batch_t batch;

    int commit_offsets;        /* 0: replay without a group (positions are not saved) */
    const char *entity_filter; /* replay --entity: other entities are skipped */

    /* Database (or dead-letter) outage: partitions paused, retried with backoff. */
    int outage;
    int64_t retry_at_ms;
    wb_backoff_t backoff;
    char outage_reason[256];

    /* Clean-marking and forgetting backlog (Redis may be down; entries then
     * stay dirty). */
    fl_clean_t *cq;
    size_t cq_n, cq_cap;
    int64_t redis_retry_at_ms;
    wb_backoff_t redis_backoff;

    fl_part_t *parts;
    size_t nparts;

    int64_t dlq_failed; /* delivery failures seen by the dead-letter producer's callback */

    /* Totals for the summary log line and replay's report. */
    uint64_t t_consumed, t_upserted, t_stale, t_coalesced, t_dead, t_batches, t_skipped;
} fl_t;

/* ---- fl_core.c: state shared by the daemon and replay ---- */

/* Zeroes fl and keeps conf (borrowed). Creates the metric registry. */
wb_err_t fl_init(fl_t *fl, const wb_config_t *conf, const char *progname);
/* Frees everything fl owns (not the consumer, which its owner closes). */
void fl_fini(fl_t *fl);

/* Connects PostgreSQL if it is not, and (once per connection) creates or
 * verifies the tables. WB_ERR_CONFIG means the schema is wrong (fatal). */
wb_err_t fl_pg_ensure(fl_t *fl, char *errstr, size_t errstr_size);

/* Creates the dead-letter producer. */
wb_err_t fl_dlq_open(fl_t *fl, char *errstr, size_t errstr_size);

/* Takes ownership of msg (a consumed, error-free message). Returns 0, or -1
 * when the batch could not grow (out of memory): msg is destroyed and its
 * partition rewound to it, so it is consumed again later and nothing after
 * it can be committed past it; the caller must not count it as taken. If
 * even the rewind fails the process aborts rather than skip a message. */
int fl_batch_add(fl_t *fl, rd_kafka_message_t *msg);
/* 1 when the batch must be flushed now (size limits or age). */
int fl_batch_due(const fl_t *fl, int64_t now_ms);
/* Applies the batch in flight: PostgreSQL transaction, dead letters, offset
 * commit, clean-marking. WB_OK: the batch is done and empty. Otherwise the
 * batch is kept (resumed at the step that failed) and the error is an
 * outage (WB_ERR_PG / WB_ERR_KAFKA). */
wb_err_t fl_batch_flush(fl_t *fl, char *errstr, size_t errstr_size);
/* Forgets the batch's messages of the given partitions (revoked or lost
 * while they could not be applied): they were not committed, so the new
 * owner gets them again. */
void fl_batch_drop_partitions(fl_t *fl, const rd_kafka_topic_partition_list_t *parts);
/* Destroys every message of the batch without applying anything. */
void fl_batch_discard(fl_t *fl);

/* Sends pending clean-marks and forgets to Redis (pipelined), reconnecting
 * with backoff. */
void fl_clean_drain(fl_t *fl);

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
