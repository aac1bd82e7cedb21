/* fl_dlq.h — the flusher's dead letters: poison to the dead-letter topic, acknowledged. */
#ifndef FL_DLQ_H
#define FL_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "fl_batch.h"
#include "wb_config.h"

typedef struct fl_dlq_s {
    const wb_config_t *conf; /* borrowed */
    rd_kafka_t *producer;
    /* Delivery failures seen by the producer's callback (it runs inside
     * rd_kafka_flush/poll, on the thread that sends). */
    int64_t failed;
} fl_dlq_t;

/* Creates the dead-letter producer of conf (kept borrowed). d must not
 * move afterwards. Returns WB_OK, or WB_ERR_KAFKA with errstr set. */
wb_err_t fl_dlq_open(fl_dlq_t *d, const wb_config_t *conf, char *errstr, size_t errstr_size);
/* Flushes (up to 5 s) and destroys the producer; d may be zeroed or closed. */
void fl_dlq_close(fl_dlq_t *d);

/* Sends one event ev (a write rebuilt from the cache: key, value or a
 * tombstone, version, entity, time) to the dead-letter topic with reason
 * and its origin (topic, partition, offset of the event PostgreSQL
 * refused), and waits for the acknowledgement. The cleaner's refused dirty
 * writes. Returns WB_OK, WB_ERR_INVALID_ARG for an invalid event, or
 * WB_ERR_KAFKA with errstr set. */
wb_err_t fl_dlq_send_event(fl_dlq_t *d, const wb_event_t *ev, const char *reason, const char *topic,
                           int32_t partition, int64_t offset, char *errstr, size_t errstr_size);

/* Sends b's poison messages (original key, value and headers plus the
 * reason, topic, partition and offset) to the dead-letter topic and waits
 * for the broker's acknowledgement; sets b->dead. Returns WB_OK (also when
 * there is no poison), or WB_ERR_KAFKA or WB_ERR_NOMEM with errstr set:
 * nothing of b may be committed then. */
wb_err_t fl_dlq_send(fl_dlq_t *d, fl_batch_t *b, char *errstr, size_t errstr_size);

#endif /* FL_DLQ_H */
