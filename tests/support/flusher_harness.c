/* flusher_harness.c — the wb-flusher integration tests' harness: setup, the child, truth, dead
 * letters. */
#include "flusher_harness.h"

const char *fh_env(const char *name, const char *def)
{
    return wb_test_env(name, def);
}

void fh_die(const char *what)
{
    fprintf(stderr, "harness: %s\n", what);
    abort();
}

PGresult *fh_sql(fh_t *fh, const char *sql)
{
    return wb_test_pg_query(fh->pg, sql);
}

void fh_pg_connect(fh_t *fh)
{
    if (fh->pg && PQstatus(fh->pg) == CONNECTION_OK) return;
    if (fh->pg) PQfinish(fh->pg);
    fh->pg = PQconnectdb(fh_env("WB_PG_DSN", WB_TEST_PG_DSN));
}

const char *fh_qtable(const fh_t *fh, char *buf, size_t size)
{
    if (wb_pg_quote_ident(fh->table, buf, size) != WB_OK) fh_die("table name");
    return buf;
}

void fh_setup_ex(fh_t *fh, const char *name, const char *value_type, const char *flusher_extra,
                 const char *table, int partitions)
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
            fh_env("WB_PG_DSN", WB_TEST_PG_DSN), fh->group, fh->http_port,
            flusher_extra ? flusher_extra : "", fh->table, value_type);
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
    if (wb_rc_connect(fh->conf, &fh->redis, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        fh_die("redis");
    }
}

void fh_setup(fh_t *fh, const char *name, const char *value_type, const char *flusher_extra)
{
    fh_setup_ex(fh, name, value_type, flusher_extra, NULL, 3);
}

pid_t fh_spawn(fh_t *fh, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = FH_BIN;
    argv[n++] = "-c";
    argv[n++] = fh->cfg;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return wb_test_spawn(argv, fh->log);
}

void fh_start(fh_t *fh)
{
    fh->pid = fh_spawn(fh, NULL);
}

int fh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms)
{
    return wb_test_wait_pid(pid, timeout_ms, elapsed_ms);
}

int fh_run(fh_t *fh, const char *const *args, int timeout_ms)
{
    pid_t pid = fh_spawn(fh, args);
    int rc = fh_wait_pid(pid, timeout_ms, NULL);
    if (rc == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc;
}

int fh_stop(fh_t *fh, int timeout_ms, int64_t *elapsed_ms)
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

int fh_http_status(fh_t *fh, const char *path)
{
    char buf[512];
    return wb_test_http_get(fh->http_port, path, buf, sizeof(buf));
}

int fh_wait_http(fh_t *fh, const char *path, int want, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int code;
    while ((code = fh_http_status(fh, path)) != want && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return code;
}

void fh_produce_raw(fh_t *fh, const char *key, const char *value, size_t vlen, int64_t version,
                    const char *entity)
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

void fh_produce(fh_t *fh, const char *key, const char *value, int64_t version)
{
    fh_produce_raw(fh, key, value, value ? strlen(value) : 0, version, "item");
}

void fh_flush(fh_t *fh)
{
    if (rd_kafka_flush(fh->producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) fh_die("producer flush");
}

void fh_truth_apply(fh_row_t *t, const char *value, int64_t version)
{
    if (version <= t->version) return;
    t->present = 1;
    t->version = version;
    t->deleted = value == NULL;
    snprintf(t->value, sizeof(t->value), "%s", value ? value : "");
}

int fh_diff(fh_t *fh, const fh_row_t *truth, int nkeys, int verbose)
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

int fh_wait_truth(fh_t *fh, const fh_row_t *truth, int nkeys, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    int d;
    while ((d = fh_diff(fh, truth, nkeys, 0)) != 0 && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(200000);
    if (d) fh_diff(fh, truth, nkeys, 1);
    return d;
}

long fh_count(fh_t *fh, const char *where)
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

int fh_read_dlq(fh_t *fh, fh_dead_t *out, int max)
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
            d->value_null = m->payload == NULL;
            snprintf(d->value, sizeof(d->value), "%.*s", m->payload ? (int)m->len : 0,
                     m->payload ? (const char *)m->payload : "");
            rd_kafka_headers_t *hdrs = NULL;
            const char *name;
            const void *hv;
            size_t hlen, used = 0;
            d->headers[0] = '\0';
            if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
                for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &hv, &hlen); i++) {
                    int w = snprintf(d->headers + used, sizeof(d->headers) - used, "%s%s=%.*s",
                                     i ? ";" : "", name, hv ? (int)hlen : 6,
                                     hv ? (const char *)hv : "(null)");
                    if (w < 0 || (size_t)w >= sizeof(d->headers) - used) break;
                    used += (size_t)w;
                }
            wb_test_kafka_header(m, "wb-dlq-reason", d->reason, sizeof(d->reason));
            wb_test_kafka_header(m, "wb-dlq-topic", d->topic, sizeof(d->topic));
            wb_test_kafka_header(m, "wb-dlq-partition", buf, sizeof(buf));
            d->partition = atoll(buf);
            wb_test_kafka_header(m, "wb-dlq-offset", buf, sizeof(buf));
            d->offset = atoll(buf);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

void fh_teardown(fh_t *fh)
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
    if (fh->redis) wb_rc_free(fh->redis);
    PQfinish(fh->pg);
    wb_config_destroy(fh->conf);
    unlink(fh->cfg);
    if (!getenv("WB_KEEP_LOGS")) unlink(fh->log);
    memset(fh, 0, sizeof(*fh));
}

void fh_dump_log(fh_t *fh)
{
    wb_test_dump_file(fh->log);
}
