/* fl_batch.c — the flusher's intake: decoded messages, each key's newest, due or full. */
#include "fl_batch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_daemon.h"
#include "wb_log.h"
#include "wb_util.h"

#define FL_SEEK_TIMEOUT_MS 10000

void fl_item_poison(fl_item_t *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(it->reason);
    if (vasprintf(&it->reason, fmt, ap) < 0) it->reason = NULL;
    va_end(ap);
    it->state = FL_ITEM_POISON;
}

/* Decodes one message and finds its entity; an undecodable one is poison.
 * Once the entity is known, it->ev.entity is the configuration's name and
 * the headers librdkafka parsed for the decode (a handful of allocations,
 * about 0.3 KiB a message) are freed instead of staying with the batch:
 * whoever reads them again (dead letters, fl_clean) has librdkafka parse
 * them anew from the message. */
static void decode_one(const wb_config_t *conf, const char *entity_filter, rd_kafka_message_t *msg,
                       fl_item_t *it)
{
    rd_kafka_headers_t *parsed = NULL;

    char errstr[256], name[WB_EVENT_ENTITY_MAX + 1];

    memset(it, 0, sizeof(*it));
    if (wb_event_from_message(msg, &it->ev, errstr, sizeof(errstr)) != WB_OK) {
        fl_item_poison(it, "undecodable: %s", errstr);
        return;
    }
    if (!wb_event_entity_cstr(&it->ev, name, sizeof(name)) ||
        !(it->ent = wb_config_entity(conf, name))) {
        fl_item_poison(it, "unknown entity \"%.*s\"", (int)it->ev.entitylen, it->ev.entity);
        return;
    }
    it->ev.entity = it->ent->name;
    it->ev.entitylen = strlen(it->ent->name);
    if (rd_kafka_message_detach_headers(msg, &parsed) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_headers_destroy(parsed);
    if (!wb_entity_id_offset(it->ent, it->ev.key, it->ev.keylen)) {
        fl_item_poison(it, "key does not start with the prefix \"%s\" of entity %s",
                       it->ent->prefix, it->ent->name);
        return;
    }
    if (entity_filter && strcmp(entity_filter, it->ent->name) != 0) {
        it->state = FL_ITEM_SKIP;
        return;
    }
    int64_t now_us = wb_time_real_us();
    if (fl_batch_version_too_far(conf, it->ev.version, now_us)) {
        /* Forged, or a broken clock: written, it would hold the row above
         * every real write until the clock caught up. */
        fl_item_poison(it,
                       "version %" PRId64 " is %" PRId64 " ms ahead of the flusher's clock %" PRId64
                       " (flusher.max_version_ahead_ms %" PRId64 ")",
                       it->ev.version, (it->ev.version - now_us) / 1000, now_us,
                       conf->flusher.max_version_ahead_ms);
        return;
    }
    it->state = FL_ITEM_GOOD;
}

int fl_batch_version_too_far(const wb_config_t *conf, int64_t version, int64_t now_us)
{
    int64_t ahead_ms = conf->flusher.max_version_ahead_ms;

    return ahead_ms > 0 && version > now_us && (version - now_us) / 1000 > ahead_ms;
}

int64_t fl_batch_msg_bytes(const rd_kafka_message_t *msg)
{
    rd_kafka_headers_t *hdrs = NULL;
    int64_t bytes = (int64_t)(msg->key_len + msg->len);
    const char *name;
    const void *value;
    size_t len;

    /* Parsed once and kept with the message (the decode reads them too). */
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &len); i++)
            bytes += (int64_t)(strlen(name) + len);
    return bytes;
}

static void items_free(fl_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].reason);
        b->items[i].reason = NULL;
    }
}

/* Back to the state of arrival, after an apply attempt that failed (or
 * before one that follows new arrivals): the whole batch is applied again,
 * which the version guard makes harmless. */
