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

/* ---------------------------------------------------------------- copies */

/* The arena: pieces of FL_CHUNK bytes; a copy above FL_CHUNK_OWN gets a
 * piece of its own (freed when the batch is cleared, not reused). */
#define FL_CHUNK     (256 * 1024)
#define FL_CHUNK_OWN (FL_CHUNK / 4)
/* A packed header: a byte naming it, 1.. for the names of known_hdrs (most
 * headers: their names are not stored), 0 for another name, then stored
 * as a u32 length, the name and a NUL; then a u32 value length
 * (FL_HDR_NULL: a null header) and the value. */
#define FL_HDR_NULL UINT32_MAX
static const char *const known_hdrs[] = {NULL,           WB_HDR_VERSION, WB_HDR_ENTITY,
                                         WB_HDR_TIME_US, WB_HDR_OP,      WB_HDR_KIND};
#define FL_NKNOWN (sizeof(known_hdrs) / sizeof(known_hdrs[0]))

static unsigned char known_hdr(const char *name, size_t len)
{
    if (len < 5 || memcmp(name, "wb-", 3) != 0) return 0;
    for (unsigned char k = 1; k < FL_NKNOWN; k++)
        if (name[3] == known_hdrs[k][3] && strcmp(known_hdrs[k] + 3, name + 3) == 0) return k;
    return 0;
}

static unsigned char *arena_alloc(fl_batch_t *b, size_t n)
{
    fl_chunk_t *c = b->chunks;

    if (c && c->size - c->used >= n) {
        c->used += n;
        return c->data + c->used - n;
    }
    if (n <= FL_CHUNK_OWN && b->spare) {
        c = b->spare;
        b->spare = c->next;
    } else {
        size_t size = n > FL_CHUNK_OWN ? n : FL_CHUNK;
        if (!(c = malloc(sizeof(*c) + size))) return NULL;
        c->size = size;
    }
    c->used = n;
    /* One of its own goes behind the current piece, which still has room. */
    if (n > FL_CHUNK_OWN && b->chunks) {
        c->next = b->chunks->next;
        b->chunks->next = c;
    } else {
        c->next = b->chunks;
        b->chunks = c;
    }
    return c->data;
}

/* The pieces the batch used become the spare ones for the next; spare
 * pieces this batch did not need are freed (the arena follows the size of
 * the last batch, not the largest ever). */
static void arena_reset(fl_batch_t *b)
{
    fl_chunk_t *c, *next;

    for (c = b->spare; c; c = next) {
        next = c->next;
        free(c);
    }
    b->spare = NULL;
    for (c = b->chunks; c; c = next) {
        next = c->next;
        if (c->size == FL_CHUNK) {
            c->next = b->spare;
            b->spare = c;
        } else {
            free(c);
        }
    }
    b->chunks = NULL;
}

static const char *topic_intern(fl_batch_t *b, const char *name)
{
    for (size_t i = 0; i < b->ntopics; i++)
        if (strcmp(b->topics[i], name) == 0) return b->topics[i];
    char **topics = realloc(b->topics, (b->ntopics + 1) * sizeof(*topics));
    if (!topics) return NULL;
    b->topics = topics;
    if (!(topics[b->ntopics] = strdup(name))) return NULL;
    return topics[b->ntopics++];
}

static void put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Copies msg into m and the arena. librdkafka bounds a message below
 * 2 GiB (receive.message.max.bytes), so every length fits in 32 bits.
 * Returns 0, or -1 out of memory. */
