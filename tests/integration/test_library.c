/* test_library.c — libwbcache against the real services: write-behind, write-through,
 * read-through, refresh-ahead, argument checks and the throughput API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib_harness.h"
#include "wb_key.h"

static lh_t H;
static wb_client_t *C;

static int group_setup(void **state)
{
    (void)state;
    lh_setup(&H);
    C = lh_client(&H, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    wb_client_close(C);
    lh_teardown(&H);
    return 0;
}

/* Write-behind put: the event reaches Kafka with key = cache key, the
 * version, entity and write time in its headers, and the cache entry is
 * dirty, without TTL, listed in the dirty index (invariants 1-3). */
static void put_event_in_kafka_and_entry_dirty(void **state)
{
    char id[128], key[160];
    int64_t v1 = 0, v2 = 0, vd = 0;
    lh_msg_t m[4];
    char *s;

    (void)state;
    lh_id(&H, "wb1", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put(C, "item", id, "hello", 5, WB_ACK_LOG, &v1), WB_OK);
    assert_int_equal(wb_put(C, "item", id, "world", 5, WB_ACK_CACHE, &v2), WB_OK);
    assert_true(v2 > v1);
    assert_true(v1 > wb_time_real_us() - 60 * 1000000LL); /* the time floor of invariant 1 */

    s = lh_hget(&H, key, "v");
    assert_string_equal(s, "world");
    free(s);
    s = lh_hget(&H, key, "d");
    assert_string_equal(s, "1");
    free(s);
    assert_int_equal(lh_pttl(&H, key), -1);
    assert_true(lh_dirty_score(&H, key) > 0);

    assert_int_equal(wb_del(C, "item", id, WB_ACK_LOG, &vd), WB_OK);
    assert_true(vd > v2);
    s = lh_hget(&H, key, "del");
    assert_string_equal(s, "1");
    free(s);
    assert_int_equal(lh_pttl(&H, key), -1);

    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 4, 3, 20000), 3);
    assert_string_equal(m[0].value, "hello");
    assert_int_equal(m[0].version, v1);
    assert_string_equal(m[0].entity, "item");
    assert_true(m[0].time_us > 0 && m[0].time_us <= v1);
    assert_false(m[0].is_delete);
    assert_string_equal(m[1].value, "world");
    assert_int_equal(m[1].version, v2);
    assert_null(m[2].value); /* a Kafka tombstone */
    assert_true(m[2].is_delete);
    assert_int_equal(m[2].version, vd);
    lh_msgs_free(m, 3);

    wb_value_t out = {0};
    assert_int_equal(wb_get(C, "item", id, &out), WB_ERR_NOT_FOUND); /* dirty tombstone */
}

/* The pipelined batch: every write gets its own version (increasing per
 * key in batch order), all are dirty in Redis and all events arrive. */
