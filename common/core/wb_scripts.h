/* wb_scripts.h — the Redis Lua scripts of the cache entry layout, and calling them by SHA. */
#ifndef WB_SCRIPTS_H
#define WB_SCRIPTS_H

/*
 * CACHE ENTRY LAYOUT (shared by libwbcache, wb-flusher, wb-refresher, wbctl)
 *
 * Every cache key is a Redis HASH:
 *   v    value bytes ("" for a tombstone)
 *   ver  version, decimal integer (microseconds-since-epoch scale, see below)
 *   d    "1" dirty (PostgreSQL does not hold this version yet), "0" clean
 *   wt   write time in microseconds since the epoch (Redis TIME), decimal
 *   del  "1" tombstone (the key was deleted; v is ""), "0" live value
 *   rv   optional: a floor for the next version that belongs to no value:
 *        a version reserved by the `version` script for a write-through in
 *        flight, or the version of a poison write `forget` dropped. The
 *        next version handed out is above it; fills ignore it.
 *
 * An entry EXISTS only if field `v` exists. A hash without `v` is a
 * reservation (only `rv`, short TTL), the version memory left behind when
 * the flusher dropped a stale value (`ver` kept, see `clean`) or a
 * forgotten poison write (only `rv`, see `forget`); readers treat all three
 * as a miss. A dirty entry never has a TTL (invariant 2); a clean one
 * normally has one (a TTL <= 0 passed to a script means "no TTL").
 *
 * The dirty index (config redis.dirty_index, default "wb:dirty") is a sorted
 * set: member = cache key, score = `wt` of the dirty write. It lists exactly
 * the dirty entries: `put` adds, `clean`, `through` and `forget` remove.
 *
 * Versions (invariant 1): max(previous + 1, Redis TIME in µs), where
 * previous = max(ver, rv). Lua 5.1 numbers are doubles: integers are exact up
 * to 2^53 ≈ 9.007e15 and µs since the epoch are ≈ 1.8e15 (year 2027), so
 * arithmetic is exact until the year ~2255; values are always written with
 * string.format('%d') because tostring() uses %.14g and would print a 16-digit
 * µs value in exponent form. ZADD scores are doubles too, exact for the same
 * reason.
 *
 * All scripts touch only their KEYS (the key and, where named, the dirty
 * index); under Redis Cluster both would need one hash slot, which the
 * stock single-server deployment does not need.
 */

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "wbcache.h"

typedef enum wb_script_id_e {
    /* Write-behind put/del. KEYS: key, dirty index. ARGV: value, "1" if
     * delete. Returns {version, write_time_us}. */
    WB_SCRIPT_PUT = 0,
    /* Next version for a write-through, reserved in `rv`. KEYS: key.
     * ARGV: reservation TTL ms (for a hash without value). Returns version. */
    WB_SCRIPT_VERSION,
    /* Flusher: version V is committed. KEYS: key, dirty index. ARGV: V,
     * TTL ms. Returns a wb_clean_result_t. */
    WB_SCRIPT_CLEAN,
    /* Versioned fill from PostgreSQL. KEYS: key. ARGV: value, version,
     * TTL ms, "1" if deleted. Returns a wb_fill_result_t. */
    WB_SCRIPT_FILL,
    /* Unversioned cache-aside fill. KEYS: key. ARGV: value, TTL ms,
     * "1" if negative (not found). Returns 1 created, 0 already present. */
    WB_SCRIPT_FILL_ASIDE,
    /* Write-through cache set after PostgreSQL committed version V. KEYS:
     * key, dirty index. ARGV: value, V, TTL ms, "1" if delete. Returns 1
     * applied, 0 skipped (cache holds a newer version). */
    WB_SCRIPT_THROUGH,
    /* Flusher: version V of the key was dead-lettered as poison. KEYS:
     * key, dirty index. ARGV: V, TTL ms of the version memory. Returns 1
     * forgotten (the entry held exactly V, dirty), 0 untouched. */
    WB_SCRIPT_FORGET,
    WB_SCRIPT__COUNT
} wb_script_id_t;

