/* test_mapped.c — a mapped entity (entities[].key_column) on a table of the user's own, against
 * the real services: the library writes, the real wb-flusher applies to the columns, reads come
 * back from the columns; hard deletes keep their version in the tombstone table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_table.h"
#include "wbcache.h"

/* The entity lines after "value_type: " in the harness's config. */
#define MAPPED_ENTITY                                                                              \
    "jsonb\n    key_column: id\n    key_type: bigint\n"                                            \
    "    columns: \"email, balance, active, created_at=created\"\n"

/* The accounts table as an application has it: no version column. */
/* The cache key of item id ("{N}item:" + id, wb_entry.h's layout) into buf. */
static const char *item_key(const fh_t *fh, char *buf, size_t size, const char *id)
{
    char body[160];

    snprintf(body, sizeof(body), "item:%s", id);
    return wb_test_key(buf, size, fh->conf->redis.dirty_shards, body);
}

static void create_accounts(fh_t *fh, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id bigint PRIMARY KEY, "
             "email text NOT NULL, balance numeric(12,2), active boolean NOT NULL DEFAULT true, "
             "created timestamptz, note text DEFAULT 'user column')",
             table, table);
    PQclear(fh_sql(fh, sql));
}

/* The first column of the one-row result of sql, into out ("" when no row). */
static const char *sql_value(fh_t *fh, const char *sql, char *out, size_t size)
{
    PGresult *r = fh_sql(fh, sql);
    snprintf(out, size, "%s", r && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

/* Waits until sql yields want (up to 30 s); returns whether it did. */
static int wait_value(fh_t *fh, const char *sql, const char *want)
{
    char got[256];
    int64_t t0 = wb_time_mono_ms();
    while (strcmp(sql_value(fh, sql, got, sizeof(got)), want) != 0) {
        if (wb_time_mono_ms() - t0 > 30000) {
            fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", sql, got, want);
            return 0;
        }
        usleep(100000);
    }
    return 1;
}

static void log_cb(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN) fprintf(stderr, "  [lib] %s\n", line);
}

/* Put, delete, write-through and read-through on a mapped entity; a late
 * older event after a delete does not bring the row back; a field of the
 * wrong type is dead-lettered with its column named, the rest lands. */
static void mapped_entity_end_to_end(void **state)
{
    (void)state;
    fh_t fh;
    char table[64], sql[1024], got[256], id[8][16], errstr[512];
    const int base = (int)getpid() * 100;
    wb_client_t *c = NULL;
    int64_t v[8] = {0};
    wb_value_t out;

    snprintf(table, sizeof(table), "wb_accounts_%d", (int)getpid());
    for (int i = 0; i < 8; i++)
        snprintf(id[i], sizeof(id[i]), "%d", base + i);
    fh_setup_ex(&fh, "mapped", MAPPED_ENTITY,
                "  batch:\n    max_events: 1000\n    max_wait_ms: 500\n", table, 3);
    create_accounts(&fh, table);
    fh_start(&fh); /* postgres.schema: create migrates a mapped table */
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 30000), 200);
    assert_int_equal(wb_client_open(fh.cfg, log_cb, NULL, &c, errstr, sizeof(errstr)), WB_OK);

    /* Refused at put: a field that is not mapped, a non-canonical bigint id. */
    const char *bad = "{\"email\": \"x@y\", \"nickname\": \"x\"}";
    assert_int_equal(wb_put(c, "item", id[0], bad, strlen(bad), WB_ACK_LOG, NULL),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(c, "item", "007", "{}", 2, WB_ACK_LOG, NULL), WB_ERR_INVALID_ARG);

    /* 0: put; 1: put then delete; 2: wrong type (dead-lettered); 3: lands in the same batch. */
    const char *a = "{\"email\": \"a@example.com\", \"balance\": 10.5, \"active\": false, "
                    "\"created_at\": \"2026-01-02T03:04:05Z\"}";
    const char *wrong = "{\"email\": \"w@example.com\", \"balance\": \"ten\"}";
    const char *d = "{\"email\": \"d@example.com\", \"balance\": 4, \"active\": true}";
    assert_int_equal(wb_put(c, "item", id[0], a, strlen(a), WB_ACK_LOG, &v[0]), WB_OK);
    assert_int_equal(wb_put(c, "item", id[1], a, strlen(a), WB_ACK_LOG, NULL), WB_OK);
    assert_int_equal(wb_del(c, "item", id[1], WB_ACK_LOG, &v[1]), WB_OK);
    assert_int_equal(wb_put(c, "item", id[2], wrong, strlen(wrong), WB_ACK_LOG, &v[2]), WB_OK);
    assert_int_equal(wb_put(c, "item", id[3], d, strlen(d), WB_ACK_LOG, &v[3]), WB_OK);

    snprintf(sql, sizeof(sql),
             "SELECT email || '|' || balance || '|' || active || '|' || "
             "(created = '2026-01-02T03:04:05Z') || '|' || version || '|' || note "
             "FROM %s WHERE id = %s",
             table, id[0]);
    snprintf(got, sizeof(got), "a@example.com|10.50|false|true|%lld|user column", (long long)v[0]);
    if (!wait_value(&fh, sql, got)) fh_dump_log(&fh);
    snprintf(sql, sizeof(sql), "SELECT email FROM %s WHERE id = %s", table, id[3]);
    assert_true(wait_value(&fh, sql, "d@example.com"));
    /* The delete removed the row and kept its version aside. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = %s", table, id[1]);
    assert_true(wait_value(&fh, sql, "0"));
    snprintf(sql, sizeof(sql),
             "SELECT version FROM wb_tombstones WHERE entity = 'item' AND key = '%s'", id[1]);
    snprintf(got, sizeof(got), "%lld", (long long)v[1]);
    assert_true(wait_value(&fh, sql, got));

    /* The wrong type: dead-lettered naming the column, no row. */
    fh_dead_t dead[8];
    int n = 0;
    int64_t t0 = wb_time_mono_ms();
    while ((n = fh_read_dlq(&fh, dead, 8)) < 1 && wb_time_mono_ms() - t0 < 30000)
        usleep(300000);
    if (n != 1) fh_dump_log(&fh);
    assert_int_equal(n, 1);
    fprintf(stderr, "  dead-letter reason: %s\n", dead[0].reason);
    assert_non_null(strstr(dead[0].key, id[2]));
    assert_non_null(strstr(dead[0].reason, "column \"balance\""));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = %s", table, id[2]);
    assert_string_equal(sql_value(&fh, sql, got, sizeof(got)), "0");

    /* A late, older event after the delete: the row stays gone. Then a
     * marker event behind it, so the late one has surely been applied. */
    char key[160];
    item_key(&fh, key, sizeof(key), id[1]);
    fh_produce_raw(&fh, key, a, strlen(a), v[1] - 1, "item");
    /* And a key that is no bigint (not from wb_put, which refuses it): poison, not an outage. */
    fh_produce_raw(&fh, "item:abc", d, strlen(d), v[1], "item");
    item_key(&fh, key, sizeof(key), id[4]);
    fh_produce_raw(&fh, key, d, strlen(d), v[1] + 1, "item");
    fh_flush(&fh);
    snprintf(sql, sizeof(sql), "SELECT email FROM %s WHERE id = %s", table, id[4]);
    assert_true(wait_value(&fh, sql, "d@example.com"));
    t0 = wb_time_mono_ms();
    while ((n = fh_read_dlq(&fh, dead, 8)) < 2 && wb_time_mono_ms() - t0 < 30000)
        usleep(300000);
    if (n != 2) fh_dump_log(&fh);
    assert_int_equal(n, 2);
    fprintf(stderr, "  dead-letter reason: %s\n", dead[1].reason);
    assert_string_equal(dead[1].key, "item:abc");
    assert_non_null(strstr(dead[1].reason, "column \"id\""));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = %s", table, id[1]);
    assert_string_equal(sql_value(&fh, sql, got, sizeof(got)), "0");
    /* A newer put after the delete does bring it back. */
    assert_int_equal(wb_put(c, "item", id[1], d, strlen(d), WB_ACK_LOG, NULL), WB_OK);
    snprintf(sql, sizeof(sql), "SELECT email FROM %s WHERE id = %s", table, id[1]);
    assert_true(wait_value(&fh, sql, "d@example.com"));

    /* Write-through: in the table when the call returns. */
    const char *e = "{\"email\": \"e@example.com\", \"active\": true}";
    assert_int_equal(wb_put_through(c, "item", id[5], e, strlen(e), &v[5]), WB_OK);
    snprintf(sql, sizeof(sql),
             "SELECT email || '|' || active || '|' || version FROM %s WHERE id = %s", table, id[5]);
    snprintf(got, sizeof(got), "e@example.com|true|%lld", (long long)v[5]);
    char row[256];
    assert_string_equal(sql_value(&fh, sql, row, sizeof(row)), got);

    /* Read-through from the columns: the cache entries dropped first. */
    for (int i = 0; i < 6; i++) {
        item_key(&fh, key, sizeof(key), id[i]);
        freeReplyObject(wb_test_redis(fh.redis, "DEL %s", key));
    }
    memset(&out, 0, sizeof(out));
    assert_int_equal(wb_get(c, "item", id[0], &out), WB_OK);
    fprintf(stderr, "  read back: %s\n", (char *)out.data);
    assert_int_equal(out.hit, 0);
    assert_int_equal(out.version, v[0]);
    assert_non_null(strstr(out.data, "\"email\": \"a@example.com\""));
    assert_non_null(strstr(out.data, "\"balance\": 10.50"));
    assert_non_null(strstr(out.data, "\"active\": false"));
    assert_non_null(strstr(out.data, "\"created_at\": \"2026-01-02T"));
    assert_null(strstr(out.data, "note")); /* not mapped */
    wb_value_free(&out);
    assert_int_equal(wb_get(c, "item", id[2], &out), WB_ERR_NOT_FOUND);
    assert_int_equal(wb_get(c, "item", id[5], &out), WB_OK);
    assert_int_equal(out.version, v[5]);
    assert_null(strstr(out.data, "balance")); /* NULL columns are left out */
    wb_value_free(&out);
    /* A deleted id: the tombstone answers not found. */
    assert_int_equal(wb_del(c, "item", id[3], WB_ACK_LOG, NULL), WB_OK);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = %s", table, id[3]);
    assert_true(wait_value(&fh, sql, "0"));
    item_key(&fh, key, sizeof(key), id[3]);
    freeReplyObject(wb_test_redis(fh.redis, "DEL %s", key));
    assert_int_equal(wb_get(c, "item", id[3], &out), WB_ERR_NOT_FOUND);

    /* The many-ids read the refresher streams (wb_table_select_send): a
     * row, a tombstone, nothing. */
    const char *ids[3] = {id[0], id[3], id[2]};
    const size_t lens[3] = {strlen(id[0]), strlen(id[3]), strlen(id[2])};
    wb_table_keys_t keys = {wb_config_entity(fh.conf, "item"), ids, lens, 3};
    PGresult *res = NULL;
    int rows = 0, tombs = 0;
    assert_int_equal(wb_table_select_send(fh.pg, &keys, errstr, sizeof(errstr)), WB_OK);
    for (;;) {
        wb_row_t rr;
        assert_int_equal(wb_table_select_next(fh.pg, keys.ent, &res, NULL, errstr, sizeof(errstr)),
                         WB_OK);
        if (!res) break;
        assert_int_equal(wb_table_row_decode(res, 0, keys.ent, &rr, errstr, sizeof(errstr)), WB_OK);
        if (rr.deleted) {
            tombs++;
            assert_memory_equal(rr.key, id[3], rr.keylen);
            assert_null(rr.value);
        } else {
            rows++;
            assert_memory_equal(rr.key, id[0], rr.keylen);
            assert_int_equal(rr.version, v[0]);
            assert_non_null(strstr(rr.value, "\"balance\": 10.50"));
        }
        PQclear(res);
    }
    assert_int_equal(rows, 1);
    assert_int_equal(tombs, 1);

    wb_client_close(c);
    snprintf(sql, sizeof(sql),
             "DELETE FROM wb_tombstones WHERE entity = 'item' AND key LIKE '%d%%'", (int)getpid());
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

