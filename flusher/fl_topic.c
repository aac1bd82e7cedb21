/* fl_topic.c — the changes topic's settings the flusher depends on: never compacted, kept long
 * enough. */
#include "fl_topic.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_kafka.h"
#include "wb_util.h"

wb_err_t fl_topic_describe(rd_kafka_t *rk, const char *topic, int timeout_ms, fl_topic_conf_t *tc,
                           char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    char why[256];
    wb_err_t err = WB_ERR_KAFKA;

    memset(tc, 0, sizeof(*tc));
    snprintf(tc->cleanup_policy, sizeof(tc->cleanup_policy), "delete");
    tc->retention_ms = 604800000; /* Kafka's defaults, replaced by what the broker says */
    tc->segment_ms = 604800000;
    if (!res || !opts || !queue) {
        wb_set_err(errstr, errstr_size, "describing topic %s: out of memory", topic);
        err = WB_ERR_NOMEM;
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, queue);
    ev = rd_kafka_queue_poll(queue, timeout_ms + 1000);
    if (!ev) {
        wb_set_err(errstr, errstr_size, "describing topic %s: timed out", topic);
        err = WB_ERR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        wb_set_err(errstr, errstr_size, "describing topic %s: %s", topic,
                   rd_kafka_event_error_string(ev));
        err = wb_kafka_err(rd_kafka_event_error(ev)) == WB_ERR_TIMEOUT ? WB_ERR_TIMEOUT
                                                                       : WB_ERR_KAFKA;
        goto out;
    }
    size_t nres = 0, ncfg = 0;
    const rd_kafka_DescribeConfigs_result_t *result = rd_kafka_event_DescribeConfigs_result(ev);
    const rd_kafka_ConfigResource_t **rs =
        result ? rd_kafka_DescribeConfigs_result_resources(result, &nres) : NULL;
    if (nres != 1) {
        wb_set_err(errstr, errstr_size, "describing topic %s: no result", topic);
        goto out;
    }
    rd_kafka_resp_err_t rerr = rd_kafka_ConfigResource_error(rs[0]);
    if (rerr) {
        wb_set_err(errstr, errstr_size, "describing topic %s: %s", topic,
                   rd_kafka_ConfigResource_error_string(rs[0])
                       ? rd_kafka_ConfigResource_error_string(rs[0])
                       : rd_kafka_err2str(rerr));
        err = rerr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? WB_ERR_NOT_FOUND : WB_ERR_KAFKA;
        goto out;
    }
    const rd_kafka_ConfigEntry_t **cfg = rd_kafka_ConfigResource_configs(rs[0], &ncfg);
    for (size_t i = 0; i < ncfg; i++) {
        const char *name = rd_kafka_ConfigEntry_name(cfg[i]);
        const char *value = rd_kafka_ConfigEntry_value(cfg[i]);
        if (!name || !value) continue;
        if (!strcmp(name, "cleanup.policy"))
            snprintf(tc->cleanup_policy, sizeof(tc->cleanup_policy), "%s", value);
        else if (!strcmp(name, "retention.ms"))
            tc->retention_ms = strtoll(value, NULL, 10);
        else if (!strcmp(name, "segment.ms"))
            tc->segment_ms = strtoll(value, NULL, 10);
    }
    err = WB_OK;
out:
    if (ev) rd_kafka_event_destroy(ev);
    if (queue) rd_kafka_queue_destroy(queue);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (res) rd_kafka_ConfigResource_destroy(res);
    return err;
}

wb_err_t fl_topic_check(const fl_topic_conf_t *tc, const char *topic,
                        int64_t tombstone_retention_ms, char *errstr, size_t errstr_size)
{
    if (strstr(tc->cleanup_policy, "compact")) {
        wb_set_err(errstr, errstr_size,
                   "topic %s has cleanup.policy=%s: the changes topic must not be compacted (it "
                   "keeps a key's last event in log order, which is not version order, so a "
                   "replay could bring back an older version); set cleanup.policy=delete",
                   topic, tc->cleanup_policy);
        return WB_ERR_CONFIG;
    }
    if (tombstone_retention_ms <= 0) return WB_OK;
    if (tc->retention_ms < 0) {
        wb_set_err(errstr, errstr_size,
                   "topic %s keeps events for ever (retention.ms=-1): no tombstone purge is safe "
                   "(an older event of a purged row could be replayed); set "
                   "flusher.tombstone_retention_ms: 0",
                   topic);
        return WB_ERR_CONFIG;
    }
    if (tombstone_retention_ms < tc->retention_ms + tc->segment_ms) {
        wb_set_err(errstr, errstr_size,
                   "flusher.tombstone_retention_ms %" PRId64
                   " is below topic %s's retention.ms %" PRId64 " + segment.ms %" PRId64
                   " = %" PRId64
                   ": an older event of a purged row could still be in the topic; raise it to at "
                   "least %" PRId64 " (or lower the topic's retention.ms / segment.ms)",
                   tombstone_retention_ms, topic, tc->retention_ms, tc->segment_ms,
                   tc->retention_ms + tc->segment_ms, tc->retention_ms + tc->segment_ms);
        return WB_ERR_CONFIG;
    }
    return WB_OK;
}
