/* wb_lua.h — the library's own Lua scripts: the one-round-trip "get" and the lock release. */
#ifndef WB_LUA_H
#define WB_LUA_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "wbcache.h"

typedef enum wb_lua_id_e {
    WB_LUA_GET = 0, /* read an entry, refresh-ahead decision, stampede lock */
    WB_LUA_UNLOCK,  /* release the stampede lock if we still own it */
    WB_LUA__COUNT
} wb_lua_id_t;

/* SHAs as returned by SCRIPT LOAD; filled by wb_lua_load, then read-only. */
typedef struct wb_lua_s {
    char sha[WB_LUA__COUNT][41];
} wb_lua_t;

/* What the get script found. On a hit, value points into an owned buffer
 * (malloc'ed, NUL-terminated) that the caller takes with wb_lua_get_take
 * or frees with wb_lua_get_clear. */
typedef struct wb_lua_get_s {
    int hit;     /* entry exists (field v) */
    int locked;  /* miss only: this caller now holds the stampede lock */
    char *value; /* hit only */
    size_t len;
    int64_t version;
    int dirty;
    int deleted;  /* tombstone or negative entry: "not found" */
    int64_t pttl; /* remaining TTL ms, -1 none */
    int refresh;  /* hit only: this caller should publish a refresh request */
} wb_lua_get_t;

/* Arguments of the get script. lock_token NULL or "" = do not lock. */
typedef struct wb_lua_get_args_s {
    double refresh_ahead; /* entity's factor; 0 = off */
    int64_t ttl_ms;       /* entity's TTL */
    int64_t dedupe_ms;    /* refresh request window; <= 0 = no dedupe */
    const char *lock_token;
    int64_t lock_ttl_ms;
} wb_lua_get_args_t;

/* Lua source (static). */
const char *wb_lua_body(wb_lua_id_t id);

/* SCRIPT LOADs every script through ctx and records the SHAs in lua.
 * Returns WB_OK or WB_ERR_REDIS / WB_ERR_TIMEOUT with errstr. */
wb_err_t wb_lua_load(wb_lua_t *lua, redisContext *ctx, char *errstr, size_t errstr_size);

/* Runs the get script for key (side keys rr_key and lock_key, see
 * wb_key_side). Returns WB_OK with *out filled, or WB_ERR_REDIS /
 * WB_ERR_TIMEOUT / WB_ERR_NOMEM. */
wb_err_t wb_lua_get(const wb_lua_t *lua, redisContext *ctx, const char *key, size_t keylen,
                    const char *rr_key, const char *lock_key, const wb_lua_get_args_t *args,
                    wb_lua_get_t *out, char *errstr, size_t errstr_size);

/* Interprets a get script reply (pure; for tests). On WB_OK, out->value is
 * taken from reply (the element's buffer is moved, reply stays freeable).
 * WB_ERR_REDIS for an unexpected shape. */
wb_err_t wb_lua_get_parse(redisReply *reply, wb_lua_get_t *out, char *errstr, size_t errstr_size);

/* Frees out->value; zeroes out. NULL is fine. */
void wb_lua_get_clear(wb_lua_get_t *out);

/* Deletes lock_key if it still holds token (compare-and-delete), so a
 * holder whose lock expired cannot delete the next holder's lock. *released
 * (may be NULL) = 1 if deleted. */
wb_err_t wb_lua_unlock(const wb_lua_t *lua, redisContext *ctx, const char *lock_key,
                       const char *token, int *released, char *errstr, size_t errstr_size);

#endif /* WB_LUA_H */