static void put_batch_writes_all(void **state)
{
    enum { N = 50 };
    wb_write_t w[N];
    char ids[N][128], vals[N][32], key[160];
    lh_msg_t m[4];

    (void)state;
    for (int i = 0; i < N; i++) {
        char name[32];

        snprintf(name, sizeof(name), "batch%d", i % 25);
        lh_id(&H, name, ids[i], sizeof(ids[i]));
        snprintf(vals[i], sizeof(vals[i]), "value-%d", i);
        memset(&w[i], 0, sizeof(w[i]));
        w[i].entity = "item";
        w[i].id = ids[i];
        w[i].value = i == 30 ? NULL : vals[i]; /* one delete */
        w[i].len = strlen(vals[i]);
    }
    assert_int_equal(wb_put_batch(C, w, N, WB_ACK_LOG), WB_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].err, WB_OK);
        assert_true(w[i].version > 0);
        if (i >= 25) assert_true(w[i].version > w[i - 25].version);
    }
    lh_key(&H, key, sizeof(key), "li:", ids[7]);
    char *s = lh_hget(&H, key, "v");
    assert_string_equal(s, "value-32"); /* the later write of the same key wins */
    free(s);
    assert_true(lh_dirty_score(&H, key) > 0);
    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 4, 2, 20000), 2);
    assert_int_equal(m[0].version, w[7].version);
    assert_int_equal(m[1].version, w[32].version);
    lh_msgs_free(m, 2);

    /* A bad write fails alone. */
    w[0].entity = "nope";
    w[1].value = NULL;
    w[2].len = (size_t)H.conf->producer.max_value_bytes + 1;
    w[2].value = calloc(1, w[2].len);
    assert_int_equal(wb_put_batch(C, w, 4, WB_ACK_CACHE), WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(w[0].err, WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(w[1].err, WB_OK);
    assert_int_equal(w[2].err, WB_ERR_TOO_LARGE);
    assert_int_equal(w[3].err, WB_OK);
    free((void *)w[2].value);
}

/* ack: log one at a time does not wait for the producer's batching delay
 * (linger.ms, here 1000 ms): the event goes through the producer without
 * linger. A key's sequential writes stay in order in the log even when an
 * ack: cache write of it still waits in the lingering producer: the ack: log
 * write that follows goes after it. */
static void put_ack_log_skips_linger_keeps_order(void **state)
{
    static const char props[] = "  properties:\n    linger.ms: 1000\n";
    char yaml[4096 + sizeof(props)], errstr[1024], id[128], key[160];
    const char *vals[] = {"a", "b", "c"};
    int64_t v[3] = {0}, took[3];
    wb_config_t *conf = NULL;
    wb_client_t *client = NULL;
    lh_msg_t m[4];

    (void)state;
    size_t n = lh_config_yaml(&H, NULL, yaml, sizeof(yaml) - sizeof(props));
    char *at = strstr(yaml, "  partitions: 3\n");
    assert_non_null(at);
    at += strlen("  partitions: 3\n");
    memmove(at + strlen(props), at, n - (size_t)(at - yaml) + 1);
    memcpy(at, props, strlen(props));
    assert_int_equal(
        wb_config_load_string("<test>", yaml, strlen(yaml), &conf, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_client_open_config(conf, lh_log, NULL, &client, errstr, sizeof(errstr)),
                     WB_OK);

    lh_id(&H, "nolinger", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "warm", 4, WB_ACK_LOG, NULL), WB_OK);
    for (int i = 0; i < 3; i++) {
        int64_t t0 = wb_time_mono_ms();
        lh_id(&H, vals[i], id, sizeof(id));
        assert_int_equal(wb_put(client, "item", id, vals[i], 1, WB_ACK_LOG, NULL), WB_OK);
        took[i] = wb_time_mono_ms() - t0;
    }
    /* Each one well below linger.ms (a lingering send takes >= 1000 ms). */
    for (int i = 0; i < 3; i++)
        assert_true(took[i] < 500);

    lh_id(&H, "order", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put(client, "item", id, "a", 1, WB_ACK_CACHE, &v[0]), WB_OK);
    assert_int_equal(wb_put(client, "item", id, "b", 1, WB_ACK_LOG, &v[1]), WB_OK);
    assert_int_equal(wb_put(client, "item", id, "c", 1, WB_ACK_LOG, &v[2]), WB_OK);
    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 4, 3, 20000), 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(m[i].value, vals[i]);
        assert_int_equal(m[i].version, v[i]);
    }
    lh_msgs_free(m, 3);
    wb_client_close(client);
}

/* Write-through: the row is committed with the version the cache holds;
 * its change event is in the log with that version and value, and the
 * entry is pinned like a write-behind write until the flusher consumed
 * that event (dirty, no TTL, listed: invariant 11). */
static void put_through_row_matches_cache(void **state)
{
    char id[128], key[160], ver[32];
    int64_t v = 0;
    PGresult *res;
    char *s;

    (void)state;
    lh_id(&H, "wt1", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put_through(C, "item", id, "through", 7, &v), WB_OK);
    res = lh_sql(&H, "SELECT value, version, deleted FROM wb_libtest_items WHERE key = $1", 1, id,
                 NULL, NULL);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "through");
    snprintf(ver, sizeof(ver), "%" PRId64, v);
    assert_string_equal(PQgetvalue(res, 0, 1), ver);
    assert_string_equal(PQgetvalue(res, 0, 2), "f");
    PQclear(res);
    s = lh_hget(&H, key, "ver");
    assert_string_equal(s, ver);
    free(s);
    s = lh_hget(&H, key, "d");
    assert_string_equal(s, "1");
    free(s);
    assert_int_equal(lh_pttl(&H, key), -1);
    assert_true(lh_dirty_score(&H, key) > 0);
    lh_msg_t m[2];
    int n = lh_consume(&H, H.changes, key, 0, m, 2, 1, 15000);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].version, v);
    assert_int_equal(m[0].is_delete, 0);
    assert_int_equal(m[0].valuelen, 7);
    assert_memory_equal(m[0].value, "through", 7);
    assert_string_equal(m[0].entity, "item");
    lh_msgs_free(m, n);
}

