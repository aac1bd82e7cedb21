/* test_flusher_outage.c — wb-flusher through a PostgreSQL outage and a SIGTERM mid-load:
 * nothing skipped, nothing dead-lettered, nothing lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"

#define K 500

static int pg_stopped;

/* The drill must never leave PostgreSQL down, whatever happens to the test. */
static void pg_restart(void)
{
    if (pg_stopped) {
        if (system(FH_SERVICES " start-one postgres >/dev/null 2>&1") != 0)
            fprintf(stderr, "harness: could not restart postgres\n");
        pg_stopped = 0;
    }
}

static void on_abort(int sig)
{
    pg_restart();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void produce_load(fh_t *fh, fh_row_t *truth, int from, int n, unsigned *seed)
{
    char key[64], val[64];
    for (int i = from; i < from + n; i++) {
        int k = rand_r(seed) % K, del = rand_r(seed) % 7 == 0;
        int64_t ver = 1000000 + i;
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "v%d", i);
        fh_truth_apply(&truth[k], del ? NULL : val, ver);
        fh_produce(fh, key, del ? NULL : val, ver);
    }
    fh_flush(fh);
}

/* PostgreSQL stopped for some seconds during a load → /readyz not ready
 * while it is down, everything lands after, the dead-letter topic empty. */
static void postgres_outage_is_not_poison(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    fh_dead_t dead[4];
    unsigned seed = 3;

    fh_setup(&fh, "outage", "text", "  batch:\n    max_events: 200\n    max_wait_ms: 20\n");
    fh_start(&fh);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 20000), 200);
    produce_load(&fh, truth, 0, 3000, &seed);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 30000), 0);

    pg_stopped = 1;
    assert_int_equal(system(FH_SERVICES " stop-one postgres >/dev/null 2>&1"), 0);
    produce_load(&fh, truth, 3000, 3000, &seed);
    int code = fh_wait_http(&fh, "/readyz", 503, 20000);
    sleep(3); /* a few retries with backoff while the database is gone */
    int still = fh_http_status(&fh, "/readyz");
    assert_int_equal(fh_http_status(&fh, "/healthz"), 200); /* alive, just not ready */
    pg_restart();
    assert_int_equal(code, 503);
    assert_int_equal(still, 503);

    produce_load(&fh, truth, 6000, 1000, &seed);
    int diffs = fh_wait_truth(&fh, truth, K, 60000);
    if (diffs) fh_dump_log(&fh);
    assert_int_equal(diffs, 0);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 10000), 200);
    assert_int_equal(fh_read_dlq(&fh, dead, 4), 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

/* SIGTERM while a load is being written → exit 0 within the deadline; after
 * a restart every event is in PostgreSQL. */
static void sigterm_mid_load_loses_nothing(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 11;
    int64_t took = 0;

    /* Small batches so the load takes a while to drain. */
    fh_setup(&fh, "sigterm", "text",
             "  batch:\n    max_events: 50\n    max_wait_ms: 5\n  shutdown_deadline_ms: 5000\n");
    produce_load(&fh, truth, 0, 20000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 20000), 200);
    /* Wait until it is writing, then stop it in the middle. */
    int64_t t0 = wb_time_mono_ms();
    while (fh_count(&fh, "") <= 0 && wb_time_mono_ms() - t0 < 20000)
        usleep(20000);
    usleep(200000);
    int rc = fh_stop(&fh, 10000, &took);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_true(took < 5000);

    produce_load(&fh, truth, 20000, 500, &seed);
    fh_start(&fh);
    int diffs = fh_wait_truth(&fh, truth, K, 60000);
    if (diffs) fh_dump_log(&fh);
    assert_int_equal(diffs, 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(postgres_outage_is_not_poison),
        cmocka_unit_test(sigterm_mid_load_loses_nothing),
    };
    signal(SIGABRT, on_abort);
    signal(SIGSEGV, on_abort);
    atexit(pg_restart);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pg_restart();
    return rc;
}
