/* test_flusher_rebalance.c — two wb-flusher processes in one consumer group on a
 * 4-partition topic: the second joins mid-load (cooperative rebalance: the first hands over
 * some partitions after finishing its batch), then the first gets SIGTERM mid-load (its
 * partitions move to the second). PostgreSQL ends equal to the ground truth, and no row is
 * ever seen moving back to an older version on the way. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"

#define K 400 /* keys */

/* Watches the table while the flushers work: every row's version may only
 * grow (invariant 4 across rebalances and re-deliveries). */
typedef struct watch_s {
    fh_t *fh;
    volatile int stop;
    int64_t *seen; /* highest version seen per key */
    long snapshots, backwards;
    char first[256];
} watch_t;

static void *watch_run(void *arg)
{
    watch_t *w = arg;
    char sql[512], qt[WB_PG_QUOTED_MAX];
    PGconn *pg = PQconnectdb(fh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache "
                                                 "user=wbcache password=wbcache"));

    snprintf(sql, sizeof(sql), "SELECT key::int, version FROM %s",
             fh_qtable(w->fh, qt, sizeof(qt)));
    while (!w->stop) {
        PGresult *res = PQexec(pg, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            w->snapshots++;
            for (int r = 0; r < PQntuples(res); r++) {
                int k = atoi(PQgetvalue(res, r, 0));
                int64_t v = strtoll(PQgetvalue(res, r, 1), NULL, 10);
                if (k < 0 || k >= K) continue;
                if (v < w->seen[k]) {
                    if (w->backwards++ == 0)
                        snprintf(w->first, sizeof(w->first),
                                 "key %d went from version %" PRId64 " back to %" PRId64, k,
                                 w->seen[k], v);
                } else {
                    w->seen[k] = v;
                }
            }
        }
        PQclear(res);
        usleep(20000);
    }
    PQfinish(pg);
    return NULL;
}

/* Occurrences of needle in the file at path. */
static int log_count(const char *path, const char *needle)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static int wait_log(const char *path, const char *needle, int count, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    while (log_count(path, needle) < count && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return log_count(path, needle) >= count;
}

/* Partitions a flusher owns by its log: "assigned N partition(s)" minus
 * "revoked N partition(s)" (the cooperative protocol logs increments). */
static int owned(const char *path)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f)) {
        const char *a = strstr(line, "assigned "), *r = strstr(line, "revoked ");
        if (a && strstr(a, " partition(s)")) n += atoi(a + 9);
        if (r && strstr(r, " partition(s)")) n -= atoi(r + 8);
    }
    fclose(f);
    return n;
}

/* n events over random keys with increasing versions (some deletes),
 * produced in chunks with pauses so that the load spans the rebalances. */
static void produce_load(fh_t *fh, fh_row_t *truth, int *next, int n, unsigned *seed)
{
    char key[64], val[64];
    for (int j = 0; j < n; j++, (*next)++) {
        int k = rand_r(seed) % K, del = rand_r(seed) % 9 == 0;
        int64_t ver = 5000000 + *next;
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "v%d", *next);
        fh_truth_apply(&truth[k], del ? NULL : val, ver);
        fh_produce(fh, key, del ? NULL : val, ver);
        if (j % 500 == 499) {
            fh_flush(fh);
            usleep(40000);
        }
    }
    fh_flush(fh);
}

