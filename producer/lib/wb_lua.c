/* wb_lua.c — the library's own Lua scripts: the one-round-trip "get" and the lock release. */
#include "wb_lua.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_scripts.h"
#include "wb_util.h"

/* clang-format off */
/*
 * get — the whole read hit path in one round trip.
 * KEYS[1] cache key, KEYS[2] refresh marker "wb:rr:{key}", KEYS[3] stampede
 * lock "wb:lock:{key}". ARGV[1] refresh_ahead, ARGV[2] entity TTL ms,
 * ARGV[3] dedupe window ms (<= 0: none), ARGV[4] lock token ("" = do not
 * lock), ARGV[5] lock TTL ms.
 * Hit (field v exists; the layout of wb_scripts.h) -> {1, v, ver, d, del,
 * pttl, rr}. rr = 1 tells THIS caller to publish a refresh request: the
 * entry is clean and live and its remaining TTL is below (1 - ra) * ttl,
 * and the marker could be created (SET NX PX window) — so among all
 * processes sharing the Redis only one reader per window publishes.
 * Dirty entries have no TTL and are never refreshed (the flusher owns
 * them); tombstones neither (a negative entry just expires).
 * Miss -> {0, locked}: the lock is tried in the same script, so the first
 * reader of an absent key learns "miss, and you load it" in one trip, and a
 * waiting reader's poll is one trip that either hits the winner's fill or
 * takes a lock that was released (winner failed) or expired (winner died).
 */
static const char LUA_GET[] =
    "local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'del')\n"
    "if not h[1] then\n"
    "  if ARGV[4] ~= '' and redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5]) then\n"
    "    return {0, 1}\n"
    "  end\n"
    "  return {0, 0}\n"
    "end\n"
    "local pttl = redis.call('PTTL', KEYS[1])\n"
    "local rr = 0\n"
    "local ra = tonumber(ARGV[1]) or 0\n"
    "if ra > 0 and h[3] ~= '1' and h[4] ~= '1' and pttl >= 0 and\n"
    "   pttl < (1 - ra) * (tonumber(ARGV[2]) or 0) then\n"
    "  local win = tonumber(ARGV[3]) or 0\n"
    "  if win <= 0 or redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then rr = 1 end\n"
    "end\n"
    "return {1, h[1], h[2] or '0', h[3] or '0', h[4] or '0', pttl, rr}\n";

/*
 * unlock — compare-and-delete. KEYS[1] lock key, ARGV[1] owner token.
 * Only the owner deletes: a holder that outlived its lock's TTL must not
 * release the lock a later reader took meanwhile.
 */
static const char LUA_UNLOCK[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";
/* clang-format on */

static const wb_script_def_t defs[WB_LUA__COUNT] = {
    [WB_LUA_GET] = {"get", LUA_GET},
    [WB_LUA_UNLOCK] = {"unlock", LUA_UNLOCK},
};

const char *wb_lua_body(wb_lua_id_t id)
{
    return (int)id >= 0 && id < WB_LUA__COUNT ? defs[id].body : NULL;
}

wb_err_t wb_lua_load(wb_lua_t *lua, redisContext *ctx, char *errstr, size_t errstr_size)
{
    wb_err_t err;

    if (!lua->scripts && (err = wb_scripts_set_new(defs, WB_LUA__COUNT, &lua->scripts, errstr,
                                                   errstr_size)) != WB_OK)
        return err;
    return wb_scripts_set_load(lua->scripts, ctx, errstr, errstr_size);
}

void wb_lua_fini(wb_lua_t *lua)
{
    if (!lua) return;
    wb_scripts_set_destroy(lua->scripts);
    lua->scripts = NULL;
}

static int64_t str_i64(const redisReply *r)
{
    char buf[32];

    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf)) return 0;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    return strtoll(buf, NULL, 10);
}

static int str_is_one(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] == '1';
}

