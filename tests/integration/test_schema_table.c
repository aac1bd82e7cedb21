/* test_schema_table.c — an entity whose table lives in its own PostgreSQL schema
 * ("Schema"."Table", mixed case) through every path that names the table: write-through,
 * read-through, the flusher's create/verify/upsert, soft delete and the tombstone purge. All
 * of them quote it with wb_pg_quote_ident; one that quoted "schema.table" as one identifier,
 * or not at all, would hit a relation that does not exist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_table.h"
#include "wbcache.h"

static void lib_log(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN) fprintf(stderr, "  [lib] %s\n", line);
}

/* value::text and version of the row, or version -1. */
static int64_t row(fh_t *fh, const char *id, char *value, size_t size, int *deleted)
{
    char sql[512], qt[WB_PG_QUOTED_MAX];
    const char *params[1] = {id};
    int64_t v = -1;

    snprintf(sql, sizeof(sql), "SELECT value::text, version, deleted FROM %s WHERE key = $1",
             fh_qtable(fh, qt, sizeof(qt)));
    fh_pg_connect(fh);
    PGresult *res = PQexecParams(fh->pg, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        if (value) snprintf(value, size, "%s", PQgetvalue(res, 0, 0));
        v = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        if (deleted) *deleted = PQgetvalue(res, 0, 2)[0] == 't';
    }
    PQclear(res);
    return v;
}

static void entity_in_a_schema(void **state)
{
    (void)state;
    fh_t fh;
    char schema[64], table[96], sql[512], qt[WB_PG_QUOTED_MAX], errstr[1024], value[256];
    char id[4][128];
    wb_client_t *client = NULL;
    wb_value_t out = {0};
    int64_t v = 0, vd = 0;
    int deleted = 0;

    /* Mixed case: only a correctly quoted "Schema"."Table" finds it. */
    snprintf(schema, sizeof(schema), "WbSchema_%d_%lld", (int)getpid(),
             (long long)(wb_time_real_ms() % 100000000));
    snprintf(table, sizeof(table), "%s.Items", schema);
    PGconn *pg = PQconnectdb(fh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache "
                                                 "user=wbcache password=wbcache"));
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA \"%s\"", schema);
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    fh_setup_ex(&fh, "schema", "jsonb", "  batch:\n    max_wait_ms: 20\n", table, 3);
    for (int i = 0; i < 4; i++)
        snprintf(id[i], sizeof(id[i]), "%s-%d", fh.tag, i);
    fh_start(&fh); /* schema: create makes "WbSchema_…"."Items" and verifies it */
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 30000), 200);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", fh_qtable(&fh, qt, sizeof(qt)));
    res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);

    assert_int_equal(wb_client_open(fh.cfg, lib_log, NULL, &client, errstr, sizeof(errstr)), WB_OK);

    /* Write-through: the row lands in the schema's table. */
    assert_int_equal(wb_put_through(client, "item", id[0], "{\"via\": \"through\"}", 18, &v),
                     WB_OK);
    assert_int_equal(row(&fh, id[0], value, sizeof(value), NULL), v);
    assert_string_equal(value, "{\"via\": \"through\"}");

    /* Read-through: a row written by hand is read from there on a miss. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (key, value, version) VALUES ($1, '{\"via\": \"sql\"}', 7)", qt);
    const char *params[1] = {id[1]};
    res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_int_equal(wb_get(client, "item", id[1], &out), WB_OK);
    assert_int_equal(out.hit, 0);
    assert_int_equal(out.version, 7);
    assert_string_equal(out.data, "{\"via\": \"sql\"}");
    wb_value_free(&out);
    assert_int_equal(wb_get(client, "item", id[3], &out), WB_ERR_NOT_FOUND);

    /* Write-behind: the flusher upserts into it, then a soft delete. */
    assert_int_equal(wb_put(client, "item", id[2], "{\"via\": \"behind\"}", 17, WB_ACK_LOG, &v),
                     WB_OK);
    int64_t t0 = wb_time_mono_ms();
    while (row(&fh, id[2], value, sizeof(value), NULL) != v && wb_time_mono_ms() - t0 < 30000)
        usleep(100000);
    if (row(&fh, id[2], NULL, 0, NULL) != v) fh_dump_log(&fh);
    assert_int_equal(row(&fh, id[2], value, sizeof(value), NULL), v);
    assert_string_equal(value, "{\"via\": \"behind\"}");
    assert_int_equal(wb_del(client, "item", id[2], WB_ACK_LOG, &vd), WB_OK);
    while (row(&fh, id[2], NULL, 0, &deleted) != vd && wb_time_mono_ms() - t0 < 30000)
        usleep(100000);
    assert_int_equal(row(&fh, id[2], NULL, 0, &deleted), vd);
    assert_true(deleted);

    /* The purge finds the tombstone there too. */
    wb_table_purge_t purge = {&fh.conf->entities[0], 1, 100};
    wb_table_result_t purged;
    fh_pg_connect(&fh);
    usleep(20000);
    assert_int_equal(wb_table_purge(fh.pg, &purge, &purged, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(purged.rows, 1);
    assert_int_equal(row(&fh, id[2], NULL, 0, NULL), -1);

    wb_client_close(client);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    snprintf(sql, sizeof(sql), "*%s*", fh.tag); /* the keys, the index shards and floors */
    wb_test_redis_del_matching(fh.redis, sql);
    fh_teardown(&fh);
    snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", schema);
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entity_in_a_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