static int copy_in(fl_batch_t *b, const rd_kafka_message_t *msg, fl_msg_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    size_t klen = msg->key ? msg->key_len : 0, vlen = msg->payload ? msg->len : 0, hlen = 0;
    size_t nh = 0, len, bytes = klen + vlen;
    const char *name;
    const void *value;

    rd_kafka_resp_err_t herr = rd_kafka_message_headers(msg, &hdrs);
    if (herr != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = NULL;
    for (; hdrs && !rd_kafka_header_get_all(hdrs, nh, &name, &value, &len); nh++) {
        size_t nlen = strlen(name);
        hlen += 1 + (known_hdr(name, nlen) ? 0 : 4 + nlen + 1) + 4 + (value ? len : 0);
        bytes += nlen + (value ? len : 0);
    }
    const char *topic = topic_intern(b, rd_kafka_topic_name(msg->rkt));
    unsigned char *p = topic ? arena_alloc(b, klen + vlen + hlen) : NULL;
    if (!p) return -1;
    *m = (fl_msg_t){.topic = topic,
                    .key = msg->key ? (const char *)p : NULL,
                    .value = msg->payload ? p + klen : NULL,
                    .hdrs = p + klen + vlen,
                    .offset = msg->offset,
                    .timestamp_ms = rd_kafka_message_timestamp(msg, NULL),
                    .partition = msg->partition,
                    .keylen = (uint32_t)klen,
                    .len = (uint32_t)vlen,
                    .hdrlen = (uint32_t)hlen,
                    .nhdrs = herr && herr != RD_KAFKA_RESP_ERR__NOENT ? FL_HDRS_BAD : (uint32_t)nh,
                    .bytes = (uint32_t)bytes};
    if (klen) memcpy(p, msg->key, klen);
    if (vlen) memcpy(p + klen, msg->payload, vlen);
    p += klen + vlen;
    for (size_t i = 0; i < nh && !rd_kafka_header_get_all(hdrs, i, &name, &value, &len); i++) {
        size_t nlen = strlen(name);
        unsigned char k = known_hdr(name, nlen);
        *p++ = k;
        if (!k) {
            put_u32(p, (uint32_t)nlen);
            memcpy(p + 4, name, nlen + 1);
            p += 4 + nlen + 1;
        }
        put_u32(p, value ? (uint32_t)len : FL_HDR_NULL);
        p += 4;
        if (value && len) memcpy(p, value, len);
        p += value ? len : 0;
    }
    return 0;
}

/* Reads header *pos of m into h and advances *pos (start at 0). Returns 0,
 * or -1 past the last one. */
static int header_next(const fl_msg_t *m, size_t *pos, wb_header_t *h)
{
    const unsigned char *p = m->hdrs + *pos, *end = m->hdrs + m->hdrlen;

    if (p >= end) return -1;
    unsigned char k = *p++;
    if (k) {
        h->name = known_hdrs[k];
    } else {
        uint32_t nlen = get_u32(p);
        h->name = (const char *)p + 4;
        p += 4 + nlen + 1;
    }
    uint32_t vlen = get_u32(p);
    p += 4;
    h->value = vlen == FL_HDR_NULL ? NULL : p;
    h->len = vlen == FL_HDR_NULL ? 0 : vlen;
    *pos = (size_t)(p + h->len - m->hdrs);
    return 0;
}

int fl_msg_header_last(const fl_msg_t *m, const char *name, const void **value, size_t *len)
{
    wb_header_t h;
    size_t pos = 0;
    int found = -1;

    while (header_next(m, &pos, &h) == 0)
        if (strcmp(h.name, name) == 0) {
            *value = h.value;
            *len = h.len;
            found = 0;
        }
    return found;
}

ssize_t fl_msg_headers(const fl_msg_t *m, wb_header_t *stack, size_t nstack, wb_header_t **out)
{
    size_t n = 0, pos = 0, want = m->nhdrs == FL_HDRS_BAD ? 0 : m->nhdrs;

    *out = stack;
    if (want > nstack && !(*out = calloc(want, sizeof(**out)))) {
        *out = stack;
        return -1;
    }
    while (n < want && header_next(m, &pos, &(*out)[n]) == 0)
        n++;
    return (ssize_t)n;
}

int64_t fl_msg_bytes(const fl_msg_t *m)
{
    return m->bytes;
}

/* ---------------------------------------------------------------- decoding */

/* Decodes one message and finds its entity; an undecodable one is poison.
 * Once the entity is known, it->ev.entity is the configuration's name. */
static void decode_one(const wb_config_t *conf, const char *entity_filter, const fl_msg_t *m,
                       fl_item_t *it)
{
    wb_header_t stack[16], *hdrs;
    char errstr[256], name[WB_EVENT_ENTITY_MAX + 1];
    ssize_t n;
    wb_err_t err;

    memset(it, 0, sizeof(*it));
    if (m->nhdrs == FL_HDRS_BAD) {
        fl_item_poison(it, "undecodable: cannot parse message headers");
        return;
    }
    if ((n = fl_msg_headers(m, stack, sizeof(stack) / sizeof(stack[0]), &hdrs)) < 0) {
        fl_item_poison(it, "undecodable: out of memory for %" PRIu32 " headers", m->nhdrs);
        return;
    }
    err = wb_event_decode(m->key, m->keylen, m->value, m->len, n ? hdrs : NULL, (size_t)n, &it->ev,
                          errstr, sizeof(errstr));
    if (hdrs != stack) free(hdrs);
    if (err != WB_OK) {
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
    if (!(it->idoff = (uint32_t)wb_entity_id_offset(it->ent, it->ev.key, it->ev.keylen))) {
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
        decode_one(conf, entity_filter, &b->msgs[i], &b->items[i]);
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

/* Drops msg after a failure to batch it (out of memory). Dropping it is
 * not enough: the next message of its partition would be batched and
 * committed past it. Rewinds the partition to it, which also discards
 * what was fetched after it. */
static int drop_rewound(rd_kafka_message_t *msg, const char *what)
{
    rd_kafka_resp_err_t rerr =
        rd_kafka_seek(msg->rkt, msg->partition, msg->offset, FL_SEEK_TIMEOUT_MS);

    if (rerr) {
        WB_ERROR("out of memory %s, and cannot rewind %s [%" PRId32 "] to %" PRId64
                 " (%s): aborting rather than skipping it",
                 what, rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
                 rd_kafka_err2str(rerr));
        abort();
    }
    WB_ERROR("out of memory %s; %s [%" PRId32 "] rewound to %" PRId64, what,
             rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset);
    rd_kafka_message_destroy(msg);
    return -1;
}

int fl_batch_add(fl_batch_t *b, const wb_config_t *conf, const char *entity_filter,
                 rd_kafka_message_t *msg)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024, max = (size_t)conf->flusher.batch_max_events;
        /* Up to max_events exactly: a doubling past it would be up to half
         * unused, in each of the two batches. */
        if (b->cap < max && cap > max) cap = max;
        fl_msg_t *msgs = realloc(b->msgs, cap * sizeof(*msgs));
        fl_item_t *items = msgs ? realloc(b->items, cap * sizeof(*items)) : NULL;
        size_t *winners = items ? realloc(b->winners, cap * sizeof(*winners)) : NULL;
        if (msgs) b->msgs = msgs;
        if (items) b->items = items;
        if (winners) b->winners = winners;
        if (!winners) return drop_rewound(msg, "growing the batch");
        b->cap = cap;
        b->dedup_ok = b->dedup_ok && fl_batch_dedup_reset(b) == 0;
    }
    fl_msg_t *m = &b->msgs[b->n];
    if (copy_in(b, msg, m) != 0) return drop_rewound(msg, "copying a message into the batch");
    rd_kafka_message_destroy(msg);
    if (b->n == 0) {
        b->opened_ms = wb_time_mono_ms();
        b->dedup_ok = fl_batch_dedup_reset(b) == 0; /* an empty table for the new batch */
    }
    /* A message arriving while the batch waits (partitions paused during an
     * outage) joins it; the batch is then applied again from the start. */
    if (b->pg_done || b->dlq_done) b->redecode = 1;
    b->pg_done = b->dlq_done = 0;
    b->bytes += fl_msg_bytes(m);
    decode_one(conf, entity_filter, m, &b->items[b->n]);
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
    arena_reset(b);
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
    arena_reset(b); /* the pieces the batch used are spare now: freed by a second reset */
    for (size_t i = 0; i < b->ntopics; i++)
        free(b->topics[i]);
    free(b->topics);
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
    /* A dropped copy stays in the arena until the batch is cleared. */
    for (size_t i = 0; i < b->n; i++) {
        const fl_msg_t *m = &b->msgs[i];
        if (rd_kafka_topic_partition_list_find(parts, m->topic, m->partition)) {
            dropped++;
            continue;
        }
        b->bytes += fl_msg_bytes(m);
        b->msgs[j++] = *m;
    }
    b->n = j;
    b->redecode = 1;
    b->dedup_ok = 0;  /* indices moved: rebuilt by the re-decode */
    b->ranges_ok = 0; /* set again before the next apply */
    b->rewind = 0;
    return dropped;
}
