/* wb_http.c — /metrics, /healthz and /readyz on libmicrohttpd's internal thread.
 *
 * We bind the listening socket ourselves and hand it to libmicrohttpd, so a
 * bad address or a port in use is reported with the real errno and the port
 * chosen for ":0" is known before the first request.
 *
 * Slow clients must not take the probes down (a pod whose /healthz stops
 * answering is restarted): libmicrohttpd limits connections per client
 * address and in total, and closes a connection idle for idle_timeout_s; but
 * a client that sends one byte now and then is never idle. So each connection
 * also gets a deadline for its request (from the connection, or from the end
 * of the previous request on a kept-alive one), and a reaper thread shuts down
 * the socket of any connection past it; libmicrohttpd then sees the end of the
 * stream and closes the connection itself, freeing its slot.
 */
#include "wb_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "wb_util.h"

#define WB_HTTP_REASON_MAX 256
#define WB_HTTP_REAP_MS    100 /* how often the reaper looks at the deadlines */

/* One open connection, for the reaper. Created and freed by libmicrohttpd's
 * connection notifications (its thread); read by the reaper under conns_lock.
 * The fd stays open until after the "closed" notification has unlinked it,
 * so the reaper never touches a descriptor libmicrohttpd has closed. */
typedef struct http_conn_s {
    struct http_conn_s *prev, *next;
    int fd;
    int64_t deadline_ms; /* monotonic */
    int cut;             /* shut down by the reaper */
} http_conn_t;

struct wb_http_s {
    struct MHD_Daemon *mhd;
    wb_metrics_t *reg; /* borrowed */
    int port;
    wb_http_limits_t limits;
    pthread_mutex_t lock; /* the flags and reasons below */
    int live;
    int ready;
    char live_reason[WB_HTTP_REASON_MAX];
    char ready_reason[WB_HTTP_REASON_MAX];
    pthread_mutex_t conns_lock; /* conns, reaper_stop */
    pthread_cond_t reaper_cv;
    pthread_t reaper;
    int reaper_started;
    int reaper_stop;
    http_conn_t *conns;
};

const wb_http_limits_t wb_http_default_limits = {
    .max_connections = 128,
    .per_ip_connections = 8,
    .idle_timeout_s = 5,
    .request_timeout_ms = 10000,
};

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (errstr && errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    errno = saved;
}

static int host_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_';
}

wb_err_t wb_http_listen_parse(const char *listen_addr, char *host, size_t host_size, int *port,
                              char *errstr, size_t errstr_size)
{
    const char *h, *hend, *p;
    struct in6_addr a6;
    char tmp[INET6_ADDRSTRLEN + 1];
    size_t hlen, i;
    long val = 0;

    if (!listen_addr || !host || host_size == 0 || !port) {
        set_err(errstr, errstr_size, "listen address: missing argument");
        return WB_ERR_INVALID_ARG;
    }
    if (listen_addr[0] == '[') {
        h = listen_addr + 1;
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':') {
            set_err(errstr, errstr_size, "listen address \"%s\": expected [ipv6]:port",
                    listen_addr);
            return WB_ERR_INVALID_ARG;
        }
        p = hend + 2;
        hlen = (size_t)(hend - h);
        if (hlen == 0 || hlen >= sizeof tmp) goto bad_ipv6;
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1) goto bad_ipv6;
    } else {
        hend = strrchr(listen_addr, ':');
        if (!hend) {
            set_err(errstr, errstr_size, "listen address \"%s\": expected host:port", listen_addr);
            return WB_ERR_INVALID_ARG;
        }
        h = listen_addr;
        p = hend + 1;
        hlen = (size_t)(hend - h);
        if (hlen == 0) {
            set_err(errstr, errstr_size,
                    "listen address \"%s\": empty host (use 0.0.0.0 for all IPv4 addresses)",
                    listen_addr);
            return WB_ERR_INVALID_ARG;
        }
        for (i = 0; i < hlen; i++) {
            if (h[i] == ':') {
                set_err(errstr, errstr_size,
                        "listen address \"%s\": an IPv6 address must be in brackets", listen_addr);
                return WB_ERR_INVALID_ARG;
            }
            if (!host_char_ok(h[i])) {
                set_err(errstr, errstr_size, "listen address \"%s\": invalid character in host",
                        listen_addr);
                return WB_ERR_INVALID_ARG;
            }
        }
    }

    /* Digits only: strtol would accept signs, spaces and "0x". */
    if (*p == '\0' || strlen(p) > 5) goto bad_port;
    for (i = 0; p[i]; i++) {
        if (p[i] < '0' || p[i] > '9') goto bad_port;
        val = val * 10 + (p[i] - '0');
    }
    if (val > 65535) goto bad_port;

    if (hlen >= host_size) {
        set_err(errstr, errstr_size, "listen address \"%s\": host too long", listen_addr);
        return WB_ERR_INVALID_ARG;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)val;
    return WB_OK;

bad_ipv6:
    set_err(errstr, errstr_size, "listen address \"%s\": invalid IPv6 address", listen_addr);
    return WB_ERR_INVALID_ARG;
