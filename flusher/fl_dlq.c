/* fl_dlq.c — the flusher's dead letters: poison to the dead-letter topic, acknowledged. */
#include "fl_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_daemon.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_util.h"

#define FL_DLQ_TIMEOUT_MS 10000

static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    fl_dlq_t *d = opaque;
    (void)rk;
    if (msg->err) {
        d->failed++;
        WB_WARN("dead-letter delivery failed: %s", rd_kafka_err2str(msg->err));
    }
}

wb_err_t fl_dlq_open(fl_dlq_t *d, const wb_config_t *conf, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kc;

    d->conf = conf;
    kc = wb_daemon_kafka_conf(d->conf, "flusher", 0, errstr, errstr_size);
    if (!kc) return WB_ERR_KAFKA;
    rd_kafka_conf_set_dr_msg_cb(kc, dlq_dr_cb);
    rd_kafka_conf_set_opaque(kc, d);
    if (wb_kafka_producer_new(kc, 1, &d->producer, errstr, errstr_size) != WB_OK) {
        rd_kafka_conf_destroy(kc);
        return WB_ERR_KAFKA;
    }
    return WB_OK;
}

/* Their offsets are committed right after the acknowledgement. */
wb_err_t fl_dlq_send(fl_dlq_t *d, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    int64_t failed_before = d->failed;
    size_t n = 0;

    for (size_t i = 0; i < b->n; i++) {
        const fl_item_t *it = &b->items[i];
        const fl_msg_t *msg = &b->msgs[i];
        rd_kafka_headers_t *hdrs;
        wb_header_t dh[WB_EVENT_NHDRS], stack[16], *own;
        char scratch[WB_EVENT_SCRATCH];
        size_t ndh = 0;
        ssize_t nown;
        rd_kafka_resp_err_t rerr;

        if (it->state != FL_ITEM_POISON) continue;
        if (wb_log_enabled(WB_LOG_WARN)) {
            char part[16], off[24];
            snprintf(part, sizeof(part), "%" PRId32, msg->partition);
            snprintf(off, sizeof(off), "%" PRId64, msg->offset);
            wb_log_field_t fields[] = {{"topic", msg->topic},
                                       {"partition", part},
                                       {"offset", off},
                                       {"reason", it->reason ? it->reason : "poison"}};
            wb_log_write_fields(WB_LOG_WARN, fields, 4, "dead-lettering an event");
        }
        /* Its own headers as they came, then the dead-letter ones. */
        if ((nown = fl_msg_headers(msg, stack, sizeof(stack) / sizeof(stack[0]), &own)) < 0) {
            wb_set_err(errstr, errstr_size, "out of memory for dead-letter headers");
            return WB_ERR_NOMEM;
        }
        hdrs = rd_kafka_headers_new((size_t)nown + WB_EVENT_NHDRS);
        wb_err_t herr = wb_event_add_rd_headers(hdrs, own, (size_t)nown);
        if (own != stack) free(own);
        if (herr != WB_OK ||
            wb_event_encode_dlq_headers(it->reason ? it->reason : "poison", msg->topic,
                                        msg->partition, msg->offset, dh, WB_EVENT_NHDRS, &ndh,
                                        scratch, sizeof(scratch)) != WB_OK ||
            wb_event_add_rd_headers(hdrs, dh, ndh) != WB_OK) {
            rd_kafka_headers_destroy(hdrs);
            wb_set_err(errstr, errstr_size, "cannot build dead-letter headers");
            return WB_ERR_KAFKA;
        }
        /* value NULL: a Kafka null value (a delete) stays one. */
        void *key = (void *)msg->key, *value = (void *)msg->value;
        size_t keylen = msg->keylen, len = msg->len;
        for (;;) {
            rerr = rd_kafka_producev(
                d->producer, RD_KAFKA_V_TOPIC(d->conf->kafka.topic_dead_letter),
                RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE(value, len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
            if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(d->producer, 100);
        }
        if (rerr) {
            rd_kafka_headers_destroy(hdrs);
            wb_set_err(errstr, errstr_size, "dead-letter produce: %s", rd_kafka_err2str(rerr));
            return WB_ERR_KAFKA;
        }
        n++;
    }
    if (n == 0) return WB_OK;
    rd_kafka_flush(d->producer, FL_DLQ_TIMEOUT_MS);
    if (rd_kafka_outq_len(d->producer) > 0 || d->failed != failed_before) {
        wb_set_err(errstr, errstr_size, "dead-letter topic %s did not acknowledge %zu events",
                   d->conf->kafka.topic_dead_letter, n);
        return WB_ERR_KAFKA;
    }
    b->dead = n;
    return WB_OK;
}

wb_err_t fl_dlq_send_event(fl_dlq_t *d, const wb_event_t *ev, const char *reason, const char *topic,
                           int32_t partition, int64_t offset, char *errstr, size_t errstr_size)
{
    int64_t failed_before = d->failed;
    rd_kafka_headers_t *hdrs = NULL;
    wb_header_t dh[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH];
    size_t ndh = 0;
    rd_kafka_resp_err_t rerr;

    if (wb_event_to_rd_headers(ev, &hdrs) != WB_OK) {
        wb_set_err(errstr, errstr_size, "not a valid event");
        return WB_ERR_INVALID_ARG;
    }
    if (wb_event_encode_dlq_headers(reason, topic, partition < 0 ? 0 : partition,
                                    offset < 0 ? 0 : offset, dh, WB_EVENT_NHDRS, &ndh, scratch,
                                    sizeof(scratch)) != WB_OK ||
        wb_event_add_rd_headers(hdrs, dh, ndh) != WB_OK) {
        rd_kafka_headers_destroy(hdrs);
        wb_set_err(errstr, errstr_size, "cannot build dead-letter headers");
        return WB_ERR_KAFKA;
    }
    /* A delete is a Kafka tombstone (computed outside the macro, whose cast
     * would apply to the condition only). */
    void *value = ev->is_delete ? NULL : (void *)ev->value;
    size_t len = ev->is_delete ? 0 : ev->valuelen;
    for (;;) {
        rerr = rd_kafka_producev(d->producer, RD_KAFKA_V_TOPIC(d->conf->kafka.topic_dead_letter),
                                 RD_KAFKA_V_KEY(ev->key, ev->keylen), RD_KAFKA_V_VALUE(value, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_END);
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(d->producer, 100);
    }
    if (rerr) {
        rd_kafka_headers_destroy(hdrs);
        wb_set_err(errstr, errstr_size, "dead-letter produce: %s", rd_kafka_err2str(rerr));
        return WB_ERR_KAFKA;
    }
    rd_kafka_flush(d->producer, FL_DLQ_TIMEOUT_MS);
    if (rd_kafka_outq_len(d->producer) > 0 || d->failed != failed_before) {
        wb_set_err(errstr, errstr_size, "dead-letter topic %s did not acknowledge the event",
                   d->conf->kafka.topic_dead_letter);
        return WB_ERR_KAFKA;
    }
    return WB_OK;
}

void fl_dlq_close(fl_dlq_t *d)
{
    if (d->producer) {
        rd_kafka_flush(d->producer, 5000);
        rd_kafka_destroy(d->producer);
    }
    memset(d, 0, sizeof(*d));
}
