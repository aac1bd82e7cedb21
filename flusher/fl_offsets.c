/* fl_offsets.c — the flusher's offsets and lag: partitions, commits, lag gauges. */
#include "fl_offsets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_log.h"
#include "wb_util.h"

void fl_offsets_init(fl_offsets_t *o, wb_counter_t *commit_failures, wb_metric_family_t *lag_msgs,
                     wb_metric_family_t *lag_secs)
{
    memset(o, 0, sizeof(*o));
    o->commit = 1;
    o->commit_failures = commit_failures;
    o->lag_msgs = lag_msgs;
    o->lag_secs = lag_secs;
}

void fl_offsets_fini(fl_offsets_t *o)
{
    if (o->pending) rd_kafka_topic_partition_list_destroy(o->pending);
    o->pending = NULL;
    for (size_t i = 0; i < o->nparts; i++)
        free(o->parts[i].topic);
    free(o->parts);
    o->parts = NULL;
    o->nparts = 0;
}

fl_part_t *fl_offsets_part(fl_offsets_t *o, const char *topic, int32_t partition)
{
    char pbuf[16];

    for (size_t i = 0; i < o->nparts; i++)
        if (o->parts[i].partition == partition && strcmp(o->parts[i].topic, topic) == 0)
            return &o->parts[i];
    fl_part_t *parts = realloc(o->parts, (o->nparts + 1) * sizeof(*parts));
    if (!parts) return NULL;
    o->parts = parts;
    fl_part_t *p = &o->parts[o->nparts];
    memset(p, 0, sizeof(*p));
    if (!(p->topic = strdup(topic))) return NULL;
    o->nparts++;
    p->partition = partition;
    p->committed = -1;
    p->taken = -1;
    snprintf(pbuf, sizeof(pbuf), "%" PRId32, partition);
    p->lag_msgs = wb_metrics_gauge_with(o->lag_msgs, topic, pbuf, NULL);
    p->lag_secs = wb_metrics_gauge_with(o->lag_secs, topic, pbuf, NULL);
    return p;
}

void fl_offsets_set_assigned(fl_offsets_t *o, const rd_kafka_topic_partition_list_t *parts,
                             int assigned)
{
    for (int i = 0; i < parts->cnt; i++) {
        fl_part_t *p = fl_offsets_part(o, parts->elems[i].topic, parts->elems[i].partition);
        if (!p) continue;
        p->assigned = assigned;
        p->gone = 0;
        if (assigned) {
            p->committed = -1;
            p->committed_time = 0;
            p->taken = -1;
        }
    }
}

void fl_offsets_ranges(fl_offsets_t *o, fl_batch_t *b)
{
    const char *last_topic = NULL; /* interned: compared by address */
    int32_t last_part = -1;
    fl_range_t *r = NULL;

    b->nranges = 0;
    b->ranges_ok = 0;
    for (size_t i = 0; i < b->n; i++) {
        const fl_msg_t *msg = &b->msgs[i];
        if (msg->topic != last_topic || msg->partition != last_part) {
            const char *topic = msg->topic;
            r = NULL;
            for (size_t j = 0; j < b->nranges && !r; j++)
                if (b->ranges[j].partition == msg->partition && !strcmp(b->ranges[j].topic, topic))
                    r = &b->ranges[j];
            if (!r) {
                if (b->nranges == b->ranges_cap) {
                    size_t cap = b->ranges_cap ? b->ranges_cap * 2 : 8;
                    fl_range_t *nr = realloc(b->ranges, cap * sizeof(*nr));
                    if (!nr) return;
                    b->ranges = nr;
                    b->ranges_cap = cap;
                }
                const fl_part_t *p = fl_offsets_part(o, topic, msg->partition);
                r = &b->ranges[b->nranges++];
                *r = (fl_range_t){topic, msg->partition,
                                  p && p->committed >= 0 ? p->committed : msg->offset,
                                  msg->offset + 1, -1};
            }
            last_topic = msg->topic;
            last_part = msg->partition;
        }
        if (msg->offset < r->from) r->from = msg->offset;
        if (msg->offset + 1 > r->next) r->next = msg->offset + 1;
    }
    b->ranges_ok = 1;
}

/* Asynchronous: the writer goes on with the next batch. Each commit is
 * issued after its batches' PostgreSQL commits (invariant 5). librdkafka
 * retries a failed commit request, so an older commit may land after a
 * newer one: that only moves the group back, which means re-delivery,
 * absorbed by the version guard (invariant 4), never a skip.
 * fl_offsets_commit_result counts failures; revocation and shutdown
 * commit synchronously (fl_offsets_commit_sync). */
void fl_offsets_commit_batch(fl_offsets_t *o, rd_kafka_t *consumer, const fl_batch_t *b)
{
    rd_kafka_topic_partition_t *tp = NULL;
    const char *last_topic = NULL;
    int32_t last_part = -1;

    if (!o->commit || b->n == 0) return;
    if (!o->pending) o->pending = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n; i++) {
        const fl_msg_t *msg = &b->msgs[i];
        if (msg->topic != last_topic || msg->partition != last_part) {
            tp = rd_kafka_topic_partition_list_find(o->pending, msg->topic, msg->partition);
            if (!tp) {
                tp = rd_kafka_topic_partition_list_add(o->pending, msg->topic, msg->partition);
                tp->offset = -1;
            }
            last_topic = msg->topic;
            last_part = msg->partition;
        }
        if (msg->offset + 1 > tp->offset) tp->offset = msg->offset + 1;
    }
    fl_offsets_commit_pending(o, consumer);
}

