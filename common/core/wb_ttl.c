/* wb_ttl.c — the TTL policy of clean cache entries: the entity's TTL with random jitter. */
#include "wb_ttl.h"

int64_t wb_ttl_jitter(int64_t ttl_ms, int pct, uint64_t rnd)
{
    int64_t span, ttl;

    if (ttl_ms <= 0 || pct <= 0) return ttl_ms;
    if (pct > WB_TTL_JITTER_MAX_PCT) pct = WB_TTL_JITTER_MAX_PCT;
    span = ttl_ms * pct / 100; /* jitter in [-span, +span] */
    if (span <= 0) return ttl_ms;
    ttl = ttl_ms + (int64_t)(rnd % (uint64_t)(2 * span + 1)) - span;
    return ttl < 1 ? 1 : ttl;
}

int64_t wb_ttl_fill(const wb_config_t *conf, const wb_entity_t *ent, uint64_t rnd)
{
    return wb_ttl_jitter(ent->ttl_ms, conf->producer.ttl_jitter_pct, rnd);
}
