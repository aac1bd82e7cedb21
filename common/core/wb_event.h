/* wb_event.h — the change-event codec: Kafka key/value/headers <-> wb_event_t (invariant 3).
 */
#ifndef WB_EVENT_H
#define WB_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "wbcache.h"

/* Header names. A change event carries the first four; a refresh request
 * carries wb-kind: refresh and wb-entity (wb-version / wb-time-us optional).
 * Unknown headers are ignored on decode so newer producers can add some. */
#define WB_HDR_VERSION       "wb-version" /* decimal ASCII, 1..WB_EVENT_VERSION_MAX */
#define WB_HDR_ENTITY        "wb-entity"  /* 1..63 bytes of [A-Za-z0-9_] */
#define WB_HDR_TIME_US       "wb-time-us" /* decimal ASCII, us since epoch */
#define WB_HDR_OP            "wb-op"      /* "put" | "del" */
#define WB_HDR_KIND          "wb-kind"    /* absent or "change" | "refresh" */
#define WB_HDR_DLQ_REASON    "wb-dlq-reason"
#define WB_HDR_DLQ_TOPIC     "wb-dlq-topic"
#define WB_HDR_DLQ_PARTITION "wb-dlq-partition"
#define WB_HDR_DLQ_OFFSET    "wb-dlq-offset"

/* Highest version an event may carry: 2^53. The Redis scripts compute with
 * Lua numbers (doubles), which are exact only up to here; a larger version
 * would compare wrongly there, and a single one would also hold its key
 * above every real version forever. Microsecond time reaches it in 2255. */
#define WB_EVENT_VERSION_MAX INT64_C(9007199254740992)

#define WB_EVENT_KEY_MAX    1024
#define WB_EVENT_ENTITY_MAX 63
#define WB_EVENT_NHDRS      4  /* enough wb_header_t for any encode below */
#define WB_EVENT_SCRATCH    48 /* enough scratch for any encode below */

typedef enum wb_event_kind_e {
    WB_EVENT_CHANGE = 0,  /* put or delete of a key (flusher input) */
    WB_EVENT_REFRESH = 1, /* please reload this key (refresher input) */
} wb_event_kind_t;

/* One Kafka header. name is a C string; value may be NULL (a Kafka null
 * header), then len is 0. Values are NOT NUL-terminated. */
typedef struct wb_header_s {
    const char *name;
    const void *value;
    size_t len;
} wb_header_t;

/* A change event or refresh request. All pointers are borrowed; key and
 * entity are NOT NUL-terminated (use keylen / entitylen).
 *  - put:    value != NULL (an empty value is a non-NULL pointer with
 *            valuelen 0), is_delete = 0.
 *  - delete: value == NULL, valuelen = 0, is_delete = 1 (Kafka tombstone).
 *  - refresh request: kind = WB_EVENT_REFRESH, value NULL, is_delete 0;
 *            version and time_us are 0 when not sent. */
typedef struct wb_event_s {
    const char *key;
    size_t keylen;
    const void *value;
    size_t valuelen;
    int is_delete;
    int64_t version; /* > 0 for a change */
    int64_t time_us; /* write time, microseconds since the Unix epoch, >= 0 */
    const char *entity;
    size_t entitylen;
    wb_event_kind_t kind; /* zero-initialized = WB_EVENT_CHANGE */
} wb_event_t;

/* Checks ev against the rules above (key 1..1024 bytes, entity 1..63 of
 * [A-Za-z0-9_], version 1..WB_EVENT_VERSION_MAX (0 allowed for a refresh
 * request), time_us >= 0, value/is_delete consistent).
 * Returns WB_OK or WB_ERR_INVALID_ARG with the reason in errstr. */
wb_err_t wb_event_validate(const wb_event_t *ev, char *errstr, size_t errstr_size);

/* Fills hdrs[0..*nhdrs) with the headers of ev (by ev->kind). Names point to
 * static strings; values point into ev->entity, static strings or scratch
 * (numbers are formatted there), so hdrs is valid while ev and scratch are.
 * WB_EVENT_NHDRS headers and WB_EVENT_SCRATCH bytes always suffice.
 * Returns WB_ERR_INVALID_ARG if ev is invalid (see wb_event_validate) or
 * the arrays are too small. The Kafka key is ev->key, the value ev->value. */
