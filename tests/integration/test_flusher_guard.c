/* test_flusher_guard.c — wb-flusher where the version guard and statement size meet the cache:
 * a refused event never marks an obsolete cache value clean (invariants 2, 4) nor unpins a
 * write-through whose event is not in the log yet (invariant 11), and a
 * statement that fails for its size is split, not retried whole forever. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_entry.h"

/* The test's flusher and topics: torn down after each test, also when it
 * failed, so no flusher outlives its test. */
static fh_t G;

static int cleanup(void **state)
{
    char sql[256];

    (void)state;
    if (!G.tag[0]) return 0;
    fh_stop(&G, 30000, NULL);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"%s\"; DROP FUNCTION IF EXISTS \"%s_slow\"()",
             G.table, G.table);
    PQclear(fh_sql(&G, sql));
    fh_teardown(&G);
    return 0;
}

/* Field f of hash k, or "" if absent. */
static void hget(fh_t *fh, const char *k, const char *f, char *out, size_t size)
{
    redisReply *r = wb_test_redis(fh->redis, "HGET %s %s", k, f);
    if (!r) fh_die("redis");
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Waits until the cache entry k is no longer dirty (clean or dropped). */
static int wait_not_dirty(fh_t *fh, const char *k, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    char d[8];
    for (;;) {
        hget(fh, k, "d", d, sizeof(d));
        if (strcmp(d, "1") != 0) return 0;
        if (wb_time_mono_ms() - t0 > timeout_ms) return -1;
        usleep(100000);
    }
}

/* Waits until the flusher has created its table (it is then consuming). */
static int wait_table(fh_t *fh, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT to_regclass('\"%s\"') IS NOT NULL", fh->table);
    for (;;) {
        PGresult *res = fh_sql(fh, sql);
        int ok = res && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (ok) return 0;
        if (wb_time_mono_ms() - t0 > timeout_ms) return -1;
        usleep(100000);
    }
}

static void put_dirty(fh_t *fh, const char *k, const char *v, int64_t *version)
{
    wb_entry_put_req_t req = {.key = k,
                              .keylen = strlen(k),
                              .value = v,
                              .len = strlen(v),
                              .dirty_index = fh->conf->redis.dirty_index};
    wb_entry_put_res_t res;
    char errstr[256];
    if (wb_entry_put(fh->redis, &req, &res, errstr, sizeof(errstr)) != WB_OK) fh_die(errstr);
    *version = res.version;
}

/* A write-behind put V is dirty in the cache; a write-through then commits
 * V' > V in PostgreSQL but fails to set the cache. The flusher applies V:
 * refused by the guard. Cleaning against V would make the cache serve V for
 * a whole TTL while PostgreSQL holds V'; cleaned against what PostgreSQL
 * holds, the obsolete value goes and the next read reloads V'. */
static void refused_event_drops_the_obsolete_value(void **state)
{
    (void)state;
    int64_t v = 0, v2 = 0;
    char sql[512], buf[64], k1[128], k2[128], where[256];
    wb_entry_t e;

    fh_setup(&G, "guard", "text", "  batch:\n    max_wait_ms: 20\n");
    /* Keys of their own: other tests share this Redis. */
    char body[160];
    snprintf(body, sizeof(body), "item:%s_1", G.tag);
    wb_test_key(k1, sizeof(k1), G.conf->redis.dirty_shards, body);
    snprintf(body, sizeof(body), "item:%s_2", G.tag);
    wb_test_key(k2, sizeof(k2), G.conf->redis.dirty_shards, body);
    fh_start(&G);
    assert_int_equal(wait_table(&G, 30000), 0);

    put_dirty(&G, k1, "old", &v);
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"%s\" (key, value, version, deleted, updated_at) "
             "VALUES ('%s', 'new', %" PRId64 ", false, now())",
             G.table, strchr(k1, '}') + 6, v + 1000);
    PQclear(fh_sql(&G, sql));
    /* A key the guard lets through, for comparison. */
    put_dirty(&G, k2, "fine", &v2);
    fh_produce(&G, k1, "old", v);
    fh_produce(&G, k2, "fine", v2);
    fh_flush(&G);

    int rc1 = wait_not_dirty(&G, k1, 30000), rc2 = wait_not_dirty(&G, k2, 30000);
    if (rc1 || rc2) fh_dump_log(&G);
    assert_int_equal(rc1, 0);
    assert_int_equal(rc2, 0);

    /* k1: no value served; the version memory is PostgreSQL's. */
    assert_int_equal(wb_entry_read(G.redis, k1, strlen(k1), &e, buf, sizeof(buf)), WB_OK);
    assert_false(e.found);
    wb_entry_clear(&e);
    hget(&G, k1, "ver", buf, sizeof(buf));
    assert_int_equal(strtoll(buf, NULL, 10), v + 1000);
    snprintf(where, sizeof(where), "WHERE key = '%s' AND value = 'new'",
             strchr(k1, '}') + 6); /* the id, after tag and "item:" */
    assert_int_equal(fh_count(&G, where), 1);
    /* k2: written and cleaned as usual. */
    assert_int_equal(wb_entry_read(G.redis, k2, strlen(k2), &e, buf, sizeof(buf)), WB_OK);
    assert_true(e.found);
    assert_false(e.dirty);
    assert_string_equal(e.value, "fine");
    wb_entry_clear(&e);
    snprintf(where, sizeof(where), "WHERE key = '%s' AND value = 'fine'", strchr(k2, '}') + 6);
    assert_int_equal(fh_count(&G, where), 1);
    redisReply *r = wb_test_redis(G.redis, "DEL %s", k1);
    freeReplyObject(r);
    r = wb_test_redis(G.redis, "DEL %s", k2);
    freeReplyObject(r);
    fh_teardown(&G);
}

