/* fl_batch.h — the flusher's intake: decoded messages, each key's newest, due or full. */
#ifndef FL_BATCH_H
#define FL_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "wb_config.h"
#include "wb_event.h"

/* Per-message bookkeeping of a batch: decoded when the message arrives,
 * settled by the apply step. */
typedef struct fl_item_s {
    wb_event_t ev;
    const wb_entity_t *ent;
    int state;      /* FL_ITEM_* */
    uint32_t idoff; /* GOOD or SKIP: where the id starts in ev.key (after tag and prefix) */
    char *reason;   /* poison reason (malloc'ed) when state is FL_ITEM_POISON */
    /* > 0: PostgreSQL refused the event for this newer stored version; the
     * cache entry is cleaned against it, not against ev.version. */
    int64_t stored_version;
} fl_item_t;

enum { FL_ITEM_GOOD = 0, FL_ITEM_POISON = 1, FL_ITEM_SKIP = 2, FL_ITEM_DONE = 3 };

/* A consumed message, copied out of librdkafka when it joins a batch (the
 * librdkafka message is destroyed right there: held for a batch, its
 * per-message overhead and the fetch buffer it pins cost several times
 * what the event holds). key, value and the packed headers lie in one
 * piece of the batch's arena, valid until the batch is cleared. */
typedef struct fl_msg_s {
    const char *topic;         /* interned in the batch (fl_batch_t.topics) */
    const char *key;           /* NULL: no key */
    const void *value;         /* NULL: a Kafka null value (a delete) */
    const unsigned char *hdrs; /* packed, read with fl_msg_headers */
    int64_t offset;
    int64_t timestamp_ms; /* -1: none */
    int32_t partition;
    uint32_t keylen, len, hdrlen;
    uint32_t nhdrs; /* FL_HDRS_BAD: librdkafka could not parse them (none kept) */
    uint32_t bytes; /* fl_msg_bytes */
} fl_msg_t;

#define FL_HDRS_BAD UINT32_MAX

/* Unpacks the headers of m into stack (room for nstack) when they fit,
 * else into an array it allocates; *out is the one used (free it when it
 * is not stack). Names and values point into m (value NULL: a null
 * header). Returns how many (0 for FL_HDRS_BAD), or -1 out of memory. */
ssize_t fl_msg_headers(const fl_msg_t *m, wb_header_t *stack, size_t nstack, wb_header_t **out);
/* The value of m's last header called name (NULL: a null header) and its
 * length. Returns 0, or -1 when m has none. */
int fl_msg_header_last(const fl_msg_t *m, const char *name, const void **value, size_t *len);
/* What m counts against flusher.batch.max_bytes: key, value, and every
 * header's name and value (a message may carry large headers and no
 * value). */
int64_t fl_msg_bytes(const fl_msg_t *m);

/* A piece of a batch's arena (fl_msgs' copies). */
typedef struct fl_chunk_s {
    struct fl_chunk_s *next;
    size_t size, used;
    unsigned char data[];
} fl_chunk_t;

/* The part of one partition a batch covers: it continues the partition at
 * from (where the consumer stood before the batch: every offset below is
 * applied already) and ends before next. Recorded in PostgreSQL with the
 * batch (fl_pgoffsets). */
typedef struct fl_range_s {
    const char *topic; /* borrowed from the batch (fl_batch_t.topics) */
    int32_t partition;
    int64_t from, next;
    int64_t recorded; /* set when the database contradicts from: what it records, else -1 */
} fl_range_t;

/* A batch: consumed messages (copies, owned) and their items, applied as one. */
typedef struct fl_batch_s {
    fl_msg_t *msgs;
    fl_item_t *items;           /* parallel to msgs; items[0..n) are decoded */
    fl_chunk_t *chunks, *spare; /* the arena msgs[] point into; spare: emptied, reused */
    char **topics;              /* names msgs[].topic point to, kept until fl_batch_free */
    size_t ntopics;
    size_t n, cap;
    int64_t bytes;     /* what the messages hold: keys, values and headers (fl_msg_bytes) */
    int64_t opened_ms; /* monotonic time of the first message */
    int redecode;      /* a failed apply changed items[]: decode them again first */
    /* Newest event per key, kept as messages arrive (open addressing over
     * GOOD items: index + 1, 0 = empty), so the writer sorts only the
     * distinct keys. dedup_ok 0: not usable (after a drop or re-decode). */
    uint32_t *slots;
    size_t nslots;
    int dedup_ok;
    int pg_done;     /* PostgreSQL transaction committed; items[] final */
    int dlq_done;    /* poison messages acknowledged by the dead-letter topic */
    size_t *winners; /* indices applied (for clean-marking), nwinners of them */
    /* Its ranges, one per partition (set on the polling thread before each
     * apply, fl_offsets_ranges); ranges_ok 0: unknown, nothing recorded. */
    fl_range_t *ranges;
    size_t nranges, ranges_cap;
    int ranges_ok;
    int rewind; /* the apply found the database behind a range (recorded set) */
    size_t nwinners;
    /* Figures of the committed PostgreSQL step, counted when the batch completes. */
    uint64_t upserted, stale, deletes, coalesced, skipped, dead;
    int64_t apply_us; /* time spent applying (all attempts) */
} fl_batch_t;

