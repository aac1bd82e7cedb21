/* fl_coalesce.c — keep the newest event per key within a batch, grouped by table (pure). */
#include "fl_coalesce.h"

#include <stdlib.h>
#include <string.h>

static int cmp_key(const fl_coalesce_item_t *a, const fl_coalesce_item_t *b)
{
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    if (c) return c;
    if (a->keylen != b->keylen) return a->keylen < b->keylen ? -1 : 1;
    return 0;
}

/* Orders by (group, key) ascending, then the winner first: version
 * descending, index descending. Sorting by key (rather than hashing) also
 * hands PostgreSQL the rows of one statement in key order, so two replicas
 * writing overlapping keys during a rebalance take row locks in the same
 * order and cannot deadlock. */
static int cmp_idx(const void *pa, const void *pb, void *ctx)
{
    const fl_coalesce_item_t *items = ctx;
    size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
    int c = cmp_key(&items[ia], &items[ib]);
    if (c) return c;
    if (items[ia].version != items[ib].version)
        return items[ia].version > items[ib].version ? -1 : 1;
    return ia > ib ? -1 : (ia < ib ? 1 : 0);
}

size_t fl_coalesce(const fl_coalesce_item_t *items, size_t n, size_t *out)
{
    size_t nout = 0;

    if (!items || !out || n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = i;
    qsort_r(out, n, sizeof(*out), cmp_idx, (void *)items);
    for (size_t i = 0; i < n; i++) {
        if (nout > 0 && cmp_key(&items[out[nout - 1]], &items[out[i]]) == 0)
            continue; /* an older (or equal, earlier) event of the same key */
        out[nout++] = out[i];
    }
    return nout;
}
