/* test_column.c — values checked against their entity's column type (text, jsonb, bytea) and
 * the UTF-8 validation under it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "wb_column.h"
#include "wb_utf8.h"

static char why[320];

static void text_must_be_utf8_without_nul(void **state)
{
    (void)state;
    assert_int_equal(wb_column_check(WB_VT_TEXT, "plain", 5, why, sizeof(why)), WB_OK);
    assert_int_equal(wb_column_check(WB_VT_TEXT, "", 0, why, sizeof(why)), WB_OK);
    assert_int_equal(wb_column_check(WB_VT_TEXT, NULL, 0, why, sizeof(why)), WB_OK);
    assert_int_equal(
        wb_column_check(WB_VT_TEXT, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, why, sizeof(why)), WB_OK);
    /* Not JSON is fine for text. */
    assert_int_equal(wb_column_check(WB_VT_TEXT, "{not json", 9, why, sizeof(why)), WB_OK);

    assert_int_equal(wb_column_check(WB_VT_TEXT, "ab\0cd", 5, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_string_equal(why, "byte 2: a text value cannot hold a NUL byte (use value_type bytea)");
    assert_int_equal(wb_column_check(WB_VT_TEXT, "abc\xff", 4, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_string_equal(why, "byte 3: a text value must be valid UTF-8 (use value_type bytea)");
    assert_int_equal(wb_column_check(WB_VT_TEXT, NULL, 1, why, sizeof(why)), WB_ERR_INVALID_ARG);
}

static void jsonb_must_be_json(void **state)
{
    (void)state;
    assert_int_equal(wb_column_check(WB_VT_JSONB, "{\"a\":1}", 7, why, sizeof(why)), WB_OK);
    assert_int_equal(wb_column_check(WB_VT_JSONB, "{\"a\":1", 6, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_string_equal(why, "value is not valid JSON for a jsonb column: byte 6: expected ',' or "
                             "'}' after an object member, found the end of the value");
    /* An empty value is not a JSON text. */
    assert_int_equal(wb_column_check(WB_VT_JSONB, "", 0, why, sizeof(why)), WB_ERR_INVALID_ARG);
}

static void bytea_takes_anything(void **state)
{
    (void)state;
    assert_int_equal(wb_column_check(WB_VT_BYTEA, "\0\xff\xfe", 3, why, sizeof(why)), WB_OK);
    assert_int_equal(wb_column_check(WB_VT_BYTEA, NULL, 0, why, sizeof(why)), WB_OK);
}

static void utf8_edges(void **state)
{
    static const struct {
        const char *s;
        size_t len;
        int ok;
        size_t bad;
    } cases[] = {
        {"\x7f", 1, 1, 0},
        {"\xc2\x80", 2, 1, 0},         /* U+0080, smallest 2-byte */
        {"\xc1\xbf", 2, 0, 0},         /* overlong */
        {"\xe0\x9f\xbf", 3, 0, 0},     /* overlong 3-byte */
        {"\xed\x9f\xbf", 3, 1, 0},     /* U+D7FF */
        {"\xed\xa0\x80", 3, 0, 0},     /* U+D800 surrogate */
        {"\xee\x80\x80", 3, 1, 0},     /* U+E000 */
        {"\xf0\x8f\xbf\xbf", 4, 0, 0}, /* overlong 4-byte */
        {"\xf4\x8f\xbf\xbf", 4, 1, 0}, /* U+10FFFF */
        {"\xf4\x90\x80\x80", 4, 0, 0}, /* above U+10FFFF */
        {"ab\x80", 3, 0, 2},           /* stray continuation */
        {"ab\xe2\x82", 4, 0, 2},       /* truncated at the end */
        {"\xe2\x82"
         "a",
         3, 0, 0}, /* truncated in the middle */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t bad = 99;
        int ok = wb_utf8_valid(cases[i].s, cases[i].len, &bad);
        if (ok != cases[i].ok) fail_msg("case %zu: expected %d", i, cases[i].ok);
        if (!ok) assert_int_equal(bad, cases[i].bad);
    }
    assert_int_equal(wb_utf8_valid(NULL, 0, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_must_be_utf8_without_nul),
        cmocka_unit_test(jsonb_must_be_json),
        cmocka_unit_test(bytea_takes_anything),
        cmocka_unit_test(utf8_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