/* Result codes of the clean script. */
typedef enum wb_clean_result_e {
    WB_CLEAN_NEWER = 0,   /* entry holds a newer version: left dirty, stays indexed */
    WB_CLEAN_CLEANED = 1, /* version matched and was dirty: now clean, TTL set, unindexed */
    WB_CLEAN_ALREADY = 2, /* version matched but already clean (duplicate/replay) */
    WB_CLEAN_GONE = 3,    /* no entry (evicted, deleted, lost): unindexed, V kept as memory */
    WB_CLEAN_STALE = 4    /* entry older than V: value dropped, V kept as memory */
} wb_clean_result_t;

/* Result codes of the fill script. */
typedef enum wb_fill_result_e {
    WB_FILL_CREATED = 1,       /* no entry before */
    WB_FILL_REPLACED = 2,      /* an older clean entry was replaced */
    WB_FILL_EXTENDED = 3,      /* same version, clean: only the TTL was extended */
    WB_FILL_SKIPPED_NEWER = 4, /* cache holds a newer version: untouched */
    WB_FILL_SKIPPED_DIRTY = 5  /* entry is dirty: untouched (the flusher owns it) */
} wb_fill_result_t;

/* Most KEYS + ARGV any wb script call takes. */
#define WB_SCRIPTS_MAX_ARGS 8

/* One call in a pipeline: argv[0 .. nkeys-1] are KEYS, the rest ARGV.
 * Pointers are borrowed for the duration of the call only. */
typedef struct wb_script_call_s {
    wb_script_id_t id;
    int nkeys;
    int argc;
    const char **argv;
    const size_t *argvlen;
} wb_script_call_t;

/* Lua source of script id (static; NULL for an unknown id). */
const char *wb_scripts_body(wb_script_id_t id);

/* Name of script id ("put", "clean", ...; static; "?" if unknown). */
const char *wb_scripts_name(wb_script_id_t id);

/* SHA1 of the script body as 40 lowercase hex digits, computed locally once
 * (thread-safe); static storage. NULL for an unknown id. */
const char *wb_scripts_sha(wb_script_id_t id);

/* SCRIPT LOADs every script into the server (so the first EVALSHA hits) and
 * checks the server's SHA equals ours. Blocking; ctx must have no pending
 * replies. Returns WB_OK, or WB_ERR_REDIS / WB_ERR_TIMEOUT with errstr set.
 * Optional: the call helpers fall back to EVAL anyway. */
wb_err_t wb_scripts_load(redisContext *ctx, char *errstr, size_t errstr_size);

/* Blocking call of script id with EVALSHA; on a NOSCRIPT reply (the server
 * restarted or ran SCRIPT FLUSH) sends EVAL with the body, which also
 * re-caches it. Binary-safe: argvlen gives each length. ctx must have no
 * pending pipelined replies. On WB_OK *reply is the script's reply (caller
 * frees with freeReplyObject; never an error reply). A script error reply
 * gives WB_ERR_REDIS with the server's message; a connection failure gives
 * WB_ERR_REDIS or WB_ERR_TIMEOUT, and ctx must then be reconnected. */
wb_err_t wb_scripts_call(redisContext *ctx, wb_script_id_t id, int nkeys, int argc,
                         const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                         size_t errstr_size);

/* Appends an EVALSHA of script id to ctx's output buffer without I/O (the
 * pipelining building block; the reply is read later with redisGetReply and
 * may be a NOSCRIPT error, see wb_scripts_is_noscript). Returns WB_OK,
 * WB_ERR_INVALID_ARG (bad id / too many args) or WB_ERR_NOMEM. */
wb_err_t wb_scripts_append(redisContext *ctx, wb_script_id_t id, int nkeys, int argc,
                           const char **argv, const size_t *argvlen);

/* True if reply is the server's NOSCRIPT error (script cache lost). */
int wb_scripts_is_noscript(const redisReply *reply);

/* Runs n script calls in one pipeline: appends all EVALSHAs and reads all
 * replies; replies[i] always answers calls[i]. Calls never run out of
 * order: after a NOSCRIPT (script cache lost mid-pipeline) the scripts are
 * loaded again and the calls after the last one that ran are re-sent, in
 * order, as EVAL; a NOSCRIPT call that some later call ran ahead of keeps
 * its NOSCRIPT error reply — it did not run and is not run now.
 * replies[i] may be an error reply (REDIS_REPLY_ERROR) for that one call;
 * the caller frees every replies[i] with freeReplyObject. Returns WB_OK if
 * every reply arrived; otherwise
 * WB_ERR_REDIS / WB_ERR_TIMEOUT / WB_ERR_INVALID_ARG / WB_ERR_NOMEM, all
 * replies[] set to NULL and freed, and ctx must be reconnected after an
 * I/O error. */
