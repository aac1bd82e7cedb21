/* test_http.c — /metrics, /healthz, /readyz over a real loopback socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "wb_http.h"
#include "wb_metrics.h"
#include "wb_util.h"

typedef struct http_resp_s {
    int status;
    char raw[65536]; /* status line + headers + body */
    const char *body;
} http_resp_t;

/* A tiny blocking HTTP/1.1 client: one request, Connection: close, read to
 * EOF. Returns the status code, or -1 when the connection failed. */
static int http_do(int port, const char *method, const char *path, const char *body,
                   http_resp_t *resp)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    char req[1024];
    size_t got = 0;
    ssize_t n;
    int fd, len;

    memset(resp, 0, sizeof(*resp));
    resp->status = -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    len = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   method, path, body ? strlen(body) : 0, body ? body : "");
    /* MSG_NOSIGNAL: the server may close before reading a body it refuses. */
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        close(fd);
        return -1;
    }
    while (got < sizeof resp->raw - 1 &&
           (n = recv(fd, resp->raw + got, sizeof resp->raw - 1 - got, 0)) > 0)
        got += (size_t)n;
    close(fd);
    resp->raw[got] = '\0';
    if (sscanf(resp->raw, "HTTP/1.%*d %d", &resp->status) != 1) return -1;
    resp->body = strstr(resp->raw, "\r\n\r\n");
    resp->body = resp->body ? resp->body + 4 : "";
    return resp->status;
}

static int http_get(int port, const char *path, http_resp_t *resp)
{
    return http_do(port, "GET", path, NULL, resp);
}

/* Case-insensitive header lookup; fails the test if absent. */
static void assert_header(const http_resp_t *resp, const char *line)
{
    const char *end = strstr(resp->raw, "\r\n\r\n");
    const char *p;
    size_t n = strlen(line);

    for (p = resp->raw; p && p < end; p = strstr(p, "\r\n")) {
        if (*p == '\r') p += 2;
        if (strncasecmp(p, line, n) == 0 && p[n] == '\r') return;
    }
    fail_msg("header \"%s\" not in response:\n%s", line, resp->raw);
}

static wb_http_t *start_or_fail(const char *listen_addr, wb_metrics_t *reg)
{
    char errstr[256] = "";
    wb_http_t *h = NULL;
    wb_err_t err = wb_http_start(listen_addr, reg, &h, errstr, sizeof errstr);

    if (err != WB_OK) fail_msg("wb_http_start(%s): %s", listen_addr, errstr);
    assert_non_null(h);
    assert_true(wb_http_port(h) > 0);
    return h;
}

