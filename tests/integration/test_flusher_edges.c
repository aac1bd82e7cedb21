/* test_flusher_edges.c — wb-flusher at the edges: a table dropped or altered under it is an
 * outage, never poison (invariant 7); a version far ahead of the clock is dead-lettered
 * (invariant 4); a batch's memory is bounded by what its messages hold, headers included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"

/* The test's flusher and topics: torn down after each test, also when it
 * failed, so no flusher outlives its test. */
static fh_t G;

static int cleanup(void **state)
{
    (void)state;
    if (!G.tag[0]) return 0;
    fh_teardown(&G);
    memset(&G, 0, sizeof(G));
    return 0;
}

static void sql_ok(fh_t *fh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql_ok(fh_t *fh, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGresult *res = fh_sql(fh, sql);
    if (!res) fail_msg("sql failed: %s", sql);
    PQclear(res);
}

static void start_ready(fh_t *fh)
{
    fh_start(fh);
    if (fh_wait_http(fh, "/readyz", 200, 30000) != 200) {
        fh_dump_log(fh);
        fail_msg("wb-flusher did not become ready");
    }
}

/* Produces item:<k> = "<tag>-<k>" at version for k in [0, n) into truth. */
static void produce_all(fh_t *fh, fh_row_t *truth, int n, const char *tag, int64_t version)
{
    char key[64], val[64];
    for (int k = 0; k < n; k++) {
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "%s-%d", tag, k);
        fh_truth_apply(&truth[k], val, version);
        fh_produce(fh, key, val, version);
    }
    fh_flush(fh);
}

/* 1 if the flusher's log holds every string of the NULL-terminated list
 * on one line. */
static int log_has(const fh_t *fh, ...)
{
    char line[4096];
    FILE *f = fopen(fh->log, "r");
    int found = 0;

    if (!f) return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        va_list ap;
        const char *s;
        found = 1;
        va_start(ap, fh);
        while ((s = va_arg(ap, const char *)) != NULL)
            if (!strstr(line, s)) found = 0;
        va_end(ap);
    }
    fclose(f);
    return found;
}

static void assert_truth(fh_t *fh, const fh_row_t *truth, int n, int timeout_ms)
{
    int diffs = fh_wait_truth(fh, truth, n, timeout_ms);
    if (diffs) fh_dump_log(fh);
    assert_int_equal(diffs, 0);
}

static void assert_no_dead_letters(fh_t *fh)
{
    fh_dead_t dead[8];
    int n = fh_read_dlq(fh, dead, 8);
    if (n) {
        fh_dump_log(fh);
        fail_msg("%d dead letters, first: %s", n, dead[0].reason);
    }
}

/* The table dropped under a running flusher: it creates it again
 * (postgres.schema: create) and writes what came meanwhile; dropped and
 * recreated by the operator: written too. Nothing is dead-lettered. */
