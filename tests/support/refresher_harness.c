/* refresher_harness.c — the wb-refresher integration tests' harness: setup, children, reading back.
 */
#include "refresher_harness.h"

#include "wb_entry.h"

pid_t rh_all_children[64];
int rh_nall_children;

void rh_kill_all(void)
{
    for (int i = 0; i < rh_nall_children; i++)
        if (rh_all_children[i] > 0) {
            kill(rh_all_children[i], SIGKILL);
            waitpid(rh_all_children[i], NULL, 0);
            rh_all_children[i] = 0;
        }
}

void rh_forget_child(pid_t pid)
{
    for (int i = 0; i < rh_nall_children; i++)
        if (rh_all_children[i] == pid) rh_all_children[i] = 0;
}

const char *rh_env(const char *name, const char *def)
{
    return wb_test_env(name, def);
}

void rh_die(const char *what, const char *detail)
{
    fprintf(stderr, "harness: %s: %s\n", what, detail ? detail : "");
    rh_kill_all();
    abort();
}

int rh_free_port(void)
{
    int port = wb_test_free_port();
    if (port <= 0) rh_die("free port", strerror(errno));
    return port;
}

PGresult *rh_sql(rh_t *rh, const char *sql)
{
    return wb_test_pg_query(rh->pg, sql);
}

/* Writes the config of child slot i (see rh_setup_ex). */
static void rh_write_config(rh_t *rh, int i, const char *refresher_extra,
                            const char *producer_extra, const char *entity_extra, const char *dsn)
{
    FILE *f = fopen(rh->cfg[i], "w");
    if (!f) rh_die("cannot write config", rh->cfg[i]);
    fprintf(
        f,
        "redis:\n  host: %s\n  port: %s\n  timeout_ms: 1000\n  dirty_index: \"%s\"\n"
        "  user: \"${WB_TEST_REDIS_USER:-}\"\n"
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
        dsn ? dsn : rh_env("WB_PG_DSN", WB_TEST_PG_DSN), producer_extra ? producer_extra : "",
        rh->fgroup, rh->port[i], rh->rgroup, rh->port[i], refresher_extra ? refresher_extra : "",
        rh_env("RH_LOG_LEVEL", "info"), rh->prefix, rh->table,
        entity_extra ? entity_extra : "    ttl_ms: 60000\n");
    fclose(f);
}

void rh_setup_ex(rh_t *rh, const char *name, const char *refresher_extra,
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
    rh->pg = PQconnectdb(rh_env("WB_PG_DSN", WB_TEST_PG_DSN));
    if (PQstatus(rh->pg) != CONNECTION_OK) rh_die("postgres", PQerrorMessage(rh->pg));
    if (wb_table_create(rh->pg, &rh->conf->entities[0], errstr, sizeof(errstr)) != WB_OK)
        rh_die("create table", errstr);
    if (wb_rc_connect(rh->conf, &rh->redis, errstr, sizeof(errstr)) != WB_OK)
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

void rh_setup(rh_t *rh, const char *name, const char *refresher_extra)
{
    rh_setup_ex(rh, name, refresher_extra, NULL, NULL, NULL);
}

void rh_start(rh_t *rh, int i)
{
    const char *bin = i == RH_FLUSHER_SLOT ? RH_FLUSHER : RH_REFRESHER;
    const char *argv[] = {bin, "-c", rh->cfg[i], NULL};
    pid_t pid = wb_test_spawn(argv, rh->log[i]);
    if (pid < 0) rh_die("fork", strerror(errno));
    rh->pid[i] = pid;
    if (rh_nall_children < (int)(sizeof(rh_all_children) / sizeof(rh_all_children[0])))
        rh_all_children[rh_nall_children++] = pid;
}

int rh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms)
{
    int rc = wb_test_wait_pid(pid, timeout_ms, elapsed_ms);
    if (rc != -1) rh_forget_child(pid);
    return rc;
}

int rh_stop(rh_t *rh, int i, int timeout_ms, int64_t *elapsed_ms)
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

int rh_http(const rh_t *rh, int i, const char *path, char *buf, size_t size)
{
    return wb_test_http_get(rh->port[i], path, buf, size);
}

int rh_wait_http(const rh_t *rh, int i, const char *path, int want, int timeout_ms)
{
    char buf[1024];
    int64_t t0 = wb_time_mono_ms();
    int code;
    while ((code = rh_http(rh, i, path, buf, sizeof(buf))) != want &&
           wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return code;
}

double rh_metric(const rh_t *rh, int i, const char *name)
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

double rh_wait_metric(const rh_t *rh, int i, const char *name, double want, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    double v;
    while ((v = rh_metric(rh, i, name)) < want && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(50000);
    return v;
}

const char *rh_key(const rh_t *rh, const char *id, char *buf, size_t size)
{
    char body[512];

    snprintf(body, sizeof(body), "%s%s", rh->prefix, id);
    return wb_test_key(buf, size, rh->conf->redis.dirty_shards, body);
}

const char *rh_dirty_shard(const rh_t *rh, const char *key, char *buf, size_t size)
{
    int shard = 0;

    wb_entry_key_tag(key, strlen(key), &shard);
    wb_entry_index_key(rh->dirty, shard, buf, size);
    return buf;
}

void rh_row(rh_t *rh, const char *id, const char *value, int64_t version)
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

int rh_get_row(rh_t *rh, const char *id, char *value, size_t size, int64_t *version, int *deleted)
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

void rh_request_refresh(rh_t *rh, const char *id)
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

void rh_flush(rh_t *rh)
{
    if (rd_kafka_flush(rh->producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        rh_die("flush", "refresh requests not acknowledged");
}

void rh_read_changes(rh_t *rh, int ms)
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
            wb_test_kafka_header(m, WB_HDR_VERSION, buf, sizeof(buf));
            e->version = strtoll(buf, NULL, 10);
            wb_test_kafka_header(m, WB_HDR_TIME_US, buf, sizeof(buf));
            e->time_us = strtoll(buf, NULL, 10);
            wb_test_kafka_header(m, WB_HDR_ENTITY, e->entity, sizeof(e->entity));
        }
        rd_kafka_message_destroy(m);
    } while (wb_time_mono_ms() < end);
}

int rh_count_events(const rh_t *rh, const char *key, const rh_event_t **last)
{
    int n = 0;
    for (int i = 0; i < rh->nevents; i++)
        if (strcmp(rh->events[i].key, key) == 0) {
            n++;
            if (last) *last = &rh->events[i];
        }
    return n;
}

void rh_dump_log(const rh_t *rh, int i)
{
    wb_test_dump_file(rh->log[i]);
}

void rh_teardown(rh_t *rh)
{
    char sql[160], errstr[256], match[112];

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
        snprintf(match, sizeof(match), "*%s*", rh->tag);
        wb_test_redis_del_matching(rh->redis, match);
        wb_rc_free(rh->redis);
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
