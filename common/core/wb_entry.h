/* wb_entry.h — the Redis cache entry: its layout, every script on it and every dirty-index
 * command. The one owner of what libwbcache, wb-flusher, wb-refresher and wbctl store in Redis.
 */
#ifndef WB_ENTRY_H
#define WB_ENTRY_H

/*
 * THE ENTRY
 *
 * Every cache key is a Redis HASH:
 *   v    value bytes ("" for a tombstone)
 *   ver  version, decimal integer (microseconds-since-epoch scale, see
 *        below); "0" for a cache-aside fill, which has no version
 *   d    "1" dirty (PostgreSQL does not hold this version yet), "0" clean
 *   wt   write time in microseconds since the epoch (Redis TIME), decimal:
 *        of the last put, fill or write-through (`clean` keeps it)
 *   del  "1" tombstone (a delete, a soft-deleted row, or a negative
 *        cache-aside entry; v is ""), "0" live value
 *   e    the entity the key belongs to (its name; "" if the writer named
 *        none), written by put, fill, fill_aside and through: the sweeper
 *        re-publishes a dirty entry under it and never guesses from the key
 *        (prefixes do not overlap either: the config refuses that)
 *   rv   optional: a floor for the next version that belongs to no value:
 *        a version reserved by `version` for a write-through in flight, or
 *        the version of a poison write `forget` dropped. The next version
 *        handed out is above it; fills ignore it.
 *
 * An entry EXISTS only if field `v` exists. A hash without `v` is one of:
 * a reservation (only `rv`, short TTL, see `version`), the version memory
 * `clean` leaves when the entry was gone or older (only `ver`, with a TTL),
 * or a forgotten poison write (only `rv`, with a TTL, see `forget`); every
 * reader treats all three as a miss. A dirty entry never has a TTL
 * (invariant 2: `put` PERSISTs it); a clean one normally has one (a TTL
 * <= 0 passed to a script means "no TTL").
 *
 * THE KEY LAYOUT: ONE HASH SLOT PER SCRIPT (invariant 12). A cache key is
 * "{N}" + entity prefix + id: N, its SHARD, is CRC16(prefix + id) modulo
 * redis.dirty_shards (wb_entry_shard_of; decimal, no leading zero), and
 * "{N}" is the key's Redis Cluster hash tag. Every key a script touches
 * carries the same tag, so one script call touches one hash slot, on a
 * standalone Redis and on Redis Cluster alike (one code path: a standalone
 * server is a cluster of one node, wb_rcluster.h):
 *   "{N}user:42"             the entry (ids may not contain braces)
 *   "<index>:{N}"            the dirty index of shard N (wb_entry_index_key)
 *   "<index>:{N}:floor"      shard N's version floor (wb_entry_floor_key)
 *   "{N}wb:rr:user:42"       the refresh marker (library, wb_key_side)
 *   "{N}wb:lock:user:42"     the stampede lock (library, wb_key_side)
 * Single-key calls only, anywhere: the sweeper's lease "<index>:sweeper"
 * and the layout marker "<index>:layout" ("shards=N", written by the first
 * program to connect: wb_entry_layout_check refuses another shard count
 * and a cache of the old one-index layout). The entity prefix stays
 * recognisable after the tag: wb_config_entity_by_key and the daemons skip
 * it (wb_entry_key_tag). Changing redis.dirty_shards on a live cache is
 * refused: drain it (0 dirty entries), flush it, then change it. While a
 * slot migrates between masters (resharding), a script whose keys are
 * split between the two nodes (say a new entry, whose shard index has
 * moved already) is answered TRYAGAIN by Redis; the client retries it
 * within redis.timeout_ms, then fails the call (nothing was written).
 *
 * THE DIRTY INDEX (config redis.dirty_index, default "wb:dirty", split in
 * redis.dirty_shards shards "<index>:{N}") is, per shard, a
 * sorted set: member = cache key, score = the time the entry FIRST became
 * dirty, in µs (a rewrite of a dirty entry keeps it, so a hot key is still
 * swept). It lists the dirty entries: `put` adds (ZADD NX, score = its
 * write time);
 * `clean_many` removes the member whatever the outcome unless a newer dirty
 * write holds the entry (or, on a settle, the write-through dirty at exactly
 * V); `through` adds too (ZADD NX: a write-through is pinned until its own
 * event is in the log, invariant 11);
 * `forget` removes the poison entry; `sweep_check` removes a member whose
 * entry is gone or clean; the sweeper moves the score of a re-published
 * entry forward (wb_entry_dirty_bump: ZADD XX GT, never adding a member or
 * lowering a score; a failed re-publication is moved further, into the
 * future, as its backoff). A dirty entry is always listed; a member may outlive
 * its entry (lost with Redis data, or deleted by hand) until `clean` or
 * `sweep_check` meets it.
 *
 * SIDE KEYS: the library's refresh marker and stampede lock (string keys
 * with a TTL, built by wb_key_side, in the entry's slot), the sweeper's
 * lease (a token with a TTL) and each shard's version floor (a decimal
 * version, no TTL: the highest version the flusher committed in the
 * shard, raised by `clean_many` with each batch).
 *
 * VERSIONS (invariant 1): max(previous + 1, Redis TIME in µs, floor + 1),
 * where previous = max(ver, rv). The floor keeps versions above what
 * PostgreSQL holds when the entry is gone (expired, evicted, failover) AND
 * Redis TIME stepped back. Lua 5.1 numbers are doubles: integers are exact
 * up to 2^53 ≈ 9.007e15 and µs since the epoch are ≈ 1.8e15 (year 2027),
 * so arithmetic is exact until the year ~2255; values are written with
 * string.format('%d') because tostring() uses %.14g and would print a
 * 16-digit µs value in exponent form. ZADD scores are doubles too, exact
 * for the same reason.
 *
 * SCRIPTS: common/core/lua/NAME.lua, each with its KEYS/ARGV/returns at
 * the top, embedded into the build (cmake/embed.cmake) and called by SHA
 * (computed locally), with EVAL after a NOSCRIPT (wb_scripts.h).
 *
 *   script       KEYS                  ARGV                              returns
 *   put          key, index, floor     value, "1" if delete, entity      {version, wt}
 *   version      key, floor            reservation TTL ms                version
 *   clean_many   index, floor, keys... F, then V, TTL ms, refused E per key
 *                                      one per key: wb_entry_clean_t / {5, v, del, e, wt}
 *   forget       key, index            V, memory TTL ms                  1 forgotten / 0
 *   fill         key                   value, V, TTL ms, "1" if deleted, entity
 *                                                                       wb_entry_fill_t
 *   fill_aside   key                   value, TTL ms, "1" if negative, entity
 *                                                                       1 created / 0
 *   through      key, index            value, V, "1" if delete, entity
 *                                                                       1 applied / 0
 *   get          key, rr, lock         ra, TTL ms, dedupe ms, token, lock ms
 *                                      {1, v, ver, d, del, pttl, rr} / {0, locked}
 *   release      lock or lease         token                             1 deleted / 0
 *   renew        lease                 token, ms                         1 renewed / 0
 *   sweep_check  key, index            -                  {0} / {1, v, ver, wt, del, e}
 *
 * Every script touches only its KEYS, all of one hash slot (the layout
 * above); the index and floor names are derived from the key's tag, so a
 * key without one is refused (WB_ERR_INVALID_ARG) wherever an index or a
 * floor is involved.
 *
 * CALLS: every function takes a deployment handle (wb_rcluster.h) used by
 * one thread at a time; each command goes to the master of its key's slot.
 * WB_ERR_INVALID_ARG for bad arguments (nothing is
 * sent); WB_ERR_REDIS with the server's message for an error reply;
 * WB_ERR_REDIS / WB_ERR_TIMEOUT / WB_ERR_NOMEM after an I/O error, and
 * then rc must be reset or dropped (wb_rc_failed names the connection). The `_many` forms send n
 * calls in one pipeline, in order (never reordered, also after a NOSCRIPT:
 * wb_scripts_pipeline); their return is WB_OK when every reply arrived,
 * and each result says how its own call went (res[i].err, res[i].error).
 * Requests and their pointers are borrowed for the call only.
 */

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "wb_config.h"
#include "wb_rcluster.h"
#include "wbcache.h"