/* postgres.schema verify names the missing version column; migrate adds
 * it (and the tombstone table) without touching the user's columns. */
static void mapped_verify_and_migrate(void **state)
{
    (void)state;
    fh_t fh;
    char table[64], sql[512], got[256], errstr[512];
    const wb_entity_t *ent;

    snprintf(table, sizeof(table), "wb_accounts_m%d", (int)getpid());
    fh_setup_ex(&fh, "migrate", MAPPED_ENTITY, NULL, table, 1);
    create_accounts(&fh, table);
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, email, balance) VALUES (1, 'old@x', 1.25)",
             table);
    PQclear(fh_sql(&fh, sql));
    ent = wb_config_entity(fh.conf, "item");
    assert_non_null(ent);

    fh.conf->postgres.schema = WB_SCHEMA_VERIFY;
    assert_int_equal(wb_table_ensure(fh.pg, fh.conf, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    fprintf(stderr, "  verify: %s\n", errstr);
    assert_non_null(strstr(errstr, "version column \"version\""));
    assert_non_null(strstr(errstr, "migrate"));
    fh.conf->postgres.schema = WB_SCHEMA_MIGRATE;
    assert_int_equal(wb_table_ensure(fh.pg, fh.conf, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_table_verify(fh.pg, ent, errstr, sizeof(errstr)), WB_OK);
    /* Again: nothing to do. */
    assert_int_equal(wb_table_ensure(fh.pg, fh.conf, errstr, sizeof(errstr)), WB_OK);
    /* The user's columns and rows as they were; the old row at version 0. */
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position) "
             "FROM information_schema.columns WHERE table_name = '%s'",
             table);
    assert_string_equal(sql_value(&fh, sql, got, sizeof(got)),
                        "id bigint,email text,balance numeric,active boolean,"
                        "created timestamp with time zone,note text,version bigint");
    snprintf(sql, sizeof(sql), "SELECT email || '|' || balance || '|' || version FROM %s", table);
    assert_string_equal(sql_value(&fh, sql, got, sizeof(got)), "old@x|1.25|0");

    /* A mapped column the table lacks is named. */
    snprintf(sql, sizeof(sql), "ALTER TABLE %s RENAME COLUMN created TO created_on", table);
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(wb_table_verify(fh.pg, ent, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    fprintf(stderr, "  verify: %s\n", errstr);
    assert_non_null(strstr(errstr, "column \"created\" (field \"created_at\""));
    fh_teardown(&fh);
}

/* delete: soft on a uuid-keyed table: the row stays, flagged, with the
 * delete's version; a late older put does not clear the flag; reads say not
 * found; migrate adds the flag column; a NOT NULL column without default is
 * refused (a delete of an unknown id inserts a key-only row). */
static void mapped_soft_delete(void **state)
{
    (void)state;
    fh_t fh;
    char table[64], sql[512], got[256], errstr[512], key[160], idv[40];
    wb_client_t *c = NULL;
    int64_t vput = 0, vdel = 0;
    wb_value_t out;

    snprintf(table, sizeof(table), "wb_soft_%d", (int)getpid());
    snprintf(idv, sizeof(idv), "00000000-0000-4000-8000-%012d", (int)getpid());
    fh_setup_ex(&fh, "soft",
                "jsonb\n    key_column: id\n    key_type: uuid\n    delete: soft\n"
                "    deleted_column: gone\n    columns: \"email, balance\"\n",
                "  batch:\n    max_wait_ms: 200\n", table, 1);
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id uuid PRIMARY KEY, email text NOT NULL, "
             "balance numeric)",
             table, table);
    PQclear(fh_sql(&fh, sql));
    const wb_entity_t *ent = wb_config_entity(fh.conf, "item");
    fh.conf->postgres.schema = WB_SCHEMA_MIGRATE; /* migrates, then verify refuses */
    assert_int_equal(wb_table_ensure(fh.pg, fh.conf, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    fprintf(stderr, "  verify: %s\n", errstr);
    assert_non_null(strstr(errstr, "column \"email\" is NOT NULL without a default"));
    snprintf(sql, sizeof(sql), "ALTER TABLE %s ALTER COLUMN email DROP NOT NULL", table);
    PQclear(fh_sql(&fh, sql));
    fh.conf->postgres.schema = WB_SCHEMA_MIGRATE;
    assert_int_equal(wb_table_ensure(fh.pg, fh.conf, errstr, sizeof(errstr)), WB_OK);
    snprintf(sql, sizeof(sql),
             "SELECT data_type || ' ' || is_nullable FROM information_schema.columns WHERE "
             "table_name = '%s' AND column_name = 'gone'",
             table);
    assert_string_equal(sql_value(&fh, sql, got, sizeof(got)), "boolean NO");
    assert_int_equal(wb_table_verify(fh.pg, ent, errstr, sizeof(errstr)), WB_OK);

    fh_start(&fh);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 30000), 200);
    assert_int_equal(wb_client_open(fh.cfg, log_cb, NULL, &c, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(
        wb_put(c, "item", "0000000A-0000-4000-8000-000000000000", "{}", 2, WB_ACK_LOG, NULL),
        WB_ERR_INVALID_ARG); /* not lowercase */
    const char *a = "{\"email\": \"s@example.com\", \"balance\": 3}";
    assert_int_equal(wb_put(c, "item", idv, a, strlen(a), WB_ACK_LOG, &vput), WB_OK);
    snprintf(sql, sizeof(sql),
             "SELECT email || '|' || gone || '|' || version FROM %s WHERE id = '%s'", table, idv);
    snprintf(got, sizeof(got), "s@example.com|false|%lld", (long long)vput);
    assert_true(wait_value(&fh, sql, got));
    assert_int_equal(wb_del(c, "item", idv, WB_ACK_LOG, &vdel), WB_OK);
    snprintf(got, sizeof(got), "s@example.com|true|%lld", (long long)vdel);
    assert_true(wait_value(&fh, sql, got)); /* flagged, the columns kept */
    /* A late older put, then a marker: still deleted. */
    item_key(&fh, key, sizeof(key), idv);
    fh_produce_raw(&fh, key, a, strlen(a), vdel - 1, "item");
    fh_produce_raw(&fh, "item:00000000-0000-4000-8000-000000000001", NULL, 0, 7, "item");
    fh_flush(&fh);
    snprintf(sql, sizeof(sql),
             "SELECT gone || '|' || version FROM %s WHERE id = "
             "'00000000-0000-4000-8000-000000000001'",
             table);
    assert_true(wait_value(&fh, sql, "true|7")); /* a delete of an unknown id keeps its version */
    snprintf(sql, sizeof(sql), "SELECT gone || '|' || version FROM %s WHERE id = '%s'", table, idv);
    snprintf(got, sizeof(got), "true|%lld", (long long)vdel);
    char row[256];
    assert_string_equal(sql_value(&fh, sql, row, sizeof(row)), got);
    freeReplyObject(wb_test_redis(fh.redis, "DEL %s", key));
    memset(&out, 0, sizeof(out));
    assert_int_equal(wb_get(c, "item", idv, &out), WB_ERR_NOT_FOUND);
    /* A newer put revives it. */
    assert_int_equal(wb_put(c, "item", idv, a, strlen(a), WB_ACK_LOG, &vput), WB_OK);
    snprintf(got, sizeof(got), "false|%lld", (long long)vput);
    assert_true(wait_value(&fh, sql, got));
    freeReplyObject(wb_test_redis(fh.redis, "DEL %s", key));
    assert_int_equal(wb_get(c, "item", idv, &out), WB_OK);
    assert_int_equal(out.version, vput);
    assert_non_null(strstr(out.data, "\"email\": \"s@example.com\""));
    wb_value_free(&out);
    wb_client_close(c);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

/* Runs one flusher over n events on k keys of layout (a mapped entity on
 * the accounts table, or "jsonb" blob) produced before it starts; returns
 * the events per second from start until every key holds its last version. */
static double rate_of(const char *layout, int n, int k)
{
    fh_t fh;
    char table[64], key[64], val[256], sql[256], want[32];
    int mapped = strcmp(layout, "jsonb") != 0;
    long long sum = 0;

    snprintf(table, sizeof(table), "wb_rate_%s_%d", mapped ? "mapped" : "blob", (int)getpid());
    fh_setup_ex(&fh, mapped ? "ratem" : "rateb", layout, NULL, table, 3);
    if (mapped) create_accounts(&fh, table);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "item:%d", i % k);
        snprintf(val, sizeof(val),
                 "{\"email\": \"u%d@example.com\", \"balance\": %d.25, \"active\": %s, "
                 "\"created_at\": \"2026-01-02T03:04:05Z\"}",
                 i % k, i, i % 2 ? "true" : "false");
        fh_produce_raw(&fh, key, val, strlen(val), 1000 + i, "item");
        if (i >= n - k) sum += 1000 + i;
    }
    fh_flush(&fh);
    snprintf(sql, sizeof(sql), "SELECT sum(version) FROM %s", table);
    snprintf(want, sizeof(want), "%lld", sum);
    int64_t t0 = wb_time_mono_ms();
    fh_start(&fh);
    fh_wait_http(&fh, "/readyz", 200, 30000); /* the table exists (migrated) from here */
    int ok = wait_value(&fh, sql, want);
    double secs = (double)(wb_time_mono_ms() - t0) / 1000.0;
    if (!ok) fh_dump_log(&fh);
    assert_true(ok);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    return n / secs;
}

/* The figure: flusher events per second, mapped vs blob, same rows, same
 * run (a measurement, never a failure on time). */
static void mapped_vs_blob_rate(void **state)
{
    (void)state;
    const int n = 40000, k = 10000;
    double blob = rate_of("jsonb", n, k), mapped = rate_of(MAPPED_ENTITY, n, k);
    fprintf(stderr,
            "  flusher, %d events on %d keys (start to last row): blob %.0f events/s, "
            "mapped %.0f events/s (%.2fx)\n",
            n, k, blob, mapped, mapped / blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mapped_verify_and_migrate),
        cmocka_unit_test(mapped_entity_end_to_end),
        cmocka_unit_test(mapped_soft_delete),
        cmocka_unit_test(mapped_vs_blob_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
