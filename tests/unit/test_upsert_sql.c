/* test_upsert_sql.c — the upsert and schema statements, and the binary arrays they send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_schema.h"
#include "wb_upsert.h"

static uint32_t be32(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void identifiers_are_quoted(void **state)
{
    (void)state;
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "t\"x", .value_type = WB_VT_TEXT};
    char *sql = wb_upsert_sql(&ent);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "INSERT INTO \"t\"\"x\" AS t"));
    /* The version guard (invariant 4) is part of the statement. */
    assert_non_null(strstr(sql, "WHERE t.\"version\" < EXCLUDED.\"version\""));
    assert_null(strstr(sql, "::jsonb"));
    free(sql);

    sql = wb_schema_create_sql(&ent);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "CREATE TABLE IF NOT EXISTS \"t\"\"x\""));
    assert_non_null(strstr(sql, "\"t\"\"x_wb_tombstones\" ON \"t\"\"x\" (\"updated_at\") WHERE "
                                "\"deleted\""));
    free(sql);
}

static void value_type_picks_column_and_cast(void **state)
{
    (void)state;
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "docs", .value_type = WB_VT_JSONB};
    char *sql = wb_upsert_sql(&ent);
    assert_non_null(strstr(sql, "u.v::jsonb"));
    assert_non_null(strstr(sql, "$2::text[]"));
    free(sql);
    sql = wb_schema_create_sql(&ent);
    assert_non_null(strstr(sql, "\"value\" jsonb NULL"));
    free(sql);

    ent.value_type = WB_VT_BYTEA;
    sql = wb_upsert_sql(&ent);
    assert_non_null(strstr(sql, "$2::bytea[]"));
    free(sql);
    sql = wb_schema_create_sql(&ent);
    assert_non_null(strstr(sql, "\"value\" bytea NULL"));
    free(sql);

    /* schema.table is two identifiers; the index is named after the table part. */
    ent.table = "app.docs";
    sql = wb_upsert_sql(&ent);
    assert_non_null(strstr(sql, "INSERT INTO \"app\".\"docs\" AS t"));
    free(sql);
    sql = wb_schema_create_sql(&ent);
    assert_non_null(strstr(sql, "INDEX IF NOT EXISTS \"docs_wb_tombstones\" ON \"app\".\"docs\""));
    free(sql);

    ent.table = NULL;
    assert_null(wb_upsert_sql(&ent));
    ent.table = "";
    assert_null(wb_upsert_sql(&ent));
}

static void arrays_encode_rows_and_nulls(void **state)
{
    (void)state;
    wb_row_t rows[2] = {
        {.key = "k1", .keylen = 2, .value = "hello", .valuelen = 5, .deleted = 0, .version = 7},
        {.key = "k2",
         .keylen = 2,
         .value = "ignored",
         .valuelen = 7,
         .deleted = 1,
         .version = ((int64_t)1 << 40) + 3},
    };
    wb_upsert_params_t p;
    assert_int_equal(wb_upsert_params_build(WB_VT_TEXT, rows, 2, &p), WB_OK);

    /* keys: header (ndim 1, no nulls, text, dim 2, lbound 1) + 2 x (4 + 2). */
    assert_int_equal(p.len[0], 20 + 12);
    assert_int_equal(be32(p.data[0]), 1);
    assert_int_equal(be32(p.data[0] + 4), 0);
    assert_int_equal(be32(p.data[0] + 8), 25);
    assert_int_equal(be32(p.data[0] + 12), 2);
    assert_int_equal(be32(p.data[0] + 16), 1);
    assert_int_equal(be32(p.data[0] + 20), 2);
    assert_memory_equal(p.data[0] + 24, "k1", 2);
    assert_memory_equal(p.data[0] + 30, "k2", 2);

    /* values: the delete is a NULL element, and the has-nulls flag is set. */
    assert_int_equal(p.len[1], 20 + 4 + 5 + 4);
    assert_int_equal(be32(p.data[1] + 4), 1);
    assert_int_equal(be32(p.data[1] + 20), 5);
    assert_memory_equal(p.data[1] + 24, "hello", 5);
    assert_int_equal(be32(p.data[1] + 29), UINT32_MAX);

    /* versions: int8 big-endian. */
    assert_int_equal(p.len[2], 20 + 24);
    assert_int_equal(be32(p.data[2] + 8), 20);
    assert_int_equal(be32(p.data[2] + 20), 8);
    assert_int_equal(be32(p.data[2] + 24), 0);
    assert_int_equal(be32(p.data[2] + 28), 7);
    assert_int_equal(be32(p.data[2] + 36), 256);
    assert_int_equal(be32(p.data[2] + 40), 3);

    /* deleted flags. */
    assert_int_equal(p.len[3], 20 + 10);
    assert_int_equal(p.data[3][24], 0);
    assert_int_equal(p.data[3][29], 1);
    assert_int_equal(p.types[0], 1009);
    assert_int_equal(p.types[1], 1009);
    wb_upsert_params_free(&p);

    assert_int_equal(wb_upsert_params_build(WB_VT_BYTEA, rows, 2, &p), WB_OK);
    assert_int_equal(p.types[1], 1001);
    assert_int_equal(be32(p.data[1] + 8), 17);
    wb_upsert_params_free(&p);
}

static void empty_value_is_not_null(void **state)
{
    (void)state;
    wb_row_t row = {.key = "k", .keylen = 1, .value = "", .valuelen = 0, .version = 1};
    wb_upsert_params_t p;
    assert_int_equal(wb_upsert_params_build(WB_VT_BYTEA, &row, 1, &p), WB_OK);
    assert_int_equal(be32(p.data[1] + 4), 0);  /* no nulls */
    assert_int_equal(be32(p.data[1] + 20), 0); /* length 0, not -1 */
    wb_upsert_params_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identifiers_are_quoted),
        cmocka_unit_test(value_type_picks_column_and_cast),
        cmocka_unit_test(arrays_encode_rows_and_nulls),
        cmocka_unit_test(empty_value_is_not_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
