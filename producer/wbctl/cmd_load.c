/* cmd_load.c — `wbctl load`: a load generator over one shared client, with a ground-truth file.
 *
 * C threads share one wb_client_t and claim work from one atomic counter
 * (one op, or one batch of --batch ops). Each op picks its type from
 * --mix and its key from --dist; a write's value is a deterministic
 * function of (key, seq) (load_util.c), so the ground truth only keeps
 * (version, seq, put|del) per key and rebuilds the bytes when written.
 *
 * Ground-truth file (--truth FILE), one line per key that had at least
 * one acknowledged write, sorted by key index:
 *     ID <TAB> VERSION <TAB> put|del <TAB> VALUE-HEX ("-" for del)
 * VERSION is the highest version whose write returned WB_OK. A checker
 * compares PostgreSQL with: key = ID, version = VERSION, deleted = (del),
 * and for put value = decode(HEX, 'hex') (bytea) or
 * convert_from(decode(HEX, 'hex'), 'UTF8') (text; jsonb compared as
 * value::text, which load's canonical JSON matches byte for byte).
 * PostgreSQL may hold a HIGHER version only for a key where a write failed
 * (the report counts errors): a write can reach Redis and still fail its
 * acknowledgement (ack: log timeout), and then it is delivered later.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "load_util.h"
#include "wb_cli.h"
#include "wb_loop.h"
#include "wb_pg.h"
#include "wb_rand.h"
#include "wb_table.h"
#include "wb_util.h"
#include "wbctl.h"

#define TRUTH_STRIPES 256
#define ID_MAX        128

typedef struct truth_s {
    int64_t version; /* 0 = no acknowledged write */
    uint64_t seq;
    int is_del;
} truth_t;

typedef struct load_opts_s {
    uint64_t ops, keys, value_size, concurrency, batch, seed;
    wbl_dist_t dist;
    wbl_mix_t mix;
    wb_ack_t ack;
    const char *entity;
    const char *truth_path;
    const char *id_prefix;
    const char *dist_str, *mix_str;
} load_opts_t;

typedef struct load_s {
    load_opts_t o;
    wb_client_t *client;
    const wb_config_t *conf;
    const wb_entity_t *ent;
    wbl_zipf_t *zipf;
    atomic_uint_fast64_t claimed; /* ops handed out */
    atomic_uint_fast64_t done;    /* ops finished */
    atomic_int running;           /* worker threads still running */
    truth_t *truth;
    pthread_mutex_t stripes[TRUTH_STRIPES];
} load_t;

typedef struct worker_s {
    load_t *L;
    pthread_t thread;
    uint64_t rng;
    uint64_t seq; /* next write sequence number: thread index << 40 | n */
    wbl_hist_t write_lat, read_lat;
    uint64_t errs[WB_ERR__COUNT];
    uint64_t nput, nget, ndel, nthrough, hits, loaded, notfound;
} worker_t;

static int usage(FILE *out)
{
    fprintf(out, "usage: wbctl [-c FILE] load [OPTIONS]\n"
                 "  --ops N             operations in total (default 100000; k/m suffixes)\n"
                 "  --keys K            distinct keys (default 10000)\n"
                 "  --dist D            uniform | zipf:S (default uniform)\n"
                 "  --value-size B      bytes per value (default 200)\n"
                 "  --concurrency C     threads sharing one client (default 4)\n"
                 "  --ack A             cache | log | replica: acknowledgement mode (default:\n"
                 "                      producer.ack)\n"
                 "  --mix M             e.g. put=80,get=15,del=5 (default put=100); through=N\n"
                 "                      adds write-through puts (wb_put_through)\n"
                 "  --batch N           writes per pipelined wb_put_batch call (default 1)\n"
                 "  --entity NAME       entity to write (default: the first in the config)\n"
                 "  --id-prefix STR     ids are STR0 .. STR(K-1) (default \"load-\")\n"
                 "  --truth FILE        write the ground truth (format: see cmd_load.c)\n"
                 "  --seed S            random seed (default: random)\n"
                 "Latency is per op, or per batch call for batched writes.\n");
    return out == stderr ? 2 : 0;
}

