/* wb_scripts.c — the Redis Lua scripts of the cache entry layout, and calling them by SHA. */
#include "wb_scripts.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_redis.h"
#include "wb_util.h"

/* Redis < 5 refuses writes after TIME unless effects replication is on;
 * Redis >= 5 does it by default and 7.x keeps the call as a no-op. */
#define LUA_PROLOGUE "if redis.replicate_commands then redis.replicate_commands() end\n"

#define LUA_NOW                                                                                    \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"

/* One Lua line per C line: */
/* clang-format off */
/*
 * put — write-behind put/del (invariants 1 and 2).
 * KEYS[1] cache key, KEYS[2] dirty index; ARGV[1] value, ARGV[2] "1" for a
 * delete (the value is then stored as "" with del=1: a tombstone must stay
 * in the cache, dirty, until PostgreSQL holds the soft delete). Atomically:
 * now = TIME in µs; ver = max(max(ver, rv) + 1, now); HSET v/ver/d=1/wt=now/
 * del; drop rv (ver is above it now); PERSIST, because a dirty entry must not
 * expire or be picked by volatile-* eviction; ZADD the index with score now.
 * The index type is checked first so that a failure cannot leave a dirty
 * entry outside the index (a script error does not roll back earlier
 * writes). Returns {ver, now} as integers (exact: see the header).
 */
static const char LUA_PUT[] =
    LUA_PROLOGUE
    "local ty = redis.call('TYPE', KEYS[2]).ok\n"
    "if ty ~= 'zset' and ty ~= 'none' then\n"
    "  return redis.error_reply('WRONGTYPE wb put: dirty index is not a sorted set')\n"
    "end\n"
    LUA_NOW
    "local h = redis.call('HMGET', KEYS[1], 'ver', 'rv')\n"
    "local prev = tonumber(h[1]) or 0\n"
    "local r = tonumber(h[2]) or 0\n"
    "if r > prev then prev = r end\n"
    "local ver = now\n"
    "if prev + 1 > ver then ver = prev + 1 end\n"
    "local del, v = '0', ARGV[1]\n"
    "if ARGV[2] == '1' then del, v = '1', '' end\n"
    "local snow = string.format('%d', now)\n"
    "redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', ver), 'd', '1',\n"
    "           'wt', snow, 'del', del)\n"
    "if h[2] then redis.call('HDEL', KEYS[1], 'rv') end\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('ZADD', KEYS[2], snow, KEYS[1])\n"
    "return {ver, now}\n";

/*
 * version — the version of a write-through, reserved without touching the
 * value. KEYS[1] cache key; ARGV[1] reservation TTL ms (<= 0: 1000).
 * Write-through commits PostgreSQL with version V first and only then sets
 * the cache (the `through` script), so V must be (a) above every version the
 * key had so far, and (b) below every version handed out later — also to a
 * write-behind put that runs while the PostgreSQL transaction is open. If V
 * were only computed (max(prev+1, now)) and not stored, a put in the same
 * microsecond, or one after a burst that ran `ver` ahead of the clock, could
 * get the same V for a different value; PostgreSQL's strict `version <`
 * guard would then keep whichever arrived first while the cache keeps the
 * other — a permanent divergence. Writing V into `ver` is wrong too: the
 * cache would label the OLD value with V, and if the write-through then
 * failed, the flusher and sweeper would publish that old value as V. So V
 * goes into the separate field `rv` (reserved version), which `put` and
 * `version` include in their max. If the key has no value, the hash
 * created here holds only `rv` — a reservation that reads as a miss (the
 * layout says an entry exists only if `v` exists) — and gets a short TTL so
 * a failed write-through leaves nothing behind; once it expired the clock
 * is past V, so the time floor keeps later versions above V. Returns V.
 */
