/* wb_backoff.c — capped exponential backoff with equal jitter, deterministic per seed. */
#include "wb_backoff.h"

#include "wb_rand.h"

void wb_backoff_init(wb_backoff_t *b, int64_t initial_ms, int64_t max_ms, uint64_t seed)
{
    b->initial_ms = initial_ms < 1 ? 1 : initial_ms;
    b->max_ms = max_ms < b->initial_ms ? b->initial_ms : max_ms;
    b->attempt = 0;
    b->rng = seed;
}

int64_t wb_backoff_cap_ms(const wb_backoff_t *b)
{
    int64_t cap = b->initial_ms;
    uint32_t i;

    /* Doubling stops at max_ms, so at most ~63 iterations and no overflow
     * (cap <= max_ms / 2 before each doubling). */
    for (i = 0; i < b->attempt && cap < b->max_ms; i++)
        cap = cap > b->max_ms / 2 ? b->max_ms : cap * 2;
    return cap < b->max_ms ? cap : b->max_ms;
}

int64_t wb_backoff_next_ms(wb_backoff_t *b)
{
    int64_t cap = wb_backoff_cap_ms(b);
    int64_t half = cap / 2;

    if (b->attempt < UINT32_MAX) b->attempt++;
    return half + (int64_t)wb_rand_upto(&b->rng, (uint64_t)(cap - half));
}

void wb_backoff_reset(wb_backoff_t *b)
{
    b->attempt = 0;
}
