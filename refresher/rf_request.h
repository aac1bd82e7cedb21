/* rf_request.h — a refresh request decoded and checked before it reaches PostgreSQL (pure). */
#ifndef RF_REQUEST_H
#define RF_REQUEST_H

#include <stddef.h>

#include "wb_config.h"
#include "wb_event.h"

/* A refresh request that may be served: its entity and cache key (borrowed
 * from the message, as wb_event_t's). */
typedef struct rf_request_s {
    const wb_entity_t *ent; /* from conf */
    const char *key;        /* the cache key: "{N}" + ent->prefix + id; not NUL-terminated */
    size_t keylen;
} rf_request_t;

/* Checks a decoded refresh request ev against conf: the entity it names
 * exists, the key starts (after its shard tag "{N}", which must be the
 * key's own shard; a key without one is read as prefix + id) with that
 * entity's prefix, and the id after it is
 * 1..WB_EVENT_KEY_MAX bytes of UTF-8 without NUL (what a PostgreSQL text
 * key can hold: anything else would fail the whole batch's query). Anyone
 * who can produce to the refresh topic reaches this. Returns WB_OK with
 * *req filled, or WB_ERR_INVALID_ARG with the reason in errstr. Pure. */
wb_err_t rf_request_check(const wb_config_t *conf, const wb_event_t *ev, rf_request_t *req,
                          char *errstr, size_t errstr_size);

/* Decodes (wb_event_decode_refresh) and checks (rf_request_check) a refresh
 * request from a message's key, value and headers. Returns WB_OK, or
 * WB_ERR_DECODE / WB_ERR_INVALID_ARG with the reason in errstr. Pure; the
 * refresher's fuzz target (tests/fuzz/fuzz_refresh.c). */
wb_err_t rf_request_decode(const wb_config_t *conf, const void *key, size_t keylen,
                           const void *value, size_t valuelen, const wb_header_t *hdrs,
                           size_t nhdrs, rf_request_t *req, char *errstr, size_t errstr_size);

/* As rf_request_decode, for a consumed message (borrowed by *req). */
wb_err_t rf_request_from_message(const wb_config_t *conf, const rd_kafka_message_t *msg,
                                 rf_request_t *req, char *errstr, size_t errstr_size);

#endif /* RF_REQUEST_H */
