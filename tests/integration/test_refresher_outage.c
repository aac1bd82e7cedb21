/* test_refresher_outage.c — wb-refresher through PostgreSQL and Redis outages in mid-run.
 *
 * The shared services stay up (other tests use them): PostgreSQL is reached
 * through a TCP proxy inside this test that can cut every connection and
 * refuse new ones, and Redis is a private redis-server child that is killed
 * and restarted on the same port. The refresher must stay alive, report not
 * ready, back off, and finish the pending work once the service is back. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "refresher_harness.h"
#include "wb_entry.h"

/* ------------------------------------------------------------ TCP proxy */

#define PX_MAX 64

typedef struct proxy_s {
    int lfd, port, target_port;
    atomic_int up, stop;
    int fds[PX_MAX][2]; /* client, server; -1 = free */
    pthread_t thread;
} proxy_t;

static void px_close(proxy_t *px, int i)
{
    close(px->fds[i][0]);
    close(px->fds[i][1]);
    px->fds[i][0] = px->fds[i][1] = -1;
}

static void *px_run(void *arg)
{
    proxy_t *px = arg;
    char buf[16384];

    while (!atomic_load(&px->stop)) {
        struct pollfd pfd[1 + 2 * PX_MAX];
        int map[1 + 2 * PX_MAX], n = 0;
        pfd[n] = (struct pollfd){.fd = px->lfd, .events = POLLIN};
        map[n++] = -1;
        if (!atomic_load(&px->up)) {
            for (int i = 0; i < PX_MAX; i++)
                if (px->fds[i][0] >= 0) px_close(px, i);
        }
        for (int i = 0; i < PX_MAX; i++)
            if (px->fds[i][0] >= 0) {
                pfd[n] = (struct pollfd){.fd = px->fds[i][0], .events = POLLIN};
                map[n++] = i * 2;
                pfd[n] = (struct pollfd){.fd = px->fds[i][1], .events = POLLIN};
                map[n++] = i * 2 + 1;
            }
        if (poll(pfd, (nfds_t)n, 50) <= 0) continue;
        if (pfd[0].revents & POLLIN) {
            int c = accept(px->lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < PX_MAX && slot < 0; i++)
                if (px->fds[i][0] < 0) slot = i;
            if (c >= 0 && (!atomic_load(&px->up) || slot < 0)) {
                close(c); /* down: the connection is refused in effect */
            } else if (c >= 0) {
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_port = htons((uint16_t)px->target_port)};
                inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
                int s = socket(AF_INET, SOCK_STREAM, 0);
                if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                    close(c);
                    if (s >= 0) close(s);
                } else {
                    px->fds[slot][0] = c;
                    px->fds[slot][1] = s;
                }
            }
        }
        for (int j = 1; j < n; j++) {
            if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int i = map[j] / 2, side = map[j] % 2;
            if (px->fds[i][0] < 0) continue;
            ssize_t r = read(px->fds[i][side], buf, sizeof(buf));
            if (r <= 0 || write(px->fds[i][1 - side], buf, (size_t)r) != r) px_close(px, i);
        }
    }
    for (int i = 0; i < PX_MAX; i++)
        if (px->fds[i][0] >= 0) px_close(px, i);
    return NULL;
}

