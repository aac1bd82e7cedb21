/* refresher_harness.h — shared helpers of the wb-refresher integration tests (header-only).
 *
 * Each test gets a tag (pid, sequence, time) naming its own topics, consumer
 * groups, table, dirty index and key prefix, writes one config file per
 * child (they differ only in the HTTP ports), runs the real wb-refresher
 * (and, where a test needs it, the real wb-flusher) as child processes and
 * talks to the real services named by the WB_* variables of
 * `deploy/local/services exec`. Every child is killed in rh_teardown and,
 * should the test process die on an assertion or abort, by an atexit hook.
 *
 * The test's only entity: name "item", prefix "<tag>:i:", table <tag>,
 * text values. */
#ifndef REFRESHER_HARNESS_H
#define REFRESHER_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>

#include "test_ports.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_redis.h"
#include "wb_table.h"
#include "wb_util.h"
#include "wbcache.h"

#define RH_FN           static __attribute__((unused))
#define RH_REFRESHER    WB_BINARY_DIR "/wb-refresher"
#define RH_FLUSHER      WB_BINARY_DIR "/wb-flusher"
#define RH_MAX_CHILDREN 4
#define RH_MAX_EVENTS   4096

/* One change event read back from the changes topic. */
typedef struct rh_event_s {
    char key[160];
    char value[256];
    int is_delete;
    int64_t version, time_us;
    char entity[64];
} rh_event_t;

typedef struct rh_s {
    char tag[96];
    char changes[128], refresh[128], dlq[128];
    char rgroup[128], fgroup[128];
    char table[96], dirty[128], prefix[128];
    char cfg[RH_MAX_CHILDREN][256], log[RH_MAX_CHILDREN][256];
    int port[RH_MAX_CHILDREN];
    pid_t pid[RH_MAX_CHILDREN]; /* 0..2 refreshers, 3 the flusher */
    wb_config_t *conf;          /* the harness's copy of cfg[0] */
    rd_kafka_t *producer;       /* refresh requests, admin calls */
    rd_kafka_t *reader;         /* the changes topic, from the beginning */
    rh_event_t *events;
    int nevents;
    PGconn *pg;
    redisContext *redis;
} rh_t;

#define RH_FLUSHER_SLOT 3

static pid_t rh_all_children[64];
static int rh_nall_children;

static void rh_kill_all(void)
{
    for (int i = 0; i < rh_nall_children; i++)
        if (rh_all_children[i] > 0) {
            kill(rh_all_children[i], SIGKILL);
            waitpid(rh_all_children[i], NULL, 0);
            rh_all_children[i] = 0;
        }
}

static void rh_forget_child(pid_t pid)
{
    for (int i = 0; i < rh_nall_children; i++)
        if (rh_all_children[i] == pid) rh_all_children[i] = 0;
}

RH_FN const char *rh_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

RH_FN void rh_die(const char *what, const char *detail)
{
    fprintf(stderr, "harness: %s: %s\n", what, detail ? detail : "");
    rh_kill_all();
    abort();
}

/* A TCP port nobody listens on right now. */
static int rh_free_port(void)
{
    int port = wb_test_free_port();
    if (port <= 0) rh_die("free port", strerror(errno));
    return port;
}

