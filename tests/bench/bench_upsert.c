/* bench_upsert.c — the PostgreSQL side of the benchmarks (tests/bench/run): the
 * physical-limit baselines of the flusher (raw upsert and COPY from memory, no
 * Kafka), the preloading of the topics, and the "all rows are in" wait.
 *
 *   bench_upsert raw     CONFIG N K DIST BATCH   coalesce + wb_table_upsert, one txn per batch
 *   bench_upsert values  CONFIG N K DIST BATCH   same, with a multi-row VALUES statement
 *   bench_upsert copy    CONFIG N K DIST BATCH   COPY every event into an empty table
 *                                                 without constraints, one txn per batch
 *   bench_upsert produce CONFIG N K DIST [TOPIC [wb|json]]
 *                          create TOPIC (default kafka.topics.changes, with
 *                          kafka.partitions) and produce the events: "wb" = the
 *                          project's change events (key, value, headers; via
 *                          wb_event), "json" = the same rows as Kafka Connect
 *                          JSON-with-schema records (for the peer). Prints one
 *                          mark per partition: "KEY VERSION" of its last event.
 *   bench_upsert refresh CONFIG N K DIST         N refresh requests to kafka.topics.refresh
 *   bench_upsert wait    CONFIG N K DIST SECS MARKS
 *                          wait until every mark of MARKS is in the table (cheap
 *                          key lookups every 20 ms; a partition is applied in
 *                          order, so then all is in), then check the whole final
 *                          state once. Prints the seconds waited. Exit 1 on
 *                          timeout or a wrong final state.
 *   bench_upsert drop    CONFIG N K DIST [TOPIC...]  delete the config's topics (and TOPICs)
 *
 * DIST is "uniform" or "zipf" (s = 1.1 over K ranks). The event stream is
 * the same for the same N, K, DIST (fixed seed); event i has version 1e15+i
 * and a 200-byte value, so the final state is the last event of every key.
 * Uses the first entity of CONFIG (its table is dropped and created by
 * raw/values/copy; wait reads it). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_coalesce.h"
#include "wb_config.h"
#include "wb_entry.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_pg.h"
#include "wb_table.h"
#include "wb_util.h"

#define VBASE     INT64_C(1000000000000000)
#define VALUE_LEN 200
#define MAX_PARTS 256

static int *gen_keys(long n, long k, const char *dist)
{
    int *keys = malloc((size_t)n * sizeof(*keys));
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    double *cdf = NULL;

    if (strcmp(dist, "zipf") == 0) {
        cdf = malloc((size_t)k * sizeof(*cdf));
        double sum = 0;
        for (long r = 0; r < k; r++)
            cdf[r] = (sum += 1.0 / pow((double)(r + 1), 1.1));
        for (long r = 0; r < k; r++)
            cdf[r] /= sum;
    } else if (strcmp(dist, "uniform") != 0) {
        fprintf(stderr, "unknown distribution %s\n", dist);
        exit(2);
    }
    for (long i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        if (!cdf) {
            keys[i] = (int)(s % (uint64_t)k);
            continue;
        }
        double u = (double)(s >> 11) / 9007199254740992.0;
        long lo = 0, hi = k - 1;
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        /* Scatter ranks over the key space so hot keys are not neighbours. */
        keys[i] = (int)((uint64_t)lo * 2654435761u % (uint64_t)k);
    }
    free(cdf);
    return keys;
}

/* The VALUE_LEN-byte text value of event i (room: VALUE_LEN + 1). */
static size_t value_of(long i, char *buf)
{
    int n = snprintf(buf, VALUE_LEN + 1, "value-%010ld-", i);
    memset(buf + n, 'x', (size_t)(VALUE_LEN - n));
    buf[VALUE_LEN] = '\0';
    return VALUE_LEN;
}

