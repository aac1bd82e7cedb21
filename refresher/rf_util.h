/* rf_util.h — pure helpers of wb-refresher: key -> entity, lease key. */
#ifndef RF_UTIL_H
#define RF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"
#include "wb_event.h"

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
