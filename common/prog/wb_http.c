/* wb_http.c — /metrics, /healthz and /readyz on libmicrohttpd's internal thread.
 *
 * We bind the listening socket ourselves and hand it to libmicrohttpd, so a
 * bad address or a port in use is reported with the real errno and the port
 * chosen for ":0" is known before the first request.
 */
#include "wb_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define WB_HTTP_REASON_MAX 256

struct wb_http_s {
    struct MHD_Daemon *mhd;
    wb_metrics_t *reg; /* borrowed */
    int port;
    pthread_mutex_t lock; /* the flags and reasons below */
    int live;
    int ready;
    char live_reason[WB_HTTP_REASON_MAX];
    char ready_reason[WB_HTTP_REASON_MAX];
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

wb_err_t wb_http_start(const char *listen_addr, wb_metrics_t *reg, wb_http_t **out, char *errstr,
                       size_t errstr_size)
{
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
    pthread_mutex_init(&h->lock, NULL);
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

    /* Connection limit and idle timeout keep a stuck or hostile client from
     * starving the probes. No MHD_USE_ERROR_LOG: a library never prints. */
    h->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, h,
                              MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned int)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                              MHD_OPTION_END);
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
    MHD_stop_daemon(h->mhd); /* joins its thread and closes the socket */
    pthread_mutex_destroy(&h->lock);
    free(h);
}
