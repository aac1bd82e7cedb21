/* test_redis_tls.c — issue 15 item 5: wbcache against a TLS-only Redis,
 * through the TLS-originating stunnel of deploy/local/services
 * (WB_REDIS_TLS=1; services.d/stunnel.sh).
 *
 * Unless the local Redis already runs that way, the group setup restarts the
 * local Redis with WB_REDIS_TLS=1 (redis-server on its tls-port only, with
 * tls-auth-clients yes; stunnel on the usual Redis port, verifying the
 * server against the test CA and presenting the client certificate), and
 * the group teardown restarts it in plain text. Every program keeps
 * redis.host/port pointing at stunnel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "refresher_harness.h"

#define READY_MS 20000

static int switched; /* the group setup restarted Redis with TLS */

static const char *tls_port(void)
{
    return rh_env("WB_REDIS_TLS_PORT", "26382");
}

/* Runs cmd (stderr included) into out; returns its exit status. */
static int run(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    size_t n;

    assert_non_null(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    return pclose(p);
}

/* redis-cli PING to Redis's TLS port, with TLS and the CA; with the client
 * certificate when cert. Its output in out; its exit status. */
static int tls_ping(int cert, char *out, size_t size)
{
    const char *dir = rh_env("WB_REDIS_TLS_DIR", WB_SOURCE_DIR "/.wbdata/tls");
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "redis-cli -h 127.0.0.1 -p %s --tls --cacert '%s/ca.crt'%s%s%s%s%s ping 2>&1",
             tls_port(), dir, cert ? " --cert '" : "", cert ? dir : "",
             cert ? "/client.crt' --key '" : "", cert ? dir : "", cert ? "/client.key'" : "");
    return run(cmd, out, size);
}

