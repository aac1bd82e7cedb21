/* daemon.c — wb-refresher's main loop: consumer group, refresh batches, sweeps, outages, shutdown.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "wb_daemon.h"
#include "wb_loop.h"
#include "wb_log.h"
#include "wb_util.h"

#define RF_POLL_MS       100
#define RF_GAUGES_MS     1000
#define RF_SUMMARY_MS    10000
#define RF_CLOSE_RESERVE 2000 /* of the shutdown deadline, kept for leaving the group */

/* The batch failed (PostgreSQL or Redis): stop fetching, retry later. The
 * dependency was marked down (not ready) by rf_batch_flush. */
static void batch_failed(rf_t *rf, const char *why)
{
    int64_t delay = wb_backoff_next_ms(&rf->backoff);

    rf->retry_at_ms = wb_time_mono_ms() + delay;
    if (!rf->paused) {
        /* Pausing keeps group membership (we go on polling) without
         * fetching more; the batch just waits. */
        rf->paused = 1;
        wb_daemon_pause_all(rf->consumer, 1);
        WB_WARN("refresh batch failed, consumption paused, retrying in %" PRId64 " ms: %s", delay,
                why);
    } else {
        WB_WARN("refresh batch still failing, retrying in %" PRId64 " ms: %s", delay, why);
    }
}

static void batch_done(rf_t *rf)
{
    if (!rf->paused) return;
    rf->paused = 0;
    wb_backoff_reset(&rf->backoff);
    wb_daemon_pause_all(rf->consumer, 0);
    WB_INFO("refresh batches flowing again, consumption resumed");
}

/* Rebalance hooks: run on the thread that calls rd_kafka_consumer_poll
 * (ours), so they may use rf freely. Cooperative protocol: only the
 * partitions in parts move. */
static void on_assigned(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    rf_t *rf = opaque;

    if (rf->paused) rd_kafka_pause_partitions(rk, parts);
}

