/* bench_put.c — the producer side of the benchmarks (tests/bench/run), through the
 * public API only (wbcache.h), with every latency sample kept so the run can
 * plot a CDF.
 *
 *   bench_put sha CONFIG
 *       open a client (which SCRIPT LOADs the scripts) and print the put
 *       script's SHA1, for redis-benchmark's EVALSHA baseline.
 *   bench_put put CONFIG ENTITY OPS KEYS CONC BATCH cache|log CDF
 *       CONC threads share one client; each call is wb_put (BATCH 1) or a
 *       wb_put_batch of BATCH writes, 200-byte values, keys uniform over KEYS
 *       ids "b0".."b<KEYS-1>". A warm-up of min(OPS/10, 2000) ops is not
 *       counted. Prints one line:
 *         ops/s=… p50=… p99=… p999=… max=… (ms; per call) errors=…
 *       and writes CDF: "latency_ms fraction" at 500 quantiles.
 *   bench_put get CONFIG ENTITY OPS KEYS CONC CDF
 *       the same with wb_get, one key at a time: first writes the KEYS ids
 *       (200-byte values, wb_put_batch), then CONC threads read them (all
 *       hits). Prints the same line and CDF.
 *   bench_put e2e CONFIG ENTITY RATE SECS CONC OUT
 *       end to end: puts with ack log at RATE/s (open loop: call i is due at
 *       start + i/RATE; CONC threads take the due calls), each a new id, for
 *       SECS seconds, while wb-flusher runs. A trigger on the entity's table
 *       NOTIFYs each written key; latency = NOTIFY received - put call start.
 *       Prints one line:
 *         puts=… seen=… p50=… p90=… p99=… p999=… max=… (ms) put_p50=… late=…
 *       and writes OUT: one latency in ms per line (for the histogram).
 *       Needs the table created (it creates it via postgres.schema: create).
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "wb_config.h"
#include "wb_entry.h"
#include "wb_pg.h"
#include "wb_table.h"
#include "wbcache.h"

#define VALUE_LEN 200

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of sorted v[0..n): the ceil(q*n)-th smallest. */
static double q_ms(const uint64_t *v, size_t n, double q)
{
    if (n == 0) return 0;
    size_t i = (size_t)(q * (double)n + 0.999999);
    if (i < 1) i = 1;
    if (i > n) i = n;
    return (double)v[i - 1] / 1e6;
}

static wb_client_t *open_client(const char *path)
{
    char errstr[1024];
    wb_client_t *c = NULL;
    if (wb_client_open(path, NULL, NULL, &c, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "bench_put: %s\n", errstr);
        exit(1);
    }
    return c;
}

/* ------------------------------------------------------------------ put */

typedef struct put_run_s {
    wb_client_t *client;
    const char *entity;
    uint64_t ops, keys, batch, warm;
    wb_ack_t ack;
    int get; /* wb_get instead of wb_put */
    atomic_uint_fast64_t claimed;
    atomic_uint_fast64_t errors;
} put_run_t;

typedef struct put_worker_s {
    put_run_t *R;
    pthread_t thread;
    uint64_t rng;
    uint64_t *lat; /* per call, ns */
    size_t nlat, cap;
} put_worker_t;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void *put_worker(void *arg)
{
    put_worker_t *w = arg;
    put_run_t *R = w->R;
    char(*ids)[32] = malloc(R->batch * sizeof(*ids));
    char *vals = malloc(R->batch * VALUE_LEN);
    wb_write_t *writes = calloc(R->batch, sizeof(*writes));

    for (uint64_t j = 0; j < R->batch; j++)
        memset(vals + j * VALUE_LEN, 'a' + (int)(j % 26), VALUE_LEN);
    for (;;) {
        uint64_t start = atomic_fetch_add(&R->claimed, R->batch);
        if (start >= R->ops + R->warm) break;
        uint64_t n = R->batch, t0, dt;
        wb_err_t err;

        for (uint64_t j = 0; j < n; j++) {
            snprintf(ids[j], sizeof(ids[j]), "b%" PRIu64, rng_next(&w->rng) % R->keys);
            writes[j] = (wb_write_t){
                .entity = R->entity, .id = ids[j], .value = vals + j * VALUE_LEN, .len = VALUE_LEN};
        }
        t0 = now_ns();
        if (R->get) {
            wb_value_t v;
            err = wb_get(R->client, R->entity, ids[0], &v);
            wb_value_free(&v);
        } else if (n == 1)
            err = wb_put(R->client, R->entity, ids[0], vals, VALUE_LEN, R->ack, NULL);
        else
            err = wb_put_batch(R->client, writes, n, R->ack);
        dt = now_ns() - t0;
        if (err != WB_OK) atomic_fetch_add(&R->errors, 1);
        if (start < R->warm) continue;
        if (w->nlat == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
        }
        w->lat[w->nlat++] = dt;
    }
    free(ids);
    free(vals);
    free(writes);
    return NULL;
}

