/* test_refresher.c — wb-refresher's refresh-ahead against the real services.
 *
 * The real wb-refresher runs as a child; refresh requests come from the
 * real library (its refresh-ahead trigger on a read hit) or are produced
 * the way the library produces them. Outcomes are checked in Redis (value,
 * version, dirty flag, TTL) and through the library's reads. */
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

static wb_client_t *client_open(const rh_t *rh)
{
    char errstr[512];
    wb_client_t *client = NULL;
    if (wb_client_open(rh->cfg[0], NULL, NULL, &client, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_client_open: %s", errstr);
    return client;
}

static void entry(rh_t *rh, const char *id, wb_entry_t *e)
{
    char key[256], errstr[256];
    rh_key(rh, id, key, sizeof(key));
    memset(e, 0, sizeof(*e));
    if (wb_entry_read(rh->redis, key, strlen(key), e, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_entry_read: %s", errstr);
}

static void fill(rh_t *rh, const char *id, const char *value, int64_t version, int64_t ttl_ms,
                 int deleted)
{
    char key[256], errstr[256];
    rh_key(rh, id, key, sizeof(key));
    wb_entry_fill_req_t req = {.key = key,
                               .keylen = strlen(key),
                               .value = value,
                               .len = value ? strlen(value) : 0,
                               .version = version,
                               .ttl_ms = ttl_ms,
                               .is_deleted = deleted};
    wb_entry_fill_res_t res;
    if (wb_entry_fill(rh->redis, &req, &res, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_entry_fill: %s", errstr);
}

/* A hot key read near expiry gets its TTL extended, is never missed while
 * read steadily, and takes a newer version PostgreSQL got meanwhile. */
static void near_expiry_read_extends_ttl_and_takes_newer_version(void **state)
{
    rh_t *rhp = *state;
    wb_client_t *client = NULL;
    wb_value_t v;
    wb_entry_t e;
    int misses = 0, reads = 0;

    rh_setup_ex(rhp, "ahead", "  collapse_window_ms: 300\n", "  refresh_dedupe_ms: 300\n",
                "    ttl_ms: 3000\n    refresh_ahead: 0.5\n", NULL);
    rh_row(rhp, "hot", "a", 100);
    start_ready(rhp, 0);
    client = client_open(rhp);

    /* Read-through miss fills the cache with the entity's TTL. */
    memset(&v, 0, sizeof(v));
    assert_int_equal(wb_get(client, "item", "hot", &v), WB_OK);
    assert_string_equal((char *)v.data, "a");
    assert_int_equal(v.version, 100);
    wb_value_free(&v);

    /* Past half the TTL a hit asks for a refresh; the entry is at
     * PostgreSQL's version, so the refresher only extends its TTL. */
    usleep(1700 * 1000);
    memset(&v, 0, sizeof(v));
    assert_int_equal(wb_get(client, "item", "hot", &v), WB_OK);
    assert_int_equal(v.hit, 1);
    wb_value_free(&v);
    int64_t t0 = wb_time_mono_ms();
    int64_t pttl = 0;
    do {
        entry(rhp, "hot", &e);
        pttl = e.pttl_ms;
        assert_true(e.found);
        assert_int_equal(e.version, 100);
        wb_entry_clear(&e);
        if (pttl > 2000) break;
        usleep(20000);
    } while (wb_time_mono_ms() - t0 < 1200);
    assert_true(pttl > 2000);
    assert_true(rh_metric(rhp, 0, "wb_refresher_ttl_extended_total") >= 1);

    /* Read steadily for more than two TTLs: never a miss. */
    t0 = wb_time_mono_ms();
    while (wb_time_mono_ms() - t0 < 7000) {
        memset(&v, 0, sizeof(v));
        assert_int_equal(wb_get(client, "item", "hot", &v), WB_OK);
        misses += !v.hit;
        reads++;
        wb_value_free(&v);
        usleep(100000);
    }
    assert_int_equal(misses, 0);
    assert_true(rh_metric(rhp, 0, "wb_refresher_ttl_extended_total") >= 3);

    /* Another client wrote through to PostgreSQL (the cache here never saw
     * it): the next refresh takes the newer version, still without a miss. */
    rh_row(rhp, "hot", "b", 200);
    int got_b = 0;
    t0 = wb_time_mono_ms();
    while (!got_b && wb_time_mono_ms() - t0 < 6000) {
        memset(&v, 0, sizeof(v));
        assert_int_equal(wb_get(client, "item", "hot", &v), WB_OK);
        misses += !v.hit;
        got_b = strcmp((char *)v.data, "b") == 0 && v.version == 200;
        wb_value_free(&v);
        usleep(100000);
    }
    assert_true(got_b);
    assert_int_equal(misses, 0);
    entry(rhp, "hot", &e);
    assert_int_equal(e.version, 200);
    assert_false(e.dirty);
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);
    assert_true(rh_metric(rhp, 0, "wb_refresher_reloads_total") >= 1);
    printf("hot key: %d reads over ~%.0f s, %d misses\n", reads, 7.0, misses);

    wb_client_close(client);
    assert_int_equal(rh_stop(rhp, 0, 15000, NULL), 0);
    rh_teardown(rhp);
}

/* Write-behind put, then a refresh before the flusher ran: the newer cached
 * value survives, dirty and pinned; a clean entry newer than the row too. */
static void dirty_or_newer_entry_survives_refresh(void **state)
{
    rh_t *rhp = *state;
    wb_client_t *client = NULL;
    wb_entry_t e;
    wb_value_t v;
    int64_t ver = 0;
    char key[256];

    rh_setup(rhp, "dirty", NULL);
    rh_row(rhp, "d", "old", 100);
    rh_row(rhp, "n", "pg-older", 400);
    fill(rhp, "n", "cache-newer", 500, 60000, 0);
    start_ready(rhp, 0);
    client = client_open(rhp);
    /* No flusher runs: the event waits in Kafka, the entry stays dirty. */
    assert_int_equal(wb_put(client, "item", "d", "new", 3, WB_ACK_LOG, &ver), WB_OK);
    assert_true(ver > 100);

    rh_request_refresh(rhp, "d");
    rh_request_refresh(rhp, "n");
    rh_flush(rhp);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_skipped_dirty_total", 1, 10000) >= 1);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_skipped_newer_total", 1, 10000) >= 1);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_reloads_total"), 0);

    entry(rhp, "d", &e);
    assert_true(e.found);
    assert_true(e.dirty);
    assert_int_equal(e.version, ver);
    assert_string_equal(e.value, "new");
    assert_int_equal(e.pttl_ms, -1); /* still pinned */
    wb_entry_clear(&e);
    char idx[300];
    rh_key(rhp, "d", key, sizeof(key));
    redisReply *r =
        wb_test_redis(rhp->redis, "ZSCORE %s %s", rh_dirty_shard(rhp, key, idx, sizeof(idx)), key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* still in the dirty index */
    freeReplyObject(r);

    entry(rhp, "n", &e);
    assert_int_equal(e.version, 500);
    assert_string_equal(e.value, "cache-newer");
    wb_entry_clear(&e);

    memset(&v, 0, sizeof(v));
    assert_int_equal(wb_get(client, "item", "d", &v), WB_OK);
    assert_string_equal((char *)v.data, "new");
    wb_value_free(&v);

    wb_client_close(client);
    assert_int_equal(rh_stop(rhp, 0, 15000, NULL), 0);
    rh_teardown(rhp);
}

/* A soft-deleted row turns the cached value into a tombstone (never the
 * stale value); a key without a row is left alone and not extended. */
static void deleted_row_never_brings_back_a_stale_value(void **state)
{
    rh_t *rhp = *state;
    wb_client_t *client = NULL;
    wb_entry_t e;
    wb_value_t v;

    rh_setup(rhp, "deleted", NULL);
    rh_row(rhp, "x", "alive", 100);
    fill(rhp, "x", "alive", 100, 60000, 0);
    rh_row(rhp, "x", NULL, 200);                 /* deleted by another client, write-through */
    rh_row(rhp, "y", NULL, 300);                 /* deleted row, nothing cached */
    fill(rhp, "orphan", "cached", 50, 20000, 0); /* no row at all */
    start_ready(rhp, 0);
    client = client_open(rhp);

    rh_request_refresh(rhp, "x");
    rh_request_refresh(rhp, "y");
    rh_request_refresh(rhp, "orphan");
    rh_flush(rhp);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_batches_total", 1, 10000) >= 1);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_rows_missing_total", 1, 10000) >= 1);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_reloads_total", 2, 10000) >= 2);

    entry(rhp, "x", &e);
    assert_true(e.found);
    assert_true(e.deleted);
    assert_false(e.dirty);
    assert_int_equal(e.version, 200);
    assert_int_equal(e.value_len, 0);
    wb_entry_clear(&e);
    memset(&v, 0, sizeof(v));
    assert_int_equal(wb_get(client, "item", "x", &v), WB_ERR_NOT_FOUND);
    wb_value_free(&v);

    entry(rhp, "y", &e);
    assert_true(e.found);
    assert_true(e.deleted);
    assert_int_equal(e.version, 300);
    wb_entry_clear(&e);

    /* Without a row there is nothing to decide with: untouched, and it
     * expires on its own TTL (20 s, not the entity's 60 s). */
    entry(rhp, "orphan", &e);
    assert_true(e.found);
    assert_string_equal(e.value, "cached");
    assert_int_equal(e.version, 50);
    assert_true(e.pttl_ms > 0 && e.pttl_ms <= 20000);
    wb_entry_clear(&e);

    wb_client_close(client);
    assert_int_equal(rh_stop(rhp, 0, 15000, NULL), 0);
    rh_teardown(rhp);
}

/* Repeated requests collapse into one reload; offsets are committed, so a
 * restarted refresher (same group) does not redo them; SIGTERM exits 0. */
static void repeats_collapse_and_offsets_are_committed(void **state)
{
    rh_t *rhp = *state;
    wb_entry_t e;
    int64_t elapsed = 0;

    rh_setup(rhp, "collapse", "  collapse_window_ms: 20000\n");
    rh_row(rhp, "c", "v", 100);
    rh_row(rhp, "c2", "w", 100);
    fill(rhp, "c", "v", 100, 5000, 0);
    start_ready(rhp, 0);

    for (int i = 0; i < 30; i++)
        rh_request_refresh(rhp, "c");
    rh_request_refresh(rhp, "c2");
    /* A request naming no configured entity is ignored, not fatal. */
    {
        wb_event_t ev = {.key = "zzz:1",
                         .keylen = 5,
                         .entity = "nope",
                         .entitylen = 4,
                         .kind = WB_EVENT_REFRESH};
        rd_kafka_headers_t *h = NULL;
        assert_int_equal(wb_event_to_rd_headers(&ev, &h), WB_OK);
        assert_int_equal(rd_kafka_producev(rhp->producer, RD_KAFKA_V_TOPIC(rhp->refresh),
                                           RD_KAFKA_V_KEY("zzz:1", 5), RD_KAFKA_V_HEADERS(h),
                                           RD_KAFKA_V_END),
                         0);
    }
    rh_flush(rhp);
    assert_int_equal(rh_wait_metric(rhp, 0, "wb_refresher_requests_total", 32, 10000), 32);
    assert_int_equal(rh_wait_metric(rhp, 0, "wb_refresher_batches_total", 1, 5000) >= 1, 1);
    usleep(300000);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_requests_collapsed_total"), 29);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_requests_invalid_total"), 1);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_ttl_extended_total"), 1);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_reloads_total"), 1);
    entry(rhp, "c", &e);
    assert_true(e.pttl_ms > 5000); /* extended to the entity's 60 s */
    wb_entry_clear(&e);
    entry(rhp, "c2", &e);
    assert_true(e.found);
    assert_string_equal(e.value, "w");
    wb_entry_clear(&e);

    assert_int_equal(rh_stop(rhp, 0, 15000, &elapsed), 0);
    assert_true(elapsed < 10000);

    /* Same group again: nothing is re-delivered. */
    start_ready(rhp, 0);
    usleep(3000 * 1000);
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_requests_total"), 0);
    rh_request_refresh(rhp, "c");
    rh_flush(rhp);
    assert_int_equal(rh_wait_metric(rhp, 0, "wb_refresher_requests_total", 1, 10000), 1);
    assert_int_equal(rh_wait_metric(rhp, 0, "wb_refresher_ttl_extended_total", 1, 5000), 1);
    assert_int_equal(rh_stop(rhp, 0, 15000, NULL), 0);
    rh_teardown(rhp);
}

