/* wb_scripts.c — running a set of Redis Lua scripts by SHA: EVALSHA, EVAL after NOSCRIPT,
 * and pipelines that never reorder calls. */
#include "wb_scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_redis.h"
#include "wb_util.h"

static int set_valid_id(const wb_script_set_t *set, int id)
{
    return set && set->scripts && id >= 0 && (size_t)id < set->n;
}

static const char *set_name(const wb_script_set_t *set, int id)
{
    return set_valid_id(set, id) ? set->scripts[id].name : "?";
}

void wb_scripts_init(wb_script_set_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        wb_sha1_hex(set->scripts[i].body, strlen(set->scripts[i].body), set->scripts[i].sha);
}

wb_err_t wb_scripts_load(const wb_script_set_t *set, redisContext *ctx, char *errstr,
                         size_t errstr_size)
{
    size_t i;

    if (!ctx || !set) {
        wb_set_err(errstr, errstr_size, "redis script load: no connection");
        return WB_ERR_INVALID_ARG;
    }
    for (i = 0; i < set->n; i++) {
        const wb_script_t *sc = &set->scripts[i];
        const char *argv[3] = {"SCRIPT", "LOAD", sc->body};
        size_t argvlen[3] = {6, 4, strlen(sc->body)};
        redisReply *r = redisCommandArgv(ctx, 3, argv, argvlen);
        wb_err_t err = WB_OK;

        if (!r) return wb_redis_ctx_error(ctx, "redis SCRIPT LOAD", errstr, errstr_size);
        if (r->type == REDIS_REPLY_ERROR) {
            wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: %s", sc->name, r->str);
            err = WB_ERR_REDIS;
        } else if (r->type != REDIS_REPLY_STRING || r->len != 40 ||
                   memcmp(r->str, sc->sha, 40) != 0) {
            wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: unexpected SHA from server",
                       sc->name);
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
    cmd[1] = use_eval ? set->scripts[id].body : set->scripts[id].sha;
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

wb_err_t wb_scripts_call(const wb_script_set_t *set, redisContext *ctx, int id, int nkeys, int argc,
                         const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                         size_t errstr_size)
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

/* Appends call c of set, as EVALSHA or EVAL, without I/O. Returns WB_OK,
 * WB_ERR_INVALID_ARG or WB_ERR_NOMEM. */
static wb_err_t append_call(const wb_script_set_t *set, redisContext *ctx,
                            const wb_script_call_t *c, int use_eval)
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

wb_err_t wb_scripts_pipeline(const wb_script_set_t *set, redisContext *ctx,
                             const wb_script_call_t *calls, size_t n, redisReply **replies,
                             char *errstr, size_t errstr_size)
{
    const char *cmd[WB_SCRIPTS_MAX_ARGS + 3];
    size_t cmdlen[WB_SCRIPTS_MAX_ARGS + 3];
    char nkbuf[16];
    const wb_script_call_t *c;
    size_t i, first, start, nsent = 0;
    wb_err_t err;

    if (!ctx || !set || (n > 0 && (!calls || !replies))) {
        wb_set_err(errstr, errstr_size, "redis script pipeline: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (i = 0; i < n; i++) {
        replies[i] = NULL;
        c = &calls[i];
        if (build_cmd(set, c->id, 0, c->nkeys, c->argc, c->argv, c->argvlen, cmd, cmdlen, nkbuf,
                      sizeof(nkbuf)) < 0) {
            wb_set_err(errstr, errstr_size, "redis script pipeline: invalid arguments in call %zu",
                       i);
            return WB_ERR_INVALID_ARG;
        }
    }
    for (i = 0; i < n; i++) {
        c = &calls[i];
        err = append_call(set, ctx, c, 0);
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
    err = wb_scripts_load(set, ctx, errstr, errstr_size);
    if (err != WB_OK && ctx->err) goto io_error;
    nsent = 0;
    for (i = start; i < n; i++) {
        c = &calls[i];
        if (append_call(set, ctx, c, 1) != WB_OK) {
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
