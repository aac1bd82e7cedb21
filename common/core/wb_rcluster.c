/* wb_rcluster.c — one Redis deployment, standalone or Redis Cluster: routing, slot map,
 * per-node connections, redirects, pipelines split per node. */
#include "wb_rcluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wb_redis.h"
#include "wb_util.h"

#define NO_NODE            0xFFFF
#define DEFAULT_TIMEOUT_MS 2000

typedef struct node_s {
    char host[256];
    int port;
    redisContext *ctx; /* NULL until first use, or after wb_rc_reset */
    int touched;       /* commands were sent to it in the current round */
    int answered;      /* it answered a command since wb_rc_wait_begin */
} node_t;

struct wb_rc_s {
    const wb_config_t *conf;
    int cluster;
    int map_stale; /* re-read CLUSTER SLOTS before the next send */
    wb_rc_counts_t counts;
    node_t *nodes;
    size_t nnodes, cap;
    uint16_t map[WB_RC_SLOTS]; /* slot -> index into nodes, NO_NODE: no master known */
};

/* ------------------------------------------------------------ routing */

uint16_t wb_rc_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

int wb_rc_slot(const char *key, size_t keylen)
{
    const char *open = memchr(key, '{', keylen), *close;

    if (open) {
        size_t rest = keylen - (size_t)(open - key) - 1;
        close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return wb_rc_crc16(open + 1, (size_t)(close - open - 1)) & (WB_RC_SLOTS - 1);
    }
    return wb_rc_crc16(key, keylen) & (WB_RC_SLOTS - 1);
}

wb_err_t wb_rc_parse_slots(const redisReply *r, const char *default_host, wb_rc_range_t **out,
                           size_t *n, char *errstr, size_t errstr_size)
{
    wb_rc_range_t *v;

    *out = NULL;
    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) goto bad;
    if (!(v = calloc(r->elements ? r->elements : 1, sizeof(*v)))) {
        wb_set_err(errstr, errstr_size, "redis CLUSTER SLOTS: out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad_free;
        m = e->element[2];
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad_free;
        v[i].lo = (int)e->element[0]->integer;
        v[i].hi = (int)e->element[1]->integer;
        if (v[i].lo < 0 || v[i].hi >= WB_RC_SLOTS || v[i].lo > v[i].hi) goto bad_free;
        snprintf(v[i].host, sizeof(v[i].host), "%.*s", (int)m->element[0]->len, m->element[0]->str);
        if (!v[i].host[0]) snprintf(v[i].host, sizeof(v[i].host), "%s", default_host);
        v[i].port = (int)m->element[1]->integer;
    }
    *out = v;
    *n = r->elements;
    return WB_OK;

bad_free:
    free(v);
bad:
    wb_set_err(errstr, errstr_size, "redis CLUSTER SLOTS: unexpected reply");
    return WB_ERR_REDIS;
}

/* -------------------------------------------------------------- nodes */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Index of host:port among rc's nodes, added if new; NO_NODE when out of
 * memory. */
static int node_index(wb_rc_t *rc, const char *host, int port)
{
    for (size_t i = 0; i < rc->nnodes; i++)
        if (rc->nodes[i].port == port && strcmp(rc->nodes[i].host, host) == 0) return (int)i;
    if (rc->nnodes == NO_NODE) return NO_NODE;
    if (rc->nnodes == rc->cap) {
        size_t cap = rc->cap ? rc->cap * 2 : 4;
        node_t *n = realloc(rc->nodes, cap * sizeof(*n));
        if (!n) return NO_NODE;
        rc->nodes = n;
        rc->cap = cap;
    }
    memset(&rc->nodes[rc->nnodes], 0, sizeof(node_t));
    snprintf(rc->nodes[rc->nnodes].host, sizeof(rc->nodes[0].host), "%s", host);
    rc->nodes[rc->nnodes].port = port;
    return (int)rc->nnodes++;
}

/* Node k's connection, connected if needed; NULL with errstr. */
static redisContext *node_ctx(wb_rc_t *rc, int k, char *errstr, size_t errstr_size)
{
    node_t *nd = &rc->nodes[k];

    if (!nd->ctx &&
        wb_redis_connect_node(rc->conf, nd->host, nd->port, &nd->ctx, errstr, errstr_size) != WB_OK)
        return NULL;
    return nd->ctx;
}