/* A write-through V' committed in PostgreSQL and pinned in the cache (dirty
 * at V', listed) before its event reached the log; an older event V of the
 * key arrives and is refused. Its clean-mark at the version PostgreSQL
 * holds (V') must leave the pinned entry alone: it stays dirty until V''s
 * own event is in the log (invariant 11). That event, whose version
 * PostgreSQL already holds (equal, not refused), then cleans it. */
static void refused_event_leaves_a_pinned_write_through(void **state)
{
    (void)state;
    int64_t v = 0, v2 = 0;
    char sql[512], buf[64], k1[128], k2[128];
    wb_entry_t e;
    int applied = 0;

    fh_setup(&G, "settle", "text", "  batch:\n    max_wait_ms: 20\n");
    char body[160];
    snprintf(body, sizeof(body), "item:%s_1", G.tag);
    wb_test_key(k1, sizeof(k1), G.conf->redis.dirty_shards, body);
    snprintf(body, sizeof(body), "item:%s_2", G.tag);
    wb_test_key(k2, sizeof(k2), G.conf->redis.dirty_shards, body);
    fh_start(&G);
    assert_int_equal(wait_table(&G, 30000), 0);

    put_dirty(&G, k1, "old", &v);
    int64_t vt = v + 1000;
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"%s\" (key, value, version, deleted, updated_at) "
             "VALUES ('%s', 'new', %" PRId64 ", false, now())",
             G.table, strchr(k1, '}') + 6, vt); /* the id, after tag and "item:" */
    PQclear(fh_sql(&G, sql));
    wb_entry_through_req_t tr = {.key = k1,
                                 .keylen = strlen(k1),
                                 .dirty_index = G.conf->redis.dirty_index,
                                 .value = "new",
                                 .len = 3,
                                 .version = vt};
    assert_int_equal(wb_entry_through(G.redis, &tr, &applied, buf, sizeof(buf)), WB_OK);
    assert_int_equal(applied, 1);
    /* The old event, then a marker key's: once the marker is clean, the
     * old event's clean-mark was sent before it (one cleaner, in order). */
    put_dirty(&G, k2, "marker", &v2);
    fh_produce(&G, k1, "old", v);
    fh_flush(&G);
    fh_produce(&G, k2, "marker", v2);
    fh_flush(&G);
    int rc = wait_not_dirty(&G, k2, 30000);
    if (rc) fh_dump_log(&G);
    assert_int_equal(rc, 0);
    usleep(300000);

    assert_int_equal(wb_entry_read(G.redis, k1, strlen(k1), &e, buf, sizeof(buf)), WB_OK);
    assert_true(e.found && e.dirty);
    assert_int_equal(e.version, vt);
    assert_string_equal(e.value, "new");
    assert_int_equal(e.pttl_ms, -1);
    wb_entry_clear(&e);
    int shard = 0;
    char idx[256];
    wb_entry_key_tag(k1, strlen(k1), &shard);
    wb_entry_index_key(G.conf->redis.dirty_index, shard, idx, sizeof(idx));
    redisReply *r = wb_test_redis(G.redis, "ZSCORE %s %s", idx, k1);
    assert_true(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);

    /* Its own event: PostgreSQL holds that version already; cleaned. */
    fh_produce(&G, k1, "new", vt);
    fh_flush(&G);
    rc = wait_not_dirty(&G, k1, 30000);
    if (rc) fh_dump_log(&G);
    assert_int_equal(rc, 0);
    assert_int_equal(wb_entry_read(G.redis, k1, strlen(k1), &e, buf, sizeof(buf)), WB_OK);
    assert_true(e.found);
    assert_false(e.dirty);
    assert_int_equal(e.version, vt);
    assert_string_equal(e.value, "new");
    assert_true(e.pttl_ms > 0);
    wb_entry_clear(&e);
    r = wb_test_redis(G.redis, "DEL %s", k1);
    freeReplyObject(r);
    r = wb_test_redis(G.redis, "DEL %s", k2);
    freeReplyObject(r);
}

