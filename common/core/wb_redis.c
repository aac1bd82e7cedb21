/* wb_redis.c — Redis connection setup and typed calls of the cache-entry scripts. */
#include "wb_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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
    char buf[400]; /* "redis " + where (at most 299) + ": " + what */
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

wb_err_t wb_redis_connect(const wb_config_t *conf, redisContext **out, char *errstr,
                          size_t errstr_size)
{
    redisContext *ctx = NULL;
    struct timeval tv;
    char where[300];
    char dbbuf[16];
    int timeout_ms;
    wb_err_t err;

    if (out) *out = NULL;
    if (!conf || !out || !conf->redis.host || !conf->redis.host[0] || conf->redis.port <= 0) {
        wb_set_err(errstr, errstr_size, "redis connect: host and port must be set");
        return WB_ERR_INVALID_ARG;
    }
    snprintf(where, sizeof(where), "%s:%d", conf->redis.host, conf->redis.port);
    timeout_ms = conf->redis.timeout_ms > 0 ? conf->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;

    ctx = redisConnectWithTimeout(conf->redis.host, conf->redis.port, tv);
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

    if (conf->redis.password && conf->redis.password[0]) {
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
    err = wb_scripts_load(ctx, errstr, errstr_size);
    if (err != WB_OK) {
        char detail[256];

        snprintf(detail, sizeof(detail), "%s", errstr ? errstr : "");
        wb_set_err(errstr, errstr_size, "redis %s: %s", where,
                   strncmp(detail, "redis ", 6) == 0 ? detail + 6 : detail);
        goto fail;
    }
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

static const char *index_or_default(const char *dirty_index)
{
    return dirty_index && dirty_index[0] ? dirty_index : WB_REDIS_DEFAULT_DIRTY_INDEX;
}

/* A script reply that should be one integer; anything else is a protocol
 * surprise reported as WB_ERR_REDIS. */
static wb_err_t int_reply(redisReply *r, const char *name, long long *out, char *errstr,
                          size_t errstr_size)
{
    wb_err_t err = WB_OK;

    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
    } else {
        wb_set_err(errstr, errstr_size, "redis script %s: unexpected reply type %d", name, r->type);
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    return err;
}

static int bad_key(redisContext *ctx, const char *key, size_t keylen, char *errstr,
                   size_t errstr_size, const char *what)
{
    if (ctx && key && keylen > 0) return 0;
    wb_set_err(errstr, errstr_size, "redis %s: missing connection or empty key", what);
    return 1;
}

wb_err_t wb_redis_put(redisContext *ctx, const char *key, size_t keylen, const void *val,
                      size_t vlen, int is_delete, const char *dirty_index, int64_t *version,
                      int64_t *time_us, char *errstr, size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    const char *argv[4];
    size_t argvlen[4];
    redisReply *r = NULL;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "put") || (!val && vlen > 0))
        return WB_ERR_INVALID_ARG;
    argv[0] = key, argvlen[0] = keylen;
    argv[1] = idx, argvlen[1] = strlen(idx);
    argv[2] = val ? val : "", argvlen[2] = is_delete ? 0 : vlen;
    argv[3] = is_delete ? "1" : "0", argvlen[3] = 1;
    err = wb_scripts_call(ctx, WB_SCRIPT_PUT, 2, 4, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        wb_set_err(errstr, errstr_size, "redis script put: unexpected reply");
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    if (version) *version = r->element[0]->integer;
    if (time_us) *time_us = r->element[1]->integer;
    freeReplyObject(r);
    return WB_OK;
}

wb_err_t wb_redis_version(redisContext *ctx, const char *key, size_t keylen, int64_t reserve_ttl_ms,
                          int64_t *version, char *errstr, size_t errstr_size)
{
    char ttlbuf[24];
    const char *argv[2] = {key, ttlbuf};
    size_t argvlen[2];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "version")) return WB_ERR_INVALID_ARG;
    argvlen[0] = keylen;
    argvlen[1] = (size_t)snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, reserve_ttl_ms);
    err = wb_scripts_call(ctx, WB_SCRIPT_VERSION, 1, 2, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "version", &v, errstr, errstr_size);
    if (err == WB_OK && version) *version = v;
    return err;
}