/* Reads CLUSTER SLOTS from node k into rc->map. */
static wb_err_t map_from(wb_rc_t *rc, int k, char *errstr, size_t errstr_size)
{
    redisContext *c = node_ctx(rc, k, errstr, errstr_size);
    wb_rc_range_t *v = NULL;
    size_t n = 0;
    redisReply *r;
    wb_err_t err;
    char host[256];

    if (!c) return WB_ERR_REDIS;
    snprintf(host, sizeof(host), "%s", rc->nodes[k].host);
    if (!(r = redisCommand(c, "CLUSTER SLOTS")))
        return wb_redis_ctx_error(c, "redis CLUSTER SLOTS", errstr, errstr_size);
    err = wb_rc_parse_slots(r, host, &v, &n, errstr, errstr_size);
    freeReplyObject(r);
    if (err != WB_OK) return err;
    for (int s = 0; s < WB_RC_SLOTS; s++)
        rc->map[s] = NO_NODE;
    for (size_t i = 0; i < n; i++) {
        int idx = node_index(rc, v[i].host, v[i].port);
        for (int s = v[i].lo; s <= v[i].hi; s++)
            rc->map[s] = (uint16_t)idx;
    }
    free(v);
    rc->map_stale = 0;
    return WB_OK;
}

/* Re-reads the slot map from the first node that answers. */
static wb_err_t map_refresh(wb_rc_t *rc, char *errstr, size_t errstr_size)
{
    wb_err_t err = WB_ERR_REDIS;

    if (!rc->cluster) {
        rc->map_stale = 0;
        return WB_OK;
    }
    for (size_t k = 0; k < rc->nnodes; k++) {
        if ((err = map_from(rc, (int)k, errstr, errstr_size)) == WB_OK) return WB_OK;
        if (rc->nodes[k].ctx && rc->nodes[k].ctx->err) {
            redisFree(rc->nodes[k].ctx);
            rc->nodes[k].ctx = NULL;
        }
    }
    return err;
}

/* Connects node 0: conf->redis.host:port, else the first of
 * redis.seed_nodes that answers (it then becomes node 0). The error is the
 * first node's, with how many seeds failed too. */
static wb_err_t connect_seed(wb_rc_t *rc, char *errstr, size_t errstr_size)
{
    const char *p = rc->conf->redis.seed_nodes;
    wb_err_t err = wb_redis_connect(rc->conf, &rc->nodes[0].ctx, errstr, errstr_size);
    char first[512], host[256];
    int tried = 0;

    if (err == WB_OK || err == WB_ERR_INVALID_ARG || !p || !*p) return err;
    snprintf(first, sizeof(first), "%s", errstr ? errstr : "");
    while (*p) {
        const char *end = strchr(p, ','), *colon;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        long port;

        while (len > 0 && *p == ' ')
            p++, len--;
        colon = memrchr(p, ':', len);
        port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (!colon || colon == p || (size_t)(colon - p) >= sizeof(host) || port <= 0 ||
            port > 65535) {
            wb_set_err(errstr, errstr_size, "redis.seed_nodes: \"%.*s\" is not host:port", (int)len,
                       p);
            return WB_ERR_INVALID_ARG;
        }
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = '\0';
        tried++;
        if (wb_redis_connect_node(rc->conf, host, (int)port, &rc->nodes[0].ctx, errstr,
                                  errstr_size) == WB_OK) {
            snprintf(rc->nodes[0].host, sizeof(rc->nodes[0].host), "%s", host);
            rc->nodes[0].port = (int)port;
            return WB_OK;
        }
        p = end ? end + 1 : p + len;
    }
    wb_set_err(errstr, errstr_size, "%s (and the %d redis.seed_nodes)", first, tried);
    return err;
}