static void test_metrics_route(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam = wb_metrics_counter(reg, "wb_events_total", "Events.", NULL);
    wb_http_t *h;
    http_resp_t *resp = malloc(sizeof(*resp));

    wb_counter_add(wb_metrics_counter_with(fam, NULL), 42);
    h = start_or_fail("127.0.0.1:0", reg);

    assert_int_equal(http_get(wb_http_port(h), "/metrics", resp), 200);
    assert_header(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(resp->body, "# HELP wb_events_total Events.\n"
                                    "# TYPE wb_events_total counter\n"
                                    "wb_events_total 42\n");
    /* A query string does not change the route. */
    assert_int_equal(http_get(wb_http_port(h), "/metrics?name[]=x", resp), 200);

    wb_http_stop(h);
    wb_metrics_destroy(reg);
    free(resp);
}

typedef struct scrape_s {
    wb_gauge_t *lag;
    int n;
} scrape_t;

static void refresh_lag(wb_metrics_t *reg, void *opaque)
{
    scrape_t *sc = opaque;

    wb_gauge_set(sc->lag, ++sc->n * 100);
}

static void test_metrics_collect_at_scrape(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    scrape_t sc = {0};
    wb_http_t *h;
    http_resp_t *resp = malloc(sizeof(*resp));

    sc.lag =
        wb_metrics_gauge_with(wb_metrics_gauge(reg, "lag", "Lag.", "partition", NULL), "3", NULL);
    wb_metrics_set_collect_cb(reg, refresh_lag, &sc);
    h = start_or_fail("127.0.0.1:0", reg);
    assert_int_equal(http_get(wb_http_port(h), "/metrics", resp), 200);
    assert_non_null(strstr(resp->body, "lag{partition=\"3\"} 100\n"));
    assert_int_equal(http_get(wb_http_port(h), "/metrics", resp), 200);
    assert_non_null(strstr(resp->body, "lag{partition=\"3\"} 200\n"));
    /* Probes do not trigger collection. */
    assert_int_equal(http_get(wb_http_port(h), "/healthz", resp), 200);
    wb_http_stop(h);
    assert_int_equal(sc.n, 2);
    wb_metrics_destroy(reg);
    free(resp);
}

static void test_health_and_readiness(void **state)
{
    wb_http_t *h = start_or_fail("127.0.0.1:0", NULL);
    int port = wb_http_port(h);
    http_resp_t *resp = malloc(sizeof(*resp));

    /* Live from the start, ready only when the daemon says so. */
    assert_int_equal(http_get(port, "/healthz", resp), 200);
    assert_string_equal(resp->body, "ok\n");
    assert_int_equal(http_get(port, "/readyz", resp), 503);
    assert_string_equal(resp->body, "not ready: starting\n");

    wb_http_set_ready(h, 1, NULL);
    assert_int_equal(http_get(port, "/readyz", resp), 200);
    assert_string_equal(resp->body, "ready\n");
    assert_header(resp, "Cache-Control: no-store");

    wb_http_set_ready(h, 0, "postgres unreachable, retrying");
    assert_int_equal(http_get(port, "/readyz", resp), 503);
    assert_string_equal(resp->body, "not ready: postgres unreachable, retrying\n");
    wb_http_set_ready(h, 0, NULL);
    assert_int_equal(http_get(port, "/readyz", resp), 503);
    assert_string_equal(resp->body, "not ready\n");

    wb_http_set_live(h, 0, "main loop stalled");
    assert_int_equal(http_get(port, "/healthz", resp), 503);
    assert_string_equal(resp->body, "not live: main loop stalled\n");
    wb_http_set_live(h, 1, "ignored while live");
    assert_int_equal(http_get(port, "/healthz", resp), 200);
    assert_string_equal(resp->body, "ok\n");

    /* Without a registry there are no metrics to serve. */
    assert_int_equal(http_get(port, "/metrics", resp), 404);

    wb_http_stop(h);
    free(resp);
}

static void test_unknown_paths_and_methods(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_http_t *h = start_or_fail("127.0.0.1:0", reg);
    int port = wb_http_port(h);
    http_resp_t *resp = malloc(sizeof(*resp));

    assert_int_equal(http_get(port, "/", resp), 404);
    assert_int_equal(http_get(port, "/metricsx", resp), 404);
    assert_int_equal(http_get(port, "/metrics/", resp), 404);
    assert_int_equal(http_get(port, "/healthz/../readyz", resp), 404);
    assert_int_equal(http_do(port, "POST", "/nope", "x", resp), 404);

    assert_int_equal(http_do(port, "POST", "/metrics", "a=b", resp), 405);
    assert_header(resp, "Allow: GET, HEAD");
    assert_int_equal(http_do(port, "PUT", "/readyz", NULL, resp), 405);
    assert_int_equal(http_do(port, "DELETE", "/healthz", NULL, resp), 405);

    /* HEAD answers like GET, without a body. */
    assert_int_equal(http_do(port, "HEAD", "/healthz", NULL, resp), 200);
    assert_string_equal(resp->body, "");

    /* The server still works after all that. */
    assert_int_equal(http_get(port, "/healthz", resp), 200);
    wb_http_stop(h);
    wb_metrics_destroy(reg);
    free(resp);
}

static void test_bad_listen_strings(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        ":9100",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:999999",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:0x50",
        "127.0.0.1:80 ",
        "127.0.0.1: 80",
        " 127.0.0.1:80",
        "::1:9100",
        "[::1]9100",
        "[::1]",
        "[]:9100",
        "[not-v6]:9100",
        "local host:80",
        "http://127.0.0.1:80",
    };
    char errstr[256];
    wb_http_t *h;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = (wb_http_t *)&errstr; /* must be reset to NULL */
        errstr[0] = '\0';
        if (wb_http_start(bad[i], NULL, &h, errstr, sizeof errstr) != WB_ERR_INVALID_ARG)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_null(h);
        /* The message names the offending string. */
        if (!strstr(errstr, bad[i])) fail_msg("errstr for \"%s\": %s", bad[i], errstr);
    }
    h = (wb_http_t *)&errstr;
    assert_int_equal(wb_http_start(NULL, NULL, &h, errstr, sizeof errstr), WB_ERR_INVALID_ARG);
    assert_null(h);
    assert_int_equal(wb_http_start("127.0.0.1:0", NULL, NULL, errstr, sizeof errstr),
                     WB_ERR_INVALID_ARG);
}

