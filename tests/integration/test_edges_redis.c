/* test_edges_redis.c — issue 14 items 1, 2, 3, 4 and 8 (the edges where the
 * cache meets Redis) against the real services: the real wb-flusher and
 * wb-refresher run as children (refresher_harness), the library in this
 * process.
 *
 * Stranded writes are made with the put script alone (a producer that died
 * between Redis and Kafka); "a commit the cache did not see" is a change
 * event produced straight to the changes topic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>

#include "refresher_harness.h"
#include "wb_entry.h"

#define READY_MS   20000
#define SWEEP_FAST "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n"

static void start_ready(rh_t *rh, int slot)
{
    rh_start(rh, slot);
    if (rh_wait_http(rh, slot, "/readyz", 200, READY_MS) != 200) {
        rh_dump_log(rh, slot);
        fail_msg("child %d did not become ready", slot);
    }
}

static wb_client_t *client_of(rh_t *rh)
{
    wb_client_t *c = NULL;
    char errstr[512];
    if (wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_client_open: %s", errstr);
    return c;
}

static int64_t redis_now_us(rh_t *rh)
{
    redisReply *r = wb_test_redis(rh->redis, "TIME");
    assert_non_null(r);
    int64_t t =
        strtoll(r->element[0]->str, NULL, 10) * 1000000 + strtoll(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    return t;
}

static int64_t hget_i64(rh_t *rh, const char *key, const char *field)
{
    redisReply *r = wb_test_redis(rh->redis, "HGET %s %s", key, field);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static int64_t get_i64(rh_t *rh, const char *key)
{
    redisReply *r = wb_test_redis(rh->redis, "GET %s", key);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* A committed change the cache never saw: the event straight to Kafka. */
