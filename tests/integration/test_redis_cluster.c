/* test_redis_cluster.c — the Redis Cluster client (wb_rcluster) against a real cluster: a slot that
 * moves under a connected client (MOVED), one in migration (ASK), writes landing on the new
 * master. Skipped on a standalone Redis (`WB_REDIS_CLUSTER=1 deploy/local/services` runs one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_services.h"
#include "wb_config.h"
#include "wb_entry.h"
#include "wb_rcluster.h"

static wb_config_t *conf;
static wb_rc_t *rc;                /* the client under test */
static wb_rc_t *ctl;               /* the test's own view, for CLUSTER commands on each master */
static char dirty[96];             /* this run's dirty index */
static int open_slot;              /* a slot this run left migrating (a failed assertion) */
static int dropped_slot = -1;      /* a slot this run left without a master */
static redisContext *dropped_from; /* its master before */
static char errstr[1024];

static const char *config_path(void)
{
    const char *p = getenv("WB_CONFIG");

    return p && p[0] ? p : WB_SOURCE_DIR "/config/wbcache.yaml";
}

static int setup(void **state)
{
    (void)state;
    if (wb_config_load(config_path(), &conf, errstr, sizeof(errstr)) != WB_OK ||
        wb_entry_open(conf, &rc, errstr, sizeof(errstr)) != WB_OK ||
        wb_rc_connect(conf, &ctl, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    snprintf(dirty, sizeof(dirty), "wbtest:rcl:%ld:%lld:dirty", (long)getpid(),
             (long long)time(NULL));
    return 0;
}

static int teardown(void **state)
{
    char match[128];

    (void)state;
    if (dropped_slot >= 0) {
        redisReply *r = redisCommand(dropped_from, "CLUSTER ADDSLOTS %d", dropped_slot);
        if (r) freeReplyObject(r);
    }
    if (open_slot) {
        /* Settle the slot (keys moved, STABLE) so reruns find a sane cluster. */
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "redis-cli --cluster fix %s:%d --cluster-yes >/dev/null 2>&1",
                 conf->redis.host, conf->redis.port);
        if (system(cmd) != 0) fprintf(stderr, "teardown: %s failed\n", cmd);
    }
    snprintf(match, sizeof(match), "*wbtest:rcl:%ld:*", (long)getpid());
    if (ctl) wb_test_redis_del_matching(ctl, match);
    wb_rc_free(rc);
    wb_rc_free(ctl);
    wb_config_destroy(conf);
    return 0;
}

/* A master's node id (CLUSTER MYID) into out. */
static void myid(redisContext *c, char *out, size_t size)
{
    redisReply *r = redisCommand(c, "CLUSTER MYID");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(out, size, "%s", r->str);
    freeReplyObject(r);
}

static void ok_reply(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("%s", r->str);
    freeReplyObject(r);
}

/* CLUSTER SETSLOT slot NODE id on every master, the new owner first. */
static void assign_slot(int slot, redisContext *to, const char *to_id)
{
    redisContext *m;

    ok_reply(redisCommand(to, "CLUSTER SETSLOT %d NODE %s", slot, to_id));
    for (size_t i = 0; (m = wb_rc_master(ctl, i, errstr, sizeof(errstr))) != NULL; i++)
        if (m != to) ok_reply(redisCommand(m, "CLUSTER SETSLOT %d NODE %s", slot, to_id));
}

static int64_t put(const char *key, const char *value)
{
    wb_entry_put_req_t req = {.key = key,
                              .keylen = strlen(key),
                              .value = value,
                              .len = strlen(value),
                              .dirty_index = dirty};
    wb_entry_put_res_t res = {0};

    if (wb_entry_put(rc, &req, &res, errstr, sizeof(errstr)) != WB_OK) fail_msg("%s", errstr);
    return res.version;
}

static long long count_in_slot(redisContext *c, int slot)
{
    redisReply *r = redisCommand(c, "CLUSTER COUNTKEYSINSLOT %d", slot);
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A slot moves from master A to master B while the client's map still says
 * A: the put is answered MOVED and lands on B. Then the slot migrates back
 * (B MIGRATING, A IMPORTING) with its keys already on A: a put is answered
 * ASK and runs on A after ASKING. Once the migration ends, a read that the
 * map still sends to B is MOVED to A. Every script touched one slot. */
/* The first shard number in [from, to) whose slot holds no key on any master
 * (other tests leave clean entries with a TTL behind): an empty slot can be
 * reassigned at once. Shard numbers above the configured count are still
 * valid tags. Returns the shard and its slot in *slot, or -1. */
static int empty_shard(int from, int to, int *slot)
{
    redisContext *m;

    for (int s = from; s < to; s++) {
        char tag[16];
        long long keys = 0;

        snprintf(tag, sizeof(tag), "{%d}", s);
        *slot = wb_rc_slot(tag, strlen(tag));
        for (size_t i = 0; (m = wb_rc_master(ctl, i, errstr, sizeof(errstr))) != NULL; i++)
            keys += count_in_slot(m, *slot);
        if (keys == 0) return s;
    }
    return -1;
}

static void moved_and_ask_are_followed(void **state)
{
    char key[160], key2[160], idx[WB_ENTRY_KEY_MAX], floor[WB_ENTRY_KEY_MAX], a_id[64], b_id[64];
    redisContext *a = NULL, *b = NULL, *m;
    wb_entry_t e;
    int shard = -1, slot = -1;
    int64_t v1, v2;
    redisReply *r;

    (void)state;
    if (!wb_rc_is_cluster(rc)) skip();
    shard = empty_shard(1000, 2000, &slot);
    a = wb_rc_node(ctl, slot, errstr, sizeof(errstr));
    assert_non_null(a);
    assert_true(shard >= 0);
    snprintf(key, sizeof(key), "{%d}wbtest:rcl:%ld:k1", shard, (long)getpid());
    snprintf(key2, sizeof(key2), "{%d}wbtest:rcl:%ld:k2", shard, (long)getpid());
    wb_entry_index_key(dirty, shard, idx, sizeof(idx));
    assert_int_equal(wb_rc_slot(key, strlen(key)), slot);
    assert_int_equal(wb_rc_slot(idx, strlen(idx)), slot);
    for (size_t i = 0; (m = wb_rc_master(ctl, i, errstr, sizeof(errstr))) != NULL && !b; i++)
        if (m != a) b = m;
    assert_non_null(b);
    myid(a, a_id, sizeof(a_id));
    myid(b, b_id, sizeof(b_id));
    /* The client learns the map now: the slot is A's. */
    assert_non_null(wb_rc_node(rc, slot, errstr, sizeof(errstr)));

    /* MOVED */
    open_slot = 1;
    assign_slot(slot, b, b_id);
    v1 = put(key, "one");
    assert_true(v1 > 0);
    assert_int_equal(count_in_slot(b, slot), 2); /* the entry and its index shard */
    assert_int_equal(count_in_slot(a, slot), 0);

    /* ASK: the slot's keys (entry, index shard, floor) already moved to A,
     * the slot not yet. */
    wb_entry_floor_key(dirty, shard, floor, sizeof(floor));
    ok_reply(redisCommand(b, "SET %s 1", floor));
    ok_reply(redisCommand(a, "CLUSTER SETSLOT %d IMPORTING %s", slot, b_id));
    ok_reply(redisCommand(b, "CLUSTER SETSLOT %d MIGRATING %s", slot, a_id));
    ok_reply(redisCommand(b, "MIGRATE %s %d %s 0 5000 KEYS %s %s %s", a->tcp.host, a->tcp.port, "",
                          key, idx, floor));
    v2 = put(key, "two");
    assert_true(v2 > v1); /* ran on A, where the entry is, after ASKING */
    r = redisCommand(b, "EXISTS %s", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(count_in_slot(a, slot), 3);
    /* A key created mid-migration: its script's keys are split between the
     * nodes (the entry on neither), which Redis answers TRYAGAIN until the
     * slot has moved: retried within redis.timeout_ms, then an error. */
    wb_entry_put_req_t req2 = {
        .key = key2, .keylen = strlen(key2), .value = "new", .len = 3, .dirty_index = dirty};
    assert_int_equal(wb_entry_put(rc, &req2, NULL, errstr, sizeof(errstr)), WB_ERR_REDIS);
    if (!strstr(errstr, "TRYAGAIN")) fail_msg("%s", errstr);

    /* The migration ends: a read the map sends to B is MOVED to A, and the
     * new key can be written. */
    assign_slot(slot, a, a_id);
    assert_int_equal(wb_entry_read(rc, key, strlen(key), &e, errstr, sizeof(errstr)), WB_OK);
    assert_true(e.found && e.dirty);
    assert_int_equal(e.version, v2);
    assert_string_equal(e.value, "two");
    wb_entry_clear(&e);
    assert_true(put(key2, "new") > 0);
    assert_int_equal(count_in_slot(a, slot), 4);
    open_slot = 0;
}

/* The dirty index of every shard, on whichever master holds it, is walked
 * by wb_entry_dirty_stats and wb_entry_dirty_range. */
static void dirty_index_is_walked_on_every_master(void **state)
{
    char key[160], idx[120];
    wb_entry_dirty_stats_t st;
    wb_entry_keys_t keys;
    int64_t t = 0;

    (void)state;
    if (!wb_rc_is_cluster(rc)) skip();
    snprintf(idx, sizeof(idx), "%s2", dirty);
    for (int s = 0; s < 64; s++) {
        wb_entry_put_req_t req = {.key = key, .value = "v", .len = 1, .dirty_index = idx};
        wb_entry_put_res_t res;

        req.keylen =
            (size_t)snprintf(key, sizeof(key), "{%d}wbtest:rcl:%ld:w%d", s, (long)getpid(), s);
        assert_int_equal(wb_entry_put(rc, &req, &res, errstr, sizeof(errstr)), WB_OK);
        if (s == 0) t = res.time_us;
    }
    assert_int_equal(wb_entry_dirty_stats(rc, idx, 64, &st, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(st.count, 64);
    assert_true(st.has_oldest);
    assert_true(st.oldest_us == (double)t); /* the first put, shard 0 */
    assert_int_equal(
        wb_entry_dirty_range(rc, idx, 64, st.now_us, 10, &keys, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(keys.n, 10); /* the 10 oldest of all shards */
    assert_true(strncmp(keys.v[0].key, "{0}", 3) == 0);
    wb_entry_keys_clear(&keys);
}

/* 1 once every master says cluster_state:ok, polling up to ms. */
static int wait_cluster_ok(int ms)
{
    int64_t end = (int64_t)time(NULL) * 1000 + ms;

    for (;;) {
        redisContext *m;
        int ok = 1;

        for (size_t i = 0; (m = wb_rc_master(ctl, i, errstr, sizeof(errstr))) != NULL; i++) {
            redisReply *r = redisCommand(m, "CLUSTER INFO");
            ok = ok && r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
            if (r) freeReplyObject(r);
        }
        if (ok) return 1;
        if ((int64_t)time(NULL) * 1000 > end) return 0;
        usleep(50000);
    }
}

/* A slot without a master (here: unassigned on every node, which also
 * takes the cluster down while cluster-require-full-coverage is on) is a
 * clear CLUSTERDOWN error within redis.timeout_ms, not a hang; once it has
 * a master again the same call works. */
static void slot_without_master_is_a_clear_error(void **state)
{
    char key[160];
    redisContext *a = NULL, *m;
    int slot = -1, shard = -1;
    struct timespec t0, t1;
    wb_entry_put_req_t req = {.value = "v", .len = 1, .dirty_index = dirty};
    wb_err_t err;

    (void)state;
    if (!wb_rc_is_cluster(rc)) skip();
    shard = empty_shard(2000, 3000, &slot);
    assert_true(shard >= 0);
    a = wb_rc_node(ctl, slot, errstr, sizeof(errstr));
    assert_non_null(a);
    assert_non_null(wb_rc_node(rc, slot, errstr, sizeof(errstr))); /* the client knows A */
    req.keylen =
        (size_t)snprintf(key, sizeof(key), "{%d}wbtest:rcl:%ld:down", shard, (long)getpid());
    req.key = key;

    dropped_slot = slot;
    dropped_from = a;
    for (size_t i = 0; (m = wb_rc_master(ctl, i, errstr, sizeof(errstr))) != NULL; i++)
        ok_reply(redisCommand(m, "CLUSTER DELSLOTS %d", slot));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    err = wb_entry_put(rc, &req, NULL, errstr, sizeof(errstr));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(err, WB_ERR_REDIS);
    if (!strstr(errstr, "CLUSTERDOWN")) fail_msg("%s", errstr);
    int64_t took = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(took <= conf->redis.timeout_ms + 500);

    ok_reply(redisCommand(a, "CLUSTER ADDSLOTS %d", slot));
    dropped_slot = -1;
    assert_true(wait_cluster_ok(15000));
    assert_int_equal(wb_entry_put(rc, &req, NULL, errstr, sizeof(errstr)), WB_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(moved_and_ask_are_followed),
        cmocka_unit_test(dirty_index_is_walked_on_every_master),
        cmocka_unit_test(slot_without_master_is_a_clear_error),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
