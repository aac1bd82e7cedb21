/* test_table.c — wb_table without a server: the statements on an entity table, the binary
 * arrays they send, and the decoding of a row read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_table.h"

static uint32_t be32(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void identifiers_are_quoted(void **state)
{
    (void)state;
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "t\"x", .value_type = WB_VT_TEXT};
    char *sql = wb_table_upsert_sql(&ent);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "INSERT INTO \"t\"\"x\" AS t"));
    /* The version guard (invariant 4) is part of the statement. */
    assert_non_null(strstr(sql, "WHERE t.\"version\" < EXCLUDED.\"version\""));
    assert_null(strstr(sql, "::jsonb"));
    free(sql);

    sql = wb_table_create_sql(&ent);
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
    char *sql = wb_table_upsert_sql(&ent);
    assert_non_null(strstr(sql, "u.v::jsonb"));
    assert_non_null(strstr(sql, "$2::text[]"));
    free(sql);
    sql = wb_table_create_sql(&ent);
    assert_non_null(strstr(sql, "\"value\" jsonb NULL"));
    free(sql);

    ent.value_type = WB_VT_BYTEA;
    sql = wb_table_upsert_sql(&ent);
    assert_non_null(strstr(sql, "$2::bytea[]"));
    free(sql);
    sql = wb_table_create_sql(&ent);
    assert_non_null(strstr(sql, "\"value\" bytea NULL"));
    free(sql);

    /* schema.table is two identifiers; the index is named after the table part. */
    ent.table = "app.docs";
    sql = wb_table_upsert_sql(&ent);
    assert_non_null(strstr(sql, "INSERT INTO \"app\".\"docs\" AS t"));
    free(sql);
    sql = wb_table_create_sql(&ent);
    assert_non_null(strstr(sql, "INDEX IF NOT EXISTS \"docs_wb_tombstones\" ON \"app\".\"docs\""));
    free(sql);

    ent.table = NULL;
    assert_null(wb_table_upsert_sql(&ent));
    ent.table = "";
    assert_null(wb_table_upsert_sql(&ent));
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
    wb_table_params_t p;
    assert_int_equal(wb_table_params_build(WB_VT_TEXT, rows, 2, &p), WB_OK);

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
    wb_table_params_free(&p);

    assert_int_equal(wb_table_params_build(WB_VT_BYTEA, rows, 2, &p), WB_OK);
    assert_int_equal(p.types[1], 1001);
    assert_int_equal(be32(p.data[1] + 8), 17);
    wb_table_params_free(&p);
}

static void empty_value_is_not_null(void **state)
{
    (void)state;
    wb_row_t row = {.key = "k", .keylen = 1, .value = "", .valuelen = 0, .version = 1};
    wb_table_params_t p;
    assert_int_equal(wb_table_params_build(WB_VT_BYTEA, &row, 1, &p), WB_OK);
    assert_int_equal(be32(p.data[1] + 4), 0);  /* no nulls */
    assert_int_equal(be32(p.data[1] + 20), 0); /* length 0, not -1 */
    wb_table_params_free(&p);
}

static void read_and_purge_statements(void **state)
{
    (void)state;
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "app.docs", .value_type = WB_VT_JSONB};
    char *sql = wb_table_select_sql(&ent, 0);

    /* jsonb is read as text; the four columns in the order the decoder reads. */
    assert_non_null(sql);
    assert_non_null(strstr(sql, "SELECT \"key\", \"value\"::text, \"version\", \"deleted\" FROM "
                                "\"app\".\"docs\" WHERE \"key\" = $1"));
    free(sql);
    ent.value_type = WB_VT_BYTEA;
    sql = wb_table_select_sql(&ent, 1);
    assert_non_null(strstr(sql, "SELECT \"key\", \"value\", \"version\""));
    assert_non_null(strstr(sql, "WHERE \"key\" = ANY($1)"));
    free(sql);

    sql = wb_table_probe_sql(&ent);
    assert_non_null(strstr(sql, "unnest($1::text[]) WITH ORDINALITY"));
    assert_non_null(strstr(sql, "JOIN \"app\".\"docs\" AS t ON t.\"key\" = u.k"));
    free(sql);

    /* The purge repeats its conditions outside the subquery: a tombstone
     * re-deleted meanwhile is re-checked and spared (invariant 4). */
    sql = wb_table_purge_sql(&ent);
    assert_non_null(strstr(sql, "DELETE FROM \"app\".\"docs\" WHERE \"key\" IN (SELECT"));
    assert_non_null(strstr(sql, "LIMIT $2::bigint) AND \"deleted\" AND \"updated_at\" < now() - "
                                "$1::bigint"));
    free(sql);

    /* The warm-up's scan (bytea here): keyset-paginated in key order, the operator's
     * condition on lines of its own so a trailing comment ends there. */
    sql = wb_table_scan_sql(&ent, "version > 3 -- recent");
    assert_non_null(strstr(sql,
                           "SELECT \"key\", \"value\", \"version\", \"deleted\" FROM "
                           "\"app\".\"docs\" WHERE (\nversion > 3 -- recent\n) AND ($1::text IS "
                           "NULL OR \"key\" > $1) ORDER BY \"key\" LIMIT $2"));
    free(sql);
    sql = wb_table_scan_sql(&ent, NULL);
    assert_non_null(strstr(sql, "WHERE (\ntrue\n)"));
    free(sql);
    sql = wb_table_count_sql(&ent, "");
    assert_string_equal(sql, "SELECT count(*) FROM \"app\".\"docs\" WHERE (\ntrue\n)");
    free(sql);

    ent.table = "";
    assert_null(wb_table_scan_sql(&ent, NULL));
    assert_null(wb_table_count_sql(&ent, NULL));
    assert_null(wb_table_select_sql(&ent, 0));
    assert_null(wb_table_probe_sql(&ent));
    assert_null(wb_table_purge_sql(&ent));
    assert_null(wb_table_create_sql(&ent));
}

