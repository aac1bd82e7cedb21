/* test_log.c — log lines: format, escaping, levels, sink routing, one write per line across
 * threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wb_json.h"
#include "wb_log.h"

#define MAX_LINES 1024

/* What the capture sink saw. */
static struct {
    int n;
    int levels[MAX_LINES];
    char *lines[MAX_LINES];
    int inside;     /* set while the sink runs, to catch concurrent calls */
    int concurrent; /* times the sink was entered twice at once */
    int nest;       /* if set, the sink logs once itself */
} cap;

static void capture_sink(wb_log_level_t level, const char *line, void *opaque)
{
    assert_ptr_equal(opaque, &cap);
    if (cap.inside) cap.concurrent++;
    cap.inside = 1;
    if (cap.n < MAX_LINES) {
        cap.levels[cap.n] = level;
        cap.lines[cap.n] = strdup(line);
        cap.n++;
    }
    if (cap.nest) WB_ERROR("logged from inside the sink");
    cap.inside = 0;
}

static int setup(void **state)
{
    memset(&cap, 0, sizeof(cap));
    wb_log_init("wb-test");
    wb_log_set_level(WB_LOG_DEBUG);
    wb_log_set_sink(capture_sink, &cap);
    return 0;
}

static int teardown(void **state)
{
    int i;

    wb_log_set_sink(NULL, NULL);
    wb_log_set_format(WB_LOG_FORMAT_TEXT);
    for (i = 0; i < cap.n; i++)
        free(cap.lines[i]);
    return 0;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL prog: " and a time near now;
 * returns the message part. */
static const char *check_prefix(const char *line, const char *level, const char *prog)
{
    struct tm tm;
    char expect[128];
    const char *rest;
    time_t t, now;

    memset(&tm, 0, sizeof(tm));
    rest = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(rest);
    assert_true(rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' && rest[2] >= '0' &&
                rest[2] <= '9' && rest[3] >= '0' && rest[3] <= '9' && rest[4] == 'Z' &&
                rest[5] == ' ');
    t = timegm(&tm);
    /* UTC, not local time.  time() reads the coarse clock, which may lag the
     * CLOCK_REALTIME stamp of the line by a tick across a second boundary. */
    now = time(NULL);
    assert_true(t <= now + 1 && t >= now - 60);
    snprintf(expect, sizeof(expect), "%-5s %s: ", level, prog);
    assert_memory_equal(rest + 6, expect, strlen(expect));
    return rest + 6 + strlen(expect);
}

static void test_line_format(void **state)
{
    WB_INFO("flushed %d events in %.1f ms", 42, 3.5);
    WB_DEBUG("d");
    WB_WARN("w");
    WB_ERROR("e");
    assert_int_equal(cap.n, 4);
    assert_string_equal(check_prefix(cap.lines[0], "INFO", "wb-test"),
                        "flushed 42 events in 3.5 ms");
    assert_int_equal(cap.levels[0], WB_LOG_INFO);
    /* Level names padded so messages line up: "INFO  ", "WARN  ", "ERROR ". */
    assert_non_null(strstr(cap.lines[0], "Z INFO  wb-test: "));
    assert_string_equal(check_prefix(cap.lines[1], "DEBUG", "wb-test"), "d");
    assert_string_equal(check_prefix(cap.lines[2], "WARN", "wb-test"), "w");
    assert_string_equal(check_prefix(cap.lines[3], "ERROR", "wb-test"), "e");
    assert_int_equal(cap.levels[3], WB_LOG_ERROR);
}

static void test_control_chars_escaped(void **state)
{
    WB_ERROR("bad key \"%s\"\nsecond line\r\tx\x01\x7f end", "a\nb");
    assert_int_equal(cap.n, 1);
    assert_null(strchr(cap.lines[0], '\n'));
    assert_string_equal(check_prefix(cap.lines[0], "ERROR", "wb-test"),
                        "bad key \"a\\nb\"\\nsecond line\\r\\tx\\x01\\x7f end");
    /* UTF-8 text is left readable. */
    WB_INFO("caf\xc3\xa9");
    assert_string_equal(check_prefix(cap.lines[1], "INFO", "wb-test"), "caf\xc3\xa9");
}

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

static void test_level_filter(void **state)
{
    wb_log_set_level(WB_LOG_WARN);
    assert_int_equal(wb_log_get_level(), WB_LOG_WARN);
    evaluated = 0;
    WB_DEBUG("%d", side_effect());
    WB_INFO("%d", side_effect());
    assert_int_equal(evaluated, 0); /* disabled levels cost no argument evaluation */
    WB_WARN("%d", side_effect());
    WB_ERROR("%d", side_effect());
    assert_int_equal(cap.n, 2);
    assert_string_equal(check_prefix(cap.lines[0], "WARN", "wb-test"), "1");
    assert_string_equal(check_prefix(cap.lines[1], "ERROR", "wb-test"), "2");
    assert_false(wb_log_enabled(WB_LOG_INFO));
    assert_true(wb_log_enabled(WB_LOG_ERROR));
}

static void test_level_parse(void **state)
{
    assert_int_equal(wb_log_level_parse("debug"), WB_LOG_DEBUG);
    assert_int_equal(wb_log_level_parse("info"), WB_LOG_INFO);
    assert_int_equal(wb_log_level_parse("INFO"), WB_LOG_INFO);
    assert_int_equal(wb_log_level_parse("warn"), WB_LOG_WARN);
    assert_int_equal(wb_log_level_parse("warning"), WB_LOG_WARN);
    assert_int_equal(wb_log_level_parse("error"), WB_LOG_ERROR);
    assert_int_equal(wb_log_level_parse("verbose"), -1);
    assert_int_equal(wb_log_level_parse(""), -1);
    assert_int_equal(wb_log_level_parse(NULL), -1);
    assert_string_equal(wb_log_level_name(WB_LOG_WARN), "WARN");
    assert_string_equal(wb_log_level_name(99), "?");
}

static void test_long_message_truncated(void **state)
{
    char *big = malloc(3 * WB_LOG_LINE_MAX);
    size_t len;

    memset(big, 'a', 3 * WB_LOG_LINE_MAX - 1);
    big[3 * WB_LOG_LINE_MAX - 1] = '\0';
    WB_INFO("%s", big);
    /* Escaping can grow a message 4x: a cut must still be one bounded line. */
    memset(big, '\n', 3 * WB_LOG_LINE_MAX - 1);
    WB_INFO("%s", big);
    free(big);
    assert_int_equal(cap.n, 2);
    len = strlen(cap.lines[0]);
    assert_true(len < WB_LOG_LINE_MAX);
    assert_true(len > WB_LOG_LINE_MAX - 100);
    assert_string_equal(cap.lines[0] + len - 4, "a...");
    len = strlen(cap.lines[1]);
    assert_true(len < WB_LOG_LINE_MAX);
    assert_string_equal(cap.lines[1] + len - 5, "\\n...");
}

static void test_progname_and_errno(void **state)
{
    char name[200];

    errno = ENOENT;
    WB_INFO("x");
    assert_int_equal(errno, ENOENT); /* safe between a syscall and its errno check */
    wb_log_init(NULL);
    WB_INFO("y");
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    wb_log_init(name);
    WB_INFO("z");
    assert_int_equal(cap.n, 3);
    assert_string_equal(check_prefix(cap.lines[1], "INFO", "wbcache"), "y");
    name[63] = '\0'; /* names are cut at 63 bytes */
    assert_string_equal(check_prefix(cap.lines[2], "INFO", name), "z");
}

/* Runs fn with stderr redirected to a temp file; returns its contents. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/wb_test_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    FILE *f;
    long size;
    char *buf;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    f = fdopen(fd, "r");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)size + 1);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return buf;
}

static void log_two_lines(void)
{
    WB_WARN("to\nstderr");
    WB_INFO("second");
}

static void test_default_sink_is_stderr(void **state)
{
    char *out;
    char *nl;

    wb_log_set_sink(NULL, NULL);
    out = capture_stderr(log_two_lines);
    assert_int_equal(cap.n, 0);
    nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_string_equal(check_prefix(out, "WARN", "wb-test"), "to\\nstderr");
    assert_string_equal(check_prefix(nl + 1, "INFO", "wb-test"), "second\n");
    free(out);
}

static void log_from_sink(void)
{
    cap.nest = 1;
    WB_INFO("outer");
    cap.nest = 0;
}

static void test_logging_inside_sink_goes_to_stderr(void **state)
{
    char *out = capture_stderr(log_from_sink); /* must not deadlock */

    assert_int_equal(cap.n, 1);
    assert_string_equal(check_prefix(cap.lines[0], "INFO", "wb-test"), "outer");
    assert_string_equal(check_prefix(out, "ERROR", "wb-test"), "logged from inside the sink\n");
    free(out);
}

