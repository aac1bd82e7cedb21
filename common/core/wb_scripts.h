/* wb_scripts.h — running a set of Redis Lua scripts by SHA: EVALSHA, EVAL after NOSCRIPT,
 * and pipelines that never reorder calls. Generic: only wb_entry.c, which owns the scripts,
 * calls it. */
#ifndef WB_SCRIPTS_H
#define WB_SCRIPTS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "wb_rcluster.h"
#include "wb_sha1.h"
#include "wbcache.h"

/* Most KEYS + ARGV any call takes (clean_many: 3 + 4 per key, 64 keys). */
#define WB_SCRIPTS_MAX_ARGS 260

/* One script: name (for error messages), Lua source (borrowed, normally
 * static), and its SHA-1, filled in by wb_scripts_init. */
typedef struct wb_script_s {
    const char *name;
    const char *body;
    char sha[WB_SHA1_HEX_SIZE];
} wb_script_t;

/* A set of n scripts; a call's id indexes it. Read-only once initialised,
 * so any thread may use it, also concurrently. A redisContext is used by
 * one thread at a time, as hiredis requires. */
typedef struct wb_script_set_s {
    wb_script_t *scripts;
    size_t n;
} wb_script_set_t;

/* One call in a pipeline: id indexes the set; argv[0 .. nkeys-1] are KEYS,
 * the rest ARGV. Pointers are borrowed for the call only. */
typedef struct wb_script_call_s {
    int id;
    int nkeys;
    int argc;
    const char **argv;
    const size_t *argvlen;
} wb_script_call_t;

/* Computes the SHA of every script of set locally (no I/O), so the SHAs
 * are constant and known before any server is asked. Call once, before
 * the set is shared. */
void wb_scripts_init(wb_script_set_t *set);

/* SCRIPT LOADs every script of set (so the first EVALSHA hits) and checks
 * the server's SHA equals ours. Blocking, on every master.
 * Returns WB_OK, or WB_ERR_REDIS / WB_ERR_TIMEOUT /
 * WB_ERR_INVALID_ARG with errstr set. Optional: calls fall back to EVAL. */
wb_err_t wb_scripts_load(const wb_script_set_t *set, wb_rc_t *rc, char *errstr, size_t errstr_size);

/* Blocking call of script id with EVALSHA; on a NOSCRIPT reply (the server
 * restarted or ran SCRIPT FLUSH) sends EVAL with the body, which also
 * re-caches it. Binary-safe: argvlen gives each length. A
 * call is routed by its first key (wb_rc_pipeline: every KEYS of a call
 * must share that key's slot). On WB_OK *reply is the script's reply (caller
 * frees with freeReplyObject; never an error reply). WB_ERR_INVALID_ARG
 * for an unknown id or bad arguments; a script error reply gives
 * WB_ERR_REDIS with the server's message; a connection failure gives
 * WB_ERR_REDIS or WB_ERR_TIMEOUT, and rc must then be reset (wb_rc_reset) or dropped. */
wb_err_t wb_scripts_call(const wb_script_set_t *set, wb_rc_t *rc, int id, int nkeys, int argc,
                         const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                         size_t errstr_size);

/* True if reply is the server's NOSCRIPT error (script cache lost). */
int wb_scripts_is_noscript(const redisReply *reply);

/* Runs n script calls in one pipeline: appends all EVALSHAs and reads all
 * replies; replies[i] always answers calls[i]. Calls never run out of
 * order: after a NOSCRIPT (script cache lost mid-pipeline) every script
 * of set is loaded again and the calls after the last one that ran are
 * re-sent, in order, as EVAL; a NOSCRIPT call that some later call ran
 * ahead of keeps its NOSCRIPT error reply — it did not run and is not run
 * now. replies[i] may be an error reply (REDIS_REPLY_ERROR) for that one
 * call; the caller frees every replies[i] with freeReplyObject. Returns
 * WB_OK if every reply arrived; otherwise WB_ERR_REDIS / WB_ERR_TIMEOUT /
 * WB_ERR_INVALID_ARG (checked before anything is sent) / WB_ERR_NOMEM,
 * all replies[] set to NULL and freed, and rc must be reset or dropped after
 * an I/O error. */
wb_err_t wb_scripts_pipeline(const wb_script_set_t *set, wb_rc_t *rc, const wb_script_call_t *calls,
                             size_t n, redisReply **replies, char *errstr, size_t errstr_size);

#endif /* WB_SCRIPTS_H */