bad_port:
    set_err(errstr, errstr_size, "listen address \"%s\": port must be a number 0..65535",
            listen_addr);
    return WB_ERR_INVALID_ARG;
}

/* Tries each resolved address until one binds; returns the listening fd or
 * -1 with errstr set from the last failure. */
static int listen_socket(const char *listen_addr, const char *host, int port, wb_err_t *err,
                         char *errstr, size_t errstr_size)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8];
    const char *step = "socket";
    int fd = -1, one = 1, rc, saved = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        set_err(errstr, errstr_size, "listen address \"%s\": cannot resolve \"%s\": %s",
                listen_addr, host, gai_strerror(rc));
        *err = WB_ERR_INVALID_ARG;
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            step = "socket";
            saved = errno;
            continue;
        }
        /* SO_REUSEADDR only lets a restarted daemon reuse a port whose old
         * connections sit in TIME_WAIT; a live listener still fails bind. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) break;
        step = "bind";
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        set_err(errstr, errstr_size, "listen address \"%s\": %s: %s", listen_addr, step,
                strerror(saved));
        *err = WB_ERR_IO;
    }
    freeaddrinfo(res);
    return fd;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, const char *ctype,
                               void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO; /* MHD closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    /* Probes and scrapes must see the state now, never a cached answer. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int status,
                                    const char *text)
{
    return respond(conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
                   MHD_RESPMEM_MUST_COPY);
}

/* /healthz and /readyz: the flag and reason are copied under the lock so the
 * answer is one consistent snapshot. */
static enum MHD_Result respond_state(wb_http_t *h, struct MHD_Connection *conn, int is_ready)
{
    const char *what = is_ready ? "ready" : "live";
    const char *reason;
    char body[WB_HTTP_REASON_MAX + 32];
    int ok;

    pthread_mutex_lock(&h->lock);
    ok = is_ready ? h->ready : h->live;
    reason = is_ready ? h->ready_reason : h->live_reason;
    if (ok)
        snprintf(body, sizeof body, "%s\n", is_ready ? "ready" : "ok");
    else if (reason[0])
        snprintf(body, sizeof body, "not %s: %s\n", what, reason);
    else
        snprintf(body, sizeof body, "not %s\n", what);
    pthread_mutex_unlock(&h->lock);
    return respond_text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

/* Runs on libmicrohttpd's internal polling thread, one request at a time.
 * Every route answers on the first call (headers complete), so a request
 * body, if any, is never read; MHD then closes that connection. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    wb_http_t *h = cls;
    int route, readable;
    char *text = NULL;
    size_t len = 0;
    wb_err_t err;

    if (strcmp(url, "/metrics") == 0)
        route = 0;
    else if (strcmp(url, "/healthz") == 0)
        route = 1;
    else if (strcmp(url, "/readyz") == 0)
        route = 2;
    else
        return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");

    /* HEAD is GET without the body (MHD drops it); RFC 9110 asks for both. */
    readable =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!readable) return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");

    if (route == 1) return respond_state(h, conn, 0);
    if (route == 2) return respond_state(h, conn, 1);

    if (!h->reg) return respond_text(conn, MHD_HTTP_NOT_FOUND, "no metrics registry\n");
    err = wb_metrics_render(h->reg, &text, &len);
    if (err != WB_OK) return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
    return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                   MHD_RESPMEM_MUST_FREE);
}

/* libmicrohttpd's thread: a connection opened or closed. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    wb_http_t *h = cls;
    http_conn_t *c = *socket_context;
    const union MHD_ConnectionInfo *info;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        /* Out of memory: the connection has only the idle timeout. */
        if (!info || !(c = calloc(1, sizeof(*c)))) return;
        c->fd = info->connect_fd;
        c->deadline_ms = wb_time_mono_ms() + h->limits.request_timeout_ms;
        pthread_mutex_lock(&h->conns_lock);
        c->next = h->conns;
        if (h->conns) h->conns->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        pthread_mutex_lock(&h->conns_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            h->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&h->conns_lock);
        free(c);
        *socket_context = NULL;
    }
}

/* libmicrohttpd's thread: a request ended; a kept-alive connection gets a
 * new deadline for its next request. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    wb_http_t *h = cls;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_conn_t *c = info ? info->socket_context : NULL;

    (void)con_cls;
    (void)toe;
    if (!c) return;
    pthread_mutex_lock(&h->conns_lock);
    c->deadline_ms = wb_time_mono_ms() + h->limits.request_timeout_ms;
    pthread_mutex_unlock(&h->conns_lock);
}

/* The reaper thread: every WB_HTTP_REAP_MS, shuts down the sockets of the
 * connections past their deadline (shutdown, not close: the descriptor
 * stays libmicrohttpd's). */
