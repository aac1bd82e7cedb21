/* wb_kafka.h — librdkafka setup from the config: conf, producer, consumer, topics, errors. */
#ifndef WB_KAFKA_H
#define WB_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "wb_config.h"
#include "wbcache.h"

/* Flags of wb_kafka_conf_new. */
#define WB_KAFKA_F_LOG_STDERR 0x1 /* daemons: librdkafka WARN and worse -> one stderr line */
/* Daemon consumers, which hold batches themselves: queued.max.messages.kbytes
 * 4096 and max.partition.fetch.bytes 262144 instead of librdkafka's 65536 /
 * 1048576, which would be most of their memory. */
#define WB_KAFKA_F_SMALL_PREFETCH 0x2
/* The library: librdkafka's lines go to wb_log (syslog levels 0-3 ERROR,
 * 4 WARN, 5 INFO, 6-7 DEBUG) through log.queue, i.e. on the thread that
 * polls the handle's main queue (wb_kafka_producer_new points the log
 * queue there), never spontaneously on librdkafka's own threads; so they
 * reach the log scope of the thread that polls. */
#define WB_KAFKA_F_LOG_QUEUE 0x4

/* Builds a librdkafka conf: bootstrap.servers = conf->kafka.brokers,
 * client.id = "wbcache-<client_role>" (client_role may be NULL), the
 * WB_KAFKA_F_SMALL_PREFETCH settings if asked, then every kafka.properties
 * entry in file order (so they may override all of these),
 * and a log callback: silent by default, with WB_KAFKA_F_LOG_STDERR one
 * line per WARN-or-worse message on stderr, with WB_KAFKA_F_LOG_QUEUE
 * every line to wb_log on the polling thread. On
 * WB_OK *out is a new conf owned by the caller (rd_kafka_conf_destroy, or
 * hand it to wb_kafka_producer_new / wb_kafka_consumer_new). An unknown
 * property or bad value gives WB_ERR_CONFIG naming the property; the value
 * is not shown when the name looks secret (password, secret, key). */
wb_err_t wb_kafka_conf_new(const wb_config_t *conf, const char *client_role, unsigned flags,
                           rd_kafka_conf_t **out, char *errstr, size_t errstr_size);

/* Creates a producer from kconf. With idempotent_acks_all, sets
 * enable.idempotence=true and acks=all (overriding kafka.properties): no
 * duplicates or reordering per partition on retries, and a delivery report
 * only once all in-sync replicas have the message. Set callbacks
 * (rd_kafka_conf_set_dr_msg_cb ...) on kconf before. If kconf has
 * log.queue=true (WB_KAFKA_F_LOG_QUEUE), log lines are served by whoever
 * polls the new handle (rd_kafka_poll, rd_kafka_flush). On WB_OK *out owns
 * kconf; on failure the caller still owns kconf (as with rd_kafka_new). */
wb_err_t wb_kafka_producer_new(rd_kafka_conf_t *kconf, int idempotent_acks_all, rd_kafka_t **out,
                               char *errstr, size_t errstr_size);

/* Creates a group consumer from kconf with group.id = group_id and, over
 * whatever kafka.properties said: enable.auto.commit=false and
 * enable.auto.offset.store=false (offsets are committed only after the
 * PostgreSQL commit, invariant 5), auto.offset.reset=earliest (a new group
 * starts at the beginning of the log, never skips it) and
 * partition.assignment.strategy=cooperative-sticky (a rebalance callback,
 * if set, must use rd_kafka_incremental_assign/unassign). The main queue is
 * redirected to the consumer queue, so rd_kafka_consumer_poll serves all
 * callbacks. Ownership of kconf as for wb_kafka_producer_new. */
wb_err_t wb_kafka_consumer_new(rd_kafka_conf_t *kconf, const char *group_id, rd_kafka_t **out,
                               char *errstr, size_t errstr_size);

/* Maps a librdkafka error to wb_err_t: NO_ERROR -> WB_OK; timeouts ->
 * WB_ERR_TIMEOUT; local queue full -> WB_ERR_QUEUE_FULL; message too large
 * -> WB_ERR_TOO_LARGE; invalid argument -> WB_ERR_INVALID_ARG; handle being
 * destroyed -> WB_ERR_CLOSED; anything else -> WB_ERR_KAFKA. */
wb_err_t wb_kafka_err(rd_kafka_resp_err_t err);

/* Creates topic name with partitions partitions (broker's default
 * replication factor) through the Admin API on any client handle rk,
 * waiting at most timeout_ms. A topic that already exists is WB_OK (its
 * partition count is not checked). Errors: WB_ERR_TIMEOUT, WB_ERR_KAFKA,
 * WB_ERR_INVALID_ARG, with errstr. */
wb_err_t wb_kafka_create_topic(rd_kafka_t *rk, const char *name, int partitions, int timeout_ms,
                               char *errstr, size_t errstr_size);

/* The topic's max.message.bytes (the largest record batch its brokers
 * accept) into *out, through the Admin API (DescribeConfigs) on any client
 * handle rk, waiting at most timeout_ms. WB_ERR_TIMEOUT, WB_ERR_KAFKA (no
 * such topic, not authorised, no value), WB_ERR_INVALID_ARG, WB_ERR_NOMEM,
 * with errstr. */
wb_err_t wb_kafka_topic_max_bytes(rd_kafka_t *rk, const char *name, int timeout_ms, int64_t *out,
                                  char *errstr, size_t errstr_size);

/* Deletes topic name (tests' throwaway topics); an unknown topic is WB_OK.
 * Same waiting and errors as wb_kafka_create_topic. */
wb_err_t wb_kafka_delete_topic(rd_kafka_t *rk, const char *name, int timeout_ms, char *errstr,
                               size_t errstr_size);

#endif /* WB_KAFKA_H */