wb_err_t wb_lua_get_parse(redisReply *reply, wb_lua_get_t *out, char *errstr, size_t errstr_size)
{
    redisReply **e;

    memset(out, 0, sizeof(*out));
    out->pttl = -1;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) goto bad;
    e = reply->element;
    if (e[0]->type != REDIS_REPLY_INTEGER) goto bad;
    if (e[0]->integer == 0) {
        out->locked = e[1]->type == REDIS_REPLY_INTEGER && e[1]->integer == 1;
        return WB_OK;
    }
    if (reply->elements != 7 || e[1]->type != REDIS_REPLY_STRING ||
        e[5]->type != REDIS_REPLY_INTEGER || e[6]->type != REDIS_REPLY_INTEGER)
        goto bad;
    out->hit = 1;
    /* hiredis allocates every string len + 1 with a NUL: move the buffer
     * out instead of copying a possibly large value. */
    out->value = e[1]->str;
    out->len = e[1]->len;
    e[1]->str = NULL;
    e[1]->len = 0;
    out->version = str_i64(e[2]);
    out->dirty = str_is_one(e[3]);
    out->deleted = str_is_one(e[4]);
    out->pttl = e[5]->integer;
    out->refresh = e[6]->integer == 1;
    return WB_OK;

bad:
    wb_set_err(errstr, errstr_size, "redis script get: unexpected reply");
    return WB_ERR_REDIS;
}

void wb_lua_get_clear(wb_lua_get_t *out)
{
    if (!out) return;
    free(out->value);
    memset(out, 0, sizeof(*out));
    out->pttl = -1;
}

wb_err_t wb_lua_get(const wb_lua_t *lua, redisContext *ctx, const char *key, size_t keylen,
                    const char *rr_key, const char *lock_key, const wb_lua_get_args_t *args,
                    wb_lua_get_t *out, char *errstr, size_t errstr_size)
{
    char ra[32], ttl[24], win[24], lttl[24];
    const char *tok = args->lock_token ? args->lock_token : "";
    const char *argv[8] = {key, rr_key, lock_key, ra, ttl, win, tok, lttl};
    size_t argvlen[8];
    redisReply *r = NULL;
    wb_err_t err;

    memset(out, 0, sizeof(*out));
    argvlen[0] = keylen;
    argvlen[1] = strlen(rr_key);
    argvlen[2] = strlen(lock_key);
    argvlen[3] = (size_t)snprintf(ra, sizeof(ra), "%.6f", args->refresh_ahead);
    argvlen[4] = (size_t)snprintf(ttl, sizeof(ttl), "%" PRId64, args->ttl_ms);
    argvlen[5] = (size_t)snprintf(win, sizeof(win), "%" PRId64, args->dedupe_ms);
    argvlen[6] = strlen(tok);
    argvlen[7] = (size_t)snprintf(lttl, sizeof(lttl), "%" PRId64,
                                  args->lock_ttl_ms > 0 ? args->lock_ttl_ms : 1000);
    err = wb_scripts_set_call(lua->scripts, ctx, WB_LUA_GET, 3, 8, argv, argvlen, &r, errstr,
                              errstr_size);
    if (err != WB_OK) return err;
    err = wb_lua_get_parse(r, out, errstr, errstr_size);
    freeReplyObject(r);
    return err;
}

wb_err_t wb_lua_unlock(const wb_lua_t *lua, redisContext *ctx, const char *lock_key,
                       const char *token, int *released, char *errstr, size_t errstr_size)
{
    const char *argv[2] = {lock_key, token};
    size_t argvlen[2] = {strlen(lock_key), strlen(token)};
    redisReply *r = NULL;
    wb_err_t err;

    err = wb_scripts_set_call(lua->scripts, ctx, WB_LUA_UNLOCK, 1, 2, argv, argvlen, &r, errstr,
                              errstr_size);
    if (err != WB_OK) return err;
    if (released) *released = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return WB_OK;
}
