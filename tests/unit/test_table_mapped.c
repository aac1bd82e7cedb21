/* test_table_mapped.c — mapped entities without a server: their config keys, the statements
 * wb_table builds for them, and the checks of ids and values at put (wb_column). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_column.h"
#include "wb_config.h"
#include "wb_table.h"

#define HEAD "postgres:\n  schema: migrate\nentities:\n  - name: account\n    prefix: \"acct:\"\n"

static char errbuf[4096];

static wb_config_t *load(const char *entity_lines)
{
    char yaml[2048];
    wb_config_t *conf = NULL;
    snprintf(yaml, sizeof(yaml), HEAD "%s", entity_lines);
    if (wb_config_load_string("<t>", yaml, strlen(yaml), &conf, errbuf, sizeof(errbuf)) != WB_OK)
        return NULL;
    return conf;
}

static const char *const ACCOUNTS =
    "    table: app.accounts\n    value_type: jsonb\n    key_column: id\n    key_type: bigint\n"
    "    columns: \"email, balance , active,created_at = created\"\n";

static void config_parses_columns(void **state)
{
    (void)state;
    wb_config_t *conf = load(ACCOUNTS);
    assert_non_null(conf);
    const wb_entity_t *e = &conf->entities[0];
    assert_int_equal(conf->postgres.schema, WB_SCHEMA_MIGRATE);
    assert_true(WB_ENTITY_MAPPED(e));
    assert_int_equal(e->key_type, WB_KT_BIGINT);
    assert_string_equal(e->version_column, "version");
    assert_int_equal(e->nmap, 4);
    assert_string_equal(e->map[1].field, "balance");
    assert_string_equal(e->map[1].column, "balance");
    assert_string_equal(e->map[3].field, "created_at");
    assert_string_equal(e->map[3].column, "created");
    wb_config_destroy(conf);

    /* A blob entity is not mapped. */
    conf = load("    table: t\n");
    assert_non_null(conf);
    assert_false(WB_ENTITY_MAPPED(&conf->entities[0]));
    assert_int_equal(conf->entities[0].nmap, 0);
    wb_config_destroy(conf);
}

static void config_refuses_bad_mappings(void **state)
{
    (void)state;
    static const struct {
        const char *lines, *error;
    } bad[] = {
        {"    table: t\n    columns: a\n", "entities[0].columns: needs key_column"},
        {"    table: t\n    key_column: id\n    columns: a\n", "set value_type: jsonb"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n", "needs at least one column"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    columns: \"a, b=a\"\n",
         "mapped twice"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    columns: \"a, id\"\n",
         "is the key, version or deleted column"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    columns: \"a=b c\"\n",
         "expected field or field=column"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    columns: \"it's\"\n",
         "no quote, backslash or control character in a field"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    key_type: int\n"
         "    columns: a\n",
         "must be one of text, bigint, uuid"},
        {"    table: t\n    value_type: jsonb\n    key_column: id\n    version_column: id\n"
         "    columns: a\n",
         "entities[0].version_column: must differ from key_column"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wb_config_t *conf = load(bad[i].lines);
        if (conf || !strstr(errbuf, bad[i].error))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].error, conf ? "OK" : errbuf);
    }
}

static void upsert_is_one_guarded_statement(void **state)
{
    (void)state;
    wb_config_t *conf = load(ACCOUNTS);
    const wb_entity_t *e = &conf->entities[0];
    char *sql = wb_table_upsert_sql(e);
    assert_non_null(sql);
    /* One statement over the four arrays, fields converted by the table's own types. */
    assert_non_null(strstr(sql, "unnest($1::text[], $2::text[], $3::int8[], $4::bool[])"));
    assert_non_null(strstr(sql, "u.k::bigint AS id"));
    assert_non_null(strstr(sql, "jsonb_populate_record(NULL::\"app\".\"accounts\", "
                                "jsonb_build_object('email', u.v->'email', 'balance', "
                                "u.v->'balance', 'active', u.v->'active', 'created', "
                                "u.v->'created_at'))"));
    /* Deletes: the tombstone in the table's schema, the row removed if older. */
    assert_non_null(strstr(sql, "INSERT INTO \"app\".\"wb_tombstones\" AS b"));
    assert_non_null(strstr(sql, "DELETE FROM \"app\".\"accounts\" AS t USING r WHERE r.del AND "
                                "t.\"id\" = r.id AND t.\"version\" < r.ver"));
    /* Upserts: refused under a tombstone at the same or a newer version, and guarded. */
    assert_non_null(strstr(sql, "b.\"entity\" = 'account' AND b.\"key\" = r.k AND "
                                "b.\"version\" >= r.ver"));
    assert_non_null(
        strstr(sql, "ON CONFLICT (\"id\") DO UPDATE SET \"email\" = EXCLUDED.\"email\""));
    assert_non_null(strstr(sql, "\"created\" = EXCLUDED.\"created\""));
    assert_non_null(strstr(sql, "WHERE t.\"version\" < EXCLUDED.\"version\""));
    assert_null(strstr(sql, "\"deleted\""));
    free(sql);
    wb_config_destroy(conf);
}

