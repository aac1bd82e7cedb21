/* test_refresher_sweep.c — wb-refresher's dirty sweeper against the real services.
 *
 * Stranded writes are made with the put Lua script alone (a producer that
 * died between Redis and Kafka): no change event exists until the sweeper
 * re-publishes it. The real wb-flusher carries it into PostgreSQL; the
 * changes topic is read back to count and check what was published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "refresher_harness.h"
#include "wb_entry.h"

#define READY_MS   20000
#define SWEEP_FAST "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n"

static void start_ready(rh_t *rh, int slot)
{
    rh_start(rh, slot);
    if (rh_wait_http(rh, slot, "/readyz", 200, READY_MS) != 200) {
        rh_dump_log(rh, slot);
        fail_msg("child %d did not become ready", slot);
    }
}

/* The put script alone; returns the version, *wt the write time. */
static int64_t lua_put(rh_t *rh, const char *id, const char *value, int64_t *wt)
{
    char key[256], errstr[256];
    rh_key(rh, id, key, sizeof(key));
    wb_entry_put_req_t req = {.key = key,
                              .keylen = strlen(key),
                              .value = value,
                              .len = value ? strlen(value) : 0,
                              .is_delete = value == NULL,
                              .dirty_index = rh->dirty};
    wb_entry_put_res_t res;
    if (wb_entry_put(rh->redis, &req, &res, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_entry_put: %s", errstr);
    if (wt) *wt = res.time_us;
    return res.version;
}

static int indexed(rh_t *rh, const char *id, double *score)
{
    char key[256], idx[300];
    rh_key(rh, id, key, sizeof(key));
    redisReply *r =
        wb_test_redis(rh->redis, "ZSCORE %s %s", rh_dirty_shard(rh, key, idx, sizeof(idx)), key);
    int in = r && r->type == REDIS_REPLY_STRING;
    if (in && score) *score = strtod(r->str, NULL);
    freeReplyObject(r);
    return in;
}

static void index_old(rh_t *rh, const char *id)
{
    char key[256], idx[300];
    rh_key(rh, id, key, sizeof(key));
    freeReplyObject(wb_test_redis(rh->redis, "ZADD %s %lld %s",
                                  rh_dirty_shard(rh, key, idx, sizeof(idx)),
                                  (long long)(wb_time_real_us() - 60000000), key));
}

/* A put whose event never reached Kafka: after sweep_after_ms the sweeper
 * publishes it with the same version, value, entity and write time, and the
 * flusher writes that version to PostgreSQL (a delete too). */
static void stranded_put_reaches_postgres_with_its_version(void **state)
{
    rh_t *rh = *state;
    char key[256], value[256];
    int64_t wt1 = 0, wt2 = 0, ver = 0;
    int deleted = 0;
    const rh_event_t *ev = NULL;
    wb_entry_t e;

    rh_setup(rh, "stranded", SWEEP_FAST);
    rh_row(rh, "s2", "was", 100);
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);
    int64_t v1 = lua_put(rh, "s1", "stranded value", &wt1);
    int64_t v2 = lua_put(rh, "s2", NULL, &wt2);
    int64_t t0 = wb_time_mono_ms();

    int64_t t_pg = -1;
    while (wb_time_mono_ms() - t0 < 20000) {
        int ok1 = rh_get_row(rh, "s1", value, sizeof(value), &ver, &deleted) && ver == v1 &&
                  !deleted && strcmp(value, "stranded value") == 0;
        int ok2 =
            rh_get_row(rh, "s2", value, sizeof(value), &ver, &deleted) && ver == v2 && deleted;
        if (ok1 && ok2) {
            t_pg = wb_time_mono_ms() - t0;
            break;
        }
        usleep(20000);
    }
    if (t_pg < 0) {
        rh_dump_log(rh, 0);
        rh_dump_log(rh, RH_FLUSHER_SLOT);
    }
    assert_true(t_pg >= 0);
    /* Not before sweep_after_ms; at most a pass interval and a flusher batch later. */
    assert_true(t_pg >= 1000);
    printf("stranded writes in PostgreSQL %" PRId64 " ms after the puts (sweep_after_ms 1000, "
           "sweep_interval_ms 200)\n",
           t_pg);

    /* What the sweeper published: the entry's own version, value, write
     * time and entity; the delete as a Kafka tombstone. */
    rh_read_changes(rh, 1500);
    assert_true(rh_count_events(rh, rh_key(rh, "s1", key, sizeof(key)), &ev) >= 1);
    assert_int_equal(ev->version, v1);
    assert_int_equal(ev->time_us, wt1);
    assert_false(ev->is_delete);
    assert_string_equal(ev->value, "stranded value");
    assert_string_equal(ev->entity, "item");
    assert_true(rh_count_events(rh, rh_key(rh, "s2", key, sizeof(key)), &ev) >= 1);
    assert_int_equal(ev->version, v2);
    assert_int_equal(ev->time_us, wt2);
    assert_true(ev->is_delete);

    /* The flusher marked them clean and unindexed them; a clean entry is
     * never published again. */
    int64_t t1 = wb_time_mono_ms();
    while (indexed(rh, "s1", NULL) && wb_time_mono_ms() - t1 < 5000)
        usleep(50000);
    assert_false(indexed(rh, "s1", NULL));
    memset(&e, 0, sizeof(e));
    rh_key(rh, "s1", key, sizeof(key));
    assert_int_equal(wb_entry_read(rh->redis, key, strlen(key), &e, NULL, 0), WB_OK);
    assert_false(e.dirty);
    assert_int_equal(e.version, v1);
    wb_entry_clear(&e);
    int n1 = rh_count_events(rh, key, NULL);
    rh_read_changes(rh, 2500);
    assert_int_equal(rh_count_events(rh, key, NULL), n1);
    assert_true(rh_metric(rh, 0, "wb_refresher_swept_total") >= 2);
}

/* A write-through whose change event cannot reach Kafka (its client's
 * broker is dead): the call succeeds (PostgreSQL committed), the entry is
 * pinned (dirty, listed), and the sweeper publishes it with its version, so
 * the log holds it (invariant 11); the flusher's clean-mark at that version
 * (PostgreSQL already holds it) then gives it its TTL. */
static void through_event_lost_is_swept_into_the_log(void **state)
{
    rh_t *rh = *state;
    char key[256], value[256], errstr[512], dead[64];
    const rh_event_t *ev = NULL;
    wb_config_t *conf = NULL;
    wb_client_t *client = NULL;
    int64_t v = 0, ver = 0;
    int deleted = 0;
    wb_entry_t e;

    rh_setup(rh, "through", SWEEP_FAST);
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);
    assert_int_equal(wb_config_load(rh->cfg[0], &conf, errstr, sizeof(errstr)), WB_OK);
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", rh_free_port());
    free(conf->kafka.brokers);
    conf->kafka.brokers = strdup(dead);
    assert_int_equal(wb_client_open_config(conf, NULL, NULL, &client, errstr, sizeof(errstr)),
                     WB_OK);

    assert_int_equal(wb_put_through(client, "item", "t1", "through value", 13, &v), WB_OK);
    assert_true(rh_get_row(rh, "t1", value, sizeof(value), &ver, &deleted));
    assert_int_equal(ver, v);
    assert_true(indexed(rh, "t1", NULL));

    /* Delivered by the sweeper: in the log with its own version and value. */
    rh_key(rh, "t1", key, sizeof(key));
    int64_t t0 = wb_time_mono_ms();
    while (rh_count_events(rh, key, &ev) == 0 && wb_time_mono_ms() - t0 < 15000)
        rh_read_changes(rh, 200);
    if (!ev) rh_dump_log(rh, 0);
    assert_non_null(ev);
    assert_int_equal(ev->version, v);
    assert_false(ev->is_delete);
    assert_string_equal(ev->value, "through value");
    assert_string_equal(ev->entity, "item");

    /* ...and cleaned at that version by the flusher, TTL set. */
    while (indexed(rh, "t1", NULL) && wb_time_mono_ms() - t0 < 20000)
        usleep(50000);
    assert_false(indexed(rh, "t1", NULL));
    memset(&e, 0, sizeof(e));
    assert_int_equal(wb_entry_read(rh->redis, key, strlen(key), &e, NULL, 0), WB_OK);
    assert_true(e.found);
    assert_false(e.dirty);
    assert_int_equal(e.version, v);
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);
    assert_true(rh_get_row(rh, "t1", value, sizeof(value), &ver, &deleted));
    assert_int_equal(ver, v);
    assert_string_equal(value, "through value");
    wb_client_close(client);
}