void fl_batch_redecode(fl_batch_t *b, const wb_config_t *conf, const char *entity_filter)
{
    items_free(b);
    for (size_t i = 0; i < b->n; i++)
        decode_one(conf, entity_filter, b->msgs[i], &b->items[i]);
    b->redecode = 0;
    b->dedup_ok = fl_batch_dedup_reset(b) == 0;
}

void fl_batch_reset_counts(fl_batch_t *b)
{
    b->nwinners = 0;
    b->upserted = b->stale = b->deletes = b->coalesced = b->skipped = b->dead = 0;
}

/* ---------------------------------------------------------- per-key newest */

static size_t key_hash(const fl_item_t *it)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)it->ent;
    for (size_t i = 0; i < it->ev.keylen; i++)
        h = (h ^ (unsigned char)it->ev.key[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

void fl_batch_dedup_add(fl_batch_t *b, size_t i)
{
    const fl_item_t *it = &b->items[i];
    size_t mask = b->nslots - 1;

    for (size_t s = key_hash(it) & mask;; s = (s + 1) & mask) {
        if (b->slots[s] == 0) {
            b->slots[s] = (uint32_t)i + 1;
            return;
        }
        const fl_item_t *o = &b->items[b->slots[s] - 1];
        if (o->ent == it->ent && o->ev.keylen == it->ev.keylen &&
            memcmp(o->ev.key, it->ev.key, it->ev.keylen) == 0) {
            if (it->ev.version >= o->ev.version) b->slots[s] = (uint32_t)i + 1;
            return;
        }
    }
}

/* Load <= 1/2. */
int fl_batch_dedup_reset(fl_batch_t *b)
{
    size_t want = 16;
    while (want < 2 * b->cap)
        want *= 2;
    if (want != b->nslots) {
        uint32_t *slots = realloc(b->slots, want * sizeof(*slots));
        if (!slots) return -1;
        b->slots = slots;
        b->nslots = want;
    }
    memset(b->slots, 0, b->nslots * sizeof(*b->slots));
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == FL_ITEM_GOOD) fl_batch_dedup_add(b, i);
    return 0;
}

size_t fl_batch_newest(const fl_batch_t *b, size_t *out)
{
    size_t n = 0;

    for (size_t k = 0; k < b->nslots; k++)
        if (b->slots[k]) out[n++] = b->slots[k] - 1;
    return n;
}

/* ------------------------------------------------------------------ intake */

int fl_batch_add(fl_batch_t *b, const wb_config_t *conf, const char *entity_filter,
                 rd_kafka_message_t *msg)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024, max = (size_t)conf->flusher.batch_max_events;
        /* Up to max_events exactly: a doubling past it would be up to half
         * unused, in each of the two batches. */
        if (b->cap < max && cap > max) cap = max;
        rd_kafka_message_t **msgs = realloc(b->msgs, cap * sizeof(*msgs));
        fl_item_t *items = msgs ? realloc(b->items, cap * sizeof(*items)) : NULL;
        size_t *winners = items ? realloc(b->winners, cap * sizeof(*winners)) : NULL;
        if (msgs) b->msgs = msgs;
        if (items) b->items = items;
        if (winners) b->winners = winners;
        if (!winners) {
            /* Dropping it is not enough: the next message of its partition
             * would be batched and committed past it. Rewind the partition
             * to it, which also discards what was fetched after it. */
            rd_kafka_resp_err_t rerr =
                rd_kafka_seek(msg->rkt, msg->partition, msg->offset, FL_SEEK_TIMEOUT_MS);

            if (rerr) {
                WB_ERROR("out of memory growing the batch, and cannot rewind %s [%" PRId32
                         "] to %" PRId64 " (%s): aborting rather than skipping it",
                         rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
                         rd_kafka_err2str(rerr));
                abort();
            }
            WB_ERROR("out of memory growing the batch; %s [%" PRId32 "] rewound to %" PRId64,
                     rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset);
            rd_kafka_message_destroy(msg);
            return -1;
        }
        b->cap = cap;
        b->dedup_ok = b->dedup_ok && fl_batch_dedup_reset(b) == 0;
    }
    if (b->n == 0) {
        b->opened_ms = wb_time_mono_ms();
        b->dedup_ok = fl_batch_dedup_reset(b) == 0; /* an empty table for the new batch */
    }
    /* A message arriving while the batch waits (partitions paused during an
     * outage) joins it; the batch is then applied again from the start. */
    if (b->pg_done || b->dlq_done) b->redecode = 1;
    b->pg_done = b->dlq_done = 0;
    b->msgs[b->n] = msg;
    /* Counted before the decode: both read the headers librdkafka parses
     * once and keeps with the message, and the decode then frees them.
     * Counted after, they would be parsed a second time and stay. */
    b->bytes += fl_batch_msg_bytes(msg);
    decode_one(conf, entity_filter, msg, &b->items[b->n]);
    if (b->dedup_ok && b->items[b->n].state == FL_ITEM_GOOD) fl_batch_dedup_add(b, b->n);
    b->n++;
    return 0;
}

