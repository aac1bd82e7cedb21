/* daemon.c — wb-flusher's main loop: consumer group, batches, outages, rebalance, shutdown. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flusher.h"
#include "wb_daemon.h"
#include "wb_loop.h"
#include "wb_log.h"
#include "wb_util.h"

#define FL_POLL_MS          100
#define FL_BUSY_POLL_MS     5 /* while the writer runs: how soon its result is collected */
#define FL_LAG_EVERY_MS     1000
#define FL_SUMMARY_MS       10000
#define FL_CLOSE_RESERVE    2000 /* of the shutdown deadline, kept for leaving the group */
#define FL_OFFSETS_CHECK_MS 5000 /* how often the database's applied offsets are compared */

/* err says which dependency failed (WB_ERR_KAFKA: the dead-letter topic),
 * why the detail, which only the log gets. */
static void enter_outage(fl_t *fl, wb_err_t err, const char *why)
{
    int64_t delay = wb_backoff_next_ms(&fl->backoff);

    wb_counter_add(fl->m.retries, 1);
    fl->retry_at_ms = wb_time_mono_ms() + delay;
    /* The probe says which dependency, never why: the error names hosts and
     * users, and anyone who reaches the port reads it. The detail is in the
     * log line below and the retries counter. */
    fl->outage_reason =
        err == WB_ERR_KAFKA ? "dead-letter topic unavailable" : "postgres unavailable";
    if (!fl->outage) {
        /* Pausing keeps group membership (we go on polling) without
         * fetching more: nothing is skipped, the batch just waits. */
        fl->outage = 1;
        wb_daemon_pause_all(fl->consumer, 1);
        fl_ready_update(fl);
        WB_WARN("outage, consumption paused, retrying in %" PRId64 " ms: %s", delay, why);
    } else {
        WB_WARN("still failing, retrying in %" PRId64 " ms: %s", delay, why);
    }
}

static void leave_outage(fl_t *fl)
{
    if (!fl->outage) return;
    fl->outage = 0;
    wb_backoff_reset(&fl->backoff);
    wb_daemon_pause_all(fl->consumer, 0);
    fl_pause_gone(fl);
    fl_ready_update(fl);
    WB_INFO("recovered, consumption resumed");
}

/* Rebalance hooks: run on the thread that calls rd_kafka_consumer_poll
 * (ours), so they may use fl freely. Cooperative protocol: only the
 * partitions in parts move. */
