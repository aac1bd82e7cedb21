/* fl_coalesce.h — keep the newest event per key within a batch, grouped by table (pure). */
#ifndef FL_COALESCE_H
#define FL_COALESCE_H

#include <stddef.h>
#include <stdint.h>

/* One event of a batch as coalescing sees it. Pointers are borrowed. */
typedef struct fl_coalesce_item_s {
    uint32_t group;  /* e.g. the entity's index in the config: output is grouped by it */
    const char *key; /* the row key; bytes, not NUL-terminated */
    size_t keylen;
    int64_t version;
} fl_coalesce_item_t;

/* Picks, for every distinct (group, key), the item with the highest version
 * (between equal versions, the one with the highest index: the later
 * duplicate). Writes the winners' indices into out[] (room for n), ordered by
 * group, then key bytes, and returns how many there are; n minus that is the
 * number coalesced away. Allocates nothing; out may not alias items. Pure and
 * reentrant. */
size_t fl_coalesce(const fl_coalesce_item_t *items, size_t n, size_t *out);

#endif /* FL_COALESCE_H */