ssize_t fl_batch_take(const fl_batch_t *b, int max_events, rd_kafka_queue_t *cq, rd_kafka_t *nudge,
                      int timeout_ms, int64_t *nudged_ms, rd_kafka_message_t **msgs)
{
    size_t max = (size_t)max_events;
    size_t room = max > b->n ? max - b->n : 1;
    if (room > FL_TAKE_MAX) room = FL_TAKE_MAX;
    /* What is there, without waiting; if nothing, wait for one message
     * only (a wait for `room` would hold the first one back). */
    ssize_t n = rd_kafka_consume_batch_queue(cq, 0, msgs, room);
    if (n == 0 && timeout_ms > 0) {
        if (nudge) wb_daemon_nudge_fetcher(nudge, nudged_ms);
        n = rd_kafka_consume_batch_queue(cq, timeout_ms, msgs, 1);
    }
    return n;
}

int fl_batch_full(const fl_batch_t *b, const wb_config_t *conf)
{
    return b->n >= (size_t)conf->flusher.batch_max_events ||
           b->bytes >= conf->flusher.batch_max_bytes;
}

int fl_batch_due(const fl_batch_t *b, const wb_config_t *conf, int64_t now_ms, int caught_up)
{
    return b->n > 0 && (caught_up || fl_batch_full(b, conf) ||
                        now_ms - b->opened_ms >= conf->flusher.batch_max_wait_ms);
}

/* ---------------------------------------------------------------- clearing */

void fl_batch_clear(fl_batch_t *b)
{
    items_free(b);
    for (size_t i = 0; i < b->n; i++)
        rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
    b->bytes = 0;
    b->redecode = 0;
    b->dedup_ok = 0;
    b->pg_done = b->dlq_done = 0;
    b->apply_us = 0;
    b->nranges = 0;
    b->ranges_ok = 0;
    b->rewind = 0;
    fl_batch_reset_counts(b);
}

void fl_batch_free(fl_batch_t *b)
{
    fl_batch_clear(b);
    free(b->msgs);
    free(b->items);
    free(b->winners);
    free(b->slots);
    free(b->ranges);
    memset(b, 0, sizeof(*b));
}

size_t fl_batch_drop(fl_batch_t *b, const rd_kafka_topic_partition_list_t *parts)
{
    size_t j = 0, dropped = 0;

    items_free(b);
    b->pg_done = b->dlq_done = 0;
    b->bytes = 0;
    fl_batch_reset_counts(b);
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_t *msg = b->msgs[i];
        if (rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(msg->rkt),
                                               msg->partition)) {
            rd_kafka_message_destroy(msg);
            dropped++;
            continue;
        }
        b->bytes += fl_batch_msg_bytes(msg);
        b->msgs[j++] = msg;
    }
    b->n = j;
    b->redecode = 1;
    b->dedup_ok = 0;  /* indices moved: rebuilt by the re-decode */
    b->ranges_ok = 0; /* set again before the next apply */
    b->rewind = 0;
    return dropped;
}
