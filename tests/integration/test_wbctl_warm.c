/* test_wbctl_warm.c — `wbctl warm` against real PostgreSQL and Redis: every row of the table
 * reaches the cache, a writer running meanwhile keeps every one of its dirty entries, a newer
 * clean entry is never replaced (invariant 8), and --where / --limit select the rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_entry.h"
#include "wb_rand.h"
#include "wb_table.h"

#define WBCTL WB_BINARY_DIR "/wbctl"
#define NROWS 4000

/* The test's config, table and topics (the flusher itself never runs). */
static fh_t G;

static int cleanup(void **state)
{
    (void)state;
    if (!G.tag[0]) return 0;
    fh_teardown(&G);
    return 0;
}

/* The cache key of item k: "{N}item:<k>" (wb_entry.h's layout), in buf. */
static const char *item_key(char *buf, size_t size, int k)
{
    char body[32];

    snprintf(body, sizeof(body), "item:%d", k);
    return wb_test_key(buf, size, G.conf->redis.dirty_shards, body);
}

/* Config with entity item, its table created with rows 0..n-1 (version
 * 100, value "pg<k>", every 50th a tombstone, the first ten version 7), and
 * no cache entry item:0..item:n-1. */
static void setup_rows(const char *name, int n)
{
    char errstr[512], sql[512], qt[WB_PG_QUOTED_MAX];

    fh_setup(&G, name, "text", NULL);
    assert_int_equal(
        wb_table_create(G.pg, wb_config_entity(G.conf, "item"), errstr, sizeof(errstr)), WB_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (key, value, version, deleted) SELECT g::text, CASE WHEN g %% 50 = 49 "
             "THEN NULL ELSE 'pg' || g END, CASE WHEN g < 10 THEN 7 ELSE 100 END, g %% 50 = 49 "
             "FROM generate_series(0, %d) g",
             fh_qtable(&G, qt, sizeof(qt)), n - 1);
    PGresult *res = fh_sql(&G, sql);
    assert_non_null(res);
    PQclear(res);
    for (int k = 0; k < n; k++) {
        char key[64];
        redisReply *r = wb_test_redis(G.redis, "DEL %s", item_key(key, sizeof(key), k));
        assert_non_null(r);
        freeReplyObject(r);
    }
}

static pid_t spawn_warm(const char *log, const char *const *args)
{
    const char *argv[16];
    int n = 0;

    argv[n++] = WBCTL;
    argv[n++] = "-c";
    argv[n++] = G.cfg;
    argv[n++] = "warm";
    argv[n++] = "item";
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    unlink(log);
    return wb_test_spawn(argv, log);
}

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    printf("---- %s\n%s", path, buf);
}

static void put(const char *key, const char *value, wb_entry_put_res_t *res)
{
    char errstr[256];
    wb_entry_put_req_t req = {key, strlen(key), value, strlen(value), 0, G.conf->redis.dirty_index,
                              NULL};
    assert_int_equal(wb_entry_put(G.redis, &req, res, errstr, sizeof(errstr)), WB_OK);
}

/* Writes run while the warm-up runs: each written key keeps the writer's
 * dirty entry; a clean entry newer than the table is kept; every other
 * row is in the cache, clean, with the table's version and value. */