/* PostgreSQL unreachable: alive, not ready, retrying with backoff, and a
 * clean exit 0 on SIGTERM. */
static void postgres_unreachable_is_not_ready_and_exits_cleanly(void **state)
{
    rh_t *rhp = *state;
    char body[1024];
    int64_t elapsed = 0;

    rh_setup_ex(rhp, "nopg", NULL, NULL, NULL,
                "host=127.0.0.1 port=1 dbname=wbcache user=wbcache password=x");
    rh_start(rhp, 0);
    assert_int_equal(rh_wait_http(rhp, 0, "/healthz", 200, 10000), 200);
    assert_true(rh_wait_metric(rhp, 0, "wb_refresher_retries_total{dependency=\"postgres\"}", 3,
                               10000) >= 3);
    assert_int_equal(rh_http(rhp, 0, "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "postgres"));
    /* Issue 14, item 11: the dependency, never libpq's error (host, port). */
    assert_non_null(strstr(body, "postgres unavailable"));
    assert_null(strstr(body, "127.0.0.1"));
    assert_null(strstr(body, "port 1"));
    assert_int_equal(rh_metric(rhp, 0, "wb_refresher_ready"), 0);
    assert_int_equal(rh_stop(rhp, 0, 10000, &elapsed), 0);
    assert_true(elapsed < 3000);
    rh_teardown(rhp);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(rh_t));
    return *state ? 0 : -1;
}

/* Runs after a failed assertion too: no child outlives its test. */
static int teardown(void **state)
{
    rh_t *rhp = *state;
    if (rhp->conf) rh_teardown(rhp);
    free(rhp);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(near_expiry_read_extends_ttl_and_takes_newer_version),
        TEST(dirty_or_newer_entry_survives_refresh),
        TEST(deleted_row_never_brings_back_a_stale_value),
        TEST(repeats_collapse_and_offsets_are_committed),
        TEST(postgres_unreachable_is_not_ready_and_exits_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