static void dropped_table_is_recreated(void **state)
{
    (void)state;
    enum { K = 40 };
    fh_row_t truth[K];
    char qt[256];

    memset(truth, 0, sizeof(truth));
    fh_setup(&G, "dropped", "text", NULL);
    fh_qtable(&G, qt, sizeof(qt));
    start_ready(&G);
    produce_all(&G, truth, K, "a", 10);
    assert_truth(&G, truth, K, 30000);

    /* Dropped: the rows are gone; what comes next must land. */
    sql_ok(&G, "DROP TABLE %s", qt);
    memset(truth, 0, sizeof(truth));
    produce_all(&G, truth, K, "b", 20);
    assert_truth(&G, truth, K, 30000);
    /* Ready again once the batch that recreated it is collected (the rows can
     * be visible a moment before). */
    assert_int_equal(fh_wait_http(&G, "/readyz", 200, 10000), 200);

    /* Dropped and recreated by hand (same layout) while running. */
    sql_ok(&G, "DROP TABLE %s", qt);
    sql_ok(&G,
           "CREATE TABLE %s (key text PRIMARY KEY, value text, version bigint NOT NULL, deleted "
           "boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())",
           qt);
    memset(truth, 0, sizeof(truth));
    produce_all(&G, truth, K, "c", 30);
    assert_truth(&G, truth, K, 30000);
    assert_no_dead_letters(&G);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

/* Waits for /readyz to say 503 and the log to name the reason. */
static void assert_outage(fh_t *fh, const char *what, const char *detail)
{
    int64_t t0 = wb_time_mono_ms();
    while (!log_has(fh, "ERROR", fh->table, what, detail, (char *)NULL) &&
           wb_time_mono_ms() - t0 < 30000)
        usleep(200000);
    if (!log_has(fh, "ERROR", fh->table, what, detail, (char *)NULL)) {
        fh_dump_log(fh);
        fail_msg("no ERROR naming %s and \"%s\"", fh->table, detail);
    }
    assert_int_equal(fh_wait_http(fh, "/readyz", 503, 10000), 503);
}

/* ALTER COLUMN value TYPE integer, then varchar(2), under a running
 * flusher: every row fails; it is an outage (not ready, an ERROR naming
 * the table and the column), nothing is dead-lettered, and once the ALTER
 * is undone every write lands. */
static void altered_column_is_an_outage(void **state)
{
    (void)state;
    enum { K = 30 };
    fh_row_t truth[K];
    char qt[256];

    memset(truth, 0, sizeof(truth));
    fh_setup(&G, "altered", "text", NULL);
    fh_qtable(&G, qt, sizeof(qt));
    start_ready(&G);
    produce_all(&G, truth, K, "a", 10);
    assert_truth(&G, truth, K, 30000);

    sql_ok(&G, "ALTER TABLE %s ALTER value TYPE integer USING NULL", qt);
    produce_all(&G, truth, K, "b", 20);
    assert_outage(&G, "tables changed", "\"value\" is integer, expected text");
    assert_int_equal(fh_count(&G, "WHERE version = 20"), 0);
    assert_no_dead_letters(&G);

    sql_ok(&G, "ALTER TABLE %s ALTER value TYPE text", qt);
    assert_truth(&G, truth, K, 30000);
    assert_int_equal(fh_wait_http(&G, "/readyz", 200, 10000), 200);
    assert_no_dead_letters(&G);

    /* A type the statement still fits, but no value does: each row alone
     * fails for its "content" (22001); the table is checked before any
     * row is called poison. */
    sql_ok(&G, "ALTER TABLE %s ALTER value TYPE varchar(2) USING left(value, 2)", qt);
    produce_all(&G, truth, K, "long", 30);
    assert_outage(&G, "not dead-lettering", "\"value\" is character varying");
    assert_int_equal(fh_count(&G, "WHERE version = 30"), 0);
    assert_no_dead_letters(&G);

    sql_ok(&G, "ALTER TABLE %s ALTER value TYPE text", qt);
    assert_truth(&G, truth, K, 30000);
    assert_int_equal(fh_wait_http(&G, "/readyz", 200, 10000), 200);
    assert_no_dead_letters(&G);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

/* A CHECK that refuses every row (added NOT VALID, so the old rows stay):
 * each row alone fails for its "content", but the table refuses a bare
 * tombstone too, so it is an outage and nothing is dead-lettered; once
 * the constraint is dropped every write lands. */
static void check_refusing_everything_is_an_outage(void **state)
{
    (void)state;
    enum { K = 30 };
    fh_row_t truth[K];
    char qt[256];

    memset(truth, 0, sizeof(truth));
    fh_setup(&G, "check", "text", NULL);
    fh_qtable(&G, qt, sizeof(qt));
    start_ready(&G);
    produce_all(&G, truth, K, "a", 10);
    assert_truth(&G, truth, K, 30000);

    sql_ok(&G, "ALTER TABLE %s ADD CONSTRAINT wb_test_refuse CHECK (version < 0) NOT VALID", qt);
    produce_all(&G, truth, K, "b", 20);
    assert_outage(&G, "refuses even a bare tombstone", "SQLSTATE 23514");
    assert_int_equal(fh_count(&G, "WHERE version = 20"), 0);
    assert_no_dead_letters(&G);

    sql_ok(&G, "ALTER TABLE %s DROP CONSTRAINT wb_test_refuse", qt);
    assert_truth(&G, truth, K, 30000);
    assert_int_equal(fh_wait_http(&G, "/readyz", 200, 10000), 200);
    assert_no_dead_letters(&G);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

/* An event whose version is two hours ahead of the flusher's clock is
 * dead-lettered with a reason naming both, and its row is not written;
 * one a minute ahead is applied. */
static void version_far_ahead_is_dead_lettered(void **state)
{
    (void)state;
    fh_dead_t dead[8];
    char vstr[32];
    int64_t now = wb_time_real_us();
    int64_t far = now + INT64_C(2) * 3600 * 1000000, near = now + INT64_C(60) * 1000000;

    fh_setup(&G, "ahead", "text", NULL);
    fh_produce(&G, "item:far", "forged", far);
    fh_produce(&G, "item:near", "skewed", near);
    fh_produce(&G, "item:now", "plain", now);
    fh_flush(&G);
    start_ready(&G);

    int64_t t0 = wb_time_mono_ms();
    while (fh_count(&G, "WHERE key IN ('near', 'now')") < 2 && wb_time_mono_ms() - t0 < 30000)
        usleep(200000);
    assert_int_equal(fh_count(&G, "WHERE key IN ('near', 'now')"), 2);
    int n = 0;
    t0 = wb_time_mono_ms();
    while ((n = fh_read_dlq(&G, dead, 8)) < 1 && wb_time_mono_ms() - t0 < 20000)
        usleep(300000);
    if (n != 1) fh_dump_log(&G);
    assert_int_equal(n, 1);
    assert_string_equal(dead[0].key, "item:far");
    snprintf(vstr, sizeof(vstr), "version %" PRId64 " ", far);
    assert_non_null(strstr(dead[0].reason, vstr));
    assert_non_null(strstr(dead[0].reason, "ahead of the flusher's clock"));
    assert_non_null(strstr(dead[0].reason, "max_version_ahead_ms 3600000"));
    assert_int_equal(fh_count(&G, "WHERE key = 'far'"), 0);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

/* Messages of ~900 KB of headers and no value (deletes): the batch counts
 * their headers, so a batch allowed 50000 events closes at max_bytes and
 * the flusher's peak memory stays near what the config allows rather than
 * holding the whole backlog. */
static void header_bytes_bound_the_batch(void **state)
{
    (void)state;
    enum { N = 150, PAD = 900 * 1024 };
    const int64_t max_bytes = 8 << 20;
    char key[64];
    char *pad = malloc(PAD);

    assert_non_null(pad);
    memset(pad, 'h', PAD);
    fh_setup(&G, "hdrbytes", "text",
             "  batch:\n    max_events: 50000\n    max_bytes: 8388608\n    max_wait_ms: 5000\n");
    /* The process's own footprint, idle: a first run, stopped. */
    start_ready(&G);
    usleep(500000);
    int64_t base = wb_test_peak_rss(G.pid);
    assert_true(base > 0);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);

    for (int k = 0; k < N; k++) {
        snprintf(key, sizeof(key), "item:%d", k);
        wb_event_t ev = {.key = key,
                         .keylen = strlen(key),
                         .is_delete = 1,
                         .version = 10,
                         .time_us = wb_time_real_us(),
                         .entity = "item",
                         .entitylen = 4};
        rd_kafka_headers_t *h = NULL;
        assert_int_equal(wb_event_to_rd_headers(&ev, &h), WB_OK);
        assert_int_equal(rd_kafka_header_add(h, "x-pad", -1, pad, PAD), 0);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(G.topic),
                                        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_HEADERS(h),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(G.producer, 50);
        assert_int_equal(err, 0);
    }
    fh_flush(&G);
    free(pad);

    start_ready(&G);
    int64_t t0 = wb_time_mono_ms();
    while (fh_count(&G, "WHERE deleted") < N && wb_time_mono_ms() - t0 < 60000)
        usleep(200000);
    assert_int_equal(fh_count(&G, "WHERE deleted"), N);
    int64_t peak = wb_test_peak_rss(G.pid);
    /* Two batches (one applying, one filling), each up to max_bytes plus
     * the message that crossed it; the consumer's pre-fetch (4 MB per
     * partition, 3 partitions, plus one oversized message each); 64 MB of
     * slack for the allocator's arenas and fetch buffers (measured: 46-73 MB
     * in all). The backlog is 135 MB; counting values only, the peak was
     * 285 MB. */
    int64_t bound = base + 2 * (max_bytes + PAD) + 3 * (4 * 1024 * 1024 + PAD) + (64 << 20);
    fprintf(stderr,
            "flusher peak RSS: idle %" PRId64 " KB, after %d x 900 KB headers %" PRId64
            " KB, bound %" PRId64 " KB\n",
            base / 1024, N, peak / 1024, bound / 1024);
    assert_true(peak > 0);
    if (wb_test_asan())
        fprintf(stderr, "AddressSanitizer build: the memory bound is not checked\n");
    else
        assert_true(peak <= bound);
    assert_no_dead_letters(&G);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(dropped_table_is_recreated, cleanup),
        cmocka_unit_test_teardown(altered_column_is_an_outage, cleanup),
        cmocka_unit_test_teardown(check_refusing_everything_is_an_outage, cleanup),
        cmocka_unit_test_teardown(version_far_ahead_is_dead_lettered, cleanup),
        cmocka_unit_test_teardown(header_bytes_bound_the_batch, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
