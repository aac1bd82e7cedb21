/* test_flusher.c — wb-flusher against the real services: PostgreSQL converges to the
 * highest version of every key, whatever the order, duplication or poison in the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_entry.h"
#include "wb_table.h"

#define NKEYS 200

/* N random puts and deletes over K keys, versions from Redis (wb_entry_put,
 * as the library does), events to Kafka → PostgreSQL equals the ground
 * truth, and every cache entry ends clean with its TTL (invariant 2). */
static void random_puts_and_deletes_reach_truth(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(NKEYS, sizeof(*truth));
    char key[64], body[64], val[64], errstr[256], dirty[160];
    unsigned seed = 7;

    fh_setup(&fh, "random", "text", "  batch:\n    max_events: 300\n    max_wait_ms: 50\n");
    snprintf(dirty, sizeof(dirty), "%s:dirty", fh.tag);
    fh_start(&fh);
    for (int i = 0; i < 5000; i++) {
        int k = rand_r(&seed) % NKEYS, del = rand_r(&seed) % 5 == 0;
        snprintf(body, sizeof(body), "item:%d", k);
        wb_test_key(key, sizeof(key), fh.conf->redis.dirty_shards, body);
        snprintf(val, sizeof(val), "value %d of %d", i, k);
        wb_entry_put_req_t req = {.key = key,
                                  .keylen = strlen(key),
                                  .value = del ? NULL : val,
                                  .len = del ? 0 : strlen(val),
                                  .is_delete = del,
                                  .dirty_index = dirty};
        wb_entry_put_res_t res;
        assert_int_equal(wb_entry_put(fh.redis, &req, &res, errstr, sizeof(errstr)), WB_OK);
        int64_t ver = res.version;
        fh_truth_apply(&truth[k], del ? NULL : val, ver);
        fh_produce(&fh, key, del ? NULL : val, ver);
    }
    fh_flush(&fh);
    int diffs = fh_wait_truth(&fh, truth, NKEYS, 60000);
    if (diffs) fh_dump_log(&fh);
    assert_int_equal(diffs, 0);
    assert_true(fh_count(&fh, "WHERE deleted") > 0);

    /* Clean-marking follows the commit: every entry clean, with a TTL, and
     * the dirty index empty. */
    int64_t t0 = wb_time_mono_ms();
    long long dirty_left = -1;
    while (wb_time_mono_ms() - t0 < 20000) {
        wb_entry_dirty_stats_t st;
        dirty_left = wb_entry_dirty_stats(fh.redis, dirty, fh.conf->redis.dirty_shards, &st, errstr,
                                          sizeof(errstr)) == WB_OK
                         ? st.count
                         : -1;
        if (dirty_left == 0) break;
        usleep(100000);
    }
    assert_int_equal(dirty_left, 0);
    for (int k = 0; k < NKEYS; k++) {
        wb_entry_t e;
        if (!truth[k].present) continue;
        snprintf(body, sizeof(body), "item:%d", k);
        wb_test_key(key, sizeof(key), fh.conf->redis.dirty_shards, body);
        assert_int_equal(wb_entry_read(fh.redis, key, strlen(key), &e, errstr, sizeof(errstr)),
                         WB_OK);
        assert_int_equal(e.dirty, 0);
        assert_int_equal(e.version, truth[k].version);
        assert_true(e.pttl_ms > 0);
        wb_entry_clear(&e);
        redisReply *r = wb_test_redis(fh.redis, "DEL %s", key);
        freeReplyObject(r);
    }
    int64_t took = 0;
    assert_int_equal(fh_stop(&fh, 30000, &took), 0);
    fh_teardown(&fh);
    free(truth);
}

