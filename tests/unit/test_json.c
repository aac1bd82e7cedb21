/* test_json.c — the strict JSON validator: RFC 8259 grammar and what a PostgreSQL jsonb column
 * accepts (cases checked against PostgreSQL 15 by hand and by a differential run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_json.h"

static char why[256];

static wb_err_t check(const char *s)
{
    why[0] = '\0';
    return wb_json_check(s, strlen(s), why, sizeof(why));
}

static void assert_valid(const char *s)
{
    if (check(s) != WB_OK) fail_msg("refused valid JSON [%s]: %s", s, why);
}

/* Refused, and the reason names the byte offset and contains `part`. */
static void assert_refused(const char *s, size_t at, const char *part)
{
    char where[32];

    if (check(s) != WB_ERR_INVALID_ARG) fail_msg("accepted invalid JSON [%s]", s);
    snprintf(where, sizeof(where), "byte %zu: ", at);
    if (strncmp(why, where, strlen(where)) != 0 || !strstr(why, part))
        fail_msg("[%s]: reason \"%s\", expected \"%s...%s\"", s, why, where, part);
}

static void every_kind_of_value_is_accepted(void **state)
{
    (void)state;
    assert_valid("{}");
    assert_valid("[]");
    assert_valid("{\"a\": [1, -2.5, 3e10, 4E-3, 0, -0, 0.0], \"b\": {\"c\": null}}");
    assert_valid(" \t\r\n[true, false, null] \n");
    /* A bare scalar is a JSON text (RFC 8259, unlike RFC 4627). */
    assert_valid("42");
    assert_valid("\"just a string\"");
    assert_valid("null");
    /* Escapes, UTF-8 and a surrogate pair. */
    assert_valid("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"");
    assert_valid("\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"");
    /* jsonb keeps the last of duplicate keys; not an error. */
    assert_valid("{\"a\": 1, \"a\": 2}");
}

static void rfc_8259_violations_are_refused(void **state)
{
    (void)state;
    assert_refused("", 0, "expected a value");
    assert_refused("   ", 3, "expected a value, found the end");
    assert_refused("[1,]", 3, "expected a value, found ']'");
    assert_refused("{\"a\":1,}", 7, "expected a string as object key");
    assert_refused("{\"a\" 1}", 5, "expected ':'");
    assert_refused("{a:1}", 1, "expected a string as object key, found 'a'");
    assert_refused("[1 2]", 3, "expected ',' or ']'");
    assert_refused("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'");
    assert_refused("[1", 2, "expected ',' or ']'");
    assert_refused("\"abc", 0, "string is not terminated");
    assert_refused("01", 0, "leading zero");
    assert_refused("-01", 1, "leading zero");
    assert_refused("1.", 2, "expected a digit after the decimal point");
    assert_refused(".5", 0, "expected a value");
    assert_refused("+1", 0, "expected a value");
    assert_refused("1e", 2, "expected a digit in the exponent");
    assert_refused("-", 1, "expected a digit");
    assert_refused("tru", 0, "expected a value");
    assert_refused("True", 0, "expected a value");
    assert_refused("NaN", 0, "expected a value");
    assert_refused("true false", 5, "expected the end after the value");
    assert_refused("{} x", 3, "expected the end");
    assert_refused("[1] // comment", 4, "expected the end");
    assert_refused("\"a\tb\"", 2, "control character");
    assert_refused("\"\\x\"", 2, "invalid escape, found 'x'");
    assert_refused("\"\\u12\"", 1, "4 hex digits");
    assert_refused("'a'", 0, "expected a value, found '''");
    assert_refused("\xef\xbb\xbf{}", 0, "byte order mark");
    assert_refused("\"\xff\"", 1, "invalid UTF-8");
    assert_refused("\"\xc0\xaf\"", 1, "invalid UTF-8");     /* overlong '/' */
    assert_refused("\"\xed\xa0\x80\"", 1, "invalid UTF-8"); /* a surrogate in UTF-8 */
    assert_refused("\"\xe2\x82\"", 1, "invalid UTF-8");     /* truncated */
    assert_refused("[\x01]", 1, "found byte 0x01");
}

static void what_jsonb_cannot_store_is_refused(void **state)
{
    (void)state;
    assert_refused("\"a\\u0000b\"", 2, "\\u0000");
    assert_refused("\"\\ud800\"", 1, "unpaired UTF-16 high surrogate");
    assert_refused("\"\\ud800\\u0041\"", 1, "unpaired UTF-16 high surrogate");
    assert_refused("\"\\udc00x\"", 1, "unpaired UTF-16 low surrogate");
    /* numeric's range: 131072 digits before the point, 16383 after. */
    assert_valid("1e131071");
    assert_valid("12e131070");
    assert_valid("0.00001e131076");
    assert_refused("1e131072", 0, "range of PostgreSQL numeric");
    assert_refused("[0.00001e131077]", 1, "range of PostgreSQL numeric");
    assert_valid("1e-16383");
    assert_refused("1e-16384", 0, "range of PostgreSQL numeric");
    assert_refused("1.0e-16383", 0, "range of PostgreSQL numeric");
    /* Zero has no weight, only a scale. */
    assert_valid("0e999999999");
    assert_refused("0.0000e-99999999", 0, "range of PostgreSQL numeric");
    assert_refused("1e99999999999999999999999", 0, "range of PostgreSQL numeric");
}

static void nesting_is_limited(void **state)
{
    size_t n = WB_JSON_MAX_DEPTH + 1;
    char *s = malloc(2 * n + 1);

    (void)state;
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    /* WB_JSON_MAX_DEPTH levels pass... */
    assert_int_equal(wb_json_check(s + 1, 2 * n - 2, why, sizeof(why)), WB_OK);
    /* ...one more does not, and a deep unterminated prefix costs no stack. */
    assert_refused(s, WB_JSON_MAX_DEPTH, "nested deeper than 1000 levels");
    free(s);
}

static void numbers_in_a_long_document(void **state)
{
    size_t n = 200000, len = 0;
    char *s = malloc(n * 8 + 4);

    (void)state;
    s[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%s%zu", i ? "," : "", i * 7919 % 1000003);
    s[len++] = ']';
    assert_int_equal(wb_json_check(s, len, why, sizeof(why)), WB_OK);
    /* The error offset points into the middle of it. */
    s[len - 1] = ',';
    assert_int_equal(wb_json_check(s, len, why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "expected a value, found the end"));
    free(s);
}

static void arguments(void **state)
{
    (void)state;
    assert_int_equal(wb_json_check(NULL, 0, why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_json_check(NULL, 3, why, sizeof(why)), WB_ERR_INVALID_ARG);
    /* Only len bytes count: what follows is not looked at. */
    assert_int_equal(wb_json_check("[1]garbage", 3, NULL, 0), WB_OK);
    /* No errstr is fine. */
    assert_int_equal(wb_json_check("[", 1, NULL, 0), WB_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_of_value_is_accepted),
        cmocka_unit_test(rfc_8259_violations_are_refused),
        cmocka_unit_test(what_jsonb_cannot_store_is_refused),
        cmocka_unit_test(nesting_is_limited),
        cmocka_unit_test(numbers_in_a_long_document),
        cmocka_unit_test(arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