/* Adds "  statement_timeout_ms: ms" to the postgres section of the config. */
static void set_statement_timeout(fh_t *fh, int ms)
{
    char text[8192], add[64];
    FILE *f = fopen(fh->cfg, "r");
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f) fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "postgres:\n");
    if (!at) fh_die("config without postgres:");
    at += strlen("postgres:\n");
    snprintf(add, sizeof(add), "  statement_timeout_ms: %d\n", ms);
    f = fopen(fh->cfg, "w");
    if (!f) fh_die("config");
    fprintf(f, "%.*s%s%s", (int)(at - text), text, add, at);
    fclose(f);
}

/* Every row costs 60 ms (a trigger) and statements time out after 400 ms:
 * the batch of 16 rows can only be written in pieces. It used to be
 * retried whole, forever (57014 counted as an outage). */
static void timed_out_batch_is_split(void **state)
{
    (void)state;
    fh_row_t truth[16];
    fh_dead_t dead[4];
    char sql[768], key[32], val[32];

    memset(truth, 0, sizeof(truth));
    fh_setup(&G, "split", "text", "  batch:\n    max_events: 16\n    max_wait_ms: 3000\n");
    set_statement_timeout(&G, 400);
    fh_start(&G);
    assert_int_equal(wait_table(&G, 30000), 0);
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION \"%s_slow\"() RETURNS trigger LANGUAGE plpgsql AS "
             "$$BEGIN PERFORM pg_sleep(0.06); RETURN NEW; END$$; "
             "CREATE TRIGGER slow BEFORE INSERT ON \"%s\" FOR EACH ROW EXECUTE FUNCTION "
             "\"%s_slow\"()",
             G.table, G.table, G.table);
    PQclear(fh_sql(&G, sql));

    for (int k = 0; k < 16; k++) {
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "s%d", k);
        fh_truth_apply(&truth[k], val, 100 + k);
        fh_produce(&G, key, val, 100 + k);
    }
    fh_flush(&G);
    int d = fh_wait_truth(&G, truth, 16, 60000);
    if (d) fh_dump_log(&G);
    assert_int_equal(d, 0);
    assert_int_equal(fh_read_dlq(&G, dead, 4), 0); /* split, nothing dead-lettered */

    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(refused_event_drops_the_obsolete_value, cleanup),
        cmocka_unit_test_teardown(refused_event_leaves_a_pinned_write_through, cleanup),
        cmocka_unit_test_teardown(timed_out_batch_is_split, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