/* What one scope's sink saw (called from several threads: locked). */
typedef struct scope_cap_s {
    pthread_mutex_t mu;
    int n;
    char lines[8][256];
} scope_cap_t;

static void scope_sink(wb_log_level_t level, const char *line, void *opaque)
{
    scope_cap_t *sc = opaque;

    (void)level;
    pthread_mutex_lock(&sc->mu);
    if (sc->n < 8) snprintf(sc->lines[sc->n], sizeof(sc->lines[0]), "%s", line);
    sc->n++;
    pthread_mutex_unlock(&sc->mu);
    WB_ERROR("from inside a scope's sink"); /* dropped: never printed, never recursive */
}

typedef struct scope_job_s {
    wb_log_scope_t *scope;
    const char *msg;
} scope_job_t;

static void *scope_worker(void *arg)
{
    scope_job_t *job = arg;
    wb_log_scope_t *prev = wb_log_scope_enter(job->scope);

    WB_DEBUG("%s debug", job->msg);
    WB_WARN("%s", job->msg);
    wb_log_scope_leave(prev);
    return NULL;
}

/* Two scopes (two library handles) on threads of one process: each sink
 * gets exactly the lines of its own threads at its own level; the
 * process-wide sink gets none of them, and a thread that left its scope
 * logs process-wide again. */