RH_FN PGresult *rh_sql(rh_t *rh, const char *sql)
{
    PGresult *res = PQexec(rh->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "harness: %s: %s\n", sql, PQerrorMessage(rh->pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Writes the config of child slot i. refresher_extra / producer_extra /
 * entity_extra are YAML lines added under refresher:, producer: and the
 * entity (indented accordingly); dsn NULL = the real one. */
static void rh_write_config(rh_t *rh, int i, const char *refresher_extra,
                            const char *producer_extra, const char *entity_extra, const char *dsn)
{
    FILE *f = fopen(rh->cfg[i], "w");
    if (!f) rh_die("cannot write config", rh->cfg[i]);
    fprintf(
        f,
        "redis:\n  host: %s\n  port: %s\n  timeout_ms: 1000\n  dirty_index: \"%s\"\n"
        "kafka:\n  brokers: %s\n  topics:\n    changes: %s\n    refresh: %s\n"
        "    dead_letter: %s\n  partitions: 2\n"
        "postgres:\n  dsn: \"%s\"\n  connect_timeout_ms: 1000\n  statement_timeout_ms: 5000\n"
        "producer:\n  ttl_jitter_pct: 0\n%s"
        "flusher:\n  group_id: %s\n  http_listen: \"127.0.0.1:%d\"\n"
        "  batch:\n    max_wait_ms: 50\n"
        "  retry:\n    initial_ms: 100\n    max_ms: 1000\n  shutdown_deadline_ms: 10000\n"
        "refresher:\n  group_id: %s\n  http_listen: \"127.0.0.1:%d\"\n"
        "  batch:\n    max_wait_ms: 50\n"
        "  retry:\n    initial_ms: 100\n    max_ms: 1000\n  shutdown_deadline_ms: 10000\n%s"
        "log:\n  level: %s\n"
        "entities:\n  - name: item\n    prefix: \"%s\"\n    table: %s\n    value_type: text\n%s",
        rh_env("WB_REDIS_HOST", "127.0.0.1"), rh_env("WB_REDIS_PORT", "26370"), rh->dirty,
        rh_env("WB_KAFKA_BROKERS", "127.0.0.1:26372"), rh->changes, rh->refresh, rh->dlq,
        dsn ? dsn
            : rh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache "
                                  "password=wbcache"),
        producer_extra ? producer_extra : "", rh->fgroup, rh->port[i], rh->rgroup, rh->port[i],
        refresher_extra ? refresher_extra : "", rh_env("RH_LOG_LEVEL", "info"), rh->prefix,
        rh->table, entity_extra ? entity_extra : "    ttl_ms: 60000\n");
    fclose(f);
}

/* Sets up names, configs (every slot alike but for the port), topics, the
 * table, connections and the changes-topic reader. */
RH_FN void rh_setup_ex(rh_t *rh, const char *name, const char *refresher_extra,
                       const char *producer_extra, const char *entity_extra, const char *dsn)
{
    char errstr[512];
    static int seq;

    memset(rh, 0, sizeof(*rh));
    snprintf(rh->tag, sizeof(rh->tag), "rf_%s_%d_%d_%lld", name, (int)getpid(), seq++,
             (long long)(wb_time_real_ms() % 100000000));
    snprintf(rh->changes, sizeof(rh->changes), "%s.changes", rh->tag);
    snprintf(rh->refresh, sizeof(rh->refresh), "%s.refresh", rh->tag);
    snprintf(rh->dlq, sizeof(rh->dlq), "%s.dlq", rh->tag);
    snprintf(rh->rgroup, sizeof(rh->rgroup), "%s.rgroup", rh->tag);
    snprintf(rh->fgroup, sizeof(rh->fgroup), "%s.fgroup", rh->tag);
    snprintf(rh->table, sizeof(rh->table), "%s", rh->tag);
    snprintf(rh->dirty, sizeof(rh->dirty), "%s:dirty", rh->tag);
    snprintf(rh->prefix, sizeof(rh->prefix), "%s:i:", rh->tag);
    for (int i = 0; i < RH_MAX_CHILDREN; i++) {
        snprintf(rh->cfg[i], sizeof(rh->cfg[i]), "/tmp/%s.%d.yaml", rh->tag, i);
        snprintf(rh->log[i], sizeof(rh->log[i]), "/tmp/%s.%d.log", rh->tag, i);
        rh->port[i] = rh_free_port();
        rh->pid[i] = -1;
        rh_write_config(rh, i, refresher_extra, producer_extra, entity_extra, dsn);
    }
    if (wb_config_load(rh->cfg[0], &rh->conf, errstr, sizeof(errstr)) != WB_OK)
        rh_die("config", errstr);
    /* The real DSN for the harness itself even when the children get a bad one. */
    const char *real_dsn =
        rh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache "
                            "password=wbcache");
    rh->pg = PQconnectdb(real_dsn);
    if (PQstatus(rh->pg) != CONNECTION_OK) rh_die("postgres", PQerrorMessage(rh->pg));
    if (wb_table_create(rh->pg, &rh->conf->entities[0], errstr, sizeof(errstr)) != WB_OK)
        rh_die("create table", errstr);
    if (wb_redis_connect(rh->conf, &rh->redis, errstr, sizeof(errstr)) != WB_OK)
        rh_die("redis", errstr);

    rd_kafka_conf_t *kc = NULL;
    if (wb_kafka_conf_new(rh->conf, "test", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_producer_new(kc, 1, &rh->producer, errstr, sizeof(errstr)) != WB_OK)
        rh_die("producer", errstr);
    if (wb_kafka_create_topic(rh->producer, rh->changes, 2, 30000, errstr, sizeof(errstr)) !=
            WB_OK ||
        wb_kafka_create_topic(rh->producer, rh->refresh, 2, 30000, errstr, sizeof(errstr)) !=
            WB_OK ||
        wb_kafka_create_topic(rh->producer, rh->dlq, 1, 30000, errstr, sizeof(errstr)) != WB_OK)
        rh_die("create topics", errstr);

    kc = NULL;
    if (wb_kafka_conf_new(rh->conf, "test-reader", 0, &kc, errstr, sizeof(errstr)) != WB_OK)
        rh_die("reader conf", errstr);
    char group[160];
    snprintf(group, sizeof(group), "%s.reader", rh->tag);
    if (wb_kafka_consumer_new(kc, group, &rh->reader, errstr, sizeof(errstr)) != WB_OK)
        rh_die("reader", errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    for (int p = 0; p < 2; p++)
        rd_kafka_topic_partition_list_add(l, rh->changes, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rh->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    rh->events = calloc(RH_MAX_EVENTS, sizeof(*rh->events));
    if (!rh->events) rh_die("events", "out of memory");
    atexit(rh_kill_all);
}

RH_FN void rh_setup(rh_t *rh, const char *name, const char *refresher_extra)
{
    rh_setup_ex(rh, name, refresher_extra, NULL, NULL, NULL);
}

/* Starts child slot i: a refresher (slots 0..2) or the flusher (slot 3). */
RH_FN void rh_start(rh_t *rh, int i)
{
    const char *bin = i == RH_FLUSHER_SLOT ? RH_FLUSHER : RH_REFRESHER;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) rh_die("fork", strerror(errno));
    if (pid == 0) {
        wb_test_die_with_parent(parent);
        int fd = open(rh->log[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, "-c", rh->cfg[i], (char *)NULL);
        _exit(127);
    }
    rh->pid[i] = pid;
    if (rh_nall_children < (int)(sizeof(rh_all_children) / sizeof(rh_all_children[0])))
        rh_all_children[rh_nall_children++] = pid;
}

/* Waits for pid up to timeout_ms; exit status, -1 timeout, -2 signalled. */
RH_FN int rh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            rh_forget_child(pid);
            if (elapsed_ms) *elapsed_ms = wb_time_mono_ms() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
        }
        if (wb_time_mono_ms() - t0 > timeout_ms) return -1;
        usleep(10000);
    }
}

/* SIGTERM to slot i; its exit status (SIGKILL and -1 after timeout_ms). */
RH_FN int rh_stop(rh_t *rh, int i, int timeout_ms, int64_t *elapsed_ms)
{
    if (rh->pid[i] <= 0) return 0;
    kill(rh->pid[i], SIGTERM);
    int rc = rh_wait_pid(rh->pid[i], timeout_ms, elapsed_ms);
    if (rc == -1) {
        kill(rh->pid[i], SIGKILL);
        waitpid(rh->pid[i], NULL, 0);
        rh_forget_child(rh->pid[i]);
    }
    rh->pid[i] = -1;
    return rc;
}

/* Body of GET path on slot i's port into buf (NUL-terminated); HTTP status
 * or -1. */
RH_FN int rh_http(const rh_t *rh, int i, const char *path, char *buf, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rh->port[i])};
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
    size_t got = 0;
    char req[256];

    if (size) buf[0] = '\0';
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0) return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (got + 1 < size && (r = read(fd, buf + got, size - 1 - got)) > 0)
                got += (size_t)r;
            buf[got] = '\0';
            if (got > 12) code = atoi(buf + 9);
        }
    }
    close(fd);
    return code;
}