/* Dirty index used when a request's dirty_index is NULL or "". */
#define WB_ENTRY_DEFAULT_DIRTY_INDEX "wb:dirty"

/* Suffix of a shard's version floor after the shard's index name. */
#define WB_ENTRY_FLOOR_SUFFIX ":floor"

/* Suffix of the layout marker after the dirty index name. */
#define WB_ENTRY_LAYOUT_SUFFIX ":layout"

/* Most dirty-index shards (redis.dirty_shards): one per hash slot. */
#define WB_ENTRY_SHARDS_MAX 16384

/* Most keys one `clean_many` call cleans. */
#define WB_ENTRY_CLEAN_GROUP 64

/* Room for a key derived from the dirty index (config: at most 1024 bytes). */
#define WB_ENTRY_KEY_MAX 1100

/* Room for an entity name stored in an entry (config names are shorter). */
#define WB_ENTRY_ENTITY_MAX 128

/* Room for one call's error reply in a `_many` result (longer ones are cut). */
#define WB_ENTRY_ERROR_MAX 256

/* A key: borrowed where a call takes it, owned in wb_entry_keys_t. */
typedef struct wb_entry_key_s {
    const char *key;
    size_t keylen;
} wb_entry_key_t;

/* ------------------------------------------------------------- scripts */

