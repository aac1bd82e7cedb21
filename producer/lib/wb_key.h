/* wb_key.h — cache keys (entity prefix + id) and the library's per-key side keys. */
#ifndef WB_KEY_H
#define WB_KEY_H

#include <stddef.h>

#include "wb_config.h"

/* Room for any cache key (WB_EVENT_KEY_MAX bytes) plus NUL. */
#define WB_KEY_MAX 1025
/* Room for a side key: shard tag + "wb:lock:" + key body + NUL. */
#define WB_KEY_SIDE_MAX (WB_KEY_MAX + 16)

/* Checks that id can name a key: 1.. bytes of valid UTF-8 (the PostgreSQL
 * key column is text), no control bytes, no '{' or '}' (a key's Redis
 * Cluster hash tag is its shard's "{N}", which a brace inside would break).
 * Returns WB_OK or WB_ERR_INVALID_ARG with the reason in errstr. Pure. */
wb_err_t wb_key_check_id(const char *id, char *errstr, size_t errstr_size);

/* Writes the cache key "{N}" + ent->prefix + id (N = its shard among
 * nshards, wb_entry_shard_of; the layout is wb_entry.h's) into buf
 * (WB_KEY_MAX bytes) as a C string and its length into *lenp (may be
 * NULL). Returns WB_ERR_INVALID_ARG if id fails wb_key_check_id or the key
 * would exceed WB_EVENT_KEY_MAX bytes. Pure. */
wb_err_t wb_key_build(const wb_entity_t *ent, int nshards, const char *id, char *buf, size_t *lenp,
                      char *errstr, size_t errstr_size);

/* Writes the side key "{N}wb:<kind>:<prefix + id>" of the cache key
 * "{N}<prefix + id>" into buf (WB_KEY_SIDE_MAX bytes): kind is "lock"
 * (stampede lock) or "rr" (refresh-request dedupe marker). The shard tag
 * keeps a side key in the cache key's Redis Cluster slot, so one script
 * may touch both. Returns the length. Pure. */
size_t wb_key_side(const char *kind, const char *key, char *buf);

#endif /* WB_KEY_H */
