/* wb_entry.c — the Redis cache entry: its scripts (common/core/lua/) and dirty-index commands. */
#include "wb_entry.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_entry_lua.h"
#include "wb_redis.h"
#include "wb_scripts.h"
#include "wb_util.h"

/* ------------------------------------------------------------- scripts */

static wb_script_t scripts[WB_ENTRY_SCRIPT__COUNT] = {
    [WB_ENTRY_SCRIPT_PUT] = {"put", wb_lua_put, ""},
    [WB_ENTRY_SCRIPT_VERSION] = {"version", wb_lua_version, ""},
    [WB_ENTRY_SCRIPT_CLEAN] = {"clean", wb_lua_clean, ""},
    [WB_ENTRY_SCRIPT_FORGET] = {"forget", wb_lua_forget, ""},
    [WB_ENTRY_SCRIPT_FILL] = {"fill", wb_lua_fill, ""},
    [WB_ENTRY_SCRIPT_FILL_ASIDE] = {"fill_aside", wb_lua_fill_aside, ""},
    [WB_ENTRY_SCRIPT_THROUGH] = {"through", wb_lua_through, ""},
    [WB_ENTRY_SCRIPT_GET] = {"get", wb_lua_get, ""},
    [WB_ENTRY_SCRIPT_RELEASE] = {"release", wb_lua_release, ""},
    [WB_ENTRY_SCRIPT_RENEW] = {"renew", wb_lua_renew, ""},
    [WB_ENTRY_SCRIPT_SWEEP_CHECK] = {"sweep_check", wb_lua_sweep_check, ""},
    [WB_ENTRY_SCRIPT_FLOOR] = {"floor", wb_lua_floor, ""},
};
static wb_script_set_t set = {scripts, WB_ENTRY_SCRIPT__COUNT};
static pthread_once_t set_once = PTHREAD_ONCE_INIT;

static void set_init(void)
{
    wb_scripts_init(&set);
}

/* The set, its SHAs computed (thread-safe, once). */
static const wb_script_set_t *entry_set(void)
{
    pthread_once(&set_once, set_init);
    return &set;
}

static int valid_id(wb_entry_script_t id)
{
    return (int)id >= 0 && id < WB_ENTRY_SCRIPT__COUNT;
}

const char *wb_entry_script_name(wb_entry_script_t id)
{
    return valid_id(id) ? scripts[id].name : "?";
}

const char *wb_entry_script_body(wb_entry_script_t id)
{
    return valid_id(id) ? scripts[id].body : NULL;
}

const char *wb_entry_script_sha(wb_entry_script_t id)
{
    return valid_id(id) ? entry_set()->scripts[id].sha : NULL;
}

wb_err_t wb_entry_load(redisContext *ctx, char *errstr, size_t errstr_size)
{
    return wb_scripts_load(entry_set(), ctx, errstr, errstr_size);
}

static wb_err_t call(redisContext *ctx, wb_entry_script_t id, int nkeys, int argc,
                     const char **argv, const size_t *argvlen, redisReply **reply, char *errstr,
                     size_t errstr_size)
{
    return wb_scripts_call(entry_set(), ctx, (int)id, nkeys, argc, argv, argvlen, reply, errstr,
                           errstr_size);
}

/* ------------------------------------------------------------- helpers */

static const char *index_or_default(const char *dirty_index)
{
    return dirty_index && dirty_index[0] ? dirty_index : WB_ENTRY_DEFAULT_DIRTY_INDEX;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

int wb_entry_floor_key(const char *dirty_index, char *out, size_t size)
{
    int n = snprintf(out, size, "%s" WB_ENTRY_FLOOR_SUFFIX, index_or_default(dirty_index));
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The floor key of dirty_index into buf (WB_ENTRY_KEY_MAX); 0, or -1 with
 * errstr when the index name is too long. */
static int floor_key(const char *dirty_index, char *buf, char *errstr, size_t errstr_size)
{
    if (wb_entry_floor_key(dirty_index, buf, WB_ENTRY_KEY_MAX) == 0) return 0;
    wb_set_err(errstr, errstr_size, "redis: dirty index name too long");
    return -1;
}

static int bad_key(redisContext *ctx, const char *key, size_t keylen, char *errstr,
                   size_t errstr_size, const char *what)
{
    if (ctx && key && keylen > 0) return 0;
    wb_set_err(errstr, errstr_size, "redis %s: missing connection or empty key", what);
    return 1;
}

/* A script reply that should be one integer; anything else is a protocol
 * surprise reported as WB_ERR_REDIS. Frees r. */
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

/* A decimal field of a reply (a string, or an integer); 0 otherwise. */
static int64_t reply_i64(const redisReply *r)
{
    char buf[32];

    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf)) return 0;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    return strtoll(buf, NULL, 10);
}

static int reply_is_one(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] == '1';
}

/* Sets one `_many` result's err and error from its reply: WB_OK for a
 * reply that is not an error, else WB_ERR_REDIS with the server's text. */
static wb_err_t item_status(const redisReply *r, wb_err_t *err, char *error)
{
    error[0] = '\0';
    if (r && r->type != REDIS_REPLY_ERROR) return *err = WB_OK;
    snprintf(error, WB_ENTRY_ERROR_MAX, "%s", r && r->str ? r->str : "no reply");
    return *err = WB_ERR_REDIS;
}

