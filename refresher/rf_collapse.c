/* rf_collapse.c — drops repeated refresh requests for one key within a time window.
 *
 * A hash of recently admitted keys plus a FIFO in admission order. Admission
 * times and batch numbers only grow, so the FIFO is sorted by both and
 * expiry pops from its head until the first entry that is still inside the
 * window or belongs to the open batch. */
#include "rf_collapse.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <utlist.h>

#define RF_COLLAPSE_DEFAULT_MAX 1000000

typedef struct entry_s {
    UT_hash_handle hh;
    struct entry_s *prev, *next; /* FIFO, oldest admission first */
    int64_t admitted_ms;
    uint64_t batch;
    size_t keylen;
    char key[];
} entry_t;

struct rf_collapse_s {
    entry_t *hash;
    entry_t *fifo;
    size_t n, max;
    int64_t window_ms;
};

rf_collapse_t *rf_collapse_new(int64_t window_ms, size_t max_keys)
{
    rf_collapse_t *c = calloc(1, sizeof(*c));

    if (!c) return NULL;
    c->window_ms = window_ms > 0 ? window_ms : 0;
    c->max = max_keys ? max_keys : RF_COLLAPSE_DEFAULT_MAX;
    return c;
}

static void forget(rf_collapse_t *c, entry_t *e)
{
    HASH_DEL(c->hash, e);
    DL_DELETE(c->fifo, e);
    free(e);
    c->n--;
}

void rf_collapse_destroy(rf_collapse_t *c)
{
    if (!c) return;
    while (c->fifo)
        forget(c, c->fifo);
    free(c);
}

static int expired(const rf_collapse_t *c, const entry_t *e, int64_t now_ms, uint64_t batch)
{
    return e->batch != batch && now_ms - e->admitted_ms >= c->window_ms;
}

int rf_collapse_admit(rf_collapse_t *c, const char *key, size_t keylen, int64_t now_ms,
                      uint64_t batch)
{
    entry_t *e = NULL;

    if (!c || (!key && keylen)) return 1;
    while (c->fifo && expired(c, c->fifo, now_ms, batch))
        forget(c, c->fifo);
    HASH_FIND(hh, c->hash, key, keylen, e);
    if (e) {
        if (!expired(c, e, now_ms, batch)) return 0;
        /* Unreachable after the expiry loop unless the clock went back;
         * renew it at the tail so the FIFO stays sorted. */
        DL_DELETE(c->fifo, e);
        e->admitted_ms = now_ms;
        e->batch = batch;
        DL_APPEND(c->fifo, e);
        return 1;
    }
    if (c->n >= c->max && c->fifo) forget(c, c->fifo);
    e = malloc(sizeof(*e) + (keylen ? keylen : 1));
    if (!e) return 1;
    memset(e, 0, sizeof(*e));
    if (keylen) memcpy(e->key, key, keylen);
    e->keylen = keylen;
    e->admitted_ms = now_ms;
    e->batch = batch;
    HASH_ADD_KEYPTR(hh, c->hash, e->key, e->keylen, e);
    DL_APPEND(c->fifo, e);
    c->n++;
    return 1;
}

size_t rf_collapse_size(const rf_collapse_t *c)
{
    return c ? c->n : 0;
}