/* An older dirty write-behind value is replaced by the newer durable
 * write-through value (which stays listed for its own event), so the
 * flusher can never mark the older value clean later. */
static void put_through_replaces_older_dirty_entry(void **state)
{
    char id[128], key[160];
    int64_t vb = 0, vt = 0;
    wb_value_t out = {0};

    (void)state;
    lh_id(&H, "wt2", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put(C, "item", id, "behind", 6, WB_ACK_CACHE, &vb), WB_OK);
    assert_true(lh_dirty_score(&H, key) > 0);
    assert_int_equal(wb_put_through(C, "item", id, "through", 7, &vt), WB_OK);
    assert_true(vt > vb);
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "through", 7);
    assert_int_equal(out.version, vt);
    assert_int_equal(out.hit, 1);
    wb_value_free(&out);
    char *s = lh_hget(&H, key, "ver"), ver[32];
    snprintf(ver, sizeof(ver), "%" PRId64, vt);
    assert_string_equal(s, ver);
    free(s);
    assert_true(lh_dirty_score(&H, key) > 0);
}

/* PostgreSQL fails (the ghost entity's table does not exist): the call
 * fails and the cache keeps exactly what it had. */
static void put_through_pg_failure_leaves_cache(void **state)
{
    char id[128], key[160], ver[32];
    int64_t vb = 0, vt = 0;
    char *s;

    (void)state;
    lh_id(&H, "wt3", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "lg:", id);
    assert_int_equal(wb_put_through(C, "ghost", id, "x", 1, &vt), WB_ERR_PG);
    assert_int_equal(lh_int(&H, "HEXISTS %s %s", key, "v"), 0);

    assert_int_equal(wb_put(C, "ghost", id, "before", 6, WB_ACK_CACHE, &vb), WB_OK);
    assert_int_equal(wb_put_through(C, "ghost", id, "after", 5, &vt), WB_ERR_PG);
    s = lh_hget(&H, key, "v");
    assert_string_equal(s, "before");
    free(s);
    s = lh_hget(&H, key, "ver");
    snprintf(ver, sizeof(ver), "%" PRId64, vb);
    assert_string_equal(s, ver);
    free(s);
    s = lh_hget(&H, key, "d");
    assert_string_equal(s, "1");
    free(s);
}

/* Read-through: a miss loads the row (hit = 0, the row's version) and
 * fills the cache clean with the entity TTL; the next read is a hit. */
static void get_miss_loads_then_hits(void **state)
{
    char id[128], key[160];
    wb_value_t out = {0};
    wb_stats_t s0, s1;

    (void)state;
    lh_id(&H, "rt1", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    PQclear(lh_sql(&H,
                   "INSERT INTO wb_libtest_items (key, value, version) VALUES ($1, 'from-db', 42)",
                   1, id, NULL, NULL));
    wb_client_stats(C, &s0, sizeof(s0));
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.hit, 0);
    assert_int_equal(out.version, 42);
    assert_int_equal(out.len, 7);
    assert_string_equal(out.data, "from-db");
    wb_value_free(&out);
    char *d = lh_hget(&H, key, "d");
    assert_string_equal(d, "0");
    free(d);
    assert_true(lh_pttl(&H, key) > 50000);
    assert_int_equal(lh_dirty_score(&H, key), -1);

    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.hit, 1);
    assert_int_equal(out.version, 42);
    assert_string_equal(out.data, "from-db");
    wb_value_free(&out);
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.loads - s0.loads, 1);
    assert_int_equal(s1.misses - s0.misses, 1);
    assert_int_equal(s1.hits - s0.hits, 1);
}