/* Members whose entry is gone, clean or only a reservation are unindexed
 * and never published; the dirty one is published once and stays indexed
 * with its score moved forward. */
static void gone_and_clean_members_are_unindexed_not_published(void **state)
{
    rh_t *rh = *state;
    char key[256], errstr[256];
    double score = 0;
    int64_t wt = 0;

    /* Members are indexed a minute back, so the first pass takes them and the
     * dirty one is not due again within the test. */
    rh_setup(rh, "members", "  sweep_interval_ms: 200\n  sweep_after_ms: 20000\n");
    index_old(rh, "gone");
    rh_key(rh, "clean", key, sizeof(key));
    wb_entry_fill_req_t req = {.key = key,
                               .keylen = strlen(key),
                               .value = "clean",
                               .len = 5,
                               .version = 100,
                               .ttl_ms = 60000};
    assert_int_equal(wb_entry_fill(rh->redis, &req, NULL, errstr, sizeof(errstr)), WB_OK);
    index_old(rh, "clean");
    freeReplyObject(
        wb_test_redis(rh->redis, "HSET %s rv 123", rh_key(rh, "reserved", key, sizeof(key))));
    index_old(rh, "reserved");
    int64_t ver = lua_put(rh, "dirty", "d", &wt);
    index_old(rh, "dirty");
    start_ready(rh, 0);

    assert_true(rh_wait_metric(rh, 0, "wb_refresher_sweep_unindexed_total", 3, 10000) >= 3);
    assert_true(rh_wait_metric(rh, 0, "wb_refresher_swept_total", 1, 10000) >= 1);
    assert_false(indexed(rh, "gone", NULL));
    assert_false(indexed(rh, "clean", NULL));
    assert_false(indexed(rh, "reserved", NULL));
    assert_true(indexed(rh, "dirty", &score));
    assert_true(score > (double)wt); /* moved to the pass time */

    rh_read_changes(rh, 1500);
    const rh_event_t *ev = NULL;
    assert_int_equal(rh_count_events(rh, rh_key(rh, "dirty", key, sizeof(key)), &ev), 1);
    assert_int_equal(ev->version, ver);
    assert_int_equal(rh_count_events(rh, rh_key(rh, "clean", key, sizeof(key)), NULL), 0);
    assert_int_equal(rh_count_events(rh, rh_key(rh, "gone", key, sizeof(key)), NULL), 0);
    assert_int_equal(rh_count_events(rh, rh_key(rh, "reserved", key, sizeof(key)), NULL), 0);
    assert_int_equal(rh->nevents, 1);

    /* The clean entry itself is untouched. */
    wb_entry_t e;
    memset(&e, 0, sizeof(e));
    rh_key(rh, "clean", key, sizeof(key));
    assert_int_equal(wb_entry_read(rh->redis, key, strlen(key), &e, NULL, 0), WB_OK);
    assert_string_equal(e.value, "clean");
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);
}