static void px_start(proxy_t *px, int target_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int one = 1;

    memset(px, 0, sizeof(*px));
    for (int i = 0; i < PX_MAX; i++)
        px->fds[i][0] = px->fds[i][1] = -1;
    px->target_port = target_port;
    atomic_store(&px->up, 1);
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(px->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(px->lfd, 64) != 0 ||
        getsockname(px->lfd, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("proxy: %s", strerror(errno));
    px->port = ntohs(sa.sin_port);
    pthread_create(&px->thread, NULL, px_run, px);
}

static void px_stop(proxy_t *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->thread, NULL);
    close(px->lfd);
}

/* --------------------------------------------------------------- helpers */

static void start_ready(rh_t *rh, int slot)
{
    rh_start(rh, slot);
    if (rh_wait_http(rh, slot, "/readyz", 200, 20000) != 200) {
        rh_dump_log(rh, slot);
        fail_msg("child %d did not become ready", slot);
    }
}

static void fill(rh_t *rh, const char *id, const char *value, int64_t version, int64_t ttl_ms)
{
    char key[256], errstr[256];
    rh_key(rh, id, key, sizeof(key));
    wb_entry_fill_req_t req = {.key = key,
                               .keylen = strlen(key),
                               .value = value,
                               .len = strlen(value),
                               .version = version,
                               .ttl_ms = ttl_ms};
    if (wb_entry_fill(rh->redis, &req, NULL, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("fill: %s", errstr);
}

static int64_t cached_version(rh_t *rh, const char *id)
{
    char key[256];
    wb_entry_t e;
    memset(&e, 0, sizeof(e));
    rh_key(rh, id, key, sizeof(key));
    if (wb_entry_read(rh->redis, key, strlen(key), &e, NULL, 0) != WB_OK) return -1;
    int64_t v = e.found ? e.version : 0;
    wb_entry_clear(&e);
    return v;
}

static int64_t wait_version(rh_t *rh, const char *id, int64_t want, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms(), v;
    while ((v = cached_version(rh, id)) != want && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return v;
}

/* PostgreSQL goes away while a refresh is pending: not ready, backoff,
 * no crash; when it is back the pending refresh is applied and the
 * refresher is ready again. */
static void postgres_outage_pauses_then_applies_pending_refresh(void **state)
{
    rh_t *rh = *state;
    proxy_t px;
    char dsn[512], body[1024];

    px_start(&px, atoi(rh_env("WB_PG_PORT", "26371")));
    /* libpq takes the last value of a repeated keyword. */
    snprintf(dsn, sizeof(dsn), "%s port=%d",
             rh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache "
                                 "password=wbcache"),
             px.port);
    rh_setup_ex(rh, "pgdown", NULL, NULL, NULL, dsn);
    rh_row(rh, "k", "new", 200);
    fill(rh, "k", "old", 100, 60000);
    rh_start(rh, 0);
    if (rh_wait_http(rh, 0, "/readyz", 200, 20000) != 200) {
        px_stop(&px);
        fail_msg("not ready");
    }

    atomic_store(&px.up, 0);
    rh_request_refresh(rh, "k");
    rh_flush(rh);
    int code = rh_wait_http(rh, 0, "/readyz", 503, 10000);
    rh_http(rh, 0, "/readyz", body, sizeof(body));
    double retries =
        rh_wait_metric(rh, 0, "wb_refresher_retries_total{dependency=\"postgres\"}", 3, 10000);
    int64_t during = cached_version(rh, "k");
    int live = rh_http(rh, 0, "/healthz", body + 512, 512);
    atomic_store(&px.up, 1);
    int64_t after = wait_version(rh, "k", 200, 15000);
    int ready = rh_wait_http(rh, 0, "/readyz", 200, 10000);
    px_stop(&px);

    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "postgres"));
    assert_true(retries >= 3);
    assert_int_equal(during, 100);
    assert_int_equal(live, 200);
    assert_int_equal(after, 200);
    assert_int_equal(ready, 200);
    assert_int_equal(rh_metric(rh, 0, "wb_refresher_reloads_total"), 1);
    assert_int_equal(rh_stop(rh, 0, 15000, NULL), 0);
}

static pid_t redis_start(int port)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        wb_test_die_with_parent(parent);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    if (pid > 0 && rh_nall_children < (int)(sizeof(rh_all_children) / sizeof(rh_all_children[0])))
        rh_all_children[rh_nall_children++] = pid; /* killed at exit whatever happens */
    /* Wait until it answers. */
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        int ok = c && !c->err;
        if (c) redisFree(c);
        if (ok) break;
        usleep(50000);
    }
    return pid;
}

static void redis_kill(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    rh_forget_child(pid);
}

/* Redis dies and comes back empty on the same port: not ready meanwhile;
 * afterwards the pending refresh fills the new Redis and the sweeper,
 * having lost its lease with the data, takes it again and sweeps. */
static void redis_outage_recovers_refresh_and_sweeper(void **state)
{
    rh_t *rh = *state;
    char port[16], body[1024], errstr[256], key[256];
    const char *saved = getenv("WB_REDIS_PORT");
    char saved_copy[32];
    pid_t redis = -1;

    snprintf(saved_copy, sizeof(saved_copy), "%s", saved ? saved : "");
    int rport = rh_free_port();
    snprintf(port, sizeof(port), "%d", rport);
    redis = redis_start(rport);
    setenv("WB_REDIS_PORT", port, 1); /* the harness writes it into the configs */
    rh_setup(rh, "redisdown", "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n");
    if (*saved_copy) setenv("WB_REDIS_PORT", saved_copy, 1);
    rh_row(rh, "k", "from-pg", 300);
    rh_start(rh, 0);
    int ready0 = rh_wait_http(rh, 0, "/readyz", 200, 20000);
    double leader0 = rh_wait_metric(rh, 0, "wb_refresher_sweep_leader", 1, 5000);

    redis_kill(redis);
    redis = -1;
    int code = rh_wait_http(rh, 0, "/readyz", 503, 10000);
    rh_http(rh, 0, "/readyz", body, sizeof(body));
    rh_request_refresh(rh, "k");
    rh_flush(rh);
    double retries =
        rh_wait_metric(rh, 0, "wb_refresher_retries_total{dependency=\"redis\"}", 3, 10000);
    int live = rh_http(rh, 0, "/healthz", body + 512, 512);

    redis = redis_start(rport);
    wb_rc_free(rh->redis);
    rh->redis = NULL;
    if (wb_rc_connect(rh->conf, &rh->redis, errstr, sizeof(errstr)) != WB_OK) {
        redis_kill(redis);
        fail_msg("redis: %s", errstr);
    }
    int64_t filled = wait_version(rh, "k", 300, 15000);
    int ready = rh_wait_http(rh, 0, "/readyz", 200, 10000);
    /* A write stranded in the new Redis is swept as before. */
    rh_key(rh, "s", key, sizeof(key));
    wb_entry_put_req_t req = {
        .key = key, .keylen = strlen(key), .value = "x", .len = 1, .dirty_index = rh->dirty};
    wb_entry_put_res_t res = {0};
    wb_entry_put(rh->redis, &req, &res, errstr, sizeof(errstr));
    int64_t ver = res.version;
    int64_t t0 = wb_time_mono_ms();
    const rh_event_t *ev = NULL;
    while (rh_count_events(rh, key, &ev) == 0 && wb_time_mono_ms() - t0 < 10000)
        rh_read_changes(rh, 100);
    int swept = rh_count_events(rh, key, &ev);
    double leader = rh_metric(rh, 0, "wb_refresher_sweep_leader");
    int rc = rh_stop(rh, 0, 15000, NULL);
    redis_kill(redis);
    /* Teardown's cleanup talks to the private Redis, which is gone now. */
    wb_rc_free(rh->redis);
    rh->redis = NULL;

    assert_int_equal(ready0, 200);
    assert_true(leader0 == 1);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "redis"));
    assert_true(retries >= 3);
    assert_int_equal(live, 200);
    assert_int_equal(filled, 300);
    assert_int_equal(ready, 200);
    assert_int_equal(swept, 1);
    assert_int_equal(ev->version, ver);
    assert_true(leader == 1);
    assert_int_equal(rc, 0);
}

