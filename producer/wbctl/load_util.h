/* load_util.h — the pure parts of `wbctl load`: option parsing, key sampling, values, latency
 * histogram. */
#ifndef LOAD_UTIL_H
#define LOAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"

/* Operation mix in percent; the four add up to 100. through = write-through
 * puts (wb_put_through). */
typedef struct wbl_mix_s {
    int put, get, del, through;
} wbl_mix_t;

typedef enum wbl_op_e { WBL_PUT = 0, WBL_GET = 1, WBL_DEL = 2, WBL_THROUGH = 3 } wbl_op_t;

/* Parses "put=80,get=15,del=5" or "put=70,get=15,del=5,through=10" (any
 * order, each at most once, missing ones are 0, the sum must be 100).
 * Returns 0, or -1 with a message in err. */
int wbl_parse_mix(const char *s, wbl_mix_t *mix, char *err, size_t err_size);

/* Picks the operation for a uniform number r in [0, 100). */
wbl_op_t wbl_mix_pick(const wbl_mix_t *mix, unsigned r);

/* Key distribution: "uniform" or "zipf:S" with S > 0 (e.g. zipf:1.1). */
typedef struct wbl_dist_s {
    int zipf;
    double s;
} wbl_dist_t;

int wbl_parse_dist(const char *s, wbl_dist_t *dist, char *err, size_t err_size);

/* Parses a positive integer with an optional k/m/g suffix (x1000). Returns
 * 0, or -1 for garbage, zero, or above max. */
int wbl_parse_count(const char *s, uint64_t max, uint64_t *out);

/* Zipf over ranks 0..n-1: P(rank k) proportional to 1 / (k + 1)^s, sampled
 * by binary search in a precomputed CDF (8 bytes per key). Rank 0 is the
 * hottest key. NULL when out of memory or n == 0. */
typedef struct wbl_zipf_s wbl_zipf_t;
wbl_zipf_t *wbl_zipf_new(uint64_t n, double s);
uint64_t wbl_zipf_sample(const wbl_zipf_t *z, double u); /* u in [0, 1) */
void wbl_zipf_destroy(wbl_zipf_t *z);

/* The value written by operation seq to key k: deterministic, so the
 * ground truth file can be rebuilt from (k, seq). text: [a-z0-9]; jsonb:
 * the canonical text form PostgreSQL prints for it ({"k": K, "p": "...",
 * "s": SEQ}, so value::text compares byte for byte); bytea: any bytes.
 * Writes size bytes (jsonb: at least its minimal form) into buf (room for
 * size + 64) and returns the length. */
size_t wbl_value(char *buf, size_t size, wb_value_type_t vt, uint64_t k, uint64_t seq);

/* Lowercase hex of len bytes into out (2 * len + 1 bytes). */
void wbl_hex(char *out, const void *data, size_t len);

/* Latency histogram in nanoseconds: exact below 64 ns, then 32 buckets per
 * power of two (about 3 % relative error), up to 2^50 ns. Not thread-safe:
 * one per thread, merged at the end. */
#define WBL_HIST_BUCKETS (64 + 45 * 32)
typedef struct wbl_hist_s {
    uint64_t counts[WBL_HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
} wbl_hist_t;

void wbl_hist_add(wbl_hist_t *h, uint64_t ns);
void wbl_hist_merge(wbl_hist_t *dst, const wbl_hist_t *src);
/* The q-quantile (0 < q <= 1) in ns: the middle of the bucket holding the
 * ceil(q * n)-th smallest sample (the exact maximum for the last one); 0
 * for an empty histogram. */
uint64_t wbl_hist_quantile(const wbl_hist_t *h, double q);

#endif /* LOAD_UTIL_H */
