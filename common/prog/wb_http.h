/* wb_http.h — the small HTTP endpoint each daemon mounts: /metrics, /healthz, /readyz. */
#ifndef WB_HTTP_H
#define WB_HTTP_H

#include <stddef.h>

#include "wb_metrics.h"
#include "wbcache.h"

typedef struct wb_http_s wb_http_t;

/* Parses "host:port" strictly: host is an IPv4 address, a host name, or an
 * IPv6 address in brackets ("[::1]:9100"); port is 0..65535 in decimal with
 * nothing after it; an empty host, an unbracketed IPv6 address, spaces or a
 * missing port are errors. Copies host (without brackets) into
 * host[host_size] and sets *port. Returns WB_OK or WB_ERR_INVALID_ARG with the
 * reason in errstr. Does not resolve the name, so config validation may use it. */
wb_err_t wb_http_listen_parse(const char *listen_addr, char *host, size_t host_size, int *port,
                              char *errstr, size_t errstr_size);

/* What one server accepts. A client address holds at most
 * per_ip_connections at a time (more are closed at once), all clients at
 * most max_connections (more wait in the listen backlog); a connection
 * silent for idle_timeout_s is closed, and so is one whose request (from the
 * connection, or from the end of the previous request on a kept-alive
 * connection) has not been answered within request_timeout_ms, however
 * slowly it trickles in. */
typedef struct wb_http_limits_s {
    int max_connections;
    int per_ip_connections;
    int idle_timeout_s;
    int request_timeout_ms;
} wb_http_limits_t;

/* The daemons' limits: 128 connections, 8 per client address, 5 s idle,
 * 10 s per request. */
extern const wb_http_limits_t wb_http_default_limits;

/* Binds a listening socket to exactly the given "host:port" (port 0 picks a
 * free port, see wb_http_port) and serves, on one internal libmicrohttpd
 * thread:
 *   GET /metrics  200 text/plain; version=0.0.4 — wb_metrics_render(reg), which
 *                 runs the registry's collect hook on that thread (404 when
 *                 reg is NULL, 500 when out of memory);
 *   GET /healthz  200 "ok\n" while live, else 503 "not live: <reason>\n";
 *   GET /readyz   200 "ready\n" while ready, else 503 "not ready: <reason>\n";
 *   other paths 404; a method other than GET or HEAD on those paths 405.
 * Requests are handled one at a time on that thread, so a slow collect hook
 * delays probes. Connections are bounded by wb_http_default_limits. The server starts live and not
 * ready (reason "starting"). An IPv6 host is bound IPv6-only ("[::]" does not take IPv4
 * connections). reg is borrowed: it must outlive the server. On success *out owns the server (free
 * with wb_http_stop). Returns WB_OK, WB_ERR_INVALID_ARG (bad or unresolvable listen string),
 * WB_ERR_IO (socket/bind/listen failed, e.g. port in use; the reason in errstr) or WB_ERR_NOMEM;
 * *out is NULL on error. */
wb_err_t wb_http_start(const char *listen_addr, wb_metrics_t *reg, wb_http_t **out, char *errstr,
                       size_t errstr_size);

/* wb_http_start with these limits (NULL: wb_http_default_limits; copied).
 * A limit below 1 is WB_ERR_INVALID_ARG. */
wb_err_t wb_http_start_limits(const char *listen_addr, wb_metrics_t *reg,
                              const wb_http_limits_t *limits, wb_http_t **out, char *errstr,
                              size_t errstr_size);

/* The port actually bound (the chosen one when started with port 0). */
int wb_http_port(const wb_http_t *h);

/* Set what /readyz and /healthz answer. reason (copied, truncated to 255
 * bytes; NULL means none) is shown only while the flag is 0, to anyone who
 * can reach the port: pass a short fixed text ("postgres unavailable"),
 * never an error message, which names hosts and users. Thread-safe:
 * callable from any thread, e.g. the flusher's loop on a PostgreSQL outage. */
void wb_http_set_ready(wb_http_t *h, int ready, const char *reason);
void wb_http_set_live(wb_http_t *h, int live, const char *reason);

/* Stops serving (waits for the request in progress), closes the socket and
 * frees h. NULL is a no-op. Call from the thread that owns h, not from a
 * collect hook. */
void wb_http_stop(wb_http_t *h);

#endif /* WB_HTTP_H */
