/* refresher.h — internals of wb-refresher shared by its .c files (not a public API). */
#ifndef WB_REFRESHER_H
#define WB_REFRESHER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <uthash.h>

#include "rf_collapse.h"
#include "wb_backoff.h"
#include "wb_config.h"
#include "wb_entry.h"
#include "wb_http.h"
#include "wb_metrics.h"

/* The services the refresher depends on; each has its own outage flag. */
typedef enum rf_dep_e { RF_DEP_PG = 0, RF_DEP_REDIS, RF_DEP_KAFKA, RF_DEP__COUNT } rf_dep_t;

/* Metric handles; every pointer may be NULL (updates are then no-ops). */
typedef struct rf_metrics_s {
    wb_metrics_t *reg;
    /* refresh-ahead */
    wb_counter_t *requests, *collapsed, *invalid, *reloaded, *extended, *skipped_newer;
    wb_counter_t *skipped_dirty, *missing, *fill_errors, *batches, *commit_failures;
    wb_histogram_t *batch_seconds;
    /* sweeper */
    wb_counter_t *swept, *sweep_failed, *unindexed, *passes, *unknown_entity, *sweep_poison;
    wb_histogram_t *pass_seconds;
    wb_gauge_t *leader, *dirty_entries, *dirty_oldest_age, *swept_oldest_age;
    /* operations */
    wb_counter_t *retries[RF_DEP__COUNT];
    wb_gauge_t *ready;
} rf_metrics_t;

/* One key to reload (owned copy of the cache key). */
typedef struct rf_item_s {
    const wb_entity_t *ent;
    char *key;
    size_t keylen;
    const char *topic; /* borrowed from the consumer's topic name (stable) */
    int32_t partition;
    UT_hash_handle hh; /* by id (key after the prefix), only during a flush */
} rf_item_t;

/* Requests consumed but not yet applied, and the offsets they cover. */
typedef struct rf_batch_s {
    rf_item_t *items;
    size_t n, cap;
    size_t nmsgs;                             /* messages consumed into it (collapsed included) */
    int64_t bytes;                            /* bytes of the items' keys */
    rd_kafka_topic_partition_list_t *offsets; /* next offset to commit per partition */
    int64_t opened_ms;                        /* monotonic time of its first message */
    uint64_t seq;                             /* batch number (the collapser's "batch") */
} rf_batch_t;

/* One entry a sweep pass re-publishes. */
typedef struct rf_swept_s {
    char *key; /* one allocation: key, NUL, value, NUL */
    size_t keylen;
    const char *value; /* inside key's allocation */
    size_t valuelen;
    int is_delete;
    int64_t version, write_us;
    char entity[WB_ENTRY_ENTITY_MAX]; /* the entity the put stored ("" if none) */
    int state;                        /* RF_SWEPT_* */
} rf_swept_t;

enum {
    RF_SWEPT_PENDING = 0,   /* queued, no acknowledgement yet */
    RF_SWEPT_DELIVERED = 1, /* acknowledged by Kafka */
    RF_SWEPT_FAILED = 2,    /* Kafka refused it or did not answer in time */
    RF_SWEPT_SKIPPED = 3,   /* not a valid event (logged) */
    RF_SWEPT_UNKNOWN = 4,   /* its key matches no configured entity */
    RF_SWEPT_POISON = 5     /* Kafka will never take it (too large, invalid record) */
};

typedef struct rf_s {
    const wb_config_t *conf;
    const char *dirty_index;
    PGconn *pg;
    wb_rc_t *redis;
    int64_t redis_retry_at_ms; /* no reconnect before this (backoff) */
    char redis_error[256];     /* why the last connection attempt failed */
    wb_backoff_t redis_backoff;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;          /* the sweeper's, idempotent, acks=all */
    rd_kafka_topic_t *changes_rkt; /* kept open so its metadata is known early */
    wb_http_t *http;
    rf_metrics_t m;
    rf_collapse_t *collapse;
    rf_batch_t batch;
    uint64_t rng;

    /* Outages: down[d] with its reason; ready only when none is down. */
    int down[RF_DEP__COUNT];
    char reason[RF_DEP__COUNT][256];
    int stopping;

    /* The batch failed: partitions paused, retried with backoff. */
    int paused;
    int64_t retry_at_ms;
    wb_backoff_t backoff;

    /* Sweeper. */
    char lease_key[256];
    char token[40];
    int leader;
    int64_t lease_ms;
    wb_backoff_t sweep_backoff;
    uint32_t pass_seq;
    rf_swept_t *swept;
    size_t nswept;

    /* Totals for the summary line. */
    uint64_t t_requests, t_collapsed, t_reloaded, t_extended, t_newer, t_dirty, t_missing;
    uint64_t t_swept, t_unindexed;
} rf_t;

