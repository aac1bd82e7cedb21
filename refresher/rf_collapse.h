/* rf_collapse.h — drops repeated refresh requests for one key within a time window. */
#ifndef RF_COLLAPSE_H
#define RF_COLLAPSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rf_collapse_s rf_collapse_t;

/* Creates a collapser: a key admitted at time t is collapsed until
 * t + window_ms (window_ms <= 0: only within one batch), remembering at most
 * max_keys keys (0: 1000000; beyond it the oldest are forgotten, which only
 * means fewer requests are collapsed). Returns NULL when out of memory. The
 * caller owns it (rf_collapse_destroy). One thread at a time. */
rf_collapse_t *rf_collapse_new(int64_t window_ms, size_t max_keys);

/* Frees c; NULL is fine. */
void rf_collapse_destroy(rf_collapse_t *c);

/* Decides a request for key (keylen bytes, copied) arriving at now_ms
 * (monotonic, non-decreasing between calls) while batch number batch is
 * open (non-decreasing too). Returns 1 to serve it — the key was not
 * admitted in this batch nor within the window — and records the
 * admission; 0 if it is collapsed into an earlier one. Out of memory
 * answers 1: serving twice is only wasted work. */
int rf_collapse_admit(rf_collapse_t *c, const char *key, size_t keylen, int64_t now_ms,
                      uint64_t batch);

/* Keys remembered right now (for tests and a gauge). */
size_t rf_collapse_size(const rf_collapse_t *c);

#endif /* RF_COLLAPSE_H */
