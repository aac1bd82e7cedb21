/* test_config.c — the YAML config loader: values, defaults, environment,
 * masking, entity lookup, round trip, and the exact message for every class
 * of invalid input. Runs with the repository root as working directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_config.h"

#define FIX "tests/unit/fixtures/config/"

static char errbuf[16384];

static const char *const env_vars[] = {
    "WBCACHE_REDIS_PASSWORD",
    "WBCACHE_PG_DSN",
    "WBCACHE_PG_PASSWORD",
    "WBCACHE_KAFKA_SASL_USERNAME",
    "WBCACHE_KAFKA_SASL_PASSWORD",
    "WBCACHE_CONFIG",
    "WB_REDIS_PORT",
    "WB_KAFKA_BROKERS",
    "WB_PG_DSN",
    "WB_FLUSHER_HTTP",
    "WB_REFRESHER_HTTP",
    "WBT_HOST",
    "WBT_PORT",
    "WBT_PREFIX",
    "WBT_EMPTY",
    "WBT_TTL",
    "WBT_SURELY_UNSET_VAR",
};

/* Every test starts from an environment without our variables, so the
 * developer's shell (or the services wrapper) cannot change the outcome. */
static int clear_env(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    return 0;
}

static wb_config_t *load_ok(const char *path)
{
    wb_config_t *conf = NULL;
    wb_err_t rc = wb_config_load(path, &conf, errbuf, sizeof(errbuf));

    if (rc != WB_OK) print_error("unexpected error loading %s:\n%s\n", path, errbuf);
    assert_int_equal(rc, WB_OK);
    assert_non_null(conf);
    return conf;
}

static void expect_errors(const char *path, const char *expected)
{
    wb_config_t *conf = (wb_config_t *)1;
    wb_err_t rc = wb_config_load(path, &conf, errbuf, sizeof(errbuf));

    assert_int_equal(rc, WB_ERR_CONFIG);
    assert_null(conf);
    assert_string_equal(errbuf, expected);
}

static const char *prop(const wb_config_t *conf, const char *name)
{
    size_t i;

    for (i = 0; i < conf->kafka.nprops; i++)
        if (strcmp(conf->kafka.props[i].name, name) == 0) return conf->kafka.props[i].value;
    return NULL;
}

/* The printed config, as a malloc'd string. */
static char *print_to_string(const wb_config_t *conf)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    wb_config_print(conf, fp);
    assert_int_equal(fclose(fp), 0);
    return buf;
}

/* ------------------------------------------------------------ valid files */

static void test_example_config(void **state)
{
    wb_config_t *conf = load_ok("config/wbcache.yaml");
    const wb_entity_t *user, *session;

    (void)state;
    assert_string_equal(conf->path, "config/wbcache.yaml");
    assert_string_equal(conf->redis.host, "127.0.0.1");
    assert_int_equal(conf->redis.port, 26370);
    assert_string_equal(conf->redis.user, "");
    assert_string_equal(conf->redis.password, "");
    assert_int_equal(conf->redis.db, 0);
    assert_int_equal(conf->redis.timeout_ms, 1000);
    assert_string_equal(conf->redis.dirty_index, "wb:dirty");
    assert_string_equal(conf->kafka.brokers, "127.0.0.1:26372");
    assert_string_equal(conf->kafka.topic_changes, "wb.changes");
    assert_string_equal(conf->kafka.topic_refresh, "wb.refresh");
    assert_string_equal(conf->kafka.topic_dead_letter, "wb.dlq");
    assert_int_equal(conf->kafka.partitions, 4);
    assert_int_equal(conf->kafka.nprops, 2);
    assert_string_equal(conf->kafka.props[0].name, "client.id");
    assert_string_equal(conf->kafka.props[0].value, "wbcache");
    assert_string_equal(conf->kafka.props[1].name, "linger.ms");
    assert_string_equal(conf->kafka.props[1].value, "5");
    assert_string_equal(conf->postgres.dsn,
                        "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache password=wbcache");
    assert_string_equal(conf->postgres.password, "");
    assert_int_equal(conf->postgres.schema, WB_SCHEMA_CREATE);
    assert_int_equal(conf->producer.ack, WB_ACK_CACHE);
    assert_int_equal(conf->producer.queue_max, 100000);
    assert_int_equal(conf->producer.max_value_bytes, 900000);
    assert_string_equal(conf->flusher.group_id, "wb-flusher");
    assert_int_equal(conf->flusher.batch_max_events, 10000);
    assert_int_equal(conf->flusher.batch_max_bytes, 16777216);
    assert_int_equal(conf->flusher.batch_max_wait_ms, 100);
    assert_int_equal(conf->flusher.retry_initial_ms, 100);
    assert_int_equal(conf->flusher.retry_max_ms, 30000);
    assert_string_equal(conf->flusher.http_listen, "127.0.0.1:26380");
    assert_int_equal(conf->flusher.tombstone_retention_ms, 1209600000);
    assert_string_equal(conf->refresher.group_id, "wb-refresher");
    assert_int_equal(conf->refresher.batch_max_keys, 500);
    assert_int_equal(conf->refresher.retry_initial_ms, 100);
    assert_int_equal(conf->refresher.retry_max_ms, 30000);
    assert_string_equal(conf->refresher.http_listen, "127.0.0.1:26381");
    assert_string_equal(conf->log.level, "info");

    assert_int_equal(conf->nentities, 3);
    user = wb_config_entity(conf, "user");
    assert_non_null(user);
    assert_string_equal(user->prefix, "user:");
    assert_string_equal(user->table, "users");
    assert_int_equal(user->ttl_ms, 3600000);
    assert_true(user->refresh_ahead == 0.8);
    assert_int_equal(user->value_type, WB_VT_JSONB);
    session = wb_config_entity(conf, "session");
    assert_non_null(session);
    assert_string_equal(session->prefix, "session:");
    assert_string_equal(session->table, "sessions");
    assert_int_equal(session->ttl_ms, 900000);
    assert_true(session->refresh_ahead == 0.0);
    assert_int_equal(session->value_type, WB_VT_TEXT);
    const wb_entity_t *account = wb_config_entity(conf, "account");
    assert_non_null(account);
    assert_true(WB_ENTITY_MAPPED(account));
    assert_string_equal(account->key_column, "id");
    assert_int_equal(account->key_type, WB_KT_BIGINT);
    assert_int_equal(account->nmap, 5);
    assert_string_equal(account->map[4].column, "created_at");
    wb_config_destroy(conf);

    /* The deploy script's ports flow in through ${VAR:-default}. */
    setenv("WB_REDIS_PORT", "27370", 1);
    setenv("WB_KAFKA_BROKERS", "127.0.0.1:27372", 1);
    setenv("WB_PG_DSN", "host=127.0.0.1 port=27371", 1);
    setenv("WB_FLUSHER_HTTP", "127.0.0.1:27380", 1);
    setenv("WB_REFRESHER_HTTP", "127.0.0.1:27381", 1);
    conf = load_ok("config/wbcache.yaml");
    assert_int_equal(conf->redis.port, 27370);
    assert_string_equal(conf->kafka.brokers, "127.0.0.1:27372");
    assert_string_equal(conf->postgres.dsn, "host=127.0.0.1 port=27371");
    assert_string_equal(conf->flusher.http_listen, "127.0.0.1:27380");
    assert_string_equal(conf->refresher.http_listen, "127.0.0.1:27381");
    wb_config_destroy(conf);
}

