/* test_ack_replica.c — ack: replica (WB_ACK_REPLICA) against the real services. On a Redis
 * Cluster a put returns only once a replica of the key's master holds the write: each one is
 * read back from that replica right after the call (wb_put and a wb_put_batch spread over
 * every master). On a standalone server, which has no replica, the call fails with
 * WB_ERR_TIMEOUT after producer.replica_timeout_ms, and the write is still in the cache,
 * dirty, with its change event in the log. Runs in both ctest runs (label "redis"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "lib_harness.h"
#include "wb_rcluster.h"
#include "wb_util.h"

#define NPUT   20
#define NBATCH 48

static lh_t H;
static char errstr[512];

static int group_setup(void **state)
{
    (void)state;
    lh_setup(&H);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lh_teardown(&H);
    return 0;
}

/* A connection to a replica of the master that serves key (ROLE on the
 * master: ["master", offset, [[host, port, offset], ...]]), in READONLY
 * mode; fails the test if the master lists none. */
static redisContext *replica_of(const char *key)
{
    struct timeval tv = {2, 0};
    redisContext *m = wb_rc_node(H.redis, wb_rc_slot(key, strlen(key)), errstr, sizeof(errstr));
    redisContext *c;
    redisReply *r, *rep;
    char host[256];
    int port;

    assert_non_null(m);
    r = redisCommand(m, "ROLE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(r->elements >= 3);
    assert_string_equal(r->element[0]->str, "master");
    assert_true(r->element[2]->elements >= 1);
    rep = r->element[2]->element[0];
    snprintf(host, sizeof(host), "%s", rep->element[0]->str);
    port = atoi(rep->element[1]->str);
    freeReplyObject(r);
    c = redisConnectWithTimeout(host, port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    r = redisCommand(c, "READONLY");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return c;
}

/* The replica of key's master holds value at version: read there at once. */
static void assert_on_replica(const char *key, const char *value, int64_t version)
{
    redisContext *c = replica_of(key);
    redisReply *r = redisCommand(c, "HMGET %s v ver", key);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(r->element[0]->str, value);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
    assert_int_equal(strtoll(r->element[1]->str, NULL, 10), version);
    freeReplyObject(r);
    redisFree(c);
}

/* Cluster: every acknowledged write is on a replica when the call returns. */
static void test_cluster_put_is_on_a_replica(void **state)
{
    wb_client_t *c;
    wb_write_t w[NBATCH];
    char ids[NBATCH][96], vals[NBATCH][32], key[256];
    wb_stats_t st;

    (void)state;
    if (!wb_rc_is_cluster(H.redis)) skip();
    c = lh_client(&H, "  replica_timeout_ms: 2000\n");
    for (int i = 0; i < NPUT; i++) {
        char name[32];
        int64_t v = 0;

        snprintf(name, sizeof(name), "one-%d", i);
        snprintf(vals[i], sizeof(vals[i]), "value %d", i);
        lh_id(&H, name, ids[i], sizeof(ids[i]));
        assert_int_equal(wb_put(c, "item", ids[i], vals[i], strlen(vals[i]), WB_ACK_REPLICA, &v),
                         WB_OK);
        assert_true(v > 0);
        assert_on_replica(lh_key(&H, key, sizeof(key), "li:", ids[i]), vals[i], v);
    }
    /* A batch over every master: one WAIT per master after the pipeline. */
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NBATCH; i++) {
        char name[32];

        snprintf(name, sizeof(name), "batch-%d", i);
        snprintf(vals[i], sizeof(vals[i]), "batch value %d", i);
        lh_id(&H, name, ids[i], sizeof(ids[i]));
        w[i] =
            (wb_write_t){.entity = "item", .id = ids[i], .value = vals[i], .len = strlen(vals[i])};
    }
    assert_int_equal(wb_put_batch(c, w, NBATCH, WB_ACK_REPLICA), WB_OK);
    for (int i = 0; i < NBATCH; i++) {
        assert_int_equal(w[i].err, WB_OK);
        assert_on_replica(lh_key(&H, key, sizeof(key), "li:", ids[i]), vals[i], w[i].version);
    }
    memset(&st, 0, sizeof(st));
    wb_client_stats(c, &st, sizeof(st));
    assert_int_equal(st.puts, NPUT + NBATCH);
    assert_int_equal(st.put_errors, 0);
    wb_client_close(c);
}

/* Standalone: no replica can confirm. The put fails with WB_ERR_TIMEOUT after
 * replica_timeout_ms, not sooner and not much later; the write is in the cache (dirty) and
 * its event was sent, so it is delivered anyway; ack: cache on the same key still works. */
static void test_standalone_times_out(void **state)
{
    wb_client_t *c;
    char id[96], key[256], *v;
    wb_write_t w[3];
    lh_msg_t m[2];
    int64_t t0, took, ver = 0;

    (void)state;
    if (wb_rc_is_cluster(H.redis)) skip();
    c = lh_client(&H, "  replica_timeout_ms: 300\n");
    lh_id(&H, "alone", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    t0 = wb_time_mono_ms();
    assert_int_equal(wb_put(c, "item", id, "unconfirmed", 11, WB_ACK_REPLICA, &ver),
                     WB_ERR_TIMEOUT);
    took = wb_time_mono_ms() - t0;
    assert_true(took >= 290);
    assert_true(took < 3000);
    assert_int_equal(ver, 0); /* not acknowledged: no version handed back */
    v = lh_hget(&H, key, "v");
    assert_string_equal(v, "unconfirmed");
    free(v);
    assert_true(lh_dirty_score(&H, key) > 0);
    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 2, 1, 20000), 1);
    assert_string_equal(m[0].value, "unconfirmed");
    lh_msgs_free(m, 1);

    memset(w, 0, sizeof(w));
    for (int i = 0; i < 3; i++)
        w[i] = (wb_write_t){.entity = "item", .id = id, .value = "b", .len = 1};
    assert_int_equal(wb_put_batch(c, w, 3, WB_ACK_REPLICA), WB_ERR_TIMEOUT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].err, WB_ERR_TIMEOUT);
    assert_int_equal(wb_put(c, "item", id, "cache", 5, WB_ACK_CACHE, &ver), WB_OK);
    assert_true(ver > 0);
    wb_client_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_put_is_on_a_replica),
        cmocka_unit_test(test_standalone_times_out),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