static int parse_opts(int argc, char **argv, const wb_config_t *conf, load_opts_t *o)
{
    static const struct option lopts[] = {{"ops", required_argument, NULL, 'n'},
                                          {"keys", required_argument, NULL, 'k'},
                                          {"dist", required_argument, NULL, 'd'},
                                          {"value-size", required_argument, NULL, 'v'},
                                          {"concurrency", required_argument, NULL, 'C'},
                                          {"ack", required_argument, NULL, 'a'},
                                          {"mix", required_argument, NULL, 'm'},
                                          {"batch", required_argument, NULL, 'b'},
                                          {"entity", required_argument, NULL, 'e'},
                                          {"truth", required_argument, NULL, 't'},
                                          {"seed", required_argument, NULL, 's'},
                                          {"id-prefix", required_argument, NULL, 'p'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    char err[256];
    int c;

    memset(o, 0, sizeof(*o));
    o->ops = 100000;
    o->keys = 10000;
    o->value_size = 200;
    o->concurrency = 4;
    o->batch = 1;
    o->seed = wb_random_seed();
    o->ack = WB_ACK_DEFAULT;
    o->id_prefix = "load-";
    o->dist_str = "uniform";
    o->mix_str = "put=100";
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        int bad = 0;

        switch (c) {
        case 'n':
            bad = wbl_parse_count(optarg, UINT64_C(1) << 40, &o->ops);
            break;
        case 'k':
            bad = wbl_parse_count(optarg, UINT64_C(1) << 30, &o->keys);
            break;
        case 'v':
            bad = strcmp(optarg, "0") == 0 ? (o->value_size = 0, 0)
                                           : wbl_parse_count(optarg, 64 << 20, &o->value_size);
            break;
        case 'C':
            bad = wbl_parse_count(optarg, 1024, &o->concurrency);
            break;
        case 'b':
            bad = wbl_parse_count(optarg, 100000, &o->batch);
            break;
        case 's':
            bad = wbl_parse_count(optarg, UINT64_MAX, &o->seed);
            break;
        case 'a':
            bad = wbctl_parse_ack(optarg, &o->ack);
            break;
        case 'd':
            o->dist_str = optarg;
            break;
        case 'm':
            o->mix_str = optarg;
            break;
        case 'e':
            o->entity = optarg;
            break;
        case 't':
            o->truth_path = optarg;
            break;
        case 'p':
            o->id_prefix = optarg;
            break;
        case 'h':
            return usage(stdout) + 10; /* 10: done, exit 0 */
        default:
            return usage(stderr);
        }
        if (bad) {
            const char *name = "?";

            for (const struct option *lo = lopts; lo->name; lo++)
                if (lo->val == c) name = lo->name;
            fprintf(stderr, "wbctl: load: bad value for --%s: \"%s\"\n", name, optarg);
            return 2;
        }
    }
    if (optind != argc) return usage(stderr);
    if (wbl_parse_dist(o->dist_str, &o->dist, err, sizeof(err)) != 0 ||
        wbl_parse_mix(o->mix_str, &o->mix, err, sizeof(err)) != 0) {
        fprintf(stderr, "wbctl: load: %s\n", err);
        return 2;
    }
    if (!o->entity) {
        if (conf->nentities == 0) {
            fprintf(stderr, "wbctl: load: the config has no entities\n");
            return 2;
        }
        o->entity = conf->entities[0].name;
    }
    if (!wb_config_entity(conf, o->entity)) {
        fprintf(stderr, "wbctl: load: unknown entity \"%s\"\n", o->entity);
        return 2;
    }
    if (o->value_size > (uint64_t)conf->producer.max_value_bytes && o->mix.put > 0)
        fprintf(stderr,
                "wbctl: load: warning: --value-size %" PRIu64
                " is above producer.max_value_bytes (%d): puts will fail\n",
                o->value_size, conf->producer.max_value_bytes);
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t pick_key(load_t *L, worker_t *w)
{
    if (L->zipf) return wbl_zipf_sample(L->zipf, wb_rand_unit(&w->rng));
    return wb_rand_next(&w->rng) % L->o.keys;
}

static void truth_note(load_t *L, uint64_t k, int64_t version, uint64_t seq, int is_del)
{
    pthread_mutex_t *mu = &L->stripes[k % TRUTH_STRIPES];

    if (!L->truth) return;
    pthread_mutex_lock(mu);
    if (version > L->truth[k].version) {
        L->truth[k].version = version;
        L->truth[k].seq = seq;
        L->truth[k].is_del = is_del;
    }
    pthread_mutex_unlock(mu);
}

static void do_get(load_t *L, worker_t *w, uint64_t k, char *id)
{
    wb_value_t v = {0};
    uint64_t t0 = now_ns();
    wb_err_t err = wb_get(L->client, L->o.entity, id, &v);

    wbl_hist_add(&w->read_lat, now_ns() - t0);
    w->nget++;
    if (err == WB_OK)
        v.hit ? w->hits++ : w->loaded++;
    else if (err == WB_ERR_NOT_FOUND)
        w->notfound++;
    else
        w->errs[err]++;
    (void)k;
    wb_value_free(&v);
}

/* One write: op is WBL_PUT, WBL_DEL (write-behind, --ack) or WBL_THROUGH. */
static void do_write(load_t *L, worker_t *w, uint64_t k, char *id, wbl_op_t op, char *vbuf)
{
    int is_del = op == WBL_DEL;
    uint64_t seq = w->seq++, t0;
    int64_t version = 0;
    size_t len = 0;
    wb_err_t err;

    if (!is_del) len = wbl_value(vbuf, L->o.value_size, L->ent->value_type, k, seq);
    t0 = now_ns();
    if (op == WBL_THROUGH)
        err = wb_put_through(L->client, L->o.entity, id, vbuf, len, &version);
    else if (is_del)
        err = wb_del(L->client, L->o.entity, id, L->o.ack, &version);
    else
        err = wb_put(L->client, L->o.entity, id, vbuf, len, L->o.ack, &version);
    wbl_hist_add(&w->write_lat, now_ns() - t0);
    op == WBL_THROUGH ? w->nthrough++ : is_del ? w->ndel++ : w->nput++;
    if (err == WB_OK)
        truth_note(L, k, version, seq, is_del);
    else
        w->errs[err]++;
}

/* One unit of --batch ops: gets and write-through puts run one by one, the
 * write-behind writes go in one wb_put_batch (one pipelined Redis round
 * trip). */
static void do_batch(load_t *L, worker_t *w, uint64_t n, wb_write_t *writes, uint64_t *keys,
                     uint64_t *seqs, char *ids, char *vbufs)
{
    size_t vstride = L->o.value_size + 64, nw = 0;
    uint64_t t0;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = pick_key(L, w);
        wbl_op_t op = wbl_mix_pick(&L->o.mix, (unsigned)(wb_rand_next(&w->rng) % 100));
        char *id = ids + nw * ID_MAX;

        snprintf(id, ID_MAX, "%s%" PRIu64, L->o.id_prefix, k);
        if (op == WBL_GET) {
            do_get(L, w, k, id);
            continue;
        }
        if (op == WBL_THROUGH) {
            do_write(L, w, k, id, op, vbufs + nw * vstride);
            continue;
        }
        writes[nw].entity = L->o.entity;
        writes[nw].id = id;
        seqs[nw] = w->seq++;
        keys[nw] = k;
        if (op == WBL_DEL) {
            writes[nw].value = NULL;
            writes[nw].len = 0;
            w->ndel++;
        } else {
            char *vb = vbufs + nw * vstride;

            writes[nw].len = wbl_value(vb, L->o.value_size, L->ent->value_type, k, seqs[nw]);
            writes[nw].value = vb;
            w->nput++;
        }
        nw++;
    }
    if (nw == 0) return;
    t0 = now_ns();
    wb_put_batch(L->client, writes, nw, L->o.ack);
    wbl_hist_add(&w->write_lat, now_ns() - t0);
    for (size_t i = 0; i < nw; i++) {
        if (writes[i].err == WB_OK)
            truth_note(L, keys[i], writes[i].version, seqs[i], writes[i].value == NULL);
        else
            w->errs[writes[i].err]++;
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    load_t *L = w->L;
    uint64_t unit = L->o.batch;
    size_t vstride = L->o.value_size + 64;
    char *vbufs = malloc(vstride * unit);
    char *ids = malloc((size_t)ID_MAX * unit);
    wb_write_t *writes = calloc(unit, sizeof(*writes));
    uint64_t *keys = calloc(unit, sizeof(*keys)), *seqs = calloc(unit, sizeof(*seqs));

    if (!vbufs || !ids || !writes || !keys || !seqs) {
        fprintf(stderr, "wbctl: load: out of memory\n");
        goto done;
    }
    while (!wb_loop_stopping()) {
        uint64_t start = atomic_fetch_add(&L->claimed, unit), n;

        if (start >= L->o.ops) break;
        n = L->o.ops - start < unit ? L->o.ops - start : unit;
        if (unit > 1) {
            do_batch(L, w, n, writes, keys, seqs, ids, vbufs);
        } else {
            uint64_t k = pick_key(L, w);
            wbl_op_t op = wbl_mix_pick(&L->o.mix, (unsigned)(wb_rand_next(&w->rng) % 100));

            snprintf(ids, ID_MAX, "%s%" PRIu64, L->o.id_prefix, k);
            if (op == WBL_GET)
                do_get(L, w, k, ids);
            else
                do_write(L, w, k, ids, op, vbufs);
        }
        atomic_fetch_add(&L->done, n);
    }

done:
    free(seqs);
    free(keys);
    free(writes);
    free(ids);
    free(vbufs);
    atomic_fetch_sub(&L->running, 1);
    return NULL;
}

static void progress(load_t *L, double elapsed, int tty, int final)
{
    uint64_t done = atomic_load(&L->done);
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double frac = (double)done / (double)L->o.ops;
    double eta = rate > 0 ? (double)(L->o.ops - done) / rate : 0;

    if (tty) {
        char bar[31];
        int fill = (int)(frac * 30);

        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3.0f%%  %" PRIu64 "/%" PRIu64 " ops  %.0f ops/s  ETA %.0fs   %s",
                bar, frac * 100, done, L->o.ops, rate, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "wbctl load: %" PRIu64 "/%" PRIu64 " ops (%.0f%%), %.0f ops/s, ETA %.0fs\n",
                done, L->o.ops, frac * 100, rate, eta);
    }
}

static int write_truth(load_t *L)
{
    FILE *f = fopen(L->o.truth_path, "w");
    char *vbuf = malloc(L->o.value_size + 64), *hex = malloc(2 * (L->o.value_size + 64) + 1);
    uint64_t lines = 0;
    int rc = 0;

    if (!f || !vbuf || !hex) {
        fprintf(stderr, "wbctl: load: cannot write %s\n", L->o.truth_path);
        rc = 1;
        goto done;
    }
    for (uint64_t k = 0; k < L->o.keys; k++) {
        const truth_t *t = &L->truth[k];

        if (t->version == 0) continue;
        if (t->is_del) {
            fprintf(f, "%s%" PRIu64 "\t%" PRId64 "\tdel\t-\n", L->o.id_prefix, k, t->version);
        } else {
            size_t len = wbl_value(vbuf, L->o.value_size, L->ent->value_type, k, t->seq);

            wbl_hex(hex, vbuf, len);
            fprintf(f, "%s%" PRIu64 "\t%" PRId64 "\tput\t%s\n", L->o.id_prefix, k, t->version,
                    len ? hex : "");
        }
        lines++;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "wbctl: load: cannot write %s\n", L->o.truth_path);
        rc = 1;
        goto done;
    }
    f = NULL;
    printf("truth:       %" PRIu64 " keys written to %s\n", lines, L->o.truth_path);

done:
    if (f) fclose(f);
    free(hex);
    free(vbuf);
    return rc;
}