/* Redis lost its script cache (restart, SCRIPT FLUSH): the library's own
 * scripts (get, unlock) and the fill fall back to EVAL, so a miss still
 * loads, fills and releases its stampede lock, and a hit still hits. */
static void get_survives_script_cache_loss(void **state)
{
    char id[128], key[160], lock[WB_KEY_SIDE_MAX];
    wb_value_t out = {0};

    (void)state;
    lh_id(&H, "rt-noscript", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    wb_key_side("lock", key, lock);
    PQclear(lh_sql(&H,
                   "INSERT INTO wb_libtest_items (key, value, version) VALUES ($1, 'reloaded', 9)",
                   1, id, NULL, NULL));
    wb_test_redis_each(H.redis, "SCRIPT FLUSH");
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.hit, 0);
    assert_int_equal(out.version, 9);
    assert_string_equal(out.data, "reloaded");
    wb_value_free(&out);
    assert_int_equal(lh_int(&H, "EXISTS %s", lock, NULL), 0); /* unlock ran */
    char *d = lh_hget(&H, key, "d");
    assert_string_equal(d, "0");
    free(d);

    wb_test_redis_each(H.redis, "SCRIPT FLUSH");
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.hit, 1);
    assert_int_equal(out.version, 9);
    assert_string_equal(out.data, "reloaded");
    wb_value_free(&out);
}

/* Not found (no row, or a soft-deleted row) is cached as a tombstone for
 * negative_ttl_ms: the second read does not touch PostgreSQL. */
static void get_not_found_cached_negatively(void **state)
{
    char id[128], id2[128], key[160];
    wb_value_t out = {0};
    wb_stats_t s0, s1;

    (void)state;
    lh_id(&H, "rt-none", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    wb_client_stats(C, &s0, sizeof(s0));
    assert_int_equal(wb_get(C, "item", id, &out), WB_ERR_NOT_FOUND);
    assert_null(out.data);
    long long pttl = lh_pttl(&H, key);
    assert_true(pttl > 0 && pttl <= 3000);
    assert_int_equal(wb_get(C, "item", id, &out), WB_ERR_NOT_FOUND);
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.loads - s0.loads, 1);

    /* A soft-deleted row is not found either. */
    lh_id(&H, "rt-deleted", id2, sizeof(id2));
    PQclear(lh_sql(&H,
                   "INSERT INTO wb_libtest_items (key, value, version, deleted) "
                   "VALUES ($1, NULL, 7, true)",
                   1, id2, NULL, NULL));
    assert_int_equal(wb_get(C, "item", id2, &out), WB_ERR_NOT_FOUND);
    lh_key(&H, key, sizeof(key), "li:", id2);
    char *ver = lh_hget(&H, key, "ver");
    assert_string_equal(ver, "7"); /* the tombstone keeps the row's version */
    free(ver);

    /* After the negative TTL a new row is found. */
    PQclear(lh_sql(&H, "INSERT INTO wb_libtest_items (key, value, version) VALUES ($1, 'late', 9)",
                   1, id, NULL, NULL));
    lh_sleep_ms(3100);
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_string_equal(out.data, "late");
    wb_value_free(&out);
}

/* A read never brings back an older value over a newer dirty write. */
static void get_prefers_newer_dirty_entry(void **state)
{
    char id[128];
    wb_value_t out = {0};
    int64_t v = 0;

    (void)state;
    lh_id(&H, "rt-dirty", id, sizeof(id));
    PQclear(lh_sql(&H, "INSERT INTO wb_libtest_items (key, value, version) VALUES ($1, 'old', 5)",
                   1, id, NULL, NULL));
    assert_int_equal(wb_put(C, "item", id, "new", 3, WB_ACK_CACHE, &v), WB_OK);
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_string_equal(out.data, "new");
    assert_int_equal(out.version, v);
    wb_value_free(&out);
}

/* Refresh-ahead: no request while the remaining TTL is above
 * (1 - 0.5) * 4000 ms; below it exactly one request per dedupe window
 * (1000 ms), however many reads; the request lands on the refresh topic. */