static void test_scopes_route_per_thread(void **state)
{
    scope_cap_t a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    wb_log_scope_t sa, sb, quiet, *prev, *inner;
    scope_job_t ja = {&sa, "for a"}, jb = {&sb, "for b"};
    pthread_t ta, tb;

    (void)state;
    wb_log_scope_init(&sa, scope_sink, &a, WB_LOG_DEBUG);
    wb_log_scope_init(&sb, scope_sink, &b, WB_LOG_WARN);
    pthread_create(&ta, NULL, scope_worker, &ja);
    pthread_create(&tb, NULL, scope_worker, &jb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.n, 2);
    assert_string_equal(check_prefix(a.lines[0], "DEBUG", "wb-test"), "for a debug");
    assert_string_equal(check_prefix(a.lines[1], "WARN", "wb-test"), "for a");
    assert_int_equal(b.n, 1); /* its level drops the debug line */
    assert_string_equal(check_prefix(b.lines[0], "WARN", "wb-test"), "for b");
    assert_int_equal(cap.n, 0);

    /* Nesting (a loader that calls another handle), level changes, a
     * scope without sink, and leaving. */
    prev = wb_log_scope_enter(&sa);
    assert_null(prev);
    inner = wb_log_scope_enter(&sb);
    assert_ptr_equal(inner, &sa);
    WB_ERROR("nested");
    wb_log_scope_set_level(&sb, WB_LOG_ERROR);
    assert_false(wb_log_enabled(WB_LOG_WARN));
    wb_log_scope_leave(inner);
    assert_true(wb_log_enabled(WB_LOG_DEBUG));
    WB_INFO("back in a");
    wb_log_scope_init(&quiet, NULL, NULL, WB_LOG_DEBUG);
    inner = wb_log_scope_enter(&quiet);
    assert_false(wb_log_enabled(WB_LOG_ERROR));
    WB_ERROR("dropped");
    wb_log_scope_leave(inner);
    wb_log_scope_leave(prev);
    WB_ERROR("process-wide");
    assert_int_equal(b.n, 2);
    assert_string_equal(check_prefix(b.lines[1], "ERROR", "wb-test"), "nested");
    assert_int_equal(a.n, 3);
    assert_string_equal(check_prefix(a.lines[2], "INFO", "wb-test"), "back in a");
    assert_int_equal(cap.n, 1);
    assert_string_equal(check_prefix(cap.lines[0], "ERROR", "wb-test"), "process-wide");
}

