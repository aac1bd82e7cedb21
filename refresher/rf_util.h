/* rf_util.h — pure helpers of wb-refresher: text[] query parameter, TTL jitter, key -> entity. */
#ifndef RF_UTIL_H
#define RF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"
#include "wb_event.h"

/* PostgreSQL type OID of text[] (pg_type.h; stable across versions). */
#define RF_OID_TEXT_ARRAY 1009

/* Builds the binary form of a one-dimensional text[] of n elements
 * (strs[i], lens[i] bytes; no NULLs) for PQexecParams with format 1 and type
 * RF_OID_TEXT_ARRAY. Returns a malloc'ed buffer the caller frees and sets
 * *len, or NULL when out of memory or the array would exceed 1 GiB. */
char *rf_text_array(const char *const *strs, const size_t *lens, size_t n, int *len);

/* TTL of a fill: ttl_ms spread uniformly by +-pct percent (0..50) using
 * *rng (wb_rand state, advanced), so keys filled together do not expire
 * together. ttl_ms <= 0 (no TTL) and pct <= 0 are returned unchanged; the
 * result is at least 1. */
int64_t rf_jitter_ttl(int64_t ttl_ms, int pct, uint64_t *rng);

/* The entity a cache key belongs to: the one named in hint (entitylen
 * bytes, may be NULL) if it exists and key starts with its prefix followed
 * by at least one byte; otherwise the longest-prefix match of key (with a
 * non-empty id). NULL when none fits. */
const wb_entity_t *rf_entity_for_key(const wb_config_t *conf, const char *hint, size_t hintlen,
                                     const char *key, size_t keylen);

/* Name of the Redis key holding the sweeper lease for dirty_index
 * ("<dirty_index>:sweeper"), written into out[size]. Returns 0, or -1 if
 * it does not fit. */
int rf_lease_key(const char *dirty_index, char *out, size_t size);

#endif /* RF_UTIL_H */
