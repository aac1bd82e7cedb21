/* test_library_boundary.c — what an embedding application relies on: each handle's log lines
 * reach only its own callback (its threads and the core modules included), SIGPIPE cannot kill
 * the process, and wb_client_stats writes only what the caller's struct holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>

#include "lib_harness.h"
#include "wb_client_int.h"
#include "wb_rpool.h"

static lh_t H;

static int group_setup(void **state)
{
    (void)state;
    lh_setup(&H);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lh_teardown(&H);
    return 0;
}

/* The lines one handle's callback received. */
#define MAX_SEEN 256
typedef struct seen_s {
    pthread_mutex_t mu;
    pthread_t main; /* the test's thread: a line from another one came from a library thread */
    int n, lost, from_other_thread;
    char lines[MAX_SEEN][320];
} seen_t;

static void seen_log(wb_log_level_t level, const char *line, void *opaque)
{
    seen_t *s = opaque;

    (void)level;
    pthread_mutex_lock(&s->mu);
    if (s->n < MAX_SEEN) {
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s", line);
        if (!pthread_equal(pthread_self(), s->main)) s->from_other_thread++;
    } else {
        s->lost++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Number of lines of s holding part. */
static int seen_count(seen_t *s, const char *part)
{
    int k = 0;

    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        if (strstr(s->lines[i], part)) k++;
    pthread_mutex_unlock(&s->mu);
    return k;
}

/* A client whose config is this process's, with log.level level and
 * optionally librdkafka's debug contexts (kafka.properties debug). */
static wb_client_t *open_logging(const char *level, const char *kafka_debug, seen_t *s)
{
    char yaml[4096], edited[4608], errstr[1024], *at;
    size_t n = lh_config_yaml(&H, NULL, yaml, sizeof(yaml));
    wb_config_t *conf = NULL;
    wb_client_t *client = NULL;
    int len;

    (void)n;
    /* "  partitions: 3\n" ends the kafka: section, "  level: info\n" is log.level. */
    at = strstr(yaml, "  partitions: 3\n");
    assert_non_null(at);
    at += strlen("  partitions: 3\n");
    len = snprintf(edited, sizeof(edited), "%.*s%s%s%s", (int)(at - yaml), yaml,
                   kafka_debug ? "  properties:\n    debug: " : "", kafka_debug ? kafka_debug : "",
                   kafka_debug ? "\n" : "");
    assert_true(len > 0 && (size_t)len < sizeof(edited));
    snprintf(edited + len, sizeof(edited) - (size_t)len, "%s", at);
    at = strstr(edited, "  level: info\n");
    assert_non_null(at);
    memmove(at + strlen("  level: ") + strlen(level), at + strlen("  level: info"),
            strlen(at + strlen("  level: info")) + 1);
    memcpy(at + strlen("  level: "), level, strlen(level));
    if (wb_config_load_string("<test>", edited, strlen(edited), &conf, errstr, sizeof(errstr)) !=
        WB_OK)
        fail_msg("config: %s", errstr);
    s->main = pthread_self();
    if (wb_client_open_config(conf, seen_log, s, &client, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("open: %s", errstr);
    return client;
}

/* Two handles in one process, each with its own callback and level: each
 * gets only its own lines -- those of its calls (the library's own code),
 * and those of its Kafka poll thread, where the core module wb_kafka
 * hands over librdkafka's lines -- even after the other handle, opened
 * later, is closed. (Before, the most recently opened handle took every
 * line of the process.) */
static void two_clients_each_get_their_own_lines(void **state)
{
    static seen_t a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char ida[128], idb[128], name[128] = "", *p;
    wb_client_t *ca, *cb;
    int64_t v;

    (void)state;
    lh_id(&H, "log-a", ida, sizeof(ida));
    lh_id(&H, "log-b", idb, sizeof(idb));
    cb = open_logging("info", NULL, &b);
    ca = open_logging("debug", "broker", &a);

    /* A refused value logs a WARN line on the calling thread. */
    assert_int_equal(wb_put(ca, "doc", ida, "{bad", 4, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(cb, "doc", idb, "{bad", 4, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(seen_count(&a, ida), 1);
    assert_int_equal(seen_count(&b, idb), 1);

    /* librdkafka's broker debug lines of a's producer reach a, through
     * core/wb_kafka.c, on a's poll thread. */
    for (int i = 0; i < 100 && !(seen_count(&a, "kafka ") && a.from_other_thread); i++)
        lh_sleep_ms(100);
    assert_true(seen_count(&a, "kafka ") > 0);
    assert_true(a.from_other_thread > 0);
    pthread_mutex_lock(&a.mu);
    for (int i = 0; i < a.n && !name[0]; i++)
        if ((p = strstr(a.lines[i], ": kafka ")))
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 8, " "), p + 8);
    pthread_mutex_unlock(&a.mu);
    assert_true(name[0]); /* librdkafka's instance name, e.g. wbcache-producer#producer-2 */

    /* Per-handle levels: b now takes debug lines too, a drops its own. */
    assert_int_equal(wb_client_set_log_level(cb, WB_LOG_DEBUG), WB_OK);
    assert_int_equal(wb_client_set_log_level(cb, (wb_log_level_t)7), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_client_set_log_level(NULL, WB_LOG_DEBUG), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_put(cb, "nosuch", idb, "x", 1, WB_ACK_CACHE, &v),
                     WB_ERR_UNKNOWN_ENTITY); /* logged at debug */
    assert_int_equal(seen_count(&b, "unknown entity \"nosuch\""), 1);
    assert_int_equal(wb_client_set_log_level(ca, WB_LOG_ERROR), WB_OK);
    assert_int_equal(wb_put(ca, "doc", ida, "{bad", 4, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(seen_count(&a, ida), 1);

    wb_client_close(ca);
    assert_int_equal(wb_put(cb, "doc", idb, "[1,]", 4, WB_ACK_CACHE, &v), WB_ERR_INVALID_ARG);
    assert_int_equal(seen_count(&b, idb), 2);
    wb_client_close(cb);

    /* Nothing crossed over. */
    assert_int_equal(seen_count(&a, idb), 0);
    assert_int_equal(seen_count(&a, "nosuch"), 0);
    assert_int_equal(seen_count(&b, ida), 0);
    assert_int_equal(seen_count(&b, name), 0);
    assert_int_equal(b.from_other_thread, 0);
}

/* The Redis client id of the idle pooled connection of client to the
 * master of key. */
static long long pooled_connection_id(wb_client_t *client, const char *key)
{
    char errstr[256];
    wb_rc_t *rc = NULL;
    redisReply *r;
    long long id = -1;
    int reused = 0;

    assert_int_equal(wb_rpool_get(client->rpool, &rc, &reused, errstr, sizeof(errstr)), WB_OK);
    assert_true(reused);
    r = redisCommand(wb_rc_node(rc, wb_rc_slot(key, strlen(key)), errstr, sizeof(errstr)),
                     "CLIENT ID");
    if (r && r->type == REDIS_REPLY_INTEGER) id = r->integer;
    if (r) freeReplyObject(r);
    wb_rpool_put(client->rpool, rc);
    return id;
}

/* With SIGPIPE's default action (terminate), a 900 KB put on a pooled
 * connection Redis has closed (CLIENT KILL from another connection): the
 * write fails with EPIPE instead of killing the process, and the call
 * either fails with WB_ERR_REDIS or, as the library retries a stale pooled
 * connection once, succeeds on a fresh one. Without the guard this test
 * dies of SIGPIPE. */
static void sigpipe_cannot_kill_the_application(void **state)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigset_t pipe_only, pending;
    char id[128], kid[32], key[200];
    size_t len = 900000;
    char *big = malloc(len);
    wb_client_t *client;
    wb_err_t err;
    int64_t v = 0;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', len);
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL), 0);

    client = lh_client(&H, NULL);
    lh_id(&H, "sigpipe", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    for (int round = 0; round < 3; round++) {
        char errstr[256];

        assert_int_equal(wb_put(client, "item", id, "small", 5, WB_ACK_CACHE, &v), WB_OK);
        snprintf(kid, sizeof(kid), "%lld", pooled_connection_id(client, key));
        /* from the harness's own connection to that master */
        redisReply *r =
            redisCommand(wb_rc_node(H.redis, wb_rc_slot(key, strlen(key)), errstr, sizeof(errstr)),
                         "CLIENT KILL ID %s", kid);
        assert_non_null(r);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
        err = wb_put(client, "item", id, big, len, WB_ACK_CACHE, &v);
        assert_true(err == WB_OK || err == WB_ERR_REDIS);
    }
    /* Still alive, nothing left pending, the mask as it was; and the
     * client works. */
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    assert_int_equal(wb_put(client, "item", id, big, len, WB_ACK_LOG, &v), WB_OK);
    wb_client_close(client);
    sigaction(SIGPIPE, &old, NULL);
    free(big);
}

/* wb_client_stats writes the counters that fit whole in the caller's
 * size and not one byte more: an older, smaller wb_stats_t gets its
 * prefix, a newer, larger one keeps what the library does not know. */
static void stats_fill_only_the_callers_size(void **state)
{
    struct {
        uint64_t puts, put_errors; /* a caller built when there were two counters */
        uint64_t after;
    } old;
    struct {
        wb_stats_t now;
        uint64_t future; /* a counter of a later version */
    } newer;
    wb_stats_t full;
    char id[128];
    wb_client_t *client = lh_client(&H, NULL);

    (void)state;
    lh_id(&H, "stats", id, sizeof(id));
    assert_int_equal(wb_put(client, "item", id, "v", 1, WB_ACK_LOG, NULL), WB_OK);

    memset(&full, 0, sizeof(full));
    assert_int_equal(wb_client_stats(client, &full, sizeof(full)), sizeof(full));
    assert_int_equal(full.puts, 1);

    memset(&old, 0xab, sizeof(old));
    assert_int_equal(wb_client_stats(client, (wb_stats_t *)&old, 2 * sizeof(uint64_t)),
                     2 * sizeof(uint64_t));
    assert_int_equal(old.puts, 1);
    assert_int_equal(old.put_errors, 0);
    assert_int_equal(old.after, 0xababababababababULL);

    memset(&newer, 0xcd, sizeof(newer));
    assert_int_equal(wb_client_stats(client, &newer.now, sizeof(newer)), sizeof(wb_stats_t));
    assert_int_equal(newer.now.puts, 1);
    assert_int_equal(newer.now.queue_depth, 0);
    assert_int_equal(newer.future, 0xcdcdcdcdcdcdcdcdULL);

    /* A size that ends inside a counter leaves that counter alone. */
    memset(&old, 0xab, sizeof(old));
    assert_int_equal(wb_client_stats(client, (wb_stats_t *)&old, sizeof(uint64_t) + 4),
                     sizeof(uint64_t));
    assert_int_equal(old.puts, 1);
    assert_int_equal(old.put_errors, 0xababababababababULL);
    assert_int_equal(wb_client_stats(client, &full, 0), 0);
    assert_int_equal(wb_client_stats(NULL, &full, sizeof(full)), 0);
    assert_int_equal(wb_client_stats(client, NULL, sizeof(full)), 0);
    wb_client_close(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_clients_each_get_their_own_lines),
        cmocka_unit_test(sigpipe_cannot_kill_the_application),
        cmocka_unit_test(stats_fill_only_the_callers_size),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