/* A second config for the second process: same group, its own HTTP port. */
static void second_config(const fh_t *fh, fh_t *fh2)
{
    char buf[8192], from[64], to[64];
    FILE *f = fopen(fh->cfg, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    *fh2 = *fh;
    fh2->pid = -1;
    fh2->http_port = wb_test_free_port();
    snprintf(fh2->cfg, sizeof(fh2->cfg), "/tmp/%s.2.yaml", fh->tag);
    snprintf(fh2->log, sizeof(fh2->log), "/tmp/%s.2.log", fh->tag);
    snprintf(from, sizeof(from), "127.0.0.1:%d", fh->http_port);
    snprintf(to, sizeof(to), "127.0.0.1:%d", fh2->http_port);
    char *at = strstr(buf, from);
    assert_non_null(at);
    f = fopen(fh2->cfg, "w");
    assert_non_null(f);
    fprintf(f, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    fclose(f);
}

static void two_flushers_rebalance_mid_load(void **state)
{
    (void)state;
    fh_t fh, fh2;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    watch_t w = {0};
    pthread_t watcher;
    unsigned seed = 4242;
    int next = 0;
    int64_t took = 0;

    fh_setup_ex(&fh, "rebal", "text",
                "  batch:\n    max_events: 100\n    max_wait_ms: 10\n"
                "  shutdown_deadline_ms: 10000\n",
                NULL, 4);
    second_config(&fh, &fh2);

    fh_start(&fh);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 20000), 200);
    assert_true(wait_log(fh.log, "assigned 4 partition(s)", 1, 30000));
    w.fh = &fh;
    w.seen = calloc(K, sizeof(*w.seen));
    assert_int_equal(pthread_create(&watcher, NULL, watch_run, &w), 0);

    /* Phase 1: one flusher owns all four partitions. */
    produce_load(&fh, truth, &next, 6000, &seed);

    /* Phase 2: a second member joins while events keep coming. With the
     * cooperative protocol the first finishes its batch, commits and gives
     * up only the partitions that move (round one), which the second gets
     * in round two. Both then work side by side. */
    fh2.pid = fh_spawn(&fh2, NULL);
    int64_t t0 = wb_time_mono_ms();
    /* Wait for the settled assignment, not the first grant: a commit that
     * races the generation change makes librdkafka take all of the first
     * member's partitions back before it is given its share again. */
    while ((owned(fh2.log) == 0 || owned(fh.log) == 0 || owned(fh.log) + owned(fh2.log) != 4) &&
           wb_time_mono_ms() - t0 < 60000)
        produce_load(&fh, truth, &next, 500, &seed);
    if (owned(fh2.log) == 0 || owned(fh.log) == 0) {
        fh_dump_log(&fh);
        fh_dump_log(&fh2);
    }
    assert_true(owned(fh2.log) > 0);
    assert_true(owned(fh.log) > 0);
    assert_int_equal(owned(fh.log) + owned(fh2.log), 4);
    assert_true(log_count(fh.log, "revoked") >= 1);
    t0 = wb_time_mono_ms();
    while (wb_time_mono_ms() - t0 < 2000)
        produce_load(&fh, truth, &next, 500, &seed);

    /* Phase 3: SIGTERM the first mid-load; it finishes and commits its
     * batch, leaves, and its partitions go to the second. */
    kill(fh.pid, SIGTERM);
    produce_load(&fh, truth, &next, 6000, &seed);
    int rc = fh_wait_pid(fh.pid, 20000, &took);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_true(took < 10000); /* flusher.shutdown_deadline_ms */
    fh.pid = -1;
    t0 = wb_time_mono_ms();
    while (owned(fh2.log) < 4 && wb_time_mono_ms() - t0 < 60000)
        usleep(50000);
    assert_int_equal(owned(fh2.log), 4);
    produce_load(&fh, truth, &next, 2000, &seed);

    int diffs = fh_wait_truth(&fh, truth, K, 90000);
    w.stop = 1;
    pthread_join(watcher, NULL);
    if (diffs || w.backwards) {
        fh_dump_log(&fh);
        fh_dump_log(&fh2);
    }
    assert_int_equal(diffs, 0);
    if (w.backwards) fprintf(stderr, "%ld rows moved backwards; first: %s\n", w.backwards, w.first);
    assert_int_equal(w.backwards, 0);
    assert_true(w.snapshots > 10);

    assert_int_equal(fh_stop(&fh2, 30000, NULL), 0);
    unlink(fh2.cfg);
    if (!getenv("WB_KEEP_LOGS")) unlink(fh2.log);
    fh_teardown(&fh);
    free(w.seen);
    free(truth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_flushers_rebalance_mid_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
