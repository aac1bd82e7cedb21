/* test_config_get.c — one key's effective value (`wbctl config get`) and the
 * key descriptions the reference tables of config/README.md are made of
 * (`wbctl config reference`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_config.h"

static char errbuf[4096];

static const char yaml[] =
    "redis:\n  host: ${WBT_GET_HOST:-cache.local}\n  port: ${WBT_GET_PORT}\n"
    "  password: hunter2\n  dirty_index: \"wb:$$dirty\"\n"
    "kafka:\n  topics:\n    changes: orders.changes\n"
    "  properties: {linger.ms: 5}\n"
    "postgres:\n  dsn: \"host=db user=app password=s3cret dbname=app\"\n"
    "producer:\n  ack: log\n"
    "entities:\n  - {name: user, prefix: \"u:\", table: users, refresh_ahead: 0.25}\n";

static wb_config_t *load(void)
{
    wb_config_t *conf = NULL;
    wb_err_t rc = wb_config_load_string("<get>", yaml, strlen(yaml), &conf, errbuf, sizeof(errbuf));

    if (rc != WB_OK) print_error("%s\n", errbuf);
    assert_int_equal(rc, WB_OK);
    return conf;
}

/* What wb_config_print_key writes for key, in a static buffer; NULL when
 * it fails (the reason in errbuf). */
static const char *get(const wb_config_t *conf, const char *key)
{
    static char out[1024];
    FILE *f = fmemopen(out, sizeof(out), "w");
    wb_err_t rc;

    assert_non_null(f);
    rc = wb_config_print_key(conf, key, f, errbuf, sizeof(errbuf));
    fclose(f);
    return rc == WB_OK ? out : NULL;
}

static void test_values(void **state)
{
    (void)state;
    unsetenv("WBT_GET_HOST");
    setenv("WBT_GET_PORT", "7000", 1);
    wb_config_t *conf = load();

    /* Through the loader: ${VAR:-default}, ${VAR}, $$ and the defaults. */
    assert_string_equal(get(conf, "redis.host"), "cache.local\n");
    assert_string_equal(get(conf, "redis.port"), "7000\n");
    assert_string_equal(get(conf, "kafka.topics.changes"), "orders.changes\n");
    assert_string_equal(get(conf, "redis.dirty_index"), "wb:$dirty\n");
    assert_string_equal(get(conf, "kafka.topics.refresh"), "wb.refresh\n");
    assert_string_equal(get(conf, "kafka.partitions"), "4\n");
    assert_string_equal(get(conf, "producer.ack"), "log\n");
    assert_string_equal(get(conf, "postgres.schema"), "create\n");
    assert_string_equal(get(conf, "log.level"), "info\n");
    assert_string_equal(get(conf, "flusher.batch.max_bytes"), "16777216\n");
    assert_string_equal(get(conf, "postgres.password"), "\n");
    wb_config_destroy(conf);

    setenv("WBT_GET_HOST", "10.0.0.7", 1);
    conf = load();
    assert_string_equal(get(conf, "redis.host"), "10.0.0.7\n");
    wb_config_destroy(conf);
    unsetenv("WBT_GET_HOST");
    unsetenv("WBT_GET_PORT");
}

static void test_secrets_masked(void **state)
{
    (void)state;
    setenv("WBT_GET_PORT", "7000", 1);
    wb_config_t *conf = load();

    assert_string_equal(get(conf, "redis.password"), "****\n");
    assert_string_equal(get(conf, "postgres.dsn"), "host=db user=app password=**** dbname=app\n");
    wb_config_destroy(conf);

    /* Issue 14, item 10: get masks what libpq reads as a secret, like print. */
    setenv("WBCACHE_PG_DSN", "postgresql://app:p?w#d@db/app?sslpassword=kp", 1);
    conf = load();
    assert_string_equal(get(conf, "postgres.dsn"),
                        "postgresql://app:****@db/app?sslpassword=****\n");
    wb_config_destroy(conf);
    setenv("WBCACHE_PG_DSN", "postgresql://db/app?pass%77ord=hidden", 1);
    conf = load();
    assert_string_equal(get(conf, "postgres.dsn"), "****\n");
    wb_config_destroy(conf);
    unsetenv("WBCACHE_PG_DSN");
    unsetenv("WBT_GET_PORT");
}

