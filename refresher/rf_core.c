/* rf_core.c — wb-refresher's state: metrics, connections with backoff, readiness. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "rf_util.h"
#include "wb_daemon.h"
#include "wb_entry.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_util.h"

/* ------------------------------------------------------------------ setup */

static const double batch_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10};

static const char *const dep_names[RF_DEP__COUNT] = {"postgres", "redis", "kafka"};

wb_err_t rf_init(rf_t *rf, const wb_config_t *conf)
{
    rf_metrics_t *m = &rf->m;
    const int64_t interval = conf->refresher.sweep_interval_ms;

    memset(rf, 0, sizeof(*rf));
    rf->conf = conf;
    rf->dirty_index = conf->redis.dirty_index && conf->redis.dirty_index[0]
                          ? conf->redis.dirty_index
                          : WB_ENTRY_DEFAULT_DIRTY_INDEX;
    rf->rng = wb_random_seed();
    wb_backoff_init(&rf->backoff, conf->refresher.retry_initial_ms, conf->refresher.retry_max_ms,
                    wb_random_seed());
    wb_backoff_init(&rf->redis_backoff, conf->refresher.retry_initial_ms,
                    conf->refresher.retry_max_ms, wb_random_seed());
    wb_backoff_init(&rf->sweep_backoff, conf->refresher.retry_initial_ms,
                    conf->refresher.retry_max_ms, wb_random_seed());
    /* The lease outlives several passes and the longest delivery wait, so
     * a healthy holder never loses it between renewals; a dead one is
     * replaced after at most lease_ms. */
    rf->lease_ms = 3 * interval > 20000 + interval ? 3 * interval : 20000 + interval;
    if (rf_lease_key(rf->dirty_index, rf->lease_key, sizeof(rf->lease_key)) != 0)
        return WB_ERR_INVALID_ARG;
    snprintf(rf->token, sizeof(rf->token), "%016" PRIx64 "%016" PRIx64, wb_random_seed(),
             wb_random_seed());
    rf->batch.offsets = rd_kafka_topic_partition_list_new(8);
    rf->collapse = rf_collapse_new(conf->refresher.collapse_window_ms, 0);
    if (!rf->batch.offsets || !rf->collapse || !(m->reg = wb_metrics_new())) return WB_ERR_NOMEM;

#define COUNTER(field, name, help)                                                                 \
    m->field = wb_metrics_counter_with(wb_metrics_counter(m->reg, name, help, NULL), NULL)
#define GAUGE(field, name, help)                                                                   \
    m->field = wb_metrics_gauge_with(wb_metrics_gauge(m->reg, name, help, NULL), NULL)
    COUNTER(requests, "wb_refresher_requests_total", "Refresh requests consumed.");
    COUNTER(collapsed, "wb_refresher_requests_collapsed_total",
            "Requests dropped: the key was already reloaded within collapse_window_ms.");
    COUNTER(
        invalid, "wb_refresher_requests_invalid_total",
        "Requests dropped: undecodable, no configured entity, or a key PostgreSQL cannot hold.");
    COUNTER(reloaded, "wb_refresher_reloads_total",
            "Cache entries created or replaced from PostgreSQL (older or absent before).");
    COUNTER(extended, "wb_refresher_ttl_extended_total",
            "Clean entries already at PostgreSQL's version whose TTL was extended.");
    COUNTER(skipped_newer, "wb_refresher_skipped_newer_total",
            "Fills skipped because the cache holds a newer version than PostgreSQL.");
    COUNTER(skipped_dirty, "wb_refresher_skipped_dirty_total",
            "Fills skipped because the entry is dirty (a write not yet in PostgreSQL).");
    COUNTER(missing, "wb_refresher_rows_missing_total",
            "Requested keys without a row in PostgreSQL (cache left as it is).");
    COUNTER(fill_errors, "wb_refresher_fill_errors_total",
            "Fill scripts Redis answered with an error (e.g. key of another type).");
    COUNTER(batches, "wb_refresher_batches_total", "Refresh batches applied and committed.");
    COUNTER(commit_failures, "wb_refresher_commit_failures_total",
            "Offset commits that failed after the batch was applied (requests come again).");
    m->batch_seconds = wb_metrics_histogram_with(
        wb_metrics_histogram(m->reg, "wb_refresher_batch_duration_seconds",
                             "Time to reload, fill and commit one batch.", batch_buckets,
                             sizeof(batch_buckets) / sizeof(batch_buckets[0]), NULL),
        NULL);
    COUNTER(swept, "wb_refresher_swept_total",
            "Dirty entries re-published by the sweeper and acknowledged by Kafka.");
    COUNTER(sweep_failed, "wb_refresher_sweep_failed_total",
            "Re-publications Kafka did not acknowledge (retried next pass).");
    COUNTER(sweep_poison, "wb_refresher_sweep_poison_total",
            "Dirty entries Kafka will never accept (above the topic's max.message.bytes, "
            "invalid record): logged as errors and retried only hourly.");
    COUNTER(unindexed, "wb_refresher_sweep_unindexed_total",
            "Dirty-index members removed because their entry is gone or clean.");
    COUNTER(unknown_entity, "wb_refresher_sweep_unknown_entity_total",
            "Dirty entries whose key matches no configured entity (not re-published).");
    COUNTER(passes, "wb_refresher_sweep_passes_total", "Sweep passes run while holding the lease.");
    m->pass_seconds = wb_metrics_histogram_with(
        wb_metrics_histogram(m->reg, "wb_refresher_sweep_duration_seconds",
                             "Time of one sweep pass, delivery included.", batch_buckets,
                             sizeof(batch_buckets) / sizeof(batch_buckets[0]), NULL),
        NULL);
    GAUGE(leader, "wb_refresher_sweep_leader", "1 while this replica holds the sweeper lease.");
    GAUGE(dirty_entries, "wb_refresher_dirty_entries", "Members of the dirty index.");
    GAUGE(dirty_oldest_age, "wb_refresher_dirty_oldest_age_seconds",
          "Age of the lowest dirty-index score: time since the oldest dirty entry was written "
          "or last re-published by the sweeper.");
    GAUGE(swept_oldest_age, "wb_refresher_swept_oldest_write_age_seconds",
          "Write age of the oldest entry the last sweep pass re-published (0: none).");
    GAUGE(ready, "wb_refresher_ready", "1 when every dependency is reachable, else 0.");
#undef COUNTER
#undef GAUGE
    wb_metric_family_t *retries =
        wb_metrics_counter(m->reg, "wb_refresher_retries_total",
                           "Operations that failed for an outage of a dependency and were retried.",
                           "dependency", NULL);
    for (int d = 0; d < RF_DEP__COUNT; d++)
        m->retries[d] = wb_metrics_counter_with(retries, dep_names[d], NULL);
    return WB_OK;
}