static const char LUA_VERSION[] =
    LUA_PROLOGUE
    LUA_NOW
    "local h = redis.call('HMGET', KEYS[1], 'ver', 'rv', 'v')\n"
    "local prev = tonumber(h[1]) or 0\n"
    "local r = tonumber(h[2]) or 0\n"
    "if r > prev then prev = r end\n"
    "local ver = now\n"
    "if prev + 1 > ver then ver = prev + 1 end\n"
    "redis.call('HSET', KEYS[1], 'rv', string.format('%d', ver))\n"
    "if not h[3] then\n"
    "  local ttl = tonumber(ARGV[1]) or 0\n"
    "  if ttl < 1 then ttl = 1000 end\n"
    "  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "end\n"
    "return ver\n";

/*
 * clean — the flusher has committed version V (invariant 2).
 * KEYS[1] cache key, KEYS[2] dirty index; ARGV[1] V, ARGV[2] TTL ms (<= 0:
 * no TTL). Only an entry whose ver is still V and dirty becomes clean
 * (d=0, PEXPIRE TTL, ZREM) -> 1. A newer entry is left alone -> 0, and stays
 * indexed if dirty (its own event will clean it) or is unindexed if clean
 * (the index lists only dirty entries). Same version already clean
 * (duplicate delivery, replay) -> 2. No entry (`v` absent: evicted, deleted
 * by hand, data lost) -> ZREM, and V is left as version memory: `ver` = V
 * in a value-less hash (which reads as a miss: an entry exists only if `v`
 * exists) -> 3. An entry OLDER than V (Redis came back from an old
 * snapshot, a replay after a restore, or the flusher cleaning with the
 * version PostgreSQL holds after refusing an older event) holds a value
 * that PostgreSQL has superseded: its value fields are dropped and `ver`
 * becomes V (`rv` kept), so the next read misses and reloads -> 4. Dropping
 * it is safe for invariant 2: its newest write is older than a durable one.
 * The memory is what keeps a lagging read-through fill (a row read before
 * V committed) from caching an older row over V's: `fill` refuses a
 * version below a remembered `ver`, and fills V itself. It lives for the
 * TTL (no TTL: 60 s, longer than a fill can lag by a default statement
 * timeout); an existing `ver` >= V is left alone. A cleaned tombstone stays
 * as a clean tombstone with the TTL: a read answers not-found without
 * asking PostgreSQL, and its version keeps a lagging fill from resurrecting
 * the key.
 */
static const char LUA_CLEAN[] =
    "local V = tonumber(ARGV[1])\n"
    "if not V then return redis.error_reply('ERR wb clean: version is not a number') end\n"
    "local ttl = tonumber(ARGV[2]) or 0\n"
    "local mem = ttl\n"
    "if mem <= 0 then mem = 60000 end\n"
    "local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd')\n"
    "local cur = tonumber(h[2])\n"
    "if not h[1] then\n"
    "  redis.call('ZREM', KEYS[2], KEYS[1])\n"
    "  if not cur or cur < V then\n"
    "    redis.call('HSET', KEYS[1], 'ver', string.format('%d', V))\n"
    "    if redis.call('PTTL', KEYS[1]) < mem then redis.call('PEXPIRE', KEYS[1], mem) end\n"
    "  end\n"
    "  return 3\n"
    "end\n"
    "cur = cur or 0\n"
    "if cur == V then\n"
    "  redis.call('ZREM', KEYS[2], KEYS[1])\n"
    "  if h[3] ~= '1' then return 2 end\n"
    "  redis.call('HSET', KEYS[1], 'd', '0')\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "  return 1\n"
    "end\n"
    "if cur > V then\n"
    "  if h[3] ~= '1' then redis.call('ZREM', KEYS[2], KEYS[1]) end\n"
    "  return 0\n"
    "end\n"
    "redis.call('ZREM', KEYS[2], KEYS[1])\n"
    "redis.call('HDEL', KEYS[1], 'v', 'd', 'wt', 'del')\n"
    "redis.call('HSET', KEYS[1], 'ver', string.format('%d', V))\n"
    "redis.call('PEXPIRE', KEYS[1], mem)\n"
    "return 4\n";

