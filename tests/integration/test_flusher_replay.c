/* test_flusher_replay.c — `wb-flusher replay` rebuilds PostgreSQL from the log
 * (invariant 10): idempotent, time-bounded, and safe for the live group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"

#define K 300

static void produce_range(fh_t *fh, fh_row_t *truth, int kfrom, int kto, int n, int64_t vbase,
                          unsigned *seed)
{
    char key[64], val[64];
    for (int i = 0; i < n; i++) {
        int k = kfrom + rand_r(seed) % (kto - kfrom), del = rand_r(seed) % 6 == 0;
        int64_t ver = vbase + i;
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "r%" PRId64, ver);
        fh_truth_apply(&truth[k], del ? NULL : val, ver);
        fh_produce(fh, key, del ? NULL : val, ver);
    }
    fh_flush(fh);
}

static char *snapshot(fh_t *fh)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(key || ':' || version || ':' || updated_at, ',' ORDER BY key) "
             "FROM \"%s\"",
             fh->table);
    PGresult *res = fh_sql(fh, sql);
    char *s = strdup(res ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return s;
}

static void truncate_table(fh_t *fh)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "TRUNCATE \"%s\"", fh->table);
    PQclear(fh_sql(fh, sql));
}

static void replay_rebuilds_state_idempotently(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 5;

    fh_setup(&fh, "replay", "text", "  batch:\n    max_events: 500\n    max_wait_ms: 20\n");
    produce_range(&fh, truth, 0, K, 4000, 5000000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);

    /* The live group has a member: replay must not move its offsets. */
    const char *steal[] = {"replay", "--from-beginning", "--group-id", fh.group, NULL};
    assert_int_equal(fh_run(&fh, steal, 60000), 2);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);

    /* A restore that lost everything: emptied table, replay from the start. */
    truncate_table(&fh);
    const char *all[] = {"replay", "--from-beginning", NULL};
    int rc = fh_run(&fh, all, 120000);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_int_equal(fh_diff(&fh, truth, K, 1), 0);

    /* Replaying again changes nothing: not a version, not an updated_at. */
    char *before = snapshot(&fh);
    assert_int_equal(fh_run(&fh, all, 120000), 0);
    char *after = snapshot(&fh);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* An invalid time is refused before anything is touched. */
    long rows = fh_count(&fh, "");
    const char *bad[] = {"replay", "--from-time", "2026-02-30T10:00:00Z", NULL};
    assert_int_equal(fh_run(&fh, bad, 60000), 2);
    const char *bad2[] = {"replay", "--from-time", "yesterday", NULL};
    assert_int_equal(fh_run(&fh, bad2, 60000), 2);
    assert_int_equal(fh_count(&fh, ""), rows);
    fh_teardown(&fh);
    free(truth);
}

/* --from-time replays only what was written from that time on. */
static void replay_from_time_starts_there(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *early = calloc(K, sizeof(*early)), *late = calloc(K, sizeof(*late));
    unsigned seed = 9;
    char when[64];

    fh_setup(&fh, "replaytime", "text", NULL);
    produce_range(&fh, early, 0, K / 2, 1000, 100, &seed);
    sleep(2);
    time_t t = time(NULL) - 1;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    sleep(1);
    produce_range(&fh, late, K / 2, K, 1000, 100000, &seed);
    /* The table exists only once a flusher ran: replay creates it too. */
    const char *from[] = {"replay", "--from-time", when, NULL};
    int rc = fh_run(&fh, from, 120000);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_int_equal(fh_diff(&fh, late, K, 1), 0); /* exactly the late keys */

    /* --to-time bounds it from above: only the early keys. */
    truncate_table(&fh);
    const char *upto[] = {"replay", "--from-beginning", "--to-time", when, NULL};
    assert_int_equal(fh_run(&fh, upto, 120000), 0);
    assert_int_equal(fh_diff(&fh, early, K, 1), 0);
    fh_teardown(&fh);
    free(early);
    free(late);
}

/* Replay meets poison: it dead-letters it like the daemon (it used to crash
 * with no dead-letter producer) and writes every good event. */
static void replay_dead_letters_poison(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t truth[10];
    fh_dead_t dead[8];
    char key[32], val[32];

    memset(truth, 0, sizeof(truth));
    fh_setup(&fh, "replaypoison", "jsonb", NULL);
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "%d", k * 7);
        fh_truth_apply(&truth[k], val, 100 + k);
        fh_produce(&fh, key, val, 100 + k);
    }
    fh_produce(&fh, "item:3", "{\"n\":", 200);             /* invalid JSON: PostgreSQL refuses */
    fh_produce_raw(&fh, "item:4", "{}", 2, 201, "nosuch"); /* unknown entity */
    fh_flush(&fh);

    const char *all[] = {"replay", "--from-beginning", NULL};
    int rc = fh_run(&fh, all, 120000);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_int_equal(fh_diff(&fh, truth, 10, 1), 0);
    int n = fh_read_dlq(&fh, dead, 8);
    assert_int_equal(n, 2);
    assert_true((!strcmp(dead[0].key, "item:3") && !strcmp(dead[1].key, "item:4")) ||
                (!strcmp(dead[0].key, "item:4") && !strcmp(dead[1].key, "item:3")));
    fh_teardown(&fh);
}

/* --entity with --group-id would commit the skipped events of the other
 * entities, so the group would never apply them: refused up front. */
static void replay_refuses_entity_with_group(void **state)
{
    (void)state;
    fh_t fh;
    char group[160];

    fh_setup(&fh, "replayentity", "text", NULL);
    fh_produce(&fh, "item:1", "one", 10);
    fh_flush(&fh);
    snprintf(group, sizeof(group), "%s.rp", fh.group);
    const char *both[] = {"replay", "--from-beginning", "--entity", "item", "--group-id", group,
                          NULL};
    assert_int_equal(fh_run(&fh, both, 60000), 2);
    /* Nothing was applied (the table need not even exist yet). */
    assert_true(fh_count(&fh, "") <= 0);
    fh_teardown(&fh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_rebuilds_state_idempotently),
        cmocka_unit_test(replay_from_time_starts_there),
        cmocka_unit_test(replay_dead_letters_poison),
        cmocka_unit_test(replay_refuses_entity_with_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
