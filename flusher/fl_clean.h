/* fl_clean.h — the flusher's cleaner thread: clean-marks and forgets in Redis. */
#ifndef FL_CLEAN_H
#define FL_CLEAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_batch.h"
#include "fl_dlq.h"
#include "wb_backoff.h"
#include "wb_config.h"
#include "wb_entry.h"
#include "wb_metrics.h"
#include "wb_rcluster.h"

/* A pending "mark clean" (or, for a dead-lettered event, "forget") of a
 * cache entry (owned key copy). */
typedef struct fl_clean_s {
    char *key;
    int64_t version;
    int64_t ttl_ms;
    /* clean only, when PostgreSQL refused the event for the newer stored
     * `version`: the event's own version, entity (borrowed from the config)
     * and Kafka position, to dead-letter the write if it was the entry's
     * newest (WB_ENTRY_CLEAN_REFUSED). 0 / NULL otherwise. */
    int64_t refused_version;
    const char *entity;
    int64_t offset;
    int32_t partition;
    uint32_t keylen; /* at most WB_EVENT_KEY_MAX */
    int forget;      /* 1: the `forget` script (poison), 0: `clean` (committed) */
} fl_clean_t;

/* Borrowed metric handles; each may be NULL. */
typedef struct fl_clean_metrics_s {
    wb_counter_t *cleaned, *dropped, *forgotten, *refused;
    wb_gauge_t *pending;
} fl_clean_metrics_t;

/* The cleaner thread: clean-marks and forgets, FIFO, on its own Redis
 * connection, so the batch path never waits for Redis. */
typedef struct fl_cleaner_s {
    const wb_config_t *conf; /* borrowed */
    fl_clean_metrics_t m;
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work arrived, or stop */
    pthread_cond_t idle_cv; /* the queue became empty */
    fl_clean_t *q;          /* under mu */
    size_t n, cap;
    size_t busy;    /* entries the thread took and has not settled (under mu) */
    int failing;    /* Redis failed; the thread backs off (under mu) */
    wb_rc_t *redis; /* the thread's own */
    wb_backoff_t backoff;
    fl_dlq_t dlq; /* the thread's own dead-letter producer, opened at the first refused write */
    /* The thread's requests and results of one pipeline (FL_CLEAN_CHUNK
     * each), allocated once: per send they cost a calloc of about 1.5 MiB. */
    wb_entry_clean_req_t *req;
    wb_entry_clean_res_t *res;
} fl_cleaner_t;

/* Starts the cleaner of conf (borrowed) with the metric handles in m
 * (copied; NULL: none). cl must be zeroed before and not move afterwards.
 * WB_ERR_NOMEM if the thread cannot start. */
wb_err_t fl_cleaner_start(fl_cleaner_t *cl, const wb_config_t *conf, const fl_clean_metrics_t *m);
/* Stops the cleaner; logs what is left: those entries stay dirty (safe:
 * the sweeper re-publishes them). cl may be zeroed or stopped. */
void fl_cleaner_stop(fl_cleaner_t *cl);
/* Queues the clean-marks of a completed batch's winners and the forgets of
 * its dead-lettered events (a key without a shard tag, from a log of the
 * old layout, has nothing to mark). The thread sends them with
 * wb_entry_clean_many: one `clean_many` call per shard and chunk, which
 * also raises that shard's version floor to the highest version cleaned;
 * a refused dirty write (WB_ENTRY_CLEAN_REFUSED) is an ERROR, a counter
 * and a dead letter. Never blocks on Redis; beyond a backlog limit
 * entries are dropped (they stay dirty: safe). Polling thread. */
void fl_clean_push(fl_cleaner_t *cl, const fl_batch_t *b);
/* Waits up to timeout_ms for every queued entry to be answered by Redis;
 * returns at once while Redis is failing. Returns how many are pending. */
size_t fl_clean_wait(fl_cleaner_t *cl, int64_t timeout_ms);
/* Entries queued or being sent. */
size_t fl_clean_pending(fl_cleaner_t *cl);

#endif /* FL_CLEAN_H */