/* Every field of full.yaml, which sets each key to a non-default value. */
static void assert_full_values(const wb_config_t *conf)
{
    assert_string_equal(conf->redis.host, "redis.internal");
    assert_int_equal(conf->redis.port, 7000);
    assert_string_equal(conf->redis.password, "");
    assert_int_equal(conf->redis.db, 3);
    assert_int_equal(conf->redis.timeout_ms, 250);
    assert_string_equal(conf->redis.dirty_index, "app:dirty");
    assert_string_equal(conf->kafka.brokers, "k1:9092,k2:9092");
    assert_string_equal(conf->kafka.topic_changes, "app.changes");
    assert_string_equal(conf->kafka.topic_refresh, "app.refresh");
    assert_string_equal(conf->kafka.topic_dead_letter, "app.dlq");
    assert_int_equal(conf->kafka.partitions, 12);
    assert_int_equal(conf->kafka.nprops, 3);
    assert_string_equal(conf->kafka.props[0].name, "linger.ms");
    assert_string_equal(conf->kafka.props[0].value, "20");
    assert_string_equal(conf->kafka.props[1].name, "client.id");
    assert_string_equal(conf->kafka.props[1].value, "app \"one\" $HOME");
    assert_string_equal(conf->kafka.props[2].name, "compression.type");
    assert_string_equal(conf->kafka.props[2].value, "lz4");
    assert_string_equal(conf->postgres.dsn, "host=db port=5433 dbname=app user=app");
    assert_string_equal(conf->postgres.password, "");
    assert_int_equal(conf->postgres.connect_timeout_ms, 2500);
    assert_int_equal(conf->postgres.statement_timeout_ms, 0);
    assert_int_equal(conf->postgres.schema, WB_SCHEMA_VERIFY);
    assert_int_equal(conf->producer.ack, WB_ACK_LOG);
    assert_int_equal(conf->producer.queue_max, 5000);
    assert_int_equal(conf->producer.max_value_bytes, 67108864);
    assert_int_equal(conf->producer.kafka_timeout_ms, 900);
    assert_int_equal(conf->producer.negative_ttl_ms, 0);
    assert_int_equal(conf->producer.lock_ttl_ms, 800);
    assert_int_equal(conf->producer.lock_wait_ms, 400);
    assert_int_equal(conf->producer.refresh_dedupe_ms, 0);
    assert_int_equal(conf->producer.ttl_jitter_pct, 50);
    assert_string_equal(conf->flusher.group_id, "app-flusher");
    assert_int_equal(conf->flusher.batch_max_events, 1000000);
    assert_int_equal(conf->flusher.batch_max_bytes, 1024);
    assert_int_equal(conf->flusher.batch_max_wait_ms, 0);
    assert_int_equal(conf->flusher.retry_initial_ms, 7);
    assert_int_equal(conf->flusher.retry_max_ms, 7);
    assert_string_equal(conf->flusher.http_listen, "[::1]:9100");
    assert_int_equal(conf->flusher.shutdown_deadline_ms, 100);
    assert_int_equal(conf->flusher.tombstone_retention_ms, INT64_C(315360000000));
    assert_string_equal(conf->refresher.group_id, "app-refresher");
    assert_int_equal(conf->refresher.batch_max_keys, 1);
    assert_int_equal(conf->refresher.batch_max_wait_ms, 60000);
    assert_int_equal(conf->refresher.retry_initial_ms, 60000);
    assert_int_equal(conf->refresher.retry_max_ms, 3600000);
    assert_int_equal(conf->refresher.collapse_window_ms, 0);
    assert_int_equal(conf->refresher.sweep_interval_ms, 100);
    assert_int_equal(conf->refresher.sweep_after_ms, 1000);
    assert_int_equal(conf->refresher.sweep_max_per_pass, 1000000);
    assert_string_equal(conf->refresher.http_listen, "0.0.0.0:9101");
    assert_int_equal(conf->refresher.shutdown_deadline_ms, 600000);
    assert_string_equal(conf->log.level, "debug");

    assert_int_equal(conf->nentities, 3);
    assert_string_equal(conf->entities[0].name, "user");
    assert_string_equal(conf->entities[0].prefix, "user:");
    assert_string_equal(conf->entities[0].table, "app.users");
    assert_int_equal(conf->entities[0].ttl_ms, 1000);
    assert_true(conf->entities[0].refresh_ahead == 0.999);
    assert_int_equal(conf->entities[0].value_type, WB_VT_TEXT);
    assert_string_equal(conf->entities[1].name, "admin_user");
    assert_string_equal(conf->entities[1].prefix, "admin:");
    assert_string_equal(conf->entities[1].table, "admin_users");
    assert_int_equal(conf->entities[1].ttl_ms, INT64_C(31536000000));
    assert_true(conf->entities[1].refresh_ahead == 0.5);
    assert_int_equal(conf->entities[1].value_type, WB_VT_JSONB);
    assert_string_equal(conf->entities[2].name, "item");
    assert_string_equal(conf->entities[2].prefix, "i/");
    assert_string_equal(conf->entities[2].table, "items");
    assert_int_equal(conf->entities[2].ttl_ms, 60000);
    assert_true(conf->entities[2].refresh_ahead == 0.0);
    assert_int_equal(conf->entities[2].value_type, WB_VT_BYTEA);
}

static void test_full_values(void **state)
{
    wb_config_t *conf = load_ok(FIX "full.yaml");

    (void)state;
    assert_full_values(conf);
    wb_config_destroy(conf);
}

