/* wb_daemon.h — Kafka group-consumer plumbing the daemons share: conf, consumer, rebalance, pause.
 */
#ifndef WB_DAEMON_H
#define WB_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "wb_config.h"
#include "wb_kafka.h"
#include "wbcache.h"

/* A daemon's librdkafka conf: wb_kafka_conf_new with client role role,
 * librdkafka warnings on stderr and flags (WB_KAFKA_F_*). Returns a conf the
 * caller owns, or NULL with errstr set. */
rd_kafka_conf_t *wb_daemon_kafka_conf(const wb_config_t *conf, const char *role, unsigned flags,
                                      char *errstr, size_t errstr_size);

/* Group timing of the daemons' consumers, unless kafka.properties sets it.
 * librdkafka's 45 s session would keep a dead replica's partitions idle
 * that long; 10 s stays above the broker's minimum
 * (group.min.session.timeout.ms, 6 s by default) and tolerates a short
 * stall. A heartbeat of a third of it lets two be lost without expiry. */
#define WB_DAEMON_SESSION_TIMEOUT_MS "10000"
#define WB_DAEMON_HEARTBEAT_MS       "3000"

/* Creates the daemon's group consumer (wb_kafka_consumer_new: manual
 * offsets, cooperative-sticky, earliest; WB_KAFKA_F_SMALL_PREFETCH) in group group_id,
 * as static member instance_id (group.instance.id; NULL or "": dynamic
 * membership), with the group timing above, with
 * rebalance_cb, error_cb and offset_commit_cb (NULL: none; all run on the
 * polling thread) and opaque set on its conf. Returns the consumer (caller
 * closes and destroys it) or NULL with errstr set. */
rd_kafka_t *wb_daemon_consumer_new(const wb_config_t *conf, const char *role, const char *group_id,
                                   const char *instance_id,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void (*error_cb)(rd_kafka_t *, int, const char *, void *),
                                   void (*offset_commit_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                            rd_kafka_topic_partition_list_t *,
                                                            void *),
                                   void *opaque, char *errstr, size_t errstr_size);

/* Subscribes consumer rk to topic. Returns 0, or -1 with errstr set. */
int wb_daemon_subscribe(rd_kafka_t *rk, const char *topic, char *errstr, size_t errstr_size);

/* Pauses (pause != 0) or resumes every partition assigned to consumer rk.
 * Call from the polling thread. */
void wb_daemon_pause_all(rd_kafka_t *rk, int pause);

/* Call when rk's consumer queue is empty: if an assigned partition still
 * has messages after its position, wakes librdkafka's fetcher, which
 * librdkafka 2.0 would otherwise do only after up to a second once its
 * pre-fetch queue had filled. At most every 5 ms (*last_ms is the
 * caller's, start at 0); one ListOffsets request per leader of a lagging
 * partition, waited for at most 100 ms. Not while partitions are paused on
 * purpose. Polling thread. */
void wb_daemon_nudge_fetcher(rd_kafka_t *rk, int64_t *last_ms);

/* Called by wb_daemon_rebalance with the daemon's opaque. */
typedef void wb_daemon_parts_fn(void *opaque, rd_kafka_t *rk,
                                rd_kafka_topic_partition_list_t *parts);

/* The common body of a cooperative rebalance callback (runs on the polling
 * thread): incrementally assigns parts then calls assigned, or calls
 * revoking then incrementally unassigns them; logs the move and any
 * error. The daemon's callback passes its own arguments through. */
void wb_daemon_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, wb_daemon_parts_fn *assigned,
                         wb_daemon_parts_fn *revoking, void *opaque);

#endif /* WB_DAEMON_H */