#define THREADS    4
#define PER_THREAD 200

static void *log_worker(void *arg)
{
    int i, id = (int)(intptr_t)arg;

    for (i = 0; i < PER_THREAD; i++)
        WB_INFO("thread %d line %d %s", id, i,
                "padding-padding-padding-padding-padding-padding-padding-padding-padding");
    return NULL;
}

static void run_threads(void)
{
    pthread_t t[THREADS];
    int i;

    for (i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i);
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static void test_threads_lines_never_interleave(void **state)
{
    int seen[THREADS] = {0}, lines = 0;
    char *out, *line, *save = NULL;

    /* Through the sink: calls are serialized. */
    run_threads();
    assert_int_equal(cap.concurrent, 0);
    assert_int_equal(cap.n, MAX_LINES < THREADS * PER_THREAD ? MAX_LINES : THREADS * PER_THREAD);

    /* Through stderr: every line arrives whole and in order per thread. */
    wb_log_set_sink(NULL, NULL);
    out = capture_stderr(run_threads);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int id, n;
        char pad[128];

        assert_int_equal(
            sscanf(check_prefix(line, "INFO", "wb-test"), "thread %d line %d %127s", &id, &n, pad),
            3);
        assert_in_range(id, 0, THREADS - 1);
        assert_int_equal(n, seen[id]);
        assert_string_equal(pad, "padding-padding-padding-padding-padding-padding-padding-padding-"
                                 "padding");
        seen[id]++;
        lines++;
    }
    assert_int_equal(lines, THREADS * PER_THREAD);
    free(out);
}

/* 1 if s is one valid JSON text. */
static int is_json(const char *s)
{
    char errstr[128];
    int ok = wb_json_check(s, strlen(s), errstr, sizeof(errstr)) == WB_OK;
    if (!ok) fprintf(stderr, "not JSON (%s): %s\n", errstr, s);
    return ok;
}