static void test_defaults(void **state)
{
    wb_config_t *conf = load_ok(FIX "minimal.yaml");

    (void)state;
    assert_string_equal(conf->redis.host, "127.0.0.1");
    assert_int_equal(conf->redis.port, 6379);
    assert_string_equal(conf->redis.user, "");
    assert_string_equal(conf->redis.password, "");
    assert_int_equal(conf->redis.db, 0);
    assert_int_equal(conf->redis.timeout_ms, 1000);
    assert_string_equal(conf->redis.dirty_index, "wb:dirty");
    assert_string_equal(conf->kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(conf->kafka.topic_changes, "wb.changes");
    assert_string_equal(conf->kafka.topic_refresh, "wb.refresh");
    assert_string_equal(conf->kafka.topic_dead_letter, "wb.dlq");
    assert_int_equal(conf->kafka.partitions, 4);
    assert_int_equal(conf->kafka.nprops, 0);
    assert_string_equal(conf->postgres.dsn, "");
    assert_string_equal(conf->postgres.password, "");
    assert_int_equal(conf->postgres.connect_timeout_ms, 5000);
    assert_int_equal(conf->postgres.statement_timeout_ms, 30000);
    assert_int_equal(conf->postgres.schema, WB_SCHEMA_CREATE);
    assert_int_equal(conf->producer.ack, WB_ACK_CACHE);
    assert_int_equal(conf->producer.queue_max, 100000);
    assert_int_equal(conf->producer.max_value_bytes, 900000);
    assert_int_equal(conf->producer.kafka_timeout_ms, 5000);
    assert_int_equal(conf->producer.negative_ttl_ms, 5000);
    assert_int_equal(conf->producer.lock_ttl_ms, 5000);
    assert_int_equal(conf->producer.lock_wait_ms, 3000);
    assert_int_equal(conf->producer.refresh_dedupe_ms, 5000);
    assert_int_equal(conf->producer.ttl_jitter_pct, 10);
    assert_string_equal(conf->flusher.group_id, "wb-flusher");
    assert_int_equal(conf->flusher.batch_max_events, 10000);
    assert_int_equal(conf->flusher.batch_max_bytes, 16 * 1024 * 1024);
    assert_int_equal(conf->flusher.batch_max_wait_ms, 100);
    assert_int_equal(conf->flusher.retry_initial_ms, 100);
    assert_int_equal(conf->flusher.retry_max_ms, 30000);
    assert_string_equal(conf->flusher.http_listen, "127.0.0.1:26380");
    assert_int_equal(conf->flusher.shutdown_deadline_ms, 30000);
    assert_int_equal(conf->flusher.tombstone_retention_ms, 1209600000);
    assert_string_equal(conf->refresher.group_id, "wb-refresher");
    assert_int_equal(conf->refresher.batch_max_keys, 500);
    assert_int_equal(conf->refresher.batch_max_wait_ms, 100);
    /* The same defaults as flusher.retry.*, which the refresher used before. */
    assert_int_equal(conf->refresher.retry_initial_ms, 100);
    assert_int_equal(conf->refresher.retry_max_ms, 30000);
    assert_int_equal(conf->refresher.collapse_window_ms, 1000);
    assert_int_equal(conf->refresher.sweep_interval_ms, 5000);
    assert_int_equal(conf->refresher.sweep_after_ms, 30000);
    assert_int_equal(conf->refresher.sweep_max_per_pass, 1000);
    assert_string_equal(conf->refresher.http_listen, "127.0.0.1:26381");
    assert_int_equal(conf->refresher.shutdown_deadline_ms, 30000);
    assert_string_equal(conf->log.level, "info");
    assert_int_equal(conf->nentities, 1);
    assert_int_equal(conf->entities[0].ttl_ms, 3600000);
    assert_true(conf->entities[0].refresh_ahead == 0.0);
    assert_int_equal(conf->entities[0].value_type, WB_VT_BYTEA);
    wb_config_destroy(conf);
}

/* Empty sections mean "all defaults"; numbers may be quoted (what ${VAR}
 * expansion produces anyway). */
static void test_lenient_forms(void **state)
{
    static const char yaml[] = "redis:\n"
                               "kafka:\n"
                               "  partitions: \"8\"\n"
                               "  properties:\n"
                               "entities:\n"
                               "  - {name: user, prefix: \"user:\", table: public.users}\n";
    wb_config_t *conf = NULL;

    (void)state;
    assert_int_equal(
        wb_config_load_string("inline", yaml, strlen(yaml), &conf, errbuf, sizeof(errbuf)), WB_OK);
    assert_string_equal(conf->path, "inline");
    assert_int_equal(conf->redis.port, 6379);
    assert_int_equal(conf->kafka.partitions, 8);
    assert_int_equal(conf->kafka.nprops, 0);
    assert_string_equal(conf->entities[0].table, "public.users");
    wb_config_destroy(conf);
    wb_config_destroy(NULL); /* documented as fine */
}

/* ack: replica (wb_put waits for Redis WAIT) and its timeout; the default
 * timeout is 1000 ms; 0 is out of range. */
static void test_ack_replica(void **state)
{
    const char *yaml = "producer:\n"
                       "  ack: replica\n"
                       "  replica_timeout_ms: 250\n"
                       "entities:\n"
                       "  - {name: user, prefix: \"user:\", table: users}\n";
    const char *zero = "producer:\n"
                       "  replica_timeout_ms: 0\n"
                       "entities:\n"
                       "  - {name: user, prefix: \"user:\", table: users}\n";
    wb_config_t *conf = NULL;

    (void)state;
    assert_int_equal(
        wb_config_load_string("inline", yaml, strlen(yaml), &conf, errbuf, sizeof(errbuf)), WB_OK);
    assert_int_equal(conf->producer.ack, WB_ACK_REPLICA);
    assert_int_equal(conf->producer.replica_timeout_ms, 250);
    wb_config_destroy(conf);
    conf = load_ok("config/wbcache.yaml");
    assert_int_equal(conf->producer.replica_timeout_ms, 1000);
    wb_config_destroy(conf);
    conf = NULL;
    assert_int_equal(
        wb_config_load_string("zero", zero, strlen(zero), &conf, errbuf, sizeof(errbuf)),
        WB_ERR_CONFIG);
    assert_null(conf);
    assert_non_null(strstr(errbuf, "zero:2:3: producer.replica_timeout_ms:"));
}

static void test_env_expansion(void **state)
{
    wb_config_t *conf;

    (void)state;
    setenv("WBT_HOST", "h1", 1);
    setenv("WBT_PREFIX", "app", 1);
    setenv("WBT_EMPTY", "", 1);
    conf = load_ok(FIX "env.yaml");
    assert_string_equal(conf->redis.host, "h1");
    assert_int_equal(conf->redis.port, 6380);                   /* unset: default */
    assert_string_equal(conf->redis.dirty_index, "app:dirty");  /* inside a string */
    assert_string_equal(conf->kafka.brokers, "fallback:9092");  /* empty: default */
    assert_string_equal(prop(conf, "client.id"), "cost $5 h1"); /* $$ is a literal $ */
    assert_string_equal(conf->entities[0].prefix, "app:user:");
    assert_int_equal(conf->entities[0].ttl_ms, 60000);
    wb_config_destroy(conf);

    setenv("WBT_PORT", "7001", 1);
    setenv("WBT_TTL", "120000", 1);
    conf = load_ok(FIX "env.yaml");
    assert_int_equal(conf->redis.port, 7001);
    assert_int_equal(conf->entities[0].ttl_ms, 120000);
    wb_config_destroy(conf);

    /* An expanded value is type-checked like a literal one. */
    setenv("WBT_PORT", "seven", 1);
    expect_errors(FIX "env.yaml",
                  FIX "env.yaml:3:3: redis.port: expected an integer, got \"seven\"");
}

static void test_secret_env_override(void **state)
{
    wb_config_t *conf;

    (void)state;
    conf = load_ok(FIX "secrets.yaml");
    assert_string_equal(conf->redis.user, "wbapp"); /* the ACL user: not a secret */
    assert_string_equal(conf->redis.password, "redis-file-secret");
    assert_string_equal(conf->postgres.password, "pg-file-secret");
    assert_string_equal(prop(conf, "sasl.password"), "kafka-file-secret");
    wb_config_destroy(conf);

    setenv("WBCACHE_REDIS_PASSWORD", "redis-env", 1);
    setenv("WBCACHE_PG_DSN", "host=envdb dbname=app", 1);
    setenv("WBCACHE_PG_PASSWORD", "pg-env", 1);
    setenv("WBCACHE_KAFKA_SASL_USERNAME", "env-user", 1);
    setenv("WBCACHE_KAFKA_SASL_PASSWORD", "kafka-env", 1);
    conf = load_ok(FIX "secrets.yaml");
    assert_string_equal(conf->redis.password, "redis-env");
    assert_string_equal(conf->postgres.dsn, "host=envdb dbname=app");
    assert_string_equal(conf->postgres.password, "pg-env");
    /* Replaced in place: the file's order of properties is kept. */
    assert_int_equal(conf->kafka.nprops, 5);
    assert_string_equal(conf->kafka.props[2].name, "sasl.username");
    assert_string_equal(conf->kafka.props[2].value, "env-user");
    assert_string_equal(conf->kafka.props[3].name, "sasl.password");
    assert_string_equal(conf->kafka.props[3].value, "kafka-env");
    wb_config_destroy(conf);

    /* Not in the file: appended. */
    conf = load_ok(FIX "minimal.yaml");
    assert_int_equal(conf->kafka.nprops, 2);
    assert_string_equal(prop(conf, "sasl.username"), "env-user");
    assert_string_equal(prop(conf, "sasl.password"), "kafka-env");
    assert_string_equal(conf->redis.password, "redis-env");
    wb_config_destroy(conf);

    /* Set but empty does not override. */
    setenv("WBCACHE_REDIS_PASSWORD", "", 1);
    conf = load_ok(FIX "secrets.yaml");
    assert_string_equal(conf->redis.password, "redis-file-secret");
    wb_config_destroy(conf);
}

static void test_print_masks_secrets(void **state)
{
    wb_config_t *conf;
    char *out;

    (void)state;
    setenv("WBCACHE_KAFKA_SASL_PASSWORD", "kafka-env-secret", 1);
    conf = load_ok(FIX "secrets.yaml");
    out = print_to_string(conf);
    assert_null(strstr(out, "file-secret"));
    assert_null(strstr(out, "pg file secret"));
    assert_null(strstr(out, "kafka-env-secret"));
    assert_non_null(strstr(out, "\n  password: \"****\""));
    assert_non_null(strstr(out, "\n  user: \"wbapp\"")); /* the ACL user is shown */
    assert_non_null(strstr(out, "\n  dsn: \"host=db user=app password=**** dbname=app\""));
    assert_non_null(strstr(out, "\n    \"sasl.password\": \"****\"\n"));
    assert_non_null(strstr(out, "\n    \"ssl.key.password\": \"****\"\n"));
    assert_non_null(strstr(out, "\n    \"sasl.username\": \"file-user\"\n"));
    free(out);
    wb_config_destroy(conf);

    /* URI DSNs: the userinfo password and a password parameter. */
    setenv("WBCACHE_PG_DSN", "postgresql://app:s3cret@db:5432/app?sslmode=disable&password=s3cret2",
           1);
    conf = load_ok(FIX "minimal.yaml");
    out = print_to_string(conf);
    assert_null(strstr(out, "s3cret"));
    assert_non_null(
        strstr(out, "dsn: \"postgresql://app:****@db:5432/app?sslmode=disable&password=****\""));
    free(out);
    wb_config_destroy(conf);

    /* A DSN the masker cannot parse is hidden whole. */
    setenv("WBCACHE_PG_DSN", "host=db password='unterminated", 1);
    conf = load_ok(FIX "minimal.yaml");
    out = print_to_string(conf);
    assert_null(strstr(out, "unterminated"));
    assert_non_null(strstr(out, "\n  dsn: \"****\""));
    free(out);
    wb_config_destroy(conf);
}

/* The printed DSN of a config whose postgres.dsn is dsn (from the
 * environment), in a static buffer: the text between the quotes. */
static const char *printed_dsn(const char *dsn)
{
    static char got[1024];
    wb_config_t *conf;
    char *out;
    const char *p, *end;

    setenv("WBCACHE_PG_DSN", dsn, 1);
    conf = load_ok(FIX "minimal.yaml");
    out = print_to_string(conf);
    p = strstr(out, "\n  dsn: \"");
    assert_non_null(p);
    p += 9;
    end = strstr(p, "\"  ");
    assert_non_null(end);
    snprintf(got, sizeof(got), "%.*s", (int)(end - p), p);
    free(out);
    wb_config_destroy(conf);
    return got;
}

/* Issue 14, item 10: what libpq reads as a secret is masked whatever the DSN
 * looks like; what the masker cannot rewrite in place is hidden whole. */
static void test_print_masks_dsn_as_libpq_parses(void **state)
{
    (void)state;
    /* A URI password holding '?' or '#' (libpq's userinfo runs to the '@'). */
    assert_string_equal(printed_dsn("postgresql://app:se?cr#et@db:5432/app?sslmode=require"),
                        "postgresql://app:****@db:5432/app?sslmode=require");
    assert_string_equal(printed_dsn("postgres://app:p#w@db/app"), "postgres://app:****@db/app");
    assert_string_equal(printed_dsn("postgresql://app:a:b?c@db/app"),
                        "postgresql://app:****@db/app");
    /* sslpassword, in both forms. */
    assert_string_equal(printed_dsn("host=db sslkey=/k/client.key sslpassword='key pass' user=app"),
                        "host=db sslkey=/k/client.key sslpassword=**** user=app");
    assert_string_equal(printed_dsn("postgresql://db/app?sslpassword=keypass&sslmode=verify-full"),
                        "postgresql://db/app?sslpassword=****&sslmode=verify-full");
    /* A keyword libpq decodes (%77 = w) is not found in place: hidden whole. */
    assert_string_equal(printed_dsn("postgresql://db/app?pass%77ord=encoded"), "****");
    assert_string_equal(printed_dsn("postgresql://db/app?ssl%70assword=encoded"), "****");
    /* Nothing secret: unchanged. */
    assert_string_equal(printed_dsn("postgresql://app@db/app?sslmode=verify-full"),
                        "postgresql://app@db/app?sslmode=verify-full");
}

/* Issue 14, item 10: the kafka properties librdkafka treats as secrets
 * (sasl.oauthbearer.client.secret is on the list too, but this librdkafka
 * build refuses it without libcurl). */
static void test_print_masks_kafka_secret_props(void **state)
{
    static const char yaml[] =
        "kafka:\n  properties:\n"
        "    sasl.username: the-user\n"
        "    ssl.key.pem: \"-----BEGIN PRIVATE KEY-----\\nMIIkeybytes\\n\"\n"
        "    ssl.keystore.password: ks-secret-1\n"
        "    sasl.oauthbearer.config: \"principal=admin extension_token=tok-3\"\n"
        "entities:\n  - {name: user, prefix: \"u:\", table: users}\n";
    wb_config_t *conf = NULL;
    char *out;
    wb_err_t rc;

    (void)state;
    rc = wb_config_load_string("<props>", yaml, strlen(yaml), &conf, errbuf, sizeof(errbuf));
    if (rc != WB_OK) print_error("%s\n", errbuf);
    assert_int_equal(rc, WB_OK);
    out = print_to_string(conf);
    assert_null(strstr(out, "MIIkeybytes"));
    assert_null(strstr(out, "ks-secret-1"));
    assert_null(strstr(out, "tok-3"));
    assert_non_null(strstr(out, "\"ssl.key.pem\": \"****\"\n"));
    assert_non_null(strstr(out, "\"ssl.keystore.password\": \"****\"\n"));
    assert_non_null(strstr(out, "\"sasl.oauthbearer.config\": \"****\"\n"));
    assert_non_null(strstr(out, "\"sasl.username\": \"the-user\"\n"));
    free(out);
    wb_config_destroy(conf);
}

static void assert_round_trip(const char *path)
{
    wb_config_t *conf = load_ok(path), *again = NULL;
    char *first = print_to_string(conf), *second;

    assert_int_equal(
        wb_config_load_string(conf->path, first, strlen(first), &again, errbuf, sizeof(errbuf)),
        WB_OK);
    second = print_to_string(again);
    assert_string_equal(first, second);
    if (strcmp(path, FIX "full.yaml") == 0) assert_full_values(again);
    free(first);
    free(second);
    wb_config_destroy(conf);
    wb_config_destroy(again);
}

static void test_round_trip(void **state)
{
    (void)state;
    assert_round_trip(FIX "full.yaml");
    assert_round_trip(FIX "minimal.yaml");
}

static void test_entity_lookup(void **state)
{
    wb_config_t *conf = load_ok(FIX "full.yaml");
    const char key[] = "admin:7XXXX"; /* lookups must honour keylen */

    (void)state;
    assert_ptr_equal(wb_config_entity(conf, "user"), &conf->entities[0]);
    assert_ptr_equal(wb_config_entity(conf, "admin_user"), &conf->entities[1]);
    assert_null(wb_config_entity(conf, "users"));
    assert_null(wb_config_entity(conf, NULL));
    assert_null(wb_config_entity(NULL, "user"));

    /* One entity per key (prefixes never overlap); keylen is honoured. */
    assert_ptr_equal(wb_config_entity_by_key(conf, key, 7), &conf->entities[1]);
    assert_null(wb_config_entity_by_key(conf, key, 5));
    assert_ptr_equal(wb_config_entity_by_key(conf, "user:admin:7", 12), &conf->entities[0]);
    assert_ptr_equal(wb_config_entity_by_key(conf, "user:42", 7), &conf->entities[0]);
    assert_ptr_equal(wb_config_entity_by_key(conf, "user:", 5), &conf->entities[0]);
    assert_ptr_equal(wb_config_entity_by_key(conf, "i/abc", 5), &conf->entities[2]);
    assert_null(wb_config_entity_by_key(conf, "user", 4));
    assert_null(wb_config_entity_by_key(conf, "session:1", 9));
    assert_null(wb_config_entity_by_key(conf, "", 0));
    assert_null(wb_config_entity_by_key(conf, NULL, 3));
    wb_config_destroy(conf);
}

static void test_default_path(void **state)
{
    (void)state;
    assert_string_equal(wb_config_default_path(), "config/wbcache.yaml");
    setenv("WBCACHE_CONFIG", "", 1);
    assert_string_equal(wb_config_default_path(), "config/wbcache.yaml");
    setenv("WBCACHE_CONFIG", "/etc/wbcache/prod.yaml", 1);
    assert_string_equal(wb_config_default_path(), "/etc/wbcache/prod.yaml");
}

/* ---------------------------------------------------------- invalid files */

static void test_unknown_key(void **state)
{
    (void)state;
    expect_errors(FIX "bad_unknown_key.yaml",
                  FIX "bad_unknown_key.yaml:3:3: redis.prot: unknown key (did you mean "
                      "redis.port?)\n" FIX
                      "bad_unknown_key.yaml:6:5: flusher.batch.max_event: unknown key (did you "
                      "mean flusher.batch.max_events?)\n" FIX
                      "bad_unknown_key.yaml:7:5: flusher.batch.flush_now: unknown key\n" FIX
                      "bad_unknown_key.yaml:8:1: colour: unknown key\n" FIX
                      "bad_unknown_key.yaml:13:5: entities[0].tll_ms: unknown key (did you mean "
                      "entities[0].ttl_ms?)\n" FIX
                      "bad_unknown_key.yaml:15:3: refresher.batch.max_keys: unknown key (dotted "
                      "keys are not supported; nest the mappings instead)");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_errors(FIX "bad_wrong_type.yaml", FIX
                  "bad_wrong_type.yaml:2:3: redis.port: expected an integer, got \"abc\"\n" FIX
                  "bad_wrong_type.yaml:3:3: redis.db: expected an integer, got \"1.5\"\n" FIX
                  "bad_wrong_type.yaml:4:3: redis.host: expected a string, got a mapping\n" FIX
                  "bad_wrong_type.yaml:6:3: redis.password: expected a string, got a sequence\n" FIX
                  "bad_wrong_type.yaml:7:1: producer: expected a mapping, got \"5\"\n" FIX
                  "bad_wrong_type.yaml:12:5: entities[0].refresh_ahead: expected a number, got "
                  "\"half\"");
}

static void test_section_type(void **state)
{
    (void)state;
    expect_errors(
        FIX "bad_section_type.yaml",
        FIX "bad_section_type.yaml:1:1: redis: expected a mapping, got \"localhost\"\n" FIX
            "bad_section_type.yaml:3:3: kafka.topics: expected a mapping, got a sequence\n" FIX
            "bad_section_type.yaml:4:1: entities: expected a sequence of entities, got a "
            "mapping");
}

static void test_int_overflow(void **state)
{
    (void)state;
    expect_errors(FIX "bad_int_overflow.yaml",
                  FIX "bad_int_overflow.yaml:2:3: redis.port: must be between 1 and 65535, got "
                      "99999999999999999999\n" FIX
                      "bad_int_overflow.yaml:4:3: flusher.tombstone_retention_ms: must be between "
                      "0 and 315360000000, got -9223372036854775809");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_errors(FIX "bad_out_of_range.yaml",
                  FIX "bad_out_of_range.yaml:2:3: producer.max_value_bytes: must be between 1 "
                      "and 67108864, got 67108865\n" FIX
                      "bad_out_of_range.yaml:3:3: producer.ttl_jitter_pct: must be between 0 and "
                      "50, got -1\n" FIX
                      "bad_out_of_range.yaml:6:5: flusher.batch.max_events: must be between 1 and "
                      "1000000, got 0\n" FIX
                      "bad_out_of_range.yaml:9:5: refresher.retry.initial_ms: must be between 1 "
                      "and 60000, got 0\n" FIX
                      "bad_out_of_range.yaml:14:5: entities[0].ttl_ms: must be between 1000 and "
                      "31536000000, got 999\n" FIX
                      "bad_out_of_range.yaml:15:5: entities[0].refresh_ahead: must be at least 0 "
                      "and below 1, got 1.0");
}

/* flusher.batch.max_bytes stops at 256 MiB: one table's statement must stay
 * well below PostgreSQL's 1 GiB message limit. */
static void test_batch_max_bytes_cap(void **state)
{
    static const char ok[] = "flusher:\n  batch:\n    max_bytes: 268435456\n"
                             "entities:\n  - {name: u, prefix: \"u:\", table: users}\n";
    static const char big[] = "flusher:\n  batch:\n    max_bytes: 268435457\n"
                              "entities:\n  - {name: u, prefix: \"u:\", table: users}\n";
    wb_config_t *conf = NULL;

    (void)state;
    assert_int_equal(wb_config_load_string("cap", ok, strlen(ok), &conf, errbuf, sizeof(errbuf)),
                     WB_OK);
    assert_int_equal(conf->flusher.batch_max_bytes, 268435456);
    wb_config_destroy(conf);
    conf = NULL;
    assert_int_equal(wb_config_load_string("cap", big, strlen(big), &conf, errbuf, sizeof(errbuf)),
                     WB_ERR_CONFIG);
    assert_null(conf);
    assert_string_equal(errbuf, "cap:3:5: flusher.batch.max_bytes: must be between 1024 and "
                                "268435456, got 268435457");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_errors(FIX "bad_missing_required.yaml",
                  FIX "bad_missing_required.yaml:2:5: entities[0].table: missing required key\n" FIX
                      "bad_missing_required.yaml:4:5: entities[1].name: missing required key\n" FIX
                      "bad_missing_required.yaml:4:5: entities[1].prefix: missing required key");
    expect_errors(FIX "bad_no_entities.yaml",
                  FIX "bad_no_entities.yaml:1:1: entities: missing required key");
    expect_errors(FIX "bad_empty_entities.yaml",
                  FIX "bad_empty_entities.yaml:3:1: entities: at least one entity is required");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_errors(FIX "bad_duplicate_key.yaml",
                  FIX "bad_duplicate_key.yaml:3:3: redis.port: duplicate key (first defined at "
                      "line 2, column 3)\n" FIX
                      "bad_duplicate_key.yaml:7:5: kafka.properties.linger.ms: duplicate key "
                      "(first defined at line 6, column 5)\n" FIX
                      "bad_duplicate_key.yaml:12:1: redis: duplicate key (first defined at line "
                      "1, column 1)");
}

static void test_duplicate_entity(void **state)
{
    (void)state;
    expect_errors(FIX "bad_duplicate_entity.yaml",
                  FIX "bad_duplicate_entity.yaml:7:5: entities[1].table: duplicate of "
                      "entities[0].table \"users\"\n" FIX
                      "bad_duplicate_entity.yaml:8:5: entities[2].name: duplicate of "
                      "entities[0].name \"user\"\n" FIX
                      "bad_duplicate_entity.yaml:9:5: entities[2].prefix: duplicate of "
                      "entities[0].prefix \"user:\"");
}

/* Issue 14 item 1: `user:` and `user:admin:` would share the key
 * "user:admin:5" (user "admin:5", admin_user "5"): refused at load, with
 * both entities and both places named; so are prefixes overlapping the
 * internal "wb:" keys. */
static void test_overlapping_prefix(void **state)
{
    (void)state;
    expect_errors(FIX "bad_overlap_prefix.yaml",
                  FIX "bad_overlap_prefix.yaml:6:5: entities[1].prefix: \"user:admin:\" of entity "
                      "admin_user overlaps entities[0].prefix \"user:\" of entity user (line 3, "
                      "column 5): a cache key must belong to one entity\n" FIX
                      "bad_overlap_prefix.yaml:9:5: entities[2].prefix: \"wb:x\" overlaps the "
                      "internal keys \"wb:...\"\n" FIX
                      "bad_overlap_prefix.yaml:12:5: entities[3].prefix: \"w\" overlaps the "
                      "internal keys \"wb:...\"\n" FIX
                      "bad_overlap_prefix.yaml:12:5: entities[3].prefix: \"w\" of entity w "
                      "overlaps entities[2].prefix \"wb:x\" of entity internal (line 9, column 5): "
                      "a cache key must belong to one entity");
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_errors(FIX "bad_enum.yaml", FIX
                  "bad_enum.yaml:2:3: producer.ack: must be one of cache, log, replica, got "
                  "\"disk\"\n" FIX
                  "bad_enum.yaml:4:3: postgres.schema: must be one of create, verify, migrate, got "
                  "\"Create\"\n" FIX
                  "bad_enum.yaml:6:3: log.level: must be one of debug, info, warn, error, got "
                  "\"verbose\"\n" FIX
                  "bad_enum.yaml:11:5: entities[0].value_type: must be one of text, jsonb, "
                  "bytea, got \"json\"");
}

static void test_bad_identifier(void **state)
{
    (void)state;
    expect_errors(FIX "bad_identifier.yaml",
                  FIX "bad_identifier.yaml:2:5: entities[0].name: must be an identifier "
                      "([A-Za-z_][A-Za-z0-9_]{0,62}), got \"user-profile\"\n" FIX
                      "bad_identifier.yaml:4:5: entities[0].table: must be a table name: "
                      "identifier or schema.identifier ([A-Za-z_][A-Za-z0-9_]{0,62} each), got "
                      "\"users; DROP TABLE users\"\n" FIX
                      "bad_identifier.yaml:7:5: entities[1].table: must be a table name: "
                      "identifier or schema.identifier ([A-Za-z_][A-Za-z0-9_]{0,62} each), got "
                      "\"a.b.c\"\n" FIX
                      "bad_identifier.yaml:8:5: entities[2].name: must be at most 63 characters "
                      "long, got 64");
}

static void test_string_format(void **state)
{
    (void)state;
    expect_errors(FIX "bad_string_format.yaml",
                  FIX "bad_string_format.yaml:3:5: kafka.topics.changes: must be a Kafka topic "
                      "name ([A-Za-z0-9._-], not \".\" or \"..\"), got \"wb changes\"\n" FIX
                      "bad_string_format.yaml:5:3: flusher.group_id: must not be empty\n" FIX
                      "bad_string_format.yaml:6:3: flusher.http_listen: must be host:port with a "
                      "port from 1 to 65535, got \"localhost\"\n" FIX
                      "bad_string_format.yaml:8:3: refresher.http_listen: must be host:port with "
                      "a port from 1 to 65535, got \"127.0.0.1:70000\"\n" FIX
                      "bad_string_format.yaml:11:5: entities[0].prefix: must not be empty");
}

static void test_cross_field(void **state)
{
    (void)state;
    expect_errors(FIX "bad_cross_field.yaml",
                  FIX "bad_cross_field.yaml:3:5: kafka.topics.dead_letter: must differ from "
                      "kafka.topics.changes\n" FIX
                      "bad_cross_field.yaml:7:5: flusher.retry.max_ms: must not be below "
                      "flusher.retry.initial_ms\n" FIX
                      "bad_cross_field.yaml:11:5: refresher.retry.initial_ms: must not exceed "
                      "refresher.retry.max_ms");
}

static void test_entity_item(void **state)
{
    (void)state;
    expect_errors(FIX "bad_entity_item.yaml", FIX
                  "bad_entity_item.yaml:2:5: entities[0]: expected a mapping, got \"user\"\n" FIX
                  "bad_entity_item.yaml:6:5: entities[2]: expected a mapping, got a sequence");
}

static void test_kafka_property(void **state)
{
    (void)state;
    expect_errors(FIX "bad_kafka_property.yaml",
                  FIX "bad_kafka_property.yaml:3:5: kafka.properties.linger.ms: invalid value: "
                      "Invalid value for configuration property \"queue.buffering.max.ms\"\n" FIX
                      "bad_kafka_property.yaml:4:5: kafka.properties.no.such.property: unknown "
                      "librdkafka property\n" FIX
                      "bad_kafka_property.yaml:5:5: kafka.properties.bootstrap.servers: set "
                      "kafka.brokers instead\n" FIX
                      "bad_kafka_property.yaml:6:5: kafka.properties.group.id: set "
                      "flusher.group_id / refresher.group_id instead\n" FIX
                      "bad_kafka_property.yaml:7:5: kafka.properties.sasl.password: expected a "
                      "scalar value, got a mapping");
}

static void test_syntax_error(void **state)
{
    (void)state;
    expect_errors(FIX "bad_syntax.yaml", FIX "bad_syntax.yaml:3:8: YAML syntax error: mapping "
                                             "values are not allowed in this context");
}

static void test_empty_file(void **state)
{
    (void)state;
    expect_errors(FIX "bad_empty.yaml", FIX "bad_empty.yaml:1:1: the config is empty; expected a "
                                            "mapping with at least an entities: list");
}

static void test_not_mapping(void **state)
{
    (void)state;
    expect_errors(FIX "bad_not_mapping.yaml",
                  FIX "bad_not_mapping.yaml:1:1: expected a mapping at the top level, got a "
                      "sequence");
}

static void test_unset_env(void **state)
{
    (void)state;
    expect_errors(FIX "bad_unset_env.yaml",
                  FIX "bad_unset_env.yaml:2:3: redis.host: environment variable "
                      "WBT_SURELY_UNSET_VAR is not set\n" FIX
                      "bad_unset_env.yaml:4:3: redis.dirty_index: unterminated \"${\" in value "
                      "(write $$ for a literal $)\n" FIX
                      "bad_unset_env.yaml:10:3: postgres.password: bad environment variable name "
                      "\"9PW\" in ${...}");
}

static void test_alias(void **state)
{
    (void)state;
    expect_errors(FIX "bad_alias.yaml",
                  FIX "bad_alias.yaml:2:9: redis.host: anchors are not supported\n" FIX
                      "bad_alias.yaml:3:16: redis.dirty_index: aliases are not supported\n" FIX
                      "bad_alias.yaml:5:5: entities[0]: anchors are not supported");
}

static void test_multi_doc(void **state)
{
    (void)state;
    expect_errors(FIX "bad_multi_doc.yaml",
                  FIX "bad_multi_doc.yaml:5:1: only one YAML document is allowed");
}

static void test_tag(void **state)
{
    (void)state;
    expect_errors(FIX "bad_tag.yaml", FIX "bad_tag.yaml:2:9: redis.port: YAML tags are not "
                                          "supported");
}

/* ------------------------------------------------- errors built in memory */

static void expect_string_errors(const char *yaml, size_t len, const char *expected)
{
    wb_config_t *conf = NULL;

    assert_int_equal(wb_config_load_string("mem.yaml", yaml, len, &conf, errbuf, sizeof(errbuf)),
                     WB_ERR_CONFIG);
    assert_null(conf);
    assert_string_equal(errbuf, expected);
}

static void test_invalid_bytes(void **state)
{
    static const char ctl[] =
        "entities:\n  - {name: a, prefix: b, table: c}\nredis: {host: \x01}\n";
    static const char nul[] = "redis:\n  password: \"s3cr\\0et\"\n"
                              "entities: [{name: a, prefix: b, table: c}]\n";

    (void)state;
    expect_string_errors(ctl, sizeof(ctl) - 1,
                         "mem.yaml:3:15: invalid input: control characters are not allowed (byte "
                         "offset 59)");
    /* The message names the key, never the secret. */
    expect_string_errors(nul, sizeof(nul) - 1,
                         "mem.yaml:2:3: redis.password: must not contain NUL bytes");
}

static void test_too_deep(void **state)
{
    char yaml[256];

    (void)state;
    snprintf(yaml, sizeof(yaml), "a: %.*s", 40, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    expect_string_errors(yaml, strlen(yaml),
                         "mem.yaml:1:35: nesting deeper than 32 levels is not supported");
}

/* Many errors: the first 20 in file order, then a count of the rest. */
static void test_error_cap(void **state)
{
    char yaml[4096], expected[4096];
    size_t off = 0, eoff = 0;
    int i;

    (void)state;
    off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "redis:\n");
    for (i = 0; i < 30; i++)
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "  zz%02d: 1\n", i);
    off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
                            "entities: [{name: a, prefix: b, table: c}]\n");
    for (i = 0; i < 20; i++)
        eoff += (size_t)snprintf(expected + eoff, sizeof(expected) - eoff,
                                 "mem.yaml:%d:3: redis.zz%02d: unknown key\n", i + 2, i);
    snprintf(expected + eoff, sizeof(expected) - eoff, "mem.yaml: 10 more errors not shown");
    expect_string_errors(yaml, off, expected);
}

