/* test_library_faults.c — libwbcache with a server down: Redis stopped (errors within the
 * timeout, no crash, recovery) and Kafka stopped (ack: cache fills the bounded queue, then
 * WB_ERR_QUEUE_FULL with nothing written; ack: log times out). Every test restarts what it
 * stopped in its teardown, also when it failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "lib_harness.h"

#include <signal.h>

static lh_t H;
static int redis_stopped, kafka_stopped;
static pid_t redis_frozen; /* SIGSTOPped Redis, continued by the teardown */

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

/* Runs after each test, passed or failed: nothing stays stopped. */
static int restore_services(void **state)
{
    (void)state;
    if (redis_frozen > 0 && kill(redis_frozen, SIGCONT) == 0) redis_frozen = 0;
    if (redis_stopped && lh_services("start-one", "redis") == 0) redis_stopped = 0;
    if (kafka_stopped && lh_services("start-one", "kafka") == 0) kafka_stopped = 0;
    lh_redis_reconnect(&H);
    return redis_stopped || kafka_stopped ? -1 : 0;
}

/* Redis stopped mid-test: every call returns an error within the
 * configured timeout (1000 ms here), nothing crashes, PostgreSQL is not
 * written by a write-through that could not get its version; after the
 * restart the same handle works again. */
static void redis_down_errors_then_recovers(void **state)
{
    char id[128];
    wb_client_t *client = lh_client(&H, NULL);
    wb_value_t out = {0};
    wb_write_t w[3];
    int64_t v = 0, t0, ms;
    wb_err_t err;
    PGresult *res;

    (void)state;
    lh_id(&H, "redis-down", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "before", 6, WB_ACK_LOG, &v), WB_OK);

    assert_int_equal(lh_services("stop-one", "redis"), 0);
    redis_stopped = 1;

    t0 = wb_time_mono_ms();
    err = wb_put(client, "item", id, "during", 6, WB_ACK_CACHE, &v);
    ms = wb_time_mono_ms() - t0;
    assert_true(err == WB_ERR_REDIS || err == WB_ERR_TIMEOUT);
    assert_true(ms < 2500);

    for (int i = 0; i < 3; i++) {
        t0 = wb_time_mono_ms();
        err = wb_get(client, "item", id, &out);
        assert_true(err == WB_ERR_REDIS || err == WB_ERR_TIMEOUT);
        err = wb_del(client, "item", id, WB_ACK_LOG, &v);
        assert_true(err == WB_ERR_REDIS || err == WB_ERR_TIMEOUT);
        err = wb_put_through(client, "item", id, "through", 7, &v);
        assert_true(err == WB_ERR_REDIS || err == WB_ERR_TIMEOUT);
        memset(w, 0, sizeof(w));
        for (int k = 0; k < 3; k++) {
            w[k].entity = "item";
            w[k].id = id;
            w[k].value = "b";
            w[k].len = 1;
        }
        err = wb_put_batch(client, w, 3, WB_ACK_CACHE);
        assert_true(err == WB_ERR_REDIS || err == WB_ERR_TIMEOUT);
        assert_true(w[2].err == WB_ERR_REDIS || w[2].err == WB_ERR_TIMEOUT);
        ms = wb_time_mono_ms() - t0;
        assert_true(ms < 4 * 2500);
    }
    res = lh_sql(&H, "SELECT 1 FROM wb_libtest_items WHERE key = $1", 1, id, NULL, NULL);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    wb_stats_t st;
    wb_client_stats(client, &st, sizeof(st));
    assert_true(st.put_errors >= 10);
    assert_int_equal(st.queue_depth, 0); /* refused writes gave their slots back */

    /* Opening a client fails cleanly too. */
    char errstr[512];
    wb_client_t *none = NULL;
    wb_config_t *conf = lh_config(&H, NULL);
    t0 = wb_time_mono_ms();
    assert_int_equal(wb_client_open_config(conf, lh_log, NULL, &none, errstr, sizeof(errstr)),
                     WB_ERR_REDIS);
    assert_true(wb_time_mono_ms() - t0 < 2500);
    assert_null(none);
    assert_non_null(strstr(errstr, "Connection refused"));
    wb_config_destroy(conf); /* still ours after a failed open */

    assert_int_equal(lh_services("start-one", "redis"), 0);
    redis_stopped = 0;
    lh_redis_reconnect(&H);
    /* The pooled connections are stale now; the call must still succeed. */
    assert_int_equal(wb_put(client, "item", id, "after", 5, WB_ACK_CACHE, &v), WB_OK);
    assert_int_equal(wb_get(client, "item", id, &out), WB_OK);
    assert_string_equal(out.data, "after");
    wb_value_free(&out);
    wb_client_close(client);
}