RH_FN int rh_wait_http(const rh_t *rh, int i, const char *path, int want, int timeout_ms)
{
    char buf[1024];
    int64_t t0 = wb_time_mono_ms();
    int code;
    while ((code = rh_http(rh, i, path, buf, sizeof(buf))) != want &&
           wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return code;
}

/* Value of metric line `name` (exact, labels included) on slot i; -1 if
 * the process does not answer or has no such line. */
RH_FN double rh_metric(const rh_t *rh, int i, const char *name)
{
    static char buf[1 << 16];
    size_t nlen = strlen(name);
    if (rh_http(rh, i, "/metrics", buf, sizeof(buf)) != 200) return -1;
    for (char *line = strstr(buf, "\r\n\r\n"); line && *line; line = strchr(line, '\n')) {
        while (*line == '\n' || *line == '\r')
            line++;
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ')
            return strtod(line + nlen + 1, NULL);
    }
    return -1;
}

/* Waits until metric >= want; returns its last value. */
RH_FN double rh_wait_metric(const rh_t *rh, int i, const char *name, double want, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    double v;
    while ((v = rh_metric(rh, i, name)) < want && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return v;
}

/* The cache key of id. */
RH_FN const char *rh_key(const rh_t *rh, const char *id, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", rh->prefix, id);
    return buf;
}

/* Upserts a row (value NULL = soft-deleted) exactly as given. */
RH_FN void rh_row(rh_t *rh, const char *id, const char *value, int64_t version)
{
    char ver[24];
    snprintf(ver, sizeof(ver), "%" PRId64, version);
    const char *params[4] = {id, value, ver, value ? "false" : "true"};
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"%s\" (key, value, version, deleted) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, "
             "deleted = EXCLUDED.deleted, updated_at = now()",
             rh->table);
    PGresult *res = PQexecParams(rh->pg, sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) rh_die("row", PQerrorMessage(rh->pg));
    PQclear(res);
}

/* Reads a row: 1 found (value copied, "" when deleted), 0 absent. */
RH_FN int rh_get_row(rh_t *rh, const char *id, char *value, size_t size, int64_t *version,
                     int *deleted)
{
    const char *params[1] = {id};
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT value, version, deleted FROM \"%s\" WHERE key = $1",
             rh->table);
    PGresult *res = PQexecParams(rh->pg, sql, 1, NULL, params, NULL, NULL, 0);
    int found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (found) {
        snprintf(value, size, "%s", PQgetvalue(res, 0, 0));
        *version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        *deleted = PQgetvalue(res, 0, 2)[0] == 't';
    }
    PQclear(res);
    return found;
}

