/* wb_rand.h — the project's one PRNG: splitmix64 on a caller's state, or per thread. */
#ifndef WB_RAND_H
#define WB_RAND_H

#include <stdint.h>

/* Not for secrets: fast, statistically good, reproducible from a seed. */

/* Advances *state (any value, 0 included, is a valid seed) and returns the
 * next 64 random bits. The same seed gives the same sequence on every
 * platform (tests pass a constant). Not thread-safe: one state per user. */
uint64_t wb_rand_next(uint64_t *state);

/* Uniform in [0, n] (n itself included), without modulo bias (rejection
 * sampling); n == UINT64_MAX gives any value. Advances *state. */
uint64_t wb_rand_upto(uint64_t *state, uint64_t n);

/* Uniform double in [0, 1) with 53 random bits. Advances *state. */
double wb_rand_unit(uint64_t *state);

/* The next number of this thread's own stream, seeded on first use from
 * wb_random_seed() (so processes and threads differ). Thread-safe without
 * locks; for jitter and tokens that only have to differ between holders. */
uint64_t wb_rand(void);

#endif /* WB_RAND_H */