/* A burst of stranded writes (a Kafka outage's worth) is recovered in
 * passes of at most sweep_max_per_pass, every one reaching PostgreSQL with
 * its version. */
static void many_stranded_writes_recover_in_bounded_passes(void **state)
{
    rh_t *rh = *state;
    enum { N = 2000 };
    char id[32], sql[256];
    static int64_t vers[N];

    rh_setup(rh, "burst",
             "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n  sweep_max_per_pass: 500\n");
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);
    for (int k = 0; k < N; k++) {
        snprintf(id, sizeof(id), "b%d", k);
        vers[k] = lua_put(rh, id, "burst", NULL);
    }
    int64_t t0 = wb_time_mono_ms(), t_all = -1;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\" WHERE value = 'burst'", rh->table);
    while (wb_time_mono_ms() - t0 < 30000) {
        PGresult *res = rh_sql(rh, sql);
        long n = res ? atol(PQgetvalue(res, 0, 0)) : -1;
        PQclear(res);
        if (n == N) {
            t_all = wb_time_mono_ms() - t0;
            break;
        }
        usleep(50000);
    }
    assert_true(t_all >= 0);
    printf("%d stranded writes in PostgreSQL %" PRId64 " ms after the last put (sweep_after_ms "
           "1000, interval 200, max 500 per pass)\n",
           N, t_all);
    /* Every row holds the version the put script gave it. */
    int wrong = 0;
    for (int k = 0; k < N; k++) {
        char value[64];
        int64_t ver = 0;
        int del = 0;
        snprintf(id, sizeof(id), "b%d", k);
        if (!rh_get_row(rh, id, value, sizeof(value), &ver, &del) || ver != vers[k]) wrong++;
    }
    assert_int_equal(wrong, 0);
    assert_true(rh_metric(rh, 0, "wb_refresher_sweep_passes_total") >= 4);
    assert_true(rh_wait_metric(rh, 0, "wb_refresher_swept_total", N, 5000) >= N);
    /* The flusher cleaned them all: the index empties. */
    int64_t t1 = wb_time_mono_ms();
    long left = -1;
    while (wb_time_mono_ms() - t1 < 10000) {
        wb_entry_dirty_stats_t st;
        left = wb_entry_dirty_stats(rh->redis, rh->dirty, rh->conf->redis.dirty_shards, &st, NULL,
                                    0) == WB_OK
                   ? (long)st.count
                   : -1;
        if (left == 0) break;
        usleep(100000);
    }
    assert_int_equal(left, 0);
}