/*
 * fill — versioned cache fill from PostgreSQL: read-through miss and
 * refresh-ahead (invariant 8). KEYS[1] cache key; ARGV[1] value, ARGV[2]
 * version of the row, ARGV[3] TTL ms (<= 0: no TTL), ARGV[4] "1" if the row
 * is a soft-deleted tombstone. A dirty entry is never touched, not even its
 * TTL (it must stay pinned) -> 5. An entry with a newer version -> 4; this
 * includes a value-less hash whose remembered `ver` is newer (the read raced
 * a commit). Same version, clean: only extend the TTL, never shorten it
 * -> 3. Older clean entry: replaced -> 2. No entry: created -> 1. The new
 * entry is clean; wt is the fill time; a reservation `rv` is preserved.
 */
static const char LUA_FILL[] =
    LUA_PROLOGUE
    "local V = tonumber(ARGV[2])\n"
    "if not V then return redis.error_reply('ERR wb fill: version is not a number') end\n"
    "local ttl = tonumber(ARGV[3]) or 0\n"
    "local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd')\n"
    "local cur = tonumber(h[2])\n"
    "local code = 1\n"
    "if h[1] then\n"
    "  if h[3] == '1' then return 5 end\n"
    "  cur = cur or 0\n"
    "  if cur > V then return 4 end\n"
    "  if cur == V then\n"
    "    local left = redis.call('PTTL', KEYS[1])\n"
    "    if ttl <= 0 then redis.call('PERSIST', KEYS[1])\n"
    "    elseif left >= 0 and left < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "    return 3\n"
    "  end\n"
    "  code = 2\n"
    "elseif cur and cur > V then\n"
    "  return 4\n"
    "end\n"
    LUA_NOW
    "local del, v = '0', ARGV[1]\n"
    "if ARGV[4] == '1' then del, v = '1', '' end\n"
    "redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', V), 'd', '0',\n"
    "           'wt', string.format('%d', now), 'del', del)\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "return code\n";

/*
 * fill_aside — cache-aside fill from the caller's loader, which has no
 * version (invariant 8, last sentence). KEYS[1] cache key; ARGV[1] value,
 * ARGV[2] TTL ms (<= 0: no TTL), ARGV[3] "1" for a negative entry (the
 * loader found nothing: stored as a tombstone). Creates the entry only if
 * there is none (no `v`), clean, with ver 0 unless the hash remembers a
 * version (kept: it still floors the next put). Returns 1 created, 0 not.
 */
static const char LUA_FILL_ASIDE[] =
    LUA_PROLOGUE
    "if redis.call('HEXISTS', KEYS[1], 'v') == 1 then return 0 end\n"
    "local ttl = tonumber(ARGV[2]) or 0\n"
    LUA_NOW
    "local del, v = '0', ARGV[1]\n"
    "if ARGV[3] == '1' then del, v = '1', '' end\n"
    "redis.call('HSET', KEYS[1], 'v', v, 'd', '0', 'wt', string.format('%d', now), 'del', del)\n"
    "redis.call('HSETNX', KEYS[1], 'ver', '0')\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "return 1\n";

/*
 * through — write-through cache set, after PostgreSQL committed version V
 * (V from the `version` script). KEYS[1] cache key, KEYS[2] dirty index;
 * ARGV[1] value, ARGV[2] V, ARGV[3] TTL ms (<= 0: no TTL), ARGV[4] "1" for a
 * delete. If the cache holds a newer version (a put after the reservation)
 * nothing changes -> 0: that put's event will supersede V in PostgreSQL too.
 * Otherwise the entry becomes V, CLEAN, with the TTL, even if it was dirty
 * with an older version: PostgreSQL already holds V and will refuse the
 * older event, so keeping the older dirty value (as `fill` would) would
 * leave cache and database apart once it got cleaned. It is unindexed, and
 * `rv` is dropped if V covers it -> 1.
 */