/* Publishes a refresh request for id, as the library's refresh-ahead
 * trigger does (key, wb-kind: refresh, wb-entity), and waits for the ack. */
RH_FN void rh_request_refresh(rh_t *rh, const char *id)
{
    char key[256];
    rh_key(rh, id, key, sizeof(key));
    wb_event_t ev = {.key = key,
                     .keylen = strlen(key),
                     .entity = "item",
                     .entitylen = 4,
                     .kind = WB_EVENT_REFRESH,
                     .time_us = wb_time_real_us()};
    rd_kafka_headers_t *h = NULL;
    if (wb_event_to_rd_headers(&ev, &h) != WB_OK) rh_die("refresh headers", key);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rh->producer, RD_KAFKA_V_TOPIC(rh->refresh), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err) rh_die("produce refresh", rd_kafka_err2str(err));
}

RH_FN void rh_flush(rh_t *rh)
{
    if (rd_kafka_flush(rh->producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rh_die("flush", "refresh requests not acknowledged");
}

static void rh_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, name, &v, &len) == 0 &&
        v)
        snprintf(out, size, "%.*s", (int)len, (const char *)v);
}

/* Reads whatever arrived on the changes topic for up to ms into rh->events. */
RH_FN void rh_read_changes(rh_t *rh, int ms)
{
    int64_t end = wb_time_mono_ms() + ms;
    char buf[64];
    do {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rh->reader, 50);
        if (!m) continue;
        if (!m->err && rh->nevents < RH_MAX_EVENTS) {
            rh_event_t *e = &rh->events[rh->nevents++];
            memset(e, 0, sizeof(*e));
            snprintf(e->key, sizeof(e->key), "%.*s", (int)m->key_len, (const char *)m->key);
            e->is_delete = m->payload == NULL;
            if (m->payload)
                snprintf(e->value, sizeof(e->value), "%.*s", (int)m->len, (const char *)m->payload);
            rh_header(m, WB_HDR_VERSION, buf, sizeof(buf));
            e->version = strtoll(buf, NULL, 10);
            rh_header(m, WB_HDR_TIME_US, buf, sizeof(buf));
            e->time_us = strtoll(buf, NULL, 10);
            rh_header(m, WB_HDR_ENTITY, e->entity, sizeof(e->entity));
        }
        rd_kafka_message_destroy(m);
    } while (wb_time_mono_ms() < end);
}