/* Lines of the local Redis's log (deploy/local/services) containing what. */
static int redis_log_count(const char *what)
{
    char path[1024], line[2048];
    int n = 0;

    snprintf(path, sizeof(path), "%s/redis/redis.log",
             rh_env("WB_DATA_DIR", WB_SOURCE_DIR "/.wbdata"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

/* Waits up to 2 s for Redis to log one more line containing what than
 * before. */
static int redis_logged(const char *what, int before)
{
    for (int i = 0; i < 40; i++) {
        if (redis_log_count(what) > before) return 1;
        usleep(50000);
    }
    return 0;
}

static int wait_row(rh_t *rh, const char *id, const char *want, int ms)
{
    int64_t end = wb_time_mono_ms() + ms, ver = 0;
    char value[256];
    int deleted = 0;
    do {
        if (rh_get_row(rh, id, value, sizeof(value), &ver, &deleted) && !deleted &&
            strcmp(value, want) == 0)
            return 1;
        usleep(50000);
    } while (wb_time_mono_ms() < end);
    return 0;
}

static int wait_clean(rh_t *rh, const char *key, int ms)
{
    int64_t end = wb_time_mono_ms() + ms;
    char idx[256];
    rh_dirty_shard(rh, key, idx, sizeof(idx));
    do {
        redisReply *r = wb_test_redis(rh->redis, "ZSCORE %s %s", idx, key);
        int clean = r && r->type == REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (clean) return 1;
        usleep(50000);
    } while (wb_time_mono_ms() < end);
    return 0;
}

/* The Redis behind stunnel really is the TLS one: with the CA and the
 * client certificate, PING on its TLS port answers PONG. */
static void redis_speaks_tls_on_its_tls_port(void **state)
{
    char out[1024];
    (void)state;

    assert_int_equal(tls_ping(1, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "PONG"));
}

/* The round trip through stunnel: the library puts (ack: log) and gets,
 * the real wb-flusher applies the write to PostgreSQL and clean-marks the
 * entry, the real wb-refresher is ready; both daemons and the library only
 * know stunnel's clear-text port. */
static void put_get_flush_through_the_tls_sidecar(void **state)
{
    rh_t *rh = *state;
    wb_client_t *c = NULL;
    wb_value_t v = {0};
    char errstr[512], key[256];

    rh_setup(rh, "tls", NULL);
    rh_start(rh, RH_FLUSHER_SLOT);
    rh_start(rh, 0);
    for (int slot = 0; slot <= RH_FLUSHER_SLOT; slot += RH_FLUSHER_SLOT) {
        if (rh_wait_http(rh, slot, "/readyz", 200, READY_MS) != 200) {
            rh_dump_log(rh, slot);
            fail_msg("child %d did not become ready", slot);
        }
    }
    if (wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_client_open: %s", errstr);
    assert_int_equal(wb_put(c, "item", "t1", "over-tls", 8, WB_ACK_LOG, NULL), WB_OK);
    assert_int_equal(wb_get(c, "item", "t1", &v), WB_OK);
    assert_int_equal(v.len, 8);
    assert_memory_equal(v.data, "over-tls", 8);
    wb_value_free(&v);
    assert_true(wait_row(rh, "t1", "over-tls", 15000));
    rh_key(rh, "t1", key, sizeof(key));
    assert_true(wait_clean(rh, key, 15000));
    wb_client_close(c);
}

/* Clear text to the TLS port fails: wbcache's own connect (hiredis, no
 * TLS) gets an error, not a connection. */
static void plain_text_to_the_tls_port_fails(void **state)
{
    rh_t *rh = *state;
    redisContext *ctx = NULL;
    char errstr[512] = "";

    rh_setup(rh, "tlsplain", NULL);
    int before = redis_log_count("wrong version number");
    int saved = rh->conf->redis.port;
    rh->conf->redis.port = atoi(tls_port());
    wb_err_t err = wb_redis_connect(rh->conf, &ctx, errstr, sizeof(errstr));
    rh->conf->redis.port = saved;
    printf("plain text to the TLS port: %s\n", errstr);
    assert_int_not_equal(err, WB_OK);
    assert_null(ctx);
    assert_non_null(strstr(errstr, tls_port()));
    /* Redis saw a clear-text request where a TLS handshake belongs. */
    assert_true(redis_logged("wrong version number", before));
}

/* tls-auth-clients yes: a TLS client that trusts the server but has no
 * client certificate is refused. */
static void a_client_without_the_client_certificate_is_refused(void **state)
{
    char out[1024];
    (void)state;

    int before = redis_log_count("peer did not return a certificate");
    int rc = tls_ping(0, out, sizeof(out));
    printf("TLS without a client certificate: %s", out);
    assert_int_not_equal(rc, 0);
    assert_null(strstr(out, "PONG"));
    /* Refused for the missing certificate, not for something else. */
    assert_true(redis_logged("peer did not return a certificate", before));
}

/* 1 when the local Redis runs with TLS already (its redis.conf, which
 * deploy/local/services writes on every start, has a tls-port). */
static int redis_runs_tls(void)
{
    char path[1024], line[512];
    int tls = 0;

    snprintf(path, sizeof(path), "%s/redis/redis.conf",
             rh_env("WB_DATA_DIR", WB_SOURCE_DIR "/.wbdata"));
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        tls |= strncmp(line, "tls-port ", 9) == 0;
    fclose(f);
    return tls;
}

static int group_setup(void **state)
{
    (void)state;
    if (redis_runs_tls()) return 0;
    switched = 1;
    if (wb_test_services("stop-one", "redis") != 0) return -1;
    setenv("WB_REDIS_TLS", "1", 1);
    return wb_test_services("start-one", "redis") == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!switched) return 0;
    if (wb_test_services("stop-one", "redis") != 0) return -1;
    unsetenv("WB_REDIS_TLS");
    return wb_test_services("start-one", "redis") == 0 ? 0 : -1;
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
        cmocka_unit_test(redis_speaks_tls_on_its_tls_port),
        cmocka_unit_test_setup_teardown(put_get_flush_through_the_tls_sidecar, setup, teardown),
        cmocka_unit_test_setup_teardown(plain_text_to_the_tls_port_fails, setup, teardown),
        cmocka_unit_test(a_client_without_the_client_certificate_is_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