static const char LUA_THROUGH[] =
    LUA_PROLOGUE
    "local V = tonumber(ARGV[2])\n"
    "if not V then return redis.error_reply('ERR wb through: version is not a number') end\n"
    "local ttl = tonumber(ARGV[3]) or 0\n"
    "local h = redis.call('HMGET', KEYS[1], 'ver', 'd', 'rv')\n"
    "local cur = tonumber(h[1])\n"
    "if cur and cur > V then return 0 end\n"
    LUA_NOW
    "local del, v = '0', ARGV[1]\n"
    "if ARGV[4] == '1' then del, v = '1', '' end\n"
    "redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', V), 'd', '0',\n"
    "           'wt', string.format('%d', now), 'del', del)\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "if h[2] == '1' then redis.call('ZREM', KEYS[2], KEYS[1]) end\n"
    "local r = tonumber(h[3])\n"
    "if r and r <= V then redis.call('HDEL', KEYS[1], 'rv') end\n"
    "return 1\n";

/*
 * forget — version V of the key is poison: the flusher could not apply it
 * and the dead-letter topic has acknowledged it (invariant 7). KEYS[1]
 * cache key, KEYS[2] dirty index; ARGV[1] V, ARGV[2] TTL ms for the version
 * memory (<= 0: only the floor below). Without this the entry would stay
 * dirty forever and the sweeper (invariant 9) would re-publish it on every
 * pass, filling the dead-letter topic. Only an entry that still holds
 * exactly V and is dirty is touched: a newer write has its own event, and
 * V clean means PostgreSQL holds it after all. It is unindexed and its
 * value fields dropped, so a read misses and fills from what PostgreSQL
 * holds — the cache falls back to the database. V is kept as version
 * memory in `rv`, not `ver`: `put` and `version` take max(ver, rv), so
 * later writes stay above V, while `fill` ignores `rv` and may fill the
 * older row PostgreSQL holds (a `ver` of V would make every fill a
 * "newer entry" skip until the memory expired). The memory lives for
 * ARGV[2] ms, but at least a second and until a second after Redis TIME
 * passes V (from then on the time floor alone keeps versions above V; a
 * version is ahead of the clock only after a burst). Returns 1 forgotten, 0
 * untouched (absent, older, newer or clean). ZREM comes first: if the
 * index has the wrong type the script fails before writing anything.
 */
static const char LUA_FORGET[] =
    LUA_PROLOGUE
    "local V = tonumber(ARGV[1])\n"
    "if not V then return redis.error_reply('ERR wb forget: version is not a number') end\n"
    "local ttl = tonumber(ARGV[2]) or 0\n"
    "local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'rv')\n"
    "if not h[1] or h[3] ~= '1' or tonumber(h[2]) ~= V then return 0 end\n"
    "redis.call('ZREM', KEYS[2], KEYS[1])\n"
    LUA_NOW
    "local keep = 1000\n"
    "if V > now then keep = keep + math.ceil((V - now) / 1000) end\n"
    "if keep > ttl then ttl = keep end\n"
    "local r = tonumber(h[4]) or 0\n"
    "if r < V then r = V end\n"
    "redis.call('HSET', KEYS[1], 'rv', string.format('%d', r))\n"
    "redis.call('HDEL', KEYS[1], 'v', 'ver', 'd', 'wt', 'del')\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "return 1\n";
/* clang-format on */

static const struct {
    const char *name;
    const char *body;
} scripts[WB_SCRIPT__COUNT] = {
    [WB_SCRIPT_PUT] = {"put", LUA_PUT},
    [WB_SCRIPT_VERSION] = {"version", LUA_VERSION},
    [WB_SCRIPT_CLEAN] = {"clean", LUA_CLEAN},
    [WB_SCRIPT_FILL] = {"fill", LUA_FILL},
    [WB_SCRIPT_FILL_ASIDE] = {"fill_aside", LUA_FILL_ASIDE},
    [WB_SCRIPT_THROUGH] = {"through", LUA_THROUGH},
    [WB_SCRIPT_FORGET] = {"forget", LUA_FORGET},
};

