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

/* The SCRIPT LOAD reply of script arg: its SHA must be ours. */
static wb_err_t check_load(const redisReply *r, void *arg, char *errstr, size_t errstr_size)
{
    const wb_script_t *sc = arg;

    if (r->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: %s", sc->name, r->str);
        return WB_ERR_REDIS;
    }
    if (r->type != REDIS_REPLY_STRING || r->len != 40 || memcmp(r->str, sc->sha, 40) != 0) {
        wb_set_err(errstr, errstr_size, "redis SCRIPT LOAD %s: unexpected SHA from server",
                   sc->name);
        return WB_ERR_REDIS;
    }
    return WB_OK;
}

wb_err_t wb_scripts_load(const wb_script_set_t *set, wb_rc_t *rc, char *errstr, size_t errstr_size)
{
    if (!rc || !set) {
        wb_set_err(errstr, errstr_size, "redis script load: no connection");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < set->n; i++) {
        wb_script_t *sc = &set->scripts[i];
        const char *argv[3] = {"SCRIPT", "LOAD", sc->body};
        size_t argvlen[3] = {6, 4, strlen(sc->body)};
        wb_err_t err = wb_rc_each_master(rc, 3, argv, argvlen, check_load, sc, errstr, errstr_size);

        if (err != WB_OK) return err;
    }
    return WB_OK;
}

/* Builds "EVALSHA sha nkeys argv..." (or EVAL body ...) into cmd/cmdlen,
 * which must hold argc + 3 entries; nkbuf backs the nkeys
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

/* The route of a call: the slot of its first key (< 0: any node). */
static int call_slot(const wb_script_call_t *c)
{
    return c->nkeys > 0 ? wb_rc_slot(c->argv[0], c->argvlen[0]) : -1;
}

wb_err_t wb_scripts_call(const wb_script_set_t *set, wb_rc_t *rc, int id, int nkeys, int argc,
                         const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                         size_t errstr_size)
{
    wb_script_call_t c = {id, nkeys, argc, argv, argvlen};
    redisReply *r = NULL;
    wb_err_t err;

    if (reply) *reply = NULL;
    if (!reply) {
        wb_set_err(errstr, errstr_size, "redis script %s: invalid arguments", set_name(set, id));
        return WB_ERR_INVALID_ARG;
    }
    err = wb_scripts_pipeline(set, rc, &c, 1, &r, errstr, errstr_size);
    if (err != WB_OK) {
        /* the pipeline's message, as one call's */
        return err;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis script %s: %s", set_name(set, id), r->str);
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    *reply = r;
    return WB_OK;
}

static void free_replies(redisReply **replies, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (replies[i]) freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

/* Calls[from .. n) as EVALSHA (use_eval 0) or EVAL, in one wb_rc pipeline:
 * replies[from ..] answer them. */
static wb_err_t send_calls(const wb_script_set_t *set, wb_rc_t *rc, const wb_script_call_t *calls,
                           size_t from, size_t n, int use_eval, redisReply **replies, char *errstr,
                           size_t errstr_size)
{
    size_t k = n - from, total = 0, at = 0;
    wb_rc_cmd_t *cmds;
    const char **cmd;
    size_t *cmdlen;
    char(*nk)[16];
    wb_err_t err = WB_OK;

    for (size_t i = 0; i < k; i++)
        total += (size_t)calls[from + i].argc + 3;
    cmds = calloc(k ? k : 1, sizeof(*cmds));
    cmd = calloc(total ? total : 1, sizeof(*cmd));
    cmdlen = calloc(total ? total : 1, sizeof(*cmdlen));
    nk = calloc(k ? k : 1, sizeof(*nk));
    if (!cmds || !cmd || !cmdlen || !nk) {
        wb_set_err(errstr, errstr_size, "redis script pipeline: out of memory");
        err = WB_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < k; i++) {
        const wb_script_call_t *c = &calls[from + i];
        cmds[i].argc = build_cmd(set, c->id, use_eval, c->nkeys, c->argc, c->argv, c->argvlen,
                                 cmd + at, cmdlen + at, nk[i], sizeof(nk[i]));
        cmds[i].argv = cmd + at;
        cmds[i].argvlen = cmdlen + at;
        cmds[i].slot = call_slot(c);
        at += (size_t)c->argc + 3;
    }
    err = wb_rc_pipeline(rc, cmds, k, replies + from, errstr, errstr_size);

done:
    free(cmds);
    free(cmd);
    free(cmdlen);
    free(nk);
    return err;
}

wb_err_t wb_scripts_pipeline(const wb_script_set_t *set, wb_rc_t *rc, const wb_script_call_t *calls,
                             size_t n, redisReply **replies, char *errstr, size_t errstr_size)
{
    const char *cmd[WB_SCRIPTS_MAX_ARGS + 3];
    size_t cmdlen[WB_SCRIPTS_MAX_ARGS + 3];
    char nkbuf[16];
    const wb_script_call_t *c;
    size_t i, first, start;
    redisReply **again = NULL;
    wb_err_t err;

    if (!rc || !set || (n > 0 && (!calls || !replies))) {
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
    if ((err = send_calls(set, rc, calls, 0, n, 0, replies, errstr, errstr_size)) != WB_OK)
        return err;
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
     * which is right even if the cache is flushed once more. (Across the
     * nodes of a cluster this is stricter than needed: calls on different
     * nodes touch different keys.) */
    start = first;
    for (i = first + 1; i < n; i++)
        if (!wb_scripts_is_noscript(replies[i])) start = i + 1;
    err = wb_scripts_load(set, rc, errstr, errstr_size);
    if (err != WB_OK && wb_rc_failed(rc)) goto fail;
    if (start == n) return WB_OK;
    if (!(again = calloc(n, sizeof(*again)))) {
        wb_set_err(errstr, errstr_size, "redis script pipeline: out of memory");
        err = WB_ERR_NOMEM;
        goto fail;
    }
    if ((err = send_calls(set, rc, calls, start, n, 1, again, errstr, errstr_size)) != WB_OK)
        goto fail;
    for (i = start; i < n; i++) {
        freeReplyObject(replies[i]);
        replies[i] = again[i];
    }
    free(again);
    return WB_OK;

fail:
    free(again);
    free_replies(replies, n);
    return err;
}
