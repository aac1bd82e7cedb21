/* bench_upsert.c — events/s into PostgreSQL: the raw upsert path (no Kafka) and
 * the producer side of a wb-flusher run, on the same generated rows.
 *
 *   bench_upsert raw     CONFIG N K DIST BATCH   coalesce + wb_upsert_rows, one txn per batch
 *   bench_upsert values  CONFIG N K DIST BATCH   same, with a multi-row VALUES statement
 *   bench_upsert produce CONFIG N K DIST         create the topic, produce the events
 *   bench_upsert wait    CONFIG N K DIST SECS    wait until the table holds the final state
 *   bench_upsert drop    CONFIG N K DIST         delete the topics
 *
 * DIST is "uniform" or "zipf" (s = 1.1 over K ranks). The event stream is
 * the same for the same N, K, DIST (fixed seed); event i has version 1e15+i,
 * so the final state is the last event of every key. Uses the first entity
 * of CONFIG (its table is dropped and created by raw/values). Built by
 * tests/bench/bench_flusher.sh. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_coalesce.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_pg.h"
#include "wb_schema.h"
#include "wb_upsert.h"
#include "wb_util.h"

#define VBASE INT64_C(1000000000000000)

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

static void value_of(long i, char *buf, size_t size)
{
    snprintf(
        buf, size,
        "value-%010ld-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        i);
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

static int cmd_raw(const wb_config_t *conf, long n, long k, const char *dist, long batch,
                   int use_values)
{
    const wb_entity_t *ent = &conf->entities[0];
    char errstr[512], sql[256], qt[WB_PG_QUOTED_MAX];
    PGconn *pg = pg_open(conf);
    int *keys = gen_keys(n, k, dist);
    char(*kbuf)[16] = malloc((size_t)batch * sizeof(*kbuf));
    char(*vbuf)[112] = malloc((size_t)batch * sizeof(*vbuf));
    wb_coalesce_item_t *items = malloc((size_t)batch * sizeof(*items));
    size_t *win = malloc((size_t)batch * sizeof(*win));
    wb_row_t *rows = malloc((size_t)batch * sizeof(*rows));
    size_t total_rows = 0;

    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", qt);
    exec_or_die(pg, sql);
    if (wb_schema_create(pg, ent, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    int64_t t0 = wb_time_mono_us();
    for (long off = 0; off < n; off += batch) {
        long m = n - off < batch ? n - off : batch;
        for (long j = 0; j < m; j++) {
            int len = snprintf(kbuf[j], sizeof(kbuf[j]), "%d", keys[off + j]);
            value_of(off + j, vbuf[j], sizeof(vbuf[j]));
            items[j] = (wb_coalesce_item_t){0, kbuf[j], (size_t)len, VBASE + off + j};
        }
        size_t nw = wb_coalesce(items, (size_t)m, win);
        for (size_t j = 0; j < nw; j++)
            rows[j] = (wb_row_t){
                kbuf[win[j]],         items[win[j]].keylen, vbuf[win[j]], strlen(vbuf[win[j]]), 0,
                items[win[j]].version};
        exec_or_die(pg, "BEGIN");
        if (use_values) {
            if (!upsert_values(pg, ent, rows, nw)) return 1;
        } else {
            char st[6];
            if (wb_upsert_rows(pg, ent, rows, nw, NULL, st, errstr, sizeof(errstr)) != WB_OK) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
            }
        }
        exec_or_die(pg, "COMMIT");
        total_rows += nw;
    }
    double secs = (double)(wb_time_mono_us() - t0) / 1e6;
    printf("%s %s: %ld events -> %zu rows in %.2f s: %.0f events/s, %.0f rows/s\n",
           use_values ? "values" : "unnest", dist, n, total_rows, secs, (double)n / secs,
           (double)total_rows / secs);
    PQfinish(pg);
    return 0;
}

static int cmd_produce(const wb_config_t *conf, long n, long k, const char *dist)
{
    char errstr[512], key[32], val[112];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    int *keys = gen_keys(n, k, dist);
    const wb_entity_t *ent = &conf->entities[0];

    if (wb_kafka_conf_new(conf, "bench", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        rd_kafka_conf_set(kc, "linger.ms", "20", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr)) ||
        wb_kafka_producer_new(kc, 1, &rk, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_create_topic(rk, conf->kafka.topic_changes, conf->kafka.partitions, 30000, errstr,
                              sizeof(errstr)) != WB_OK ||
        wb_kafka_create_topic(rk, conf->kafka.topic_dead_letter, 1, 30000, errstr,
                              sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof(key), "%s%d", ent->prefix, keys[i]);
        value_of(i, val, sizeof(val));
        wb_event_t ev = {.key = key,
                         .keylen = (size_t)kl,
                         .value = val,
                         .valuelen = strlen(val),
                         .version = VBASE + i,
                         .time_us = wb_time_real_us(),
                         .entity = ent->name,
                         .entitylen = strlen(ent->name)};
        rd_kafka_headers_t *h = NULL;
        wb_event_to_rd_headers(&ev, &h);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(conf->kafka.topic_changes),
                                 RD_KAFKA_V_KEY(key, (size_t)kl),
                                 RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_HEADERS(h),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
    }
    rd_kafka_flush(rk, 120000);
    rd_kafka_destroy(rk);
    return 0;
}

static int cmd_drop(const wb_config_t *conf)
{
    char errstr[512];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    if (wb_kafka_conf_new(conf, "bench", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_producer_new(kc, 0, &rk, errstr, sizeof(errstr)) != WB_OK)
        return 1;
    wb_kafka_delete_topic(rk, conf->kafka.topic_changes, 30000, errstr, sizeof(errstr));
    wb_kafka_delete_topic(rk, conf->kafka.topic_dead_letter, 30000, errstr, sizeof(errstr));
    rd_kafka_destroy(rk);
    return 0;
}

static int cmd_wait(const wb_config_t *conf, long n, long k, const char *dist, int secs)
{
    int *keys = gen_keys(n, k, dist);
    int64_t *last = calloc((size_t)k, sizeof(*last));
    char sql[256], qt[WB_PG_QUOTED_MAX], want[64];
    int64_t sum = 0;

    /* Sum of (version - VBASE) over the final rows: exact in 64 bits. */
    for (long i = 0; i < n; i++)
        last[keys[i]] = i + 1;
    for (long r = 0; r < k; r++)
        sum += last[r] ? last[r] - 1 : 0;
    snprintf(want, sizeof(want), "%" PRId64, sum);
    wb_pg_quote_ident(conf->entities[0].table, qt, sizeof(qt));
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(version - %" PRId64 "), 0)::text FROM %s",
             VBASE, qt);
    PGconn *pg = pg_open(conf);
    int64_t t0 = wb_time_mono_ms();
    while (wb_time_mono_ms() - t0 < (int64_t)secs * 1000) {
        PGresult *res = PQexec(pg, sql);
        int done =
            PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), want) == 0;
        PQclear(res);
        if (done) {
            printf("%.3f\n", (double)(wb_time_mono_ms() - t0) / 1000.0);
            return 0;
        }
        usleep(100000);
    }
    fprintf(stderr, "timeout waiting for the final state\n");
    return 1;
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
        rc = cmd_raw(conf, n, k, dist, atol(argv[6]), 0);
    else if (strcmp(argv[1], "values") == 0 && argc > 6)
        rc = cmd_raw(conf, n, k, dist, atol(argv[6]), 1);
    else if (strcmp(argv[1], "produce") == 0)
        rc = cmd_produce(conf, n, k, dist);
    else if (strcmp(argv[1], "drop") == 0)
        rc = cmd_drop(conf);
    else if (strcmp(argv[1], "wait") == 0 && argc > 6)
        rc = cmd_wait(conf, n, k, dist, atoi(argv[6]));
    wb_config_destroy(conf);
    return rc;
}