wb_err_t wb_redis_clean(redisContext *ctx, const char *key, size_t keylen, const char *dirty_index,
                        int64_t version, int64_t ttl_ms, wb_clean_result_t *result, char *errstr,
                        size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    char verbuf[24], ttlbuf[24];
    const char *argv[4] = {key, idx, verbuf, ttlbuf};
    size_t argvlen[4];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "clean")) return WB_ERR_INVALID_ARG;
    argvlen[0] = keylen;
    argvlen[1] = strlen(idx);
    argvlen[2] = (size_t)snprintf(verbuf, sizeof(verbuf), "%" PRId64, version);
    argvlen[3] = (size_t)snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, ttl_ms);
    err = wb_scripts_call(ctx, WB_SCRIPT_CLEAN, 2, 4, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "clean", &v, errstr, errstr_size);
    if (err == WB_OK && result) *result = (wb_clean_result_t)v;
    return err;
}

wb_err_t wb_redis_fill(redisContext *ctx, const char *key, size_t keylen, const void *val,
                       size_t vlen, int64_t version, int64_t ttl_ms, int is_deleted,
                       wb_fill_result_t *result, char *errstr, size_t errstr_size)
{
    char verbuf[24], ttlbuf[24];
    const char *argv[5];
    size_t argvlen[5];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "fill") || (!val && vlen > 0))
        return WB_ERR_INVALID_ARG;
    argv[0] = key, argvlen[0] = keylen;
    argv[1] = val ? val : "", argvlen[1] = is_deleted ? 0 : vlen;
    argv[2] = verbuf, argvlen[2] = (size_t)snprintf(verbuf, sizeof(verbuf), "%" PRId64, version);
    argv[3] = ttlbuf, argvlen[3] = (size_t)snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, ttl_ms);
    argv[4] = is_deleted ? "1" : "0", argvlen[4] = 1;
    err = wb_scripts_call(ctx, WB_SCRIPT_FILL, 1, 5, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill", &v, errstr, errstr_size);
    if (err == WB_OK && result) *result = (wb_fill_result_t)v;
    return err;
}

wb_err_t wb_redis_fill_aside(redisContext *ctx, const char *key, size_t keylen, const void *val,
                             size_t vlen, int64_t ttl_ms, int is_negative, int *created,
                             char *errstr, size_t errstr_size)
{
    char ttlbuf[24];
    const char *argv[4];
    size_t argvlen[4];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "fill_aside") || (!val && vlen > 0))
        return WB_ERR_INVALID_ARG;
    argv[0] = key, argvlen[0] = keylen;
    argv[1] = val ? val : "", argvlen[1] = is_negative ? 0 : vlen;
    argv[2] = ttlbuf, argvlen[2] = (size_t)snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, ttl_ms);
    argv[3] = is_negative ? "1" : "0", argvlen[3] = 1;
    err = wb_scripts_call(ctx, WB_SCRIPT_FILL_ASIDE, 1, 4, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill_aside", &v, errstr, errstr_size);
    if (err == WB_OK && created) *created = v == 1;
    return err;
}