/* Redis lost its script cache (SCRIPT FLUSH, or a restart) while this
 * replica held the lease: its own scripts (lease renewal, the member
 * check) fall back to EVAL and are loaded again, so it keeps the lease and
 * still re-publishes a stranded write, with its version. */
static void sweeper_survives_script_cache_loss(void **state)
{
    rh_t *rh = *state;
    char key[256];
    const rh_event_t *ev = NULL;
    int64_t wt = 0;

    rh_setup(rh, "noscript", SWEEP_FAST);
    start_ready(rh, 0);
    assert_true(rh_wait_metric(rh, 0, "wb_refresher_sweep_leader", 1, 5000) == 1);
    wb_test_redis_each(rh->redis, "SCRIPT FLUSH");
    int64_t ver = lua_put(rh, "n1", "after flush", &wt);

    rh_key(rh, "n1", key, sizeof(key));
    int64_t t0 = wb_time_mono_ms();
    while (rh_count_events(rh, key, NULL) == 0 && wb_time_mono_ms() - t0 < 15000)
        rh_read_changes(rh, 200);
    if (rh_count_events(rh, key, &ev) == 0) rh_dump_log(rh, 0);
    assert_true(rh_count_events(rh, key, &ev) >= 1);
    assert_int_equal(ev->version, ver);
    assert_int_equal(ev->time_us, wt);
    assert_string_equal(ev->value, "after flush");
    assert_true(rh_metric(rh, 0, "wb_refresher_sweep_leader") == 1);
    /* Counted when the pass has the delivery report, which may come a moment
     * after a consumer already sees the event. */
    assert_true(rh_wait_metric(rh, 0, "wb_refresher_swept_total", 1, 5000) >= 1);
}