static void text_array_is_array_recv_format(void **state)
{
    (void)state;
    const char *strs[3] = {"ab", "", "c\"d"};
    size_t lens[3] = {2, 0, 3};
    int len = 0;
    char *buf = wb_table_text_array(strs, lens, 3, &len);

    assert_non_null(buf);
    assert_int_equal(len, 20 + 3 * 4 + 5);
    assert_int_equal(be32(buf), 1);      /* ndim */
    assert_int_equal(be32(buf + 4), 0);  /* no NULLs */
    assert_int_equal(be32(buf + 8), 25); /* text */
    assert_int_equal(be32(buf + 12), 3); /* elements */
    assert_int_equal(be32(buf + 16), 1); /* lower bound */
    assert_int_equal(be32(buf + 20), 2);
    assert_memory_equal(buf + 24, "ab", 2);
    assert_int_equal(be32(buf + 26), 0);
    assert_int_equal(be32(buf + 30), 3);
    assert_memory_equal(buf + 34, "c\"d", 3);
    free(buf);

    buf = wb_table_text_array(NULL, NULL, 0, &len);
    assert_non_null(buf);
    assert_int_equal(len, 20);
    assert_int_equal(be32(buf + 12), 0);
    free(buf);
}

/* A result as a read returns it: key, value, version, deleted in binary. */
static PGresult *read_result(void)
{
    PGresAttDesc cols[4] = {
        {.name = "key", .format = 1, .typid = 25, .typlen = -1},
        {.name = "value", .format = 1, .typid = 25, .typlen = -1},
        {.name = "version", .format = 1, .typid = 20, .typlen = 8},
        {.name = "deleted", .format = 1, .typid = 16, .typlen = 1},
    };
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

    assert_non_null(res);
    assert_int_equal(PQsetResultAttrs(res, 4, cols), 1);
    return res;
}

static void set_row(PGresult *res, int r, const char *key, const char *value, uint64_t version,
                    int deleted)
{
    char v[8], d = (char)deleted;

    for (int i = 0; i < 8; i++)
        v[i] = (char)(version >> (56 - 8 * i));
    assert_int_equal(PQsetvalue(res, r, 0, (char *)key, (int)strlen(key)), 1);
    assert_int_equal(PQsetvalue(res, r, 1, (char *)value, value ? (int)strlen(value) : -1), 1);
    assert_int_equal(PQsetvalue(res, r, 2, v, 8), 1);
    assert_int_equal(PQsetvalue(res, r, 3, &d, 1), 1);
}

static void rows_decode_from_binary(void **state)
{
    (void)state;
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "docs", .value_type = WB_VT_JSONB};
    char errstr[256];
    PGresult *res = read_result();
    wb_row_t row;

    set_row(res, 0, "k1", "{\"a\": 1}", ((uint64_t)1 << 40) + 3, 0);
    set_row(res, 1, "k2", NULL, 9, 1);
    assert_int_equal(wb_table_row_decode(res, 0, &ent, &row, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(row.keylen, 2);
    assert_memory_equal(row.key, "k1", 2);
    assert_int_equal(row.valuelen, 8);
    assert_string_equal(row.value, "{\"a\": 1}"); /* NUL-terminated by libpq */
    assert_int_equal(row.version, ((int64_t)1 << 40) + 3);
    assert_int_equal(row.deleted, 0);

    /* A tombstone: NULL value, deleted. */
    assert_int_equal(wb_table_row_decode(res, 1, &ent, &row, errstr, sizeof(errstr)), WB_OK);
    assert_null(row.value);
    assert_int_equal(row.valuelen, 0);
    assert_int_equal(row.version, 9);
    assert_int_equal(row.deleted, 1);

    /* No such tuple. */
    assert_int_equal(wb_table_row_decode(res, 2, &ent, &row, errstr, sizeof(errstr)), WB_ERR_PG);
    PQclear(res);

    /* A version column that is not a binary bigint: the table changed under us. */
    res = read_result();
    set_row(res, 0, "k1", "x", 1, 0);
    assert_int_equal(PQsetvalue(res, 0, 2, "1", 1), 1);
    errstr[0] = '\0';
    assert_int_equal(wb_table_row_decode(res, 0, &ent, &row, errstr, sizeof(errstr)), WB_ERR_PG);
    assert_non_null(strstr(errstr, "table docs has an unexpected layout"));
    PQclear(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identifiers_are_quoted),
        cmocka_unit_test(value_type_picks_column_and_cast),
        cmocka_unit_test(arrays_encode_rows_and_nulls),
        cmocka_unit_test(empty_value_is_not_null),
        cmocka_unit_test(read_and_purge_statements),
        cmocka_unit_test(text_array_is_array_recv_format),
        cmocka_unit_test(rows_decode_from_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