static void test_listen_parse(void **state)
{
    char host[64], errstr[128];
    int port = -1;

    assert_int_equal(
        wb_http_listen_parse("0.0.0.0:9102", host, sizeof host, &port, errstr, sizeof errstr),
        WB_OK);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 9102);
    assert_int_equal(
        wb_http_listen_parse("[::1]:65535", host, sizeof host, &port, errstr, sizeof errstr),
        WB_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(wb_http_listen_parse("wb-flusher.default.svc:0", host, sizeof host, &port,
                                          errstr, sizeof errstr),
                     WB_OK);
    assert_string_equal(host, "wb-flusher.default.svc");
    assert_int_equal(port, 0);
    /* A host that does not fit is an error, not a silent truncation. */
    assert_int_equal(wb_http_listen_parse("0.0.0.0:1", host, 4, &port, errstr, sizeof errstr),
                     WB_ERR_INVALID_ARG);
}

static void test_other_hosts(void **state)
{
    char errstr[256] = "";
    wb_http_t *h = NULL;
    http_resp_t *resp = malloc(sizeof(*resp));
    wb_err_t err;

    /* A name is resolved and bound: localhost lands on loopback. */
    h = start_or_fail("localhost:0", NULL);
    wb_http_stop(h);

    /* IPv6 only where the machine has it. */
    h = NULL;
    err = wb_http_start("[::1]:0", NULL, &h, errstr, sizeof errstr);
    if (err == WB_OK) {
        assert_true(wb_http_port(h) > 0);
        /* Bound to ::1 only: the same port on 127.0.0.1 is not this server. */
        assert_int_equal(http_get(wb_http_port(h), "/healthz", resp), -1);
        wb_http_stop(h);
    } else {
        assert_int_equal(err, WB_ERR_IO);
        assert_null(h);
    }
    free(resp);
}