static void test_refused(void **state)
{
    (void)state;
    setenv("WBT_GET_PORT", "7000", 1);
    wb_config_t *conf = load();

    assert_null(get(conf, "redis.prot"));
    assert_string_equal(errbuf, "redis.prot: unknown key");
    assert_null(get(conf, "redis"));
    assert_string_equal(errbuf, "redis: unknown key");
    assert_null(get(conf, "entities[0].name"));
    assert_string_equal(errbuf, "entities[0].name: unknown key");
    assert_null(get(conf, "kafka.properties"));
    assert_string_equal(errbuf, "kafka.properties: not a single value but a mapping");
    assert_null(get(conf, "entities"));
    assert_string_equal(errbuf, "entities: not a single value but a list");
    assert_int_equal(wb_config_print_key(conf, NULL, stdout, errbuf, sizeof(errbuf)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_config_print_key(NULL, "redis.port", stdout, errbuf, sizeof(errbuf)),
                     WB_ERR_INVALID_ARG);
    wb_config_destroy(conf);
    unsetenv("WBT_GET_PORT");
}

/* The description of key, which must exist. */
static wb_config_key_t describe(const char *key)
{
    wb_config_key_t k;

    for (size_t i = 0; wb_config_key_describe(i, &k); i++)
        if (strcmp(k.key, key) == 0) return k;
    fail_msg("no key %s", key);
    return k;
}

static void test_describe(void **state)
{
    wb_config_key_t k;
    size_t n = 0;

    (void)state;
    k = describe("redis.port");
    assert_string_equal(k.type, "int");
    assert_string_equal(k.def, "6379");
    assert_string_equal(k.range, "1–65535");
    assert_string_equal(k.help, "Redis TCP port");
    assert_false(k.required);

    k = describe("redis.password");
    assert_true(k.secret);
    assert_string_equal(k.def, "");
    assert_string_equal(k.range, "at most 4096 chars");

    assert_true(describe("postgres.dsn").secret_part);
    assert_string_equal(describe("producer.ack").range, "cache, log, replica");
    assert_string_equal(describe("log.level").range, "debug, info, warn, error");
    assert_string_equal(describe("flusher.batch.max_bytes").type, "int64");
    assert_string_equal(describe("kafka.topics.changes").range,
                        "1–249 chars; a Kafka topic name ([A-Za-z0-9._-], not \".\" or \"..\")");
    assert_string_equal(describe("flusher.http_listen").range,
                        "1–1024 chars; host:port with a port from 1 to 65535");
    assert_string_equal(describe("kafka.properties").def, "{}");
    assert_string_equal(describe("kafka.properties").type, "mapping");

    k = describe("entities");
    assert_string_equal(k.type, "list");
    assert_true(k.required);
    assert_null(k.def);
    k = describe("entities[].name");
    assert_true(k.required);
    assert_null(k.def);
    assert_string_equal(describe("entities[].refresh_ahead").range, "0 ≤ x < 1");
    assert_string_equal(describe("entities[].ttl_ms").def, "3600000");

    /* Every key has a type and a description; the list ends. */
    while (wb_config_key_describe(n, &k)) {
        assert_non_null(k.type);
        assert_true(k.help[0] != '\0');
        n++;
    }
    assert_true(n > 40);
    assert_false(wb_config_key_describe(n + 1, &k));
}

/* The defaults the reference shows are the ones a load applies. */
static void test_describe_matches_loaded_defaults(void **state)
{
    static const char minimal[] = "entities:\n  - {name: a, prefix: \"a:\", table: a}\n";
    wb_config_t *conf = NULL;
    wb_config_key_t k;

    (void)state;
    assert_int_equal(
        wb_config_load_string("<min>", minimal, strlen(minimal), &conf, errbuf, sizeof(errbuf)),
        WB_OK);
    for (size_t i = 0; wb_config_key_describe(i, &k); i++) {
        char want[300];
        const char *got;

        if (!k.def || strchr(k.key, '[') || strcmp(k.type, "mapping") == 0) continue;
        got = get(conf, k.key);
        assert_non_null(got);
        snprintf(want, sizeof(want), "%s\n", k.def);
        assert_string_equal(got, want);
    }
    wb_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_secrets_masked),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_describe_matches_loaded_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