static void print_latency(const char *what, const wbl_hist_t *h)
{
    if (h->n == 0) return;
    printf("latency %-14s p50 %.3f ms  p99 %.3f ms  p999 %.3f ms  max %.3f ms  (%" PRIu64
           " samples)\n",
           what, wbl_hist_quantile(h, 0.50) / 1e6, wbl_hist_quantile(h, 0.99) / 1e6,
           wbl_hist_quantile(h, 0.999) / 1e6, (double)h->max / 1e6, h->n);
}

/* Read-through gets need the entity table; create it like the daemons do
 * (postgres.schema: create) so a fresh setup does not fail every miss. */
static void ensure_schema(const wb_config_t *conf)
{
    char errstr[512];
    PGconn *conn = NULL;

    if (conf->postgres.schema != WB_SCHEMA_CREATE) return;
    if (wb_pg_connect(conf, &conn, errstr, sizeof(errstr)) != WB_OK ||
        wb_table_ensure(conn, conf, errstr, sizeof(errstr)) != WB_OK)
        fprintf(stderr, "wbctl: load: warning: %s\n", errstr);
    PQfinish(conn);
}

int wbctl_cmd_load(const wbctl_opts_t *opts, int argc, char **argv)
{
    load_t *L = NULL;
    wb_config_t *conf = NULL;
    worker_t *workers = NULL;
    wbl_hist_t *wl = NULL, *rl = NULL;
    uint64_t errs[WB_ERR__COUNT] = {0}, nput = 0, nget = 0, ndel = 0, nthrough = 0, hits = 0,
             loaded = 0, notfound = 0, nerr = 0, t0, last = 0;
    double elapsed;
    int rc = 1, status, tty = isatty(STDERR_FILENO);
    char through[32] = "";
    uint64_t i;

    L = calloc(1, sizeof(*L));
    wl = calloc(1, sizeof(*wl));
    rl = calloc(1, sizeof(*rl));
    if (!L || !wl || !rl) goto done;
    conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf) {
        rc = 2;
        goto done;
    }
    status = parse_opts(argc, argv, conf, &L->o);
    if (status != 0) {
        wb_config_destroy(conf);
        rc = status >= 10 ? 0 : status;
        goto done;
    }
    L->conf = conf;
    L->client = wbctl_client_from_config(conf, &status);
    if (!L->client) {
        rc = status;
        goto done;
    }
    L->ent = wb_config_entity(L->conf, L->o.entity);
    if (L->o.dist.zipf && !(L->zipf = wbl_zipf_new(L->o.keys, L->o.dist.s))) goto done;
    if (L->o.truth_path && !(L->truth = calloc(L->o.keys, sizeof(*L->truth)))) goto done;
    for (i = 0; i < TRUTH_STRIPES; i++)
        pthread_mutex_init(&L->stripes[i], NULL);
    if (L->o.mix.get > 0 || L->o.mix.through > 0) ensure_schema(L->conf);
    workers = calloc(L->o.concurrency, sizeof(*workers));
    if (!workers) goto done;
    wb_loop_signals();

    fprintf(stderr,
            "wbctl load: entity %s, %" PRIu64 " ops over %" PRIu64
            " keys (%s), mix %s, value %" PRIu64 " B, concurrency %" PRIu64
            ", ack %s, batch %" PRIu64 "\n",
            L->o.entity, L->o.ops, L->o.keys, L->o.dist_str, L->o.mix_str, L->o.value_size,
            L->o.concurrency,
            L->o.ack == WB_ACK_LOG                    ? "log"
            : L->o.ack == WB_ACK_CACHE                ? "cache"
            : L->o.ack == WB_ACK_REPLICA              ? "replica"
            : L->conf->producer.ack == WB_ACK_LOG     ? "log (config)"
            : L->conf->producer.ack == WB_ACK_REPLICA ? "replica (config)"
                                                      : "cache (config)",
            L->o.batch);
    t0 = now_ns();
    atomic_store(&L->running, (int)L->o.concurrency);
    for (i = 0; i < L->o.concurrency; i++) {
        workers[i].L = L;
        workers[i].rng = L->o.seed ^ (0x9E3779B97F4A7C15ULL * (i + 1));
        workers[i].seq = (uint64_t)i << 40;
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "wbctl: load: cannot start thread %" PRIu64 "\n", i);
            atomic_fetch_sub(&L->running, (int)(L->o.concurrency - i));
            L->o.concurrency = i;
            break;
        }
    }
    while (atomic_load(&L->running) > 0) {
        usleep(tty ? 200000 : 100000);
        if (tty || now_ns() - last >= 5000000000ULL) {
            progress(L, (double)(now_ns() - t0) / 1e9, tty, 0);
            last = now_ns();
        }
    }
    for (i = 0; i < L->o.concurrency; i++)
        pthread_join(workers[i].thread, NULL);
    elapsed = (double)(now_ns() - t0) / 1e9;
    progress(L, elapsed, tty, 1);

    for (i = 0; i < L->o.concurrency; i++) {
        worker_t *w = &workers[i];

        wbl_hist_merge(wl, &w->write_lat);
        wbl_hist_merge(rl, &w->read_lat);
        nput += w->nput, nget += w->nget, ndel += w->ndel, nthrough += w->nthrough;
        hits += w->hits, loaded += w->loaded, notfound += w->notfound;
        for (int e = 0; e < WB_ERR__COUNT; e++) {
            errs[e] += w->errs[e];
            nerr += w->errs[e];
        }
    }
    /* ", through T" only for a mix with write-through: the line keeps its
     * shape for scripts that read it. */
    if (L->o.mix.through > 0) snprintf(through, sizeof(through), ", through %" PRIu64, nthrough);
    printf("ops:         %" PRIu64 " (put %" PRIu64 ", get %" PRIu64 ", del %" PRIu64
           "%s) in %.3f s\n",
           nput + nget + ndel + nthrough, nput, nget, ndel, through, elapsed);
    printf("throughput:  %.0f ops/s\n",
           elapsed > 0 ? (double)(nput + nget + ndel + nthrough) / elapsed : 0);
    printf("errors:      %" PRIu64 "\n", nerr);
    for (int e = 0; e < WB_ERR__COUNT; e++)
        if (errs[e]) printf("  %-22s %" PRIu64 "\n", wb_err2str((wb_err_t)e), errs[e]);
    if (nget)
        printf("gets:        hit %" PRIu64 ", loaded %" PRIu64 ", not found %" PRIu64 "\n", hits,
               loaded, notfound);
    {
        wb_stats_t st;

        memset(&st, 0, sizeof(st));
        wb_client_stats(L->client, &st, sizeof(st));
        /* Redis Cluster redirects met by the run's calls (0 on a standalone server). */
        printf("redis:       moved %" PRIu64 ", ask %" PRIu64 ", retries %" PRIu64 "\n",
               st.redis_moved, st.redis_ask, st.redis_retries);
    }
    print_latency(L->o.batch > 1 ? "write (batch)" : "write (op)", wl);
    print_latency("get (op)", rl);
    {
        uint64_t f0 = now_ns();
        wb_err_t ferr = wb_client_flush(L->client, L->conf->producer.kafka_timeout_ms);

        printf("kafka:       %s after the run in %.3f s\n",
               ferr == WB_OK ? "all events delivered" : "events still queued (sweeper covers them)",
               (double)(now_ns() - f0) / 1e9);
    }
    rc = nerr ? 1 : 0;
    if (L->truth && write_truth(L) != 0) rc = 1;

done:
    if (L) {
        wb_client_close(L->client);
        wbl_zipf_destroy(L->zipf);
        free(L->truth);
    }
    free(workers);
    free(rl);
    free(wl);
    free(L);
    return rc;
}