static void test_json_escape(void **state)
{
    char out[256];
    int cut = -1;
    /* quote, backslash, the short escapes, other controls and DEL as \u00XX,
     * NUL inside, UTF-8 kept, a stray byte / a truncated sequence / an
     * overlong form replaced. */
    static const char in[] =
        "q\"b\\n\nr\rt\tb\bf\f\x01\x1f\x7f\0z \xc3\xa9 \xe2\x82\xac \xff \xc3 \xc0\xaf";
    const char *want =
        "q\\\"b\\\\n\\nr\\rt\\tb\\bf\\f\\u0001\\u001f\\u007f\\u0000z \xc3\xa9 \xe2\x82\xac "
        "\\ufffd \\ufffd \\ufffd\\ufffd";

    (void)state;
    assert_int_equal(wb_log_json_escape(out, sizeof(out), in, sizeof(in) - 1, &cut), strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(cut, 0);
    /* Never splits an escape or a UTF-8 sequence: stops before it. */
    assert_int_equal(wb_log_json_escape(out, 4, "ab\n", 3, &cut), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(cut, 1);
    assert_int_equal(wb_log_json_escape(out, 3, "a\xc3\xa9", 3, &cut), 1);
    assert_string_equal(out, "a");
    assert_int_equal(wb_log_json_escape(out, 1, "x", 1, NULL), 0);
    assert_string_equal(out, "");
}

static void test_json_line(void **state)
{
    char line[WB_LOG_LINE_MAX], msg[6000];
    wb_log_field_t f[] = {{"topic", "wb.changes"}, {"reason", "unknown entity \"x\"\n"}};
    size_t n;

    (void)state;
    n = wb_log_json_line(line, sizeof(line), "2026-12-02T03:00:00.000Z", WB_LOG_WARN, "wb-flusher",
                         "dead-lettering", 14, f, 2);
    assert_int_equal(n, strlen(line));
    assert_string_equal(line,
                        "{\"time\":\"2026-12-02T03:00:00.000Z\",\"level\":\"warn\","
                        "\"program\":\"wb-flusher\",\"message\":\"dead-lettering\","
                        "\"topic\":\"wb.changes\",\"reason\":\"unknown entity \\\"x\\\"\\n\"}");
    assert_true(is_json(line));

    /* A message longer than the line, all of it escapes: cut with "...",
     * the fields kept, still one object, within the line. */
    memset(msg, '\x01', sizeof(msg));
    n = wb_log_json_line(line, sizeof(line), "t", WB_LOG_ERROR, "p", msg, sizeof(msg), f, 2);
    assert_true(n < sizeof(line));
    assert_true(is_json(line));
    assert_non_null(strstr(line, "\\u0001...\",\"topic\":\"wb.changes\""));
    /* Non-UTF-8 bytes in a field value and a small line: still valid JSON. */
    wb_log_field_t bad[] = {{"k", "\xff\xfe"}};
    n = wb_log_json_line(line, 128, "t", WB_LOG_INFO, "p",
                         "0123456789012345678901234567890123456789"
                         "0123456789012345678901234567890123456789",
                         80, bad, 1);
    assert_true(n < 128);
    assert_true(is_json(line));
}

static void test_format_json_and_fields(void **state)
{
    wb_log_field_t f[] = {{"partition", "3"}, {"reason", "bad value"}, {"empty", ""}};

    (void)state;
    assert_int_equal(wb_log_format_parse("json"), WB_LOG_FORMAT_JSON);
    assert_int_equal(wb_log_format_parse("TEXT"), WB_LOG_FORMAT_TEXT);
    assert_int_equal(wb_log_format_parse("yaml"), -1);
    assert_int_equal(wb_log_format_parse(NULL), -1);
    /* Text: the fields follow the message, quoted when needed. */
    wb_log_write_fields(WB_LOG_WARN, f, 3, "dead-lettering %s", "an event");
    assert_int_equal(cap.n, 1);
    assert_string_equal(check_prefix(cap.lines[0], "WARN", "wb-test"),
                        "dead-lettering an event partition=3 reason=\"bad value\" empty=\"\"");
    /* JSON: one object per line, also for plain lines. */
    wb_log_set_format(WB_LOG_FORMAT_JSON);
    wb_log_write_fields(WB_LOG_WARN, f, 2, "dead-lettering");
    WB_INFO("two\nlines \"quoted\"");
    assert_int_equal(cap.n, 3);
    assert_true(is_json(cap.lines[1]));
    assert_true(is_json(cap.lines[2]));
    assert_memory_equal(cap.lines[1], "{\"time\":\"", 9);
    assert_non_null(strstr(cap.lines[1], "\",\"level\":\"warn\",\"program\":\"wb-test\","
                                         "\"message\":\"dead-lettering\",\"partition\":\"3\","
                                         "\"reason\":\"bad value\"}"));
    assert_non_null(strstr(cap.lines[2], "\"message\":\"two\\nlines \\\"quoted\\\"\"}"));
    assert_null(strchr(cap.lines[2], '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test_setup_teardown(test_format_json_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_chars_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progname_and_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_sink_is_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logging_inside_sink_goes_to_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_lines_never_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_route_per_thread, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