/* Writes the ids b0..b<keys-1> of entity (200-byte values), for the get run. */
static void fill_keys(wb_client_t *client, const char *entity, uint64_t keys)
{
    enum { CHUNK = 500 };
    static char ids[CHUNK][32], val[VALUE_LEN];
    wb_write_t writes[CHUNK];

    memset(val, 'g', sizeof(val));
    for (uint64_t k = 0; k < keys; k += CHUNK) {
        size_t n = keys - k < CHUNK ? (size_t)(keys - k) : CHUNK;
        for (size_t j = 0; j < n; j++) {
            snprintf(ids[j], sizeof(ids[j]), "b%" PRIu64, k + j);
            writes[j] =
                (wb_write_t){.entity = entity, .id = ids[j], .value = val, .len = VALUE_LEN};
        }
        if (wb_put_batch(client, writes, n, WB_ACK_CACHE) != WB_OK) {
            fprintf(stderr, "bench_put: filling the keys failed\n");
            exit(1);
        }
    }
}

static int cmd_put(const char *config, const char *entity, uint64_t ops, uint64_t keys,
                   unsigned conc, uint64_t batch, const char *ack, const char *cdf_path, int get)
{
    put_run_t R = {.entity = entity, .ops = ops, .keys = keys, .batch = batch, .get = get};
    put_worker_t *ws = calloc(conc, sizeof(*ws));
    uint64_t t_first = 0, t_end;

    R.ack = strcmp(ack, "log") == 0 ? WB_ACK_LOG : WB_ACK_CACHE;
    R.warm = ops / 10 < 2000 ? ops / 10 : 2000;
    R.warm -= R.warm % batch;
    R.client = open_client(config);
    if (get) fill_keys(R.client, entity, keys);
    /* The warm-up ops run first (they are claimed first); the clock starts
     * after they are claimed, a close enough cut for runs of >= 10x more. */
    for (unsigned i = 0; i < conc; i++) {
        ws[i].R = &R;
        ws[i].rng = 0x1234567ULL * (i + 1);
        pthread_create(&ws[i].thread, NULL, put_worker, &ws[i]);
    }
    while (atomic_load(&R.claimed) < R.warm)
        usleep(100);
    t_first = now_ns();
    for (unsigned i = 0; i < conc; i++)
        pthread_join(ws[i].thread, NULL);
    t_end = now_ns();
    wb_client_flush(R.client, 30000);

    size_t n = 0;
    for (unsigned i = 0; i < conc; i++)
        n += ws[i].nlat;
    uint64_t *all = malloc((n ? n : 1) * sizeof(*all));
    n = 0;
    for (unsigned i = 0; i < conc; i++) {
        memcpy(all + n, ws[i].lat, ws[i].nlat * sizeof(*all));
        n += ws[i].nlat;
        free(ws[i].lat);
    }
    qsort(all, n, sizeof(*all), cmp_u64);
    double secs = (double)(t_end - t_first) / 1e9;
    printf("ops/s=%.0f p50=%.4f p99=%.4f p999=%.4f max=%.4f errors=%" PRIu64 "\n",
           (double)(n * batch) / secs, q_ms(all, n, 0.5), q_ms(all, n, 0.99), q_ms(all, n, 0.999),
           n ? (double)all[n - 1] / 1e6 : 0.0, (uint64_t)atomic_load(&R.errors));
    FILE *f = fopen(cdf_path, "w");
    if (!f) {
        perror(cdf_path);
        return 1;
    }
    for (int i = 1; i <= 500; i++) {
        double q = i / 500.0;
        fprintf(f, "%.4f %.4f\n", q_ms(all, n, q), q);
    }
    fclose(f);
    free(all);
    free(ws);
    wb_client_close(R.client);
    return atomic_load(&R.errors) ? 1 : 0;
}