static void item_unexpected(wb_err_t *err, char *error)
{
    snprintf(error, WB_ENTRY_ERROR_MAX, "unexpected reply");
    *err = WB_ERR_REDIS;
}

/* The calls of one `_many` request: n calls of argc arguments each, with
 * room for nnum decimal numbers per call, and the replies. */
typedef struct many_s {
    wb_script_call_t *calls;
    const char **argv;
    size_t *argvlen;
    char (*num)[24];
    redisReply **replies;
} many_t;

static void many_free(many_t *m)
{
    free(m->calls);
    free(m->argv);
    free(m->argvlen);
    free(m->num);
    free(m->replies);
}

static wb_err_t many_alloc(many_t *m, size_t n, int argc, int nnum, const char *what, char *errstr,
                           size_t errstr_size)
{
    size_t k = n ? n : 1;

    memset(m, 0, sizeof(*m));
    m->calls = calloc(k, sizeof(*m->calls));
    m->argv = calloc(k * (size_t)argc, sizeof(*m->argv));
    m->argvlen = calloc(k * (size_t)argc, sizeof(*m->argvlen));
    m->num = calloc(k * (size_t)(nnum ? nnum : 1), sizeof(*m->num));
    m->replies = calloc(k, sizeof(*m->replies));
    if (m->calls && m->argv && m->argvlen && m->num && m->replies) return WB_OK;
    many_free(m);
    wb_set_err(errstr, errstr_size, "redis %s: out of memory", what);
    return WB_ERR_NOMEM;
}

/* Call i of m: script id with its argv slots. */
static void many_set(many_t *m, size_t i, wb_entry_script_t id, int nkeys, int argc)
{
    m->calls[i] = (wb_script_call_t){(int)id, nkeys, argc, m->argv + i * (size_t)argc,
                                     m->argvlen + i * (size_t)argc};
}

static wb_err_t many_run(many_t *m, redisContext *ctx, size_t n, char *errstr, size_t errstr_size)
{
    return wb_scripts_pipeline(entry_set(), ctx, m->calls, n, m->replies, errstr, errstr_size);
}

static size_t num(char *buf, int64_t v)
{
    return (size_t)snprintf(buf, 24, "%" PRId64, v);
}

/* ------------------------------------------------------- write-behind */

/* argv of `put`: key, index, floor, value, delete flag, entity. */
static void put_args(const wb_entry_put_req_t *req, const char *floor, const char **argv,
                     size_t *argvlen)
{
    const char *idx = index_or_default(req->dirty_index), *ent = str_or_empty(req->entity);

    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = idx, argvlen[1] = strlen(idx);
    argv[2] = floor, argvlen[2] = strlen(floor);
    argv[3] = req->value ? req->value : "", argvlen[3] = req->is_delete ? 0 : req->len;
    argv[4] = req->is_delete ? "1" : "0", argvlen[4] = 1;
    argv[5] = ent, argvlen[5] = strlen(ent);
}

static int bad_put(redisContext *ctx, const wb_entry_put_req_t *req, char *errstr,
                   size_t errstr_size)
{
    if (!req) {
        wb_set_err(errstr, errstr_size, "redis put: no request");
        return 1;
    }
    if (bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "put")) return 1;
    if (!req->value && req->len > 0 && !req->is_delete) {
        wb_set_err(errstr, errstr_size, "redis put: no value");
        return 1;
    }
    return 0;
}

/* {version, time_us}; 0 if r has that shape. */
static int put_reply(const redisReply *r, wb_entry_put_res_t *res)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    res->version = r->element[0]->integer;
    res->time_us = r->element[1]->integer;
    return 0;
}

