/* wb_lua.h — the library's own Lua scripts: the one-round-trip "get" and the lock release. */
#ifndef WB_LUA_H
#define WB_LUA_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "wb_scripts.h"
#include "wbcache.h"

typedef enum wb_lua_id_e {
    WB_LUA_GET = 0, /* read an entry, refresh-ahead decision, stampede lock */
    WB_LUA_UNLOCK,  /* release the stampede lock if we still own it */
    WB_LUA__COUNT
} wb_lua_id_t;

/* The library's scripts as a script set (wb_scripts.h): made by
 * wb_lua_load, then read-only (any thread may call them), freed by
 * wb_lua_fini. A zeroed wb_lua_t is "not loaded". */
typedef struct wb_lua_s {
    wb_script_set_t *scripts; /* owned */
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

/* Makes lua's script set unless it exists (SHAs computed locally), then
 * SCRIPT LOADs every script through ctx, so the first EVALSHA hits (the
 * calls fall back to EVAL anyway). Call once, before lua is shared between
 * threads. Returns WB_OK, or WB_ERR_NOMEM / WB_ERR_REDIS / WB_ERR_TIMEOUT
 * with errstr; the set may exist after a failure, wb_lua_fini frees it. */
wb_err_t wb_lua_load(wb_lua_t *lua, redisContext *ctx, char *errstr, size_t errstr_size);

/* Frees lua's script set and zeroes lua; NULL or a zeroed lua is fine. */
void wb_lua_fini(wb_lua_t *lua);

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