wb_err_t wb_rc_connect(const wb_config_t *conf, wb_rc_t **out, char *errstr, size_t errstr_size)
{
    wb_rc_t *rc;
    redisReply *r;
    wb_err_t err;

    *out = NULL;
    if (!conf || !conf->redis.host || conf->redis.port <= 0) {
        wb_set_err(errstr, errstr_size, "redis connect: host and port must be set");
        return WB_ERR_INVALID_ARG;
    }
    if (!(rc = calloc(1, sizeof(*rc)))) {
        wb_set_err(errstr, errstr_size, "redis connect: out of memory");
        return WB_ERR_NOMEM;
    }
    rc->conf = conf;
    if (node_index(rc, conf->redis.host, conf->redis.port) != 0) {
        err = WB_ERR_NOMEM;
        wb_set_err(errstr, errstr_size, "redis connect: out of memory");
        goto fail;
    }
    if ((err = connect_seed(rc, errstr, errstr_size)) != WB_OK) goto fail;
    /* CLUSTER SLOTS tells the mode and gives the map: a standalone server
     * answers "ERR This instance has cluster support disabled" (a managed
     * one that renames or denies CLUSTER answers some other error: also
     * standalone). */
    if (!(r = redisCommand(rc->nodes[0].ctx, "CLUSTER SLOTS"))) {
        err = wb_redis_ctx_error(rc->nodes[0].ctx, "redis CLUSTER SLOTS", errstr, errstr_size);
        goto fail;
    }
    rc->cluster = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    if (rc->cluster) {
        if ((err = map_from(rc, 0, errstr, errstr_size)) != WB_OK) goto fail;
    } else {
        memset(rc->map, 0, sizeof(rc->map)); /* node 0 owns every slot */
    }
    *out = rc;
    return WB_OK;

fail:
    wb_rc_free(rc);
    return err;
}

void wb_rc_free(wb_rc_t *rc)
{
    if (!rc) return;
    for (size_t k = 0; k < rc->nnodes; k++)
        if (rc->nodes[k].ctx) redisFree(rc->nodes[k].ctx);
    free(rc->nodes);
    free(rc);
}

int wb_rc_is_cluster(const wb_rc_t *rc)
{
    return rc && rc->cluster;
}

const redisContext *wb_rc_failed(const wb_rc_t *rc)
{
    if (!rc) return NULL;
    for (size_t k = 0; k < rc->nnodes; k++)
        if (rc->nodes[k].ctx && rc->nodes[k].ctx->err) return rc->nodes[k].ctx;
    return NULL;
}

void wb_rc_reset(wb_rc_t *rc)
{
    if (!rc) return;
    for (size_t k = 0; k < rc->nnodes; k++)
        if (rc->nodes[k].ctx && rc->nodes[k].ctx->err) {
            redisFree(rc->nodes[k].ctx);
            rc->nodes[k].ctx = NULL;
        }
    rc->map_stale = rc->cluster;
}

/* The master of slot (< 0: the first node that owns any), or NO_NODE. */
static int slot_node(const wb_rc_t *rc, int slot)
{
    if (slot >= 0) return rc->map[slot % WB_RC_SLOTS];
    for (int s = 0; s < WB_RC_SLOTS; s++)
        if (rc->map[s] != NO_NODE) return rc->map[s];
    return NO_NODE;
}

redisContext *wb_rc_node(wb_rc_t *rc, int slot, char *errstr, size_t errstr_size)
{
    int k;

    if (rc->map_stale) map_refresh(rc, errstr, errstr_size);
    if ((k = slot_node(rc, slot)) == NO_NODE) {
        wb_set_err(errstr, errstr_size, "redis cluster: slot %d has no master", slot);
        return NULL;
    }
    return node_ctx(rc, k, errstr, errstr_size);
}

/* 1 if node k is the master of a slot. */
static int owns_slot(const wb_rc_t *rc, size_t k)
{
    for (int s = 0; s < WB_RC_SLOTS; s++)
        if (rc->map[s] == k) return 1;
    return 0;
}

redisContext *wb_rc_master(wb_rc_t *rc, size_t i, char *errstr, size_t errstr_size)
{
    if (rc->map_stale) map_refresh(rc, errstr, errstr_size);
    for (size_t k = 0; k < rc->nnodes; k++)
        if (owns_slot(rc, k) && i-- == 0) return node_ctx(rc, (int)k, errstr, errstr_size);
    return NULL;
}

/* ----------------------------------------------------------- pipeline */

