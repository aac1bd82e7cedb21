/* wb_redis.h — Redis connection setup and typed calls of the cache-entry scripts. */
#ifndef WB_REDIS_H
#define WB_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "wb_config.h"
#include "wb_scripts.h"
#include "wbcache.h"

/* Dirty index used when a dirty_index argument is NULL. */
#define WB_REDIS_DEFAULT_DIRTY_INDEX "wb:dirty"

/* One cache entry as read by wb_redis_get (layout: wb_scripts.h). */
typedef struct wb_redis_entry_s {
    int found;        /* 1 if the entry exists (field v present) */
    int deleted;      /* tombstone or negative entry: "not found" */
    int dirty;        /* PostgreSQL does not hold this version yet */
    int64_t version;  /* field ver */
    int64_t write_us; /* field wt */
    int64_t pttl_ms;  /* remaining TTL in ms; -1 none */
    char *value;      /* malloc'ed, value_len bytes plus a NUL; NULL if !found */
    size_t value_len;
} wb_redis_entry_t;

/* Connects to conf->redis.host:port with conf->redis.timeout_ms for the
 * connect and for every later command (so a dead server cannot block a
 * caller longer), AUTHs if a password is set, SELECTs the db and SCRIPT
 * LOADs the scripts. On WB_OK *out owns a new blocking context (free with
 * redisFree). On failure *out is NULL and the result is WB_ERR_REDIS,
 * WB_ERR_TIMEOUT, WB_ERR_INVALID_ARG or WB_ERR_NOMEM with errstr naming
 * host:port and what failed (never the password). A context is used by one
 * thread at a time. */
wb_err_t wb_redis_connect(const wb_config_t *conf, redisContext **out, char *errstr,
                          size_t errstr_size);

/* Replaces *ctx (typically broken: ctx->err set) with a new connection made
 * as wb_redis_connect does. On WB_OK the old context was freed; on failure
 * *ctx is left as it was, so the caller may retry later. */
wb_err_t wb_redis_reconnect(const wb_config_t *conf, redisContext **ctx, char *errstr,
                            size_t errstr_size);

/* Translates ctx's I/O error (ctx->err) into WB_ERR_TIMEOUT (read, write or
 * connect timed out) or WB_ERR_REDIS, writing "what: detail" to errstr. */
wb_err_t wb_redis_ctx_error(const redisContext *ctx, const char *what, char *errstr,
                            size_t errstr_size);

/* Write-behind put (is_delete 0) or delete (1) of key, binary-safe, via the
 * put script: the entry becomes dirty, without TTL, listed in dirty_index
 * (NULL: WB_REDIS_DEFAULT_DIRTY_INDEX). *version and *time_us (either may be
 * NULL) receive the assigned version and Redis write time. */
wb_err_t wb_redis_put(redisContext *ctx, const char *key, size_t keylen, const void *val,
                      size_t vlen, int is_delete, const char *dirty_index, int64_t *version,
                      int64_t *time_us, char *errstr, size_t errstr_size);

/* Reserves the version of a write-through (version script; see its
 * contract in wb_scripts.c). reserve_ttl_ms bounds how long a reservation
 * on an absent key lives (<= 0: 1000 ms). */
wb_err_t wb_redis_version(redisContext *ctx, const char *key, size_t keylen, int64_t reserve_ttl_ms,
                          int64_t *version, char *errstr, size_t errstr_size);

/* Flusher: PostgreSQL committed version of key; marks the entry clean with
 * ttl_ms (<= 0: no TTL) only if it still holds that version. *result (may
 * be NULL) says what happened. */
wb_err_t wb_redis_clean(redisContext *ctx, const char *key, size_t keylen, const char *dirty_index,
                        int64_t version, int64_t ttl_ms, wb_clean_result_t *result, char *errstr,
                        size_t errstr_size);

/* Versioned fill from PostgreSQL (read-through, refresh-ahead): never
 * overwrites a newer or dirty entry. is_deleted stores a tombstone (the row
 * is soft-deleted). *result (may be NULL) says what happened. */
wb_err_t wb_redis_fill(redisContext *ctx, const char *key, size_t keylen, const void *val,
                       size_t vlen, int64_t version, int64_t ttl_ms, int is_deleted,
                       wb_fill_result_t *result, char *errstr, size_t errstr_size);

/* Cache-aside fill of an unversioned value; creates the entry only if there
 * is none. is_negative stores "not found". *created (may be NULL) is 1 if
 * the entry was created. */
wb_err_t wb_redis_fill_aside(redisContext *ctx, const char *key, size_t keylen, const void *val,
                             size_t vlen, int64_t ttl_ms, int is_negative, int *created,
                             char *errstr, size_t errstr_size);

/* Write-through cache set after PostgreSQL committed version (from
 * wb_redis_version). *applied (may be NULL) is 0 if the cache already held
 * a newer version and was left alone. */
wb_err_t wb_redis_through(redisContext *ctx, const char *key, size_t keylen,
                          const char *dirty_index, const void *val, size_t vlen, int64_t version,
                          int64_t ttl_ms, int is_delete, int *applied, char *errstr,
                          size_t errstr_size);

/* Reads key's entry (HMGET + PTTL in one round trip; not atomic with
 * respect to other clients, which only matters for the TTL). A missing
 * entry is WB_OK with entry->found 0. On WB_OK the caller owns
 * entry->value: release with wb_redis_entry_clear. */
wb_err_t wb_redis_get(redisContext *ctx, const char *key, size_t keylen, wb_redis_entry_t *entry,
                      char *errstr, size_t errstr_size);

/* Frees entry->value and zeroes entry; NULL is fine. */
void wb_redis_entry_clear(wb_redis_entry_t *entry);

#endif /* WB_REDIS_H */