static void shuffle(int64_t *a, int n, unsigned *seed)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rand_r(seed) % (i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Every version of every key twice, shuffled, from two producers
 * interleaving on the same keys, in batches smaller than the stream →
 * the same final state as the ground truth (invariants 4 and 6). */
static void duplicates_reordering_two_producers(void **state)
{
    (void)state;
    enum { K = 100, V = 12 };
    fh_t fh;
    fh_row_t truth[K];
    int64_t order[K * V];
    char key[64], val[64], errstr[256];
    unsigned seed = 99;
    rd_kafka_t *p2 = NULL;
    rd_kafka_conf_t *kc = NULL;

    memset(truth, 0, sizeof(truth));
    fh_setup(&fh, "reorder", "text", "  batch:\n    max_events: 97\n    max_wait_ms: 20\n");
    assert_int_equal(wb_kafka_conf_new(fh.conf, "test2", 0, &kc, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_kafka_producer_new(kc, 1, &p2, errstr, sizeof(errstr)), WB_OK);
    for (int i = 0; i < K * V; i++)
        order[i] = i;
    for (int round = 0; round < 2; round++) {
        shuffle(order, K * V, &seed);
        for (int i = 0; i < K * V; i++) {
            int k = (int)(order[i] / V);
            int64_t ver = 1000 + order[i] % V;
            int del = ver % 5 == 0;
            snprintf(key, sizeof(key), "item:%d", k);
            snprintf(val, sizeof(val), "k%d v%" PRId64, k, ver);
            fh_truth_apply(&truth[k], del ? NULL : val, ver);
            /* Alternate producers: the two streams interleave per key. */
            rd_kafka_t *save = fh.producer;
            if (i % 2) fh.producer = p2;
            fh_produce(&fh, key, del ? NULL : val, ver);
            fh.producer = save;
        }
    }
    fh_flush(&fh);
    rd_kafka_flush(p2, 30000);
    rd_kafka_destroy(p2);
    fh_start(&fh);
    int diffs = fh_wait_truth(&fh, truth, K, 60000);
    if (diffs) fh_dump_log(&fh);
    assert_int_equal(diffs, 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

/* Poison of every kind → each in the dead-letter topic with its reason and
 * origin; all good events of the same batches land (invariant 7). */
static void poison_goes_to_dead_letter_rest_lands(void **state)
{
    (void)state;
    enum { K = 100 };
    fh_t fh;
    fh_row_t truth[K + 1];
    char key[64], val[64];
    fh_dead_t dead[32];

    memset(truth, 0, sizeof(truth));
    /* One big batch: the poison shares it with all the good events. */
    fh_setup(&fh, "poison", "jsonb", "  batch:\n    max_events: 100000\n    max_wait_ms: 2000\n");
    for (int k = 0; k < K; k++) {
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "{\"k\": %d}", k);
        fh_truth_apply(&truth[k], val, 10);
        fh_produce(&fh, key, val, 10);
        if (k % 33 == 5) /* invalid JSON for a jsonb column: rejected by PostgreSQL */
            fh_produce(&fh, key, "{not json", 11);
    }
    /* Key K: the newest version is poison, the older valid one must land. */
    snprintf(key, sizeof(key), "item:%d", K);
    fh_truth_apply(&truth[K], "{\"older\": true}", 20);
    fh_produce(&fh, key, "{\"older\": true}", 20);
    fh_produce(&fh, key, "\x01 not json", 21);
    fh_produce_raw(&fh, "item:x1", "{}", 2, 5, "nosuch"); /* unknown entity */
    fh_produce_raw(&fh, "item:x2", NULL, 0, 6, "nosuch"); /* a delete of an unknown entity */
    fh_produce_raw(&fh, "other:1", "{}", 2, 5, "item");   /* key outside the prefix */
    /* None of the event's headers, only others (one null): undecodable. */
    rd_kafka_headers_t *own = rd_kafka_headers_new(2);
    rd_kafka_header_add(own, "x-trace", -1, "t-42", 4);
    rd_kafka_header_add(own, "x-none", -1, NULL, 0);
    assert_int_equal(rd_kafka_producev(fh.producer, RD_KAFKA_V_TOPIC(fh.topic),
                                       RD_KAFKA_V_KEY("item:raw", 8), RD_KAFKA_V_VALUE("{}", 2),
                                       RD_KAFKA_V_HEADERS(own),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    fh_flush(&fh);
    fh_start(&fh);
    int diffs = fh_wait_truth(&fh, truth, K + 1, 60000);
    if (diffs) fh_dump_log(&fh);
    assert_int_equal(diffs, 0);

    int n = 0;
    int64_t t0 = wb_time_mono_ms();
    while ((n = fh_read_dlq(&fh, dead, 32)) < 8 && wb_time_mono_ms() - t0 < 20000)
        usleep(500000);
    int json = 0, entity = 0, prefix = 0, decode = 0;
    for (int i = 0; i < n; i++) {
        assert_string_equal(dead[i].topic, fh.topic);
        assert_true(dead[i].partition >= 0 && dead[i].partition < 3);
        assert_true(dead[i].offset >= 0);
        json += strstr(dead[i].reason, "SQLSTATE 22P02") != NULL;
        entity += strstr(dead[i].reason, "unknown entity") != NULL;
        prefix += strstr(dead[i].reason, "prefix") != NULL;
        decode += strstr(dead[i].reason, "undecodable") != NULL;
        /* The message as it was consumed: key, value (null stays null),
         * its own headers in order, then the dead-letter ones. */
        if (!strcmp(dead[i].key, "item:raw")) {
            assert_string_equal(dead[i].value, "{}");
            assert_int_equal(dead[i].value_null, 0);
            assert_ptr_equal(strstr(dead[i].headers, "x-trace=t-42;x-none=(null);wb-dlq-reason="),
                             dead[i].headers);
        }
        if (!strcmp(dead[i].key, "item:x2")) {
            assert_int_equal(dead[i].value_null, 1);
            assert_non_null(strstr(dead[i].headers, "wb-version=6;"));
            assert_non_null(strstr(dead[i].headers, "wb-entity=nosuch;"));
            assert_non_null(strstr(dead[i].headers, "wb-op=del;"));
        }
        if (!strcmp(dead[i].key, "item:x1")) {
            assert_string_equal(dead[i].value, "{}");
            assert_int_equal(dead[i].value_null, 0);
            assert_non_null(strstr(dead[i].headers, "wb-op=put;"));
        }
    }
    if (n != 8) fh_dump_log(&fh);
    assert_int_equal(n, 8); /* 3 + 1 invalid JSON, 2 unknown entity, prefix, undecodable */
    assert_int_equal(json, 4);
    assert_int_equal(entity, 2);
    assert_int_equal(prefix, 1);
    assert_int_equal(decode, 1);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

/* A key's cache entry as the poison test sees it. */
static void cache_state(fh_t *fh, const char *key, const char *dirty, wb_entry_t *e, int64_t *score,
                        int64_t *rv)
{
    char errstr[256];
    assert_int_equal(wb_entry_read(fh->redis, key, strlen(key), e, errstr, sizeof(errstr)), WB_OK);
    char idx[WB_ENTRY_KEY_MAX];
    int shard = -1;
    assert_true(wb_entry_key_tag(key, strlen(key), &shard) > 0);
    wb_entry_index_key(dirty, shard, idx, sizeof(idx));
    redisReply *r = wb_test_redis(fh->redis, "ZSCORE %s %s", idx, key);
    *score = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    r = wb_test_redis(fh->redis, "HGET %s rv", key);
    *rv = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
}

/* The version of row id in the test's table, -1 if absent. */
static int64_t row_version(fh_t *fh, const char *id)
{
    char sql[256];
    const char *params[1] = {id};
    snprintf(sql, sizeof(sql), "SELECT version FROM \"%s\" WHERE key = $1", fh->table);
    fh_pg_connect(fh);
    PGresult *res = PQexecParams(fh->pg, sql, 1, NULL, params, NULL, NULL, 0);
    int64_t v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                    ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                    : -1;
    PQclear(res);
    return v;
}

/* Poison must not loop: once the dead-letter topic has a poison event, its
 * dirty cache entry — if it still holds exactly that version — leaves the
 * dirty index (so the sweeper never re-publishes it) and drops its value
 * (reads fall back to PostgreSQL), keeping the version as a floor. */
static void poison_entry_is_forgotten(void **state)
{
    (void)state;
    fh_t fh;
    char errstr[256], dirty[160], vbuf[24], id[3][128], key[3][160];
    int64_t v1, v2, v3, v4, v5, score, rv;
    wb_entry_t e;
    fh_dead_t dead[8];

    fh_setup(&fh, "forget", "jsonb", "  batch:\n    max_events: 1000\n    max_wait_ms: 50\n");
    snprintf(dirty, sizeof(dirty), "%s:dirty", fh.tag);
    /* Keys of their own: the Redis server is shared with other test runs. */
    for (int i = 0; i < 3; i++) {
        snprintf(id[i], sizeof(id[i]), "%s-%d", fh.tag, i);
        char body[160];
        snprintf(body, sizeof(body), "item:%s", id[i]);
        wb_test_key(key[i], sizeof(key[i]), fh.conf->redis.dirty_shards, body);
    }
#define PUT(k, val, ver)                                                                           \
    do {                                                                                           \
        wb_entry_put_req_t req_ = {.key = k,                                                       \
                                   .keylen = strlen(k),                                            \
                                   .value = val,                                                   \
                                   .len = strlen(val),                                             \
                                   .dirty_index = dirty};                                          \
        wb_entry_put_res_t res_;                                                                   \
        assert_int_equal(wb_entry_put(fh.redis, &req_, &res_, errstr, sizeof(errstr)), WB_OK);     \
        *(ver) = res_.version;                                                                     \
    } while (0)
    /* key 0 — a good write, then a poison one on top of it. */
    PUT(key[0], "{\"v\": 1}", &v1);
    PUT(key[0], "{not json", &v2);
    fh_produce(&fh, key[0], "{\"v\": 1}", v1);
    fh_produce(&fh, key[0], "{not json", v2);
    /* key 1 — poison, but a newer write is already in the cache. */
    PUT(key[1], "[1,]", &v3);
    PUT(key[1], "[2]", &v4);
    fh_produce(&fh, key[1], "[1,]", v3);
    /* key 2 — undecodable (no wb-entity header), yet key and version are known. */
    PUT(key[2], "{}", &v5);
    snprintf(vbuf, sizeof(vbuf), "%" PRId64, v5);
    assert_int_equal(rd_kafka_producev(fh.producer, RD_KAFKA_V_TOPIC(fh.topic),
                                       RD_KAFKA_V_KEY(key[2], strlen(key[2])),
                                       RD_KAFKA_V_VALUE("{}", 2),
                                       RD_KAFKA_V_HEADER(WB_HDR_VERSION, vbuf, -1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    fh_flush(&fh);
    fh_start(&fh);
    int64_t t0 = wb_time_mono_ms();
    while (row_version(&fh, id[0]) != v1 && wb_time_mono_ms() - t0 < 60000)
        usleep(200000);
    assert_int_equal(row_version(&fh, id[0]), v1); /* the good write under the poison lands */
    int n = 0;
    while ((n = fh_read_dlq(&fh, dead, 8)) < 3 && wb_time_mono_ms() - t0 < 60000)
        usleep(300000);
    assert_int_equal(n, 3);

    /* Forgetting follows the dead-letter acknowledgement; keys of different
     * dirty-index shards are forgotten by separate calls, so wait for both. */
    t0 = wb_time_mono_ms();
    for (;;) {
        cache_state(&fh, key[0], dirty, &e, &score, &rv);
        int done = !e.found;
        wb_entry_clear(&e);
        cache_state(&fh, key[2], dirty, &e, &score, &rv);
        done = done && !e.found;
        wb_entry_clear(&e);
        if (done || wb_time_mono_ms() - t0 > 20000) break;
        usleep(100000);
    }
    cache_state(&fh, key[0], dirty, &e, &score, &rv);
    if (e.found) fh_dump_log(&fh);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(score, -1);
    assert_int_equal(rv, v2);

    cache_state(&fh, key[1], dirty, &e, &score, &rv);
    assert_true(e.found && e.dirty);
    assert_int_equal(e.version, v4);
    assert_string_equal(e.value, "[2]");
    wb_entry_clear(&e);
    assert_true(score > 0);
    assert_int_equal(row_version(&fh, id[1]), -1);

    /* key 2's event names no entity, so its version memory lives only about
     * a second (forget.lua: until Redis TIME passes V; from then on the time
     * floor keeps later versions above V). The test may look later than
     * that: the memory is V or gone, and a later write is above V either way. */
    cache_state(&fh, key[2], dirty, &e, &score, &rv);
    assert_false(e.found);
    wb_entry_clear(&e);
    assert_int_equal(score, -1);
    assert_true(rv == v5 || rv == -1);

    /* A later write is above the forgotten version. */
    int64_t v6 = 0, v7 = 0;
    PUT(key[0], "{}", &v6);
    PUT(key[2], "{}", &v7);
#undef PUT
    assert_true(v6 > v2);
    assert_true(v7 > v5);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    char match[200];
    snprintf(match, sizeof(match), "*%s*", fh.tag); /* the keys and the index shards */
    wb_test_redis_del_matching(fh.redis, match);
    fh_teardown(&fh);
}

/* schema: verify refuses a table the flusher could not write, naming the
 * table and the column; create makes one that verifies. */
static void schema_verify_names_table_and_column(void **state)
{
    (void)state;
    fh_t fh;
    char sql[512], errstr[512];

    fh_setup(&fh, "schema", "jsonb", NULL);
    wb_entity_t ent = fh.conf->entities[0];
    assert_int_equal(wb_table_verify(fh.pg, &ent, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "does not exist"));

    snprintf(sql, sizeof(sql),
             "CREATE TABLE \"%s\" (key text PRIMARY KEY, value jsonb, version integer NOT NULL, "
             "deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT "
             "now())",
             fh.table);
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(wb_table_verify(fh.pg, &ent, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, fh.table));
    assert_non_null(strstr(errstr, "\"version\" is integer, expected bigint"));

    snprintf(sql, sizeof(sql),
             "ALTER TABLE \"%s\" ALTER version TYPE bigint, ALTER value SET NOT NULL", fh.table);
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(wb_table_verify(fh.pg, &ent, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "\"value\" must allow NULL"));

    snprintf(sql, sizeof(sql), "DROP TABLE \"%s\"", fh.table);
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(wb_table_create(fh.pg, &ent, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_table_create(fh.pg, &ent, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_table_verify(fh.pg, &ent, errstr, sizeof(errstr)), WB_OK);
    fh_teardown(&fh);
}

/* Issue 14, item 11: PostgreSQL refuses the flusher (a role that does not
 * exist) → /readyz says only which dependency is down; the host and user
 * of libpq's error are in the log, not in what the port shows anyone. */
static void readyz_hides_backend_error(void **state)
{
    (void)state;
    fh_t fh;
    char dsn[512], body[512], line[1024];
    int leaked_in_log = 0;
    FILE *log;

    fh_setup(&fh, "readyz", "text", NULL);
    snprintf(dsn, sizeof(dsn), "%s user=wbt_leaky_role", fh.conf->postgres.dsn);
    setenv("WBCACHE_PG_DSN", dsn, 1);
    fh_start(&fh);
    unsetenv("WBCACHE_PG_DSN");
    assert_int_equal(fh_wait_http(&fh, "/healthz", 200, 10000), 200);
    /* Wait for the first failed attempt: the log names the role. */
    for (int i = 0; i < 100 && !leaked_in_log; i++) {
        usleep(100000);
        if (!(log = fopen(fh.log, "r"))) continue;
        while (fgets(line, sizeof(line), log))
            if (strstr(line, "wbt_leaky_role")) leaked_in_log = 1;
        fclose(log);
    }
    assert_true(leaked_in_log);
    assert_int_equal(wb_test_http_get(fh.http_port, "/readyz", body, sizeof(body)), 503);
    assert_null(strstr(body, "wbt_leaky_role"));
    assert_null(strstr(body, "127.0.0.1"));
    assert_non_null(strstr(body, "not ready: postgres unavailable\n"));
    assert_int_equal(fh_stop(&fh, 10000, NULL), 0);
    fh_teardown(&fh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_puts_and_deletes_reach_truth),
        cmocka_unit_test(duplicates_reordering_two_producers),
        cmocka_unit_test(poison_goes_to_dead_letter_rest_lands),
        cmocka_unit_test(poison_entry_is_forgotten),
        cmocka_unit_test(schema_verify_names_table_and_column),
        cmocka_unit_test(readyz_hides_backend_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