wb_err_t wb_event_encode_headers(const wb_event_t *ev, wb_header_t *hdrs, size_t nhdrs_max,
                                 size_t *nhdrs, char *scratch, size_t scratch_size);

/* Decodes a change event from a Kafka message's key, value (NULL = Kafka
 * null value = delete; non-NULL with valuelen 0 = empty put) and headers.
 * On success *ev borrows pointers into key, value and the header values:
 * keep those alive while using ev. Returns WB_ERR_DECODE with one line in
 * errstr saying what is wrong (e.g. "missing header wb-version"), including
 * for a refresh request; WB_ERR_INVALID_ARG for NULL ev / inconsistent
 * lengths. *ev is zeroed on error. */
wb_err_t wb_event_decode(const void *key, size_t keylen, const void *value, size_t valuelen,
                         const wb_header_t *hdrs, size_t nhdrs, wb_event_t *ev, char *errstr,
                         size_t errstr_size);

/* As wb_event_decode, for a refresh request (wb-kind: refresh, wb-entity,
 * value null or empty). A change event is a WB_ERR_DECODE here. */
wb_err_t wb_event_decode_refresh(const void *key, size_t keylen, const void *value, size_t valuelen,
                                 const wb_header_t *hdrs, size_t nhdrs, wb_event_t *ev,
                                 char *errstr, size_t errstr_size);

/* Builds the headers a dead-lettered message gets in addition to its own:
 * wb-dlq-reason (reason, borrowed, NUL-terminated), wb-dlq-topic (topic,
 * borrowed), wb-dlq-partition and wb-dlq-offset (decimal, in scratch).
 * Returns WB_ERR_INVALID_ARG for NULL strings, negative numbers or arrays
 * smaller than WB_EVENT_NHDRS / WB_EVENT_SCRATCH. */
wb_err_t wb_event_encode_dlq_headers(const char *reason, const char *topic, int32_t partition,
                                     int64_t offset, wb_header_t *hdrs, size_t nhdrs_max,
                                     size_t *nhdrs, char *scratch, size_t scratch_size);

/* Copies the entity name of ev into buf as a C string (for config lookups);
 * buf needs WB_EVENT_ENTITY_MAX + 1 bytes. Returns buf, or NULL if it does
 * not fit. */
const char *wb_event_entity_cstr(const wb_event_t *ev, char *buf, size_t size);

/* ---- librdkafka adapters ---- */

/* Appends hdrs[0..n) to rd_hdrs (values are copied). Returns WB_ERR_KAFKA if
 * librdkafka refuses (read-only list). */
wb_err_t wb_event_add_rd_headers(rd_kafka_headers_t *rd_hdrs, const wb_header_t *hdrs, size_t n);

/* Creates a new librdkafka header list for ev in *out. The caller owns it:
 * pass it to rd_kafka_producev(RD_KAFKA_V_HEADERS(*out)), which takes it
 * only on success; otherwise rd_kafka_headers_destroy(*out). Returns
 * WB_ERR_INVALID_ARG for an invalid event (nothing allocated). */
wb_err_t wb_event_to_rd_headers(const wb_event_t *ev, rd_kafka_headers_t **out);

/* Decodes a consumed message (change event). librdkafka gives
 * msg->payload == NULL for a Kafka null value (tombstone → delete) and a
 * non-NULL payload with len 0 for an empty value (empty put). *ev borrows
 * from msg: use it only while msg is alive. Returns WB_ERR_KAFKA if msg is
 * a consumer error (msg->err != 0) or its headers cannot be parsed,
 * WB_ERR_NOMEM, or as wb_event_decode. */
wb_err_t wb_event_from_message(const rd_kafka_message_t *msg, wb_event_t *ev, char *errstr,
                               size_t errstr_size);

/* As wb_event_from_message, for a refresh request. */
wb_err_t wb_event_refresh_from_message(const rd_kafka_message_t *msg, wb_event_t *ev, char *errstr,
                                       size_t errstr_size);

#endif /* WB_EVENT_H */