static void on_revoking(void *opaque, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    rf_t *rf = opaque;
    char errstr[512];

    if (rd_kafka_assignment_lost(rk)) {
        rf_batch_drop_partitions(rf, parts);
    } else if (rf->batch.nmsgs > 0) {
        /* Apply and commit before the partitions go, so the next owner
         * does not redo them. Failing that, they are simply redone. */
        if (rf_batch_flush(rf, errstr, sizeof(errstr)) != WB_OK) {
            WB_WARN("cannot finish the refresh batch before revocation: %s", errstr);
            rf_batch_drop_partitions(rf, parts);
        }
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    wb_daemon_rebalance(rk, err, parts, on_assigned, on_revoking, opaque);
}

/* While Kafka is marked down, ask a broker for metadata to notice it is
 * back even when no request arrives and the sweeper has nothing to send. */
static void probe_kafka(rf_t *rf)
{
    const struct rd_kafka_metadata *md = NULL;

    if (!rf->down[RF_DEP_KAFKA]) return;
    if (rf->producer && rd_kafka_outq_len(rf->producer) > 0)
        return; /* the sweeper is still waiting on it */
    if (rd_kafka_metadata(rf->consumer, 0, NULL, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        rf_set_up(rf, RF_DEP_KAFKA);
    }
}

static void log_summary(rf_t *rf)
{
    WB_INFO("requests %" PRIu64 " (collapsed %" PRIu64 "), reloaded %" PRIu64
            ", ttl extended %" PRIu64 ", skipped newer %" PRIu64 ", skipped dirty %" PRIu64
            ", no row %" PRIu64 "; swept %" PRIu64 ", unindexed %" PRIu64 "%s",
            rf->t_requests, rf->t_collapsed, rf->t_reloaded, rf->t_extended, rf->t_newer,
            rf->t_dirty, rf->t_missing, rf->t_swept, rf->t_unindexed,
            rf->leader ? " (sweeper lease held)" : "");
}

/* ---- start and stop steps (wb_loop) ---- */

/* PostgreSQL, then Redis, before readiness. Only a PostgreSQL
 * configuration error is fatal. */
static wb_err_t connect_deps(void *arg, char *errstr, size_t errstr_size)
{
    rf_t *rf = arg;
    wb_err_t err = rf_pg_ensure(rf, errstr, errstr_size);

    if (err == WB_ERR_CONFIG) return err;
    if (err != WB_OK) {
        rf_set_down(rf, RF_DEP_PG, errstr);
        return err;
    }
    rf_set_up(rf, RF_DEP_PG);
    err = rf_redis_ensure(rf, errstr, errstr_size);
    if (err != WB_OK) {
        rf_set_down(rf, RF_DEP_REDIS, errstr);
        return WB_ERR_REDIS;
    }
    rf_set_up(rf, RF_DEP_REDIS);
    return WB_OK;
}

static wb_err_t drain(void *arg, char *errstr, size_t errstr_size)
{
    rf_t *rf = arg;
    return rf->batch.nmsgs > 0 ? rf_batch_flush(rf, errstr, errstr_size) : WB_OK;
}

/* ---- periodic tasks (wb_timers) ---- */

/* A failed pass is tried again after a backoff, never sooner than the
 * interval. */
static int64_t task_sweep(void *arg)
{
    rf_t *rf = arg;
    int64_t every = rf->conf->refresher.sweep_interval_ms;
    char errstr[1024];

    if (rf_sweep_pass(rf, errstr, sizeof(errstr)) == WB_OK) {
        wb_backoff_reset(&rf->sweep_backoff);
        return every;
    }
    int64_t delay = wb_backoff_next_ms(&rf->sweep_backoff);
    if (delay < every) delay = every;
    WB_WARN("sweep failed, next attempt in %" PRId64 " ms: %s", delay, errstr);
    return delay;
}

static int64_t task_gauges(void *arg)
{
    rf_t *rf = arg;
    char errstr[1024];

    if (rf_sweep_gauges(rf, errstr, sizeof(errstr)) == WB_OK)
        rf_set_up(rf, RF_DEP_REDIS);
    else
        rf_set_down(rf, RF_DEP_REDIS, errstr);
    probe_kafka(rf);
    return RF_GAUGES_MS;
}

static int64_t task_summary(void *arg)
{
    log_summary(arg);
    return RF_SUMMARY_MS;
}

int rf_run(const wb_config_t *conf)
{
    rf_t rf;
    wb_timers_t timers = {0};
    char errstr[1024];
    int rc = 1;
    wb_err_t err;
    int64_t now, nudged_ms = 0;

    if (rf_init(&rf, conf) != WB_OK) {
        WB_ERROR("cannot start: out of memory, or redis.dirty_index too long for the lease key");
        rf_fini(&rf);
        return 1;
    }
    /* Start order: metrics + HTTP (not ready), PostgreSQL + Redis, sweeper
     * producer, consumer; ready. Torn down in reverse. */
    err = wb_http_start(conf->refresher.http_listen, rf.m.reg, &rf.http, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_ERROR("http %s: %s", conf->refresher.http_listen, errstr);
        goto out;
    }
    wb_http_set_ready(rf.http, 0, "connecting to PostgreSQL and Redis");
    switch (wb_loop_connect(&rf.backoff, connect_deps, &rf, errstr, sizeof(errstr))) {
    case 1:
        rc = 0;
        goto out;
    case -1:
        WB_ERROR("postgres: %s", errstr);
        goto out;
    }
    /* Manual offsets, cooperative-sticky, earliest: wb_kafka_consumer_new. */
    if (rf_producer_open(&rf, errstr, sizeof(errstr)) != WB_OK ||
        !(rf.consumer = wb_daemon_consumer_new(
              conf, "refresher", conf->refresher.group_id, conf->refresher.instance_id,
              rebalance_cb, rf_kafka_error_cb, NULL, &rf, errstr, sizeof(errstr))) ||
        wb_daemon_subscribe(rf.consumer, conf->kafka.topic_refresh, errstr, sizeof(errstr)) != 0) {
        WB_ERROR("%s", errstr);
        goto out;
    }
    rf_update_ready(&rf);
    WB_INFO("ready: group %s, topic %s, dirty index %s (sweep every %d ms, after %d ms), "
            "%zu entities, http %s (port %d)",
            conf->refresher.group_id, conf->kafka.topic_refresh, rf.dirty_index,
            conf->refresher.sweep_interval_ms, conf->refresher.sweep_after_ms, conf->nentities,
            conf->refresher.http_listen, wb_http_port(rf.http));

    wb_timers_add(&timers, task_sweep, &rf, conf->refresher.sweep_interval_ms);
    wb_timers_add(&timers, task_gauges, &rf, 0);
    wb_timers_add(&timers, task_summary, &rf, RF_SUMMARY_MS);
    while (!wb_loop_stopping()) {
        now = wb_time_mono_ms();
        int timeout = RF_POLL_MS;
        if (!rf.paused && rf.batch.nmsgs > 0) {
            int64_t left = rf.batch.opened_ms + conf->refresher.batch_max_wait_ms - now;
            timeout = left < 0 ? 0 : (left < RF_POLL_MS ? (int)left : RF_POLL_MS);
        }
        /* Nothing queued: wake a fetcher that stopped on a full queue
         * (wb_daemon_nudge_fetcher) before waiting. */
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rf.consumer, 0);
        if (!msg && timeout > 0) {
            if (!rf.paused) wb_daemon_nudge_fetcher(rf.consumer, &nudged_ms);
            msg = rd_kafka_consumer_poll(rf.consumer, timeout);
        }
        if (msg) {
            if (!msg->err) {
                rf_batch_add(&rf, msg);
                rf_set_up(&rf, RF_DEP_KAFKA);
            } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                WB_WARN("kafka: %s", rd_kafka_message_errstr(msg));
            }
            rd_kafka_message_destroy(msg);
        }
        if (rf.producer) rd_kafka_poll(rf.producer, 0);
        now = wb_time_mono_ms();
        if (rf.paused ? (now >= rf.retry_at_ms && rf.batch.nmsgs > 0) : rf_batch_due(&rf, now)) {
            if (rf_batch_flush(&rf, errstr, sizeof(errstr)) == WB_OK)
                batch_done(&rf);
            else
                batch_failed(&rf, errstr);
        } else if (rf.paused && rf.batch.nmsgs == 0) {
            batch_done(&rf); /* the batch left with a revoked partition */
        }
        wb_timers_run(&timers);
    }

    /* Graceful stop: no more intake, finish and commit the batch, give the
     * lease back, leave the group. */
    int64_t deadline = wb_time_mono_ms() + conf->refresher.shutdown_deadline_ms - RF_CLOSE_RESERVE;
    WB_INFO("stopping: finishing %zu buffered refresh requests", rf.batch.nmsgs);
    rf.stopping = 1;
    rf_update_ready(&rf);
    rc = 0;
    if (wb_loop_drain(&rf.backoff, deadline, drain, &rf, errstr, sizeof(errstr)) != WB_OK) {
        /* Not committed: the group hands these requests out again. */
        WB_WARN("shutdown deadline: %zu refresh requests not applied (left uncommitted): %s",
                rf.batch.nmsgs, errstr);
        rf_batch_discard(&rf);
    }
    rf_sweep_release(&rf);
    log_summary(&rf);
out:
    if (rf.consumer) {
        rd_kafka_consumer_close(rf.consumer);
        rd_kafka_destroy(rf.consumer);
        rf.consumer = NULL;
    }
    if (rf.producer) {
        /* Whatever the last pass left unacknowledged is re-sent by the next
         * sweeper (its score was not moved): no need to wait long. */
        rf.pass_seq++;
        rd_kafka_flush(rf.producer, 1000);
        rd_kafka_purge(rf.producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(rf.producer, 0);
    }
    rf_fini(&rf);
    if (rc == 0) WB_INFO("stopped");
    return rc;
}