static void on_assigned(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    fl_t *fl = opaque;

    fl_offsets_set_assigned(&fl->off, parts, 1);
    /* Seed the lag gauges with the group's committed offsets, so an idle
     * partition does not look behind until its first batch. */
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    if (rd_kafka_committed(rk, committed, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < committed->cnt; i++) {
            fl_part_t *p =
                fl_offsets_part(&fl->off, committed->elems[i].topic, committed->elems[i].partition);
            if (p && committed->elems[i].offset >= 0) p->committed = committed->elems[i].offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(committed);
    if (fl->outage) rd_kafka_pause_partitions(rk, parts);
    /* Is the database behind the group's offsets (restored, failed over)?
     * Checked at the next turn of the loop, with the writer idle; a batch
     * applied before that is refused by the database anyway (fl_apply). */
    fl->offsets_check_due = 1;
}

static void on_revoking(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    fl_t *fl = opaque;
    char errstr[512];

    if (rd_kafka_assignment_lost(rk)) {
        /* Someone else owns them already; committing would fail. */
        fl_drop_partitions(fl, parts);
    } else {
        /* Finish what is pending (the writer's batch and the one filling)
         * before the partitions go, and put the offsets on the broker, so
         * the next owner starts after what we wrote. */
        if (fl_pending(fl) > 0) {
            if (fl_flush(fl, errstr, sizeof(errstr)) != WB_OK) {
                WB_WARN("cannot finish the batch before revocation: %s", errstr);
                fl_drop_partitions(fl, parts);
            } else {
                fl->retry_at_ms = 0; /* it worked: an outage may end at once */
            }
        }
        fl_offsets_commit_sync(&fl->off, fl->consumer, parts);
    }
    fl_offsets_set_assigned(&fl->off, parts, 0);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    wb_daemon_rebalance(rk, err, parts, on_assigned, on_revoking, opaque);
}

/* The daemon loop's own state, handed to its periodic tasks. */
typedef struct fl_loop_s {
    fl_t *fl;
    uint64_t last_consumed;     /* t_consumed at the last summary */
    int64_t last_summary;       /* monotonic ms of the last summary */
    int64_t last_offsets_check; /* monotonic ms of the last fl_offsets_check */
} fl_loop_t;

static void log_summary(fl_loop_t *lp)
{
    fl_t *fl = lp->fl;
    int64_t now = wb_time_mono_ms(), elapsed_ms = now - lp->last_summary;
    double lag = fl_offsets_lag(&fl->off);

    WB_INFO("consumed %" PRIu64 " (%.0f/s), rows written %" PRIu64 ", already newer %" PRIu64
            ", coalesced %" PRIu64 ", dead-lettered %" PRIu64 ", batches %" PRIu64
            ", lag %.0f, clean pending %zu",
            fl->t_consumed,
            elapsed_ms > 0 ? (double)(fl->t_consumed - lp->last_consumed) * 1000.0 / elapsed_ms
                           : 0.0,
            fl->t_upserted, fl->t_stale, fl->t_coalesced, fl->t_dead, fl->t_batches, lag,
            fl_clean_pending(&fl->cl));
    lp->last_consumed = fl->t_consumed;
    lp->last_summary = now;
}

/* ---- periodic tasks (wb_timers) ---- */

static int64_t task_lag(void *arg)
{
    fl_loop_t *lp = arg;
    fl_offsets_update_lag(&lp->fl->off, lp->fl->consumer);
    return FL_LAG_EVERY_MS;
}

/* Only between batches, and not during an outage: then it waits. */
static int64_t task_purge(void *arg)
{
    fl_loop_t *lp = arg;
    fl_t *fl = lp->fl;
    char errstr[1024];

    if (fl->outage || fl_writer_busy(&fl->w)) return -1;
    if (fl_purge_run(&fl->purge, &fl->ap, errstr, sizeof(errstr)) != WB_OK)
        WB_WARN("tombstone purge: %s", errstr);
    return fl_purge_interval_ms(&fl->purge);
}

/* Compares the database's applied offsets with the consumer's positions:
 * right after an assignment, then every FL_OFFSETS_CHECK_MS (a restore or
 * failover while running; partitions held for retention). Only between
 * batches, not during an outage. */
static int64_t task_offsets(void *arg)
{
    fl_loop_t *lp = arg;
    fl_t *fl = lp->fl;
    int64_t now = wb_time_mono_ms();
    char errstr[1024];

    if (!fl->offsets_check_due && now - lp->last_offsets_check < FL_OFFSETS_CHECK_MS) return 100;
    if (fl->outage || fl_writer_busy(&fl->w) || fl->w.batch.n > 0) return -1;
    lp->last_offsets_check = now;
    if (fl_offsets_check(fl, errstr, sizeof(errstr)) != WB_OK)
        WB_WARN("cannot compare the consumer's offsets with PostgreSQL's: %s", errstr);
    return 100;
}

/* The offsets the last batches left pending (FL_COMMIT_EVERY_MS), once
 * traffic pauses; not while the writer runs (it adds to them). */
static int64_t task_commit(void *arg)
{
    fl_loop_t *lp = arg;

    if (fl_writer_busy(&lp->fl->w)) return -1;
    fl_offsets_commit_pending(&lp->fl->off, lp->fl->consumer);
    return FL_COMMIT_EVERY_MS;
}

static int64_t task_summary(void *arg)
{
    log_summary(arg);
    return FL_SUMMARY_MS;
}

/* ---- start and stop steps (wb_loop) ---- */

/* PostgreSQL and the schema, before readiness. */
static wb_err_t connect_pg(void *arg, char *errstr, size_t errstr_size)
{
    fl_t *fl = arg;
    wb_err_t err = fl_apply_pg_ensure(&fl->ap, errstr, errstr_size);

    /* The detail (errstr) goes to the log through wb_loop; the probe only
     * names the dependency (see enter_outage). */
    if (err != WB_OK && err != WB_ERR_CONFIG)
        wb_http_set_ready(fl->http, 0, "postgres unavailable");
    return err;
}

static wb_err_t drain(void *arg, char *errstr, size_t errstr_size)
{
    fl_t *fl = arg;
    return fl_pending(fl) > 0 ? fl_flush(fl, errstr, errstr_size) : WB_OK;
}

/* Adds what fl_take gets to the batch. A message taken before a
 * revocation in the same call belongs to a partition that is not ours any
 * more: it is dropped (its new owner reads it). */
static void take_messages(fl_t *fl, rd_kafka_queue_t *cq, int timeout_ms, int64_t *nudged_ms)
{
    rd_kafka_message_t *msgs[FL_TAKE_MAX];
    ssize_t n = fl_take(fl, cq, timeout_ms, nudged_ms, msgs);
    const rd_kafka_topic_t *last_rkt = NULL, *rewound_rkt = NULL;
    int32_t last_part = -1, rewound_part = -1;
    fl_part_t *p = NULL;

    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *msg = msgs[i];
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                WB_WARN("kafka: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (msg->rkt != last_rkt || msg->partition != last_part) {
            p = fl_offsets_part(&fl->off, rd_kafka_topic_name(msg->rkt), msg->partition);
            last_rkt = msg->rkt;
            last_part = msg->partition;
        }
        /* Not ours, or held (fl_offsets_check): it comes again after a seek. */
        if ((p && (!p->assigned || p->gone)) ||
            (rewound_rkt == msg->rkt && rewound_part == msg->partition)) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        int64_t next = msg->offset + 1;
        if (fl_consume(fl, msg) != 0) {
            /* Rewound to it (out of memory): what this call took after it
             * from the same partition comes again too, and must not be
             * batched (and committed) before it. */
            rewound_rkt = last_rkt;
            rewound_part = last_part;
        } else if (p) {
            p->taken = next;
        }
    }
}

int fl_run(const wb_config_t *conf)
{
    fl_t fl;
    fl_loop_t lp = {&fl, 0, 0, 0};
    wb_timers_t timers = {0};
    rd_kafka_queue_t *cq = NULL; /* the consumer's queue: messages and callbacks */
    int64_t nudged_ms = 0, now;
    char errstr[1024];
    int rc = 1;
    wb_err_t err;

    if (fl_init(&fl, conf) != WB_OK) {
        WB_ERROR("out of memory");
        return 1;
    }
    /* Start order: metrics + HTTP (not ready), PostgreSQL + schema (entity
     * tables, wb_offsets), dead-letter producer, consumer, the changes
     * topic's settings; ready. Torn down in reverse. */
    err = wb_http_start(conf->flusher.http_listen, fl.m.reg, &fl.http, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_ERROR("http %s: %s", conf->flusher.http_listen, errstr);
        goto out;
    }
    wb_http_set_ready(fl.http, 0, "connecting to PostgreSQL");
    switch (wb_loop_connect(&fl.backoff, connect_pg, &fl, errstr, sizeof(errstr))) {
    case 1:
        rc = 0;
        goto out;
    case -1:
        WB_ERROR("schema: %s", errstr);
        goto out;
    }
    /* wb_kafka_consumer_new forces manual offsets (invariant 5),
     * cooperative-sticky and auto.offset.reset=earliest. */
    if (fl_dlq_open(&fl.dlq, conf, errstr, sizeof(errstr)) != WB_OK ||
        !(fl.consumer = wb_daemon_consumer_new(conf, "flusher", conf->flusher.group_id,
                                               conf->flusher.instance_id, rebalance_cb, NULL,
                                               fl_offset_commit_cb, &fl, errstr, sizeof(errstr))) ||
        wb_daemon_subscribe(fl.consumer, conf->kafka.topic_changes, errstr, sizeof(errstr)) != 0) {
        WB_ERROR("%s", errstr);
        goto out;
    }
    /* The topic's settings decide whether replay and the purge are safe. */
    fl_topic_conf_t tc;
    err = fl_topic_describe(fl.consumer, conf->kafka.topic_changes, 10000, &tc, errstr,
                            sizeof(errstr));
    if (err == WB_OK) {
        if (fl_topic_check(&tc, conf->kafka.topic_changes, conf->flusher.tombstone_retention_ms,
                           errstr, sizeof(errstr)) != WB_OK) {
            WB_ERROR("%s", errstr);
            goto out;
        }
    } else {
        WB_WARN("topic settings not checked (cleanup.policy, retention.ms, segment.ms): %s",
                errstr);
    }
    cq = rd_kafka_queue_get_consumer(fl.consumer);
    fl_ready_update(&fl);
    WB_INFO("ready: group %s, topic %s, %zu entities, http %s (port %d)", conf->flusher.group_id,
            conf->kafka.topic_changes, conf->nentities, conf->flusher.http_listen,
            wb_http_port(fl.http));

    lp.last_summary = wb_time_mono_ms();
    wb_timers_add(&timers, task_lag, &lp, 0);
    wb_timers_add(&timers, task_purge, &lp, fl_purge_interval_ms(&fl.purge));
    wb_timers_add(&timers, task_summary, &lp, FL_SUMMARY_MS);
    wb_timers_add(&timers, task_offsets, &lp, 0);
    wb_timers_add(&timers, task_commit, &lp, FL_COMMIT_EVERY_MS);
    /* The polling thread consumes and decodes the next batch while the
     * writer applies the previous one; it keeps filling (even past
     * max_wait_ms) until the writer is free or the batch is full. With the
     * writer idle, a batch leaves as soon as the consumer has caught up
     * with what the broker holds (idle flush: at low load an event waits
     * for no timer), else when full or max_wait_ms old. */
    while (!wb_loop_stopping()) {
        wb_err_t werr = WB_OK;
        int got;

        now = wb_time_mono_ms();
        int busy = fl_writer_busy(&fl.w);
        if (busy && fl_batch_full(&fl.batch, conf)) {
            got = fl_collect(&fl, FL_POLL_MS, &werr, errstr, sizeof(errstr));
        } else {
            int timeout = busy ? FL_BUSY_POLL_MS : FL_POLL_MS;
            if (!busy && !fl.outage && fl.batch.n > 0) {
                int64_t left = fl.batch.opened_ms + conf->flusher.batch_max_wait_ms - now;
                if (left < timeout) timeout = left < 0 ? 0 : (int)left;
            }
            take_messages(&fl, cq, timeout, &nudged_ms);
            got = busy && fl_collect(&fl, 0, &werr, errstr, sizeof(errstr));
        }
        if (got) {
            if (werr == WB_OK)
                leave_outage(&fl);
            else
                enter_outage(&fl, werr, errstr); /* the batch is held for a retry */
        }
        /* Between collecting a batch and submitting the next, the writer is
         * idle: the moment for the tasks that need it so. */
        wb_timers_run(&timers);
        now = wb_time_mono_ms();
        if (!fl_writer_busy(&fl.w)) {
            if (fl.w.batch.n > 0) { /* held after a failure */
                if (now >= fl.retry_at_ms) fl_submit(&fl);
            } else if (fl.outage) {
                if (fl.batch.n == 0)
                    leave_outage(&fl); /* the batch left with a revoked partition */
                else if (now >= fl.retry_at_ms)
                    fl_submit(&fl);
            } else if (fl_batch_due(&fl.batch, conf, now,
                                    fl.batch.n > 0 && fl_offsets_caught_up(&fl.off, fl.consumer))) {
                fl_submit(&fl);
            }
        }
    }

    /* Graceful stop: no more intake, finish and commit what is pending, leave. */
    int64_t deadline = wb_time_mono_ms() + conf->flusher.shutdown_deadline_ms - FL_CLOSE_RESERVE;
    WB_INFO("stopping: finishing %zu buffered events", fl_pending(&fl));
    wb_http_set_ready(fl.http, 0, "shutting down");
    rc = 0;
    if (wb_loop_drain(&fl.backoff, deadline, drain, &fl, errstr, sizeof(errstr)) != WB_OK) {
        /* Not committed, so not lost: the group re-delivers them. */
        WB_ERROR("shutdown deadline: %zu events not written (they stay in Kafka "
                 "uncommitted): %s",
                 fl_pending(&fl), errstr);
        fl_discard(&fl);
        rc = 1;
    }
    fl_offsets_commit_sync(&fl.off, fl.consumer, NULL);
    int64_t left = deadline - wb_time_mono_ms();
    size_t dirty = fl_clean_wait(&fl.cl, left > 0 ? left : 0);
    if (dirty)
        WB_WARN("%zu cache entries not marked clean before the deadline (they stay dirty; the "
                "sweeper re-publishes them)",
                dirty);
    log_summary(&lp);
out:
    fl_discard(&fl); /* messages must go before their consumer */
    if (cq) rd_kafka_queue_destroy(cq);
    if (fl.consumer) {
        rd_kafka_consumer_close(fl.consumer);
        rd_kafka_destroy(fl.consumer);
        fl.consumer = NULL;
    }
    fl_fini(&fl);
    if (rc == 0) WB_INFO("stopped");
    return rc;
}
