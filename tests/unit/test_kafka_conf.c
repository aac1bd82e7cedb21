/* test_kafka_conf.c — WB_KAFKA_F_SMALL_PREFETCH: the daemons' consumer pre-fetch, and
 * kafka.properties overriding it; WB_KAFKA_F_LOG_QUEUE: librdkafka's lines to the polling
 * thread's log scope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "wb_config.h"
#include "wb_kafka.h"
#include "wb_log.h"

static wb_config_t *load(const char *yaml)
{
    wb_config_t *conf = NULL;
    char errstr[512];

    assert_int_equal(
        wb_config_load_string("test.yaml", yaml, strlen(yaml), &conf, errstr, sizeof(errstr)),
        WB_OK);
    return conf;
}

static void get(rd_kafka_conf_t *kc, const char *name, char *buf, size_t size)
{
    assert_int_equal(rd_kafka_conf_get(kc, name, buf, &size), RD_KAFKA_CONF_OK);
}

#define ENTITIES                                                                                   \
    "kafka: {brokers: \"127.0.0.1:1\"}\nentities: [{name: user, prefix: \"user:\", table: "        \
    "users}]\n"

static rd_kafka_conf_t *kafka_conf(const wb_config_t *conf, unsigned flags)
{
    rd_kafka_conf_t *kc = NULL;
    char errstr[256];

    assert_int_equal(wb_kafka_conf_new(conf, "test", flags, &kc, errstr, sizeof(errstr)), WB_OK);
    return kc;
}

static void test_defaults_applied(void **state)
{
    (void)state;
    wb_config_t *conf = load(ENTITIES);
    rd_kafka_conf_t *kc = kafka_conf(conf, WB_KAFKA_F_SMALL_PREFETCH);
    char v[64];

    get(kc, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "4096");
    get(kc, "max.partition.fetch.bytes", v, sizeof(v));
    assert_string_equal(v, "262144");
    rd_kafka_conf_destroy(kc);
    /* Without the flag: librdkafka's own defaults. */
    kc = kafka_conf(conf, 0);
    get(kc, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "65536");
    rd_kafka_conf_destroy(kc);
    wb_config_destroy(conf);
}

static void test_properties_override(void **state)
{
    (void)state;
    wb_config_t *conf = load("kafka: {brokers: \"127.0.0.1:1\", properties: "
                             "{queued.max.messages.kbytes: 65536}}\n"
                             "entities: [{name: user, prefix: \"user:\", table: users}]\n");
    rd_kafka_conf_t *kc = kafka_conf(conf, WB_KAFKA_F_SMALL_PREFETCH);
    char v[64];

    get(kc, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "65536"); /* the user's, not ours */
    get(kc, "max.partition.fetch.bytes", v, sizeof(v));
    assert_string_equal(v, "262144"); /* not given: ours */
    rd_kafka_conf_destroy(kc);
    wb_config_destroy(conf);
}

/* Lines the scope got, and how many came on another thread than the test's. */
static struct {
    pthread_t main;
    int n, kafka, elsewhere;
} seen;

static void seen_sink(wb_log_level_t level, const char *line, void *opaque)
{
    (void)level, (void)opaque;
    seen.n++;
    if (strstr(line, ": kafka wbcache-test#producer-")) seen.kafka++;
    if (!pthread_equal(pthread_self(), seen.main)) seen.elsewhere++;
}

/* librdkafka's lines wait for a poll and are logged by the polling thread
 * through wb_log, inside its scope; kafka.properties cannot switch
 * log.queue off (a line on librdkafka's own threads would miss the scope). */
static void test_log_queue_routes_to_the_pollers_scope(void **state)
{
    (void)state;
    wb_config_t *conf = load("kafka: {brokers: \"127.0.0.1:1\", properties: "
                             "{log.queue: false, debug: generic}}\n"
                             "entities: [{name: user, prefix: \"user:\", table: users}]\n");
    rd_kafka_conf_t *kc = kafka_conf(conf, WB_KAFKA_F_LOG_QUEUE);
    wb_log_scope_t scope, *prev;
    rd_kafka_t *rk = NULL;
    char v[64], errstr[256];

    get(kc, "log.queue", v, sizeof(v));
    assert_string_equal(v, "true");
    memset(&seen, 0, sizeof(seen));
    seen.main = pthread_self();
    wb_log_scope_init(&scope, seen_sink, NULL, WB_LOG_DEBUG);
    prev = wb_log_scope_enter(&scope);
    assert_int_equal(wb_kafka_producer_new(kc, 0, &rk, errstr, sizeof(errstr)), WB_OK);
    for (int i = 0; i < 20 && seen.kafka == 0; i++)
        rd_kafka_poll(rk, 50);
    assert_true(seen.kafka > 0);
    rd_kafka_destroy(rk);
    wb_log_scope_leave(prev);
    assert_int_equal(seen.elsewhere, 0);
    wb_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_applied),
        cmocka_unit_test(test_properties_override),
        cmocka_unit_test(test_log_queue_routes_to_the_pollers_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