wb_err_t wb_entry_put(redisContext *ctx, const wb_entry_put_req_t *req, wb_entry_put_res_t *res,
                      char *errstr, size_t errstr_size)
{
    const char *argv[6];
    size_t argvlen[6];
    char floor[WB_ENTRY_KEY_MAX];
    wb_entry_put_res_t got = {0};
    redisReply *r = NULL;
    wb_err_t err;

    if (bad_put(ctx, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if (floor_key(req->dirty_index, floor, errstr, errstr_size) != 0) return WB_ERR_INVALID_ARG;
    put_args(req, floor, argv, argvlen);
    err = call(ctx, WB_ENTRY_SCRIPT_PUT, 3, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (put_reply(r, &got) != 0) {
        wb_set_err(errstr, errstr_size, "redis script put: unexpected reply");
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    if (err == WB_OK && res) *res = got;
    return err;
}

wb_err_t wb_entry_put_many(redisContext *ctx, const wb_entry_put_req_t *req, size_t n,
                           wb_entry_put_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    char(*floors)[WB_ENTRY_KEY_MAX] = NULL;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis put: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_put(ctx, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if (!(floors = calloc(n ? n : 1, sizeof(*floors)))) {
        wb_set_err(errstr, errstr_size, "redis put: out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (floor_key(req[i].dirty_index, floors[i], errstr, errstr_size) != 0) {
            free(floors);
            return WB_ERR_INVALID_ARG;
        }
    if ((err = many_alloc(&m, n, 6, 0, "put", errstr, errstr_size)) != WB_OK) {
        free(floors);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_PUT, 3, 6);
        put_args(&req[i], floors[i], m.argv + 6 * i, m.argvlen + 6 * i);
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            res[i].version = res[i].time_us = 0;
            if (item_status(m.replies[i], &res[i].err, res[i].error) == WB_OK &&
                put_reply(m.replies[i], &res[i]) != 0)
                item_unexpected(&res[i].err, res[i].error);
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    free(floors);
    return err;
}

/* ---------------------------------------------- flusher: clean, forget */

/* argv of `clean` / `forget`: key, index, version, TTL, refused event
 * version (nums: 3 slots). Returns argc (forget takes no fifth). */
static int clean_args(const wb_entry_clean_req_t *req, const char **argv, size_t *argvlen,
                      char (*nums)[24])
{
    const char *idx = index_or_default(req->dirty_index);

    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = idx, argvlen[1] = strlen(idx);
    argv[2] = nums[0], argvlen[2] = num(nums[0], req->version);
    argv[3] = nums[1], argvlen[3] = num(nums[1], req->ttl_ms);
    if (req->forget) return 4;
    argv[4] = nums[2], argvlen[4] = num(nums[2], req->refused_version);
    return 5;
}

/* Sets res from a clean/forget reply r (not an error reply): an integer
 * code, or clean's {5, v, del, e, wt}. Returns 0, or -1 for another shape
 * or out of memory (res->error says which). */
static int clean_reply(const redisReply *r, wb_entry_clean_res_t *res)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        res->code = (int)r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
        reply_i64(r->element[0]) != WB_ENTRY_CLEAN_REFUSED ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_STRING) {
        snprintf(res->error, WB_ENTRY_ERROR_MAX, "unexpected reply");
        return -1;
    }
    if (!(res->value = malloc(r->element[1]->len + 1))) {
        snprintf(res->error, WB_ENTRY_ERROR_MAX, "out of memory");
        return -1;
    }
    memcpy(res->value, r->element[1]->str, r->element[1]->len);
    res->value[r->element[1]->len] = '\0';
    res->len = r->element[1]->len;
    res->is_delete = reply_is_one(r->element[2]);
    snprintf(res->entity, sizeof(res->entity), "%.*s", (int)r->element[3]->len, r->element[3]->str);
    res->write_us = reply_i64(r->element[4]);
    res->code = WB_ENTRY_CLEAN_REFUSED;
    return 0;
}

void wb_entry_clean_clear(wb_entry_clean_res_t *res)
{
    if (!res) return;
    free(res->value);
    memset(res, 0, sizeof(*res));
}

static wb_entry_script_t clean_script(const wb_entry_clean_req_t *req)
{
    return req->forget ? WB_ENTRY_SCRIPT_FORGET : WB_ENTRY_SCRIPT_CLEAN;
}

wb_err_t wb_entry_clean(redisContext *ctx, const wb_entry_clean_req_t *req,
                        wb_entry_clean_res_t *res, char *errstr, size_t errstr_size)
{
    const char *argv[5];
    size_t argvlen[5];
    char nums[3][24];
    redisReply *r = NULL;
    wb_entry_clean_res_t got = {0};
    wb_err_t err;
    int argc;

    if (!req || bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "clean"))
        return WB_ERR_INVALID_ARG;
    argc = clean_args(req, argv, argvlen, nums);
    err = call(ctx, clean_script(req), 2, argc, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (clean_reply(r, &got) != 0) {
        wb_set_err(errstr, errstr_size, "redis script %s: %s",
                   wb_entry_script_name(clean_script(req)), got.error);
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    if (err == WB_OK && res)
        *res = got;
    else
        wb_entry_clean_clear(&got);
    return err;
}

wb_err_t wb_entry_clean_many(redisContext *ctx, const wb_entry_clean_req_t *req, size_t n,
                             wb_entry_clean_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis clean: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_key(ctx, req[i].key, req[i].keylen, errstr, errstr_size, "clean"))
            return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 5, 3, "clean", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        int argc = clean_args(&req[i], m.argv + 5 * i, m.argvlen + 5 * i, m.num + 3 * i);
        many_set(&m, i, clean_script(&req[i]), 2, 5);
        m.calls[i].argc = argc;
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            const redisReply *r = m.replies[i];
            memset(&res[i], 0, sizeof(res[i]));
            if (item_status(r, &res[i].err, res[i].error) == WB_OK && clean_reply(r, &res[i]) != 0)
                res[i].err = WB_ERR_REDIS;
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    return err;
}

/* --------------------------------------------------------------- fills */

/* argv of `fill`: key, value, version, TTL, deleted flag, entity (nums: 2). */
static void fill_args(const wb_entry_fill_req_t *req, const char **argv, size_t *argvlen,
                      char (*nums)[24])
{
    const char *ent = str_or_empty(req->entity);

    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = req->value ? req->value : "", argvlen[1] = req->is_deleted ? 0 : req->len;
    argv[2] = nums[0], argvlen[2] = num(nums[0], req->version);
    argv[3] = nums[1], argvlen[3] = num(nums[1], req->ttl_ms);
    argv[4] = req->is_deleted ? "1" : "0", argvlen[4] = 1;
    argv[5] = ent, argvlen[5] = strlen(ent);
}

static int bad_fill(redisContext *ctx, const wb_entry_fill_req_t *req, char *errstr,
                    size_t errstr_size)
{
    if (!req) {
        wb_set_err(errstr, errstr_size, "redis fill: no request");
        return 1;
    }
    if (bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "fill")) return 1;
    if (!req->value && req->len > 0 && !req->is_deleted) {
        wb_set_err(errstr, errstr_size, "redis fill: no value");
        return 1;
    }
    return 0;
}

wb_err_t wb_entry_fill(redisContext *ctx, const wb_entry_fill_req_t *req, wb_entry_fill_res_t *res,
                       char *errstr, size_t errstr_size)
{
    const char *argv[6];
    size_t argvlen[6];
    char nums[2][24];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_fill(ctx, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    fill_args(req, argv, argvlen, nums);
    err = call(ctx, WB_ENTRY_SCRIPT_FILL, 1, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill", &v, errstr, errstr_size);
    if (err == WB_OK && res) {
        res->err = WB_OK;
        res->error[0] = '\0';
        res->code = (wb_entry_fill_t)v;
    }
    return err;
}

wb_err_t wb_entry_fill_many(redisContext *ctx, const wb_entry_fill_req_t *req, size_t n,
                            wb_entry_fill_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis fill: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_fill(ctx, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 6, 2, "fill", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_FILL, 1, 6);
        fill_args(&req[i], m.argv + 6 * i, m.argvlen + 6 * i, m.num + 2 * i);
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            const redisReply *r = m.replies[i];
            res[i].code = 0;
            if (item_status(r, &res[i].err, res[i].error) == WB_OK) {
                if (r->type == REDIS_REPLY_INTEGER && r->integer >= WB_ENTRY_FILL_CREATED &&
                    r->integer <= WB_ENTRY_FILL_SKIPPED_DIRTY)
                    res[i].code = (wb_entry_fill_t)r->integer;
                else
                    item_unexpected(&res[i].err, res[i].error);
            }
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    return err;
}

wb_err_t wb_entry_fill_aside(redisContext *ctx, const wb_entry_aside_req_t *req, int *created,
                             char *errstr, size_t errstr_size)
{
    char ttlbuf[24];
    const char *argv[5];
    size_t argvlen[5];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (!req || bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "fill_aside") ||
        (!req->value && req->len > 0 && !req->is_negative))
        return WB_ERR_INVALID_ARG;
    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = req->value ? req->value : "", argvlen[1] = req->is_negative ? 0 : req->len;
    argv[2] = ttlbuf, argvlen[2] = num(ttlbuf, req->ttl_ms);
    argv[3] = req->is_negative ? "1" : "0", argvlen[3] = 1;
    argv[4] = str_or_empty(req->entity), argvlen[4] = strlen(argv[4]);
    err = call(ctx, WB_ENTRY_SCRIPT_FILL_ASIDE, 1, 5, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill_aside", &v, errstr, errstr_size);
    if (err == WB_OK && created) *created = v == 1;
    return err;
}

/* ------------------------------------------------------- write-through */

wb_err_t wb_entry_version(redisContext *ctx, const char *key, size_t keylen,
                          const char *dirty_index, int64_t reserve_ttl_ms, int64_t *version,
                          char *errstr, size_t errstr_size)
{
    char ttlbuf[24], floor[WB_ENTRY_KEY_MAX];
    const char *argv[3] = {key, floor, ttlbuf};
    size_t argvlen[3];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(ctx, key, keylen, errstr, errstr_size, "version")) return WB_ERR_INVALID_ARG;
    if (floor_key(dirty_index, floor, errstr, errstr_size) != 0) return WB_ERR_INVALID_ARG;
    argvlen[0] = keylen;
    argvlen[1] = strlen(floor);
    argvlen[2] = num(ttlbuf, reserve_ttl_ms);
    err = call(ctx, WB_ENTRY_SCRIPT_VERSION, 2, 3, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "version", &v, errstr, errstr_size);
    if (err == WB_OK && version) *version = v;
    return err;
}

wb_err_t wb_entry_through(redisContext *ctx, const wb_entry_through_req_t *req, int *applied,
                          char *errstr, size_t errstr_size)
{
    char vbuf[24];
    const char *argv[6], *idx;
    size_t argvlen[6];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (!req || bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "through") ||
        (!req->value && req->len > 0 && !req->is_delete))
        return WB_ERR_INVALID_ARG;
    idx = index_or_default(req->dirty_index);
    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = idx, argvlen[1] = strlen(idx);
    argv[2] = req->value ? req->value : "", argvlen[2] = req->is_delete ? 0 : req->len;
    argv[3] = vbuf, argvlen[3] = num(vbuf, req->version);
    argv[4] = req->is_delete ? "1" : "0", argvlen[4] = 1;
    argv[5] = str_or_empty(req->entity), argvlen[5] = strlen(argv[5]);
    err = call(ctx, WB_ENTRY_SCRIPT_THROUGH, 2, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "through", &v, errstr, errstr_size);
    if (err == WB_OK && applied) *applied = v == 1;
    return err;
}

/* --------------------------------------------------------------- reads */

/* Appends HMGET v ver d wt del + PTTL of key, without I/O. */
static int read_append(redisContext *ctx, const char *key, size_t keylen)
{
    const char *hmget[7] = {"HMGET", key, "v", "ver", "d", "wt", "del"};
    size_t hmgetlen[7] = {5, keylen, 1, 3, 1, 2, 3};
    const char *pttl[2] = {"PTTL", key};
    size_t pttllen[2] = {4, keylen};

    return redisAppendCommandArgv(ctx, 7, hmget, hmgetlen) == REDIS_OK &&
                   redisAppendCommandArgv(ctx, 2, pttl, pttllen) == REDIS_OK
               ? 0
               : -1;
}

/* Fills entry (zeroed, pttl_ms -1) from the HMGET reply h and the PTTL
 * reply t. */
static wb_err_t read_parse(const redisReply *h, const redisReply *t, wb_entry_t *entry,
                           char *errstr, size_t errstr_size)
{
    if (h->type == REDIS_REPLY_ERROR || t->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis get: %s",
                   h->type == REDIS_REPLY_ERROR ? h->str : t->str);
        return WB_ERR_REDIS;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 5 || t->type != REDIS_REPLY_INTEGER) {
        wb_set_err(errstr, errstr_size, "redis get: unexpected reply");
        return WB_ERR_REDIS;
    }
    if (h->element[0]->type != REDIS_REPLY_STRING)
        return WB_OK; /* no `v`: a miss (absent, reservation or version memory) */
    entry->value = malloc(h->element[0]->len + 1);
    if (!entry->value) {
        wb_set_err(errstr, errstr_size, "redis get: out of memory");
        return WB_ERR_NOMEM;
    }
    memcpy(entry->value, h->element[0]->str, h->element[0]->len);
    entry->value[h->element[0]->len] = '\0';
    entry->value_len = h->element[0]->len;
    entry->found = 1;
    entry->version = reply_i64(h->element[1]);
    entry->dirty = reply_is_one(h->element[2]);
    entry->write_us = reply_i64(h->element[3]);
    entry->deleted = reply_is_one(h->element[4]);
    entry->pttl_ms = t->integer;
    return WB_OK;
}

wb_err_t wb_entry_read(redisContext *ctx, const char *key, size_t keylen, wb_entry_t *entry,
                       char *errstr, size_t errstr_size)
{
    wb_entry_key_t k = {key, keylen};

    return wb_entry_read_many(ctx, &k, 1, entry, errstr, errstr_size);
}

wb_err_t wb_entry_read_many(redisContext *ctx, const wb_entry_key_t *keys, size_t n,
                            wb_entry_t *entries, char *errstr, size_t errstr_size)
{
    size_t i, sent = 0;
    wb_err_t err = WB_OK;

    if (n > 0 && (!keys || !entries)) {
        wb_set_err(errstr, errstr_size, "redis get: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (i = 0; i < n; i++) {
        memset(&entries[i], 0, sizeof(entries[i]));
        entries[i].pttl_ms = -1;
    }
    for (i = 0; i < n; i++)
        if (bad_key(ctx, keys[i].key, keys[i].keylen, errstr, errstr_size, "get"))
            return WB_ERR_INVALID_ARG;
    for (sent = 0; sent < n; sent++)
        if (read_append(ctx, keys[sent].key, keys[sent].keylen) != 0) break;
    if (sent < n) {
        err = wb_redis_ctx_error(ctx, "redis get", errstr, errstr_size);
        if (err == WB_ERR_REDIS && !ctx->err) {
            wb_set_err(errstr, errstr_size, "redis get: out of memory");
            err = WB_ERR_NOMEM;
        }
    }
    /* Every reply sent is read, also after a failure, so ctx stays usable
     * unless its connection broke. */
    for (i = 0; i < sent; i++) {
        redisReply *h = NULL, *t = NULL;
        if (redisGetReply(ctx, (void **)&h) != REDIS_OK ||
            redisGetReply(ctx, (void **)&t) != REDIS_OK) {
            if (h) freeReplyObject(h);
            err = wb_redis_ctx_error(ctx, "redis get", errstr, errstr_size);
            break;
        }
        if (err == WB_OK) err = read_parse(h, t, &entries[i], errstr, errstr_size);
        freeReplyObject(h);
        freeReplyObject(t);
    }
    if (err != WB_OK)
        for (i = 0; i < n; i++)
            wb_entry_clear(&entries[i]);
    return err;
}

void wb_entry_clear(wb_entry_t *entry)
{
    if (!entry) return;
    free(entry->value);
    memset(entry, 0, sizeof(*entry));
    entry->pttl_ms = -1;
}

wb_err_t wb_entry_get_parse(redisReply *reply, wb_entry_get_res_t *res, char *errstr,
                            size_t errstr_size)
{
    redisReply **e;

    memset(res, 0, sizeof(*res));
    res->pttl = -1;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) goto bad;
    e = reply->element;
    if (e[0]->type != REDIS_REPLY_INTEGER) goto bad;
    if (e[0]->integer == 0) {
        res->locked = e[1]->type == REDIS_REPLY_INTEGER && e[1]->integer == 1;
        return WB_OK;
    }
    if (reply->elements != 7 || e[1]->type != REDIS_REPLY_STRING ||
        e[5]->type != REDIS_REPLY_INTEGER || e[6]->type != REDIS_REPLY_INTEGER)
        goto bad;
    res->hit = 1;
    /* hiredis allocates every string len + 1 with a NUL: move the buffer
     * out instead of copying a possibly large value. */
    res->value = e[1]->str;
    res->len = e[1]->len;
    e[1]->str = NULL;
    e[1]->len = 0;
    res->version = reply_i64(e[2]);
    res->dirty = reply_is_one(e[3]);
    res->deleted = reply_is_one(e[4]);
    res->pttl = e[5]->integer;
    res->refresh = e[6]->integer == 1;
    return WB_OK;

bad:
    wb_set_err(errstr, errstr_size, "redis script get: unexpected reply");
    return WB_ERR_REDIS;
}

void wb_entry_get_clear(wb_entry_get_res_t *res)
{
    if (!res) return;
    free(res->value);
    memset(res, 0, sizeof(*res));
    res->pttl = -1;
}

/* argv of `get`: key, rr, lock, ra, TTL, dedupe, token, lock TTL (nums: 4). */
static void get_args(const wb_entry_get_req_t *req, const char **argv, size_t *argvlen,
                     char (*nums)[24])
{
    const char *tok = req->lock_token ? req->lock_token : "";

    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = req->rr_key, argvlen[1] = strlen(req->rr_key);
    argv[2] = req->lock_key, argvlen[2] = strlen(req->lock_key);
    argv[3] = nums[0], argvlen[3] = (size_t)snprintf(nums[0], 24, "%.6f", req->refresh_ahead);
    argv[4] = nums[1], argvlen[4] = num(nums[1], req->ttl_ms);
    argv[5] = nums[2], argvlen[5] = num(nums[2], req->dedupe_ms);
    argv[6] = tok, argvlen[6] = strlen(tok);
    argv[7] = nums[3], argvlen[7] = num(nums[3], req->lock_ttl_ms > 0 ? req->lock_ttl_ms : 1000);
}

static int bad_get(redisContext *ctx, const wb_entry_get_req_t *req, char *errstr,
                   size_t errstr_size)
{
    if (!req || !req->rr_key || !req->lock_key) {
        wb_set_err(errstr, errstr_size, "redis get: invalid arguments");
        return 1;
    }
    return bad_key(ctx, req->key, req->keylen, errstr, errstr_size, "get");
}

wb_err_t wb_entry_get(redisContext *ctx, const wb_entry_get_req_t *req, wb_entry_get_res_t *res,
                      char *errstr, size_t errstr_size)
{
    const char *argv[8];
    size_t argvlen[8];
    char nums[4][24];
    redisReply *r = NULL;
    wb_err_t err;

    if (res) memset(res, 0, sizeof(*res));
    if (!res || bad_get(ctx, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    res->pttl = -1;
    get_args(req, argv, argvlen, nums);
    err = call(ctx, WB_ENTRY_SCRIPT_GET, 3, 8, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    err = wb_entry_get_parse(r, res, errstr, errstr_size);
    freeReplyObject(r);
    return err;
}

wb_err_t wb_entry_get_many(redisContext *ctx, const wb_entry_get_req_t *req, size_t n,
                           wb_entry_get_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis get: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].pttl = -1;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_get(ctx, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 8, 4, "get", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_GET, 3, 8);
        get_args(&req[i], m.argv + 8 * i, m.argvlen + 8 * i, m.num + 4 * i);
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            if (item_status(m.replies[i], &res[i].err, res[i].error) == WB_OK &&
                wb_entry_get_parse(m.replies[i], &res[i], NULL, 0) != WB_OK)
                item_unexpected(&res[i].err, res[i].error);
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    return err;
}

/* -------------------------------------------------------- token keys */

/* A token script (release, renew) answering 1 or 0 into *yes. */
static wb_err_t token_call(redisContext *ctx, wb_entry_script_t id, const char *key,
                           const char *token, const char *ms, int *yes, char *errstr,
                           size_t errstr_size)
{
    const char *argv[3] = {key, token, ms};
    size_t argvlen[3];
    redisReply *r = NULL;
    wb_err_t err;

    if (yes) *yes = 0;
    if (!token ||
        bad_key(ctx, key, key ? strlen(key) : 0, errstr, errstr_size, wb_entry_script_name(id)))
        return WB_ERR_INVALID_ARG;
    argvlen[0] = strlen(key);
    argvlen[1] = strlen(token);
    argvlen[2] = ms ? strlen(ms) : 0;
    err = call(ctx, id, 1, ms ? 3 : 2, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (yes) *yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return WB_OK;
}

wb_err_t wb_entry_release(redisContext *ctx, const char *key, const char *token, int *released,
                          char *errstr, size_t errstr_size)
{
    return token_call(ctx, WB_ENTRY_SCRIPT_RELEASE, key, token, NULL, released, errstr,
                      errstr_size);
}

wb_err_t wb_entry_release_many(redisContext *ctx, const wb_entry_key_t *keys, size_t n,
                               const char *token, char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (!ctx || !token || (n > 0 && !keys)) {
        wb_set_err(errstr, errstr_size, "redis release: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_key(ctx, keys[i].key, keys[i].keylen, errstr, errstr_size, "release"))
            return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 2, 0, "release", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_RELEASE, 1, 2);
        m.argv[2 * i] = keys[i].key, m.argvlen[2 * i] = keys[i].keylen;
        m.argv[2 * i + 1] = token, m.argvlen[2 * i + 1] = strlen(token);
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK)
        for (size_t i = 0; i < n; i++)
            freeReplyObject(m.replies[i]);
    many_free(&m);
    return err;
}

wb_err_t wb_entry_lease_renew(redisContext *ctx, const char *key, const char *token, int64_t ms,
                              int *renewed, char *errstr, size_t errstr_size)
{
    char msbuf[24];

    num(msbuf, ms);
    return token_call(ctx, WB_ENTRY_SCRIPT_RENEW, key, token, msbuf, renewed, errstr, errstr_size);
}

wb_err_t wb_entry_lease_take(redisContext *ctx, const char *key, const char *token, int64_t ms,
                             int *taken, char *errstr, size_t errstr_size)
{
    char msbuf[24];
    const char *argv[6] = {"SET", key, token, "NX", "PX", msbuf};
    size_t argvlen[6];
    redisReply *r;

    if (taken) *taken = 0;
    if (!token || bad_key(ctx, key, key ? strlen(key) : 0, errstr, errstr_size, "SET lease"))
        return WB_ERR_INVALID_ARG;
    argvlen[0] = 3, argvlen[1] = strlen(key), argvlen[2] = strlen(token);
    argvlen[3] = 2, argvlen[4] = 2, argvlen[5] = num(msbuf, ms);
    r = redisCommandArgv(ctx, 6, argv, argvlen);
    if (!r) return wb_redis_ctx_error(ctx, "redis SET lease", errstr, errstr_size);
    if (r->type == REDIS_REPLY_ERROR) {
        wb_set_err(errstr, errstr_size, "redis SET lease: %s", r->str);
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    if (taken) *taken = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return WB_OK;
}

/* --------------------------------------------------------- dirty index */

void wb_entry_keys_clear(wb_entry_keys_t *keys)
{
    if (!keys) return;
    for (size_t i = 0; i < keys->n; i++)
        free((char *)keys->v[i].key);
    free(keys->v);
    memset(keys, 0, sizeof(*keys));
}

wb_err_t wb_entry_dirty_range(redisContext *ctx, const char *dirty_index, int64_t max_score_us,
                              int limit, wb_entry_keys_t *out, char *errstr, size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    char maxbuf[24], limbuf[24];
    const char *argv[7] = {"ZRANGEBYSCORE", idx, "-inf", maxbuf, "LIMIT", "0", limbuf};
    size_t argvlen[7];
    redisReply *r;
    wb_err_t err = WB_OK;

    if (out) memset(out, 0, sizeof(*out));
    if (!ctx || !out) {
        wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    argvlen[0] = 13, argvlen[1] = strlen(idx), argvlen[2] = 4;
    argvlen[3] = num(maxbuf, max_score_us);
    argvlen[4] = 5, argvlen[5] = 1;
    argvlen[6] = (size_t)snprintf(limbuf, sizeof(limbuf), "%d", limit);
    r = redisCommandArgv(ctx, 7, argv, argvlen);
    if (!r) return wb_redis_ctx_error(ctx, "redis ZRANGEBYSCORE", errstr, errstr_size);
    if (r->type != REDIS_REPLY_ARRAY) {
        wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE %s: %s", idx,
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return WB_ERR_REDIS;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: unexpected member type");
            freeReplyObject(r);
            return WB_ERR_REDIS;
        }
    if (r->elements > 0 && !(out->v = calloc(r->elements, sizeof(*out->v)))) goto nomem;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        char *k = malloc(m->len + 1);
        if (!k) goto nomem;
        memcpy(k, m->str, m->len);
        k[m->len] = '\0';
        out->v[out->n++] = (wb_entry_key_t){k, m->len};
    }
    freeReplyObject(r);
    return err;

nomem:
    freeReplyObject(r);
    wb_entry_keys_clear(out);
    wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: out of memory");
    return WB_ERR_NOMEM;
}

wb_err_t wb_entry_dirty_stats(redisContext *ctx, const char *dirty_index,
                              wb_entry_dirty_stats_t *out, char *errstr, size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    const char *card[2] = {"ZCARD", idx};
    size_t cardlen[2] = {5, strlen(idx)};
    const char *first[5] = {"ZRANGE", idx, "0", "0", "WITHSCORES"};
    size_t firstlen[5] = {6, strlen(idx), 1, 1, 10};
    redisReply *r[3] = {NULL, NULL, NULL};
    wb_err_t err = WB_OK;

    if (out) memset(out, 0, sizeof(*out));
    if (!ctx || !out) {
        wb_set_err(errstr, errstr_size, "redis dirty index: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (redisAppendCommand(ctx, "TIME") != REDIS_OK ||
        redisAppendCommandArgv(ctx, 2, card, cardlen) != REDIS_OK ||
        redisAppendCommandArgv(ctx, 5, first, firstlen) != REDIS_OK)
        return wb_redis_ctx_error(ctx, "redis dirty index", errstr, errstr_size);
    for (int i = 0; i < 3; i++)
        if (redisGetReply(ctx, (void **)&r[i]) != REDIS_OK) {
            err = wb_redis_ctx_error(ctx, "redis dirty index", errstr, errstr_size);
            goto done;
        }
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 2 ||
        r[1]->type != REDIS_REPLY_INTEGER || r[2]->type != REDIS_REPLY_ARRAY) {
        wb_set_err(errstr, errstr_size, "redis dirty index %s: %s", idx,
                   r[1]->type == REDIS_REPLY_ERROR   ? r[1]->str
                   : r[2]->type == REDIS_REPLY_ERROR ? r[2]->str
                                                     : "unexpected reply");
        err = WB_ERR_REDIS;
        goto done;
    }
    out->now_us = reply_i64(r[0]->element[0]) * 1000000 + reply_i64(r[0]->element[1]);
    out->count = r[1]->integer;
    if (r[2]->elements == 2 && r[2]->element[0]->type == REDIS_REPLY_STRING &&
        r[2]->element[1]->type == REDIS_REPLY_STRING) {
        out->has_oldest = 1;
        out->oldest_us = strtod(r[2]->element[1]->str, NULL);
        snprintf(out->oldest_key, sizeof(out->oldest_key), "%.*s", (int)r[2]->element[0]->len,
                 r[2]->element[0]->str);
    }

done:
    for (int i = 0; i < 3; i++)
        if (r[i]) freeReplyObject(r[i]);
    return err;
}

wb_err_t wb_entry_floor_raise(redisContext *ctx, const char *dirty_index, int64_t version,
                              int64_t *floor_out, char *errstr, size_t errstr_size)
{
    char floor[WB_ENTRY_KEY_MAX], vbuf[24];
    const char *argv[2] = {floor, vbuf};
    size_t argvlen[2];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (!ctx || version <= 0) {
        wb_set_err(errstr, errstr_size, "redis floor: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (floor_key(dirty_index, floor, errstr, errstr_size) != 0) return WB_ERR_INVALID_ARG;
    argvlen[0] = strlen(floor);
    argvlen[1] = num(vbuf, version);
    err = call(ctx, WB_ENTRY_SCRIPT_FLOOR, 1, 2, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "floor", &v, errstr, errstr_size);
    if (err == WB_OK && floor_out) *floor_out = v;
    return err;
}

wb_err_t wb_entry_dirty_bump(redisContext *ctx, const char *dirty_index, int64_t score_us,
                             const wb_entry_key_t *keys, size_t n, char *errstr, size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    char score[24];
    size_t scorelen = num(score, score_us), pending = 0;

    if (!ctx || (n > 0 && !keys)) {
        wb_set_err(errstr, errstr_size, "redis ZADD: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        const char *cmd[6] = {"ZADD", idx, "XX", "GT", score, keys[i].key};
        size_t cmdlen[6] = {4, strlen(idx), 2, 2, scorelen, keys[i].keylen};
        if (redisAppendCommandArgv(ctx, 6, cmd, cmdlen) != REDIS_OK) goto io_error;
        pending++;
    }
    for (; pending > 0; pending--) {
        void *r = NULL;
        if (redisGetReply(ctx, &r) != REDIS_OK) goto io_error;
        freeReplyObject(r);
    }
    return WB_OK;

io_error:
    return wb_redis_ctx_error(ctx, "redis ZADD", errstr, errstr_size);
}

void wb_entry_check_clear(wb_entry_check_res_t *res)
{
    if (!res) return;
    free(res->value);
    memset(res, 0, sizeof(*res));
}

wb_err_t wb_entry_sweep_check_many(redisContext *ctx, const char *dirty_index,
                                   const wb_entry_key_t *keys, size_t n, wb_entry_check_res_t *res,
                                   char *errstr, size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    many_t m;
    wb_err_t err;

    if (n > 0 && (!keys || !res)) {
        wb_set_err(errstr, errstr_size, "redis sweep_check: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_key(ctx, keys[i].key, keys[i].keylen, errstr, errstr_size, "sweep_check"))
            return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 2, 0, "sweep_check", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_SWEEP_CHECK, 2, 2);
        m.argv[2 * i] = keys[i].key, m.argvlen[2 * i] = keys[i].keylen;
        m.argv[2 * i + 1] = idx, m.argvlen[2 * i + 1] = strlen(idx);
    }
    if ((err = many_run(&m, ctx, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            const redisReply *r = m.replies[i];
            wb_entry_check_res_t *c = &res[i];

            memset(c, 0, sizeof(*c));
            if (item_status(r, &c->err, c->error) != WB_OK) {
                /* c->error says why */
            } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
                item_unexpected(&c->err, c->error);
            } else if (reply_i64(r->element[0]) == 0) {
                c->dirty = 0;
            } else if (r->elements == 6 && r->element[1]->type == REDIS_REPLY_STRING &&
                       r->element[5]->type == REDIS_REPLY_STRING) {
                const redisReply *v = r->element[1];
                if (!(c->value = malloc(v->len + 1))) {
                    snprintf(c->error, sizeof(c->error), "out of memory");
                    c->err = WB_ERR_NOMEM;
                } else {
                    memcpy(c->value, v->str, v->len);
                    c->value[v->len] = '\0';
                    c->len = v->len;
                    c->dirty = 1;
                    c->version = reply_i64(r->element[2]);
                    c->write_us = reply_i64(r->element[3]);
                    c->is_delete = reply_i64(r->element[4]) == 1;
                    snprintf(c->entity, sizeof(c->entity), "%.*s", (int)r->element[5]->len,
                             r->element[5]->str);
                }
            } else {
                item_unexpected(&c->err, c->error);
            }
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    return err;
}