static void test_port_in_use(void **state)
{
    wb_http_t *a = start_or_fail("127.0.0.1:0", NULL);
    wb_http_t *b = (wb_http_t *)&a;
    char listen_addr[64], errstr[256] = "";
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    int fd, one = 1;

    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", wb_http_port(a));
    assert_int_equal(wb_http_start(listen_addr, NULL, &b, errstr, sizeof errstr), WB_ERR_IO);
    assert_null(b);
    if (!strstr(errstr, listen_addr) || !strstr(errstr, strerror(EADDRINUSE)))
        fail_msg("errstr: %s", errstr);
    wb_http_stop(a);

    /* Same with a listener that is not ours, even with SO_REUSEADDR. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    b = NULL;
    assert_int_equal(wb_http_start(listen_addr, NULL, &b, errstr, sizeof errstr), WB_ERR_IO);
    assert_null(b);
    close(fd);
}

static void test_stop_closes_the_port(void **state)
{
    wb_http_t *h = start_or_fail("127.0.0.1:0", NULL);
    int port = wb_http_port(h);
    http_resp_t *resp = malloc(sizeof(*resp));

    assert_int_equal(http_get(port, "/healthz", resp), 200);
    wb_http_stop(h);
    assert_int_equal(http_get(port, "/healthz", resp), -1);
    /* And the port can be taken again at once. */
    {
        char listen_addr[64];
        snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", port);
        h = start_or_fail(listen_addr, NULL);
        assert_int_equal(wb_http_port(h), port);
        wb_http_stop(h);
    }
    wb_http_stop(NULL);
    wb_http_set_ready(NULL, 1, "x");
    wb_http_set_live(NULL, 1, "x");
    assert_int_equal(wb_http_port(NULL), 0);
    free(resp);
}

/* ---- issue 14, item 9: slow clients do not take the probes down ---- */

#define SLOW_MAX 64

/* Connections that send a request line and then one header line every
 * interval_ms, never finishing the request (a "slowloris"), each from a
 * loopback source address of its own choosing. */
typedef struct slow_s {
    int fd[SLOW_MAX];
    int closed[SLOW_MAX]; /* the server closed it */
    int n;
    int interval_ms;
    volatile int stop;
    pthread_mutex_t lock;
} slow_t;

