/* wb_daemon.c — Kafka group-consumer plumbing the daemons share: conf, consumer, rebalance, pause.
 */
#include "wb_daemon.h"

#include <string.h>

#define WB_DAEMON_NUDGE_MS         5   /* wb_daemon_nudge_fetcher: at most this often */
#define WB_DAEMON_NUDGE_TIMEOUT_MS 100 /* the reply is not needed */

#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_util.h"

rd_kafka_conf_t *wb_daemon_kafka_conf(const wb_config_t *conf, const char *role, unsigned flags,
                                      char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kc = NULL;

    if (wb_kafka_conf_new(conf, role, WB_KAFKA_F_LOG_STDERR | flags, &kc, errstr, errstr_size) !=
        WB_OK)
        return NULL;
    return kc;
}

/* Sets name=value on kc unless kafka.properties names it. */
static int set_default(const wb_config_t *conf, rd_kafka_conf_t *kc, const char *name,
                       const char *value, char *errstr, size_t errstr_size)
{
    char why[512];

    for (size_t i = 0; i < conf->kafka.nprops; i++)
        if (conf->kafka.props[i].name && !strcmp(conf->kafka.props[i].name, name)) return 0;
    if (rd_kafka_conf_set(kc, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return 0;
    wb_set_err(errstr, errstr_size, "kafka: cannot set %s=%s: %s", name, value, why);
    return -1;
}

rd_kafka_t *wb_daemon_consumer_new(const wb_config_t *conf, const char *role, const char *group_id,
                                   const char *instance_id,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void (*error_cb)(rd_kafka_t *, int, const char *, void *),
                                   void (*offset_commit_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                            rd_kafka_topic_partition_list_t *,
                                                            void *),
                                   void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *kc =
        wb_daemon_kafka_conf(conf, role, WB_KAFKA_F_SMALL_PREFETCH, errstr, errstr_size);

    if (!kc) return NULL;
    /* Static membership: a member restarting under the same id takes its
     * partitions back at once, without waiting for its old session. */
    if (set_default(conf, kc, "session.timeout.ms", WB_DAEMON_SESSION_TIMEOUT_MS, errstr,
                    errstr_size) != 0 ||
        set_default(conf, kc, "heartbeat.interval.ms", WB_DAEMON_HEARTBEAT_MS, errstr,
                    errstr_size) != 0 ||
        (instance_id && instance_id[0] &&
         set_default(conf, kc, "group.instance.id", instance_id, errstr, errstr_size) != 0)) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    if (error_cb) rd_kafka_conf_set_error_cb(kc, error_cb);
    if (offset_commit_cb) rd_kafka_conf_set_offset_commit_cb(kc, offset_commit_cb);
    rd_kafka_conf_set_opaque(kc, opaque);
    if (wb_kafka_consumer_new(kc, group_id, &rk, errstr, errstr_size) != WB_OK) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    return rk;
}

int wb_daemon_subscribe(rd_kafka_t *rk, const char *topic, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        wb_set_err(errstr, errstr_size, "subscribe %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

void wb_daemon_pause_all(rd_kafka_t *rk, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;

    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts) return;
    if (parts->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(rk, parts);
        else
            rd_kafka_resume_partitions(rk, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void wb_daemon_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, wb_daemon_parts_fn *assigned,
                         wb_daemon_parts_fn *revoking, void *opaque)
{
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        error = rd_kafka_incremental_assign(rk, parts);
        assigned(opaque, rk, parts);
        WB_INFO("assigned %d partition(s)", parts->cnt);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        revoking(opaque, rk, parts);
        error = rd_kafka_incremental_unassign(rk, parts);
        WB_INFO("revoked %d partition(s)", parts->cnt);
    } else {
        WB_ERROR("rebalance error: %s", rd_kafka_err2str(err));
    }
    if (error) {
        WB_ERROR("rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* librdkafka 2.0 stops fetching a partition once the local queue holds
 * queued.min.messages or queued.max.messages.kbytes, and looks again only
 * when its broker thread wakes up: after up to a second when nothing else
 * happens (fetch.queue.backoff.ms, which fixes that, came in 2.1). A
 * consumer that drains slower than Kafka delivers would idle most of that
 * second. A ListOffsets request to a partition's leader wakes that
 * broker's thread, which then decides to fetch again.
 * rd_kafka_offsets_for_times sends one per leader broker and, unlike
 * rd_kafka_query_watermark_offsets, gives up after its timeout (the
 * answer is not needed). */
void wb_daemon_nudge_fetcher(rd_kafka_t *rk, int64_t *last_ms)
{
    rd_kafka_topic_partition_list_t *parts = NULL, *lagging;
    int64_t now_ms = wb_time_mono_ms(), lo, hi;

    if (now_ms - *last_ms < WB_DAEMON_NUDGE_MS) return;
    *last_ms = now_ms;
    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts) return;
    lagging = rd_kafka_topic_partition_list_new(parts->cnt > 0 ? parts->cnt : 1);
    if (parts->cnt > 0 && rd_kafka_position(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &parts->elems[i];
            if (tp->offset < 0 ||
                rd_kafka_get_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi) ||
                tp->offset >= hi)
                continue; /* nothing known to be left, or no position yet */
            rd_kafka_topic_partition_list_add(lagging, tp->topic, tp->partition)->offset =
                RD_KAFKA_OFFSET_END; /* "timestamp" -1: the end */
        }
    }
    if (lagging->cnt > 0) rd_kafka_offsets_for_times(rk, lagging, WB_DAEMON_NUDGE_TIMEOUT_MS);
    rd_kafka_topic_partition_list_destroy(lagging);
    rd_kafka_topic_partition_list_destroy(parts);
}
