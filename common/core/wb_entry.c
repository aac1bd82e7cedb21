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
    [WB_ENTRY_SCRIPT_CLEAN_MANY] = {"clean_many", wb_lua_clean_many, ""},
    [WB_ENTRY_SCRIPT_FORGET] = {"forget", wb_lua_forget, ""},
    [WB_ENTRY_SCRIPT_FILL] = {"fill", wb_lua_fill, ""},
    [WB_ENTRY_SCRIPT_FILL_ASIDE] = {"fill_aside", wb_lua_fill_aside, ""},
    [WB_ENTRY_SCRIPT_THROUGH] = {"through", wb_lua_through, ""},
    [WB_ENTRY_SCRIPT_GET] = {"get", wb_lua_get, ""},
    [WB_ENTRY_SCRIPT_RELEASE] = {"release", wb_lua_release, ""},
    [WB_ENTRY_SCRIPT_RENEW] = {"renew", wb_lua_renew, ""},
    [WB_ENTRY_SCRIPT_SWEEP_CHECK] = {"sweep_check", wb_lua_sweep_check, ""},
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

wb_err_t wb_entry_load(wb_rc_t *rc, char *errstr, size_t errstr_size)
{
    return wb_scripts_load(entry_set(), rc, errstr, errstr_size);
}