static void *reaper_main(void *arg)
{
    wb_http_t *h = arg;
    struct timespec ts;
    int64_t now;

    pthread_mutex_lock(&h->conns_lock);
    while (!h->reaper_stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WB_HTTP_REAP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->reaper_cv, &h->conns_lock, &ts);
        now = wb_time_mono_ms();
        for (http_conn_t *c = h->conns; c; c = c->next)
            if (!c->cut && now >= c->deadline_ms) {
                (void)shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
            }
    }
    pthread_mutex_unlock(&h->conns_lock);
    return NULL;
}

static void reaper_stop(wb_http_t *h)
{
    if (!h->reaper_started) return;
    pthread_mutex_lock(&h->conns_lock);
    h->reaper_stop = 1;
    pthread_cond_signal(&h->reaper_cv);
    pthread_mutex_unlock(&h->conns_lock);
    pthread_join(h->reaper, NULL);
    h->reaper_started = 0;
}

wb_err_t wb_http_start(const char *listen_addr, wb_metrics_t *reg, wb_http_t **out, char *errstr,
                       size_t errstr_size)
{
    return wb_http_start_limits(listen_addr, reg, NULL, out, errstr, errstr_size);
}

wb_err_t wb_http_start_limits(const char *listen_addr, wb_metrics_t *reg,
                              const wb_http_limits_t *limits, wb_http_t **out, char *errstr,
                              size_t errstr_size)
{
    pthread_condattr_t cattr;
    char host[256];
    int port = 0, fd = -1;
    wb_err_t err;
    wb_http_t *h = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;

    if (errstr && errstr_size > 0) errstr[0] = '\0';
    if (!out) {
        set_err(errstr, errstr_size, "wb_http_start: out is NULL");
        return WB_ERR_INVALID_ARG;
    }
    *out = NULL;
    err = wb_http_listen_parse(listen_addr, host, sizeof host, &port, errstr, errstr_size);
    if (err != WB_OK) return err;

    h = calloc(1, sizeof(*h));
    if (!h) {
        set_err(errstr, errstr_size, "out of memory");
        return WB_ERR_NOMEM;
    }
    h->limits = limits ? *limits : wb_http_default_limits;
    if (h->limits.max_connections < 1 || h->limits.per_ip_connections < 1 ||
        h->limits.idle_timeout_s < 1 || h->limits.request_timeout_ms < 1) {
        free(h);
        set_err(errstr, errstr_size, "wb_http_start: every limit must be at least 1");
        return WB_ERR_INVALID_ARG;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->conns_lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->reaper_cv, &cattr);
    pthread_condattr_destroy(&cattr);
    h->reg = reg;
    h->live = 1;
    snprintf(h->ready_reason, sizeof h->ready_reason, "starting");

    fd = listen_socket(listen_addr, host, port, &err, errstr, errstr_size);
    if (fd < 0) goto fail;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        set_err(errstr, errstr_size, "listen address \"%s\": getsockname: %s", listen_addr,
                strerror(errno));
        err = WB_ERR_IO;
        goto fail;
    }
    h->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
        set_err(errstr, errstr_size, "listen address \"%s\": cannot start a thread: %s",
                listen_addr, strerror(errno));
        err = WB_ERR_IO;
        goto fail;
    }
    h->reaper_started = 1;

    /* The limits keep stuck or hostile clients from starving the probes
     * (see the top of this file). No MHD_USE_ERROR_LOG: a library never
     * prints. */
    h->mhd = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)h->limits.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)h->limits.per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)h->limits.idle_timeout_s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        h, MHD_OPTION_END);
    if (!h->mhd) {
        /* libmicrohttpd 0.9.75 closes the socket on most but not all of its
         * failure paths; leaking one fd on this rare path is safer than a
         * double close that could hit another thread's descriptor. */
        fd = -1;
        set_err(errstr, errstr_size, "listen address \"%s\": cannot start HTTP server",
                listen_addr);
        err = WB_ERR_IO;
        goto fail;
    }
    *out = h;
    return WB_OK;

fail:
    if (fd >= 0) close(fd);
    reaper_stop(h);
    pthread_cond_destroy(&h->reaper_cv);
    pthread_mutex_destroy(&h->conns_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return err;
}

int wb_http_port(const wb_http_t *h)
{
    return h ? h->port : 0;
}

static void set_state(wb_http_t *h, int *flag, char *reason_buf, int on, const char *reason)
{
    pthread_mutex_lock(&h->lock);
    *flag = on ? 1 : 0;
    snprintf(reason_buf, WB_HTTP_REASON_MAX, "%s", reason ? reason : "");
    pthread_mutex_unlock(&h->lock);
}

void wb_http_set_ready(wb_http_t *h, int ready, const char *reason)
{
    if (h) set_state(h, &h->ready, h->ready_reason, ready, reason);
}

void wb_http_set_live(wb_http_t *h, int live, const char *reason)
{
    if (h) set_state(h, &h->live, h->live_reason, live, reason);
}

void wb_http_stop(wb_http_t *h)
{
    if (!h) return;
    reaper_stop(h);
    MHD_stop_daemon(h->mhd); /* joins its thread, closes the sockets, frees h->conns */
    pthread_cond_destroy(&h->reaper_cv);
    pthread_mutex_destroy(&h->conns_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