/* Connects from 127.0.0.<src> to the server; -1 on failure. */
static int connect_from(int src, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* Whether the server has closed fd (EOF or reset), without blocking. */
static int peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void *slow_main(void *arg)
{
    slow_t *sl = arg;

    while (!sl->stop) {
        pthread_mutex_lock(&sl->lock);
        for (int i = 0; i < sl->n; i++)
            if (!sl->closed[i] &&
                (peer_closed(sl->fd[i]) || send(sl->fd[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0))
                sl->closed[i] = 1;
        pthread_mutex_unlock(&sl->lock);
        usleep((useconds_t)sl->interval_ms * 1000);
    }
    return NULL;
}

/* Opens n slow connections, per_src of them from each source address from
 * 127.0.0.<first_src> up, and starts trickling. */
static void slow_start(slow_t *sl, pthread_t *th, int port, int n, int first_src, int per_src,
                       int interval_ms)
{
    memset(sl, 0, sizeof(*sl));
    pthread_mutex_init(&sl->lock, NULL);
    sl->interval_ms = interval_ms;
    for (int i = 0; i < n; i++) {
        sl->fd[i] = connect_from(first_src + i / per_src, port);
        assert_true(sl->fd[i] >= 0);
        assert_int_equal(send(sl->fd[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);
        sl->n++;
    }
    assert_int_equal(pthread_create(th, NULL, slow_main, sl), 0);
}

static int slow_open(slow_t *sl)
{
    int open = 0;

    pthread_mutex_lock(&sl->lock);
    for (int i = 0; i < sl->n; i++)
        open += !sl->closed[i];
    pthread_mutex_unlock(&sl->lock);
    return open;
}

static void slow_stop(slow_t *sl, pthread_t th)
{
    sl->stop = 1;
    pthread_join(th, NULL);
    for (int i = 0; i < sl->n; i++)
        close(sl->fd[i]);
    pthread_mutex_destroy(&sl->lock);
}

/* /healthz from 127.0.0.1: the time it took in ms, or fails the test. */
static int64_t probe_ms(int port, http_resp_t *resp)
{
    int64_t t0 = wb_time_mono_ms();

    assert_int_equal(http_get(port, "/healthz", resp), 200);
    assert_string_equal(resp->body, "ok\n");
    return wb_time_mono_ms() - t0;
}

/* The finding: 32 connections from one address trickling a header line
 * every second. With the default limits that address holds 8 of them (the
 * rest are closed at once), and the probes, from another address, are
 * answered at once all along. */
static void test_slow_clients_per_ip_limit(void **state)
{
    wb_http_t *h = start_or_fail("127.0.0.1:0", NULL);
    http_resp_t *resp = malloc(sizeof(*resp));
    slow_t *sl = malloc(sizeof(*sl));
    pthread_t th;
    int64_t worst = 0, t0;

    (void)state;
    slow_start(sl, &th, wb_http_port(h), 32, 2, 32, 1000);
    t0 = wb_time_mono_ms();
    while (wb_time_mono_ms() - t0 < 3000) {
        int64_t ms = probe_ms(wb_http_port(h), resp);

        if (ms > worst) worst = ms;
        usleep(200000);
    }
    print_message("per-IP: %d of 32 slow connections open after 3 s, slowest probe %lld ms\n",
                  slow_open(sl), (long long)worst);
    assert_int_equal(slow_open(sl), wb_http_default_limits.per_ip_connections);
    assert_true(worst < 500);
    slow_stop(sl, th);
    wb_http_stop(h);
    free(sl);
    free(resp);
}

/* Slow clients from many addresses fill every connection slot: the request
 * deadline cuts them, so a probe waiting in the backlog is answered within
 * two deadlines, and no slow connection outlives its deadline for long. */
static void test_slow_clients_request_deadline(void **state)
{
    const wb_http_limits_t lim = {
        .max_connections = 16,
        .per_ip_connections = 4,
        .idle_timeout_s = 30, /* the trickle would defeat it anyway */
        .request_timeout_ms = 1500,
    };
    char errstr[256] = "";
    wb_http_t *h = NULL;
    http_resp_t *resp = malloc(sizeof(*resp));
    slow_t *sl = malloc(sizeof(*sl));
    pthread_t th;
    int64_t ms;

    (void)state;
    assert_int_equal(wb_http_start_limits("127.0.0.1:0", NULL, &lim, &h, errstr, sizeof errstr),
                     WB_OK);
    /* 32 slow connections, 4 from each of 8 addresses: 16 fill the server,
     * 16 wait in the backlog ahead of the probe. */
    slow_start(sl, &th, wb_http_port(h), 32, 10, 4, 300);
    usleep(300000);
    ms = probe_ms(wb_http_port(h), resp);
    print_message("deadline: probe behind 32 slow connections answered in %lld ms\n",
                  (long long)ms);
    assert_true(ms < 2 * lim.request_timeout_ms + 1000);
    /* Every slow connection is cut once its deadline has passed. */
    usleep((useconds_t)(2 * lim.request_timeout_ms + 500) * 1000);
    assert_int_equal(slow_open(sl), 0);
    /* A new client is served at once. */
    assert_true(probe_ms(wb_http_port(h), resp) < 500);
    slow_stop(sl, th);
    wb_http_stop(h);
    free(sl);
    free(resp);
}

static void test_bad_limits(void **state)
{
    wb_http_limits_t lim = wb_http_default_limits;
    char errstr[256] = "";
    wb_http_t *h = (wb_http_t *)1;

    (void)state;
    lim.per_ip_connections = 0;
    assert_int_equal(wb_http_start_limits("127.0.0.1:0", NULL, &lim, &h, errstr, sizeof errstr),
                     WB_ERR_INVALID_ARG);
    assert_null(h);
    assert_string_equal(errstr, "wb_http_start: every limit must be at least 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_route),
        cmocka_unit_test(test_metrics_collect_at_scrape),
        cmocka_unit_test(test_health_and_readiness),
        cmocka_unit_test(test_unknown_paths_and_methods),
        cmocka_unit_test(test_bad_listen_strings),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_other_hosts),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_stop_closes_the_port),
        cmocka_unit_test(test_slow_clients_per_ip_limit),
        cmocka_unit_test(test_slow_clients_request_deadline),
        cmocka_unit_test(test_bad_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