typedef enum wb_entry_script_e {
    WB_ENTRY_SCRIPT_PUT = 0,
    WB_ENTRY_SCRIPT_VERSION,
    WB_ENTRY_SCRIPT_CLEAN_MANY,
    WB_ENTRY_SCRIPT_FORGET,
    WB_ENTRY_SCRIPT_FILL,
    WB_ENTRY_SCRIPT_FILL_ASIDE,
    WB_ENTRY_SCRIPT_THROUGH,
    WB_ENTRY_SCRIPT_GET,
    WB_ENTRY_SCRIPT_RELEASE,
    WB_ENTRY_SCRIPT_RENEW,
    WB_ENTRY_SCRIPT_SWEEP_CHECK,
    WB_ENTRY_SCRIPT__COUNT
} wb_entry_script_t;

/* Name ("put", ...; "?" if unknown), Lua source and SHA-1 (40 lowercase
 * hex digits, computed locally once, thread-safe) of script id; static
 * storage; body and sha are NULL for an unknown id. */
const char *wb_entry_script_name(wb_entry_script_t id);
const char *wb_entry_script_body(wb_entry_script_t id);
const char *wb_entry_script_sha(wb_entry_script_t id);

/* SCRIPT LOADs every script (so the first EVALSHA hits) and checks the
 * server's SHA equals ours. Call after connecting; optional, since calls
 * fall back to EVAL. Returns WB_OK or an error with errstr. */