static void reads_build_the_value_from_columns(void **state)
{
    (void)state;
    wb_config_t *conf = load(ACCOUNTS);
    const wb_entity_t *e = &conf->entities[0];
    char *sql = wb_table_select_sql(e, 0);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "SELECT t.\"id\"::text, jsonb_strip_nulls(jsonb_build_object("
                                "'email', t.\"email\", 'balance', t.\"balance\", 'active', "
                                "t.\"active\", 'created_at', t.\"created\"))::text, "
                                "t.\"version\", false FROM \"app\".\"accounts\" AS t WHERE "
                                "t.\"id\" = $1::text::bigint"));
    assert_non_null(strstr(sql, "UNION ALL SELECT b.\"key\", NULL::text, b.\"version\", true"));
    free(sql);
    sql = wb_table_select_sql(e, 1);
    assert_non_null(strstr(sql, "t.\"id\" = ANY($1::text[]::bigint[])"));
    assert_non_null(strstr(sql, "b.\"key\" = ANY($1::text[])"));
    free(sql);
    sql = wb_table_probe_sql(e);
    assert_non_null(strstr(sql, "GREATEST(t.\"version\", b.\"version\")"));
    assert_non_null(strstr(sql, "ON t.\"id\" = u.k::bigint"));
    free(sql);
    sql = wb_table_purge_sql(e);
    assert_non_null(strstr(sql, "DELETE FROM \"app\".\"wb_tombstones\" WHERE \"entity\" = "
                                "'account'"));
    free(sql);
    /* create and migrate only add: the tombstone table, the version column. */
    sql = wb_table_create_sql(e);
    assert_non_null(strstr(sql, "CREATE TABLE IF NOT EXISTS \"app\".\"wb_tombstones\""));
    assert_non_null(strstr(sql, "ALTER TABLE \"app\".\"accounts\" ADD COLUMN IF NOT EXISTS "
                                "\"version\" bigint NOT NULL DEFAULT 0"));
    assert_null(strstr(sql, "DROP"));
    free(sql);
    wb_config_destroy(conf);
}

static void soft_delete_flags_the_row(void **state)
{
    (void)state;
    wb_config_t *conf = load("    table: t\n    value_type: jsonb\n    key_column: id\n"
                             "    key_type: uuid\n    delete: soft\n    deleted_column: gone\n"
                             "    columns: \"a, b\"\n");
    assert_non_null(conf);
    const wb_entity_t *e = &conf->entities[0];
    assert_int_equal(e->delete_mode, WB_DELETE_SOFT);
    char *sql = wb_table_upsert_sql(e);
    /* Deletes set the flag under the version guard; no tombstone table. */
    assert_non_null(strstr(sql, "gone AS (INSERT INTO \"t\" AS t (\"id\", \"version\", \"gone\") "
                                "SELECT r.id, r.ver, true FROM r WHERE r.del ON CONFLICT (\"id\") "
                                "DO UPDATE SET \"version\" = EXCLUDED.\"version\", \"gone\" = true "
                                "WHERE t.\"version\" < EXCLUDED.\"version\""));
    assert_non_null(strstr(sql, "\"gone\" = false WHERE t.\"version\" < EXCLUDED.\"version\""));
    assert_null(strstr(sql, "wb_tombstones"));
    free(sql);
    sql = wb_table_select_sql(e, 1);
    assert_non_null(strstr(sql, "CASE WHEN t.\"gone\" THEN NULL ELSE jsonb_strip_nulls("));
    assert_non_null(strstr(sql, "t.\"version\", t.\"gone\" FROM \"t\" AS t WHERE t.\"id\" = "
                                "ANY($1::text[]::uuid[])"));
    free(sql);
    sql = wb_table_create_sql(e);
    assert_string_equal(sql, "ALTER TABLE \"t\" ADD COLUMN IF NOT EXISTS \"version\" bigint NOT "
                             "NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS \"gone\" boolean NOT NULL "
                             "DEFAULT false");
    free(sql);
    assert_null(wb_table_purge_sql(e)); /* the user's rows are never purged */
    wb_config_destroy(conf);
}