void rf_fini(rf_t *rf)
{
    rf_batch_discard(rf);
    free(rf->batch.items);
    if (rf->batch.offsets) rd_kafka_topic_partition_list_destroy(rf->batch.offsets);
    /* The producer first: its delivery reports point into swept. */
    rf->pass_seq++;
    if (rf->changes_rkt) rd_kafka_topic_destroy(rf->changes_rkt);
    if (rf->producer) rd_kafka_destroy(rf->producer);
    for (size_t i = 0; i < rf->nswept; i++)
        free(rf->swept[i].key);
    free(rf->swept);
    wb_rc_free(rf->redis);
    if (rf->pg) PQfinish(rf->pg);
    rf_collapse_destroy(rf->collapse);
    /* The HTTP server renders the registry: stop it first. */
    wb_http_stop(rf->http);
    wb_metrics_destroy(rf->m.reg);
    memset(rf, 0, sizeof(*rf));
}

wb_err_t rf_producer_open(rf_t *rf, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kc = wb_daemon_kafka_conf(rf->conf, "refresher", 0, errstr, errstr_size);

    if (!kc) return WB_ERR_KAFKA;
    rd_kafka_conf_set_dr_msg_cb(kc, rf_sweep_dr_cb);
    rd_kafka_conf_set_error_cb(kc, rf_kafka_error_cb);
    rd_kafka_conf_set_opaque(kc, rf);
    /* Idempotent with acks=all: a re-published event is acknowledged only
     * once every in-sync replica has it, as the library's ack: log does. */
    if (wb_kafka_producer_new(kc, 1, &rf->producer, errstr, errstr_size) != WB_OK) {
        rd_kafka_conf_destroy(kc);
        return WB_ERR_KAFKA;
    }
    /* A topic handle kept open makes librdkafka learn the topic's leaders
     * now, in the background, rather than when the first stranded entry is
     * produced. */
    rf->changes_rkt = rd_kafka_topic_new(rf->producer, rf->conf->kafka.topic_changes, NULL);
    return WB_OK;
}

