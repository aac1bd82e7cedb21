/* wb_redis.c — Redis connections: connect with timeouts, AUTH and SELECT; reconnect; errors. */
#include "wb_redis.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "wb_util.h"

#define DEFAULT_TIMEOUT_MS 2000

wb_err_t wb_redis_ctx_error(const redisContext *ctx, const char *what, char *errstr,
                            size_t errstr_size)
{
    const char *detail;

    if (!ctx) {
        wb_set_err(errstr, errstr_size, "%s: no connection", what);
        return WB_ERR_REDIS;
    }
    detail = ctx->err ? ctx->errstr : "no reply";
    if (ctx->err == REDIS_ERR_OOM) {
        wb_set_err(errstr, errstr_size, "%s: out of memory", what);
        return WB_ERR_NOMEM;
    }
    /* hiredis 0.14 keeps only text: a connect timeout is ETIMEDOUT ("timed
     * out"), a socket read/write timeout is EAGAIN ("temporarily
     * unavailable"). */
    if (ctx->err == REDIS_ERR_IO &&
        (strstr(detail, "timed out") || strstr(detail, "temporarily unavailable"))) {
        wb_set_err(errstr, errstr_size, "%s: timed out (%s)", what, detail);
        return WB_ERR_TIMEOUT;
    }
    wb_set_err(errstr, errstr_size, "%s: %s", what, detail);
    return WB_ERR_REDIS;
}

/* Runs one short command during connection setup; reply errors become
 * WB_ERR_REDIS "redis HOST:PORT: what: server message". */
static wb_err_t setup_command(redisContext *ctx, const char *where, const char *what, int argc,
                              const char **argv, const size_t *argvlen, char *errstr,
                              size_t errstr_size)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, argvlen);
    char buf[400]; /* "redis " + where (at most 299) + ": " + what (at most 80) */
    wb_err_t err = WB_OK;

    if (!r) {
        snprintf(buf, sizeof(buf), "redis %s: %s", where, what);
        return wb_redis_ctx_error(ctx, buf, errstr, errstr_size);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis %s: %s: %s", where, what, r->str);
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    return err;
}

wb_err_t wb_redis_check_eviction(redisContext *ctx, const char *where, char *errstr,
                                 size_t errstr_size)
{
    redisReply *r = redisCommand(ctx, "CONFIG GET maxmemory-policy");
    wb_err_t err = WB_OK;

    if (!r) {
        char what[320];

        snprintf(what, sizeof(what), "redis %s: CONFIG GET maxmemory-policy", where);
        return wb_redis_ctx_error(ctx, what, errstr, errstr_size);
    }
    /* An error reply (CONFIG renamed or denied, as on some managed
     * services) cannot be checked: the deployment guide asks for it. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        strncmp(r->element[1]->str, "allkeys-", 8) == 0) {
        wb_set_err(errstr, errstr_size,
                   "redis %s: maxmemory-policy is %s, which may evict dirty entries before "
                   "PostgreSQL holds them; use a volatile-* policy or noeviction (e.g. CONFIG SET "
                   "maxmemory-policy volatile-lru)",
                   where, r->element[1]->str);
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    return err;
}

wb_err_t wb_redis_connect(const wb_config_t *conf, redisContext **out, char *errstr,
                          size_t errstr_size)
{
    return wb_redis_connect_node(conf, conf ? conf->redis.host : NULL, conf ? conf->redis.port : 0,
                                 out, errstr, errstr_size);
}

wb_err_t wb_redis_connect_node(const wb_config_t *conf, const char *host, int port,
                               redisContext **out, char *errstr, size_t errstr_size)
{
    redisContext *ctx = NULL;
    struct timeval tv;
    char where[300];
    char dbbuf[16];
    int timeout_ms;
    wb_err_t err;

    if (out) *out = NULL;
    if (!conf || !out || !host || !host[0] || port <= 0) {
        wb_set_err(errstr, errstr_size, "redis connect: host and port must be set");
        return WB_ERR_INVALID_ARG;
    }
    snprintf(where, sizeof(where), "%s:%d", host, port);
    timeout_ms = conf->redis.timeout_ms > 0 ? conf->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;

    ctx = redisConnectWithTimeout(host, port, tv);
    if (!ctx) {
        wb_set_err(errstr, errstr_size, "redis %s: out of memory", where);
        return WB_ERR_NOMEM;
    }
    if (ctx->err) {
        char what[320];

        snprintf(what, sizeof(what), "redis %s: connect", where);
        err = wb_redis_ctx_error(ctx, what, errstr, errstr_size);
        goto fail;
    }
    if (redisSetTimeout(ctx, tv) != REDIS_OK) {
        char what[320];

        snprintf(what, sizeof(what), "redis %s: set timeout", where);
        err = wb_redis_ctx_error(ctx, what, errstr, errstr_size);
        goto fail;
    }
    /* Detects a peer that vanished without FIN on idle connections. */
    redisEnableKeepAlive(ctx);

    if (conf->redis.user && conf->redis.user[0]) {
        /* An ACL user (Redis 6+): AUTH user password, the password possibly
         * empty (a `nopass` user). Messages name the user, never the
         * password. */
        const char *pw = conf->redis.password ? conf->redis.password : "";
        const char *argv[3] = {"AUTH", conf->redis.user, pw};
        size_t argvlen[3] = {4, strlen(conf->redis.user), strlen(pw)};
        char what[80];

        snprintf(what, sizeof(what), "AUTH as user '%.40s'%s", conf->redis.user,
                 strlen(conf->redis.user) > 40 ? "..." : "");
        err = setup_command(ctx, where, what, 3, argv, argvlen, errstr, errstr_size);
        if (err != WB_OK) goto fail;
    } else if (conf->redis.password && conf->redis.password[0]) {
        const char *argv[2] = {"AUTH", conf->redis.password};
        size_t argvlen[2] = {4, strlen(conf->redis.password)};

        err = setup_command(ctx, where, "AUTH", 2, argv, argvlen, errstr, errstr_size);
        if (err != WB_OK) goto fail;
    }
    if (conf->redis.db != 0) {
        const char *argv[2] = {"SELECT", dbbuf};
        size_t argvlen[2];

        snprintf(dbbuf, sizeof(dbbuf), "%d", conf->redis.db);
        argvlen[0] = 6;
        argvlen[1] = strlen(dbbuf);
        err = setup_command(ctx, where, "SELECT", 2, argv, argvlen, errstr, errstr_size);
        if (err != WB_OK) goto fail;
    }
    {
        /* A server that accepts connections but does not answer (hung,
         * or not Redis) fails here, within timeout_ms, not on first use. */
        const char *argv[1] = {"PING"};
        size_t argvlen[1] = {4};

        err = setup_command(ctx, where, "PING", 1, argv, argvlen, errstr, errstr_size);
        if (err != WB_OK) goto fail;
    }
    if ((err = wb_redis_check_eviction(ctx, where, errstr, errstr_size)) != WB_OK) goto fail;
    *out = ctx;
    return WB_OK;

fail:
    redisFree(ctx);
    return err;
}

wb_err_t wb_redis_reconnect(const wb_config_t *conf, redisContext **ctx, char *errstr,
                            size_t errstr_size)
{
    redisContext *fresh = NULL;
    wb_err_t err;

    if (!ctx) {
        wb_set_err(errstr, errstr_size, "redis reconnect: no context");
        return WB_ERR_INVALID_ARG;
    }
    err = wb_redis_connect(conf, &fresh, errstr, errstr_size);
    if (err != WB_OK) return err;
    redisFree(*ctx);
    *ctx = fresh;
    return WB_OK;
}
