/* wb_daemon.c — Kafka group-consumer plumbing the daemons share: conf, consumer, rebalance, pause.
 */
#include "wb_daemon.h"

#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_util.h"

rd_kafka_conf_t *wb_daemon_kafka_conf(const wb_config_t *conf, const char *role, char *errstr,
                                      size_t errstr_size)
{
    rd_kafka_conf_t *kc = NULL;

    if (wb_kafka_conf_new(conf, role, WB_KAFKA_F_LOG_STDERR, &kc, errstr, errstr_size) != WB_OK)
        return NULL;
    return kc;
}

rd_kafka_t *wb_daemon_consumer_new(const wb_config_t *conf, const char *role, const char *group_id,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void (*error_cb)(rd_kafka_t *, int, const char *, void *),
                                   void *opaque, char *errstr, size_t errstr_size)
{
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *kc = wb_daemon_kafka_conf(conf, role, errstr, errstr_size);

    if (!kc) return NULL;
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    if (error_cb) rd_kafka_conf_set_error_cb(kc, error_cb);
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