/* Redis alive but not answering (SIGSTOP): calls give up after
 * redis.timeout_ms (1000 ms) with WB_ERR_TIMEOUT instead of hanging. */
static void redis_frozen_times_out(void **state)
{
    char id[128], path[512];
    wb_client_t *client = lh_client(&H, NULL);
    wb_value_t out = {0};
    int64_t v = 0, t0, ms;
    FILE *f;
    int pid = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/redis/redis.pid",
             lh_env("WB_DATA_DIR", WB_SOURCE_DIR "/.wbdata"));
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    lh_id(&H, "frozen", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "x", 1, WB_ACK_CACHE, &v), WB_OK);

    assert_int_equal(kill(pid, SIGSTOP), 0);
    redis_frozen = pid;
    t0 = wb_time_mono_ms();
    assert_int_equal(wb_put(client, "item", id, "y", 1, WB_ACK_CACHE, &v), WB_ERR_TIMEOUT);
    ms = wb_time_mono_ms() - t0;
    assert_true(ms >= 900 && ms < 2500);
    t0 = wb_time_mono_ms();
    assert_int_equal(wb_get(client, "item", id, &out), WB_ERR_TIMEOUT);
    assert_true(wb_time_mono_ms() - t0 < 2500);
    assert_int_equal(kill(pid, SIGCONT), 0);
    redis_frozen = 0;

    /* The timed-out connections were dropped; the handle works again. */
    assert_int_equal(wb_get(client, "item", id, &out), WB_OK);
    wb_value_free(&out);
    wb_client_close(client);
}

/* Kafka stopped: with ack: cache, puts succeed while the bounded queue
 * (queue_max 20) has room, then fail with WB_ERR_QUEUE_FULL and write
 * nothing; with ack: log a put fails after kafka_timeout_ms. After the
 * restart every queued event is delivered. */
static void kafka_down_queue_fills_then_drains(void **state)
{
    char id[128], prefix[160], key[200];
    wb_client_t *client = lh_client(&H, "  queue_max: 20\n  kafka_timeout_ms: 120000\n");
    wb_client_t *logc = lh_client(&H, "  kafka_timeout_ms: 2000\n");
    wb_stats_t st;
    int64_t v = 0, t0, ms;
    wb_err_t err;
    char *s;

    (void)state;
    /* Connected, with the topic's metadata known, before the outage. */
    lh_id(&H, "kq-warm", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "w", 1, WB_ACK_LOG, &v), WB_OK);
    assert_int_equal(wb_put(logc, "item", id, "w", 1, WB_ACK_LOG, &v), WB_OK);

    assert_int_equal(lh_services("stop-one", "kafka"), 0);
    kafka_stopped = 1;

    for (int i = 0; i < 20; i++) {
        char name[32];

        snprintf(name, sizeof(name), "kqq-%02d", i);
        lh_id(&H, name, id, sizeof(id));
        assert_int_equal(wb_put(client, "item", id, "queued", 6, WB_ACK_CACHE, &v), WB_OK);
    }
    wb_client_stats(client, &st, sizeof(st));
    assert_int_equal(st.queue_depth, 20);

    lh_id(&H, "kq-full", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put(client, "item", id, "refused", 7, WB_ACK_CACHE, &v), WB_ERR_QUEUE_FULL);
    assert_int_equal(wb_del(client, "item", id, WB_ACK_CACHE, &v), WB_ERR_QUEUE_FULL);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0); /* nothing written */

    lh_id(&H, "kq-log", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    t0 = wb_time_mono_ms();
    err = wb_put(logc, "item", id, "unacked", 7, WB_ACK_LOG, &v);
    ms = wb_time_mono_ms() - t0;
    assert_true(err == WB_ERR_TIMEOUT || err == WB_ERR_KAFKA);
    assert_true(ms >= 1500 && ms < 5000);
    s = lh_hget(&H, key, "d"); /* in the cache, dirty: the sweeper's to deliver */
    assert_string_equal(s, "1");
    free(s);

    assert_int_equal(lh_services("start-one", "kafka"), 0);
    kafka_stopped = 0;
    assert_int_equal(wb_client_flush(client, 90000), WB_OK);
    wb_client_stats(client, &st, sizeof(st));
    assert_int_equal(st.queue_depth, 0);
    lh_id(&H, "kqq-", prefix, sizeof(prefix));
    snprintf(key, sizeof(key), "li:%s", prefix);
    assert_int_equal(lh_count_prefix(&H, H.changes, key, 20, 30000), 20);

    lh_id(&H, "kq-again", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "again", 5, WB_ACK_LOG, &v), WB_OK);
    wb_client_close(logc);
    wb_client_close(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(redis_down_errors_then_recovers, restore_services),
        cmocka_unit_test_teardown(redis_frozen_times_out, restore_services),
        cmocka_unit_test_teardown(kafka_down_queue_fills_then_drains, restore_services),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