static PGconn *pg_open(const wb_config_t *conf)
{
    char errstr[512];
    PGconn *pg = NULL;
    if (wb_pg_connect(conf, &pg, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
    return pg;
}

static void exec_or_die(PGconn *pg, const char *sql)
{
    char errstr[512];
    if (wb_pg_exec_ok(pg, sql, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
}

/* Multi-row VALUES form of the same version-guarded upsert, for comparison. */
static int upsert_values(PGconn *pg, const wb_entity_t *ent, const wb_row_t *rows, size_t n)
{
    char qt[WB_PG_QUOTED_MAX];
    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    size_t cap = 256 + n * 40;
    char *sql = malloc(cap), *p = sql;
    const char **vals = malloc(n * 3 * sizeof(*vals));
    char(*vers)[24] = malloc(n * sizeof(*vers));
    p += sprintf(p, "INSERT INTO %s AS t (\"key\", \"value\", \"version\", \"deleted\") VALUES ",
                 qt);
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "%s($%zu,$%zu,$%zu::bigint,false)", i ? "," : "", 3 * i + 1, 3 * i + 2,
                     3 * i + 3);
        vals[3 * i] = rows[i].key;
        vals[3 * i + 1] = rows[i].value;
        snprintf(vers[i], sizeof(vers[i]), "%" PRId64, rows[i].version);
        vals[3 * i + 2] = vers[i];
    }
    sprintf(p, " ON CONFLICT (\"key\") DO UPDATE SET \"value\" = EXCLUDED.\"value\", "
               "\"version\" = EXCLUDED.\"version\", \"deleted\" = EXCLUDED.\"deleted\", "
               "\"updated_at\" = now() WHERE t.\"version\" < EXCLUDED.\"version\"");
    PGresult *res = PQexecParams(pg, sql, (int)(3 * n), NULL, vals, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "%s", PQerrorMessage(pg));
    PQclear(res);
    free(sql);
    free(vals);
    free(vers);
    return ok;
}

static void recreate_table(PGconn *pg, const wb_entity_t *ent, int plain)
{
    char errstr[512], sql[512], qt[WB_PG_QUOTED_MAX];

    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", qt);
    exec_or_die(pg, sql);
    if (plain) {
        /* COPY's baseline: the bytes of every event, no key, no guard. */
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE %s (\"key\" text, \"value\" text, \"version\" bigint, "
                 "\"deleted\" boolean, \"updated_at\" timestamptz DEFAULT now())",
                 qt);
        exec_or_die(pg, sql);
    } else if (wb_table_create(pg, ent, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
}

/* COPY rows [off, off+m) of the stream in text format, in one transaction. */
static void copy_batch(PGconn *pg, const char *qt, const int *keys, long off, long m, char *buf)
{
    char sql[512], val[VALUE_LEN + 1];
    char *p = buf;

    for (long j = 0; j < m; j++) {
        value_of(off + j, val);
        p += sprintf(p, "%d\t%s\t%" PRId64 "\tf\n", keys[off + j], val, VBASE + off + j);
    }
    exec_or_die(pg, "BEGIN");
    snprintf(sql, sizeof(sql), "COPY %s (\"key\", \"value\", \"version\", \"deleted\") FROM STDIN",
             qt);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fprintf(stderr, "%s", PQerrorMessage(pg));
        exit(1);
    }
    PQclear(res);
    if (PQputCopyData(pg, buf, (int)(p - buf)) != 1 || PQputCopyEnd(pg, NULL) != 1) {
        fprintf(stderr, "%s", PQerrorMessage(pg));
        exit(1);
    }
    res = PQgetResult(pg);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s", PQerrorMessage(pg));
        exit(1);
    }
    PQclear(res);
    while ((res = PQgetResult(pg)))
        PQclear(res);
    exec_or_die(pg, "COMMIT");
}

typedef enum { MODE_UNNEST, MODE_VALUES, MODE_COPY } raw_mode_t;

static int cmd_raw(const wb_config_t *conf, long n, long k, const char *dist, long batch,
                   raw_mode_t mode)
{
    static const char *names[] = {"unnest", "values", "copy"};
    const wb_entity_t *ent = &conf->entities[0];
    char errstr[512], qt[WB_PG_QUOTED_MAX];
    PGconn *pg = pg_open(conf);
    int *keys = gen_keys(n, k, dist);
    char(*kbuf)[16] = malloc((size_t)batch * sizeof(*kbuf));
    char(*vbuf)[VALUE_LEN + 1] = malloc((size_t)batch * sizeof(*vbuf));
    char *copybuf = malloc((size_t)batch * (VALUE_LEN + 64));
    fl_coalesce_item_t *items = malloc((size_t)batch * sizeof(*items));
    size_t *win = malloc((size_t)batch * sizeof(*win));
    wb_row_t *rows = malloc((size_t)batch * sizeof(*rows));
    size_t total_rows = 0;

    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    recreate_table(pg, ent, mode == MODE_COPY);
    int64_t t0 = wb_time_mono_us();
    for (long off = 0; off < n; off += batch) {
        long m = n - off < batch ? n - off : batch;
        if (mode == MODE_COPY) {
            copy_batch(pg, qt, keys, off, m, copybuf);
            total_rows += (size_t)m;
            continue;
        }
        for (long j = 0; j < m; j++) {
            int len = snprintf(kbuf[j], sizeof(kbuf[j]), "%d", keys[off + j]);
            value_of(off + j, vbuf[j]);
            items[j] = (fl_coalesce_item_t){0, kbuf[j], (size_t)len, VBASE + off + j};
        }
        size_t nw = fl_coalesce(items, (size_t)m, win);
        for (size_t j = 0; j < nw; j++)
            rows[j] =
                (wb_row_t){kbuf[win[j]],         items[win[j]].keylen, vbuf[win[j]], VALUE_LEN, 0,
                           items[win[j]].version};
        exec_or_die(pg, "BEGIN");
        if (mode == MODE_VALUES) {
            if (!upsert_values(pg, ent, rows, nw)) return 1;
        } else {
            wb_table_rows_t req = {ent, rows, nw};
            if (wb_table_upsert(pg, &req, NULL, errstr, sizeof(errstr)) != WB_OK) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
            }
        }
        exec_or_die(pg, "COMMIT");
        total_rows += nw;
    }
    double secs = (double)(wb_time_mono_us() - t0) / 1e6;
    printf("%s %s batch %ld: %ld events -> %zu rows in %.3f s: %.0f events/s, %.0f rows/s\n",
           names[mode], dist, batch, n, total_rows, secs, (double)n / secs,
           (double)total_rows / secs);
    PQfinish(pg);
    free(keys);
    free(kbuf);
    free(vbuf);
    free(copybuf);
    free(items);
    free(win);
    free(rows);
    return 0;
}

/* Delivery reports: the last event (by index) each partition took. */
static long g_last[MAX_PARTS];
static long g_failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    long i = (long)(intptr_t)msg->_private;
    (void)rk;
    (void)opaque;
    if (msg->err) {
        g_failed++;
        return;
    }
    if (msg->partition >= 0 && msg->partition < MAX_PARTS && i > g_last[msg->partition])
        g_last[msg->partition] = i;
}