#define NKEYS 20

static int all_counts(rh_t *rh, int want)
{
    char id[32], key[256];
    int bad = 0;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(id, sizeof(id), "k%d", k);
        int n = rh_count_events(rh, rh_key(rh, id, key, sizeof(key)), NULL);
        if (n != want) {
            if (bad < 3) fprintf(stderr, "%s: %d events, want %d\n", key, n, want);
            bad++;
        }
    }
    return bad;
}

static int distinct_seen(rh_t *rh)
{
    char id[32], key[256];
    int seen = 0;
    for (int k = 0; k < NKEYS; k++) {
        snprintf(id, sizeof(id), "k%d", k);
        seen += rh_count_events(rh, rh_key(rh, id, key, sizeof(key)), NULL) > 0;
    }
    return seen;
}

/* Two replicas: one holds the lease, each stuck key is published once per
 * sweep_after_ms; when the holder stops, the other takes over. */
static void two_replicas_sweep_each_key_once_per_pass(void **state)
{
    rh_t *rh = *state;
    char id[32];
    int64_t elapsed = 0;

    rh_setup(rh, "replicas", "  sweep_interval_ms: 200\n  sweep_after_ms: 3000\n");
    for (int k = 0; k < NKEYS; k++) {
        snprintf(id, sizeof(id), "k%d", k);
        lua_put(rh, id, "v", NULL);
    }
    start_ready(rh, 0);
    start_ready(rh, 1);

    int64_t t0 = wb_time_mono_ms();
    while (distinct_seen(rh) < NKEYS && wb_time_mono_ms() - t0 < 15000)
        rh_read_changes(rh, 100);
    assert_int_equal(distinct_seen(rh), NKEYS);
    int64_t t1 = wb_time_mono_ms();

    rh_read_changes(rh, 1500);
    assert_int_equal(all_counts(rh, 1), 0);
    double l0 = rh_metric(rh, 0, "wb_refresher_sweep_leader");
    double l1 = rh_metric(rh, 1, "wb_refresher_sweep_leader");
    assert_true(l0 + l1 == 1);
    int leader = l0 == 1 ? 0 : 1, standby = 1 - leader;
    assert_int_equal(rh_metric(rh, standby, "wb_refresher_sweep_passes_total"), 0);

    /* Still dirty (no flusher) another sweep_after_ms later: sent again, once. */
    rh_read_changes(rh, (int)(t1 + 4800 - wb_time_mono_ms()));
    assert_int_equal(all_counts(rh, 2), 0);

    /* The holder stops and gives the lease back: the other one sweeps. */
    assert_int_equal(rh_stop(rh, leader, 15000, &elapsed), 0);
    assert_true(rh_wait_metric(rh, standby, "wb_refresher_sweep_leader", 1, 3000) == 1);
    rh_read_changes(rh, (int)(t1 + 7900 - wb_time_mono_ms()));
    assert_int_equal(all_counts(rh, 3), 0);
    assert_int_equal(rh_metric(rh, standby, "wb_refresher_swept_total"), NKEYS);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(rh_t));
    return *state ? 0 : -1;
}

/* Runs after a failed assertion too: no child outlives its test. */
static int teardown(void **state)
{
    rh_t *rh = *state;
    if (rh->conf) rh_teardown(rh);
    free(rh);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(stranded_put_reaches_postgres_with_its_version),
        TEST(through_event_lost_is_swept_into_the_log),
        TEST(gone_and_clean_members_are_unindexed_not_published),
        TEST(many_stranded_writes_recover_in_bounded_passes),
        TEST(sweeper_survives_script_cache_loss),
        TEST(two_replicas_sweep_each_key_once_per_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
