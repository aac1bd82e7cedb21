/* fl_topic.h — the changes topic's settings the flusher depends on: never compacted, kept long
 * enough. */
#ifndef FL_TOPIC_H
#define FL_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "wbcache.h"

/* The settings of a topic that replay and the tombstone purge rely on. */
typedef struct fl_topic_conf_s {
    char cleanup_policy[64]; /* "delete", "compact", "compact,delete" */
    int64_t retention_ms;    /* -1: kept for ever */
    int64_t segment_ms;
} fl_topic_conf_t;

/* Reads topic's settings from the broker (DescribeConfigs on rk, any
 * client handle). WB_ERR_NOT_FOUND when the topic does not exist;
 * WB_ERR_KAFKA / WB_ERR_TIMEOUT with errstr otherwise. */
wb_err_t fl_topic_describe(rd_kafka_t *rk, const char *topic, int timeout_ms, fl_topic_conf_t *tc,
                           char *errstr, size_t errstr_size);

/* Checks tc, the settings of the changes topic topic, against the
 * flusher's needs (invariants 3 and 4): not compacted (a compacted log
 * keeps only a key's last event in log order, which is not version
 * order, and replay would bring back an older version), and, when the
 * purge is on (tombstone_retention_ms > 0), tombstones kept at least
 * retention.ms + segment.ms (the longest an event can stay in the topic),
 * so no older event of a purged row can still be replayed. WB_OK, or
 * WB_ERR_CONFIG with the reason and the way out in errstr. Pure. */
wb_err_t fl_topic_check(const fl_topic_conf_t *tc, const char *topic,
                        int64_t tombstone_retention_ms, char *errstr, size_t errstr_size);

#endif /* FL_TOPIC_H */
