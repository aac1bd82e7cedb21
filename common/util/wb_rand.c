/* wb_rand.c — the project's one PRNG: splitmix64 on a caller's state, or per thread. */
#include "wb_rand.h"

#include "wb_util.h"

uint64_t wb_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t wb_rand_upto(uint64_t *state, uint64_t n)
{
    uint64_t range, limit, r;

    if (n == UINT64_MAX) return wb_rand_next(state);
    range = n + 1;
    limit = UINT64_MAX - UINT64_MAX % range;
    do {
        r = wb_rand_next(state);
    } while (r >= limit);
    return r % range;
}

double wb_rand_unit(uint64_t *state)
{
    return (double)(wb_rand_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t wb_rand(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;

    if (!seeded) {
        state = wb_random_seed();
        seeded = 1;
    }
    return wb_rand_next(&state);
}
