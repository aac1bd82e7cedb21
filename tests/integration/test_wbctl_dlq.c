/* test_wbctl_dlq.c — `wbctl dlq` against a real flusher: dead letters are listed and shown,
 * a redrive after the config skew is fixed lands the rows, and a redrive of a dead letter a
 * newer write overtook changes nothing (the version guard, invariant 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_json.h"

#define WBCTL WB_BINARY_DIR "/wbctl"

/* The test's flusher and topics: torn down after each test, also when it failed. */
static fh_t G;

static int cleanup(void **state)
{
    char sql[256];

    (void)state;
    if (!G.tag[0]) return 0;
    fh_stop(&G, 30000, NULL);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"%s_g\"", G.table);
    PQclear(fh_sql(&G, sql));
    fh_teardown(&G);
    return 0;
}

/* Runs wbctl -c <the test's config> args...; its stdout and stderr into out
 * (NUL-terminated). Returns its exit status. */
static int wbctl(char *out, size_t size, const char *const *args)
{
    const char *argv[24];
    char log[300];
    int n = 0;

    snprintf(log, sizeof(log), "%s.wbctl", G.log);
    unlink(log);
    argv[n++] = WBCTL;
    argv[n++] = "-c";
    argv[n++] = G.cfg;
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int rc = wb_test_wait_pid(wb_test_spawn(argv, log), 60000, NULL);
    FILE *f = fopen(log, "r");
    size_t got = f ? fread(out, 1, size - 1, f) : 0;
    out[got] = '\0';
    if (f) fclose(f);
    unlink(log);
    printf("---- wbctl %s %s\n%s", args[0], args[1] ? args[1] : "", out);
    return rc;
}

/* Adds entity "gadget" (prefix "gadget:", table <table>_g) to the config:
 * the fix of the skew that dead-lettered its events. */
static void add_gadget_entity(void)
{
    FILE *f = fopen(G.cfg, "a");
    assert_non_null(f);
    fprintf(f,
            "  - name: gadget\n    prefix: \"gadget:\"\n    table: %s_g\n    ttl_ms: 60000\n"
            "    value_type: text\n",
            G.table);
    fclose(f);
}

/* Switches the config to log.format json. */
static void log_json(void)
{
    char buf[8192];
    FILE *f = fopen(G.cfg, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, "log:\n  level: info\n");
    assert_non_null(at);
    at += strlen("log:\n  level: info\n");
    f = fopen(G.cfg, "w");
    assert_non_null(f);
    fprintf(f, "%.*s  format: json\n%s", (int)(at - buf), buf, at);
    fclose(f);
}

/* Every line of the flusher's log is one JSON object; returns how many
 * contain want. */
static int json_log_lines_with(const char *want)
{
    char line[8192], errstr[128];
    int n = 0, lines = 0;
    FILE *f = fopen(G.log, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        if (wb_json_check(line, len, errstr, sizeof(errstr)) != WB_OK || line[0] != '{')
            fprintf(stderr, "not a JSON object (%s): %s\n", errstr, line);
        assert_true(line[0] == '{' && wb_json_check(line, len, errstr, sizeof(errstr)) == WB_OK);
        assert_non_null(strstr(line, "\"program\":\"wb-flusher\""));
        n += strstr(line, want) != NULL;
        lines++;
    }
    fclose(f);
    assert_true(lines > 0);
    return n;
}

