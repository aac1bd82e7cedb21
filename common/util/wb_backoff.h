/* wb_backoff.h — capped exponential backoff with equal jitter, deterministic per seed. */
#ifndef WB_BACKOFF_H
#define WB_BACKOFF_H

#include <stdint.h>

/* Plain struct so it can live inside other structs; touch it only through
 * these functions. Not thread-safe: one per retry loop. */
typedef struct wb_backoff_s {
    int64_t initial_ms; /* cap of the first step */
    int64_t max_ms;     /* the cap never exceeds this */
    uint32_t attempt;   /* steps taken since init/reset (saturates) */
    uint64_t rng;       /* wb_rand state */
} wb_backoff_t;

/* Prepares b. initial_ms < 1 is taken as 1; max_ms < initial_ms is taken as
 * initial_ms. The same seed gives the same sequence of delays (tests pass a
 * constant; daemons pass wb_random_seed() so replicas do not retry in step). */
void wb_backoff_init(wb_backoff_t *b, int64_t initial_ms, int64_t max_ms, uint64_t seed);

/* Returns the delay before the next retry and advances one step. With
 * cap = min(max_ms, initial_ms * 2^attempt), the delay is uniform in
 * [cap / 2, cap] ("equal jitter"): retries of many clients spread out, yet
 * the wait never collapses towards 0 the way full jitter can. Safe for any
 * number of calls (no overflow; the cap stays at max_ms). */
int64_t wb_backoff_next_ms(wb_backoff_t *b);

/* The cap the next wb_backoff_next_ms will use (for logging). */
int64_t wb_backoff_cap_ms(const wb_backoff_t *b);

/* Back to the first step after a success; the random stream continues. */
void wb_backoff_reset(wb_backoff_t *b);

#endif /* WB_BACKOFF_H */