/* What became of one command of a pipeline. */
typedef struct cmdstate_s {
    int node; /* where it goes next */
    int sent; /* where it went in this round (-1: nowhere) */
    int ask;  /* send ASKING first */
    int done;
} cmdstate_t;

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": slot and node. 0, or -1. */
static int parse_redirect(const char *s, int *slot, char *host, size_t hostsize, int *port)
{
    const char *sp = strchr(s, ' '), *colon;
    char *end;
    long v;

    if (!sp) return -1;
    v = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || v < 0 || v >= WB_RC_SLOTS) return -1;
    *slot = (int)v;
    colon = strrchr(end + 1, ':');
    if (!colon || (size_t)(colon - end - 1) >= hostsize) return -1;
    memcpy(host, end + 1, (size_t)(colon - end - 1));
    host[colon - end - 1] = '\0';
    *port = (int)strtol(colon + 1, NULL, 10);
    return *port > 0 ? 0 : -1;
}

static int is_err(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* An error reply made here (hiredis frees its str with free()). */
static redisReply *make_error(const char *fmt, int slot)
{
    redisReply *r = calloc(1, sizeof(*r));
    char buf[160];

    if (!r) return NULL;
    snprintf(buf, sizeof(buf), fmt, slot);
    r->type = REDIS_REPLY_ERROR;
    if (!(r->str = strdup(buf))) {
        free(r);
        return NULL;
    }
    r->len = strlen(buf);
    return r;
}

/* Sends the pending commands of one round: appends each node's commands in
 * call order, writes every node's buffer, then reads each node's replies.
 * Decides the fate of each reply (kept, or re-routed). Returns WB_OK or an
 * I/O error (no reply kept for the failed round is leaked). *retry = 1 if a
 * command wants a pause before its next try. */
static wb_err_t round_trip(wb_rc_t *rc, const wb_rc_cmd_t *cmds, size_t n, cmdstate_t *st,
                           redisReply **replies, int *retry, int *unreachable, char *errstr,
                           size_t errstr_size)
{
    static const char *asking[1] = {"ASKING"};
    static const size_t askinglen[1] = {6};
    wb_err_t err = WB_OK;
    char what[320];

    for (size_t i = 0; i < n; i++)
        st[i].sent = -1;
    for (size_t k = 0; k < rc->nnodes; k++) {
        redisContext *c = NULL;
        int done = 0;

        rc->nodes[k].touched = 0;

        for (size_t i = 0; i < n; i++) {
            if (st[i].done || st[i].node != (int)k) continue;
            if (!c && !(c = node_ctx(rc, (int)k, errstr, errstr_size))) {
                if (!rc->cluster) {
                    err = WB_ERR_REDIS;
                    goto fail;
                }
                /* A master that cannot be reached (down, failing over):
                 * nothing was sent to it; the map is read again and its
                 * commands wait for the next round (errstr says why). */
                *unreachable = *retry = rc->map_stale = 1;
                break;
            }
            rc->nodes[k].touched = 1;
            st[i].sent = (int)k;
            if ((st[i].ask && redisAppendCommandArgv(c, 1, asking, askinglen) != REDIS_OK) ||
                redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].argvlen) !=
                    REDIS_OK) {
                wb_set_err(errstr, errstr_size, "redis pipeline: out of memory");
                err = WB_ERR_NOMEM;
                goto fail;
            }
        }
        /* Write now, so every node works while the first is read. */
        while (c && !done)
            if (redisBufferWrite(c, &done) != REDIS_OK) goto io_error;
    }
    for (size_t k = 0; k < rc->nnodes; k++) {
        redisContext *c = rc->nodes[k].ctx;

        for (size_t i = 0; i < n; i++) {
            redisReply *r = NULL;
            char host[256];
            int slot, port;

            if (st[i].sent != (int)k) continue; /* a redirect may have re-routed it */
            if (st[i].ask) {
                if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) goto io_error;
                freeReplyObject(r);
                r = NULL;
                st[i].ask = 0;
            }
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) goto io_error;
            if ((is_err(r, "MOVED ") || is_err(r, "ASK ")) &&
                parse_redirect(r->str, &slot, host, sizeof(host), &port) == 0) {
                int to = node_index(rc, host, port);
                if (r->str[0] == 'M')
                    rc->counts.moved++;
                else
                    rc->counts.ask++;
                if (to != NO_NODE) {
                    if (r->str[0] == 'M') {
                        rc->map[slot] = (uint16_t)to;
                        rc->map_stale = 1;
                    } else {
                        st[i].ask = 1;
                    }
                    st[i].node = to;
                }
            } else if (is_err(r, "TRYAGAIN") || is_err(r, "CLUSTERDOWN")) {
                *retry = 1;
                rc->map_stale = rc->cluster;
            } else {
                st[i].done = 1;
                rc->nodes[k].answered = 1;
            }
            /* The last answer is kept in case no later try gets one; a
             * redirect does not replace an error it led to (TRYAGAIN). */
            if (!st[i].done && replies[i] && (is_err(r, "MOVED ") || is_err(r, "ASK "))) {
                freeReplyObject(r);
                continue;
            }
            if (replies[i]) freeReplyObject(replies[i]);
            replies[i] = r;
        }
    }
    return err;

