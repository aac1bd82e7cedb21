/* flusher_harness.h — shared helpers of the wb-flusher integration tests (header-only).
 *
 * Each test gets its own topics, consumer group, table and HTTP port, runs the
 * real wb-flusher binary as a child process and talks to the real services
 * named by the WB_* variables of `deploy/local/services exec`. */
#ifndef FLUSHER_HARNESS_H
#define FLUSHER_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
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

#include "test_ports.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_util.h"

#define FH_FN       static __attribute__((unused))
#define FH_BIN      WB_BINARY_DIR "/wb-flusher"
#define FH_SERVICES WB_SOURCE_DIR "/deploy/local/services"

typedef struct fh_s {
    char tag[96];
    char topic[128], dlq[128], group[128], table[96];
    char cfg[256], log[256];
    int http_port;
    pid_t pid;
    rd_kafka_t *producer;
    PGconn *pg;
    wb_config_t *conf;
    redisContext *redis;
} fh_t;

FH_FN const char *fh_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

FH_FN void fh_die(const char *what)
{
    fprintf(stderr, "harness: %s\n", what);
    abort();
}

FH_FN PGresult *fh_sql(fh_t *fh, const char *sql)
{
    PGresult *res = PQexec(fh->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "harness: %s: %s\n", sql, PQerrorMessage(fh->pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* (Re)connects the test's own PostgreSQL session (after an outage drill). */
FH_FN void fh_pg_connect(fh_t *fh)
{
    if (fh->pg && PQstatus(fh->pg) == CONNECTION_OK) return;
    if (fh->pg) PQfinish(fh->pg);
    fh->pg = PQconnectdb(fh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache "
                                             "user=wbcache password=wbcache"));
}

/* fh->table quoted for SQL (it may be "schema.table"). */
FH_FN const char *fh_qtable(const fh_t *fh, char *buf, size_t size)
{
    if (wb_pg_quote_ident(fh->table, buf, size) != WB_OK) fh_die("table name");
    return buf;
}

/* As fh_setup, with the entity's table (NULL: the tag; may be
 * "schema.table", the schema must exist) and the changes topic's partition
 * count. */
FH_FN void fh_setup_ex(fh_t *fh, const char *name, const char *value_type,
                       const char *flusher_extra, const char *table, int partitions)
{
    char errstr[512];
    static int seq;
    memset(fh, 0, sizeof(*fh));
    fh->pid = -1;
    snprintf(fh->tag, sizeof(fh->tag), "fl_%s_%d_%d_%lld", name, (int)getpid(), seq++,
             (long long)(wb_time_real_ms() % 100000000));
    snprintf(fh->topic, sizeof(fh->topic), "%s.changes", fh->tag);
    snprintf(fh->dlq, sizeof(fh->dlq), "%s.dlq", fh->tag);
    snprintf(fh->group, sizeof(fh->group), "%s.group", fh->tag);
    snprintf(fh->table, sizeof(fh->table), "%s", table ? table : fh->tag);
    snprintf(fh->cfg, sizeof(fh->cfg), "/tmp/%s.yaml", fh->tag);
    snprintf(fh->log, sizeof(fh->log), "/tmp/%s.log", fh->tag);
    fh->http_port = wb_test_free_port();
    if (fh->http_port <= 0) fh_die("no free TCP port");

    FILE *f = fopen(fh->cfg, "w");
    if (!f) fh_die("cannot write config");
    fprintf(f,
            "redis:\n  host: %s\n  port: %s\n  dirty_index: \"%s:dirty\"\n"
            "kafka:\n  brokers: %s\n  topics:\n    changes: %s\n    dead_letter: %s\n"
            "  partitions: %d\n"
            "postgres:\n  dsn: \"%s\"\n  connect_timeout_ms: 2000\n"
            "flusher:\n  group_id: %s\n  http_listen: \"127.0.0.1:%d\"\n"
            "  retry:\n    initial_ms: 100\n    max_ms: 1000\n%s"
            "log:\n  level: info\n"
            "entities:\n  - name: item\n    prefix: \"item:\"\n    table: %s\n    ttl_ms: 60000\n"
            "    value_type: %s\n",
            fh_env("WB_REDIS_HOST", "127.0.0.1"), fh_env("WB_REDIS_PORT", "26370"), fh->tag,
            fh_env("WB_KAFKA_BROKERS", "127.0.0.1:26372"), fh->topic, fh->dlq, partitions,
            fh_env("WB_PG_DSN", "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache "
                                "password=wbcache"),
            fh->group, fh->http_port, flusher_extra ? flusher_extra : "", fh->table, value_type);
    fclose(f);
    if (wb_config_load(fh->cfg, &fh->conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        fh_die("config");
    }
    rd_kafka_conf_t *kc = NULL;
    if (wb_kafka_conf_new(fh->conf, "test", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_producer_new(kc, 1, &fh->producer, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        fh_die("producer");
    }
    if (wb_kafka_create_topic(fh->producer, fh->topic, partitions, 30000, errstr, sizeof(errstr)) !=
            WB_OK ||
        wb_kafka_create_topic(fh->producer, fh->dlq, 1, 30000, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        fh_die("create topics");
    }
    fh_pg_connect(fh);
    if (PQstatus(fh->pg) != CONNECTION_OK) fh_die("postgres");
    if (wb_redis_connect(fh->conf, &fh->redis, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        fh_die("redis");
    }
}

/* Writes the config (extra YAML lines go under flusher:), creates the
 * topics (3 partitions), connects. value_type: text | jsonb | bytea. */
FH_FN void fh_setup(fh_t *fh, const char *name, const char *value_type, const char *flusher_extra)
{
    fh_setup_ex(fh, name, value_type, flusher_extra, NULL, 3);
}

/* Starts wb-flusher with args after "-c cfg" (NULL-terminated; none = run). */
FH_FN pid_t fh_spawn(fh_t *fh, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = FH_BIN;
    argv[n++] = "-c";
    argv[n++] = fh->cfg;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        wb_test_die_with_parent(parent);
        int fd = open(fh->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execv(FH_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

FH_FN void fh_start(fh_t *fh)
{
    fh->pid = fh_spawn(fh, NULL);
}

/* Waits for pid up to timeout_ms; returns the exit status (or -1 on timeout,
 * -2 killed by a signal); *elapsed_ms (may be NULL) = time waited. */
FH_FN int fh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (elapsed_ms) *elapsed_ms = wb_time_mono_ms() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
        }
        if (wb_time_mono_ms() - t0 > timeout_ms) return -1;
        usleep(10000);
    }
}

/* Runs wb-flusher to completion (replay); returns its exit status. */
FH_FN int fh_run(fh_t *fh, const char *const *args, int timeout_ms)
{
    pid_t pid = fh_spawn(fh, args);
    int rc = fh_wait_pid(pid, timeout_ms, NULL);
    if (rc == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc;
}

/* SIGTERM; returns the exit status (SIGKILL and -1 after timeout_ms). */
FH_FN int fh_stop(fh_t *fh, int timeout_ms, int64_t *elapsed_ms)
{
    if (fh->pid <= 0) return 0;
    kill(fh->pid, SIGTERM);
    int rc = fh_wait_pid(fh->pid, timeout_ms, elapsed_ms);
    if (rc == -1) {
        kill(fh->pid, SIGKILL);
        waitpid(fh->pid, NULL, 0);
    }
    fh->pid = -1;
    return rc;
}

/* HTTP status of GET path on the flusher's port, or -1. */
FH_FN int fh_http_status(fh_t *fh, const char *path)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fh->http_port)};
    char buf[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
        if (write(fd, buf, (size_t)n) == n) {
            ssize_t r = read(fd, buf, sizeof(buf) - 1);
            if (r > 12) {
                buf[r] = '\0';
                code = atoi(buf + 9);
            }
        }
    }
    close(fd);
    return code;
}

/* Waits until GET path answers want (or timeout); returns the last status. */
FH_FN int fh_wait_http(fh_t *fh, const char *path, int want, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int code;
    while ((code = fh_http_status(fh, path)) != want && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return code;
}

FH_FN void fh_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) fprintf(stderr, "harness: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

/* Produces one change event (value NULL = delete) straight to the topic. */
FH_FN void fh_produce_raw(fh_t *fh, const char *key, const char *value, size_t vlen,
                          int64_t version, const char *entity)
{
    wb_event_t ev = {.key = key,
                     .keylen = strlen(key),
                     .value = value,
                     .valuelen = value ? vlen : 0,
                     .is_delete = value == NULL,
                     .version = version,
                     .time_us = wb_time_real_us(),
                     .entity = entity,
                     .entitylen = strlen(entity)};
    rd_kafka_headers_t *h = NULL;
    if (wb_event_to_rd_headers(&ev, &h) != WB_OK) fh_die("event headers");
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            fh->producer, RD_KAFKA_V_TOPIC(fh->topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)value, value ? vlen : 0), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!err) return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) fh_die(rd_kafka_err2str(err));
        rd_kafka_poll(fh->producer, 50);
    }
}

FH_FN void fh_produce(fh_t *fh, const char *key, const char *value, int64_t version)
{
    fh_produce_raw(fh, key, value, value ? strlen(value) : 0, version, "item");
}

FH_FN void fh_flush(fh_t *fh)
{
    if (rd_kafka_flush(fh->producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) fh_die("producer flush");
}

/* A key's row as the test sees it. */
typedef struct fh_row_s {
    int present;
    int deleted;
    int64_t version;
    char value[256];
} fh_row_t;

/* Ground truth: the highest version per key. */
FH_FN void fh_truth_apply(fh_row_t *t, const char *value, int64_t version)
{
    if (version <= t->version) return;
    t->present = 1;
    t->version = version;
    t->deleted = value == NULL;
    snprintf(t->value, sizeof(t->value), "%s", value ? value : "");
}

/* Number of keys k in [0, nkeys) whose row ("item" ids are "<k>") differs
 * from truth[k]; prints the first few differences. */
FH_FN int fh_diff(fh_t *fh, const fh_row_t *truth, int nkeys, int verbose)
{
    char sql[512], qt[WB_PG_QUOTED_MAX];
    snprintf(sql, sizeof(sql), "SELECT key::int, value::text, version, deleted FROM %s ORDER BY 1",
             fh_qtable(fh, qt, sizeof(qt)));
    fh_pg_connect(fh);
    PGresult *res = PQexec(fh->pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* The flusher creates the table when it starts: not there yet. */
        if (verbose) fprintf(stderr, "harness: %s", PQerrorMessage(fh->pg));
        PQclear(res);
        return nkeys + 1;
    }
    int *seen = calloc((size_t)nkeys, sizeof(int)), diffs = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int k = atoi(PQgetvalue(res, r, 0));
        const fh_row_t *t = k >= 0 && k < nkeys ? &truth[k] : NULL;
        int64_t ver = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        int del = PQgetvalue(res, r, 3)[0] == 't';
        const char *val = PQgetvalue(res, r, 1);
        if (t) seen[k] = 1;
        if (!t || !t->present || ver != t->version || del != t->deleted ||
            (!del && strcmp(val, t->value) != 0)) {
            if (verbose && diffs < 5)
                fprintf(
                    stderr,
                    "diff key %d: pg (%s, v%" PRId64 ", del %d) truth (%s, v%" PRId64 ", del %d)\n",
                    k, val, ver, del, t ? t->value : "?", t ? t->version : -1, t ? t->deleted : -1);
            diffs++;
        }
    }
    for (int k = 0; k < nkeys; k++)
        if (truth[k].present && !seen[k]) {
            if (verbose && diffs < 5) fprintf(stderr, "diff key %d: missing in pg\n", k);
            diffs++;
        }
    free(seen);
    PQclear(res);
    return diffs;
}

/* Waits until PostgreSQL equals truth; returns the remaining differences. */
FH_FN int fh_wait_truth(fh_t *fh, const fh_row_t *truth, int nkeys, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int d;
    while ((d = fh_diff(fh, truth, nkeys, 0)) != 0 && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(200000);
    if (d) fh_diff(fh, truth, nkeys, 1);
    return d;
}

FH_FN long fh_count(fh_t *fh, const char *where)
{
    char sql[512], qt[WB_PG_QUOTED_MAX];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s %s", fh_qtable(fh, qt, sizeof(qt)),
             where ? where : "");
    fh_pg_connect(fh);
    PGresult *res = fh_sql(fh, sql);
    long n = res ? atol(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

/* One dead-lettered message. */
typedef struct fh_dead_s {
    char key[128];
    char reason[256];
    char topic[128];
    int64_t partition, offset;
} fh_dead_t;

FH_FN void fh_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, name, &v, &len) == 0 &&
        v)
        snprintf(out, size, "%.*s", (int)len, (const char *)v);
}

/* Reads the whole dead-letter topic (1 partition) into out[max]; returns n. */
FH_FN int fh_read_dlq(fh_t *fh, fh_dead_t *out, int max)
{
    char errstr[256], buf[64];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    int n = 0;
    if (wb_kafka_conf_new(fh->conf, "test", 0, &kc, errstr, sizeof(errstr)) != WB_OK)
        fh_die(errstr);
    rd_kafka_conf_set(kc, "enable.partition.eof", "true", errstr, sizeof(errstr));
    if (wb_kafka_consumer_new(kc, "fh-dlq-reader", &rk, errstr, sizeof(errstr)) != WB_OK)
        fh_die(errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, fh->dlq, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t t0 = wb_time_mono_ms();
    while (wb_time_mono_ms() - t0 < 15000) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (!m->err && n < max) {
            fh_dead_t *d = &out[n++];
            snprintf(d->key, sizeof(d->key), "%.*s", (int)m->key_len, (const char *)m->key);
            fh_header(m, "wb-dlq-reason", d->reason, sizeof(d->reason));
            fh_header(m, "wb-dlq-topic", d->topic, sizeof(d->topic));
            fh_header(m, "wb-dlq-partition", buf, sizeof(buf));
            d->partition = atoll(buf);
            fh_header(m, "wb-dlq-offset", buf, sizeof(buf));
            d->offset = atoll(buf);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* Stops the flusher, drops the table and the topics. */
FH_FN void fh_teardown(fh_t *fh)
{
    char sql[512], errstr[256], qt[WB_PG_QUOTED_MAX];
    if (fh->pid > 0) fh_stop(fh, 10000, NULL);
    fh_pg_connect(fh);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", fh_qtable(fh, qt, sizeof(qt)));
    PQclear(fh_sql(fh, sql));
    if (fh->producer) {
        wb_kafka_delete_topic(fh->producer, fh->topic, 10000, errstr, sizeof(errstr));
        wb_kafka_delete_topic(fh->producer, fh->dlq, 10000, errstr, sizeof(errstr));
        rd_kafka_destroy(fh->producer);
    }
    if (fh->redis) redisFree(fh->redis);
    PQfinish(fh->pg);
    wb_config_destroy(fh->conf);
    unlink(fh->cfg);
    if (!getenv("WB_KEEP_LOGS")) unlink(fh->log);
    memset(fh, 0, sizeof(*fh));
}

/* Prints the flusher's log (on failure). */
FH_FN void fh_dump_log(fh_t *fh)
{
    char line[1024];
    FILE *f = fopen(fh->log, "r");
    if (!f) return;
    fprintf(stderr, "---- %s ----\n", fh->log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

#endif /* FLUSHER_HARNESS_H */