void fl_offsets_commit_pending(fl_offsets_t *o, rd_kafka_t *consumer)
{
    int64_t now = wb_time_mono_ms();

    if (!o->pending || now - o->last_commit_ms < FL_COMMIT_EVERY_MS) return;
    if (o->pending->cnt > 0) {
        rd_kafka_resp_err_t rerr = rd_kafka_commit(consumer, o->pending, 1);
        if (rerr) {
            wb_counter_add(o->commit_failures, 1);
            WB_WARN("offset commit failed (events will be re-applied): %s", rd_kafka_err2str(rerr));
        }
        o->last_commit_ms = now;
    }
    rd_kafka_topic_partition_list_destroy(o->pending);
    o->pending = NULL;
}

void fl_offsets_settle(fl_offsets_t *o, const fl_batch_t *b)
{
    const char *last_topic = NULL;
    int32_t last_part = -1;
    fl_part_t *p = NULL;

    for (size_t i = 0; i < b->n; i++) {
        const fl_msg_t *msg = &b->msgs[i];
        if (msg->topic != last_topic || msg->partition != last_part) {
            p = fl_offsets_part(o, msg->topic, msg->partition);
            last_topic = msg->topic;
            last_part = msg->partition;
        }
        if (p && msg->offset + 1 > p->committed) {
            p->committed = msg->offset + 1;
            p->committed_time =
                b->items[i].ev.time_us > 0 ? b->items[i].ev.time_us : msg->timestamp_ms * 1000;
        }
    }
}

void fl_offsets_commit_result(fl_offsets_t *o, rd_kafka_resp_err_t err,
                              const rd_kafka_topic_partition_list_t *offsets)
{
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    /* PostgreSQL holds the events already: they are only delivered again. */
    wb_counter_add(o->commit_failures, 1);
    WB_WARN("offset commit failed (events will be re-applied): %s", rd_kafka_err2str(err));
}

void fl_offsets_commit_sync(fl_offsets_t *o, rd_kafka_t *consumer,
                            const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *offs;

    if (!o->commit || !consumer) return;
    offs = rd_kafka_topic_partition_list_new((int)o->nparts + 1);
    for (size_t i = 0; i < o->nparts; i++) {
        const fl_part_t *p = &o->parts[i];
        if (p->committed < 0) continue;
        if (parts ? !rd_kafka_topic_partition_list_find(parts, p->topic, p->partition)
                  : !p->assigned)
            continue;
        rd_kafka_topic_partition_list_add(offs, p->topic, p->partition)->offset = p->committed;
        if (o->pending) rd_kafka_topic_partition_list_del(o->pending, p->topic, p->partition);
    }
    if (offs->cnt > 0) {
        rd_kafka_resp_err_t rerr = rd_kafka_commit(consumer, offs, 0);
        if (rerr && rerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            WB_WARN("offset commit of %d partitions failed (their events will be re-applied): %s",
                    offs->cnt, rd_kafka_err2str(rerr));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

void fl_offsets_update_lag(fl_offsets_t *o, rd_kafka_t *consumer)
{
    int64_t now_us = wb_time_real_us();

    for (size_t i = 0; i < o->nparts; i++) {
        fl_part_t *p = &o->parts[i];
        int64_t lo = -1, hi = -1;

        if (!p->assigned) {
            wb_gauge_set(p->lag_msgs, 0);
            wb_gauge_set(p->lag_secs, 0);
            continue;
        }
        if (rd_kafka_get_watermark_offsets(consumer, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        int64_t from = p->committed >= 0 ? p->committed : lo;
        int64_t lag = hi - from > 0 ? hi - from : 0;
        wb_gauge_set(p->lag_msgs, (double)lag);
        wb_gauge_set(p->lag_secs, lag > 0 && p->committed_time > 0
                                      ? (double)(now_us - p->committed_time) / 1e6
                                      : 0.0);
    }
}

int fl_offsets_caught_up(const fl_offsets_t *o, rd_kafka_t *consumer)
{
    for (size_t i = 0; i < o->nparts; i++) {
        const fl_part_t *p = &o->parts[i];
        int64_t lo = -1, hi = -1;

        if (!p->assigned || p->gone) continue;
        if (rd_kafka_get_watermark_offsets(consumer, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        int64_t at = p->taken >= 0 ? p->taken : p->committed >= 0 ? p->committed : lo;
        if (at < hi) return 0;
    }
    return 1;
}

double fl_offsets_lag(const fl_offsets_t *o)
{
    double lag = 0;
    for (size_t i = 0; i < o->nparts; i++)
        lag += wb_gauge_value(o->parts[i].lag_msgs);
    return lag;
}