/* Runs on the thread polling the handle (ours: the daemon loop and the
 * sweeper's delivery wait), so it may touch rf. Without it librdkafka
 * would only log these errors, and "all brokers down" would never reach
 * /readyz. */
void rf_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    rf_t *rf = opaque;

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        rf_set_down(rf, RF_DEP_KAFKA, reason);
    } else if (rd_kafka_fatal_error(rk, NULL, 0)) {
        WB_ERROR("kafka %s: fatal: %s", rd_kafka_name(rk), reason);
    } else {
        /* The log callback already printed it (WB_KAFKA_F_LOG_STDERR). */
        WB_DEBUG("kafka %s: %s", rd_kafka_name(rk), reason);
    }
}

/* --------------------------------------------------------------- connections */

wb_err_t rf_pg_ensure(rf_t *rf, char *errstr, size_t errstr_size)
{
    if (rf->pg && PQstatus(rf->pg) == CONNECTION_OK && PQtransactionStatus(rf->pg) == PQTRANS_IDLE)
        return WB_OK;
    if (rf->pg) {
        PQfinish(rf->pg);
        rf->pg = NULL;
    }
    wb_err_t err = wb_pg_connect(rf->conf, &rf->pg, errstr, errstr_size);
    if (err != WB_OK) return err == WB_ERR_CONFIG ? WB_ERR_CONFIG : WB_ERR_PG;
    return WB_OK;
}

wb_err_t rf_redis_ensure(rf_t *rf, char *errstr, size_t errstr_size)
{
    int64_t now = wb_time_mono_ms();
    wb_err_t err;

    if (rf->redis && !wb_rc_failed(rf->redis)) return WB_OK;
    rf_redis_drop(rf);
    if (now < rf->redis_retry_at_ms) {
        wb_set_err(errstr, errstr_size, "%s (next connection attempt in %" PRId64 " ms)",
                   rf->redis_error, rf->redis_retry_at_ms - now);
        return WB_ERR_REDIS;
    }
    /* Connected, layout checked, the entry's scripts loaded. */
    if ((err = wb_entry_open(rf->conf, &rf->redis, errstr, errstr_size)) != WB_OK) {
        rf_redis_drop(rf);
        rf->redis_retry_at_ms = now + wb_backoff_next_ms(&rf->redis_backoff);
        snprintf(rf->redis_error, sizeof(rf->redis_error), "%.200s", errstr ? errstr : "");
        return err;
    }
    wb_backoff_reset(&rf->redis_backoff);
    return WB_OK;
}

void rf_redis_drop(rf_t *rf)
{
    wb_rc_free(rf->redis);
    rf->redis = NULL;
    /* The lease may still be ours in Redis; renewing with the token after
     * reconnecting keeps it, and if it expired meanwhile we take it again
     * like anyone else. */
}

/* ---------------------------------------------------------------- readiness */

void rf_update_ready(rf_t *rf)
{
    const char *why = NULL;
    char buf[300];

    /* The probe names the dependency, never its error: that names hosts
     * and users, and anyone who reaches the port reads it. The detail is in
     * the log (rf_set_down) and the retries counter. */
    for (int d = 0; d < RF_DEP__COUNT && !why; d++)
        if (rf->down[d]) {
            snprintf(buf, sizeof(buf), "%s unavailable", dep_names[d]);
            why = buf;
        }
    if (rf->stopping) why = "shutting down";
    wb_http_set_ready(rf->http, why == NULL, why);
    wb_gauge_set(rf->m.ready, why == NULL ? 1 : 0);
}

void rf_set_down(rf_t *rf, rf_dep_t d, const char *why)
{
    wb_counter_add(rf->m.retries[d], 1);
    snprintf(rf->reason[d], sizeof(rf->reason[d]), "%.200s", why ? why : "unavailable");
    if (!rf->down[d]) {
        rf->down[d] = 1;
        WB_WARN("%s unavailable, not ready: %s", dep_names[d], rf->reason[d]);
    }
    rf_update_ready(rf);
}

void rf_set_up(rf_t *rf, rf_dep_t d)
{
    if (!rf->down[d]) return;
    rf->down[d] = 0;
    rf->reason[d][0] = '\0';
    WB_INFO("%s reachable again", dep_names[d]);
    rf_update_ready(rf);
}