static char shas[WB_SCRIPT__COUNT][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

/* SHA1 (FIPS 180-1), only to name scripts for EVALSHA: no crypto needed,
 * and computing it locally makes the SHAs constant and race-free. */
static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e, f, k, tmp;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        tmp = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const unsigned char *p = data;
    unsigned char last[128];
    uint64_t bits = (uint64_t)len * 8;
    size_t rest, tail, i;

    for (rest = len; rest >= 64; rest -= 64, p += 64)
        sha1_block(h, p);
    memset(last, 0, sizeof(last));
    memcpy(last, p, rest);
    last[rest] = 0x80;
    tail = rest + 1 + 8 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++)
        last[tail - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, last);
    if (tail == 128) sha1_block(h, last + 64);
    for (i = 0; i < 5; i++)
        snprintf(out + 8 * i, 9, "%08x", (unsigned)h[i]);
}

static void compute_shas(void)
{
    int i;

    for (i = 0; i < WB_SCRIPT__COUNT; i++)
        sha1_hex(scripts[i].body, strlen(scripts[i].body), shas[i]);
}

static int valid_id(wb_script_id_t id)
{
    return (int)id >= 0 && id < WB_SCRIPT__COUNT;
}

const char *wb_scripts_body(wb_script_id_t id)
{
    return valid_id(id) ? scripts[id].body : NULL;
}

const char *wb_scripts_name(wb_script_id_t id)
{
    return valid_id(id) ? scripts[id].name : "?";
}

const char *wb_scripts_sha(wb_script_id_t id)
{
    if (!valid_id(id)) return NULL;
    pthread_once(&shas_once, compute_shas);
    return shas[id];
}

/* ------------------------------------------------------------ script sets */

struct wb_script_set_s {
    size_t n;
    const char **name;
    const char **body;
    char (*sha)[41];
};

/* The registry as a set: its names and bodies point into scripts[], its
 * SHAs are shas[]. */
static const char *registry_name[WB_SCRIPT__COUNT];
static const char *registry_body[WB_SCRIPT__COUNT];
static struct wb_script_set_s registry = {WB_SCRIPT__COUNT, registry_name, registry_body, shas};
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void registry_init(void)
{
    int i;

    pthread_once(&shas_once, compute_shas);
    for (i = 0; i < WB_SCRIPT__COUNT; i++) {
        registry_name[i] = scripts[i].name;
        registry_body[i] = scripts[i].body;
    }
}

const wb_script_set_t *wb_scripts_registry(void)
{
    pthread_once(&registry_once, registry_init);
    return &registry;
}

wb_err_t wb_scripts_set_new(const wb_script_def_t *defs, size_t n, wb_script_set_t **setp,
                            char *errstr, size_t errstr_size)
{
    wb_script_set_t *set = NULL;
    size_t i;

    if (setp) *setp = NULL;
    if (!setp || n == 0 || !defs) goto invalid;
    for (i = 0; i < n; i++)
        if (!defs[i].name || !defs[i].body) goto invalid;
    if (!(set = calloc(1, sizeof(*set))) || !(set->name = calloc(n, sizeof(*set->name))) ||
        !(set->body = calloc(n, sizeof(*set->body))) ||
        !(set->sha = calloc(n, sizeof(*set->sha)))) {
        wb_scripts_set_destroy(set);
        wb_set_err(errstr, errstr_size, "redis script set: out of memory");
        return WB_ERR_NOMEM;
    }
    set->n = n;
    for (i = 0; i < n; i++) {
        set->name[i] = defs[i].name;
        set->body[i] = defs[i].body;
        sha1_hex(defs[i].body, strlen(defs[i].body), set->sha[i]);
    }
    *setp = set;
    return WB_OK;

invalid:
    wb_set_err(errstr, errstr_size, "redis script set: invalid arguments");
    return WB_ERR_INVALID_ARG;
}