/* ------------------------------------------------------------------ e2e */

typedef struct e2e_s {
    wb_client_t *client;
    const char *entity;
    char tag[32];
    uint64_t total;
    double rate;
    uint64_t t0;
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t late, errors;
    uint64_t *t_put;          /* put call start, ns */
    uint64_t *put_lat;        /* put call duration, ns */
    _Atomic uint64_t *t_seen; /* NOTIFY received, ns (0 = not yet) */
} e2e_t;

static void *e2e_worker(void *arg)
{
    e2e_t *E = arg;
    char id[64], val[VALUE_LEN];

    memset(val, 'e', sizeof(val));
    for (;;) {
        uint64_t i = atomic_fetch_add(&E->next, 1);
        if (i >= E->total) break;
        uint64_t due = E->t0 + (uint64_t)((double)i * 1e9 / E->rate), now = now_ns();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000000000u),
                                  (long)((due - now) % 1000000000u)};
            nanosleep(&ts, NULL);
        } else if (now - due > 1000000) {
            atomic_fetch_add(&E->late, 1); /* started > 1 ms behind schedule */
        }
        snprintf(id, sizeof(id), "%s-%" PRIu64, E->tag, i);
        E->t_put[i] = now_ns();
        if (wb_put(E->client, E->entity, id, val, sizeof(val), WB_ACK_LOG, NULL) != WB_OK)
            atomic_fetch_add(&E->errors, 1);
        E->put_lat[i] = now_ns() - E->t_put[i];
    }
    return NULL;
}