wb_err_t wb_redis_through(redisContext *ctx, const char *key, size_t keylen,
                          const char *dirty_index, const void *val, size_t vlen, int64_t version,
                          int64_t ttl_ms, int is_delete, int *applied, char *errstr,
                          size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    char verbuf[24], ttlbuf[24];
    const char *argv[6];
    size_t argvlen[6];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "through") || (!val && vlen > 0))
        return WB_ERR_INVALID_ARG;
    argv[0] = key, argvlen[0] = keylen;
    argv[1] = idx, argvlen[1] = strlen(idx);
    argv[2] = val ? val : "", argvlen[2] = is_delete ? 0 : vlen;
    argv[3] = verbuf, argvlen[3] = (size_t)snprintf(verbuf, sizeof(verbuf), "%" PRId64, version);
    argv[4] = ttlbuf, argvlen[4] = (size_t)snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, ttl_ms);
    argv[5] = is_delete ? "1" : "0", argvlen[5] = 1;
    err = wb_scripts_call(ctx, WB_SCRIPT_THROUGH, 2, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "through", &v, errstr, errstr_size);
    if (err == WB_OK && applied) *applied = v == 1;
    return err;
}

static int64_t parse_i64(const redisReply *r)
{
    char buf[32];

    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf)) return 0;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    return strtoll(buf, NULL, 10);
}

static int is_one(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] == '1';
}

wb_err_t wb_redis_get(redisContext *ctx, const char *key, size_t keylen, wb_redis_entry_t *entry,
                      char *errstr, size_t errstr_size)
{
    const char *hmget[7] = {"HMGET", key, "v", "ver", "d", "wt", "del"};
    size_t hmgetlen[7] = {5, keylen, 1, 3, 1, 2, 3};
    const char *pttl[2] = {"PTTL", key};
    size_t pttllen[2] = {4, keylen};
    redisReply *h = NULL, *t = NULL;
    wb_err_t err = WB_OK;

    if (entry) memset(entry, 0, sizeof(*entry));
    if (bad_key(ctx, key, keylen, errstr, errstr_size, "get") || !entry) return WB_ERR_INVALID_ARG;
    entry->pttl_ms = -1;
    if (redisAppendCommandArgv(ctx, 7, hmget, hmgetlen) != REDIS_OK ||
        redisAppendCommandArgv(ctx, 2, pttl, pttllen) != REDIS_OK) {
        wb_set_err(errstr, errstr_size, "redis get: out of memory");
        return WB_ERR_NOMEM;
    }
    if (redisGetReply(ctx, (void **)&h) != REDIS_OK ||
        redisGetReply(ctx, (void **)&t) != REDIS_OK) {
        err = wb_redis_ctx_error(ctx, "redis get", errstr, errstr_size);
        goto done;
    }
    if (h->type == REDIS_REPLY_ERROR || t->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis get: %s",
                   h->type == REDIS_REPLY_ERROR ? h->str : t->str);
        err = WB_ERR_REDIS;
        goto done;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 5 || t->type != REDIS_REPLY_INTEGER) {
        wb_set_err(errstr, errstr_size, "redis get: unexpected reply");
        err = WB_ERR_REDIS;
        goto done;
    }
    if (h->element[0]->type != REDIS_REPLY_STRING)
        goto done; /* no `v`: a miss (absent, reservation or version memory) */
    entry->value = malloc(h->element[0]->len + 1);
    if (!entry->value) {
        wb_set_err(errstr, errstr_size, "redis get: out of memory");
        err = WB_ERR_NOMEM;
        goto done;
    }
    memcpy(entry->value, h->element[0]->str, h->element[0]->len);
    entry->value[h->element[0]->len] = '\0';
    entry->value_len = h->element[0]->len;
    entry->found = 1;
    entry->version = parse_i64(h->element[1]);
    entry->dirty = is_one(h->element[2]);
    entry->write_us = parse_i64(h->element[3]);
    entry->deleted = is_one(h->element[4]);
    entry->pttl_ms = t->integer;

done:
    if (h) freeReplyObject(h);
    if (t) freeReplyObject(t);
    return err;
}

void wb_redis_entry_clear(wb_redis_entry_t *entry)
{
    if (!entry) return;
    free(entry->value);
    memset(entry, 0, sizeof(*entry));
    entry->pttl_ms = -1;
}