static void refresh_requests_below_threshold_once_per_window(void **state)
{
    char id[128], key[160];
    wb_value_t out = {0};
    wb_stats_t s0, s1;
    lh_msg_t m[8];
    int n;

    (void)state;
    lh_id(&H, "hot1", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "lh:", id);
    PQclear(lh_sql(&H, "INSERT INTO wb_libtest_hot (key, value, version) VALUES ($1, 'warm', 3)", 1,
                   id, NULL, NULL));
    wb_client_stats(C, &s0, sizeof(s0));
    assert_int_equal(wb_get(C, "hot", id, &out), WB_OK); /* miss: fill, TTL 4000 */
    wb_value_free(&out);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wb_get(C, "hot", id, &out), WB_OK);
        wb_value_free(&out);
    }
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.refresh_requests - s0.refresh_requests, 0);

    lh_sleep_ms(2200); /* remaining TTL ~1800 < 2000 */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wb_get(C, "hot", id, &out), WB_OK);
        assert_int_equal(out.hit, 1);
        wb_value_free(&out);
    }
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.refresh_requests - s0.refresh_requests, 1);

    lh_sleep_ms(1100); /* next window, still below the threshold */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wb_get(C, "hot", id, &out), WB_OK);
        wb_value_free(&out);
    }
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.refresh_requests - s0.refresh_requests, 2);

    assert_int_equal(wb_client_flush(C, 10000), WB_OK);
    n = lh_consume(&H, H.refresh, key, 1, m, 8, 3, 5000);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].kind, WB_EVENT_REFRESH);
    assert_string_equal(m[0].entity, "hot");
    assert_int_equal(m[0].version, 3);
    lh_msgs_free(m, n);
}

/* A dirty entry is never the subject of a refresh request (it has no TTL;
 * the flusher owns it). */
static void no_refresh_for_dirty_entries(void **state)
{
    char id[128];
    wb_value_t out = {0};
    wb_stats_t s0, s1;

    (void)state;
    lh_id(&H, "hot-dirty", id, sizeof(id));
    wb_client_stats(C, &s0, sizeof(s0));
    assert_int_equal(wb_put(C, "hot", id, "d", 1, WB_ACK_CACHE, NULL), WB_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wb_get(C, "hot", id, &out), WB_OK);
        wb_value_free(&out);
    }
    wb_client_stats(C, &s1, sizeof(s1));
    assert_int_equal(s1.refresh_requests, s0.refresh_requests);
}