static wb_err_t call(wb_rc_t *rc, wb_entry_script_t id, int nkeys, int argc, const char **argv,
                     const size_t *argvlen, redisReply **reply, char *errstr, size_t errstr_size)
{
    return wb_scripts_call(entry_set(), rc, (int)id, nkeys, argc, argv, argvlen, reply, errstr,
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

size_t wb_entry_key_tag(const char *key, size_t keylen, int *shard)
{
    size_t i;
    long v = 0;

    if (!key || keylen < 3 || key[0] != '{') return 0;
    for (i = 1; i < keylen && i < 7 && key[i] >= '0' && key[i] <= '9'; i++)
        v = v * 10 + (key[i] - '0');
    if (i == 1 || i >= keylen || key[i] != '}' || (key[1] == '0' && i > 2) ||
        v >= WB_ENTRY_SHARDS_MAX)
        return 0;
    if (shard) *shard = (int)v;
    return i + 1;
}

int wb_entry_shard_of(const char *body, size_t len, int nshards)
{
    return nshards > 1 ? (int)(wb_rc_crc16(body, len) % (unsigned)nshards) : 0;
}

int wb_entry_index_key(const char *dirty_index, int shard, char *out, size_t size)
{
    int n = snprintf(out, size, "%s:{%d}", index_or_default(dirty_index), shard);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int wb_entry_floor_key(const char *dirty_index, int shard, char *out, size_t size)
{
    int n =
        snprintf(out, size, "%s:{%d}" WB_ENTRY_FLOOR_SUFFIX, index_or_default(dirty_index), shard);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* A key's shard names: its dirty-index shard and that shard's floor. */
typedef struct shard_names_s {
    int shard;
    char idx[WB_ENTRY_KEY_MAX];
    char floor[WB_ENTRY_KEY_MAX];
} shard_names_t;

/* The shard names of key (from its tag) into *sn; 0, or -1 with errstr for
 * a key without a shard tag or an index name too long. */
static int shard_names(const char *dirty_index, const char *key, size_t keylen, shard_names_t *sn,
                       char *errstr, size_t errstr_size)
{
    if (!wb_entry_key_tag(key, keylen, &sn->shard)) {
        wb_set_err(errstr, errstr_size, "redis: key %.*s has no shard tag \"{N}\" (wb_entry.h)",
                   (int)(keylen > 200 ? 200 : keylen), key);
        return -1;
    }
    if (wb_entry_index_key(dirty_index, sn->shard, sn->idx, sizeof(sn->idx)) == 0 &&
        wb_entry_floor_key(dirty_index, sn->shard, sn->floor, sizeof(sn->floor)) == 0)
        return 0;
    wb_set_err(errstr, errstr_size, "redis: dirty index name too long");
    return -1;
}

/* The shard names of the keys of one pipeline (`_many`): each distinct
 * (dirty index, shard) is formatted once, into one buffer, as
 * "<index>:{N}:floor" (the shard's floor), whose first idxlen bytes are the
 * shard's index name. A per-key shard_names_t (2 KiB, two snprintf) cost
 * more than the rest of building a pipeline of cleans. */
typedef struct names_s {
    struct name_s {
        int shard;
        const char *base; /* the dirty index name (borrowed from a request) */
        size_t off, idxlen, len;
    } * v;
    size_t n, cap;
    char *buf;
    size_t used, size;
    int32_t *slots; /* open addressing over shard: index in v, -1 empty */
    size_t mask;
} names_t;

static void names_free(names_t *nm)
{
    free(nm->v);
    free(nm->buf);
    free(nm->slots);
    memset(nm, 0, sizeof(*nm));
}

/* Room for up to nkeys distinct names. 0, or -1 out of memory. */
static int names_init(names_t *nm, size_t nkeys)
{
    size_t want = 16;

    memset(nm, 0, sizeof(*nm));
    while (want < 2 * nkeys)
        want *= 2;
    nm->slots = malloc(want * sizeof(*nm->slots));
    if (!nm->slots) return -1;
    memset(nm->slots, 0xff, want * sizeof(*nm->slots));
    nm->mask = want - 1;
    return 0;
}

/* The index in nm->v of key's shard names; -1 with errstr for a key
 * without a shard tag, an index name too long, or no memory. */
static long names_of(names_t *nm, const char *dirty_index, const char *key, size_t keylen,
                     char *errstr, size_t errstr_size)
{
    const char *base = index_or_default(dirty_index);
    int shard, len;
    size_t s;

    if (!wb_entry_key_tag(key, keylen, &shard)) {
        wb_set_err(errstr, errstr_size, "redis: key %.*s has no shard tag \"{N}\" (wb_entry.h)",
                   (int)(keylen > 200 ? 200 : keylen), key);
        return -1;
    }
    for (s = ((uint32_t)shard * 2654435761u) & nm->mask; nm->slots[s] >= 0;
         s = (s + 1) & nm->mask) {
        const struct name_s *o = &nm->v[nm->slots[s]];
        if (o->shard == shard && (o->base == base || strcmp(o->base, base) == 0))
            return nm->slots[s];
    }
    if (nm->n == nm->cap) {
        size_t cap = nm->cap ? nm->cap * 2 : 64;
        struct name_s *v = realloc(nm->v, cap * sizeof(*v));
        if (!v) goto nomem;
        nm->v = v;
        nm->cap = cap;
    }
    size_t need = strlen(base) + 16 + sizeof(WB_ENTRY_FLOOR_SUFFIX);
    if (nm->size - nm->used < need) {
        size_t size = nm->size ? nm->size * 2 : 4096;
        while (size - nm->used < need)
            size *= 2;
        char *buf = realloc(nm->buf, size);
        if (!buf) goto nomem;
        nm->buf = buf;
        nm->size = size;
    }
    len = snprintf(nm->buf + nm->used, nm->size - nm->used, "%s:{%d}" WB_ENTRY_FLOOR_SUFFIX, base,
                   shard);
    if (len < 0 || (size_t)len >= WB_ENTRY_KEY_MAX) {
        wb_set_err(errstr, errstr_size, "redis: dirty index name too long");
        return -1;
    }
    nm->v[nm->n] = (struct name_s){shard, base, nm->used,
                                   (size_t)len - (sizeof(WB_ENTRY_FLOOR_SUFFIX) - 1), (size_t)len};
    nm->used += (size_t)len + 1;
    nm->slots[s] = (int32_t)nm->n;
    return (long)nm->n++;
nomem:
    wb_set_err(errstr, errstr_size, "redis: out of memory");
    return -1;
}

static int bad_key(wb_rc_t *rc, const char *key, size_t keylen, char *errstr, size_t errstr_size,
                   const char *what)
{
    if (rc && key && keylen > 0) return 0;
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

static wb_err_t many_run(many_t *m, wb_rc_t *rc, size_t n, char *errstr, size_t errstr_size)
{
    return wb_scripts_pipeline(entry_set(), rc, m->calls, n, m->replies, errstr, errstr_size);
}

/* v in decimal into buf (room for 24), NUL-terminated; returns the length.
 * Three per clean-mark: snprintf was a visible share of the cleaner. */
static size_t num(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* ------------------------------------------------------- write-behind */

/* argv of `put`: key, index shard (idx[0 .. idxlen)), floor, value, delete
 * flag, entity. */
static void put_args(const wb_entry_put_req_t *req, const char *idx, size_t idxlen,
                     const char *floor, size_t floorlen, const char **argv, size_t *argvlen)
{
    const char *ent = str_or_empty(req->entity);

    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = idx, argvlen[1] = idxlen;
    argv[2] = floor, argvlen[2] = floorlen;
    argv[3] = req->value ? req->value : "", argvlen[3] = req->is_delete ? 0 : req->len;
    argv[4] = req->is_delete ? "1" : "0", argvlen[4] = 1;
    argv[5] = ent, argvlen[5] = strlen(ent);
}

static int bad_put(wb_rc_t *rc, const wb_entry_put_req_t *req, char *errstr, size_t errstr_size)
{
    if (!req) {
        wb_set_err(errstr, errstr_size, "redis put: no request");
        return 1;
    }
    if (bad_key(rc, req->key, req->keylen, errstr, errstr_size, "put")) return 1;
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

wb_err_t wb_entry_put(wb_rc_t *rc, const wb_entry_put_req_t *req, wb_entry_put_res_t *res,
                      char *errstr, size_t errstr_size)
{
    const char *argv[6];
    size_t argvlen[6];
    shard_names_t sn;
    wb_entry_put_res_t got = {0};
    redisReply *r = NULL;
    wb_err_t err;

    if (bad_put(rc, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if (shard_names(req->dirty_index, req->key, req->keylen, &sn, errstr, errstr_size) != 0)
        return WB_ERR_INVALID_ARG;
    put_args(req, sn.idx, strlen(sn.idx), sn.floor, strlen(sn.floor), argv, argvlen);
    err = call(rc, WB_ENTRY_SCRIPT_PUT, 3, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (put_reply(r, &got) != 0) {
        wb_set_err(errstr, errstr_size, "redis script put: unexpected reply");
        err = WB_ERR_REDIS;
    }
    freeReplyObject(r);
    if (err == WB_OK && res) *res = got;
    return err;
}

wb_err_t wb_entry_put_many(wb_rc_t *rc, const wb_entry_put_req_t *req, size_t n,
                           wb_entry_put_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    names_t nm;
    long *name = NULL;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis put: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_put(rc, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if (names_init(&nm, n) != 0 || !(name = malloc((n ? n : 1) * sizeof(*name)))) {
        names_free(&nm);
        wb_set_err(errstr, errstr_size, "redis put: out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if ((name[i] = names_of(&nm, req[i].dirty_index, req[i].key, req[i].keylen, errstr,
                                errstr_size)) < 0) {
            names_free(&nm);
            free(name);
            return WB_ERR_INVALID_ARG;
        }
    if ((err = many_alloc(&m, n, 6, 0, "put", errstr, errstr_size)) != WB_OK) {
        names_free(&nm);
        free(name);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        const struct name_s *v = &nm.v[name[i]];
        many_set(&m, i, WB_ENTRY_SCRIPT_PUT, 3, 6);
        put_args(&req[i], nm.buf + v->off, v->idxlen, nm.buf + v->off, v->len, m.argv + 6 * i,
                 m.argvlen + 6 * i);
    }
    if ((err = many_run(&m, rc, n, errstr, errstr_size)) == WB_OK) {
        for (size_t i = 0; i < n; i++) {
            res[i].version = res[i].time_us = 0;
            if (item_status(m.replies[i], &res[i].err, res[i].error) == WB_OK &&
                put_reply(m.replies[i], &res[i]) != 0)
                item_unexpected(&res[i].err, res[i].error);
            freeReplyObject(m.replies[i]);
        }
    }
    many_free(&m);
    names_free(&nm);
    free(name);
    return err;
}

/* ---------------------------------------------- flusher: clean, forget */

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

#define NO_REQ SIZE_MAX

/* One script call of wb_entry_clean_many: a `clean_many` of up to
 * WB_ENTRY_CLEAN_GROUP keys of one shard, or one `forget`. Its requests
 * are a list in request order: first, then next[] of each. */
typedef struct clean_call_s {
    int forget;
    long name;   /* its shard's names (names_t index) */
    int64_t top; /* the floor candidate: the highest V of its cleans */
    size_t n, first, last;
} clean_call_t;

/* Groups req[0 .. n) into calls (at most n): each clean joins the open
 * clean_many call of its shard unless that is full or has the key already;
 * a forget closes its shard's open call and is a call of its own. So the
 * calls touching one shard run in request order. Returns how many calls;
 * *grp[i] / *pos[i] say where request i is. open: one per name, all -1. */
static size_t clean_group(const wb_entry_clean_req_t *req, size_t n, const long *name,
                          const uint32_t *hash, clean_call_t *calls, size_t *grp, size_t *pos,
                          size_t *next, long *open)
{
    size_t ncalls = 0;

    for (size_t i = 0; i < n; i++) {
        long nmi = name[i];
        clean_call_t *c = open[nmi] >= 0 ? &calls[open[nmi]] : NULL;

        if (c && (req[i].forget || c->n == WB_ENTRY_CLEAN_GROUP)) c = NULL;
        /* The keys of one shard share their first bytes: the hash first. */
        for (size_t k = c ? c->first : NO_REQ; c && k != NO_REQ; k = next[k])
            if (hash[k] == hash[i] && req[k].keylen == req[i].keylen &&
                memcmp(req[k].key, req[i].key, req[i].keylen) == 0)
                c = NULL;
        if (!c) {
            c = &calls[ncalls];
            *c = (clean_call_t){
                .forget = req[i].forget, .name = nmi, .first = NO_REQ, .last = NO_REQ};
            open[nmi] = req[i].forget ? -1 : (long)ncalls;
            ncalls++;
        }
        grp[i] = (size_t)(c - calls);
        pos[i] = c->n;
        next[i] = NO_REQ;
        if (c->last == NO_REQ)
            c->first = i;
        else
            next[c->last] = i;
        c->last = i;
        c->n++;
        if (!req[i].forget && req[i].version > c->top) c->top = req[i].version;
    }
    return ncalls;
}

/* Arguments (argv slots) and decimal numbers call c needs. */
static size_t clean_call_argc(const clean_call_t *c)
{
    return c->forget ? 4 : 3 + 4 * c->n;
}

static size_t clean_call_nnum(const clean_call_t *c)
{
    return c->forget ? 2 : 1 + 3 * c->n;
}

/* argv of call c into argv/argvlen (nums: clean_call_nnum of them).
 * clean_many: index, floor, keys..., F, then V, TTL, E per key; forget:
 * key, index, V, TTL. Returns argc. */
static int clean_call_args(const clean_call_t *c, const wb_entry_clean_req_t *req,
                           const size_t *next, const names_t *nm, const char **argv,
                           size_t *argvlen, char (*nums)[24])
{
    const wb_entry_clean_req_t *q = &req[c->first];
    const struct name_s *v = &nm->v[c->name];
    const char *names = nm->buf + v->off;
    int a = 0;

    if (c->forget) {
        argv[0] = q->key, argvlen[0] = q->keylen;
        argv[1] = names, argvlen[1] = v->idxlen;
        argv[2] = nums[0], argvlen[2] = num(nums[0], q->version);
        argv[3] = nums[1], argvlen[3] = num(nums[1], q->ttl_ms);
        return 4;
    }
    argv[a] = names, argvlen[a++] = v->idxlen;
    argv[a] = names, argvlen[a++] = v->len;
    for (size_t k = c->first; k != NO_REQ; k = next[k])
        argv[a] = req[k].key, argvlen[a++] = req[k].keylen;
    argv[a] = nums[0], argvlen[a++] = num(nums[0], c->top);
    size_t j = 1;
    for (size_t k = c->first; k != NO_REQ; k = next[k], j += 3) {
        q = &req[k];
        argv[a] = nums[j], argvlen[a++] = num(nums[j], q->version);
        argv[a] = nums[j + 1], argvlen[a++] = num(nums[j + 1], q->ttl_ms);
        argv[a] = nums[j + 2], argvlen[a++] = num(nums[j + 2], q->refused_version);
    }
    return a;
}

/* Sets res (zeroed) from the reply of its call: the call's error, the
 * forget's integer, or element pos of clean_many's array. */
static void clean_result(const redisReply *r, int forget, size_t pos, wb_entry_clean_res_t *res)
{
    memset(res, 0, sizeof(*res));
    if (item_status(r, &res->err, res->error) != WB_OK) return;
    if (!forget) {
        if (r->type != REDIS_REPLY_ARRAY || pos >= r->elements) {
            item_unexpected(&res->err, res->error);
            return;
        }
        r = r->element[pos];
    }
    if (clean_reply(r, res) != 0) res->err = WB_ERR_REDIS;
}

wb_err_t wb_entry_clean(wb_rc_t *rc, const wb_entry_clean_req_t *req, wb_entry_clean_res_t *res,
                        char *errstr, size_t errstr_size)
{
    wb_entry_clean_res_t got = {0};
    wb_err_t err;

    if (!req) {
        wb_set_err(errstr, errstr_size, "redis clean: no request");
        return WB_ERR_INVALID_ARG;
    }
    if ((err = wb_entry_clean_many(rc, req, 1, &got, errstr, errstr_size)) != WB_OK) return err;
    if (got.err != WB_OK) {
        wb_set_err(errstr, errstr_size, "redis script %s: %s",
                   req->forget ? "forget" : "clean_many", got.error);
        err = got.err;
    }
    if (err == WB_OK && res)
        *res = got;
    else
        wb_entry_clean_clear(&got);
    return err;
}

wb_err_t wb_entry_clean_many(wb_rc_t *rc, const wb_entry_clean_req_t *req, size_t n,
                             wb_entry_clean_res_t *res, char *errstr, size_t errstr_size)
{
    const size_t k = n ? n : 1;
    names_t nm;
    long *name = malloc(k * sizeof(*name)), *open = NULL;
    clean_call_t *calls = malloc(k * sizeof(*calls));
    size_t *grp = malloc(k * sizeof(*grp)), *pos = malloc(k * sizeof(*pos));
    size_t *next = malloc(k * sizeof(*next)), ncalls = 0, nargv = 0, nnum = 0;
    uint32_t *hash = malloc(k * sizeof(*hash));
    wb_script_call_t *sc = NULL;
    const char **argv = NULL;
    size_t *argvlen = NULL;
    char(*nums)[24] = NULL;
    redisReply **replies = NULL;
    wb_err_t err = WB_OK;
    int nm_ok = names_init(&nm, n) == 0;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis clean: invalid arguments");
        err = WB_ERR_INVALID_ARG;
        goto done;
    }
    if (!nm_ok || !name || !calls || !grp || !pos || !next || !hash) goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (bad_key(rc, req[i].key, req[i].keylen, errstr, errstr_size, "clean") ||
            (name[i] = names_of(&nm, req[i].dirty_index, req[i].key, req[i].keylen, errstr,
                                errstr_size)) < 0) {
            err = WB_ERR_INVALID_ARG;
            goto done;
        }
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t j = 0; j < req[i].keylen; j++)
            h = (h ^ (unsigned char)req[i].key[j]) * 16777619u;
        hash[i] = h;
    }
    if (!(open = malloc((nm.n ? nm.n : 1) * sizeof(*open)))) goto nomem;
    for (size_t i = 0; i < nm.n; i++)
        open[i] = -1;
    ncalls = clean_group(req, n, name, hash, calls, grp, pos, next, open);
    for (size_t c = 0; c < ncalls; c++) {
        nargv += clean_call_argc(&calls[c]);
        nnum += clean_call_nnum(&calls[c]);
    }
    sc = malloc((ncalls ? ncalls : 1) * sizeof(*sc));
    argv = malloc((nargv ? nargv : 1) * sizeof(*argv));
    argvlen = malloc((nargv ? nargv : 1) * sizeof(*argvlen));
    nums = malloc((nnum ? nnum : 1) * sizeof(*nums));
    replies = calloc(ncalls ? ncalls : 1, sizeof(*replies));
    if (!sc || !argv || !argvlen || !nums || !replies) goto nomem;
    nargv = nnum = 0;
    for (size_t c = 0; c < ncalls; c++) {
        const char **av = argv + nargv;
        size_t *al = argvlen + nargv;
        int argc = clean_call_args(&calls[c], req, next, &nm, av, al, nums + nnum);

        nargv += clean_call_argc(&calls[c]);
        nnum += clean_call_nnum(&calls[c]);
        sc[c] = calls[c].forget ? (wb_script_call_t){WB_ENTRY_SCRIPT_FORGET, 2, argc, av, al}
                                : (wb_script_call_t){WB_ENTRY_SCRIPT_CLEAN_MANY,
                                                     2 + (int)calls[c].n, argc, av, al};
    }
    if ((err = wb_scripts_pipeline(entry_set(), rc, sc, ncalls, replies, errstr, errstr_size)) !=
        WB_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        clean_result(replies[grp[i]], req[i].forget, pos[i], &res[i]);
    for (size_t c = 0; c < ncalls; c++)
        freeReplyObject(replies[c]);
    goto done;
nomem:
    wb_set_err(errstr, errstr_size, "redis clean: out of memory");
    err = WB_ERR_NOMEM;
done:
    names_free(&nm);
    free(name);
    free(open);
    free(calls);
    free(grp);
    free(pos);
    free(next);
    free(hash);
    free(sc);
    free(argv);
    free(argvlen);
    free(nums);
    free(replies);
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

static int bad_fill(wb_rc_t *rc, const wb_entry_fill_req_t *req, char *errstr, size_t errstr_size)
{
    if (!req) {
        wb_set_err(errstr, errstr_size, "redis fill: no request");
        return 1;
    }
    if (bad_key(rc, req->key, req->keylen, errstr, errstr_size, "fill")) return 1;
    if (!req->value && req->len > 0 && !req->is_deleted) {
        wb_set_err(errstr, errstr_size, "redis fill: no value");
        return 1;
    }
    return 0;
}

wb_err_t wb_entry_fill(wb_rc_t *rc, const wb_entry_fill_req_t *req, wb_entry_fill_res_t *res,
                       char *errstr, size_t errstr_size)
{
    const char *argv[6];
    size_t argvlen[6];
    char nums[2][24];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_fill(rc, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    fill_args(req, argv, argvlen, nums);
    err = call(rc, WB_ENTRY_SCRIPT_FILL, 1, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill", &v, errstr, errstr_size);
    if (err == WB_OK && res) {
        res->err = WB_OK;
        res->error[0] = '\0';
        res->code = (wb_entry_fill_t)v;
    }
    return err;
}

wb_err_t wb_entry_fill_many(wb_rc_t *rc, const wb_entry_fill_req_t *req, size_t n,
                            wb_entry_fill_res_t *res, char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (n > 0 && (!req || !res)) {
        wb_set_err(errstr, errstr_size, "redis fill: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_fill(rc, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 6, 2, "fill", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_FILL, 1, 6);
        fill_args(&req[i], m.argv + 6 * i, m.argvlen + 6 * i, m.num + 2 * i);
    }
    if ((err = many_run(&m, rc, n, errstr, errstr_size)) == WB_OK) {
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

wb_err_t wb_entry_fill_aside(wb_rc_t *rc, const wb_entry_aside_req_t *req, int *created,
                             char *errstr, size_t errstr_size)
{
    char ttlbuf[24];
    const char *argv[5];
    size_t argvlen[5];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (!req || bad_key(rc, req->key, req->keylen, errstr, errstr_size, "fill_aside") ||
        (!req->value && req->len > 0 && !req->is_negative))
        return WB_ERR_INVALID_ARG;
    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = req->value ? req->value : "", argvlen[1] = req->is_negative ? 0 : req->len;
    argv[2] = ttlbuf, argvlen[2] = num(ttlbuf, req->ttl_ms);
    argv[3] = req->is_negative ? "1" : "0", argvlen[3] = 1;
    argv[4] = str_or_empty(req->entity), argvlen[4] = strlen(argv[4]);
    err = call(rc, WB_ENTRY_SCRIPT_FILL_ASIDE, 1, 5, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "fill_aside", &v, errstr, errstr_size);
    if (err == WB_OK && created) *created = v == 1;
    return err;
}

/* ------------------------------------------------------- write-through */

wb_err_t wb_entry_version(wb_rc_t *rc, const char *key, size_t keylen, const char *dirty_index,
                          int64_t reserve_ttl_ms, int64_t *version, char *errstr,
                          size_t errstr_size)
{
    char ttlbuf[24];
    shard_names_t sn;
    const char *argv[3] = {key, sn.floor, ttlbuf};
    size_t argvlen[3];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (bad_key(rc, key, keylen, errstr, errstr_size, "version")) return WB_ERR_INVALID_ARG;
    if (shard_names(dirty_index, key, keylen, &sn, errstr, errstr_size) != 0)
        return WB_ERR_INVALID_ARG;
    argvlen[0] = keylen;
    argvlen[1] = strlen(sn.floor);
    argvlen[2] = num(ttlbuf, reserve_ttl_ms);
    err = call(rc, WB_ENTRY_SCRIPT_VERSION, 2, 3, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "version", &v, errstr, errstr_size);
    if (err == WB_OK && version) *version = v;
    return err;
}

wb_err_t wb_entry_through(wb_rc_t *rc, const wb_entry_through_req_t *req, int *applied,
                          char *errstr, size_t errstr_size)
{
    char vbuf[24];
    const char *argv[6];
    shard_names_t sn;
    size_t argvlen[6];
    redisReply *r = NULL;
    long long v = 0;
    wb_err_t err;

    if (!req || bad_key(rc, req->key, req->keylen, errstr, errstr_size, "through") ||
        (!req->value && req->len > 0 && !req->is_delete))
        return WB_ERR_INVALID_ARG;
    if (shard_names(req->dirty_index, req->key, req->keylen, &sn, errstr, errstr_size) != 0)
        return WB_ERR_INVALID_ARG;
    argv[0] = req->key, argvlen[0] = req->keylen;
    argv[1] = sn.idx, argvlen[1] = strlen(sn.idx);
    argv[2] = req->value ? req->value : "", argvlen[2] = req->is_delete ? 0 : req->len;
    argv[3] = vbuf, argvlen[3] = num(vbuf, req->version);
    argv[4] = req->is_delete ? "1" : "0", argvlen[4] = 1;
    argv[5] = str_or_empty(req->entity), argvlen[5] = strlen(argv[5]);
    err = call(rc, WB_ENTRY_SCRIPT_THROUGH, 2, 6, argv, argvlen, &r, errstr, errstr_size);
    if (err == WB_OK) err = int_reply(r, "through", &v, errstr, errstr_size);
    if (err == WB_OK && applied) *applied = v == 1;
    return err;
}

/* --------------------------------------------------------------- reads */

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

wb_err_t wb_entry_read(wb_rc_t *rc, const char *key, size_t keylen, wb_entry_t *entry, char *errstr,
                       size_t errstr_size)
{
    wb_entry_key_t k = {key, keylen};

    return wb_entry_read_many(rc, &k, 1, entry, errstr, errstr_size);
}

wb_err_t wb_entry_read_many(wb_rc_t *rc, const wb_entry_key_t *keys, size_t n, wb_entry_t *entries,
                            char *errstr, size_t errstr_size)
{
    static const char *fields[5] = {"v", "ver", "d", "wt", "del"};
    static const size_t fieldlen[5] = {1, 3, 1, 2, 3};
    size_t i;
    wb_rc_cmd_t *cmds = NULL;
    const char **argv = NULL;
    size_t *argvlen = NULL;
    redisReply **r = NULL;
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
        if (bad_key(rc, keys[i].key, keys[i].keylen, errstr, errstr_size, "get"))
            return WB_ERR_INVALID_ARG;
    if (n == 0) return WB_OK;
    /* per key: HMGET key v ver d wt del (7 args), PTTL key (2) */
    cmds = calloc(2 * n, sizeof(*cmds));
    argv = calloc(9 * n, sizeof(*argv));
    argvlen = calloc(9 * n, sizeof(*argvlen));
    r = calloc(2 * n, sizeof(*r));
    if (!cmds || !argv || !argvlen || !r) {
        wb_set_err(errstr, errstr_size, "redis get: out of memory");
        err = WB_ERR_NOMEM;
        goto done;
    }
    for (i = 0; i < n; i++) {
        const char **a = argv + 9 * i;
        size_t *l = argvlen + 9 * i;
        int slot = wb_rc_slot(keys[i].key, keys[i].keylen);

        a[0] = "HMGET", l[0] = 5;
        a[1] = keys[i].key, l[1] = keys[i].keylen;
        for (int f = 0; f < 5; f++)
            a[2 + f] = fields[f], l[2 + f] = fieldlen[f];
        a[7] = "PTTL", l[7] = 4;
        a[8] = keys[i].key, l[8] = keys[i].keylen;
        cmds[2 * i] = (wb_rc_cmd_t){slot, 7, a, l};
        cmds[2 * i + 1] = (wb_rc_cmd_t){slot, 2, a + 7, l + 7};
    }
    if ((err = wb_rc_pipeline(rc, cmds, 2 * n, r, errstr, errstr_size)) != WB_OK) goto done;
    for (i = 0; i < n; i++)
        if (err == WB_OK)
            err = read_parse(r[2 * i], r[2 * i + 1], &entries[i], errstr, errstr_size);
    for (i = 0; i < 2 * n; i++)
        freeReplyObject(r[i]);
    if (err != WB_OK)
        for (i = 0; i < n; i++)
            wb_entry_clear(&entries[i]);

done:
    free(cmds);
    free(argv);
    free(argvlen);
    free(r);
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

static int bad_get(wb_rc_t *rc, const wb_entry_get_req_t *req, char *errstr, size_t errstr_size)
{
    if (!req || !req->rr_key || !req->lock_key) {
        wb_set_err(errstr, errstr_size, "redis get: invalid arguments");
        return 1;
    }
    return bad_key(rc, req->key, req->keylen, errstr, errstr_size, "get");
}

wb_err_t wb_entry_get(wb_rc_t *rc, const wb_entry_get_req_t *req, wb_entry_get_res_t *res,
                      char *errstr, size_t errstr_size)
{
    const char *argv[8];
    size_t argvlen[8];
    char nums[4][24];
    redisReply *r = NULL;
    wb_err_t err;

    if (res) memset(res, 0, sizeof(*res));
    if (!res || bad_get(rc, req, errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    res->pttl = -1;
    get_args(req, argv, argvlen, nums);
    err = call(rc, WB_ENTRY_SCRIPT_GET, 3, 8, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    err = wb_entry_get_parse(r, res, errstr, errstr_size);
    freeReplyObject(r);
    return err;
}

wb_err_t wb_entry_get_many(wb_rc_t *rc, const wb_entry_get_req_t *req, size_t n,
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
        if (bad_get(rc, &req[i], errstr, errstr_size)) return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 8, 4, "get", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_GET, 3, 8);
        get_args(&req[i], m.argv + 8 * i, m.argvlen + 8 * i, m.num + 4 * i);
    }
    if ((err = many_run(&m, rc, n, errstr, errstr_size)) == WB_OK) {
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
static wb_err_t token_call(wb_rc_t *rc, wb_entry_script_t id, const char *key, const char *token,
                           const char *ms, int *yes, char *errstr, size_t errstr_size)
{
    const char *argv[3] = {key, token, ms};
    size_t argvlen[3];
    redisReply *r = NULL;
    wb_err_t err;

    if (yes) *yes = 0;
    if (!token ||
        bad_key(rc, key, key ? strlen(key) : 0, errstr, errstr_size, wb_entry_script_name(id)))
        return WB_ERR_INVALID_ARG;
    argvlen[0] = strlen(key);
    argvlen[1] = strlen(token);
    argvlen[2] = ms ? strlen(ms) : 0;
    err = call(rc, id, 1, ms ? 3 : 2, argv, argvlen, &r, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (yes) *yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return WB_OK;
}

wb_err_t wb_entry_release(wb_rc_t *rc, const char *key, const char *token, int *released,
                          char *errstr, size_t errstr_size)
{
    return token_call(rc, WB_ENTRY_SCRIPT_RELEASE, key, token, NULL, released, errstr, errstr_size);
}

wb_err_t wb_entry_release_many(wb_rc_t *rc, const wb_entry_key_t *keys, size_t n, const char *token,
                               char *errstr, size_t errstr_size)
{
    many_t m;
    wb_err_t err;

    if (!rc || !token || (n > 0 && !keys)) {
        wb_set_err(errstr, errstr_size, "redis release: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_key(rc, keys[i].key, keys[i].keylen, errstr, errstr_size, "release"))
            return WB_ERR_INVALID_ARG;
    if ((err = many_alloc(&m, n, 2, 0, "release", errstr, errstr_size)) != WB_OK) return err;
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_RELEASE, 1, 2);
        m.argv[2 * i] = keys[i].key, m.argvlen[2 * i] = keys[i].keylen;
        m.argv[2 * i + 1] = token, m.argvlen[2 * i + 1] = strlen(token);
    }
    if ((err = many_run(&m, rc, n, errstr, errstr_size)) == WB_OK)
        for (size_t i = 0; i < n; i++)
            freeReplyObject(m.replies[i]);
    many_free(&m);
    return err;
}

wb_err_t wb_entry_lease_renew(wb_rc_t *rc, const char *key, const char *token, int64_t ms,
                              int *renewed, char *errstr, size_t errstr_size)
{
    char msbuf[24];

    num(msbuf, ms);
    return token_call(rc, WB_ENTRY_SCRIPT_RENEW, key, token, msbuf, renewed, errstr, errstr_size);
}

wb_err_t wb_entry_lease_take(wb_rc_t *rc, const char *key, const char *token, int64_t ms,
                             int *taken, char *errstr, size_t errstr_size)
{
    char msbuf[24];
    const char *argv[6] = {"SET", key, token, "NX", "PX", msbuf};
    size_t argvlen[6];
    redisReply *r;
    wb_err_t err;

    if (taken) *taken = 0;
    if (!token || bad_key(rc, key, key ? strlen(key) : 0, errstr, errstr_size, "SET lease"))
        return WB_ERR_INVALID_ARG;
    argvlen[0] = 3, argvlen[1] = strlen(key), argvlen[2] = strlen(token);
    argvlen[3] = 2, argvlen[4] = 2, argvlen[5] = num(msbuf, ms);
    if ((err = wb_rc_command(rc, wb_rc_slot(key, argvlen[1]), 6, argv, argvlen, &r, errstr,
                             errstr_size)) != WB_OK)
        return err;
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

/* A member of a shard with its score, while merging shards. */
typedef struct scored_s {
    double score;
    const redisReply *m;
} scored_t;

static int scored_cmp(const void *a, const void *b)
{
    double x = ((const scored_t *)a)->score, y = ((const scored_t *)b)->score;
    return x < y ? -1 : x > y;
}

/* The same command on every shard's index (argv[1] is replaced per shard),
 * in one pipeline: replies[s] answers shard s; names holds the index names
 * (nshards * WB_ENTRY_KEY_MAX). */
static wb_err_t each_shard(wb_rc_t *rc, const char *dirty_index, int nshards, int argc,
                           const char **argv, const size_t *argvlen, redisReply **replies,
                           const char *what, char *errstr, size_t errstr_size)
{
    wb_rc_cmd_t *cmds = calloc((size_t)nshards, sizeof(*cmds));
    const char **av = calloc((size_t)nshards * (size_t)argc, sizeof(*av));
    size_t *al = calloc((size_t)nshards * (size_t)argc, sizeof(*al));
    char(*names)[WB_ENTRY_KEY_MAX] = calloc((size_t)nshards, sizeof(*names));
    wb_err_t err = WB_OK;

    if (!cmds || !av || !al || !names) {
        wb_set_err(errstr, errstr_size, "redis %s: out of memory", what);
        err = WB_ERR_NOMEM;
        goto done;
    }
    for (int sh = 0; sh < nshards; sh++) {
        const char **a = av + (size_t)sh * (size_t)argc;
        size_t *l = al + (size_t)sh * (size_t)argc;

        if (wb_entry_index_key(dirty_index, sh, names[sh], sizeof(names[sh])) != 0) {
            wb_set_err(errstr, errstr_size, "redis %s: dirty index name too long", what);
            err = WB_ERR_INVALID_ARG;
            goto done;
        }
        memcpy(a, argv, (size_t)argc * sizeof(*a));
        memcpy(l, argvlen, (size_t)argc * sizeof(*l));
        a[1] = names[sh], l[1] = strlen(names[sh]);
        cmds[sh] = (wb_rc_cmd_t){wb_rc_slot(a[1], l[1]), argc, a, l};
    }
    err = wb_rc_pipeline(rc, cmds, (size_t)nshards, replies, errstr, errstr_size);

done:
    free(cmds);
    free(av);
    free(al);
    free(names);
    return err;
}

static int bad_shards(int nshards, char *errstr, size_t errstr_size, const char *what)
{
    if (nshards >= 1 && nshards <= WB_ENTRY_SHARDS_MAX) return 0;
    wb_set_err(errstr, errstr_size, "redis %s: %d dirty-index shards (1 .. %d)", what, nshards,
               WB_ENTRY_SHARDS_MAX);
    return 1;
}

wb_err_t wb_entry_dirty_range(wb_rc_t *rc, const char *dirty_index, int nshards,
                              int64_t max_score_us, int limit, wb_entry_keys_t *out, char *errstr,
                              size_t errstr_size)
{
    char maxbuf[24], limbuf[24];
    const char *argv[8] = {"ZRANGEBYSCORE", "", "-inf", maxbuf, "WITHSCORES", "LIMIT", "0", limbuf};
    size_t argvlen[8] = {13, 0, 4, 0, 10, 5, 1, 0};
    redisReply **r = NULL;
    scored_t *all = NULL;
    size_t nall = 0, total = 0;
    wb_err_t err;

    if (out) memset(out, 0, sizeof(*out));
    if (!rc || !out || bad_shards(nshards, errstr, errstr_size, "ZRANGEBYSCORE")) {
        if (!rc || !out) wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    argvlen[3] = num(maxbuf, max_score_us);
    argvlen[7] = (size_t)snprintf(limbuf, sizeof(limbuf), "%d", limit);
    if (!(r = calloc((size_t)nshards, sizeof(*r)))) goto nomem;
    err = each_shard(rc, dirty_index, nshards, 8, argv, argvlen, r, "ZRANGEBYSCORE", errstr,
                     errstr_size);
    if (err != WB_OK) {
        free(r);
        return err;
    }
    for (int sh = 0; sh < nshards; sh++) {
        if (r[sh]->type != REDIS_REPLY_ARRAY || r[sh]->elements % 2) {
            wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: %s",
                       r[sh]->type == REDIS_REPLY_ERROR ? r[sh]->str : "unexpected reply");
            err = WB_ERR_REDIS;
            goto done;
        }
        for (size_t i = 0; i < r[sh]->elements; i++)
            if (r[sh]->element[i]->type != REDIS_REPLY_STRING) {
                wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: unexpected member type");
                err = WB_ERR_REDIS;
                goto done;
            }
        total += r[sh]->elements / 2;
    }
    /* The lowest scores of all shards, at most limit of them. */
    if (total > 0 && !(all = calloc(total, sizeof(*all)))) goto nomem;
    for (int sh = 0; sh < nshards; sh++)
        for (size_t i = 0; i + 1 < r[sh]->elements; i += 2)
            all[nall++] = (scored_t){strtod(r[sh]->element[i + 1]->str, NULL), r[sh]->element[i]};
    if (nall > 1) qsort(all, nall, sizeof(*all), scored_cmp); /* all is NULL when empty */
    if (limit >= 0 && nall > (size_t)limit) nall = (size_t)limit;
    if (nall > 0 && !(out->v = calloc(nall, sizeof(*out->v)))) goto nomem;
    for (size_t i = 0; i < nall; i++) {
        char *k = malloc(all[i].m->len + 1);
        if (!k) goto nomem;
        memcpy(k, all[i].m->str, all[i].m->len);
        k[all[i].m->len] = '\0';
        out->v[out->n++] = (wb_entry_key_t){k, all[i].m->len};
    }

done:
    for (int sh = 0; r && sh < nshards; sh++)
        if (r[sh]) freeReplyObject(r[sh]);
    free(r);
    free(all);
    if (err != WB_OK) wb_entry_keys_clear(out);
    return err;

nomem:
    wb_set_err(errstr, errstr_size, "redis ZRANGEBYSCORE: out of memory");
    err = WB_ERR_NOMEM;
    goto done;
}

wb_err_t wb_entry_dirty_stats(wb_rc_t *rc, const char *dirty_index, int nshards,
                              wb_entry_dirty_stats_t *out, char *errstr, size_t errstr_size)
{
    const char *card[2] = {"ZCARD", ""};
    size_t cardlen[2] = {5, 0};
    const char *first[5] = {"ZRANGE", "", "0", "0", "WITHSCORES"};
    size_t firstlen[5] = {6, 0, 1, 1, 10};
    const char *time[1] = {"TIME"};
    size_t timelen[1] = {4};
    redisReply **c = NULL, **f = NULL, *t = NULL;
    wb_err_t err;

    if (out) memset(out, 0, sizeof(*out));
    if (!rc || !out || bad_shards(nshards, errstr, errstr_size, "dirty index")) {
        if (!rc || !out) wb_set_err(errstr, errstr_size, "redis dirty index: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    c = calloc((size_t)nshards, sizeof(*c));
    f = calloc((size_t)nshards, sizeof(*f));
    if (!c || !f) {
        free(c);
        free(f);
        wb_set_err(errstr, errstr_size, "redis dirty index: out of memory");
        return WB_ERR_NOMEM;
    }
    /* TIME of any node: the clocks of a cluster's nodes agree to NTP. */
    if ((err = wb_rc_command(rc, -1, 1, time, timelen, &t, errstr, errstr_size)) != WB_OK ||
        (err = each_shard(rc, dirty_index, nshards, 2, card, cardlen, c, "ZCARD", errstr,
                          errstr_size)) != WB_OK ||
        (err = each_shard(rc, dirty_index, nshards, 5, first, firstlen, f, "ZRANGE", errstr,
                          errstr_size)) != WB_OK)
        goto done;
    if (t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
        wb_set_err(errstr, errstr_size, "redis TIME: unexpected reply");
        err = WB_ERR_REDIS;
        goto done;
    }
    out->now_us = reply_i64(t->element[0]) * 1000000 + reply_i64(t->element[1]);
    for (int sh = 0; sh < nshards; sh++) {
        const redisReply *m = f[sh];
        double score;

        if (c[sh]->type != REDIS_REPLY_INTEGER || m->type != REDIS_REPLY_ARRAY) {
            wb_set_err(errstr, errstr_size, "redis dirty index shard %d: %s", sh,
                       c[sh]->type == REDIS_REPLY_ERROR ? c[sh]->str
                       : m->type == REDIS_REPLY_ERROR   ? m->str
                                                        : "unexpected reply");
            err = WB_ERR_REDIS;
            goto done;
        }
        out->count += c[sh]->integer;
        if (m->elements != 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_STRING)
            continue;
        score = strtod(m->element[1]->str, NULL);
        if (out->has_oldest && score >= out->oldest_us) continue;
        out->has_oldest = 1;
        out->oldest_us = score;
        snprintf(out->oldest_key, sizeof(out->oldest_key), "%.*s", (int)m->element[0]->len,
                 m->element[0]->str);
    }

done:
    for (int sh = 0; sh < nshards; sh++) {
        if (c[sh]) freeReplyObject(c[sh]);
        if (f[sh]) freeReplyObject(f[sh]);
    }
    if (t) freeReplyObject(t);
    free(c);
    free(f);
    if (err != WB_OK) memset(out, 0, sizeof(*out));
    return err;
}

wb_err_t wb_entry_dirty_bump(wb_rc_t *rc, const char *dirty_index, int64_t score_us,
                             const wb_entry_key_t *keys, size_t n, char *errstr, size_t errstr_size)
{
    char score[24];
    size_t scorelen = num(score, score_us);
    shard_names_t *sns = NULL;
    wb_rc_cmd_t *cmds = NULL;
    const char **argv = NULL;
    size_t *argvlen = NULL;
    redisReply **r = NULL;
    wb_err_t err = WB_OK;

    if (!rc || (n > 0 && !keys)) {
        wb_set_err(errstr, errstr_size, "redis ZADD: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (n == 0) return WB_OK;
    sns = calloc(n, sizeof(*sns));
    cmds = calloc(n, sizeof(*cmds));
    argv = calloc(6 * n, sizeof(*argv));
    argvlen = calloc(6 * n, sizeof(*argvlen));
    r = calloc(n, sizeof(*r));
    if (!sns || !cmds || !argv || !argvlen || !r) {
        wb_set_err(errstr, errstr_size, "redis ZADD: out of memory");
        err = WB_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char **a = argv + 6 * i;
        size_t *l = argvlen + 6 * i;

        if (shard_names(dirty_index, keys[i].key, keys[i].keylen, &sns[i], errstr, errstr_size)) {
            err = WB_ERR_INVALID_ARG;
            goto done;
        }
        a[0] = "ZADD", l[0] = 4;
        a[1] = sns[i].idx, l[1] = strlen(sns[i].idx);
        a[2] = "XX", l[2] = 2;
        a[3] = "GT", l[3] = 2;
        a[4] = score, l[4] = scorelen;
        a[5] = keys[i].key, l[5] = keys[i].keylen;
        cmds[i] = (wb_rc_cmd_t){wb_rc_slot(a[1], l[1]), 6, a, l};
    }
    if ((err = wb_rc_pipeline(rc, cmds, n, r, errstr, errstr_size)) == WB_OK)
        for (size_t i = 0; i < n; i++)
            freeReplyObject(r[i]);

done:
    free(sns);
    free(cmds);
    free(argv);
    free(argvlen);
    free(r);
    return err;
}

void wb_entry_check_clear(wb_entry_check_res_t *res)
{
    if (!res) return;
    free(res->value);
    memset(res, 0, sizeof(*res));
}

wb_err_t wb_entry_sweep_check_many(wb_rc_t *rc, const char *dirty_index, const wb_entry_key_t *keys,
                                   size_t n, wb_entry_check_res_t *res, char *errstr,
                                   size_t errstr_size)
{
    shard_names_t *sns;
    many_t m;
    wb_err_t err;

    if (n > 0 && (!keys || !res)) {
        wb_set_err(errstr, errstr_size, "redis sweep_check: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (!(sns = calloc(n ? n : 1, sizeof(*sns)))) {
        wb_set_err(errstr, errstr_size, "redis sweep_check: out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (bad_key(rc, keys[i].key, keys[i].keylen, errstr, errstr_size, "sweep_check") ||
            shard_names(dirty_index, keys[i].key, keys[i].keylen, &sns[i], errstr, errstr_size)) {
            free(sns);
            return WB_ERR_INVALID_ARG;
        }
    if ((err = many_alloc(&m, n, 2, 0, "sweep_check", errstr, errstr_size)) != WB_OK) {
        free(sns);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        many_set(&m, i, WB_ENTRY_SCRIPT_SWEEP_CHECK, 2, 2);
        m.argv[2 * i] = keys[i].key, m.argvlen[2 * i] = keys[i].keylen;
        m.argv[2 * i + 1] = sns[i].idx, m.argvlen[2 * i + 1] = strlen(sns[i].idx);
    }
    if ((err = many_run(&m, rc, n, errstr, errstr_size)) == WB_OK) {
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
    free(sns);
    return err;
}

/* -------------------------------------------------------------- layout */

wb_err_t wb_entry_layout_check(wb_rc_t *rc, const char *dirty_index, int nshards, char *errstr,
                               size_t errstr_size)
{
    const char *idx = index_or_default(dirty_index);
    char oldfloor[WB_ENTRY_KEY_MAX], layout[WB_ENTRY_KEY_MAX], want[32];
    const char *ex1[2] = {"EXISTS", idx}, *ex2[2] = {"EXISTS", oldfloor};
    const char *setnx[5] = {"SET", layout, want, "NX", "GET"};
    size_t l1[2], l2[2], l3[5];
    wb_rc_cmd_t cmds[3];
    redisReply *r[3] = {NULL, NULL, NULL};
    wb_err_t err;

    if (!rc || nshards < 1 || nshards > WB_ENTRY_SHARDS_MAX ||
        snprintf(oldfloor, sizeof(oldfloor), "%s" WB_ENTRY_FLOOR_SUFFIX, idx) >=
            (int)sizeof(oldfloor) ||
        snprintf(layout, sizeof(layout), "%s" WB_ENTRY_LAYOUT_SUFFIX, idx) >= (int)sizeof(layout)) {
        wb_set_err(errstr, errstr_size, "redis layout check: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    snprintf(want, sizeof(want), "shards=%d", nshards);
    l1[0] = l2[0] = 6, l1[1] = strlen(idx), l2[1] = strlen(oldfloor);
    l3[0] = 3, l3[1] = strlen(layout), l3[2] = strlen(want), l3[3] = 2, l3[4] = 3;
    cmds[0] = (wb_rc_cmd_t){wb_rc_slot(idx, l1[1]), 2, ex1, l1};
    cmds[1] = (wb_rc_cmd_t){wb_rc_slot(oldfloor, l2[1]), 2, ex2, l2};
    cmds[2] = (wb_rc_cmd_t){wb_rc_slot(layout, l3[1]), 5, setnx, l3};
    if ((err = wb_rc_pipeline(rc, cmds, 3, r, errstr, errstr_size)) != WB_OK) return err;
    if (r[0]->type != REDIS_REPLY_INTEGER || r[1]->type != REDIS_REPLY_INTEGER ||
        (r[2]->type != REDIS_REPLY_NIL && r[2]->type != REDIS_REPLY_STRING)) {
        wb_set_err(errstr, errstr_size, "redis layout check: %s",
                   r[2]->type == REDIS_REPLY_ERROR ? r[2]->str : "unexpected reply");
        err = WB_ERR_REDIS;
    } else if (r[0]->integer > 0 || r[1]->integer > 0) {
        wb_set_err(errstr, errstr_size,
                   "redis holds a cache of the old layout (%s \"%s\" exists: one dirty index for "
                   "all keys, keys without a shard tag), which this version cannot read: drain it "
                   "with the old version (keep the flusher running until its dirty index is "
                   "empty: wbctl status shows 0 dirty entries), then flush it (FLUSHALL, on every "
                   "master of a cluster) and start again",
                   r[0]->integer > 0 ? "the dirty index" : "the version floor",
                   r[0]->integer > 0 ? idx : oldfloor);
        err = WB_ERR_REDIS;
    } else if (r[2]->type == REDIS_REPLY_STRING &&
               (r[2]->len != strlen(want) || memcmp(r[2]->str, want, r[2]->len) != 0)) {
        wb_set_err(errstr, errstr_size,
                   "redis.dirty_shards is %d, but this cache was written with %.*s (key %s): set "
                   "redis.dirty_shards back, or drain the cache (wbctl status shows 0 dirty "
                   "entries), flush it (FLUSHALL) and start again",
                   nshards, (int)r[2]->len, r[2]->str, layout);
        err = WB_ERR_REDIS;
    }
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return err;
}

wb_err_t wb_entry_open(const wb_config_t *conf, wb_rc_t **out, char *errstr, size_t errstr_size)
{
    wb_err_t err = wb_rc_connect(conf, out, errstr, errstr_size);

    if (err == WB_OK &&
        ((err = wb_entry_layout_check(*out, conf->redis.dirty_index, conf->redis.dirty_shards,
                                      errstr, errstr_size)) != WB_OK ||
         (err = wb_entry_load(*out, errstr, errstr_size)) != WB_OK)) {
        wb_rc_free(*out);
        *out = NULL;
    }
    return err;
}
