/* test_daemon_conf.c — the daemons' consumer pre-fetch defaults, and kafka.properties overriding
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "wb_config.h"
#include "wb_daemon.h"

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

#define ENTITIES "entities: [{name: user, prefix: \"user:\", table: users}]\n"

static void test_defaults_applied(void **state)
{
    (void)state;
    wb_config_t *conf = load(ENTITIES);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[256], v[64];

    assert_int_equal(wb_daemon_consumer_defaults(conf, kc, errstr, sizeof(errstr)), 0);
    get(kc, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "4096");
    get(kc, "max.partition.fetch.bytes", v, sizeof(v));
    assert_string_equal(v, "262144");
    rd_kafka_conf_destroy(kc);
    wb_config_destroy(conf);
}

static void test_properties_override(void **state)
{
    (void)state;
    wb_config_t *conf = load("kafka: {properties: {queued.max.messages.kbytes: 65536}}\n" ENTITIES);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[256], v[64];

    /* As the daemons build it: kafka.properties first, then the defaults. */
    assert_int_equal(
        rd_kafka_conf_set(kc, "queued.max.messages.kbytes", "65536", errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    assert_int_equal(wb_daemon_consumer_defaults(conf, kc, errstr, sizeof(errstr)), 0);
    get(kc, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "65536"); /* the user's, not ours */
    get(kc, "max.partition.fetch.bytes", v, sizeof(v));
    assert_string_equal(v, "262144"); /* not given: ours */
    rd_kafka_conf_destroy(kc);
    wb_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_applied),
        cmocka_unit_test(test_properties_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