/* Clear errors, and nothing is written when a call is refused. */
static void bad_arguments_are_refused(void **state)
{
    char id[128], key[160];
    size_t big = (size_t)H.conf->producer.max_value_bytes + 1;
    char *value = calloc(1, big);
    wb_value_t out = {0};
    int64_t v = 0;

    (void)state;
    lh_id(&H, "big", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(wb_put(C, "item", id, value, big, WB_ACK_CACHE, &v), WB_ERR_TOO_LARGE);
    assert_int_equal(wb_put_through(C, "item", id, value, big, &v), WB_ERR_TOO_LARGE);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);
    /* The default max_value_bytes fits librdkafka's default message.max.bytes
     * (1000000) with the key and headers... */
    assert_int_equal(H.conf->producer.max_value_bytes, 900000);
    memset(value, 'x', big - 1);
    assert_int_equal(wb_put(C, "item", id, value, big - 1, WB_ACK_LOG, &v), WB_OK);
    free(value);
    /* ...and a max_value_bytes raised above it cannot make a put that could
     * never reach Kafka succeed: refused, nothing written. */
    {
        wb_client_t *raised = lh_client(&H, "  max_value_bytes: 1048576\n");
        size_t n = 1000000;
        char *v1m = malloc(n);

        memset(v1m, 'x', n);
        lh_id(&H, "big1m", id, sizeof(id));
        lh_key(&H, key, sizeof(key), "li:", id);
        assert_int_equal(wb_put(raised, "item", id, v1m, n, WB_ACK_CACHE, &v), WB_ERR_TOO_LARGE);
        assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);
        free(v1m);
        wb_client_close(raised);
    }

    assert_int_equal(wb_put(C, "nope", id, "x", 1, WB_ACK_CACHE, &v), WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(wb_get(C, "nope", id, &out), WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(wb_put(C, "item", "", "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(C, "item", "a{b}", "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(C, "item", "a\nb", "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(C, "item", "\xff\xfe", "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(C, "item", NULL, "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_get(C, "item", "", &out), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_get_or_load(C, "item", id, NULL, NULL, &out), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(NULL, "item", id, "x", 1, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);

    /* An empty value is a value. */
    lh_id(&H, "empty", id, sizeof(id));
    assert_int_equal(wb_put(C, "item", id, "", 0, WB_ACK_CACHE, &v), WB_OK);
    assert_int_equal(wb_get(C, "item", id, &out), WB_OK);
    assert_int_equal(out.len, 0);
    assert_non_null(out.data);
    wb_value_free(&out);
}

/* The version of row id in table, -1 if there is none. */
static int64_t row_version(const char *table, const char *id)
{
    char sql[160];
    PGresult *res;
    int64_t v = -1;

    snprintf(sql, sizeof(sql), "SELECT version FROM %s WHERE key = $1", table);
    res = lh_sql(&H, sql, 1, id, NULL, NULL);
    if (PQntuples(res) == 1) v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Log lines of the checking client, for the reason of a refused write. */
static char seen_log[8][512];
static int nseen_log;

static void capture_log(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN && nseen_log < 8)
        snprintf(seen_log[nseen_log++], sizeof(seen_log[0]), "%s", line);
}

static int logged(const char *part)
{
    for (int i = 0; i < nseen_log; i++)
        if (strstr(seen_log[i], part)) return 1;
    return 0;
}

/* Stop poison at the source: a value the entity's column cannot hold is
 * refused before anything is written — no cache entry, no event, no row —
 * with the reason (and byte offset) in a WARN log line. */
static void invalid_values_are_refused(void **state)
{
    char id[128], key[160], ok_id[128], errstr[1024];
    wb_client_t *client = NULL;
    int64_t v = 0;
    lh_msg_t m[2];

    (void)state;
    assert_int_equal(wb_client_open_config(lh_config(&H, NULL), capture_log, NULL, &client, errstr,
                                           sizeof(errstr)),
                     WB_OK);
    lh_id(&H, "badjson", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "ld:", id);

    /* jsonb: invalid JSON, what jsonb cannot store, and an empty value. */
    nseen_log = 0;
    assert_int_equal(wb_put(client, "doc", id, "{\"a\": 1,}", 9, WB_ACK_LOG, &v),
                     WB_ERR_INVALID_ARG);
    assert_true(logged("value is not valid JSON for a jsonb column: byte 8: expected a string"));
    assert_true(logged(key));
    assert_int_equal(wb_put(client, "doc", id, "\"\\u0000\"", 8, WB_ACK_CACHE, &v),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(client, "doc", id, "", 0, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put_through(client, "doc", id, "[1 2]", 5, &v), WB_ERR_INVALID_ARG);
    /* text: a NUL byte or invalid UTF-8. */
    assert_int_equal(wb_put(client, "item", id, "a\0b", 3, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_true(logged("byte 1: a text value cannot hold a NUL byte"));
    assert_int_equal(wb_put_through(client, "item", id, "caf\xe9", 4, &v), WB_ERR_INVALID_ARG);
    assert_true(logged("byte 3: a text value must be valid UTF-8"));

    /* Nothing was written anywhere: no entry, no reservation, no dirty
     * index member, no event, no row. */
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);
    assert_int_equal(lh_dirty_score(&H, key), -1);
    lh_key(&H, key, sizeof(key), "ld:", id);
    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 2, 1, 2000), 0);
    assert_int_equal(row_version("wb_libtest_docs", id), -1);
    assert_int_equal(row_version("wb_libtest_items", id), -1);

    /* Valid values pass, in one batch with an invalid one that fails alone. */
    lh_id(&H, "goodjson", ok_id, sizeof(ok_id));
    wb_write_t w[3] = {
        {.entity = "doc", .id = ok_id, .value = " {\"a\": [1, 2.5e3, null]} "},
        {.entity = "doc", .id = id, .value = "{\"a\"}"},
        {.entity = "item", .id = ok_id, .value = "caf\xc3\xa9"},
    };
    for (int i = 0; i < 3; i++)
        w[i].len = strlen(w[i].value);
    assert_int_equal(wb_put_batch(client, w, 3, WB_ACK_LOG), WB_ERR_INVALID_ARG);
    assert_int_equal(w[0].err, WB_OK);
    assert_int_equal(w[1].err, WB_ERR_INVALID_ARG);
    assert_int_equal(w[2].err, WB_OK);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);
    assert_int_equal(wb_put_through(client, "doc", ok_id, "{\"through\": true}", 17, &v), WB_OK);
    assert_true(row_version("wb_libtest_docs", ok_id) == v);
    wb_client_close(client);
}

/* Runs `[STDIN_CMD |] wbctl -c <this test's config> ARGS 2>&1`, the config
 * with producer_extra (may be NULL) in its producer section; out[size] gets
 * what it printed. Returns its exit status (-1 when it did not exit). */
static int run_wbctl(const char *producer_extra, const char *stdin_cmd, const char *args, char *out,
                     size_t size)
{
    char cfg[128], yaml[4096], cmd[1024];
    size_t n = lh_config_yaml(&H, producer_extra, yaml, sizeof(yaml)), got;
    FILE *f;
    int status;

    snprintf(cfg, sizeof(cfg), "/tmp/%s.wbctl.yaml", H.tag);
    f = fopen(cfg, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(yaml, 1, n, f), n);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s%s%s/wbctl -c %s %s 2>&1", stdin_cmd ? stdin_cmd : "",
             stdin_cmd ? " | " : "", WB_BINARY_DIR, cfg, args);
    f = popen(cmd, "r");
    assert_non_null(f);
    got = fread(out, 1, size - 1, f);
    out[got] = '\0';
    status = pclose(f);
    unlink(cfg);
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

/* `wbctl put` prints why a value was refused. */
static void wbctl_put_prints_the_reason(void **state)
{
    char args[256], out[4096], id[128];
    int status;

    (void)state;
    lh_id(&H, "wbctl", id, sizeof(id));
    snprintf(args, sizeof(args), "put doc %s '{\"a\": tru}'", id);
    status = run_wbctl(NULL, NULL, args, out, sizeof(out));
    if (!strstr(out, "byte 6: expected a value, found 't'")) fprintf(stderr, "%s", out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "value is not valid JSON for a jsonb column: byte 6: expected a "
                                "value, found 't'"));
    assert_non_null(strstr(out, "wbctl: put: invalid argument"));
}

/* `wbctl put ENTITY ID VALUE --ack log`: an option after the operands, as the
 * usage line shows it, is taken (it once stopped the parse and was refused). */
static void wbctl_put_takes_options_after_operands(void **state)
{
    char args[256], out[4096], id[128], key[160], *end = NULL;
    long long version;
    int status;

    (void)state;
    lh_id(&H, "wbctl-ack", id, sizeof(id));
    snprintf(args, sizeof(args), "put doc %s '{\"a\": 1}' --ack log", id);
    status = run_wbctl(NULL, NULL, args, out, sizeof(out));
    if (status != 0) fprintf(stderr, "%s", out);
    assert_int_equal(status, 0);
    version = strtoll(out, &end, 10);
    assert_true(version > 0 && end && *end == '\n'); /* prints the version */
    /* ack: log returned after Kafka had the event: it is in the topic. */
    lh_key(&H, key, sizeof(key), "ld:", id);
    assert_int_equal(lh_count_prefix(&H, H.conf->kafka.topic_changes, key, 1, 10000), 1);
}

/* Issue 14: `wbctl put ID -` reads no more of stdin than
 * producer.max_value_bytes allows (here 1000), says so, and writes nothing;
 * a value within the limit is written. */
static void wbctl_put_stdin_is_bounded(void **state)
{
    const char *limit = "  max_value_bytes: 1000\n";
    char args[256], out[4096], id[128], key[256];
    int status;

    (void)state;
    lh_id(&H, "stdin", id, sizeof(id));
    snprintf(args, sizeof(args), "put item %s -", id);
    /* 64 MiB offered; wbctl stops reading at 1001 bytes. */
    status = run_wbctl(limit, "head -c 67108864 /dev/zero | tr '\\0' x", args, out, sizeof(out));
    if (!strstr(out, "larger than producer.max_value_bytes")) fprintf(stderr, "%s", out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "wbctl: the value on stdin is larger than "
                                "producer.max_value_bytes (1000 bytes); nothing was written"));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 0);

    status = run_wbctl(limit, "head -c 1000 /dev/zero | tr '\\0' x", args, out, sizeof(out));
    if (status != 0) fprintf(stderr, "%s", out);
    assert_int_equal(status, 0);
    assert_int_equal(lh_int(&H, "EXISTS %s", key, NULL), 1);
}

/* Cache-aside: the loader's value is stored only if the key is absent. */
static wb_err_t loader_x(void *opaque, const char *entity, const char *id, void **value,
                         size_t *len)
{
    (void)entity, (void)id;
    (*(int *)opaque)++;
    *value = strdup("loaded");
    *len = 6;
    return WB_OK;
}

static wb_err_t loader_none(void *opaque, const char *entity, const char *id, void **value,
                            size_t *len)
{
    (void)entity, (void)id, (void)value, (void)len;
    (*(int *)opaque)++;
    return WB_ERR_NOT_FOUND;
}

static wb_err_t loader_fail(void *opaque, const char *entity, const char *id, void **value,
                            size_t *len)
{
    (void)entity, (void)id, (void)value, (void)len;
    (*(int *)opaque)++;
    return WB_ERR_IO;
}

static void get_or_load_cache_aside(void **state)
{
    char id[128];
    wb_value_t out = {0};
    int calls = 0;

    (void)state;
    lh_id(&H, "aside1", id, sizeof(id));
    assert_int_equal(wb_get_or_load(C, "item", id, loader_x, &calls, &out), WB_OK);
    assert_int_equal(out.hit, 0);
    assert_string_equal(out.data, "loaded");
    wb_value_free(&out);
    assert_int_equal(wb_get_or_load(C, "item", id, loader_x, &calls, &out), WB_OK);
    assert_int_equal(out.hit, 1);
    wb_value_free(&out);
    assert_int_equal(calls, 1);

    /* A newer write is never replaced by a loader's value. */
    lh_id(&H, "aside2", id, sizeof(id));
    assert_int_equal(wb_put(C, "item", id, "written", 7, WB_ACK_CACHE, NULL), WB_OK);
    assert_int_equal(wb_get_or_load(C, "item", id, loader_x, &calls, &out), WB_OK);
    assert_string_equal(out.data, "written");
    wb_value_free(&out);
    assert_int_equal(calls, 1);

    lh_id(&H, "aside3", id, sizeof(id));
    assert_int_equal(wb_get_or_load(C, "item", id, loader_none, &calls, &out), WB_ERR_NOT_FOUND);
    assert_int_equal(wb_get_or_load(C, "item", id, loader_none, &calls, &out), WB_ERR_NOT_FOUND);
    assert_int_equal(calls, 2); /* the second answer came from the negative entry */

    lh_id(&H, "aside4", id, sizeof(id));
    assert_int_equal(wb_get_or_load(C, "item", id, loader_fail, &calls, &out), WB_ERR_LOADER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_event_in_kafka_and_entry_dirty),
        cmocka_unit_test(put_batch_writes_all),
        cmocka_unit_test(put_ack_log_skips_linger_keeps_order),
        cmocka_unit_test(put_through_row_matches_cache),
        cmocka_unit_test(put_through_replaces_older_dirty_entry),
        cmocka_unit_test(put_through_pg_failure_leaves_cache),
        cmocka_unit_test(get_miss_loads_then_hits),
        cmocka_unit_test(get_survives_script_cache_loss),
        cmocka_unit_test(get_not_found_cached_negatively),
        cmocka_unit_test(get_prefers_newer_dirty_entry),
        cmocka_unit_test(refresh_requests_below_threshold_once_per_window),
        cmocka_unit_test(no_refresh_for_dirty_entries),
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(invalid_values_are_refused),
        cmocka_unit_test(wbctl_put_prints_the_reason),
        cmocka_unit_test(wbctl_put_takes_options_after_operands),
        cmocka_unit_test(wbctl_put_stdin_is_bounded),
        cmocka_unit_test(get_or_load_cache_aside),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