static void warm_while_writing_keeps_dirty_and_newer(void **state)
{
    static int64_t written[NROWS]; /* version the writer last put, 0 none */
    char errstr[256], log[300], out[4096], key[64], want[64];
    wb_entry_put_res_t pr;
    int64_t writes = 0, writes_before_exit = 0;
    uint64_t rng = 42;

    (void)state;
    memset(written, 0, sizeof(written));
    setup_rows("warm", NROWS);
    /* A clean entry newer than the table (e.g. filled after a write-through). */
    char k1[64], k2[64];
    item_key(k1, sizeof(k1), 1);
    item_key(k2, sizeof(k2), 2);
    wb_entry_fill_req_t fill = {k1, strlen(k1), "newer", 5, 1000, 60000, 0, NULL};
    wb_entry_fill_res_t fres;
    assert_int_equal(wb_entry_fill(G.redis, &fill, &fres, errstr, sizeof(errstr)), WB_OK);
    put(k2, "dirty-before", &pr);
    written[2] = pr.version;

    snprintf(log, sizeof(log), "%s.warm", G.log);
    pid_t pid = spawn_warm(log, (const char *[]){"--batch", "50", NULL});
    assert_true(pid > 0);
    int status = -1;
    for (;;) { /* the writer */
        int k = 3 + (int)(wb_rand_next(&rng) % (NROWS - 3));
        item_key(key, sizeof(key), k);
        snprintf(want, sizeof(want), "w%" PRId64, writes);
        put(key, want, &pr);
        written[k] = pr.version;
        writes++;
        if (writes % 20 == 0) {
            int st;
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : -2;
                break;
            }
            writes_before_exit = writes;
        }
    }
    read_file(log, out, sizeof(out));
    unlink(log);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "warmed 4000 rows of item"));
    printf("writes during the warm-up: %" PRId64 "\n", writes_before_exit);
    assert_true(writes_before_exit >= 40); /* the writer really overlapped */

    int dirty_kept = 0, filled = 0;
    for (int k = 0; k < NROWS; k++) {
        wb_entry_t e;
        item_key(key, sizeof(key), k);
        assert_int_equal(wb_entry_read(G.redis, key, strlen(key), &e, errstr, sizeof(errstr)),
                         WB_OK);
        assert_true(e.found);
        if (k == 1) {
            assert_false(e.dirty);
            assert_int_equal(e.version, 1000);
            assert_string_equal(e.value, "newer");
        } else if (written[k]) {
            if (!e.dirty || e.version != written[k])
                fprintf(stderr, "key %s: dirty %d version %" PRId64 ", written %" PRId64 "\n", key,
                        e.dirty, e.version, written[k]);
            assert_true(e.dirty);
            assert_int_equal(e.version, written[k]);
            dirty_kept++;
        } else {
            assert_false(e.dirty);
            assert_int_equal(e.version, k < 10 ? 7 : 100);
            assert_int_equal(e.deleted, k % 50 == 49);
            if (!e.deleted) {
                snprintf(want, sizeof(want), "pg%d", k);
                assert_string_equal(e.value, want);
            }
            assert_true(e.pttl_ms > 0);
            filled++;
        }
        wb_entry_clear(&e);
    }
    printf("dirty entries kept: %d, rows filled: %d\n", dirty_kept, filled);
    assert_true(dirty_kept > 0 && filled > 0);
}

/* --where and --limit: only the rows asked for, in key order. */
static void warm_where_and_limit(void **state)
{
    char errstr[256], log[300], out[4096], key[64];

    (void)state;
    setup_rows("warmwhere", 100);
    snprintf(log, sizeof(log), "%s.warm", G.log);
    pid_t pid = spawn_warm(log, (const char *[]){"--where", "version = 7", "--limit", "4", NULL});
    assert_int_equal(wb_test_wait_pid(pid, 60000, NULL), 0);
    read_file(log, out, sizeof(out));
    assert_non_null(strstr(out, "warmed 4 rows of item"));
    assert_non_null(strstr(out, "created 4"));
    for (int k = 0; k < 100; k++) {
        wb_entry_t e;
        item_key(key, sizeof(key), k);
        assert_int_equal(wb_entry_read(G.redis, key, strlen(key), &e, errstr, sizeof(errstr)),
                         WB_OK);
        assert_int_equal(e.found, k < 4); /* ids "0" < "1" < "2" < "3" < "4" ... */
        wb_entry_clear(&e);
    }
    /* A bad condition fails with PostgreSQL's message, and nothing is written. */
    pid = spawn_warm(log, (const char *[]){"--where", "no_such_column = 1", NULL});
    assert_int_equal(wb_test_wait_pid(pid, 60000, NULL), 1);
    read_file(log, out, sizeof(out));
    assert_non_null(strstr(out, "no_such_column"));
    unlink(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(warm_while_writing_keeps_dirty_and_newer, cleanup),
        cmocka_unit_test_teardown(warm_where_and_limit, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