/* Rewrites child slot i's config to use a broker nobody listens on. */
static void dead_broker(rh_t *rh, int i)
{
    char buf[8192], out[8192];
    FILE *f = fopen(rh->cfg[i], "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *b = strstr(buf, "brokers: ");
    const char *eol = b ? strchr(b, '\n') : NULL;
    if (!b || !eol) fail_msg("no brokers line in %s", rh->cfg[i]);
    snprintf(out, sizeof(out), "%.*sbrokers: 127.0.0.1:1%s", (int)(b - buf), buf, eol);
    f = fopen(rh->cfg[i], "w");
    fputs(out, f);
    fclose(f);
}

/* Kafka unreachable: not ready, the stranded entry is not counted as swept
 * and keeps its index score (it was not acknowledged); SIGTERM still exits
 * 0 at once. A replica that reaches Kafka then publishes it. */
static void kafka_unreachable_keeps_entry_for_the_next_pass(void **state)
{
    rh_t *rh = *state;
    char key[256], idx[300], errstr[256], body[1024];
    int64_t ver = 0, elapsed = 0;
    double before = 0, after = 0;
    const rh_event_t *ev = NULL;

    rh_setup(rh, "kafkadown", "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n");
    dead_broker(rh, 1);
    rh_key(rh, "s", key, sizeof(key));
    wb_entry_put_req_t req = {
        .key = key, .keylen = strlen(key), .value = "x", .len = 1, .dirty_index = rh->dirty};
    wb_entry_put_res_t res;
    assert_int_equal(wb_entry_put(rh->redis, &req, &res, errstr, sizeof(errstr)), WB_OK);
    ver = res.version;
    redisReply *r =
        wb_test_redis(rh->redis, "ZSCORE %s %s", rh_dirty_shard(rh, key, idx, sizeof(idx)), key);
    before = r && r->type == REDIS_REPLY_STRING ? strtod(r->str, NULL) : -1;
    freeReplyObject(r);

    rh_start(rh, 1);
    assert_int_equal(rh_wait_http(rh, 1, "/healthz", 200, 10000), 200);
    /* 503 while starting too: wait for the one that names Kafka. */
    int64_t t0 = wb_time_mono_ms();
    int code;
    while (
        ((code = rh_http(rh, 1, "/readyz", body, sizeof(body))) != 503 || !strstr(body, "kafka")) &&
        wb_time_mono_ms() - t0 < 15000)
        usleep(50000);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "kafka"));
    assert_true(rh_wait_metric(rh, 1, "wb_refresher_sweep_failed_total", 1, 15000) >= 1);
    assert_int_equal(rh_metric(rh, 1, "wb_refresher_swept_total"), 0);
    r = wb_test_redis(rh->redis, "ZSCORE %s %s", rh_dirty_shard(rh, key, idx, sizeof(idx)), key);
    after = r && r->type == REDIS_REPLY_STRING ? strtod(r->str, NULL) : -1;
    freeReplyObject(r);
    assert_true(after == before); /* not acknowledged: not moved */
    assert_int_equal(rh_stop(rh, 1, 15000, &elapsed), 0);
    assert_true(elapsed < 3000);

    start_ready(rh, 0);
    t0 = wb_time_mono_ms();
    while (rh_count_events(rh, key, &ev) == 0 && wb_time_mono_ms() - t0 < 10000)
        rh_read_changes(rh, 100);
    assert_int_equal(rh_count_events(rh, key, &ev), 1);
    assert_int_equal(ev->version, ver);
    assert_int_equal(rh_stop(rh, 0, 15000, NULL), 0);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(rh_t));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    rh_t *rh = *state;
    if (rh->conf) rh_teardown(rh);
    free(rh);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(postgres_outage_pauses_then_applies_pending_refresh),
        TEST(redis_outage_recovers_refresh_and_sweeper),
        TEST(kafka_unreachable_keeps_entry_for_the_next_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