/* A short errstr gets whole lines while at least one fits, and is always
 * terminated. */
static void test_errstr_truncation(void **state)
{
    const char *first =
        FIX "bad_enum.yaml:2:3: producer.ack: must be one of cache, log, replica, got "
            "\"disk\"";
    wb_config_t *conf = NULL;
    char small[120], tiny[10];

    (void)state;
    memset(small, 'x', sizeof(small));
    assert_int_equal(wb_config_load(FIX "bad_enum.yaml", &conf, small, sizeof(small)),
                     WB_ERR_CONFIG);
    assert_string_equal(small, first);
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(wb_config_load(FIX "bad_enum.yaml", &conf, tiny, sizeof(tiny)), WB_ERR_CONFIG);
    assert_string_equal(tiny, "tests/uni");
    assert_int_equal(wb_config_load(FIX "bad_enum.yaml", &conf, NULL, 0), WB_ERR_CONFIG);
    assert_null(conf);
}

static void test_io_and_args(void **state)
{
    wb_config_t *conf = (wb_config_t *)1;

    (void)state;
    assert_int_equal(wb_config_load(FIX "does_not_exist.yaml", &conf, errbuf, sizeof(errbuf)),
                     WB_ERR_IO);
    assert_null(conf);
    assert_string_equal(errbuf, FIX "does_not_exist.yaml: cannot open: No such file or directory");
    assert_int_equal(wb_config_load(FIX, &conf, errbuf, sizeof(errbuf)), WB_ERR_IO);
    assert_string_equal(errbuf, FIX ": cannot read: Is a directory");
    assert_int_equal(wb_config_load(NULL, &conf, errbuf, sizeof(errbuf)), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_config_load(FIX "minimal.yaml", NULL, errbuf, sizeof(errbuf)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_config_load_string(NULL, NULL, 5, &conf, errbuf, sizeof(errbuf)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_config_load_string(NULL, NULL, 0, &conf, errbuf, sizeof(errbuf)),
                     WB_ERR_CONFIG);
    assert_string_equal(errbuf, "<memory>:1:1: the config is empty; expected a mapping with at "
                                "least an entities: list");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_example_config, clear_env),
        cmocka_unit_test_setup(test_full_values, clear_env),
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_ack_replica, clear_env),
        cmocka_unit_test_setup(test_lenient_forms, clear_env),
        cmocka_unit_test_setup(test_env_expansion, clear_env),
        cmocka_unit_test_setup(test_secret_env_override, clear_env),
        cmocka_unit_test_setup(test_print_masks_secrets, clear_env),
        cmocka_unit_test_setup(test_print_masks_dsn_as_libpq_parses, clear_env),
        cmocka_unit_test_setup(test_print_masks_kafka_secret_props, clear_env),
        cmocka_unit_test_setup(test_round_trip, clear_env),
        cmocka_unit_test_setup(test_entity_lookup, clear_env),
        cmocka_unit_test_setup(test_default_path, clear_env),
        cmocka_unit_test_setup(test_unknown_key, clear_env),
        cmocka_unit_test_setup(test_wrong_type, clear_env),
        cmocka_unit_test_setup(test_section_type, clear_env),
        cmocka_unit_test_setup(test_int_overflow, clear_env),
        cmocka_unit_test_setup(test_out_of_range, clear_env),
        cmocka_unit_test_setup(test_batch_max_bytes_cap, clear_env),
        cmocka_unit_test_setup(test_missing_required, clear_env),
        cmocka_unit_test_setup(test_duplicate_key, clear_env),
        cmocka_unit_test_setup(test_duplicate_entity, clear_env),
        cmocka_unit_test_setup(test_overlapping_prefix, clear_env),
        cmocka_unit_test_setup(test_bad_enum, clear_env),
        cmocka_unit_test_setup(test_bad_identifier, clear_env),
        cmocka_unit_test_setup(test_string_format, clear_env),
        cmocka_unit_test_setup(test_cross_field, clear_env),
        cmocka_unit_test_setup(test_entity_item, clear_env),
        cmocka_unit_test_setup(test_kafka_property, clear_env),
        cmocka_unit_test_setup(test_syntax_error, clear_env),
        cmocka_unit_test_setup(test_empty_file, clear_env),
        cmocka_unit_test_setup(test_not_mapping, clear_env),
        cmocka_unit_test_setup(test_unset_env, clear_env),
        cmocka_unit_test_setup(test_alias, clear_env),
        cmocka_unit_test_setup(test_multi_doc, clear_env),
        cmocka_unit_test_setup(test_tag, clear_env),
        cmocka_unit_test_setup(test_invalid_bytes, clear_env),
        cmocka_unit_test_setup(test_too_deep, clear_env),
        cmocka_unit_test_setup(test_error_cap, clear_env),
        cmocka_unit_test_setup(test_errstr_truncation, clear_env),
        cmocka_unit_test_setup(test_io_and_args, clear_env),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
