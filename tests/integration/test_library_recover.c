/* test_library_recover.c — libwbcache getting over failures on its own: a write-through
 * retry that finds its own commit is a success, and a Kafka producer that hit a fatal error
 * is replaced instead of refusing every later event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "lib_harness.h"
#include "wb_log.h"
#include "wb_producer.h"

static lh_t H;

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

/* A write-through's first attempt committed, but the connection died
 * before the answer came; the retry's upsert then applies nothing, because
 * the row already holds its own version. That is success, not
 * WB_ERR_STALE. A trigger plays the lost answer: it writes the row itself
 * (version-guarded) and skips the statement's own insert, which is exactly
 * what the retry sees. */
static void through_own_commit_is_not_stale(void **state)
{
    char yaml[8192], errstr[1024], table[64], sql[1536], id[128], key[160], *s;
    wb_config_t *conf = NULL;
    wb_client_t *client = NULL;
    int64_t v = 0, v2 = 0;
    PGresult *res;

    (void)state;
    snprintf(table, sizeof(table), "wb_libtest_tw_%d", (int)getpid());
    size_t n = lh_config_yaml(&H, NULL, yaml, sizeof(yaml));
    n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
                          "  - {name: tw, prefix: \"lw:\", table: %s, ttl_ms: 60000, "
                          "value_type: text}\n",
                          table);
    assert_int_equal(wb_config_load_string("<test>", yaml, n, &conf, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(wb_table_create(H.pg, wb_config_entity(conf, "tw"), errstr, sizeof(errstr)),
                     WB_OK);
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION %s_f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
             "IF pg_trigger_depth() > 1 THEN RETURN NEW; END IF; "
             "INSERT INTO %s AS t (key, value, version, deleted, updated_at) "
             "VALUES (NEW.key, NEW.value, NEW.version, NEW.deleted, now()) "
             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version "
             "WHERE t.version < EXCLUDED.version; RETURN NULL; END$$",
             table, table);
    PQclear(lh_sql(&H, sql, 0, NULL, NULL, NULL));
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER own BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s_f()", table,
             table);
    PQclear(lh_sql(&H, sql, 0, NULL, NULL, NULL));
    assert_int_equal(wb_client_open_config(conf, lh_log, NULL, &client, errstr, sizeof(errstr)),
                     WB_OK);

    lh_id(&H, "own", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "lw:", id);
    assert_int_equal(wb_put_through(client, "tw", id, "mine", 4, &v), WB_OK);
    snprintf(sql, sizeof(sql), "SELECT version, value FROM %s WHERE key = $1", table);
    res = lh_sql(&H, sql, 1, id, NULL, NULL);
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(strtoll(PQgetvalue(res, 0, 0), NULL, 10), v);
    assert_string_equal(PQgetvalue(res, 0, 1), "mine");
    PQclear(res);
    /* ...and the cache was set (pinned for its event), as for any
     * write-through. */
    s = lh_hget(&H, key, "v");
    assert_string_equal(s, "mine");
    free(s);
    assert_int_equal(lh_int(&H, "HGET %s %s", key, "d"), 1);

    /* A row that really is newer is still WB_ERR_STALE, cache untouched. */
    snprintf(sql, sizeof(sql), "UPDATE %s SET version = version + 1000000000 WHERE key = $1",
             table);
    PQclear(lh_sql(&H, sql, 1, id, NULL, NULL));
    assert_int_equal(wb_put_through(client, "tw", id, "late", 4, &v2), WB_ERR_STALE);
    s = lh_hget(&H, key, "v");
    assert_string_equal(s, "mine");
    free(s);

    wb_client_close(client);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    PQclear(lh_sql(&H, sql, 0, NULL, NULL, NULL));
    snprintf(sql, sizeof(sql), "DROP FUNCTION %s_f()", table);
    PQclear(lh_sql(&H, sql, 0, NULL, NULL, NULL));
}

static int fatal_logged;

static void capture(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level == WB_LOG_ERROR && strstr(line, "fatal error")) fatal_logged++;
}

/* Sends one change event of key through p and waits for Kafka's answer. */
static wb_err_t send_one(wb_producer_t *p, const char *key, const char *value)
{
    char errstr[256];
    wb_event_t ev = {.key = key,
                     .keylen = strlen(key),
                     .value = value,
                     .valuelen = strlen(value),
                     .version = wb_time_real_us(),
                     .time_us = wb_time_real_us(),
                     .entity = "item",
                     .entitylen = 4};
    wb_waiter_t *w = wb_waiter_new(1);
    wb_err_t err;

    assert_non_null(w);
    assert_int_equal(wb_producer_reserve(p, 1), 1);
    err = wb_producer_send(p, &ev, w, 0, errstr, sizeof(errstr));
    if (err == WB_OK) err = wb_waiter_wait(w, 10000);
    if (err == WB_OK) err = wb_waiter_result(w, 0);
    wb_waiter_release(w);
    return err;
}

/* The idempotent producer's fatal errors (a sequence gap the broker cannot
 * explain, a fenced producer id) make librdkafka refuse every message for
 * good. The library notices, logs it at ERROR and replaces the producer:
 * change events flow again without restarting the application. */
static void producer_replaced_after_fatal_error(void **state)
{
    char errstr[1024], id[128], key[160];
    wb_config_t *conf = lh_config(&H, NULL);
    wb_producer_t *p = NULL;
    lh_msg_t m[4];
    wb_err_t err = WB_ERR_KAFKA;

    (void)state;
    wb_log_set_sink(capture, NULL);
    assert_int_equal(wb_producer_new(conf, NULL, &p, errstr, sizeof(errstr)), WB_OK);
    lh_id(&H, "fatal", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    assert_int_equal(send_one(p, key, "before"), WB_OK);

    assert_int_equal(wb_producer_test_fatal(p, "test: fabricated fatal error"), WB_OK);
    /* Until the replacement is in, sends fail fast; then they go through. */
    for (int64_t t0 = wb_time_mono_ms(); wb_time_mono_ms() - t0 < 20000;) {
        if ((err = send_one(p, key, "after")) == WB_OK) break;
        assert_int_equal(err, WB_ERR_KAFKA);
        lh_sleep_ms(100);
    }
    assert_int_equal(err, WB_OK);
    assert_true(fatal_logged >= 1);
    assert_int_equal(lh_consume(&H, H.changes, key, 0, m, 4, 2, 15000), 2);
    assert_string_equal(m[1].value, "after");
    lh_msgs_free(m, 2);

    wb_producer_destroy(p, 2000);
    wb_log_set_sink(NULL, NULL);
    wb_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(through_own_commit_is_not_stale),
        cmocka_unit_test(producer_replaced_after_fatal_error),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
