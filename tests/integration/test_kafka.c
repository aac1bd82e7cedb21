/* test_kafka.c — wb_kafka against the real broker: topics, idempotent producer, group consumer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "wb_config.h"
#include "wb_kafka.h"

#define N_MSGS     200
#define PARTITIONS 3
#define WAIT_MS    60000

static wb_config_t *conf;
static rd_kafka_t *admin; /* a producer handle that also serves the Admin API */
static char topic[128];
static char errstr[1024];

typedef struct delivery_s {
    int ok;
    int failed;
    rd_kafka_resp_err_t last_err;
} delivery_t;

static const char *config_path(void)
{
    const char *p = getenv("WB_CONFIG");

    return p && p[0] ? p : WB_SOURCE_DIR "/config/wbcache.yaml";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs on the thread that calls rd_kafka_poll/flush (here: the test). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_t *d = opaque;

    if (m->err) {
        d->failed++;
        d->last_err = m->err;
    } else {
        d->ok++;
    }
}

static int setup(void **state)
{
    rd_kafka_conf_t *kconf = NULL;

    if (wb_config_load(config_path(), &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "config %s: %s\n", config_path(), errstr);
        return -1;
    }
    if (wb_kafka_conf_new(conf, "test-admin", 0, &kconf, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_producer_new(kconf, 0, &admin, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        if (kconf && !admin) rd_kafka_conf_destroy(kconf);
        return -1;
    }
    snprintf(topic, sizeof(topic), "wbtest.kafka.%ld.%lld", (long)getpid(), (long long)time(NULL));
    return 0;
}

static int teardown(void **state)
{
    if (admin) {
        if (wb_kafka_delete_topic(admin, topic, 30000, errstr, sizeof(errstr)) != WB_OK)
            fprintf(stderr, "cleanup: %s\n", errstr);
        rd_kafka_destroy(admin);
    }
    wb_config_destroy(conf);
    return 0;
}

static void test_create_topic(void **state)
{
    assert_int_equal(wb_kafka_create_topic(admin, topic, PARTITIONS, 30000, errstr, sizeof(errstr)),
                     WB_OK);
    /* Creating it again is fine: daemons and wbctl create on every start. */
    assert_int_equal(wb_kafka_create_topic(admin, topic, PARTITIONS, 30000, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(
        wb_kafka_create_topic(admin, "bad topic name!", 1, 30000, errstr, sizeof(errstr)),
        WB_ERR_KAFKA);
    assert_int_equal(wb_kafka_create_topic(admin, topic, 0, 30000, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
}

static const char *header(rd_kafka_headers_t *hdrs, const char *name, size_t *len)
{
    const void *v = NULL;

    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v;
}

/* Produce N events (one a tombstone) with headers through an idempotent
 * acks=all producer, consume them back with a group consumer, and commit
 * by hand: the shape of the library -> flusher path. */
static void test_produce_consume_roundtrip(void **state)
{
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *prod = NULL, *cons = NULL;
    rd_kafka_topic_partition_list_t *subs, *assigned = NULL, *commit;
    delivery_t d = {0};
    int seen[N_MSGS] = {0};
    int64_t high[PARTITIONS];
    char group[160], val[64];
    int i, nseen = 0;
    int64_t deadline;
    char buf[64];
    size_t buflen = sizeof(buf);

    assert_int_equal(wb_kafka_create_topic(admin, topic, PARTITIONS, 30000, errstr, sizeof(errstr)),
                     WB_OK);

    assert_int_equal(wb_kafka_conf_new(conf, "test-producer", 0, &kconf, errstr, sizeof(errstr)),
                     WB_OK);
    rd_kafka_conf_set_dr_msg_cb(kconf, on_delivery);
    rd_kafka_conf_set_opaque(kconf, &d);
    assert_int_equal(wb_kafka_producer_new(kconf, 1, &prod, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(prod), "enable.idempotence", buf, &buflen),
                     RD_KAFKA_CONF_OK);
    assert_string_equal(buf, "true");
    buflen = sizeof(buf);
    assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(prod), "acks", buf, &buflen),
                     RD_KAFKA_CONF_OK);
    assert_true(strcmp(buf, "-1") == 0 || strcmp(buf, "all") == 0);

    for (i = 0; i < N_MSGS; i++) {
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(3);
        char key[32], ver[32];
        rd_kafka_resp_err_t err;
        int tomb = i == N_MSGS - 1;

        snprintf(key, sizeof(key), "user:%03d", i);
        snprintf(val, sizeof(val), "{\"n\":%d}", i);
        snprintf(ver, sizeof(ver), "%lld", 1700000000000000LL + i);
        rd_kafka_header_add(hdrs, "ver", -1, ver, -1);
        rd_kafka_header_add(hdrs, "entity", -1, "user", -1);
        rd_kafka_header_add(hdrs, "bin", -1, "\0\1\2", 3);
        err = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(tomb ? NULL : val, tomb ? 0 : strlen(val)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                RD_KAFKA_V_END);
        if (err) rd_kafka_headers_destroy(hdrs); /* not taken on failure */
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(d.ok, N_MSGS);
    assert_int_equal(d.failed, 0);
    rd_kafka_destroy(prod);

    kconf = NULL;
    snprintf(group, sizeof(group), "%s.group", topic);
    assert_int_equal(wb_kafka_conf_new(conf, "test-consumer", 0, &kconf, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(wb_kafka_consumer_new(kconf, group, &cons, errstr, sizeof(errstr)), WB_OK);
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(cons, subs), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(subs);

    for (i = 0; i < PARTITIONS; i++)
        high[i] = -1;
    deadline = now_ms() + WAIT_MS;
    while (nseen < N_MSGS && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 500);
        rd_kafka_headers_t *hdrs = NULL;
        const char *h;
        size_t hlen;
        int idx;

        if (!m) continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        assert_int_equal(m->key_len, 8);
        assert_memory_equal(m->key, "user:", 5);
        idx = atoi((const char *)m->key + 5);
        assert_true(idx >= 0 && idx < N_MSGS);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        nseen++;
        if (idx == N_MSGS - 1) {
            assert_null(m->payload); /* a Kafka tombstone for a delete */
        } else {
            snprintf(val, sizeof(val), "{\"n\":%d}", idx);
            assert_int_equal(m->len, strlen(val));
            assert_memory_equal(m->payload, val, m->len);
        }
        assert_int_equal(rd_kafka_message_headers(m, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
        h = header(hdrs, "ver", &hlen);
        assert_non_null(h);
        assert_int_equal(strtoll(h, NULL, 10), 1700000000000000LL + idx);
        h = header(hdrs, "entity", &hlen);
        assert_non_null(h);
        assert_int_equal(hlen, 4);
        assert_memory_equal(h, "user", 4);
        h = header(hdrs, "bin", &hlen);
        assert_non_null(h);
        assert_int_equal(hlen, 3);
        assert_memory_equal(h, "\0\1\2", 3);
        assert_true(m->partition >= 0 && m->partition < PARTITIONS);
        if (m->offset > high[m->partition]) high[m->partition] = m->offset;
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(nseen, N_MSGS);

    /* Nothing was committed behind our back (invariant 5 needs manual commits). */
    assert_int_equal(rd_kafka_assignment(cons, &assigned), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(assigned->cnt, PARTITIONS);
    assert_int_equal(rd_kafka_committed(cons, assigned, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (i = 0; i < assigned->cnt; i++)
        assert_int_equal(assigned->elems[i].offset, RD_KAFKA_OFFSET_INVALID);

    commit = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (i = 0; i < PARTITIONS; i++)
        if (high[i] >= 0) rd_kafka_topic_partition_list_add(commit, topic, i)->offset = high[i] + 1;
    assert_int_equal(rd_kafka_commit(cons, commit, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_committed(cons, assigned, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    {
        int64_t total = 0;

        for (i = 0; i < assigned->cnt; i++)
            total += assigned->elems[i].offset > 0 ? assigned->elems[i].offset : 0;
        assert_int_equal(total, N_MSGS);
    }
    rd_kafka_topic_partition_list_destroy(commit);
    rd_kafka_topic_partition_list_destroy(assigned);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
}

static wb_err_t conf_with_props(wb_kv_t *props, size_t nprops, rd_kafka_conf_t **out)
{
    wb_kv_t *saved = conf->kafka.props;
    size_t nsaved = conf->kafka.nprops;
    wb_err_t err;

    conf->kafka.props = props;
    conf->kafka.nprops = nprops;
    err = wb_kafka_conf_new(conf, "test", 0, out, errstr, sizeof(errstr));
    conf->kafka.props = saved;
    conf->kafka.nprops = nsaved;
    return err;
}

static void test_bad_properties(void **state)
{
    wb_kv_t unknown[] = {{"linger.ms", "5"}, {"no.such.property", "1"}};
    wb_kv_t badvalue[] = {{"linger.ms", "banana"}};
    wb_kv_t secret[] = {{"my.secret.thing", "hunter2"}};
    wb_kv_t enum_bad[] = {{"compression.codec", "nope"}};
    rd_kafka_conf_t *kconf = (rd_kafka_conf_t *)1;

    assert_int_equal(conf_with_props(unknown, 2, &kconf), WB_ERR_CONFIG);
    assert_null(kconf);
    assert_non_null(strstr(errstr, "no.such.property"));

    assert_int_equal(conf_with_props(badvalue, 1, &kconf), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "linger.ms"));

    assert_int_equal(conf_with_props(secret, 1, &kconf), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "my.secret.thing"));
    assert_null(strstr(errstr, "hunter2"));

    /* Not secret by name: librdkafka's explanation (with the value) is kept. */
    assert_int_equal(conf_with_props(enum_bad, 1, &kconf), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "compression.codec"));
    assert_non_null(strstr(errstr, "nope"));

    /* And the valid config of the repo goes through. */
    assert_int_equal(wb_kafka_conf_new(conf, "test", 0, &kconf, errstr, sizeof(errstr)), WB_OK);
    rd_kafka_conf_destroy(kconf);
}

/* No broker: a delivery error after message.timeout.ms, not a hang. */
static void test_unreachable_broker(void **state)
{
    wb_kv_t props[] = {{"message.timeout.ms", "1500"},
                       {"socket.connection.setup.timeout.ms", "1000"}};
    char *saved_brokers = conf->kafka.brokers;
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *prod = NULL;
    delivery_t d = {0};
    int64_t t0, deadline;
    wb_err_t err;

    conf->kafka.brokers = "127.0.0.1:1";
    err = conf_with_props(props, 2, &kconf);
    conf->kafka.brokers = saved_brokers;
    assert_int_equal(err, WB_OK);
    rd_kafka_conf_set_dr_msg_cb(kconf, on_delivery);
    rd_kafka_conf_set_opaque(kconf, &d);
    assert_int_equal(wb_kafka_producer_new(kconf, 1, &prod, errstr, sizeof(errstr)), WB_OK);

    t0 = now_ms();
    assert_int_equal(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("wb.nowhere"), RD_KAFKA_V_KEY("k", 1),
                                       RD_KAFKA_V_VALUE("v", 1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    deadline = t0 + 15000;
    while (d.ok + d.failed == 0 && now_ms() < deadline)
        rd_kafka_poll(prod, 100);
    assert_int_equal(d.ok, 0);
    assert_int_equal(d.failed, 1);
    assert_int_equal(wb_kafka_err(d.last_err), WB_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 10000);
    rd_kafka_destroy(prod);
}

static void test_error_mapping(void **state)
{
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR_NO_ERROR), WB_OK);
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), WB_ERR_TIMEOUT);
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR__QUEUE_FULL), WB_ERR_QUEUE_FULL);
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), WB_ERR_TOO_LARGE);
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR__DESTROY), WB_ERR_CLOSED);
    assert_int_equal(wb_kafka_err(RD_KAFKA_RESP_ERR__TRANSPORT), WB_ERR_KAFKA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_topic),   cmocka_unit_test(test_produce_consume_roundtrip),
        cmocka_unit_test(test_bad_properties), cmocka_unit_test(test_unreachable_broker),
        cmocka_unit_test(test_error_mapping),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