static rd_kafka_t *producer_open(const wb_config_t *conf, int with_dr)
{
    char errstr[512];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;

    if (wb_kafka_conf_new(conf, "bench", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        rd_kafka_conf_set(kc, "linger.ms", "20", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "batch.size", "1000000", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr))) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
    if (with_dr) rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    if (wb_kafka_producer_new(kc, 1, &rk, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
    return rk;
}

static void create_topic(rd_kafka_t *rk, const char *topic, int partitions)
{
    char errstr[512];
    if (wb_kafka_create_topic(rk, topic, partitions, 30000, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        exit(1);
    }
}

static void produce_one(rd_kafka_t *rk, const char *topic, const void *key, size_t keylen,
                        const void *val, size_t vallen, rd_kafka_headers_t *h, long i)
{
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                                    RD_KAFKA_V_VALUE((void *)val, vallen), RD_KAFKA_V_HEADERS(h),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 10);
    if (err) {
        fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
        exit(1);
    }
}

/* Kafka Connect's JsonConverter (schemas.enable=true) envelopes. */
#define JSON_KEY_SCHEMA                                                                            \
    "{\"schema\":{\"type\":\"struct\",\"optional\":false,\"name\":\"wbbench.Key\",\"fields\":["    \
    "{\"field\":\"key\",\"type\":\"string\",\"optional\":false}]},\"payload\":"
#define JSON_VALUE_SCHEMA                                                                          \
    "{\"schema\":{\"type\":\"struct\",\"optional\":false,\"name\":\"wbbench.Value\",\"fields\":["  \
    "{\"field\":\"value\",\"type\":\"string\",\"optional\":true},"                                 \
    "{\"field\":\"version\",\"type\":\"int64\",\"optional\":false},"                               \
    "{\"field\":\"deleted\",\"type\":\"boolean\",\"optional\":false}]},\"payload\":"

/* The cache key of id as the library writes it: "{N}" + prefix + id, N
 * the id's dirty-index shard, so the flusher clean-marks every row it
 * writes (a key without the tag is an old layout's: nothing to mark). */
static int cache_key(const wb_config_t *conf, const wb_entity_t *ent, int id, char *key,
                     size_t size)
{
    char body[64];
    int bl = snprintf(body, sizeof(body), "%s%d", ent->prefix, id);
    int shard = wb_entry_shard_of(body, (size_t)bl, conf->redis.dirty_shards);
    return snprintf(key, size, "{%d}%s", shard, body);
}

static int cmd_produce(const wb_config_t *conf, long n, long k, const char *dist, const char *topic,
                       const char *format)
{
    char key[64], val[VALUE_LEN + 1], jkey[256], jval[1024];
    int *keys = gen_keys(n, k, dist);
    const wb_entity_t *ent = &conf->entities[0];
    int json = strcmp(format, "json") == 0;
    rd_kafka_t *rk = producer_open(conf, 1);

    for (int p = 0; p < MAX_PARTS; p++)
        g_last[p] = -1;
    create_topic(rk, topic, conf->kafka.partitions);
    if (!json) create_topic(rk, conf->kafka.topic_dead_letter, 1);
    for (long i = 0; i < n; i++) {
        size_t vl = value_of(i, val);
        if (json) {
            int kl = snprintf(jkey, sizeof(jkey), JSON_KEY_SCHEMA "{\"key\":\"%d\"}}", keys[i]);
            int jl = snprintf(jval, sizeof(jval),
                              JSON_VALUE_SCHEMA "{\"value\":\"%s\",\"version\":%" PRId64
                                                ",\"deleted\":false}}",
                              val, VBASE + i);
            produce_one(rk, topic, jkey, (size_t)kl, jval, (size_t)jl, NULL, i);
        } else {
            int kl = cache_key(conf, ent, keys[i], key, sizeof(key));
            wb_event_t ev = {.key = key,
                             .keylen = (size_t)kl,
                             .value = val,
                             .valuelen = vl,
                             .version = VBASE + i,
                             .time_us = wb_time_real_us(),
                             .entity = ent->name,
                             .entitylen = strlen(ent->name)};
            rd_kafka_headers_t *h = NULL;
            if (wb_event_to_rd_headers(&ev, &h) != WB_OK) {
                fprintf(stderr, "cannot encode event %ld\n", i);
                return 1;
            }
            produce_one(rk, topic, key, (size_t)kl, val, vl, h, i);
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 300000) != RD_KAFKA_RESP_ERR_NO_ERROR || g_failed) {
        fprintf(stderr, "produce: %ld events not delivered\n", g_failed);
        return 1;
    }
    rd_kafka_destroy(rk);
    for (int p = 0; p < MAX_PARTS; p++)
        if (g_last[p] >= 0) printf("%d %" PRId64 "\n", keys[g_last[p]], VBASE + g_last[p]);
    free(keys);
    return 0;
}

static int cmd_refresh(const wb_config_t *conf, long n, long k, const char *dist)
{
    char key[64];
    int *keys = gen_keys(n, k, dist);
    const wb_entity_t *ent = &conf->entities[0];
    rd_kafka_t *rk = producer_open(conf, 1);

    create_topic(rk, conf->kafka.topic_refresh, conf->kafka.partitions);
    for (long i = 0; i < n; i++) {
        int kl = cache_key(conf, ent, keys[i], key, sizeof(key));
        wb_event_t ev = {.key = key,
                         .keylen = (size_t)kl,
                         .kind = WB_EVENT_REFRESH,
                         .time_us = wb_time_real_us(),
                         .entity = ent->name,
                         .entitylen = strlen(ent->name)};
        rd_kafka_headers_t *h = NULL;
        if (wb_event_to_rd_headers(&ev, &h) != WB_OK) {
            fprintf(stderr, "cannot encode refresh request %ld\n", i);
            return 1;
        }
        produce_one(rk, conf->kafka.topic_refresh, key, (size_t)kl, NULL, 0, h, i);
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 300000) != RD_KAFKA_RESP_ERR_NO_ERROR || g_failed) {
        fprintf(stderr, "refresh: %ld requests not delivered\n", g_failed);
        return 1;
    }
    rd_kafka_destroy(rk);
    free(keys);
    return 0;
}

static int cmd_drop(const wb_config_t *conf, char **extra, int nextra)
{
    char errstr[512];
    rd_kafka_t *rk = producer_open(conf, 0);
    wb_kafka_delete_topic(rk, conf->kafka.topic_changes, 30000, errstr, sizeof(errstr));
    wb_kafka_delete_topic(rk, conf->kafka.topic_dead_letter, 30000, errstr, sizeof(errstr));
    for (int i = 0; i < nextra; i++)
        wb_kafka_delete_topic(rk, extra[i], 30000, errstr, sizeof(errstr));
    rd_kafka_destroy(rk);
    return 0;
}

/* True once every mark (key, version) is in the table at that version or newer. */
static int marks_in(PGconn *pg, const char *qt, char marks[][24], const int64_t *vers, int nm)
{
    char sql[512], arr[MAX_PARTS * 26] = "{";
    const char *params[1] = {arr};
    int in = 0;

    for (int m = 0; m < nm; m++)
        snprintf(arr + strlen(arr), sizeof(arr) - strlen(arr), "%s\"%s\"", m ? "," : "", marks[m]);
    strcat(arr, "}");
    snprintf(sql, sizeof(sql),
             "SELECT \"key\", \"version\" FROM %s WHERE \"key\" = ANY($1::text[])", qt);
    PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int r = 0; r < PQntuples(res); r++)
            for (int m = 0; m < nm; m++)
                if (strcmp(PQgetvalue(res, r, 0), marks[m]) == 0 &&
                    strtoll(PQgetvalue(res, r, 1), NULL, 10) >= vers[m])
                    in++;
    PQclear(res);
    return in == nm;
}