static int cmd_e2e(const char *config, const char *entity, double rate, double secs, unsigned conc,
                   const char *out_path)
{
    char errstr[1024], sql[1024], qt[WB_PG_QUOTED_MAX];
    wb_config_t *conf = NULL;
    PGconn *pg = NULL;
    e2e_t E = {.entity = entity, .rate = rate};

    if (wb_config_load(config, &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    const wb_entity_t *ent = wb_config_entity(conf, entity);
    if (!ent) {
        fprintf(stderr, "unknown entity %s\n", entity);
        return 2;
    }
    if (wb_pg_connect(conf, &pg, errstr, sizeof(errstr)) != WB_OK ||
        wb_table_create(pg, ent, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    snprintf(sql, sizeof(sql),
             "SET client_min_messages = warning;"
             "CREATE OR REPLACE FUNCTION wbbench_notify() RETURNS trigger LANGUAGE plpgsql AS "
             "$$BEGIN PERFORM pg_notify('wbbench_e2e', NEW.key); RETURN NULL; END$$;"
             "DROP TRIGGER IF EXISTS wbbench_e2e ON %s;"
             "CREATE TRIGGER wbbench_e2e AFTER INSERT OR UPDATE ON %s FOR EACH ROW "
             "EXECUTE FUNCTION wbbench_notify();"
             "LISTEN wbbench_e2e",
             qt, qt);
    if (wb_pg_exec_ok(pg, sql, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    snprintf(E.tag, sizeof(E.tag), "e%ld", (long)time(NULL));
    E.total = (uint64_t)(rate * secs);
    E.t_put = calloc(E.total, sizeof(*E.t_put));
    E.put_lat = calloc(E.total, sizeof(*E.put_lat));
    E.t_seen = calloc(E.total, sizeof(*E.t_seen));
    E.client = open_client(config);

    pthread_t *th = calloc(conc, sizeof(*th));
    E.t0 = now_ns() + 100000000u;
    for (unsigned i = 0; i < conc; i++)
        pthread_create(&th[i], NULL, e2e_worker, &E);

    /* This thread listens until every put is seen or 30 s after the last due. */
    uint64_t seen = 0, deadline = E.t0 + (uint64_t)(secs * 1e9) + 30000000000u;
    size_t taglen = strlen(E.tag);
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    while (seen < E.total && now_ns() < deadline) {
        poll(&pfd, 1, 100);
        uint64_t t = now_ns();
        PQconsumeInput(pg);
        PGnotify *nt;
        while ((nt = PQnotifies(pg))) {
            const char *k = nt->extra;
            if (strncmp(k, E.tag, taglen) == 0 && k[taglen] == '-') {
                uint64_t i = strtoull(k + taglen + 1, NULL, 10);
                uint64_t zero = 0;
                if (i < E.total && atomic_compare_exchange_strong(&E.t_seen[i], &zero, t)) seen++;
            }
            PQfreemem(nt);
        }
    }
    for (unsigned i = 0; i < conc; i++)
        pthread_join(th[i], NULL);

    uint64_t *lat = malloc((E.total ? E.total : 1) * sizeof(*lat)), nl = 0;
    uint64_t *pl = malloc((E.total ? E.total : 1) * sizeof(*pl));
    for (uint64_t i = 0; i < E.total; i++) {
        pl[i] = E.put_lat[i];
        if (E.t_seen[i] && E.t_put[i]) lat[nl++] = E.t_seen[i] - E.t_put[i];
    }
    qsort(lat, nl, sizeof(*lat), cmp_u64);
    qsort(pl, E.total, sizeof(*pl), cmp_u64);
    printf("puts=%" PRIu64 " seen=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f "
           "put_p50=%.3f put_p99=%.3f late=%" PRIu64 " errors=%" PRIu64 "\n",
           E.total, nl, q_ms(lat, nl, 0.5), q_ms(lat, nl, 0.9), q_ms(lat, nl, 0.99),
           q_ms(lat, nl, 0.999), nl ? (double)lat[nl - 1] / 1e6 : 0.0, q_ms(pl, E.total, 0.5),
           q_ms(pl, E.total, 0.99), (uint64_t)atomic_load(&E.late),
           (uint64_t)atomic_load(&E.errors));
    FILE *f = fopen(out_path, "w");
    if (f) {
        for (uint64_t i = 0; i < nl; i++)
            fprintf(f, "%.3f\n", (double)lat[i] / 1e6);
        fclose(f);
    }
    snprintf(sql, sizeof(sql), "DROP TRIGGER IF EXISTS wbbench_e2e ON %s", qt);
    wb_pg_exec_ok(pg, sql, errstr, sizeof(errstr));
    PQfinish(pg);
    wb_client_close(E.client);
    wb_config_destroy(conf);
    free(th);
    free(lat);
    free(pl);
    free(E.t_put);
    free(E.put_lat);
    free(E.t_seen);
    return nl == E.total && atomic_load(&E.errors) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sha") == 0) {
        wb_client_t *c = open_client(argv[2]);
        printf("%s\n", wb_entry_script_sha(WB_ENTRY_SCRIPT_PUT));
        wb_client_close(c);
        return 0;
    }
    if (argc == 10 && strcmp(argv[1], "put") == 0)
        return cmd_put(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10),
                       (unsigned)atoi(argv[6]), strtoull(argv[7], NULL, 10), argv[8], argv[9], 0);
    if (argc == 8 && strcmp(argv[1], "get") == 0)
        return cmd_put(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10),
                       (unsigned)atoi(argv[6]), 1, "cache", argv[7], 1);
    if (argc == 8 && strcmp(argv[1], "e2e") == 0)
        return cmd_e2e(argv[2], argv[3], atof(argv[4]), atof(argv[5]), (unsigned)atoi(argv[6]),
                       argv[7]);
    fprintf(stderr, "usage: see the comment at the top of bench_put.c\n");
    return 2;
}