static void produce_event(rh_t *rh, const char *entity, const char *key, const char *value,
                          int64_t version)
{
    rd_kafka_headers_t *hdrs = NULL;
    wb_event_t ev = {.key = key,
                     .keylen = strlen(key),
                     .value = value,
                     .valuelen = strlen(value),
                     .version = version,
                     .time_us = version,
                     .entity = entity,
                     .entitylen = strlen(entity)};
    assert_int_equal(wb_event_to_rd_headers(&ev, &hdrs), WB_OK);
    assert_int_equal(rd_kafka_producev(rh->producer, RD_KAFKA_V_TOPIC(rh->changes),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(rh->producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Polls the item table until id holds want (up to ms); 1 if it does. */
static int wait_row(rh_t *rh, const char *id, const char *want, int ms, int64_t *version)
{
    int64_t end = wb_time_mono_ms() + ms, ver = 0;
    char value[256];
    int deleted = 0;
    do {
        if (rh_get_row(rh, id, value, sizeof(value), &ver, &deleted) && !deleted &&
            strcmp(value, want) == 0) {
            if (version) *version = ver;
            return 1;
        }
        usleep(50000);
    } while (wb_time_mono_ms() < end);
    return 0;
}

/* The put script alone (a stranded write), under entity (NULL: none). */
static int64_t lua_put(rh_t *rh, const char *key, const char *value, size_t len, const char *entity)
{
    char errstr[256];
    wb_entry_put_req_t req = {.key = key,
                              .keylen = strlen(key),
                              .value = value,
                              .len = len,
                              .dirty_index = rh->dirty,
                              .entity = entity};
    wb_entry_put_res_t res;
    if (wb_entry_put(rh->redis, &req, &res, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_entry_put: %s", errstr);
    return res.version;
}

/* ------------------------------------------------------------- item 1 */

/* Prefixes that looked like they overlap are refused at load (unit test
 * test_config: test_overlapping_prefix); with distinct ones an id that
 * looks like the other entity's key ("a:5" of item vs "5" of adm) gets its
 * own key, and a stranded write of each lands in its own table: the
 * sweeper re-publishes under the entity the put stored in the entry. */
static void stranded_writes_land_in_their_own_tables(void **state)
{
    rh_t *rh = *state;
    char extra[512], adm_table[128], k_item[256], k_adm[256], sql[512], errstr[256];
    PGresult *res;

    /* The second entity's names are derived from the pid and time, under
     * the "rf_" prefix so teardown's key cleanup covers its keys. */
    snprintf(adm_table, sizeof(adm_table), "rf_adm_%d_%lld", (int)getpid(),
             (long long)(wb_time_real_ms() % 100000000));
    snprintf(extra, sizeof(extra),
             "    ttl_ms: 60000\n  - name: adm\n    prefix: \"%s:a:\"\n    table: %s\n"
             "    value_type: text\n",
             adm_table, adm_table);
    rh_setup_ex(rh, "edges1", SWEEP_FAST, NULL, extra, NULL);
    assert_int_equal(rh->conf->nentities, 2);
    assert_int_equal(wb_table_create(rh->pg, &rh->conf->entities[1], errstr, sizeof(errstr)),
                     WB_OK);
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);

    rh_key(rh, "a:5", k_item, sizeof(k_item));
    snprintf(sql, sizeof(sql), "%s5", rh->conf->entities[1].prefix);
    wb_test_key(k_adm, sizeof(k_adm), rh->conf->redis.dirty_shards, sql);
    assert_string_not_equal(k_item, k_adm);
    lua_put(rh, k_item, "item-a5", 7, "item");
    lua_put(rh, k_adm, "adm-5", 5, "adm");

    assert_true(wait_row(rh, "a:5", "item-a5", 15000, NULL));
    snprintf(sql, sizeof(sql), "SELECT key, value FROM \"%s\" ORDER BY key",
             rh->conf->entities[1].table);
    int64_t end = wb_time_mono_ms() + 15000;
    for (;;) {
        res = rh_sql(rh, sql);
        if (res && PQntuples(res) == 1) break;
        PQclear(res);
        if (wb_time_mono_ms() > end) fail_msg("adm row never arrived");
        usleep(100000);
    }
    assert_string_equal(PQgetvalue(res, 0, 0), "5");
    assert_string_equal(PQgetvalue(res, 0, 1), "adm-5");
    PQclear(res);
    /* Nothing crossed over. */
    char value[64];
    int64_t ver;
    int deleted;
    assert_false(rh_get_row(rh, "5", value, sizeof(value), &ver, &deleted));
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"%s\"", rh->conf->entities[1].table);
    PQclear(rh_sql(rh, sql));
}

/* ------------------------------------------------------------- item 2 */

/* PostgreSQL holds a version 10 minutes ahead of Redis TIME (a clock that
 * stepped back 10 minutes) and the cache entry is gone. (a) The row was
 * committed by the flusher: it raised the version floor, so wb_put with
 * ack: log gets a version above it and the new value wins. (b) The row was
 * written outside the log (the floor never saw it): the flusher refuses the
 * put's event, and that is loud: ERROR, wb_flusher_refused_writes_total,
 * and a dead letter with the reason; the floor then rises, so writing the
 * value again wins. */
static void clock_behind_postgres_never_loses_a_put_silently(void **state)
{
    rh_t *rh = *state;
    char key[256], floor[256];
    int64_t ahead, v = 0, ver = 0;
    int shard = -1;

    rh_setup(rh, "edges2", SWEEP_FAST);
    start_ready(rh, RH_FLUSHER_SLOT);
    wb_client_t *c = client_of(rh);

    /* (a) */
    ahead = redis_now_us(rh) + INT64_C(600) * 1000000;
    rh_key(rh, "c1", key, sizeof(key));
    /* the floor of the key's shard */
    assert_true(wb_entry_key_tag(key, strlen(key), &shard) > 0);
    assert_int_equal(wb_entry_floor_key(rh->dirty, shard, floor, sizeof(floor)), 0);
    produce_event(rh, "item", key, "from-the-future", ahead);
    assert_true(wait_row(rh, "c1", "from-the-future", 15000, &ver));
    assert_int_equal(ver, ahead);
    int64_t end = wb_time_mono_ms() + 10000;
    while (get_i64(rh, floor) < ahead && wb_time_mono_ms() < end)
        usleep(50000);
    assert_int_equal(get_i64(rh, floor), ahead);
    freeReplyObject(wb_test_redis(rh->redis, "DEL %s", key)); /* the entry is lost */
    assert_int_equal(wb_put(c, "item", "c1", "now", 3, WB_ACK_LOG, &v), WB_OK);
    assert_true(v > ahead);
    assert_true(wait_row(rh, "c1", "now", 15000, &ver));
    assert_int_equal(ver, v);

    /* (b) */
    int64_t ahead2 = ahead + 1000000;
    rh_row(rh, "c2", "outside-the-log", ahead2);
    assert_int_equal(wb_put(c, "item", "c2", "mine", 4, WB_ACK_LOG, &v), WB_OK);
    assert_true(v < ahead2);
    assert_true(rh_wait_metric(rh, RH_FLUSHER_SLOT, "wb_flusher_refused_writes_total", 1, 15000) >=
                1);
    rh_key(rh, "c2", key, sizeof(key));
    assert_int_equal(hget_i64(rh, key, "v"), -1); /* dropped: reads fall back to PostgreSQL */

    /* The dead letter: the write itself, with its reason. */
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *dr = NULL;
    char errstr[256], reason[512] = "", group[160];
    snprintf(group, sizeof(group), "%s.dlqreader", rh->tag);
    assert_int_equal(wb_kafka_conf_new(rh->conf, "test", 0, &kc, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_kafka_consumer_new(kc, group, &dr, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_test_kafka_assign_all(dr, rh->dlq), 0);
    int found = 0;
    end = wb_time_mono_ms() + 15000;
    while (!found && wb_time_mono_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(dr, 100);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
            found = 1;
            assert_int_equal(m->len, 4);
            assert_memory_equal(m->payload, "mine", 4);
            wb_test_kafka_header(m, WB_HDR_DLQ_REASON, reason, sizeof(reason));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(dr);
    rd_kafka_destroy(dr);
    assert_true(found);
    assert_non_null(strstr(reason, "refused"));
    /* And an ERROR line in the flusher's log. */
    FILE *lf = fopen(rh->log[RH_FLUSHER_SLOT], "r");
    char line[1024];
    int logged = 0;
    assert_non_null(lf);
    while (fgets(line, sizeof(line), lf))
        logged += strstr(line, "ERROR") && strstr(line, "dirty write LOST") && strstr(line, key);
    fclose(lf);
    assert_int_equal(logged, 1);
    /* The floor rose to what PostgreSQL holds: the value written again wins. */
    assert_int_equal(wb_put(c, "item", "c2", "mine", 4, WB_ACK_LOG, &v), WB_OK);
    assert_true(v > ahead2);
    assert_true(wait_row(rh, "c2", "mine", 15000, NULL));
    wb_client_close(c);
}

/* ------------------------------------------------------------- item 3 */

static void set_topic_max_bytes(rh_t *rh, const char *topic, const char *bytes)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rh->producer);
    assert_int_equal(rd_kafka_ConfigResource_set_config(res, "max.message.bytes", bytes),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_AlterConfigs(rh->producer, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    assert_non_null(ev);
    assert_int_equal(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR);
    const rd_kafka_AlterConfigs_result_t *r = rd_kafka_event_AlterConfigs_result(ev);
    size_t n = 0;
    const rd_kafka_ConfigResource_t **rr = rd_kafka_AlterConfigs_result_resources(r, &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_ConfigResource_error(rr[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
}

/* Random letters: compression cannot shrink them below the topic limit. */
static char *random_text(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    uint64_t x = (uint64_t)wb_time_real_us() | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s[i] = (char)('a' + x % 26);
    }
    s[n] = '\0';
    return s;
}

/* wb_put refuses a value above the changes topic's max.message.bytes.
 * Two stranded values the topic will never take (written by a client that
 * did not know the limit; the sweeper's client accepts them) are first in
 * the index; with sweep_max_per_pass 2 they used to fill every pass. Now they
 * are poison (counted, an hour ahead) and the small stranded write after
 * them lands in PostgreSQL. */
static void oversize_stranded_values_do_not_block_the_sweeper(void **state)
{
    rh_t *rh = *state;
    char k1[256], k2[256], k3[256];
    char *big = random_text(60000);

    rh_setup(rh, "edges3a", SWEEP_FAST "  sweep_max_per_pass: 2\n");
    set_topic_max_bytes(rh, rh->changes, "20000");
    /* The library reads the topic's limit at open and refuses such a value
     * before anything is written. */
    wb_client_t *c = client_of(rh);
    assert_int_equal(wb_put(c, "item", "big0", big, strlen(big), WB_ACK_CACHE, NULL),
                     WB_ERR_TOO_LARGE);
    assert_int_equal(wb_put(c, "item", "fits", "fits", 4, WB_ACK_LOG, NULL), WB_OK);
    wb_client_close(c);
    rh_key(rh, "big0", k1, sizeof(k1));
    redisReply *r0 = wb_test_redis(rh->redis, "EXISTS %s", k1);
    assert_int_equal(r0->integer, 0);
    freeReplyObject(r0);
    rh_key(rh, "big1", k1, sizeof(k1));
    rh_key(rh, "big2", k2, sizeof(k2));
    rh_key(rh, "small", k3, sizeof(k3));
    lua_put(rh, k1, big, strlen(big), "item");
    lua_put(rh, k2, big, strlen(big), "item");
    usleep(10000);
    lua_put(rh, k3, "small", 5, "item");
    free(big);
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);

    if (!wait_row(rh, "small", "small", 20000, NULL)) {
        rh_dump_log(rh, 0);
        fail_msg("the small stranded write never reached PostgreSQL");
    }
    assert_true(rh_metric(rh, 0, "wb_refresher_sweep_poison_total") >= 2);
    /* The poison stays dirty (pinned, readable), parked an hour ahead. */
    char idx[WB_ENTRY_KEY_MAX];
    int shard = -1;
    assert_true(wb_entry_key_tag(k1, strlen(k1), &shard) > 0);
    wb_entry_index_key(rh->dirty, shard, idx, sizeof(idx));
    redisReply *r = wb_test_redis(rh->redis, "ZSCORE %s %s", idx, k1);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(strtoll(r->str, NULL, 10) > redis_now_us(rh) + INT64_C(3000) * 1000000);
    freeReplyObject(r);
}

/* A key rewritten every 300 ms whose events never reach Kafka (the put
 * script alone) is still swept within sweep_after_ms (+ a pass interval):
 * its dirty score is the time it FIRST became dirty. */
static void hot_dirty_key_is_swept_in_time(void **state)
{
    rh_t *rh = *state;
    char key[256], value[32];
    int64_t first_ms, swept_ms = -1;

    rh_setup(rh, "edges3b", SWEEP_FAST);
    start_ready(rh, 0);
    rh_key(rh, "hot", key, sizeof(key));
    first_ms = wb_time_mono_ms();
    for (int i = 0; wb_time_mono_ms() - first_ms < 4000; i++) {
        snprintf(value, sizeof(value), "v%d", i);
        lua_put(rh, key, value, strlen(value), "item");
        if (rh_metric(rh, 0, "wb_refresher_swept_total") >= 1) {
            swept_ms = wb_time_mono_ms() - first_ms;
            break;
        }
        usleep(300000);
    }
    print_message("hot key swept after %" PRId64 " ms (sweep_after_ms 1000)\n", swept_ms);
    assert_true(swept_ms >= 1000);
    assert_true(swept_ms <= 1000 + 200 + 300 + 1000); /* + interval + rewrite period + slack */
    rh_read_changes(rh, 1000);
    assert_true(rh_count_events(rh, key, NULL) >= 1);
}

/* ------------------------------------------------------------- item 4 */

typedef struct blocked_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, go;
    wb_client_t *client;
    wb_err_t err;
    wb_value_t out;
} blocked_t;

static wb_err_t slow_loader(void *opaque, const char *entity, const char *id, void **value,
                            size_t *len)
{
    blocked_t *b = opaque;
    (void)entity, (void)id;
    pthread_mutex_lock(&b->mu);
    b->started = 1;
    pthread_cond_broadcast(&b->cv);
    while (!b->go)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    *value = strdup("old");
    *len = 3;
    return WB_OK;
}

static void *reader_main(void *arg)
{
    blocked_t *b = arg;
    b->err = wb_get_or_load(b->client, "item", "aside", slow_loader, b, &b->out);
    return NULL;
}

/* A cache-aside loader reads "old" and blocks; meanwhile version V of the
 * key commits (an event the flusher applies while the entry is absent:
 * clean leaves V as the key's version memory). The loader's old value is
 * then filled, but NOT labelled V: a refresh-ahead of the key replaces it
 * with the committed value instead of only extending its TTL. */
static void slow_loader_cannot_pin_an_old_value(void **state)
{
    rh_t *rh = *state;
    blocked_t b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char key[256];
    pthread_t t;
    int64_t V;

    rh_setup(rh, "edges4", "  collapse_window_ms: 0\n");
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);
    b.client = client_of(rh);
    rh_key(rh, "aside", key, sizeof(key));
    assert_int_equal(pthread_create(&t, NULL, reader_main, &b), 0);
    pthread_mutex_lock(&b.mu);
    while (!b.started)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);

    V = redis_now_us(rh);
    produce_event(rh, "item", key, "new", V);
    assert_true(wait_row(rh, "aside", "new", 15000, NULL));
    int64_t end = wb_time_mono_ms() + 10000;
    while (hget_i64(rh, key, "ver") != V && wb_time_mono_ms() < end)
        usleep(20000);
    assert_int_equal(hget_i64(rh, key, "ver"), V); /* the memory the fill used to keep */

    pthread_mutex_lock(&b.mu);
    b.go = 1;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    pthread_join(t, NULL);
    assert_int_equal(b.err, WB_OK);
    assert_string_equal(b.out.data, "old");
    wb_value_free(&b.out);
    assert_int_equal(hget_i64(rh, key, "ver"), 0); /* not labelled V */

    rh_request_refresh(rh, "aside");
    wb_value_t v = {0};
    end = wb_time_mono_ms() + 15000;
    for (;;) {
        assert_int_equal(wb_get(b.client, "item", "aside", &v), WB_OK);
        int fresh = strcmp(v.data, "new") == 0;
        int64_t ver = v.version;
        wb_value_free(&v);
        if (fresh) {
            assert_int_equal(ver, V);
            break;
        }
        if (wb_time_mono_ms() > end) {
            rh_dump_log(rh, 0);
            fail_msg("the old cache-aside value stayed after a refresh");
        }
        usleep(100000);
    }
    wb_client_close(b.client);
}

/* ------------------------------------------------------------- item 8 */

/* Every program connects through wb_redis_connect, which refuses an
 * allkeys-* eviction policy (it could evict dirty entries); the library's
 * open fails with the message. volatile-* and noeviction are fine. */
static void allkeys_eviction_policy_is_refused(void **state)
{
    rh_t *rh = *state;
    char errstr[512], old[64] = "noeviction", restore[128];
    wb_client_t *c = NULL;
    redisReply *r;

    rh_setup(rh, "edges8", NULL);
    r = wb_test_redis(rh->redis, "CONFIG GET maxmemory-policy");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    snprintf(old, sizeof(old), "%s", r->element[1]->str);
    freeReplyObject(r);

    wb_test_redis_each(rh->redis, "CONFIG SET maxmemory-policy allkeys-lru");
    wb_err_t err = wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr, sizeof(errstr));
    redisContext *ctx = NULL;
    wb_err_t err2 = wb_redis_connect(rh->conf, &ctx, errstr, sizeof(errstr));
    wb_test_redis_each(rh->redis, "CONFIG SET maxmemory-policy volatile-lru");
    wb_err_t err3 = wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr + 256, 256);
    snprintf(restore, sizeof(restore), "CONFIG SET maxmemory-policy %s", old);
    wb_test_redis_each(rh->redis, restore);

    assert_int_equal(err, WB_ERR_REDIS);
    assert_int_equal(err2, WB_ERR_REDIS);
    assert_null(ctx);
    assert_non_null(strstr(errstr, "maxmemory-policy is allkeys-lru"));
    assert_non_null(strstr(errstr, "volatile-*"));
    assert_int_equal(err3, WB_OK);
    wb_client_close(c);
}

static int setup(void **state)
{
    rh_t *rh = calloc(1, sizeof(*rh));
    *state = rh;
    return rh ? 0 : -1;
}

static int teardown(void **state)
{
    rh_t *rh = *state;
    if (rh->conf) rh_teardown(rh);
    free(rh);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stranded_writes_land_in_their_own_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(clock_behind_postgres_never_loses_a_put_silently, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(oversize_stranded_values_do_not_block_the_sweeper, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hot_dirty_key_is_swept_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_loader_cannot_pin_an_old_value, setup, teardown),
        cmocka_unit_test_setup_teardown(allkeys_eviction_policy_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