/* Messages per consume call (one call per message costs 2-3 times more). */
#define FL_TAKE_MAX 1024

/* Marks it poison with a reason (printf format; owned by it). */
void fl_item_poison(fl_item_t *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Takes ownership of msg (a consumed, error-free message), copies it into
 * b and destroys it, decodes the copy against conf (an entity other than
 * entity_filter, when not NULL, is skipped) and appends it. Returns 0, or
 * -1 when the batch could not grow (out of memory): msg is destroyed and
 * its partition rewound to it,
 * so it is consumed again later and nothing after it can be committed past
 * it; the caller must not count it as taken. If even the rewind fails the
 * process aborts rather than skip a message. */
int fl_batch_add(fl_batch_t *b, const wb_config_t *conf, const char *entity_filter,
                 rd_kafka_message_t *msg);
/* 1 when version (Redis time in microseconds) is more than
 * flusher.max_version_ahead_ms ahead of now_us (0 = never): such an event
 * is poison. Pure. */
int fl_batch_version_too_far(const wb_config_t *conf, int64_t version, int64_t now_us);

/* Takes into msgs (room for FL_TAKE_MAX) what the consumer queue cq holds,
 * at most what b still has room for below max_events; if it holds
 * nothing, wakes a stalled fetcher of nudge (wb_daemon_nudge_fetcher;
 * NULL: none, as during an outage) and waits up to timeout_ms for one
 * message. Rebalance callbacks are served inside. Returns how many (the
 * caller owns them), 0 or -1 for none. */
ssize_t fl_batch_take(const fl_batch_t *b, int max_events, rd_kafka_queue_t *cq, rd_kafka_t *nudge,
                      int timeout_ms, int64_t *nudged_ms, rd_kafka_message_t **msgs);
/* 1 when b reached flusher.batch_max_events or batch_max_bytes of conf.
 * While the writer is busy a batch that is only old keeps filling up to
 * this (bigger batches under load: more coalescing, fewer statements). */
int fl_batch_full(const fl_batch_t *b, const wb_config_t *conf);
/* 1 when b must be applied now at now_ms (monotonic), the writer being
 * idle: full, or its first message is flusher.batch_max_wait_ms old, or
 * caught_up (the consumer has taken everything there is to fetch right
 * now, fl_offsets_caught_up: waiting would add latency and no events).
 * An empty batch is never due. While the writer is busy the caller does
 * not ask: the batch keeps filling. */
int fl_batch_due(const fl_batch_t *b, const wb_config_t *conf, int64_t now_ms, int caught_up);

/* Decodes every message again (after a failed apply attempt changed
 * items[], or a drop moved them) and rebuilds the per-key index. */
void fl_batch_redecode(fl_batch_t *b, const wb_config_t *conf, const char *entity_filter);
/* Clears the figures and winners of an apply attempt. */
void fl_batch_reset_counts(fl_batch_t *b);
/* Empties b; keeps its arrays and arena for the next batch. */
void fl_batch_clear(fl_batch_t *b);
/* Empties b and frees its arrays and arena; b is left empty. */
void fl_batch_free(fl_batch_t *b);
/* Drops the messages of the partitions in parts and keeps the rest in
 * order; the batch is decoded again before its next apply. Returns how
 * many were dropped. */
size_t fl_batch_drop(fl_batch_t *b, const rd_kafka_topic_partition_list_t *parts);

/* Per-key newest: sizes the index for b->cap items and fills it from the
 * GOOD items of items[0..n). Returns 0, or -1 out of memory (b->dedup_ok
 * is then to be left 0: the apply sorts every item instead). */
int fl_batch_dedup_reset(fl_batch_t *b);
/* Records GOOD item i as its key's newest so far: the highest version, and
 * between equal versions the later one, as fl_coalesce picks. */
void fl_batch_dedup_add(fl_batch_t *b, size_t i);
/* Writes into out (room for b->n) the index of each distinct key's newest
 * GOOD item, in no particular order, and returns how many. Only while
 * b->dedup_ok. */
size_t fl_batch_newest(const fl_batch_t *b, size_t *out);

#endif /* FL_BATCH_H */
