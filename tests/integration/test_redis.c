/* test_redis.c — the cache entry (wb_entry), its script runner (wb_scripts) and wb_redis against
 * a real Redis (invariants 1, 2, 8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "wb_config.h"
#include "wb_entry.h"
#include "wb_redis.h"
#include "test_services.h"
#include "wb_scripts.h"

#define TTL_MS 60000

static wb_config_t *conf;
static wb_rc_t *ctx;
static char prefix[64];     /* every key of this run has it after the shard tag */
static char tag[16];        /* "{N}": every key of this run is in shard N */
static char dirty[96];      /* this run's own dirty index (its base name) */
static char shard_idx[112]; /* shard N of it */
static char floor_key[120]; /* shard N's version floor */
static char errstr[1024];

static const char *config_path(void)
{
    const char *p = getenv("WB_CONFIG");

    return p && p[0] ? p : WB_SOURCE_DIR "/config/wbcache.yaml";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A key unique to this run and test. */
static const char *key(const char *name)
{
    static char buf[4][160];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s%s%s", tag, prefix, name);
    return buf[i];
}

static redisReply *cmd(const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = wb_test_redisv(ctx, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* A command on the master of this run's shard (SCRIPT FLUSH, LOAD, EXISTS:
 * the node the run's keys live on). */
static redisReply *node_cmd(const char *fmt, ...)
{
    redisContext *node = wb_rc_node(ctx, wb_rc_slot(tag, strlen(tag)), errstr, sizeof(errstr));
    redisReply *r;
    va_list ap;

    assert_non_null(node);
    va_start(ap, fmt);
    r = redisvCommand(node, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static long long cmd_int(const char *fmt, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, fmt);
    r = wb_test_redisv(ctx, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* HGET as a decimal number; -1 if the field is missing. */
static int64_t hget_i64(const char *k, const char *field)
{
    redisReply *r = cmd("HGET %s %s", k, field);
    int64_t v = -1;

    if (r->type == REDIS_REPLY_STRING) v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static int64_t zscore(const char *k)
{
    redisReply *r = cmd("ZSCORE %s %s", shard_idx, k);
    int64_t v = -1;

    if (r->type == REDIS_REPLY_STRING) v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* The run's shard floor; -1 if it is not set. */
static int64_t hget_floor(void)
{
    redisReply *r = cmd("GET %s", floor_key);
    int64_t v = -1;

    if (r->type == REDIS_REPLY_STRING) v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static int64_t redis_time_us(void)
{
    redisReply *r = cmd("TIME");
    int64_t v;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    v = strtoll(r->element[0]->str, NULL, 10) * 1000000 + strtoll(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* The typed calls in the shape the tests use: this run's connection and
 * errstr, the request's fields as arguments. */
static wb_err_t put_raw(const char *k, size_t klen, const void *v, size_t vlen, int is_delete,
                        const char *idx, int64_t *ver, int64_t *wt)
{
    wb_entry_put_req_t req = {.key = k,
                              .keylen = klen,
                              .value = v,
                              .len = vlen,
                              .is_delete = is_delete,
                              .dirty_index = idx};
    wb_entry_put_res_t res;
    wb_err_t err = wb_entry_put(ctx, &req, &res, errstr, sizeof(errstr));

    if (err == WB_OK && ver) *ver = res.version;
    if (err == WB_OK && wt) *wt = res.time_us;
    return err;
}

static wb_err_t settle(const char *k, size_t klen, const char *idx, int64_t version, int64_t ttl_ms,
                       int forget, int *code)
{
    wb_entry_clean_req_t req = {.key = k,
                                .keylen = klen,
                                .dirty_index = idx,
                                .version = version,
                                .ttl_ms = ttl_ms,
                                .forget = forget};
    wb_entry_clean_res_t res;
    wb_err_t err = wb_entry_clean(ctx, &req, &res, errstr, sizeof(errstr));

    if (err == WB_OK && code) *code = res.code;
    if (err == WB_OK) wb_entry_clean_clear(&res);
    return err;
}

static wb_err_t clean(const char *k, size_t klen, const char *idx, int64_t version, int64_t ttl_ms,
                      wb_entry_clean_t *res)
{
    int code = -1;
    wb_err_t err = settle(k, klen, idx, version, ttl_ms, 0, &code);

    if (err == WB_OK && res) *res = (wb_entry_clean_t)code;
    return err;
}

static wb_err_t fill(const char *k, size_t klen, const void *v, size_t vlen, int64_t version,
                     int64_t ttl_ms, int is_deleted, wb_entry_fill_t *res)
{
    wb_entry_fill_req_t req = {.key = k,
                               .keylen = klen,
                               .value = v,
                               .len = vlen,
                               .version = version,
                               .ttl_ms = ttl_ms,
                               .is_deleted = is_deleted};
    wb_entry_fill_res_t got;
    wb_err_t err = wb_entry_fill(ctx, &req, &got, errstr, sizeof(errstr));

    if (err == WB_OK && res) *res = got.code;
    return err;
}

static wb_err_t fill_aside(const char *k, size_t klen, const void *v, size_t vlen, int64_t ttl_ms,
                           int is_negative, int *created)
{
    wb_entry_aside_req_t req = {.key = k,
                                .keylen = klen,
                                .value = v,
                                .len = vlen,
                                .ttl_ms = ttl_ms,
                                .is_negative = is_negative};

    return wb_entry_fill_aside(ctx, &req, created, errstr, sizeof(errstr));
}

static wb_err_t through(const char *k, size_t klen, const char *idx, const void *v, size_t vlen,
                        int64_t version, int is_delete, int *applied)
{
    wb_entry_through_req_t req = {.key = k,
                                  .keylen = klen,
                                  .dirty_index = idx,
                                  .value = v,
                                  .len = vlen,
                                  .version = version,
                                  .is_delete = is_delete};

    return wb_entry_through(ctx, &req, applied, errstr, sizeof(errstr));
}

static int64_t put(const char *k, const char *v, int is_delete)
{
    int64_t ver = 0, wt = 0;

    assert_int_equal(put_raw(k, strlen(k), v, v ? strlen(v) : 0, is_delete, dirty, &ver, &wt),
                     WB_OK);
    assert_true(ver >= wt);
    return ver;
}

static void get(const char *k, wb_entry_t *e)
{
    assert_int_equal(wb_entry_read(ctx, k, strlen(k), e, errstr, sizeof(errstr)), WB_OK);
}

static int setup(void **state)
{
    wb_err_t err = wb_config_load(config_path(), &conf, errstr, sizeof(errstr));

    if (err != WB_OK) {
        fprintf(stderr, "config %s: %s\n", config_path(), errstr);
        return -1;
    }
    if (wb_entry_open(conf, &ctx, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    snprintf(prefix, sizeof(prefix), "wbtest:redis:%ld:%lld:", (long)getpid(),
             (long long)time(NULL));
    snprintf(dirty, sizeof(dirty), "%sdirty", prefix);
    {
        int shard = wb_entry_shard_of(prefix, strlen(prefix), conf->redis.dirty_shards);

        snprintf(tag, sizeof(tag), "{%d}", shard);
        wb_entry_index_key(dirty, shard, shard_idx, sizeof(shard_idx));
        wb_entry_floor_key(dirty, shard, floor_key, sizeof(floor_key));
    }
    return 0;
}

static int teardown(void **state)
{
    /* Drop this run's keys; other users of the shared server are untouched. */
    if (ctx) {
        char match[96];

        snprintf(match, sizeof(match), "*%s*", prefix);
        wb_test_redis_del_matching(ctx, match);
        wb_rc_free(ctx);
    }
    wb_config_destroy(conf);
    return 0;
}

/* Invariant 1: versions strictly increase and are never below Redis TIME;
 * invariant 2: the entry is dirty, pinned (no TTL) and indexed at the wt
 * of the write that first made it dirty (issue 14 item 3: rewrites keep
 * that score, so a hot key is still swept). */
static void test_put_versions_increase(void **state)
{
    const char *k = key("inc");
    int64_t prev = 0, first_wt = 0;
    int i;

    for (i = 0; i < 500; i++) {
        int64_t before = redis_time_us(), ver = 0, wt = 0;
        char val[32];

        snprintf(val, sizeof(val), "value-%d", i);
        assert_int_equal(put_raw(k, strlen(k), val, strlen(val), 0, dirty, &ver, &wt), WB_OK);
        assert_true(ver > prev);
        assert_true(ver >= before);
        assert_true(wt >= before);
        prev = ver;
        if (i == 0) first_wt = wt;
        if (i % 100 == 0 || i == 499) {
            wb_entry_t e;

            get(k, &e);
            assert_true(e.found);
            assert_true(e.dirty);
            assert_false(e.deleted);
            assert_int_equal(e.version, ver);
            assert_int_equal(e.write_us, wt);
            assert_int_equal(e.pttl_ms, -1);
            assert_string_equal(e.value, val);
            assert_int_equal(zscore(k), first_wt);
            wb_entry_clear(&e);
        }
    }
}

/* The time floor: after the key vanished (eviction, data loss) the next
 * version is still above the last one. */
static void test_version_after_key_lost(void **state)
{
    const char *k = key("lost");
    int64_t last = 0;
    int i;

    for (i = 0; i < 50; i++) {
        int64_t v = put(k, "x", 0);

        assert_true(v > last);
        last = v;
        assert_int_equal(cmd_int("DEL %s", k), 1);
    }
    /* A version far ahead of the clock (a burst or a clock step back) is
     * still followed by +1, not by the smaller clock value. */
    freeReplyObject(cmd("HSET %s ver 4000000000000000", k));
    assert_int_equal(put(k, "y", 0), 4000000000000001LL);
}

/* Versions near 2^53 (far beyond µs since the epoch) stay exact integers. */
static void test_version_precision(void **state)
{
    const char *k = key("precision");
    int64_t big = (INT64_C(1) << 53) - 10;

    freeReplyObject(cmd("HSET %s ver %lld", k, (long long)big));
    assert_int_equal(put(k, "a", 0), big + 1);
    assert_int_equal(put(k, "b", 0), big + 2);
    assert_int_equal(hget_i64(k, "ver"), big + 2);
}

static void test_delete_is_dirty_tombstone(void **state)
{
    const char *k = key("del");
    wb_entry_t e;
    int64_t v1 = put(k, "alive", 0), first = hget_i64(k, "wt"), v2 = put(k, "ignored", 1);

    assert_true(v2 > v1);
    get(k, &e);
    assert_true(e.found);
    assert_true(e.deleted);
    assert_true(e.dirty);
    assert_int_equal(e.value_len, 0);
    assert_int_equal(e.pttl_ms, -1);
    assert_int_equal(zscore(k), first); /* dirty since the first write */
    wb_entry_clear(&e);
}

/* Invariant 2: clean only the committed version, and only then a TTL. */
static void test_clean(void **state)
{
    const char *k = key("clean");
    wb_entry_clean_t res;
    wb_entry_t e;
    int64_t v1, v2, wt2;

    v1 = put(k, "one", 0);
    assert_int_equal(clean(k, strlen(k), dirty, v1, TTL_MS, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_CLEANED);
    get(k, &e);
    assert_true(e.found);
    assert_false(e.dirty);
    assert_true(e.pttl_ms > 0 && e.pttl_ms <= TTL_MS);
    assert_string_equal(e.value, "one");
    wb_entry_clear(&e);
    assert_int_equal(zscore(k), -1);

    /* Duplicate delivery of the same commit changes nothing. */
    assert_int_equal(clean(k, strlen(k), dirty, v1, 5, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_ALREADY);
    assert_true(cmd_int("PTTL %s", k) > 5);

    /* A newer write arrived before the flusher committed the older one. */
    v1 = put(k, "two", 0);
    int64_t wt1 = hget_i64(k, "wt");
    assert_int_equal(put_raw(k, strlen(k), "three", 5, 0, dirty, &v2, &wt2), WB_OK);
    assert_int_equal(clean(k, strlen(k), dirty, v1, TTL_MS, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_NEWER);
    get(k, &e);
    assert_true(e.dirty);
    assert_int_equal(e.version, v2);
    assert_int_equal(e.pttl_ms, -1);
    assert_string_equal(e.value, "three");
    wb_entry_clear(&e);
    assert_int_equal(zscore(k), wt1); /* dirty since "two", never clean in between */

    /* Then the newer one is committed. */
    assert_int_equal(clean(k, strlen(k), dirty, v2, TTL_MS, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_CLEANED);
    assert_int_equal(zscore(k), -1);
}

static void test_clean_gone_and_stale(void **state)
{
    const char *k = key("gone"), *s = key("stale");
    wb_entry_clean_t res;
    wb_entry_fill_t fres;
    wb_entry_t e;
    int64_t v;

    /* The entry vanished (Redis lost it): the index member goes too, and
     * the committed version stays as memory in a value-less hash, which
     * reads as a miss. */
    v = put(k, "x", 0);
    assert_int_equal(cmd_int("DEL %s", k), 1);
    assert_int_equal(clean(k, strlen(k), dirty, v, TTL_MS, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_GONE);
    assert_int_equal(zscore(k), -1);
    get(k, &e);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(hget_i64(k, "ver"), v);
    assert_int_equal(cmd_int("HEXISTS %s v", k), 0);
    assert_true(cmd_int("PTTL %s", k) > 0);
    /* A lagging read-through fill of an older row cannot go back in time;
     * the committed row itself fills. */
    assert_int_equal(fill(k, strlen(k), "older", 5, v - 1, TTL_MS, 0, &fres), WB_OK);
    assert_int_equal(fres, WB_ENTRY_FILL_SKIPPED_NEWER);
    get(k, &e);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(fill(k, strlen(k), "x", 1, v, TTL_MS, 0, &fres), WB_OK);
    assert_int_equal(fres, WB_ENTRY_FILL_CREATED);
    get(k, &e);
    assert_true(e.found);
    assert_int_equal(e.version, v);
    wb_entry_clear(&e);
    /* An older clean of a key that is gone does not lower the memory. */
    assert_int_equal(cmd_int("DEL %s", k), 1);
    assert_int_equal(clean(k, strlen(k), dirty, v, 0, &res), WB_OK);
    assert_int_equal(clean(k, strlen(k), dirty, v - 5, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_GONE);
    assert_int_equal(hget_i64(k, "ver"), v);
    assert_true(cmd_int("PTTL %s", k) > 0); /* no-TTL entity: bounded memory all the same */

    /* PostgreSQL committed a version newer than the cache holds (Redis came
     * back from an old snapshot): the stale value is dropped, its version
     * remembered, and the next write is above both. */
    v = put(s, "old", 0);
    assert_int_equal(clean(s, strlen(s), dirty, v + 1000, TTL_MS, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_CLEAN_STALE);
    get(s, &e);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(zscore(s), -1);
    assert_int_equal(hget_i64(s, "ver"), v + 1000);
    assert_true(cmd_int("PTTL %s", s) > 0);
    assert_true(put(s, "new", 0) > v);
}

/* The forget script's reply (1 forgotten, 0 untouched). */
static long long forget(const char *k, int64_t version, int64_t ttl_ms)
{
    int code = -1;

    assert_int_equal(settle(k, strlen(k), dirty, version, ttl_ms, 1, &code), WB_OK);
    return code;
}

/* Poison must not loop: the flusher forgets a dead-lettered write only if
 * the entry still holds exactly that version, dirty. The entry leaves the
 * dirty index (the sweeper never re-publishes it), reads miss and fill
 * from PostgreSQL's older row, and later writes stay above the poison. */
static void test_forget(void **state)
{
    const char *k = key("forget"), *n = key("forget-newer"), *c = key("forget-clean");
    wb_entry_fill_t fres;
    wb_entry_clean_t cres;
    wb_entry_t e;
    int64_t v1, v2, v3;

    /* The poison write V2 sits on top of an older write V1. */
    v1 = put(k, "good", 0);
    v2 = put(k, "{not json", 0);
    assert_int_equal(forget(k, v1, TTL_MS), 0); /* not the version it holds */
    assert_int_equal(forget(k, v2 + 1, TTL_MS), 0);
    get(k, &e);
    assert_true(e.found && e.dirty);
    wb_entry_clear(&e);
    assert_int_equal(forget(k, v2, TTL_MS), 1);
    get(k, &e);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(zscore(k), -1);
    assert_int_equal(hget_i64(k, "rv"), v2);
    assert_int_equal(hget_i64(k, "ver"), -1);
    assert_true(cmd_int("PTTL %s", k) > TTL_MS - 5000);
    /* Done once; a second delivery changes nothing. */
    assert_int_equal(forget(k, v2, TTL_MS), 0);
    /* Reads fall back to PostgreSQL: the older row V1 fills the cache. */
    assert_int_equal(fill(k, strlen(k), "good", 4, v1, TTL_MS, 0, &fres), WB_OK);
    assert_int_equal(fres, WB_ENTRY_FILL_CREATED);
    get(k, &e);
    assert_true(e.found && !e.dirty);
    assert_int_equal(e.version, v1);
    assert_string_equal(e.value, "good");
    wb_entry_clear(&e);
    /* The next write is still above the poison version. */
    assert_true(put(k, "next", 0) > v2);

    /* A newer write after the poison one is left alone, dirty and indexed. */
    v2 = put(n, "[1,]", 0);
    v3 = put(n, "[1]", 0);
    assert_int_equal(forget(n, v2, TTL_MS), 0);
    get(n, &e);
    assert_true(e.found && e.dirty);
    assert_int_equal(e.version, v3);
    wb_entry_clear(&e);
    assert_true(zscore(n) > 0);

    /* A clean entry at that version (PostgreSQL holds it) is left alone. */
    v1 = put(c, "x", 0);
    assert_int_equal(clean(c, strlen(c), dirty, v1, TTL_MS, &cres), WB_OK);
    assert_int_equal(forget(c, v1, TTL_MS), 0);
    get(c, &e);
    assert_true(e.found && !e.dirty);
    wb_entry_clear(&e);

    /* No entry: nothing happens; no TTL given: the memory still outlives V. */
    assert_int_equal(forget(key("forget-none"), 5, TTL_MS), 0);
    assert_int_equal(cmd_int("EXISTS %s", key("forget-none")), 0);
    v1 = put(c, "y", 0);
    assert_int_equal(forget(c, v1, 0), 1);
    assert_true(cmd_int("PTTL %s", c) > 0);
    assert_true(put(c, "z", 0) > v1);
}

/* Invariant 8: a fill never goes back in time and never touches a dirty entry. */
static void test_fill(void **state)
{
    const char *k = key("fill");
    wb_entry_fill_t res;
    wb_entry_t e;
    int64_t v;

    assert_int_equal(fill(k, strlen(k), "db-100", 6, 100, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_CREATED);
    get(k, &e);
    assert_true(e.found);
    assert_false(e.dirty);
    assert_int_equal(e.version, 100);
    assert_true(e.pttl_ms > 0 && e.pttl_ms <= TTL_MS);
    wb_entry_clear(&e);

    /* Same version: only the TTL is extended, never shortened. */
    assert_int_equal(cmd_int("PEXPIRE %s 1000", k), 1);
    assert_int_equal(fill(k, strlen(k), "other", 5, 100, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_EXTENDED);
    assert_true(cmd_int("PTTL %s", k) > 1000);
    assert_int_equal(fill(k, strlen(k), "other", 5, 100, 10, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_EXTENDED);
    assert_true(cmd_int("PTTL %s", k) > 1000);
    get(k, &e);
    assert_string_equal(e.value, "db-100");
    wb_entry_clear(&e);

    /* Older: skipped. Newer and clean: replaced. */
    assert_int_equal(fill(k, strlen(k), "db-99", 5, 99, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_SKIPPED_NEWER);
    assert_int_equal(fill(k, strlen(k), "db-200", 6, 200, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_REPLACED);
    get(k, &e);
    assert_string_equal(e.value, "db-200");
    assert_int_equal(e.version, 200);
    wb_entry_clear(&e);

    /* Dirty: untouched whatever the version, and stays pinned. */
    v = put(k, "dirty", 0);
    assert_int_equal(fill(k, strlen(k), "db-future", 9, v + 1000000, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_SKIPPED_DIRTY);
    assert_int_equal(fill(k, strlen(k), "db-same", 7, v, TTL_MS, 0, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_SKIPPED_DIRTY);
    get(k, &e);
    assert_string_equal(e.value, "dirty");
    assert_true(e.dirty);
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);

    /* A soft-deleted row fills a clean tombstone. */
    k = key("fill-del");
    assert_int_equal(fill(k, strlen(k), "ignored", 7, 300, TTL_MS, 1, &res), WB_OK);
    assert_int_equal(res, WB_ENTRY_FILL_CREATED);
    get(k, &e);
    assert_true(e.found && e.deleted && !e.dirty);
    assert_int_equal(e.value_len, 0);
    wb_entry_clear(&e);
}

/* wb_entry_get_many: one pipeline answers each key on its own (a hit with
 * its value, a miss that took its lock, a miss whose lock another holder
 * has); wb_entry_release_many drops only the locks still ours. */
static void test_get_many_and_release_many(void **state)
{
    char k[3][160], rr[3][512], lock[3][512];
    wb_entry_get_req_t req[3];
    wb_entry_get_res_t res[3];
    wb_entry_key_t locks[3];
    int64_t v;

    for (int i = 0; i < 3; i++) {
        char name[16];

        snprintf(name, sizeof(name), "gm%d", i);
        snprintf(k[i], sizeof(k[i]), "%s", key(name));
        /* Side keys "{N}wb:<kind>:<prefix + id>": in the key's slot. */
        size_t tl = wb_entry_key_tag(k[i], strlen(k[i]), NULL);
        snprintf(rr[i], sizeof(rr[i]), "%.*swb:rr:%s", (int)tl, k[i], k[i] + tl);
        snprintf(lock[i], sizeof(lock[i]), "%.*swb:lock:%s", (int)tl, k[i], k[i] + tl);
        req[i] = (wb_entry_get_req_t){.key = k[i],
                                      .keylen = strlen(k[i]),
                                      .rr_key = rr[i],
                                      .lock_key = lock[i],
                                      .ttl_ms = TTL_MS,
                                      .lock_token = "tok",
                                      .lock_ttl_ms = 5000};
        locks[i] = (wb_entry_key_t){lock[i], strlen(lock[i])};
    }
    v = put(k[0], "hello", 0);
    freeReplyObject(cmd("SET %s other PX 5000", lock[2]));
    assert_int_equal(wb_entry_get_many(ctx, req, 3, res, errstr, sizeof(errstr)), WB_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].err, WB_OK);
    assert_true(res[0].hit && res[0].dirty && !res[0].deleted);
    assert_string_equal(res[0].value, "hello");
    assert_int_equal(res[0].version, v);
    assert_true(!res[1].hit && res[1].locked);
    assert_true(!res[2].hit && !res[2].locked);
    for (int i = 0; i < 3; i++)
        wb_entry_get_clear(&res[i]);

    assert_int_equal(wb_entry_release_many(ctx, locks + 1, 2, "tok", errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(cmd_int("EXISTS %s", lock[1]), 0);
    assert_int_equal(cmd_int("EXISTS %s", lock[2]), 1); /* not ours */
    freeReplyObject(cmd("DEL %s", lock[2]));
    assert_int_equal(wb_entry_get_many(ctx, req, 0, NULL, errstr, sizeof(errstr)), WB_OK);
    req[1].rr_key = NULL;
    assert_int_equal(wb_entry_get_many(ctx, req, 3, res, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
}

static void test_fill_aside(void **state)
{
    const char *k = key("aside");
    wb_entry_t e;
    int created = -1;

    assert_int_equal(fill_aside(k, strlen(k), "loaded", 6, TTL_MS, 0, &created), WB_OK);
    assert_int_equal(created, 1);
    get(k, &e);
    assert_true(e.found && !e.dirty && !e.deleted);
    assert_int_equal(e.version, 0);
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);

    assert_int_equal(fill_aside(k, strlen(k), "second", 6, TTL_MS, 0, &created), WB_OK);
    assert_int_equal(created, 0);
    put(k, "written", 0);
    assert_int_equal(fill_aside(k, strlen(k), "third", 5, TTL_MS, 0, &created), WB_OK);
    assert_int_equal(created, 0);
    get(k, &e);
    assert_string_equal(e.value, "written");
    assert_true(e.dirty);
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);

    /* Negative entry: the loader found nothing. */
    k = key("aside-neg");
    assert_int_equal(fill_aside(k, strlen(k), NULL, 0, 5000, 1, &created), WB_OK);
    assert_int_equal(created, 1);
    get(k, &e);
    assert_true(e.found && e.deleted);
    wb_entry_clear(&e);
}

/* Issue 14 item 4, at the script level: PostgreSQL committed V while the
 * entry was gone (clean leaves `ver` = V as memory), then a slow loader's
 * older value is filled cache-aside. It must not be labelled V: it gets
 * version 0, V moves to `rv` (the next put stays above it), and the next
 * versioned fill of V replaces the value instead of only extending it. */
static void test_fill_aside_does_not_take_a_remembered_version(void **state)
{
    const char *k = key("aside-mem");
    wb_entry_clean_t cres;
    wb_entry_fill_t fres;
    wb_entry_t e;
    int created = -1;
    int64_t V = redis_time_us() + 5000000;

    (void)state;
    assert_int_equal(clean(k, strlen(k), dirty, V, TTL_MS, &cres), WB_OK);
    assert_int_equal(cres, WB_ENTRY_CLEAN_GONE);
    assert_int_equal(hget_i64(k, "ver"), V);
    assert_int_equal(fill_aside(k, strlen(k), "old", 3, TTL_MS, 0, &created), WB_OK);
    assert_int_equal(created, 1);
    get(k, &e);
    assert_true(e.found && !e.dirty);
    assert_int_equal(e.version, 0);
    assert_string_equal(e.value, "old");
    wb_entry_clear(&e);
    assert_int_equal(hget_i64(k, "rv"), V);
    /* Refresh-ahead / read-through fill of V: replaces, does not extend. */
    assert_int_equal(fill(k, strlen(k), "new", 3, V, TTL_MS, 0, &fres), WB_OK);
    assert_int_equal(fres, WB_ENTRY_FILL_REPLACED);
    get(k, &e);
    assert_string_equal(e.value, "new");
    assert_int_equal(e.version, V);
    wb_entry_clear(&e);
    assert_true(put(k, "next", 0) > V);
}

/* Issue 14 item 1: put stores its entity in `e`, sweep_check returns it. */
static void test_entry_stores_its_entity(void **state)
{
    const char *k = key("ent");
    wb_entry_put_req_t req = {.key = k,
                              .keylen = strlen(k),
                              .value = "x",
                              .len = 1,
                              .dirty_index = dirty,
                              .entity = "user"};
    wb_entry_key_t member = {k, strlen(k)};
    wb_entry_check_res_t res;
    redisReply *r;

    (void)state;
    assert_int_equal(wb_entry_put(ctx, &req, NULL, errstr, sizeof(errstr)), WB_OK);
    r = cmd("HGET %s e", k);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "user");
    freeReplyObject(r);
    assert_int_equal(
        wb_entry_sweep_check_many(ctx, dirty, &member, 1, &res, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(res.err, WB_OK);
    assert_true(res.dirty);
    assert_string_equal(res.entity, "user");
    wb_entry_check_clear(&res);
}

/* Issue 14 item 2, at the script level: the floor the flusher raises keeps
 * a put above a committed version when the entry is gone and Redis TIME is
 * behind it (a version 10 minutes ahead of the clock stands for a clock
 * that stepped back 10 minutes); never lowered. And `clean` tells a refused
 * newest dirty write (5, with its value) from an older one (4). */
static void test_version_floor_and_refused_writes(void **state)
{
    const char *k = key("floor"), *k2 = key("refused"), *k3 = key("floor-src");
    int64_t ahead = redis_time_us() + INT64_C(600) * 1000000, fl = 0, v = 0, v2 = 0;
    wb_entry_clean_req_t creq;
    wb_entry_clean_res_t cres;

    (void)state;
    /* The flusher's clean of a committed version raises its shard's floor
     * (clean_many), never lowers it. */
    creq = (wb_entry_clean_req_t){
        .key = k3, .keylen = strlen(k3), .dirty_index = dirty, .version = ahead, .ttl_ms = TTL_MS};
    assert_int_equal(wb_entry_clean(ctx, &creq, &cres, errstr, sizeof(errstr)), WB_OK);
    wb_entry_clean_clear(&cres);
    fl = hget_floor();
    assert_int_equal(fl, ahead);
    creq.version = ahead - 5;
    assert_int_equal(wb_entry_clean(ctx, &creq, &cres, errstr, sizeof(errstr)), WB_OK);
    wb_entry_clean_clear(&cres);
    fl = hget_floor();
    assert_int_equal(fl, ahead); /* never lowered */
    assert_int_equal(put(k, "after the step", 0), ahead + 1);
    assert_int_equal(wb_entry_version(ctx, k2, strlen(k2), dirty, 1000, &v, errstr, sizeof(errstr)),
                     WB_OK);
    assert_true(v > ahead);
    freeReplyObject(cmd("DEL %s", k2));
    freeReplyObject(cmd("DEL %s", floor_key));

    /* Without a floor (lost with Redis data): the put gets a version below
     * what PostgreSQL holds; the flusher's clean with the stored version
     * finds it still dirty at exactly the refused one: REFUSED, value back. */
    v = put(k2, "lost?", 0);
    creq = (wb_entry_clean_req_t){.key = k2,
                                  .keylen = strlen(k2),
                                  .dirty_index = dirty,
                                  .version = ahead,
                                  .ttl_ms = TTL_MS,
                                  .refused_version = v};
    assert_int_equal(wb_entry_clean(ctx, &creq, &cres, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(cres.code, WB_ENTRY_CLEAN_REFUSED);
    assert_string_equal(cres.value, "lost?");
    assert_int_equal(cres.len, 5);
    assert_false(cres.is_delete);
    assert_true(cres.write_us > 0);
    wb_entry_clean_clear(&cres);
    assert_int_equal(zscore(k2), -1);
    assert_int_equal(hget_i64(k2, "ver"), ahead);

    /* An older write superseded by a newer one the cache knows: STALE. */
    freeReplyObject(cmd("DEL %s", k2));
    v = put(k2, "one", 0);
    v2 = put(k2, "two", 0);
    creq.refused_version = v;
    creq.version = v2 + 5;
    assert_int_equal(wb_entry_clean(ctx, &creq, &cres, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(cres.code, WB_ENTRY_CLEAN_STALE);
    assert_null(cres.value);
    wb_entry_clean_clear(&cres);
}

/* A settle: clean at the version PostgreSQL holds after refusing an older
 * event (the flusher's clean-mark of a refused row; the refused event's own
 * version is any older one). */
static wb_err_t settle_at(const char *k, int64_t version, int *code)
{
    wb_entry_clean_req_t req = {.key = k,
                                .keylen = strlen(k),
                                .dirty_index = dirty,
                                .version = version,
                                .ttl_ms = TTL_MS,
                                .refused_version = version - 1};
    wb_entry_clean_res_t res;
    wb_err_t err = wb_entry_clean(ctx, &req, &res, errstr, sizeof(errstr));

    if (err == WB_OK) *code = res.code;
    return err;
}

/* Write-through: the reserved version sits between what was and what comes. */
static void test_version_and_through(void **state)
{
    const char *k = key("wt");
    wb_entry_t e;
    int64_t before, v, p, p2, wt;
    int applied = -1;

    /* Absent key: a reservation that reads as a miss and expires. */
    before = redis_time_us();
    assert_int_equal(wb_entry_version(ctx, k, strlen(k), dirty, 5000, &v, errstr, sizeof(errstr)),
                     WB_OK);
    assert_true(v >= before);
    get(k, &e);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_true(cmd_int("PTTL %s", k) > 0);
    assert_int_equal(through(k, strlen(k), dirty, "through", 7, v, 0, &applied), WB_OK);
    assert_int_equal(applied, 1);
    /* Pinned like a put until the flusher consumed its event (invariant
     * 11): dirty, no TTL, listed; the clean-mark at V gives it its TTL. */
    get(k, &e);
    assert_true(e.found && e.dirty);
    assert_int_equal(e.version, v);
    assert_string_equal(e.value, "through");
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);
    assert_true(zscore(k) > 0);
    assert_int_equal(hget_i64(k, "rv"), -1);
    /* A settle at V (PostgreSQL refused an older event and holds V) leaves
     * V to its own event: still dirty and listed. */
    int code = -1;
    assert_int_equal(settle_at(k, v, &code), WB_OK);
    assert_int_equal(code, WB_ENTRY_CLEAN_NEWER);
    get(k, &e);
    assert_true(e.found && e.dirty);
    wb_entry_clear(&e);
    assert_true(zscore(k) > 0);
    assert_int_equal(clean(k, strlen(k), dirty, v, TTL_MS, NULL), WB_OK);
    get(k, &e);
    assert_true(e.found && !e.dirty);
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);
    assert_int_equal(zscore(k), -1);

    /* Dirty entry P: the reservation is above P and leaves P's value and
     * pin alone; a put after it is above the reservation, and the late
     * write-through then does not overwrite it. */
    p = put(k, "p", 0);
    assert_int_equal(wb_entry_version(ctx, k, strlen(k), dirty, 5000, &v, errstr, sizeof(errstr)),
                     WB_OK);
    assert_true(v > p);
    get(k, &e);
    assert_string_equal(e.value, "p");
    assert_true(e.dirty);
    assert_int_equal(e.version, p);
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);
    assert_int_equal(put_raw(k, strlen(k), "p2", 2, 0, dirty, &p2, &wt), WB_OK);
    assert_true(p2 > v);
    assert_int_equal(through(k, strlen(k), dirty, "late", 4, v, 0, &applied), WB_OK);
    assert_int_equal(applied, 0);
    get(k, &e);
    assert_string_equal(e.value, "p2");
    assert_true(e.dirty);
    wb_entry_clear(&e);

    /* Dirty entry older than the committed write-through: replaced by V,
     * still dirty and listed (now for V's own event). */
    p = put(k, "p3", 0);
    assert_int_equal(wb_entry_version(ctx, k, strlen(k), dirty, 5000, &v, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(through(k, strlen(k), dirty, "wt", 2, v, 0, &applied), WB_OK);
    assert_int_equal(applied, 1);
    get(k, &e);
    assert_string_equal(e.value, "wt");
    assert_int_equal(e.version, v);
    assert_true(e.dirty);
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);
    assert_true(zscore(k) > 0);

    /* Two reservations in a row are distinct and increasing. */
    assert_int_equal(wb_entry_version(ctx, k, strlen(k), dirty, 5000, &p, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(wb_entry_version(ctx, k, strlen(k), dirty, 5000, &v, errstr, sizeof(errstr)),
                     WB_OK);
    assert_true(v > p);
}

/* SCRIPT FLUSH (or a restart) empties the script cache: calls still work. */
static void test_noscript_fallback(void **state)
{
    const char *k = key("noscript");
    wb_entry_clean_req_t req[3];
    wb_entry_clean_res_t res[3];
    char *pk[3];
    redisReply *r;
    int64_t v[3];
    int i;

    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    r = node_cmd("SCRIPT EXISTS %s", wb_entry_script_sha(WB_ENTRY_SCRIPT_PUT));
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    v[0] = put(k, "after-flush", 0);
    assert_true(v[0] > 0);
    /* The fallback EVAL cached the script again. */
    r = node_cmd("SCRIPT EXISTS %s", wb_entry_script_sha(WB_ENTRY_SCRIPT_PUT));
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);

    /* Pipelined: every call answers, in order, after the fallback. */
    for (i = 0; i < 3; i++) {
        pk[i] = strdup(key(i == 0 ? "pipe0" : i == 1 ? "pipe1" : "pipe2"));
        v[i] = put(pk[i], "x", 0);
    }
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    for (i = 0; i < 3; i++)
        req[i] = (wb_entry_clean_req_t){.key = pk[i],
                                        .keylen = strlen(pk[i]),
                                        .dirty_index = dirty,
                                        .version = v[i],
                                        .ttl_ms = 60000};
    assert_int_equal(wb_entry_clean_many(ctx, req, 3, res, errstr, sizeof(errstr)), WB_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(res[i].err, WB_OK);
        assert_int_equal(res[i].code, WB_ENTRY_CLEAN_CLEANED);
        assert_int_equal(zscore(pk[i]), -1);
        free(pk[i]);
    }

    /* The server now knows the scripts again under our locally computed SHAs. */
    assert_int_equal(wb_entry_load(ctx, errstr, sizeof(errstr)), WB_OK);
    for (i = 0; i < WB_ENTRY_SCRIPT__COUNT; i++) {
        r = node_cmd("SCRIPT EXISTS %s", wb_entry_script_sha((wb_entry_script_t)i));
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
    }
}

/* One wb_entry_clean_many of more keys of one shard than one `clean_many`
 * call takes, a repeated key and a forget among them: every request gets
 * its own answer, and they apply in request order (the repeat finds its
 * key clean already, the forget finds a clean entry and leaves it). */
static void test_clean_many_groups(void **state)
{
    enum { N = 150 };
    wb_entry_clean_req_t req[N + 2];
    wb_entry_clean_res_t res[N + 2];
    char *pk[N], name[32];
    int64_t v[N], top = 0;

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "grp%d", i);
        pk[i] = strdup(key(name));
        v[i] = put(pk[i], "x", 0);
        if (v[i] > top) top = v[i];
        req[i] = (wb_entry_clean_req_t){.key = pk[i],
                                        .keylen = strlen(pk[i]),
                                        .dirty_index = dirty,
                                        .version = v[i],
                                        .ttl_ms = 60000};
    }
    req[N] = req[0];
    req[N + 1] = req[1];
    req[N + 1].forget = 1;
    assert_int_equal(wb_entry_clean_many(ctx, req, N + 2, res, errstr, sizeof(errstr)), WB_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].err, WB_OK);
        assert_int_equal(res[i].code, WB_ENTRY_CLEAN_CLEANED);
        assert_int_equal(zscore(pk[i]), -1);
    }
    assert_int_equal(res[N].err, WB_OK);
    assert_int_equal(res[N].code, WB_ENTRY_CLEAN_ALREADY);
    assert_int_equal(res[N + 1].err, WB_OK);
    assert_int_equal(res[N + 1].code, 0);
    assert_true(hget_floor() >= top);
    for (int i = 0; i < N + 2; i++)
        wb_entry_clean_clear(&res[i]);
    for (int i = 0; i < N; i++)
        free(pk[i]);
}

/* The entry's scripts as a set of the generic runner (wb_scripts.h): the
 * same bodies, so the same SHAs as wb_entry's own. wb_entry has no call
 * that mixes scripts in one pipeline; the runner's ordering guarantee is
 * tested through this set. */
static wb_script_t all_scripts[WB_ENTRY_SCRIPT__COUNT];
static wb_script_set_t all_set = {all_scripts, WB_ENTRY_SCRIPT__COUNT};

static const wb_script_set_t *entry_scripts(void)
{
    if (!all_scripts[0].body) {
        for (int i = 0; i < WB_ENTRY_SCRIPT__COUNT; i++) {
            all_scripts[i].name = wb_entry_script_name((wb_entry_script_t)i);
            all_scripts[i].body = wb_entry_script_body((wb_entry_script_t)i);
        }
        wb_scripts_init(&all_set);
    }
    return &all_set;
}

/* A put call of key k with value v (argv/argvlen: 6 slots). */
static void put_call(wb_script_call_t *c, const char **argv, size_t *argvlen, const char *k,
                     const char *v)
{
    argv[0] = k, argvlen[0] = strlen(k);
    argv[1] = shard_idx, argvlen[1] = strlen(shard_idx);
    argv[2] = floor_key, argvlen[2] = strlen(floor_key);
    argv[3] = v, argvlen[3] = strlen(v);
    argv[4] = "0", argvlen[4] = 1;
    argv[5] = "", argvlen[5] = 0;
    *c = (wb_script_call_t){WB_ENTRY_SCRIPT_PUT, 3, 6, argv, argvlen};
}

/* A version call of key k (argv/argvlen: 3 slots). */
static void version_call(wb_script_call_t *c, const char **argv, size_t *argvlen, const char *k)
{
    argv[0] = k, argvlen[0] = strlen(k);
    argv[1] = floor_key, argvlen[1] = strlen(floor_key);
    argv[2] = "1000", argvlen[2] = 4;
    *c = (wb_script_call_t){WB_ENTRY_SCRIPT_VERSION, 2, 3, argv, argvlen};
}

/* The script cache is lost mid-pipeline and another client re-caches one
 * script before our later call runs: the later call has run, so the
 * earlier NOSCRIPT call must not run after it (two writes of one key would
 * end with the older value). It fails instead; a NOSCRIPT suffix with
 * nothing run after it is re-sent in order. */
static void test_noscript_pipeline_keeps_order(void **state)
{
    const char *k = key("order"), *k2 = key("order2");
    const char *argv[3][6];
    size_t argvlen[3][6];
    wb_script_call_t calls[3];
    redisReply *replies[3];
    wb_entry_t e;

    /* [put k (not cached), version k (cached)] */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    freeReplyObject(node_cmd("SCRIPT LOAD %s", wb_entry_script_body(WB_ENTRY_SCRIPT_VERSION)));
    put_call(&calls[0], argv[0], argvlen[0], k, "first");
    version_call(&calls[1], argv[1], argvlen[1], k);
    assert_int_equal(
        wb_scripts_pipeline(entry_scripts(), ctx, calls, 2, replies, errstr, sizeof(errstr)),
        WB_OK);
    assert_int_equal(replies[1]->type, REDIS_REPLY_INTEGER);
    if (wb_scripts_is_noscript(replies[0])) {
        get(k, &e); /* failed, and did not run */
        assert_false(e.found);
        wb_entry_clear(&e);
    } else { /* someone re-cached `put` in time: then it ran first */
        assert_int_equal(replies[0]->type, REDIS_REPLY_ARRAY);
        assert_true(replies[0]->element[0]->integer < replies[1]->integer);
    }
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);

    /* [version k2 (cached), put k2, put k2 (not cached)]: nothing ran after
     * the NOSCRIPTs, so both puts run, in order, after the version. */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    freeReplyObject(node_cmd("SCRIPT LOAD %s", wb_entry_script_body(WB_ENTRY_SCRIPT_VERSION)));
    version_call(&calls[0], argv[0], argvlen[0], k2);
    put_call(&calls[1], argv[1], argvlen[1], k2, "a");
    put_call(&calls[2], argv[2], argvlen[2], k2, "b");
    assert_int_equal(
        wb_scripts_pipeline(entry_scripts(), ctx, calls, 3, replies, errstr, sizeof(errstr)),
        WB_OK);
    assert_int_equal(replies[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(replies[1]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(replies[2]->type, REDIS_REPLY_ARRAY);
    assert_true(replies[0]->integer < replies[1]->element[0]->integer);
    assert_true(replies[1]->element[0]->integer < replies[2]->element[0]->integer);
    get(k2, &e);
    assert_true(e.found);
    assert_int_equal(e.value_len, 1);
    assert_memory_equal(e.value, "b", 1);
    assert_int_equal(e.version, replies[2]->element[0]->integer);
    wb_entry_clear(&e);
    for (int i = 0; i < 3; i++)
        freeReplyObject(replies[i]);
    /* The pipeline loaded every script again for the next callers. */
    for (int i = 0; i < WB_ENTRY_SCRIPT__COUNT; i++) {
        redisReply *r = node_cmd("SCRIPT EXISTS %s", wb_entry_script_sha((wb_entry_script_t)i));
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
    }
}

static int script_cached(const char *sha)
{
    redisReply *r = node_cmd("SCRIPT EXISTS %s", sha);
    int cached;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    cached = r->element[0]->integer == 1;
    freeReplyObject(r);
    return cached;
}

/* The runner on a set of its own (two of the entry's scripts, a = put and
 * b = version, in another order than wb_entry's): EVAL after NOSCRIPT,
 * SHAs computed locally, the whole set loaded again after a NOSCRIPT, and
 * a pipeline never runs a NOSCRIPT call after a later call that ran. */
static void test_script_set(void **state)
{
    wb_script_t two[2] = {{"a", wb_entry_script_body(WB_ENTRY_SCRIPT_PUT), ""},
                          {"b", wb_entry_script_body(WB_ENTRY_SCRIPT_VERSION), ""}};
    wb_script_set_t set = {two, 2}, empty = {NULL, 0};
    const char *k = key("set"), *k2 = key("set2"), *k3 = key("set3");
    const char *argv[3][6];
    size_t argvlen[3][6];
    wb_script_call_t calls[3];
    redisReply *replies[3], *r = NULL;
    wb_entry_t e;
    int64_t rv;
    int i;

    wb_scripts_init(&set);
    assert_string_equal(two[0].sha, wb_entry_script_sha(WB_ENTRY_SCRIPT_PUT));
    assert_string_equal(two[1].sha, wb_entry_script_sha(WB_ENTRY_SCRIPT_VERSION));
    version_call(&calls[0], argv[0], argvlen[0], k);
    assert_int_equal(
        wb_scripts_call(&empty, ctx, 0, 2, 3, argv[0], argvlen[0], &r, errstr, sizeof(errstr)),
        WB_ERR_INVALID_ARG);
    assert_null(r);

    /* Loading checks the server's SHA against ours. */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    assert_int_equal(wb_scripts_load(&set, ctx, errstr, sizeof(errstr)), WB_OK);
    assert_true(script_cached(two[0].sha));
    assert_true(script_cached(two[1].sha));

    /* One call after the cache was lost: EVAL, which caches it again. */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    assert_int_equal(
        wb_scripts_call(&set, ctx, 1, 2, 3, argv[0], argvlen[0], &r, errstr, sizeof(errstr)),
        WB_OK);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer > 0);
    freeReplyObject(r);
    assert_true(script_cached(two[1].sha));
    assert_int_equal(
        wb_scripts_call(&set, ctx, 2, 2, 3, argv[0], argvlen[0], &r, errstr, sizeof(errstr)),
        WB_ERR_INVALID_ARG);
    assert_null(r);

    /* [a (not cached), b (cached)]: b ran, so a must not run after it. */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    freeReplyObject(node_cmd("SCRIPT LOAD %s", two[1].body));
    put_call(&calls[0], argv[0], argvlen[0], k2, "a");
    calls[0].id = 0;
    version_call(&calls[1], argv[1], argvlen[1], k2);
    calls[1].id = 1;
    assert_int_equal(wb_scripts_pipeline(&set, ctx, calls, 2, replies, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(replies[1]->type, REDIS_REPLY_INTEGER);
    if (wb_scripts_is_noscript(replies[0])) {
        get(k2, &e); /* failed, and did not run */
        assert_false(e.found);
        wb_entry_clear(&e);
    } else { /* someone re-cached `put` in time: then it ran first */
        assert_true(replies[0]->element[0]->integer < replies[1]->integer);
    }
    for (i = 0; i < 2; i++)
        freeReplyObject(replies[i]);
    /* The pipeline loaded the whole set again for the next callers. */
    assert_true(script_cached(two[0].sha));

    /* [b (cached), a, a (not cached)]: nothing ran after the NOSCRIPTs, so
     * both run, in order, after b. */
    freeReplyObject(node_cmd("SCRIPT FLUSH"));
    freeReplyObject(node_cmd("SCRIPT LOAD %s", two[1].body));
    version_call(&calls[0], argv[0], argvlen[0], k3);
    calls[0].id = 1;
    put_call(&calls[1], argv[1], argvlen[1], k3, "1");
    calls[1].id = 0;
    put_call(&calls[2], argv[2], argvlen[2], k3, "2");
    calls[2].id = 0;
    assert_int_equal(wb_scripts_pipeline(&set, ctx, calls, 3, replies, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(replies[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(replies[1]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(replies[2]->type, REDIS_REPLY_ARRAY);
    assert_true(replies[0]->integer < replies[1]->element[0]->integer);
    assert_true(replies[1]->element[0]->integer < replies[2]->element[0]->integer);
    for (i = 0; i < 3; i++)
        freeReplyObject(replies[i]);
    get(k3, &e);
    assert_string_equal(e.value, "2");
    rv = e.version;
    wb_entry_clear(&e);
    assert_true(script_cached(two[0].sha));
    assert_true(script_cached(two[1].sha));

    /* A bad call is refused before anything is sent. */
    calls[1].id = 7;
    assert_int_equal(wb_scripts_pipeline(&set, ctx, calls, 3, replies, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    get(k3, &e);
    assert_string_equal(e.value, "2");
    assert_int_equal(e.version, rv);
    assert_int_equal(hget_i64(k3, "rv"), -1);
    wb_entry_clear(&e);
    /* The entry's calls work as before (the FLUSHes above dropped scripts). */
    assert_true(put(key("set-after"), "x", 0) > 0);
}

static void test_binary_values(void **state)
{
    const char *k = key("bin");
    char big[200], bin[64], bkey[32];
    wb_entry_t e;
    size_t i, bkeylen;
    int64_t ver = 0;

    for (i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(put_raw(k, strlen(k), big, sizeof(big), 0, dirty, &ver, NULL), WB_OK);
    get(k, &e);
    assert_int_equal(e.value_len, sizeof(big));
    assert_memory_equal(e.value, big, sizeof(big));
    wb_entry_clear(&e);

    for (i = 0; i < sizeof(bin); i++)
        bin[i] = (char)(i * 37);
    bin[0] = bin[10] = bin[63] = '\0';
    /* The key itself carries a NUL too. */
    bkeylen = (size_t)snprintf(bkey, sizeof(bkey), "%s%sb", tag, prefix);
    if (bkeylen >= sizeof(bkey)) bkeylen = sizeof(bkey) - 1;
    bkey[bkeylen - 1] = '\0';
    assert_int_equal(put_raw(bkey, bkeylen, bin, sizeof(bin), 0, dirty, &ver, NULL), WB_OK);
    assert_int_equal(wb_entry_read(ctx, bkey, bkeylen, &e, errstr, sizeof(errstr)), WB_OK);
    assert_true(e.found);
    assert_int_equal(e.value_len, sizeof(bin));
    assert_memory_equal(e.value, bin, sizeof(bin));
    assert_int_equal(e.version, ver);
    wb_entry_clear(&e);
    assert_int_equal(fill(bkey, bkeylen, bin, 20, ver + 1, TTL_MS, 0, NULL), WB_OK);
    freeReplyObject(cmd("DEL %b", bkey, bkeylen)); /* the index goes with the run's keys */
}

/* A dirty index of the wrong type fails the put without a half-written entry. */
static void test_put_wrong_index_type(void **state)
{
    const char *k = key("wrongtype"), *idx = key("not-a-zset");
    char shard[WB_ENTRY_KEY_MAX];
    int n = -1;
    int64_t ver = 0;

    /* the index shard the put of k uses */
    assert_true(wb_entry_key_tag(k, strlen(k), &n) > 0);
    wb_entry_index_key(idx, n, shard, sizeof(shard));
    freeReplyObject(cmd("SET %s x", shard));
    assert_int_equal(put_raw(k, strlen(k), "v", 1, 0, idx, &ver, NULL), WB_ERR_REDIS);
    assert_non_null(strstr(errstr, "dirty index"));
    assert_int_equal(cmd_int("EXISTS %s", k), 0);
}

static void test_connect_refused_fast(void **state)
{
    int saved_port = conf->redis.port, saved_timeout = conf->redis.timeout_ms;
    redisContext *c = (redisContext *)1;
    int64_t t0;
    wb_err_t err;

    conf->redis.port = 1; /* nothing listens on tcpmux */
    conf->redis.timeout_ms = 500;
    t0 = now_ms();
    err = wb_redis_connect(conf, &c, errstr, sizeof(errstr));
    conf->redis.port = saved_port;
    conf->redis.timeout_ms = saved_timeout;
    assert_int_equal(err, WB_ERR_REDIS);
    assert_null(c);
    assert_non_null(strstr(errstr, "127.0.0.1:1"));
    assert_true(now_ms() - t0 < 2000);
}

/* A server that accepts but never answers: bounded by timeout_ms. */
static void test_silent_server_times_out(void **state)
{
    int saved_port = conf->redis.port, saved_timeout = conf->redis.timeout_ms;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    redisContext *c = NULL;
    int64_t t0, took;
    wb_err_t err;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);

    conf->redis.port = ntohs(sa.sin_port);
    conf->redis.timeout_ms = 300;
    t0 = now_ms();
    err = wb_redis_connect(conf, &c, errstr, sizeof(errstr));
    took = now_ms() - t0;
    conf->redis.port = saved_port;
    conf->redis.timeout_ms = saved_timeout;
    close(fd);
    assert_int_equal(err, WB_ERR_TIMEOUT);
    assert_null(c);
    assert_true(took >= 250 && took < 2000);
}

/* wb_redis_reconnect replaces a node connection with a new one. */
static void test_reconnect(void **state)
{
    redisContext *c = NULL, *old;
    redisReply *r;

    assert_int_equal(wb_redis_connect(conf, &c, errstr, sizeof(errstr)), WB_OK);
    old = c;
    assert_int_equal(wb_redis_reconnect(conf, &c, errstr, sizeof(errstr)), WB_OK);
    assert_ptr_not_equal(c, old);
    r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
    assert_true(put(key("reconnected"), "x", 0) > 0);
}

/* Issue 15 item 1: a cache of the old layout (one dirty index "<index>",
 * its floor "<index>:floor", keys without a shard tag) is refused with
 * what to do, not misread; so is another shard count than the one the
 * cache was written with. The first program to connect writes the marker. */
static void test_layout_check_refuses_old_and_resharded(void **state)
{
    char old[128], oldfloor[140], fresh[128];

    (void)state;
    snprintf(old, sizeof(old), "%sold", prefix);
    snprintf(oldfloor, sizeof(oldfloor), "%sold:floor", prefix);
    snprintf(fresh, sizeof(fresh), "%sfresh", prefix);

    /* 0.1's index, still holding a dirty key */
    freeReplyObject(cmd("ZADD %s 1 user:42", old));
    assert_int_equal(wb_entry_layout_check(ctx, old, 64, errstr, sizeof(errstr)), WB_ERR_REDIS);
    assert_non_null(strstr(errstr, "old layout"));
    assert_non_null(strstr(errstr, "drain it"));
    assert_non_null(strstr(errstr, "then flush it"));
    /* drained (the index is gone) but not flushed: its floor is still there */
    freeReplyObject(cmd("DEL %s", old));
    freeReplyObject(cmd("SET %s 5", oldfloor));
    assert_int_equal(wb_entry_layout_check(ctx, old, 64, errstr, sizeof(errstr)), WB_ERR_REDIS);
    assert_non_null(strstr(errstr, oldfloor));
    /* flushed: accepted, and the marker is written */
    freeReplyObject(cmd("DEL %s", oldfloor));
    assert_int_equal(wb_entry_layout_check(ctx, old, 64, errstr, sizeof(errstr)), WB_OK);

    /* a fresh cache takes the first shard count; another one is refused */
    assert_int_equal(wb_entry_layout_check(ctx, fresh, 64, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_entry_layout_check(ctx, fresh, 64, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_entry_layout_check(ctx, fresh, 32, errstr, sizeof(errstr)), WB_ERR_REDIS);
    assert_non_null(strstr(errstr, "redis.dirty_shards is 32"));
    assert_non_null(strstr(errstr, "shards=64"));
}

/* The same refusal stops a program at start: wb_client_open (through the
 * pool's wb_entry_open) says what to do. */
static void test_client_refuses_an_old_cache(void **state)
{
    char *saved = conf->redis.dirty_index, old[128], oldfloor[140];
    wb_rc_t *rc = NULL;

    (void)state;
    snprintf(old, sizeof(old), "%sold2", prefix);
    snprintf(oldfloor, sizeof(oldfloor), "%sold2:floor", prefix);
    freeReplyObject(cmd("SET %s 5", oldfloor));
    conf->redis.dirty_index = old;
    wb_err_t err = wb_entry_open(conf, &rc, errstr, sizeof(errstr));
    conf->redis.dirty_index = saved;
    assert_int_equal(err, WB_ERR_REDIS);
    assert_null(rc);
    assert_non_null(strstr(errstr, "old layout"));
}

/* redis.seed_nodes: with redis.host:port down, the first seed that answers
 * is used (a cluster keeps working when the configured node failed); a
 * malformed seed is named. */
static void test_seed_nodes_when_the_first_node_is_down(void **state)
{
    int saved_port = conf->redis.port;
    char *saved_seeds = conf->redis.seed_nodes, seeds[64];
    wb_rc_t *rc = NULL, *rc2 = NULL;
    wb_err_t err, err2;

    (void)state;
    snprintf(seeds, sizeof(seeds), "127.0.0.1:1, %s:%d", conf->redis.host, saved_port);
    conf->redis.port = 1; /* nothing listens on tcpmux */
    conf->redis.seed_nodes = seeds;
    err = wb_entry_open(conf, &rc, errstr, sizeof(errstr));
    conf->redis.seed_nodes = "127.0.0.1";
    err2 = wb_rc_connect(conf, &rc2, errstr + 512, 512);
    conf->redis.port = saved_port;
    conf->redis.seed_nodes = saved_seeds;
    assert_int_equal(err, WB_OK);
    assert_int_equal(err2, WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr + 512, "redis.seed_nodes: \"127.0.0.1\" is not host:port"));
    assert_non_null(rc);
    assert_null(rc2);
    wb_rc_free(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_versions_increase),
        cmocka_unit_test(test_version_after_key_lost),
        cmocka_unit_test(test_version_precision),
        cmocka_unit_test(test_delete_is_dirty_tombstone),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_clean_gone_and_stale),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_get_many_and_release_many),
        cmocka_unit_test(test_fill_aside),
        cmocka_unit_test(test_version_and_through),
        cmocka_unit_test(test_noscript_fallback),
        cmocka_unit_test(test_clean_many_groups),
        cmocka_unit_test(test_noscript_pipeline_keeps_order),
        cmocka_unit_test(test_script_set),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_put_wrong_index_type),
        cmocka_unit_test(test_connect_refused_fast),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_fill_aside_does_not_take_a_remembered_version),
        cmocka_unit_test(test_entry_stores_its_entity),
        cmocka_unit_test(test_version_floor_and_refused_writes),
        cmocka_unit_test(test_layout_check_refuses_old_and_resharded),
        cmocka_unit_test(test_client_refuses_an_old_cache),
        cmocka_unit_test(test_seed_nodes_when_the_first_node_is_down),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
