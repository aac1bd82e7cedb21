/* test_refresher_edges.c — wb-refresher at the edges: refresh requests anyone can produce are
 * checked on arrival (a bad id never stalls the refresher), and a reload holds at most
 * refresher.batch.max_bytes of rows however large the batch's values are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "refresher_harness.h"
#include "wb_entry.h"

#define READY_MS 20000

static void start_ready(rh_t *rh, int slot)
{
    rh_start(rh, slot);
    if (rh_wait_http(rh, slot, "/readyz", 200, READY_MS) != 200) {
        rh_dump_log(rh, slot);
        fail_msg("wb-refresher did not become ready");
    }
}

/* Produces a refresh request for the raw cache key (keylen bytes, may hold
 * anything) of entity "item", as any producer on the topic can. */
static void request_raw(rh_t *rh, const char *key, size_t keylen)
{
    wb_event_t ev = {.key = key,
                     .keylen = keylen,
                     .entity = "item",
                     .entitylen = 4,
                     .kind = WB_EVENT_REFRESH,
                     .time_us = wb_time_real_us()};
    rd_kafka_headers_t *h = NULL;
    assert_int_equal(wb_event_to_rd_headers(&ev, &h), WB_OK);
    assert_int_equal(rd_kafka_producev(rh->producer, RD_KAFKA_V_TOPIC(rh->refresh),
                                       RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_HEADERS(h),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
}

/* Requests whose id holds a NUL byte, is not UTF-8, or whose key lies
 * outside the entity's prefix are dropped on arrival (counted, logged);
 * a valid request after them is served. Before, the NUL reached
 * PostgreSQL, failed the batch's query, and the batch was retried for
 * ever. */
static void bad_ids_do_not_stall(void **state)
{
    rh_t *rh = *state;
    char key[256];
    wb_entry_t e;
    size_t plen;

    rh_setup(rh, "badids", NULL);
    rh_row(rh, "good", "fresh", 100);
    start_ready(rh, 0);

    plen = strlen(rh->prefix);
    memcpy(key, rh->prefix, plen);
    memcpy(key + plen, "a\0b", 3);
    request_raw(rh, key, plen + 3);
    memcpy(key + plen, "\xff\xfe", 2);
    request_raw(rh, key, plen + 2);
    request_raw(rh, "elsewhere:1", 11);
    rh_request_refresh(rh, "good");
    rh_flush(rh);

    if (rh_wait_metric(rh, 0, "wb_refresher_reloads_total", 1, 15000) < 1) rh_dump_log(rh, 0);
    assert_int_equal(rh_wait_metric(rh, 0, "wb_refresher_reloads_total", 1, 15000), 1);
    rh_key(rh, "good", key, sizeof(key));
    char errstr[256];
    memset(&e, 0, sizeof(e));
    assert_int_equal(wb_entry_read(rh->redis, key, strlen(key), &e, errstr, sizeof(errstr)), WB_OK);
    assert_true(e.found);
    assert_int_equal(e.version, 100);
    assert_int_equal(e.value_len, 5);
    assert_memory_equal(e.value, "fresh", 5);
    wb_entry_clear(&e);
    assert_int_equal(rh_metric(rh, 0, "wb_refresher_requests_invalid_total"), 3);
    assert_int_equal(rh_metric(rh, 0, "wb_refresher_requests_total"), 4);
    assert_int_equal(rh_wait_http(rh, 0, "/readyz", 200, 5000), 200);
    assert_int_equal(rh_stop(rh, 0, 20000, NULL), 0);
}

/* Replaces the refresher's batch settings in slot 0's config. */
static void set_refresher_batch(rh_t *rh, const char *batch)
{
    char buf[8192], out[8192];
    const char *old = "  batch:\n    max_wait_ms: 50\n";
    FILE *f = fopen(rh->cfg[0], "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *ref = strstr(buf, "refresher:\n");
    assert_non_null(ref);
    char *at = strstr(ref, old);
    assert_non_null(at);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, batch, at + strlen(old));
    f = fopen(rh->cfg[0], "w");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
}

/* 100 rows of 900 KB reloaded in one batch (max_keys 2000): the reload
 * streams the rows and fills them in chunks of max_bytes (4 MB), so the
 * refresher's peak memory stays near that, not near the batch's 90 MB
 * (which it held twice before: the query's result and the pipeline). */
static void reload_memory_is_bounded_by_bytes(void **state)
{
    rh_t *rh = *state;
    enum { N = 100, VALUE = 900 * 1024 };
    const int64_t max_bytes = 4 << 20;
    char sql[512], id[32];

    rh_setup(rh, "rss", NULL);
    set_refresher_batch(rh, "  batch:\n    max_wait_ms: 3000\n    max_keys: 2000\n"
                            "    max_bytes: 4194304\n");
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"%s\" (key, value, version, deleted) SELECT 'r' || g, "
             "repeat('x', %d), 10, false FROM generate_series(1, %d) g",
             rh->table, VALUE, N);
    PQclear(rh_sql(rh, sql));
    start_ready(rh, 0);
    usleep(500000);
    int64_t base = wb_test_peak_rss(rh->pid[0]);
    assert_true(base > 0);

    for (int i = 1; i <= N; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        rh_request_refresh(rh, id);
    }
    rh_flush(rh);
    double reloaded = rh_wait_metric(rh, 0, "wb_refresher_reloads_total", N, 60000);
    if (reloaded < N) rh_dump_log(rh, 0);
    assert_int_equal((int)reloaded, N);
    int64_t peak = wb_test_peak_rss(rh->pid[0]);
    /* A chunk of rows (max_bytes plus the row that crossed it), the same
     * bytes again in the Redis pipeline, libpq's buffer for one row, and
     * 48 MB of slack for the allocator (measured: 25-30 MB in all; the
     * whole batch at once peaked at 196 MB). */
    int64_t bound = base + 2 * (max_bytes + VALUE) + 2 * VALUE + (48 << 20);
    fprintf(stderr,
            "refresher peak RSS: idle %" PRId64 " KB, after reloading %d x 900 KB %" PRId64
            " KB, bound %" PRId64 " KB\n",
            base / 1024, N, peak / 1024, bound / 1024);
    assert_true(peak > 0);
    if (wb_test_asan())
        fprintf(stderr, "AddressSanitizer build: the memory bound is not checked\n");
    else
        assert_true(peak <= bound);
    /* Served, not dropped: a value reads back whole. */
    char key[256], errstr[256];
    wb_entry_t e;
    rh_key(rh, "r7", key, sizeof(key));
    memset(&e, 0, sizeof(e));
    assert_int_equal(wb_entry_read(rh->redis, key, strlen(key), &e, errstr, sizeof(errstr)), WB_OK);
    assert_true(e.found);
    assert_int_equal(e.value_len, VALUE);
    wb_entry_clear(&e);
    assert_int_equal(rh_stop(rh, 0, 20000, NULL), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bad_ids_do_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_memory_is_bounded_by_bytes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