/* Events read so far for key; *last (may be NULL) = the last of them. */
RH_FN int rh_count_events(const rh_t *rh, const char *key, const rh_event_t **last)
{
    int n = 0;
    for (int i = 0; i < rh->nevents; i++)
        if (strcmp(rh->events[i].key, key) == 0) {
            n++;
            if (last) *last = &rh->events[i];
        }
    return n;
}

/* Prints a child's log (on failure). */
RH_FN void rh_dump_log(const rh_t *rh, int i)
{
    char line[1024];
    FILE *f = fopen(rh->log[i], "r");
    if (!f) return;
    fprintf(stderr, "---- %s ----\n", rh->log[i]);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

/* Stops every child (SIGKILL if one hangs), drops the table, the topics
 * and the Redis keys of the test. */
RH_FN void rh_teardown(rh_t *rh)
{
    char sql[160], errstr[256];

    for (int i = 0; i < RH_MAX_CHILDREN; i++)
        if (rh->pid[i] > 0) {
            if (rh_stop(rh, i, 5000, NULL) != 0 || getenv("WB_DUMP_LOGS")) rh_dump_log(rh, i);
        }
    if (rh->reader) {
        rd_kafka_consumer_close(rh->reader);
        rd_kafka_destroy(rh->reader);
    }
    if (rh->pg) {
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"%s\"", rh->table);
        PQclear(rh_sql(rh, sql));
        PQfinish(rh->pg);
    }
    if (rh->redis) {
        /* Keys of this test: entries, markers, the index and the lease. */
        char cursor[32] = "0";
        do {
            redisReply *r =
                redisCommand(rh->redis, "SCAN %s MATCH %s* COUNT 1000", cursor, rh->tag);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t k = 0; k < r->element[1]->elements; k++)
                freeReplyObject(redisCommand(rh->redis, "DEL %b", r->element[1]->element[k]->str,
                                             r->element[1]->element[k]->len));
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        redisFree(rh->redis);
    }
    if (rh->producer) {
        wb_kafka_delete_topic(rh->producer, rh->changes, 10000, errstr, sizeof(errstr));
        wb_kafka_delete_topic(rh->producer, rh->refresh, 10000, errstr, sizeof(errstr));
        wb_kafka_delete_topic(rh->producer, rh->dlq, 10000, errstr, sizeof(errstr));
        rd_kafka_destroy(rh->producer);
    }
    wb_config_destroy(rh->conf);
    for (int i = 0; i < RH_MAX_CHILDREN; i++) {
        unlink(rh->cfg[i]);
        if (!getenv("WB_KEEP_LOGS")) unlink(rh->log[i]);
    }
    free(rh->events);
    memset(rh, 0, sizeof(*rh));
}

#endif /* REFRESHER_HARNESS_H */