/* Row id of the gadget table: its version and value (version -1 if absent). */
static int64_t gadget_row(const char *id, char *value, size_t size)
{
    char sql[256];
    int64_t v = -1;

    snprintf(sql, sizeof(sql), "SELECT version, value FROM \"%s_g\" WHERE key = '%s'", G.table, id);
    fh_pg_connect(&G);
    PGresult *res = PQexec(G.pg, sql);
    value[0] = '\0';
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(value, size, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return v;
}

static int64_t wait_gadget_row(const char *id, int64_t version, char *value, size_t size)
{
    int64_t t0 = wb_time_mono_ms(), v;
    while ((v = gadget_row(id, value, size)) != version && wb_time_mono_ms() - t0 < 60000)
        usleep(200000);
    return v;
}

static int wait_dlq(fh_dead_t *dead, int max, int want)
{
    int n = 0;
    int64_t t0 = wb_time_mono_ms();
    while ((n = fh_read_dlq(&G, dead, max)) < want && wb_time_mono_ms() - t0 < 30000)
        usleep(300000);
    return n;
}

/* A gadget event dead-lettered as "unknown entity" under a config without
 * the entity: listed and shown; the dry run sends nothing; after the entity
 * is added, redrive --execute lands the row and nothing is dead-lettered again. */
static void redrive_after_config_fix_lands_rows(void **state)
{
    char out[16384], value[64];
    fh_dead_t dead[8];

    (void)state;
    fh_setup(&G, "dlqfix", "text", NULL);
    log_json(); /* and check the flusher's log.format json on the way */
    fh_produce_raw(&G, "gadget:1", "g1", 2, 5, "gadget");
    fh_produce_raw(&G, "gadget:2", NULL, 0, 6, "gadget"); /* a delete */
    fh_produce(&G, "item:1", "i1", 3);
    fh_flush(&G);
    fh_start(&G);
    assert_int_equal(wait_dlq(dead, 8, 2), 2);
    assert_int_equal(json_log_lines_with("\"level\":\"warn\",\"program\":\"wb-flusher\","
                                         "\"message\":\"dead-lettering an event\""),
                     2);
    assert_int_equal(json_log_lines_with("\"reason\":\"unknown entity \\\"gadget\\\"\"}"), 2);

    assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"dlq", "list", NULL}), 0);
    assert_non_null(strstr(out, "gadget:1"));
    assert_non_null(strstr(out, "gadget:2"));
    assert_non_null(strstr(out, "unknown entity"));
    assert_non_null(strstr(out, G.topic)); /* the origin */
    assert_non_null(strstr(out, "2 dead letters"));
    assert_int_equal(
        wbctl(out, sizeof(out), (const char *[]){"dlq", "list", "--key-prefix", "gadget:2", NULL}),
        0);
    assert_null(strstr(out, "gadget:1"));
    assert_non_null(strstr(out, "1 dead letters"));
    assert_int_equal(
        wbctl(out, sizeof(out), (const char *[]){"dlq", "list", "--entity", "item", NULL}), 0);
    assert_non_null(strstr(out, "0 dead letters"));
    assert_int_equal(
        wbctl(out, sizeof(out), (const char *[]){"dlq", "list", "--older-than", "1h", NULL}), 0);
    assert_non_null(strstr(out, "0 dead letters"));
    /* wbctl status --json counts them, as one JSON object for scripts. */
    char want[256], errstr[128];
    assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"status", "--json", NULL}), 0);
    assert_int_equal(wb_json_check(out, strlen(out) - 1, errstr, sizeof(errstr)), WB_OK);
    snprintf(want, sizeof(want), "\"dead_letters\":{\"topic\":\"%s\",\"messages\":2}}\n", G.dlq);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "\"partitions\":[{\"partition\":0,"));

    /* Which of the two is gadget:1 depends on the order the partitions were read. */
    assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"dlq", "show", "0:0", NULL}), 0);
    if (!strstr(out, "key:          gadget:1"))
        assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"dlq", "show", "0:1", NULL}), 0);
    assert_non_null(strstr(out, "key:          gadget:1"));
    assert_non_null(strstr(out, "reason:       unknown entity"));
    assert_non_null(strstr(out, "version:      5"));
    assert_non_null(strstr(out, "value:        (2 bytes) g1"));
    assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"dlq", "show", "0:9", NULL}), 3);

    /* Dry run: nothing is sent, the flusher's config still lacks the entity. */
    assert_int_equal(wbctl(out, sizeof(out), (const char *[]){"dlq", "redrive", NULL}), 0);
    assert_non_null(strstr(out, "dry run: 2 would be redriven"));
    assert_non_null(strstr(out, "name an entity this config does not have"));

    /* The fix: the flusher restarts with the entity; then redrive. */
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
    add_gadget_entity();
    fh_produce_raw(&G, "gadget:2", "before", 6, 2, "gadget"); /* older than the delete */
    fh_flush(&G);
    fh_start(&G);
    assert_int_equal(wait_gadget_row("2", 2, value, sizeof(value)), 2);
    assert_int_equal(
        wbctl(out, sizeof(out),
              (const char *[]){"dlq", "redrive", "--reason", "unknown entity", "--execute", NULL}),
        0);
    assert_non_null(strstr(out, "redriven: 2 of 2"));
    int64_t v = wait_gadget_row("1", 5, value, sizeof(value));
    if (v != 5) fh_dump_log(&G);
    assert_int_equal(v, 5);
    assert_string_equal(value, "g1");
    int64_t t0 = wb_time_mono_ms();
    PGresult *res = NULL;
    for (;;) { /* the redriven delete lands too */
        char q[256];
        snprintf(q, sizeof(q), "SELECT 1 FROM \"%s_g\" WHERE key = '2' AND version = 6 AND deleted",
                 G.table);
        res = fh_sql(&G, q);
        int ok = res && PQntuples(res) == 1;
        PQclear(res);
        if (ok) break;
        assert_true(wb_time_mono_ms() - t0 < 30000);
        usleep(200000);
    }
    assert_int_equal(fh_read_dlq(&G, dead, 8), 2); /* nothing dead-lettered again */
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

/* A dead letter overtaken by a newer write: redriving it changes nothing. */
static void redrive_after_newer_write_changes_nothing(void **state)
{
    char out[16384], value[64];
    fh_dead_t dead[8];

    (void)state;
    /* One partition, so the marker below is applied after the redriven event. */
    fh_setup_ex(&G, "dlqstale", "text", NULL, NULL, 1);
    fh_produce_raw(&G, "gadget:1", "old", 3, 5, "gadget");
    fh_flush(&G);
    fh_start(&G);
    assert_int_equal(wait_dlq(dead, 8, 1), 1);
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
    add_gadget_entity();
    fh_start(&G);
    fh_produce_raw(&G, "gadget:1", "new", 3, 10, "gadget");
    fh_flush(&G);
    assert_int_equal(wait_gadget_row("1", 10, value, sizeof(value)), 10);

    assert_int_equal(wbctl(out, sizeof(out),
                           (const char *[]){"dlq", "redrive", "--id", "0:0", "--execute", NULL}),
                     0);
    assert_non_null(strstr(out, "redriven: 1 of 1"));
    fh_produce_raw(&G, "gadget:9", "marker", 6, 1, "gadget");
    fh_flush(&G);
    assert_int_equal(wait_gadget_row("9", 1, value, sizeof(value)), 1);
    assert_int_equal(gadget_row("1", value, sizeof(value)), 10);
    assert_string_equal(value, "new");
    assert_int_equal(fh_read_dlq(&G, dead, 8), 1); /* a stale event is a no-op, not poison */
    assert_int_equal(fh_stop(&G, 30000, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(redrive_after_config_fix_lands_rows, cleanup),
        cmocka_unit_test_teardown(redrive_after_newer_write_changes_nothing, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