/* ---- rf_core.c: setup, connections, readiness ---- */

/* Zeroes rf, keeps conf (borrowed), creates the metric registry and the
 * collapser. */
wb_err_t rf_init(rf_t *rf, const wb_config_t *conf);
/* Frees everything rf owns except the consumer (daemon.c closes it). */
void rf_fini(rf_t *rf);
/* Error callback of both Kafka handles (opaque = rf): "all brokers down"
 * marks Kafka down; others are logged. */
void rf_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
/* Creates the sweeper's producer (error callback set). */
wb_err_t rf_producer_open(rf_t *rf, char *errstr, size_t errstr_size);
/* Connects PostgreSQL if the connection is missing or broken. */
wb_err_t rf_pg_ensure(rf_t *rf, char *errstr, size_t errstr_size);
/* Connects Redis if needed (and loads the entry's scripts), at most once per
 * backoff step; WB_ERR_REDIS while waiting for the next attempt. */
wb_err_t rf_redis_ensure(rf_t *rf, char *errstr, size_t errstr_size);
/* Drops a Redis connection after an I/O error (reconnected later). */
void rf_redis_drop(rf_t *rf);
/* Marks dependency d down (why) or up, updating /readyz, the ready gauge
 * and, when going down or still down, the retry counter. */
void rf_set_down(rf_t *rf, rf_dep_t d, const char *why);
void rf_set_up(rf_t *rf, rf_dep_t d);
/* Recomputes /readyz from the flags (and rf->stopping). */
void rf_update_ready(rf_t *rf);

/* ---- rf_reload.c: refresh-ahead ---- */

/* Takes a consumed, error-free refresh request (the caller still destroys
 * msg): decodes and checks it (rf_request; an invalid one is counted,
 * logged and dropped), collapses repeats, adds the key to the batch, and
 * always records its offset for the commit. */
void rf_batch_add(rf_t *rf, const rd_kafka_message_t *msg);
/* 1 when the batch must be applied now (size or age). */
int rf_batch_due(const rf_t *rf, int64_t now_ms);
/* Reads the batch's rows from PostgreSQL, streamed, and applies them to
 * Redis with one pipelined fill per key, in chunks of at most
 * refresher.batch.max_bytes; then commits the offsets. A read failing for
 * its ids is split and a key PostgreSQL refuses is dropped. WB_OK: the
 * batch is done and empty. Otherwise (WB_ERR_PG / WB_ERR_REDIS) it is kept
 * for a retry and the matching dependency is marked down. */
wb_err_t rf_batch_flush(rf_t *rf, char *errstr, size_t errstr_size);
/* Forgets the items and offsets of revoked/lost partitions (uncommitted:
 * their new owner reads those requests again). */
void rf_batch_drop_partitions(rf_t *rf, const rd_kafka_topic_partition_list_t *parts);
/* Empties the batch without applying or committing. */
void rf_batch_discard(rf_t *rf);

/* ---- rf_sweep.c: the dirty sweeper ---- */

/* One pass if this replica holds (or takes) the lease: re-publishes every
 * entry dirty for longer than sweep_after_ms (at most sweep_max_per_pass),
 * waits for Kafka's acknowledgements, then moves their index score to now.
 * Unindexes members that are gone or clean. WB_OK also for a standby. */
wb_err_t rf_sweep_pass(rf_t *rf, char *errstr, size_t errstr_size);
/* Refreshes the dirty-index gauges (any replica). */
wb_err_t rf_sweep_gauges(rf_t *rf, char *errstr, size_t errstr_size);
/* Gives the lease back (shutdown) so another replica takes over at once. */
void rf_sweep_release(rf_t *rf);
/* Producer delivery report callback (set on the producer's conf). */
void rf_sweep_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);
/* 1 if Kafka will never accept a message that failed with err (too large
 * for the topic, an invalid record): the sweeper treats it as poison. */
int rf_sweep_permanent(rd_kafka_resp_err_t err);

/* ---- daemon.c ---- */
int rf_run(const wb_config_t *conf);

#endif /* WB_REFRESHER_H */