static void wide_tables_split_the_object(void **state)
{
    (void)state;
    char lines[1400], cols[1000];
    size_t n = 0;
    for (int i = 0; i < 45; i++)
        n += (size_t)snprintf(cols + n, sizeof(cols) - n, "%sc%d", i ? "," : "", i);
    snprintf(lines, sizeof(lines),
             "    table: wide\n    value_type: jsonb\n    key_column: id\n    columns: \"%s\"\n",
             cols);
    wb_config_t *conf = load(lines);
    assert_non_null(conf);
    char *sql = wb_table_select_sql(&conf->entities[0], 0);
    /* jsonb_build_object takes at most 100 arguments. */
    assert_non_null(strstr(sql, "'c39', t.\"c39\") || jsonb_build_object('c40', t.\"c40\""));
    assert_non_null(strstr(sql, "WHERE t.\"id\" = $1::text UNION ALL")); /* a text key */
    free(sql);
    wb_config_destroy(conf);
}

static void values_and_ids_checked_at_put(void **state)
{
    (void)state;
    char why[320];
    wb_config_t *conf = load(ACCOUNTS);
    const wb_entity_t *e = &conf->entities[0];
    const char *ok = " { \"email\" : \"a\\\"b\", \"balance\": [1, {\"x\": \"}\"}], "
                     "\"active\": true, \"created_at\": null } ";
    assert_int_equal(wb_column_check_mapped(e, ok, strlen(ok), why, sizeof(why)), WB_OK);
    assert_int_equal(wb_column_check_mapped(e, "{}", 2, why, sizeof(why)), WB_OK);
    /* An escaped field name is the field. */
    assert_int_equal(wb_column_check_mapped(e, "{\"em\\u0061il\": 1}", 17, why, sizeof(why)),
                     WB_OK);

    const char *extra = "{\"email\": \"a\", \"nick\": {\"email\": 1}}";
    assert_int_equal(wb_column_check_mapped(e, extra, strlen(extra), why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_string_equal(why, "field \"nick\" is not mapped to a column of table app.accounts "
                             "(entities[].columns of entity account)");
    /* The column's name is not the field's. */
    assert_int_equal(wb_column_check_mapped(e, "{\"created\": 1}", 14, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_column_check_mapped(e, "[1]", 3, why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "must be a JSON object"));
    assert_int_equal(wb_column_check_mapped(e, "{\"email\": ", 10, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);

    static const char *const good[] = {"0", "42", "-7", "9223372036854775807",
                                       "-9223372036854775808"};
    static const char *const bad[] = {"",   "007", "+1", "1e3", "-0", "9223372036854775808",
                                      "4 ", "abc", "-"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(wb_column_check_id(e, good[i], why, sizeof(why)), WB_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wb_column_check_id(e, bad[i], why, sizeof(why)) != WB_ERR_INVALID_ARG)
            fail_msg("bigint id \"%s\" accepted", bad[i]);
    wb_config_destroy(conf);

    conf = load("    table: t\n    value_type: jsonb\n    key_column: id\n    key_type: uuid\n"
                "    columns: a\n");
    e = &conf->entities[0];
    assert_int_equal(
        wb_column_check_id(e, "0b7e6a3c-1f2d-4c5b-9a8e-7d6c5b4a3f21", why, sizeof(why)), WB_OK);
    assert_int_equal(
        wb_column_check_id(e, "0B7E6A3C-1F2D-4C5B-9A8E-7D6C5B4A3F21", why, sizeof(why)),
        WB_ERR_INVALID_ARG);
    assert_int_equal(wb_column_check_id(e, "0b7e6a3c1f2d4c5b9a8e7d6c5b4a3f21", why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    wb_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_parses_columns),
        cmocka_unit_test(config_refuses_bad_mappings),
        cmocka_unit_test(upsert_is_one_guarded_statement),
        cmocka_unit_test(reads_build_the_value_from_columns),
        cmocka_unit_test(soft_delete_flags_the_row),
        cmocka_unit_test(wide_tables_split_the_object),
        cmocka_unit_test(values_and_ids_checked_at_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