wb_err_t wb_entry_load(wb_rc_t *rc, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------- layout */

/* The length of key's shard tag ("{N}" at its start, N decimal without a
 * leading zero, below WB_ENTRY_SHARDS_MAX) and *shard (may be NULL) = N; 0
 * if key has none (the entity prefix then starts the key). */
size_t wb_entry_key_tag(const char *key, size_t keylen, int *shard);

/* The shard of the key prefix + id (body[0 .. len)): CRC16 modulo
 * nshards (0 when nshards <= 1). */
int wb_entry_shard_of(const char *body, size_t len, int nshards);

/* Shard shard's dirty index "<dirty_index>:{N}" / version floor
 * "<dirty_index>:{N}:floor" (dirty_index NULL or "": the default) into
 * out[size]; 0, or -1 if it does not fit. */
int wb_entry_index_key(const char *dirty_index, int shard, char *out, size_t size);
int wb_entry_floor_key(const char *dirty_index, int shard, char *out, size_t size);

/* Refuses a Redis this layout cannot read: one holding the old layout's
 * dirty index "<dirty_index>" or floor "<dirty_index>:floor" (drain it with
 * the old version, then flush it), or one whose layout marker names another
 * shard count than nshards (set redis.dirty_shards back, or drain and
 * flush). Writes the marker on first use. WB_ERR_REDIS with the message
 * that says what to do. */
wb_err_t wb_entry_layout_check(wb_rc_t *rc, const char *dirty_index, int nshards, char *errstr,
                               size_t errstr_size);

/* How every program connects: wb_rc_connect, wb_entry_layout_check with
 * conf's redis.dirty_index and redis.dirty_shards, wb_entry_load. On
 * WB_OK *out is the handle (wb_rc_free). */
wb_err_t wb_entry_open(const wb_config_t *conf, wb_rc_t **out, char *errstr, size_t errstr_size);

/* ------------------------------------------------------- write-behind */

/* put: the entry becomes the new value (or a tombstone), dirty, without
 * TTL, listed in the dirty index at its write time (invariants 1, 2). */
typedef struct wb_entry_put_req_s {
    const char *key; /* binary-safe, keylen > 0 */
    size_t keylen;
    const void *value; /* may be NULL when len is 0; ignored for a delete */
    size_t len;
    int is_delete;
    const char *dirty_index; /* NULL or "": WB_ENTRY_DEFAULT_DIRTY_INDEX (key's shard of it) */
    const char *entity;      /* stored in `e`; NULL or "": none */
} wb_entry_put_req_t;

typedef struct wb_entry_put_res_s {
    wb_err_t err; /* `_many` only: this call's outcome */
    char error[WB_ENTRY_ERROR_MAX];
    int64_t version; /* assigned version */
    int64_t time_us; /* Redis write time */
} wb_entry_put_res_t;

/* One put. res (may be NULL) receives version and write time. */
wb_err_t wb_entry_put(wb_rc_t *rc, const wb_entry_put_req_t *req, wb_entry_put_res_t *res,
                      char *errstr, size_t errstr_size);

/* n puts in one pipeline (wb_put_batch). res[i] answers req[i]; a call
 * whose reply is an error or malformed has res[i].err WB_ERR_REDIS. */
wb_err_t wb_entry_put_many(wb_rc_t *rc, const wb_entry_put_req_t *req, size_t n,
                           wb_entry_put_res_t *res, char *errstr, size_t errstr_size);

/* ---------------------------------------------- flusher: clean, forget */

/* What `clean` did. */
typedef enum wb_entry_clean_e {
    WB_ENTRY_CLEAN_NEWER = 0,   /* entry holds a newer version (or, for a settle, V dirty):
                                   left dirty, stays indexed */
    WB_ENTRY_CLEAN_CLEANED = 1, /* version matched and was dirty: now clean, TTL set, unindexed */
    WB_ENTRY_CLEAN_ALREADY = 2, /* version matched but already clean (duplicate/replay) */
    WB_ENTRY_CLEAN_GONE = 3,    /* no entry (evicted, deleted, lost): unindexed, V kept as memory */
    WB_ENTRY_CLEAN_STALE = 4,   /* entry older than V: value dropped, V kept as memory */
    WB_ENTRY_CLEAN_REFUSED = 5  /* as STALE, but the entry was the refused event's own dirty
                                 * write: that write is lost (see clean_many.lua); its value is
                                 * returned to be dead-lettered */
} wb_entry_clean_t;

/* The flusher settles version V of a key: PostgreSQL committed it (clean:
 * the entry becomes clean with ttl_ms only if it still holds V, and the
 * key's shard floor is raised to V), or it was dead-lettered as poison
 * (forget = 1: an entry still holding exactly V, dirty, is dropped and
 * unindexed, V kept as a floor for ttl_ms). */
typedef struct wb_entry_clean_req_s {
    const char *key;
    size_t keylen;
    const char *dirty_index; /* NULL or "": WB_ENTRY_DEFAULT_DIRTY_INDEX */
    int64_t version;
    int64_t ttl_ms; /* <= 0: no TTL (clean) / only the floor (forget) */
    int forget;
    /* clean only: > 0 when PostgreSQL refused the event of this version
     * because it holds `version` (newer); 0 when the event committed. An
     * entry dirty at exactly `version` is then left alone
     * (WB_ENTRY_CLEAN_NEWER): its own event — a write-through's, still on
     * its way to the log — cleans it (invariant 11). */
    int64_t refused_version;
} wb_entry_clean_req_t;

typedef struct wb_entry_clean_res_s {
    wb_err_t err; /* `_many` only */
    char error[WB_ENTRY_ERROR_MAX];
    int code; /* clean: a wb_entry_clean_t; forget: 1 forgotten, 0 untouched */
    /* WB_ENTRY_CLEAN_REFUSED only: the lost write (value malloc'ed + NUL,
     * owned: wb_entry_clean_clear), its tombstone flag, entity, write time. */
    char *value;
    size_t len;
    int is_delete;
    char entity[WB_ENTRY_ENTITY_MAX];
    int64_t write_us;
} wb_entry_clean_res_t;

wb_err_t wb_entry_clean(wb_rc_t *rc, const wb_entry_clean_req_t *req, wb_entry_clean_res_t *res,
                        char *errstr, size_t errstr_size);

/* n cleans and forgets in one pipeline (the flusher's cleaner): the
 * cleans of one shard go in `clean_many` calls of up to
 * WB_ENTRY_CLEAN_GROUP keys, each raising the shard's floor to its highest
 * V; a forget is a call of its own. Calls on one shard keep request order
 * (a forget or a repeated key starts a new call). Each res[i] must be
 * released with wb_entry_clean_clear. */
wb_err_t wb_entry_clean_many(wb_rc_t *rc, const wb_entry_clean_req_t *req, size_t n,
                             wb_entry_clean_res_t *res, char *errstr, size_t errstr_size);

/* Frees res->value and zeroes res; NULL is fine. */
void wb_entry_clean_clear(wb_entry_clean_res_t *res);

/* --------------------------------------------------------------- fills */

/* What `fill` did. */
typedef enum wb_entry_fill_e {
    WB_ENTRY_FILL_CREATED = 1,       /* no entry before */
    WB_ENTRY_FILL_REPLACED = 2,      /* an older clean entry was replaced */
    WB_ENTRY_FILL_EXTENDED = 3,      /* same version, clean: only the TTL was extended */
    WB_ENTRY_FILL_SKIPPED_NEWER = 4, /* cache holds a newer version: untouched */
    WB_ENTRY_FILL_SKIPPED_DIRTY = 5  /* entry is dirty: untouched (the flusher owns it) */
} wb_entry_fill_t;

/* Versioned fill from PostgreSQL (read-through miss, refresh-ahead;
 * invariant 8): never overwrites a newer or dirty entry. */
typedef struct wb_entry_fill_req_s {
    const char *key;
    size_t keylen;
    const void *value; /* may be NULL when len is 0; ignored when is_deleted */
    size_t len;
    int64_t version;
    int64_t ttl_ms;     /* <= 0: no TTL */
    int is_deleted;     /* the row is soft-deleted: a clean tombstone */
    const char *entity; /* stored in `e`; NULL or "": none */
} wb_entry_fill_req_t;

typedef struct wb_entry_fill_res_s {
    wb_err_t err; /* `_many` only */
    char error[WB_ENTRY_ERROR_MAX];
    wb_entry_fill_t code;
} wb_entry_fill_res_t;

wb_err_t wb_entry_fill(wb_rc_t *rc, const wb_entry_fill_req_t *req, wb_entry_fill_res_t *res,
                       char *errstr, size_t errstr_size);

/* n fills in one pipeline (the refresher's batch). A reply outside 1..5
 * has res[i].err WB_ERR_REDIS. */
wb_err_t wb_entry_fill_many(wb_rc_t *rc, const wb_entry_fill_req_t *req, size_t n,
                            wb_entry_fill_res_t *res, char *errstr, size_t errstr_size);

/* Cache-aside fill of an unversioned value from the caller's loader:
 * creates the entry only if there is none. */
typedef struct wb_entry_aside_req_s {
    const char *key;
    size_t keylen;
    const void *value; /* may be NULL when len is 0; ignored when is_negative */
    size_t len;
    int64_t ttl_ms;     /* <= 0: no TTL */
    int is_negative;    /* the loader found nothing: a clean tombstone */
    const char *entity; /* stored in `e`; NULL or "": none */
} wb_entry_aside_req_t;

/* *created (may be NULL) is 1 if the entry was created, with version 0 (a
 * version the hash remembered moves to `rv`: see fill_aside.lua). */
wb_err_t wb_entry_fill_aside(wb_rc_t *rc, const wb_entry_aside_req_t *req, int *created,
                             char *errstr, size_t errstr_size);

/* ------------------------------------------------------- write-through */

/* Reserves the version of a write-through in `rv` (see version.lua), above
 * the floor of dirty_index (NULL or "": the default); reserve_ttl_ms
 * bounds how long a reservation on an absent key lives (<= 0: 1000 ms). */
wb_err_t wb_entry_version(wb_rc_t *rc, const char *key, size_t keylen, const char *dirty_index,
                          int64_t reserve_ttl_ms, int64_t *version, char *errstr,
                          size_t errstr_size);

/* Write-through cache set after PostgreSQL committed version (from
 * wb_entry_version): unless the cache already holds a newer version, the
 * entry becomes that version, dirty, without TTL, listed in the dirty index
 * (like `put`): pinned until the flusher has consumed its change event and
 * cleaned it (invariants 2 and 11). */
typedef struct wb_entry_through_req_s {
    const char *key;
    size_t keylen;
    const char *dirty_index; /* NULL or "": WB_ENTRY_DEFAULT_DIRTY_INDEX */
    const void *value;       /* may be NULL when len is 0; ignored for a delete */
    size_t len;
    int64_t version;
    int is_delete;
    const char *entity; /* stored in `e`; NULL or "": none */
} wb_entry_through_req_t;

/* *applied (may be NULL) is 0 if a newer version was left alone. */
wb_err_t wb_entry_through(wb_rc_t *rc, const wb_entry_through_req_t *req, int *applied,
                          char *errstr, size_t errstr_size);

/* --------------------------------------------------------------- reads */

/* One entry as read by wb_entry_read. */
typedef struct wb_entry_s {
    int found;        /* 1 if the entry exists (field v present) */
    int deleted;      /* tombstone or negative entry: "not found" */
    int dirty;        /* PostgreSQL does not hold this version yet */
    int64_t version;  /* field ver */
    int64_t write_us; /* field wt */
    int64_t pttl_ms;  /* remaining TTL in ms; -1 none */
    char *value;      /* malloc'ed, value_len bytes plus a NUL; NULL if !found */
    size_t value_len;
} wb_entry_t;

/* Reads key's entry (HMGET + PTTL pipelined in one round trip; not atomic
 * with respect to other clients, which only matters for the TTL). A
 * missing entry is WB_OK with entry->found 0. On WB_OK the caller owns
 * entry->value: release with wb_entry_clear. */
wb_err_t wb_entry_read(wb_rc_t *rc, const char *key, size_t keylen, wb_entry_t *entry, char *errstr,
                       size_t errstr_size);

/* Reads n entries in one pipelined round trip; entries[i] answers
 * keys[i]. On WB_OK the caller clears each; on an error all are cleared
 * already. */
wb_err_t wb_entry_read_many(wb_rc_t *rc, const wb_entry_key_t *keys, size_t n, wb_entry_t *entries,
                            char *errstr, size_t errstr_size);

/* Frees entry->value and zeroes entry (pttl_ms -1); NULL is fine. */
void wb_entry_clear(wb_entry_t *entry);

/* The library's read: the `get` script. Side keys rr_key and lock_key come
 * from wb_key_side. lock_token NULL or "" = do not lock. */
typedef struct wb_entry_get_req_s {
    const char *key;
    size_t keylen;
    const char *rr_key;
    const char *lock_key;
    double refresh_ahead; /* entity's factor; 0 = off */
    int64_t ttl_ms;       /* entity's TTL */
    int64_t dedupe_ms;    /* refresh request window; <= 0 = no dedupe */
    const char *lock_token;
    int64_t lock_ttl_ms; /* <= 0: 1000 */
} wb_entry_get_req_t;

/* What `get` found. On a hit, value is an owned buffer (malloc'ed,
 * NUL-terminated) that the caller takes (setting it NULL) or frees with
 * wb_entry_get_clear. */
typedef struct wb_entry_get_res_s {
    wb_err_t err; /* `_many` only: this call's outcome */
    char error[WB_ENTRY_ERROR_MAX];
    int hit;     /* entry exists (field v) */
    int locked;  /* miss only: this caller now holds the stampede lock */
    char *value; /* hit only */
    size_t len;
    int64_t version;
    int dirty;
    int deleted;  /* tombstone or negative entry: "not found" */
    int64_t pttl; /* remaining TTL ms, -1 none */
    int refresh;  /* hit only: this caller should publish a refresh request */
} wb_entry_get_res_t;

/* Runs `get`. WB_OK with *res filled (release with wb_entry_get_clear). */
wb_err_t wb_entry_get(wb_rc_t *rc, const wb_entry_get_req_t *req, wb_entry_get_res_t *res,
                      char *errstr, size_t errstr_size);

/* n gets in one pipeline (wb_get_many). res[i] answers req[i] (release
 * each with wb_entry_get_clear); a call whose reply is an error or
 * malformed has res[i].err WB_ERR_REDIS. */
wb_err_t wb_entry_get_many(wb_rc_t *rc, const wb_entry_get_req_t *req, size_t n,
                           wb_entry_get_res_t *res, char *errstr, size_t errstr_size);

/* Interprets a `get` reply (pure; for tests). On WB_OK, res->value is
 * moved out of reply (reply stays freeable). WB_ERR_REDIS for an
 * unexpected shape. */
wb_err_t wb_entry_get_parse(redisReply *reply, wb_entry_get_res_t *res, char *errstr,
                            size_t errstr_size);

/* Frees res->value; zeroes res (pttl -1). NULL is fine. */
void wb_entry_get_clear(wb_entry_get_res_t *res);

/* -------------------------------------------------------- token keys */

/* Deletes key (the stampede lock or the sweeper lease) if it still holds
 * token (`release`), so a holder whose TTL ran out cannot delete the next
 * holder's. *released (may be NULL) = 1 if deleted. */
wb_err_t wb_entry_release(wb_rc_t *rc, const char *key, const char *token, int *released,
                          char *errstr, size_t errstr_size);

/* `release` of keys[0 .. n) (stampede locks of one wb_get_many, all held
 * with token) in one pipeline. */
wb_err_t wb_entry_release_many(wb_rc_t *rc, const wb_entry_key_t *keys, size_t n, const char *token,
                               char *errstr, size_t errstr_size);

/* The sweeper's lease: SET key token NX PX ms. *taken = 1 if it was free
 * and is ours now. */
wb_err_t wb_entry_lease_take(wb_rc_t *rc, const char *key, const char *token, int64_t ms,
                             int *taken, char *errstr, size_t errstr_size);

/* Extends the lease to ms if it still holds token (`renew`). *renewed = 1
 * if it did. */
wb_err_t wb_entry_lease_renew(wb_rc_t *rc, const char *key, const char *token, int64_t ms,
                              int *renewed, char *errstr, size_t errstr_size);

/* --------------------------------------------------------- dirty index */

/* Keys read from the dirty index, owned (wb_entry_keys_clear). */
typedef struct wb_entry_keys_s {
    wb_entry_key_t *v;
    size_t n;
} wb_entry_keys_t;

/* Members with a score <= max_score_us, lowest first, at most limit, over
 * all nshards shards (ZRANGEBYSCORE shard -inf max WITHSCORES LIMIT 0
 * limit on each, in one pipeline, merged): the entries dirty since then.
 * On WB_OK *out owns them. */
wb_err_t wb_entry_dirty_range(wb_rc_t *rc, const char *dirty_index, int nshards,
                              int64_t max_score_us, int limit, wb_entry_keys_t *out, char *errstr,
                              size_t errstr_size);

/* Frees the keys and zeroes keys; NULL is fine. */
void wb_entry_keys_clear(wb_entry_keys_t *keys);

/* The dirty index at a glance. */
typedef struct wb_entry_dirty_stats_s {
    int64_t count;        /* members (ZCARD) */
    int has_oldest;       /* count > 0 when read */
    double oldest_us;     /* lowest score: the oldest dirty write (or re-publication) */
    char oldest_key[256]; /* its member, NUL-terminated, cut if longer */
    int64_t now_us;       /* Redis TIME when read */
} wb_entry_dirty_stats_t;

/* TIME, then ZCARD and the lowest member with its score of each of the
 * nshards shards (pipelined): the sum and the oldest of all. */
wb_err_t wb_entry_dirty_stats(wb_rc_t *rc, const char *dirty_index, int nshards,
                              wb_entry_dirty_stats_t *out, char *errstr, size_t errstr_size);

/* Moves the score of each of keys[0 .. n) that is still a member of its
 * shard up to score_us (ZADD shard XX GT: a member the flusher removed stays removed,
 * a newer put's score is never lowered), in one pipeline. */
wb_err_t wb_entry_dirty_bump(wb_rc_t *rc, const char *dirty_index, int64_t score_us,
                             const wb_entry_key_t *keys, size_t n, char *errstr,
                             size_t errstr_size);

/* What `sweep_check` found for one member. */
typedef struct wb_entry_check_res_s {
    wb_err_t err;
    char error[WB_ENTRY_ERROR_MAX];
    int dirty;   /* 0: gone or clean, and unindexed now */
    char *value; /* dirty only: malloc'ed + NUL, owned (wb_entry_check_clear) */
    size_t len;
    int64_t version;
    int64_t write_us;
    int is_delete;
    char entity[WB_ENTRY_ENTITY_MAX]; /* dirty only: `e` ("" if the put named none) */
} wb_entry_check_res_t;

/* `sweep_check` of keys[0 .. n) in one pipeline: each member whose entry
 * is gone or clean is unindexed in the same atomic step; a dirty one's
 * value, version, write time, tombstone flag and entity are returned. */
wb_err_t wb_entry_sweep_check_many(wb_rc_t *rc, const char *dirty_index, const wb_entry_key_t *keys,
                                   size_t n, wb_entry_check_res_t *res, char *errstr,
                                   size_t errstr_size);

/* Frees res->value and zeroes res; NULL is fine. */
void wb_entry_check_clear(wb_entry_check_res_t *res);

#endif /* WB_ENTRY_H */
