/* wb_ttl.h — the TTL policy of clean cache entries: the entity's TTL with random jitter. */
#ifndef WB_TTL_H
#define WB_TTL_H

#include <stdint.h>

#include "wb_config.h"

/* Largest jitter, in percent of the TTL; producer.ttl_jitter_pct is
 * validated against it. At 50 a TTL stays within [ttl / 2, 3 * ttl / 2]:
 * spread enough that keys filled together do not expire together, never
 * so short that an entry is gone again before it served a read. */
#define WB_TTL_JITTER_MAX_PCT 50

/* ttl_ms spread uniformly over [ttl_ms - span, ttl_ms + span], span =
 * ttl_ms * pct / 100 with pct capped at WB_TTL_JITTER_MAX_PCT; rnd (any
 * 64-bit random number) picks the point. ttl_ms <= 0 (no TTL) and pct <= 0
 * are returned unchanged; the result is never below 1 ms. Pure. */
int64_t wb_ttl_jitter(int64_t ttl_ms, int pct, uint64_t rnd);

/* The TTL of a clean entry of ent that was filled from PostgreSQL:
 * ent->ttl_ms with conf's producer.ttl_jitter_pct
 * of jitter, picked by rnd. Pure. */
int64_t wb_ttl_fill(const wb_config_t *conf, const wb_entity_t *ent, uint64_t rnd);

#endif /* WB_TTL_H */
