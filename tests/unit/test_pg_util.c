/* test_pg_util.c — identifier quoting and SQLSTATE classification of wb_pg (no server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wb_pg.h"

static void assert_quoted(const char *name, const char *expect)
{
    char out[WB_PG_QUOTED_MAX];

    assert_int_equal(wb_pg_quote_ident(name, out, sizeof(out)), WB_OK);
    assert_string_equal(out, expect);
}

static void assert_rejected(const char *name, size_t out_size)
{
    char out[WB_PG_QUOTED_MAX];

    memset(out, 'x', sizeof(out));
    assert_int_equal(wb_pg_quote_ident(name, out, out_size), WB_ERR_INVALID_ARG);
    if (out_size > 0) assert_string_equal(out, "");
}

static void test_quote_plain_and_schema(void **state)
{
    assert_quoted("users", "\"users\"");
    assert_quoted("public.users", "\"public\".\"users\"");
    assert_quoted("Users", "\"Users\""); /* case is kept, not folded */
    assert_quoted("a.b.c", "\"a\".\"b\".\"c\"");
}

static void test_quote_hostile_names(void **state)
{
    /* An injection attempt stays one identifier: every '"' is doubled. */
    assert_quoted("x\"; DROP TABLE users; --", "\"x\"\"; DROP TABLE users; --\"");
    assert_quoted("\"", "\"\"\"\"");
    assert_quoted("sch\"ema.ta ble", "\"sch\"\"ema\".\"ta ble\"");
    assert_quoted("ünïcode", "\"ünïcode\"");
}

static void test_quote_rejects(void **state)
{
    char longest[WB_PG_IDENT_MAX + 2];
    char out[WB_PG_QUOTED_MAX];

    assert_rejected("", sizeof(out));
    assert_rejected(".users", sizeof(out));
    assert_rejected("public.", sizeof(out));
    assert_rejected("a..b", sizeof(out));
    assert_int_equal(wb_pg_quote_ident(NULL, out, sizeof(out)), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_pg_quote_ident("users", NULL, 10), WB_ERR_INVALID_ARG);

    /* 63 bytes is PostgreSQL's limit; 64 would be truncated by the server. */
    memset(longest, 'a', WB_PG_IDENT_MAX);
    longest[WB_PG_IDENT_MAX] = '\0';
    assert_int_equal(wb_pg_quote_ident(longest, out, sizeof(out)), WB_OK);
    assert_int_equal(strlen(out), WB_PG_IDENT_MAX + 2);
    longest[WB_PG_IDENT_MAX] = 'a';
    longest[WB_PG_IDENT_MAX + 1] = '\0';
    assert_rejected(longest, sizeof(out));
}

static void test_quote_buffer_bounds(void **state)
{
    char out[8];

    /* "users" quoted needs 8 bytes including the NUL. */
    assert_int_equal(wb_pg_quote_ident("abc", out, sizeof(out)), WB_OK);
    assert_string_equal(out, "\"abc\"");
    assert_rejected("users_x", 8);
    assert_rejected("abc", 0);

    /* The documented maximum holds the worst case: two parts of 63 '"'. */
    {
        char name[2 * WB_PG_IDENT_MAX + 2];
        char big[WB_PG_QUOTED_MAX];

        memset(name, '"', sizeof(name) - 1);
        name[WB_PG_IDENT_MAX] = '.';
        name[sizeof(name) - 1] = '\0';
        assert_int_equal(wb_pg_quote_ident(name, big, sizeof(big)), WB_OK);
        assert_int_equal(strlen(big), 2 * (2 * WB_PG_IDENT_MAX + 2) + 1);
    }
}

static void test_sqlstate_transient(void **state)
{
    static const char *const transient[] = {
        "08000", "08006", "08001", "08P01", /* connection */
        "53100", "53200", "53300",          /* disk full, out of memory, too many conns */
        "57014", "57P01", "57P03",          /* statement timeout, admin shutdown, starting */
        "40001", "40P01",                   /* serialization failure, deadlock */
        "58000", "58030",                   /* system, I/O error */
        "55P03", "25006",                   /* lock timeout, read-only after failover */
        "42P01", "42501", "3D000", "3F000", /* schema or grants: fixed by an operator */
        NULL,    "",      "123",   "abcdef" /* no server code at all */
    };
    size_t i;

    for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        if (!wb_pg_sqlstate_is_transient(transient[i]))
            fail_msg("%s should be transient", transient[i] ? transient[i] : "NULL");
    }
}

static void test_sqlstate_poison(void **state)
{
    static const char *const poison[] = {
        "23505", "23502", "23503", "23514",          /* constraints */
        "22001", "22P02", "22021", "22003", "22007", /* data: too long, bad text, bad bytes */
        "42601", "42703", "42804",                   /* syntax, column, datatype mismatch */
        "54000", "0A000", "XX000", "P0001"           /* limits, unsupported, internal, RAISE */
    };
    size_t i;

    for (i = 0; i < sizeof(poison) / sizeof(poison[0]); i++) {
        if (wb_pg_sqlstate_is_transient(poison[i]))
            fail_msg("%s should not be transient", poison[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_plain_and_schema), cmocka_unit_test(test_quote_hostile_names),
        cmocka_unit_test(test_quote_rejects),          cmocka_unit_test(test_quote_buffer_bounds),
        cmocka_unit_test(test_sqlstate_transient),     cmocka_unit_test(test_sqlstate_poison),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