wb_err_t wb_scripts_pipeline(redisContext *ctx, const wb_script_call_t *calls, size_t n,
                             redisReply **replies, char *errstr, size_t errstr_size);

/* ------------------------------------------------------------ script sets
 *
 * A set is a list of Lua scripts called the way the registry above is:
 * EVALSHA under a SHA computed locally, EVAL after a NOSCRIPT reply, and
 * pipelines that never reorder calls (see wb_scripts_pipeline). The
 * registry is one set (wb_scripts_registry, ids = wb_script_id_t); a
 * module's own scripts outside the cache entry layout (the library's get
 * and unlock, the refresher's lease and sweep scripts) are another, made
 * with wb_scripts_set_new; an id is an index into the set's defs.
 *
 * Threads: a set is read-only once made, so any thread may use it, also
 * concurrently. A redisContext is used by one thread at a time, as
 * hiredis requires.
 */

/* One script of a set: name (for error messages) and Lua source. */
typedef struct wb_script_def_s {
    const char *name;
    const char *body;
} wb_script_def_t;

typedef struct wb_script_set_s wb_script_set_t;

/* One call in a pipeline of a set: id indexes the set; argv[0 .. nkeys-1]
 * are KEYS, the rest ARGV. Pointers are borrowed for the call only. */
typedef struct wb_script_set_call_s {
    int id;
    int nkeys;
    int argc;
    const char **argv;
    const size_t *argvlen;
} wb_script_set_call_t;

/* Makes a set of the n scripts in defs and computes their SHAs (no I/O).
 * defs and the strings they point to are borrowed and must outlive the
 * set (static storage, normally). Returns WB_OK with *setp owned by the
 * caller (free with wb_scripts_set_destroy), or WB_ERR_INVALID_ARG (n is 0
 * or a name or body is NULL) / WB_ERR_NOMEM with errstr set and *setp
 * NULL. */
wb_err_t wb_scripts_set_new(const wb_script_def_t *defs, size_t n, wb_script_set_t **setp,
                            char *errstr, size_t errstr_size);

/* Frees set; NULL is fine. Never pass wb_scripts_registry(). */
void wb_scripts_set_destroy(wb_script_set_t *set);

/* The registry (WB_SCRIPT_*) as a set: static, never destroyed. */
const wb_script_set_t *wb_scripts_registry(void);

/* SHA1 of script id's body, 40 lowercase hex digits, owned by set; NULL
 * for an unknown id. */
const char *wb_scripts_set_sha(const wb_script_set_t *set, int id);

/* wb_scripts_load for every script of set. */
wb_err_t wb_scripts_set_load(const wb_script_set_t *set, redisContext *ctx, char *errstr,
                             size_t errstr_size);

/* wb_scripts_call for script id of set: EVALSHA, and EVAL with the body on
 * a NOSCRIPT reply. Same contract: on WB_OK *reply is the script's reply
 * (caller frees; never an error reply); WB_ERR_INVALID_ARG for an unknown
 * id or bad arguments; WB_ERR_REDIS with the server's message for a script
 * error; WB_ERR_REDIS / WB_ERR_TIMEOUT after an I/O error (reconnect ctx). */
wb_err_t wb_scripts_set_call(const wb_script_set_t *set, redisContext *ctx, int id, int nkeys,
                             int argc, const char **argv, const size_t *argvlen, redisReply **reply,
                             char *errstr, size_t errstr_size);

/* wb_scripts_pipeline for calls of set, with the same ordering guarantee:
 * after a NOSCRIPT every script of set is loaded again, only the calls
 * after the last one that ran are re-sent (EVAL, in order), and an earlier
 * NOSCRIPT call keeps its NOSCRIPT error reply (it did not run). Replies,
 * ownership and errors as there. */
wb_err_t wb_scripts_set_pipeline(const wb_script_set_t *set, redisContext *ctx,
                                 const wb_script_set_call_t *calls, size_t n, redisReply **replies,
                                 char *errstr, size_t errstr_size);

#endif /* WB_SCRIPTS_H */