io_error:
    err = WB_ERR_REDIS;
    for (size_t k = 0; k < rc->nnodes; k++)
        if (rc->nodes[k].ctx && rc->nodes[k].ctx->err) {
            snprintf(what, sizeof(what), "redis %s:%d", rc->nodes[k].host, rc->nodes[k].port);
            err = wb_redis_ctx_error(rc->nodes[k].ctx, what, errstr, errstr_size);
            break;
        }
fail:
    /* A node that still owes replies of this round is out of step: closed
     * (it reconnects on next use). A failed one is kept for wb_rc_failed. */
    for (size_t k = 0; k < rc->nnodes; k++)
        if (rc->nodes[k].touched && rc->nodes[k].ctx && !rc->nodes[k].ctx->err) {
            redisFree(rc->nodes[k].ctx);
            rc->nodes[k].ctx = NULL;
        }
    rc->map_stale = rc->cluster;
    return err;
}

wb_err_t wb_rc_pipeline(wb_rc_t *rc, const wb_rc_cmd_t *cmds, size_t n, redisReply **replies,
                        char *errstr, size_t errstr_size)
{
    cmdstate_t *st;
    int64_t deadline;
    int timeout_ms;
    wb_err_t err = WB_OK;

    if (!rc || (n > 0 && (!cmds || !replies))) {
        wb_set_err(errstr, errstr_size, "redis pipeline: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (n == 0) return WB_OK;
    if (!(st = calloc(n, sizeof(*st)))) {
        wb_set_err(errstr, errstr_size, "redis pipeline: out of memory");
        return WB_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    timeout_ms = rc->conf->redis.timeout_ms > 0 ? rc->conf->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    deadline = now_ms() + timeout_ms;
    if (rc->map_stale) map_refresh(rc, errstr, errstr_size);
    for (size_t i = 0; i < n; i++)
        st[i].node = slot_node(rc, cmds[i].slot);
    for (int tries = 1;; tries++) {
        int retry = 0, pending = 0, unreachable = 0;

        for (size_t i = 0; i < n; i++)
            if (!st[i].done && st[i].node == NO_NODE) st[i].node = slot_node(rc, cmds[i].slot);
        err = round_trip(rc, cmds, n, st, replies, &retry, &unreachable, errstr, errstr_size);
        if (err != WB_OK) break;
        for (size_t i = 0; i < n; i++) {
            pending += !st[i].done;
            /* No master known for its slot: wait, then read the map again. */
            if (!st[i].done && st[i].node == NO_NODE) retry = 1;
        }
        if (!pending) break;
        if (tries >= WB_RC_MAX_TRIES || now_ms() >= deadline) {
            /* Out of tries: a master still unreachable fails the call as an
             * I/O error would (errstr names it); otherwise the last answer
             * stands (an error reply). */
            if (unreachable) {
                err = WB_ERR_REDIS;
                break;
            }
            for (size_t i = 0; i < n; i++)
                if (!st[i].done && !replies[i] &&
                    !(replies[i] = make_error("CLUSTERDOWN wb: slot %d has no reachable master",
                                              cmds[i].slot))) {
                    wb_set_err(errstr, errstr_size, "redis pipeline: out of memory");
                    err = WB_ERR_NOMEM;
                }
            break;
        }
        if (retry || rc->map_stale) {
            int64_t left = deadline - now_ms(), wait = 20 * tries;
            if (retry) {
                rc->counts.retries++;
                pause_ms(wait < left ? wait : left);
            }
            map_refresh(rc, errstr, errstr_size);
            for (size_t i = 0; i < n; i++)
                if (!st[i].done && !st[i].ask) st[i].node = slot_node(rc, cmds[i].slot);
        }
    }
    if (err != WB_OK)
        for (size_t i = 0; i < n; i++) {
            if (replies[i]) freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    free(st);
    return err;
}

wb_err_t wb_rc_command(wb_rc_t *rc, int slot, int argc, const char **argv, const size_t *argvlen,
                       redisReply **reply, char *errstr, size_t errstr_size)
{
    wb_rc_cmd_t c = {slot, argc, argv, argvlen};

    return wb_rc_pipeline(rc, &c, 1, reply, errstr, errstr_size);
}

void wb_rc_take_counts(wb_rc_t *rc, wb_rc_counts_t *out)
{
    *out = rc->counts;
    memset(&rc->counts, 0, sizeof(rc->counts));
}

/* The command timeout of c: redis.timeout_ms plus extra_ms. */
static void set_timeout(const wb_rc_t *rc, redisContext *c, int extra_ms)
{
    int ms = rc->conf->redis.timeout_ms > 0 ? rc->conf->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    struct timeval tv;

    ms += extra_ms;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    redisSetTimeout(c, tv);
}

void wb_rc_wait_begin(wb_rc_t *rc)
{
    for (size_t k = 0; k < rc->nnodes; k++)
        rc->nodes[k].answered = 0;
}

wb_err_t wb_rc_wait(wb_rc_t *rc, int numreplicas, int timeout_ms, char *errstr, size_t errstr_size)
{
    char nr[16], tm[16], what[320];
    const char *argv[3] = {"WAIT", nr, tm};
    size_t argvlen[3] = {4, 0, 0};

    argvlen[1] = (size_t)snprintf(nr, sizeof(nr), "%d", numreplicas);
    argvlen[2] = (size_t)snprintf(tm, sizeof(tm), "%d", timeout_ms);
    for (size_t k = 0; k < rc->nnodes; k++) {
        node_t *nd = &rc->nodes[k];
        redisReply *r;
        long long got;

        if (!nd->answered) continue;
        nd->answered = 0;
        snprintf(what, sizeof(what), "redis WAIT on %s:%d", nd->host, nd->port);
        /* The node's connection ran the writes; a new one could not wait for them. */
        if (!nd->ctx) {
            wb_set_err(errstr, errstr_size, "%s: the connection that wrote is gone", what);
            return WB_ERR_REDIS;
        }
        /* WAIT blocks up to timeout_ms: the reply may take that long on top
         * of the usual redis.timeout_ms. */
        set_timeout(rc, nd->ctx, timeout_ms);
        r = redisCommandArgv(nd->ctx, 3, argv, argvlen);
        set_timeout(rc, nd->ctx, 0);
        if (!r) return wb_redis_ctx_error(nd->ctx, what, errstr, errstr_size);
        if (r->type != REDIS_REPLY_INTEGER) {
            wb_set_err(errstr, errstr_size, "%s: %s", what,
                       r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
            freeReplyObject(r);
            return WB_ERR_REDIS;
        }
        got = r->integer;
        freeReplyObject(r);
        if (got < numreplicas) {
            wb_set_err(errstr, errstr_size, "%s: %lld of %d replicas confirmed within %d ms", what,
                       got, numreplicas, timeout_ms);
            return WB_ERR_TIMEOUT;
        }
    }
    return WB_OK;
}

wb_err_t wb_rc_each_master(wb_rc_t *rc, int argc, const char **argv, const size_t *argvlen,
                           wb_err_t (*check)(const redisReply *r, void *arg, char *errstr,
                                             size_t errstr_size),
                           void *arg, char *errstr, size_t errstr_size)
{
    if (rc->map_stale) map_refresh(rc, errstr, errstr_size);
    for (size_t k = 0; k < rc->nnodes; k++) {
        redisContext *c;
        redisReply *r;
        wb_err_t err = WB_OK;

        if (!owns_slot(rc, k)) continue;
        if (!(c = node_ctx(rc, (int)k, errstr, errstr_size))) return WB_ERR_REDIS;
        if (!(r = redisCommandArgv(c, argc, argv, argvlen)))
            return wb_redis_ctx_error(c, "redis", errstr, errstr_size);
        if (check) err = check(r, arg, errstr, errstr_size);
        freeReplyObject(r);
        if (err != WB_OK) return err;
    }
    return WB_OK;
}