void wb_scripts_set_destroy(wb_script_set_t *set)
{
    if (!set || set == &registry) return;
    free(set->name);
    free(set->body);
    free(set->sha);
    free(set);
}

static int set_valid_id(const wb_script_set_t *set, int id)
{
    return set && id >= 0 && (size_t)id < set->n;
}

static const char *set_name(const wb_script_set_t *set, int id)
{
    return set_valid_id(set, id) ? set->name[id] : "?";
}

const char *wb_scripts_set_sha(const wb_script_set_t *set, int id)
{
    return set_valid_id(set, id) ? set->sha[id] : NULL;
}

wb_err_t wb_scripts_set_load(const wb_script_set_t *set, redisContext *ctx, char *errstr,
                             size_t errstr_size)
{
    size_t i;

    if (!ctx || !set) {
        wb_set_err(errstr, errstr_size, "redis script load: no connection");
        return WB_ERR_INVALID_ARG;
    }
    for (i = 0; i < set->n; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", set->body[i]};
        size_t argvlen[3] = {6, 4, strlen(set->body[i])};
        redisReply *r = redisCommandArgv(ctx, 3, argv, argvlen);
        wb_err_t err = WB_OK;

        if (!r) return wb_redis_ctx_error(ctx, "redis SCRIPT LOAD", errstr, errstr_size);
        if (r->type == REDIS_REPLY_ERROR) {
            wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: %s", set->name[i], r->str);
            err = WB_ERR_REDIS;
        } else if (r->type != REDIS_REPLY_STRING || r->len != 40 ||
                   memcmp(r->str, set->sha[i], 40) != 0) {
            wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: unexpected SHA from server",
                       set->name[i]);
            err = WB_ERR_REDIS;
        }
        freeReplyObject(r);
        if (err != WB_OK) return err;
    }
    return WB_OK;
}

/* Builds "EVALSHA sha nkeys argv..." (or EVAL body ...) into cmd/cmdlen,
 * which must hold WB_SCRIPTS_MAX_ARGS + 3 entries; nkbuf backs the nkeys
 * string. Returns the element count, or -1 for bad arguments. */
static int build_cmd(const wb_script_set_t *set, int id, int use_eval, int nkeys, int argc,
                     const char **argv, const size_t *argvlen, const char **cmd, size_t *cmdlen,
                     char *nkbuf, size_t nkbuf_size)
{
    int i;

    if (!set_valid_id(set, id) || nkeys < 0 || argc < nkeys || argc > WB_SCRIPTS_MAX_ARGS ||
        (argc > 0 && (!argv || !argvlen)))
        return -1;
    for (i = 0; i < argc; i++)
        if (!argv[i]) return -1;
    cmd[0] = use_eval ? "EVAL" : "EVALSHA";
    cmdlen[0] = strlen(cmd[0]);
    cmd[1] = use_eval ? set->body[id] : set->sha[id];
    cmdlen[1] = strlen(cmd[1]);
    snprintf(nkbuf, nkbuf_size, "%d", nkeys);
    cmd[2] = nkbuf;
    cmdlen[2] = strlen(nkbuf);
    for (i = 0; i < argc; i++) {
        cmd[3 + i] = argv[i];
        cmdlen[3 + i] = argvlen[i];
    }
    return argc + 3;
}

int wb_scripts_is_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->str &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