static int cmd_wait(const wb_config_t *conf, long n, long k, const char *dist, int secs,
                    const char *marks_path)
{
    int *keys = gen_keys(n, k, dist);
    int64_t *last = calloc((size_t)k, sizeof(*last));
    char sql[512], qt[WB_PG_QUOTED_MAX], want[64];
    char marks[MAX_PARTS][24];
    int64_t vers[MAX_PARTS], sum = 0;
    int nm = 0;
    FILE *f = fopen(marks_path, "r");

    if (!f) {
        perror(marks_path);
        return 1;
    }
    while (nm < MAX_PARTS && fscanf(f, "%23s %" SCNd64, marks[nm], &vers[nm]) == 2)
        nm++;
    fclose(f);
    /* Sum of (version - VBASE) over the final rows: exact in 64 bits. */
    for (long i = 0; i < n; i++)
        last[keys[i]] = i + 1;
    for (long r = 0; r < k; r++)
        sum += last[r] ? last[r] - 1 : 0;
    snprintf(want, sizeof(want), "%" PRId64, sum);
    wb_pg_quote_ident(conf->entities[0].table, qt, sizeof(qt));
    PGconn *pg = pg_open(conf);
    PQclear(PQexec(pg, "SET client_min_messages = error"));
    int64_t t0 = wb_time_mono_us();
    while (!marks_in(pg, qt, marks, vers, nm)) {
        if (wb_time_mono_us() - t0 > (int64_t)secs * 1000000) {
            fprintf(stderr, "timeout waiting for the last event of every partition\n");
            return 1;
        }
        usleep(20000);
    }
    double waited = (double)(wb_time_mono_us() - t0) / 1e6;
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(version - %" PRId64 "), 0)::text FROM %s",
             VBASE, qt);
    PGresult *res = PQexec(pg, sql);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), want) == 0;
    if (!ok)
        fprintf(stderr, "wrong final state in %s: sum %s, want %s\n", qt,
                PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?", want);
    PQclear(res);
    PQfinish(pg);
    printf("%.3f\n", waited);
    free(keys);
    free(last);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    char errstr[2048];
    wb_config_t *conf = NULL;

    if (argc < 6) {
        fprintf(stderr, "usage: see the comment at the top of bench_upsert.c\n");
        return 2;
    }
    if (wb_config_load(argv[2], &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    long n = atol(argv[3]), k = atol(argv[4]);
    const char *dist = argv[5];
    int rc = 2;
    if (strcmp(argv[1], "raw") == 0 && argc > 6)
        rc = cmd_raw(conf, n, k, dist, atol(argv[6]), MODE_UNNEST);
    else if (strcmp(argv[1], "values") == 0 && argc > 6)
        rc = cmd_raw(conf, n, k, dist, atol(argv[6]), MODE_VALUES);
    else if (strcmp(argv[1], "copy") == 0 && argc > 6)
        rc = cmd_raw(conf, n, k, dist, atol(argv[6]), MODE_COPY);
    else if (strcmp(argv[1], "produce") == 0)
        rc = cmd_produce(conf, n, k, dist, argc > 6 ? argv[6] : conf->kafka.topic_changes,
                         argc > 7 ? argv[7] : "wb");
    else if (strcmp(argv[1], "refresh") == 0)
        rc = cmd_refresh(conf, n, k, dist);
    else if (strcmp(argv[1], "drop") == 0)
        rc = cmd_drop(conf, argv + 6, argc - 6);
    else if (strcmp(argv[1], "wait") == 0 && argc > 7)
        rc = cmd_wait(conf, n, k, dist, atoi(argv[6]), argv[7]);
    wb_config_destroy(conf);
    return rc;
}