wb_err_t wb_scripts_set_call(const wb_script_set_t *set, redisContext *ctx, int id, int nkeys,
                             int argc, const char **argv, const size_t *argvlen, redisReply **reply,
                             char *errstr, size_t errstr_size)
{
    const char *cmd[WB_SCRIPTS_MAX_ARGS + 3];
    size_t cmdlen[WB_SCRIPTS_MAX_ARGS + 3];
    char nkbuf[16];
    redisReply *r;
    int n;

    if (reply) *reply = NULL;
    n = build_cmd(set, id, 0, nkeys, argc, argv, argvlen, cmd, cmdlen, nkbuf, sizeof(nkbuf));
    if (!ctx || !reply || n < 0) {
        wb_set_err(errstr, errstr_size, "redis script %s: invalid arguments", set_name(set, id));
        return WB_ERR_INVALID_ARG;
    }
    r = redisCommandArgv(ctx, n, cmd, cmdlen);
    if (r && wb_scripts_is_noscript(r)) {
        freeReplyObject(r);
        build_cmd(set, id, 1, nkeys, argc, argv, argvlen, cmd, cmdlen, nkbuf, sizeof(nkbuf));
        r = redisCommandArgv(ctx, n, cmd, cmdlen);
    }
    if (!r) {
        char what[64];

        snprintf(what, sizeof(what), "redis script %s", set_name(set, id));
        return wb_redis_ctx_error(ctx, what, errstr, errstr_size);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis script %s: %s", set_name(set, id), r->str);
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    *reply = r;
    return WB_OK;
}

/* Reads and drops n pending replies so ctx is usable again after a
 * partial append; an I/O error leaves ctx broken, which the caller reports. */
static void drain(redisContext *ctx, size_t n)
{
    void *r;

    while (n-- > 0) {
        if (redisGetReply(ctx, &r) != REDIS_OK) return;
        freeReplyObject(r);
    }
}

static void free_replies(redisReply **replies, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (replies[i]) freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

/* Call i of a pipeline as a set call, whatever array type holds it (the
 * registry's wb_script_call_t or wb_script_set_call_t). */
typedef void (*call_at_fn)(const void *calls, size_t i, wb_script_set_call_t *out);

static void registry_call_at(const void *calls, size_t i, wb_script_set_call_t *out)
{
    const wb_script_call_t *c = (const wb_script_call_t *)calls + i;

    *out = (wb_script_set_call_t){(int)c->id, c->nkeys, c->argc, c->argv, c->argvlen};
}

static void set_call_at(const void *calls, size_t i, wb_script_set_call_t *out)
{
    *out = ((const wb_script_set_call_t *)calls)[i];
}

/* Appends call c of set, as EVALSHA or EVAL, without I/O. Returns WB_OK,
 * WB_ERR_INVALID_ARG or WB_ERR_NOMEM. */
static wb_err_t append_call(const wb_script_set_t *set, redisContext *ctx,
                            const wb_script_set_call_t *c, int use_eval)
{
    const char *cmd[WB_SCRIPTS_MAX_ARGS + 3];
    size_t cmdlen[WB_SCRIPTS_MAX_ARGS + 3];
    char nkbuf[16];
    int n;

    n = build_cmd(set, c->id, use_eval, c->nkeys, c->argc, c->argv, c->argvlen, cmd, cmdlen, nkbuf,
                  sizeof(nkbuf));
    if (!ctx || n < 0) return WB_ERR_INVALID_ARG;
    if (redisAppendCommandArgv(ctx, n, cmd, cmdlen) != REDIS_OK) return WB_ERR_NOMEM;
    return WB_OK;
}

static wb_err_t run_pipeline(const wb_script_set_t *set, redisContext *ctx, const void *calls,
                             call_at_fn call_at, size_t n, redisReply **replies, char *errstr,
                             size_t errstr_size)
{
    const char *cmd[WB_SCRIPTS_MAX_ARGS + 3];
    size_t cmdlen[WB_SCRIPTS_MAX_ARGS + 3];
    char nkbuf[16];
    wb_script_set_call_t c;
    size_t i, first, start, nsent = 0;
    wb_err_t err;

    if (!ctx || !set || (n > 0 && (!calls || !replies))) {
        wb_set_err(errstr, errstr_size, "redis script pipeline: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (i = 0; i < n; i++) {
        replies[i] = NULL;
        call_at(calls, i, &c);
        if (build_cmd(set, c.id, 0, c.nkeys, c.argc, c.argv, c.argvlen, cmd, cmdlen, nkbuf,
                      sizeof(nkbuf)) < 0) {
            wb_set_err(errstr, errstr_size, "redis script pipeline: invalid arguments in call %zu",
                       i);
            return WB_ERR_INVALID_ARG;
        }
    }
    for (i = 0; i < n; i++) {
        call_at(calls, i, &c);
        err = append_call(set, ctx, &c, 0);
        if (err != WB_OK) {
            drain(ctx, nsent);
            wb_set_err(errstr, errstr_size, "redis script pipeline: out of memory");
            return err;
        }
        nsent++;
    }
    for (i = 0; i < n; i++)
        if (redisGetReply(ctx, (void **)&replies[i]) != REDIS_OK || !replies[i]) goto io_error;
    for (first = 0; first < n && !wb_scripts_is_noscript(replies[first]); first++)
        ;
    if (first == n) return WB_OK;

    /* The script cache was lost (restart, SCRIPT FLUSH, failover) while
     * the pipeline ran. A call after the first NOSCRIPT may still have run
     * — another client re-cached its script in between — and running an
     * earlier call now would reorder them (two puts of one key would end
     * with the earlier value). So a NOSCRIPT call is re-sent only if no
     * later call ran: from just after the last one that did, every call is
     * re-sent, in order; the NOSCRIPT calls before it stay failed (their
     * reply is the NOSCRIPT error: they did not run). The set's scripts are
     * loaded again for the next pipelines; the re-sent calls use EVAL,
     * which is right even if the cache is flushed once more. */
    start = first;
    for (i = first + 1; i < n; i++)
        if (!wb_scripts_is_noscript(replies[i])) start = i + 1;
    err = wb_scripts_set_load(set, ctx, errstr, errstr_size);
    if (err != WB_OK && ctx->err) goto io_error;
    nsent = 0;
    for (i = start; i < n; i++) {
        call_at(calls, i, &c);
        if (append_call(set, ctx, &c, 1) != WB_OK) {
            drain(ctx, nsent);
            free_replies(replies, n);
            wb_set_err(errstr, errstr_size, "redis script pipeline: out of memory");
            return WB_ERR_NOMEM;
        }
        nsent++;
    }
    for (i = start; i < n; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        if (redisGetReply(ctx, (void **)&replies[i]) != REDIS_OK || !replies[i]) goto io_error;
    }
    return WB_OK;

io_error:
    err = wb_redis_ctx_error(ctx, "redis script pipeline", errstr, errstr_size);
    free_replies(replies, n);
    return err;
}

wb_err_t wb_scripts_set_pipeline(const wb_script_set_t *set, redisContext *ctx,
                                 const wb_script_set_call_t *calls, size_t n, redisReply **replies,
                                 char *errstr, size_t errstr_size)
{
    return run_pipeline(set, ctx, calls, set_call_at, n, replies, errstr, errstr_size);
}

/* ------------------------------------------- the registry, through its set */

wb_err_t wb_scripts_load(redisContext *ctx, char *errstr, size_t errstr_size)
{
    return wb_scripts_set_load(wb_scripts_registry(), ctx, errstr, errstr_size);
}

wb_err_t wb_scripts_call(redisContext *ctx, wb_script_id_t id, int nkeys, int argc,
                         const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                         size_t errstr_size)
{
    return wb_scripts_set_call(wb_scripts_registry(), ctx, (int)id, nkeys, argc, argv, argvlen,
                               reply, errstr, errstr_size);
}

wb_err_t wb_scripts_append(redisContext *ctx, wb_script_id_t id, int nkeys, int argc,
                           const char **argv, const size_t *argvlen)
{
    wb_script_set_call_t c = {(int)id, nkeys, argc, argv, argvlen};

    return append_call(wb_scripts_registry(), ctx, &c, 0);
}

wb_err_t wb_scripts_pipeline(redisContext *ctx, const wb_script_call_t *calls, size_t n,
                             redisReply **replies, char *errstr, size_t errstr_size)
{
    return run_pipeline(wb_scripts_registry(), ctx, calls, registry_call_at, n, replies, errstr,
                        errstr_size);
}
