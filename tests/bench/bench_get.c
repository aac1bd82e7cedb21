/* bench_get.c — bulk reads (tests/bench/run, section "read"), through the public API:
 * wb_get_many of N ids against N wb_get calls, hits and misses, in the same run.
 *
 *   bench_get get CONFIG ENTITY N ROUNDS
 *       Creates the entity's table if missing and inserts 2 x N x ROUNDS rows
 *       (200-byte values, ids new to this run). Each round takes 2N ids
 *       never read before: half are read with one wb_get_many (misses: one
 *       lookup pipeline, one query, one fill pipeline), the other half with
 *       N wb_get calls (misses), then both halves again the same way
 *       (hits). Rounds alternate which form goes first. Prints one line,
 *       medians over the rounds of the time to read N ids, in ms:
 *         n=… rounds=… hit_many=… hit_single=… miss_many=… miss_single=… errors=…
 *       errors counts wrong answers (an error, a miss read as a hit, a wrong value).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "wb_config.h"
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

static double median_ms(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return (double)v[n / 2] / 1e6;
}

/* The rows of this run: "<tag>-<g>" for g in [0, count). */
static int insert_rows(const char *config, const char *entity, const char *tag, size_t count)
{
    char errstr[1024], sql[1024], qt[WB_PG_QUOTED_MAX];
    wb_config_t *conf = NULL;
    const wb_entity_t *ent;
    PGconn *pg = NULL;
    int rc = 1;

    if (wb_config_load(config, &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    if (!(ent = wb_config_entity(conf, entity))) {
        fprintf(stderr, "unknown entity %s\n", entity);
        goto done;
    }
    if (wb_pg_connect(conf, &pg, errstr, sizeof(errstr)) != WB_OK ||
        wb_table_create(pg, ent, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        goto done;
    }
    wb_pg_quote_ident(ent->table, qt, sizeof(qt));
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (key, value, version) SELECT '%s-' || g, repeat('v', %d), 1 "
             "FROM generate_series(0, %zu) g",
             qt, tag, VALUE_LEN, count - 1);
    if (wb_pg_exec_ok(pg, sql, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        goto done;
    }
    rc = 0;

done:
    if (pg) PQfinish(pg);
    wb_config_destroy(conf);
    return rc;
}

/* One wb_get_many of ids[0..n); returns the wrong answers. */
static unsigned read_many(wb_client_t *c, const char *entity, const char *const *ids, size_t n,
                          int want_hit, wb_value_t *values, wb_err_t *errs)
{
    wb_get_many_t out = {.size = sizeof(out), .values = values, .errs = errs};
    unsigned bad = 0;

    wb_get_many(c, entity, ids, n, &out);
    for (size_t i = 0; i < n; i++) {
        bad += errs[i] != WB_OK || values[i].hit != want_hit || values[i].len != VALUE_LEN;
        wb_value_free(&values[i]);
    }
    return bad;
}

/* n wb_get calls; returns the wrong answers. */
static unsigned read_single(wb_client_t *c, const char *entity, const char *const *ids, size_t n,
                            int want_hit)
{
    unsigned bad = 0;

    for (size_t i = 0; i < n; i++) {
        wb_value_t v = {0};

        bad += wb_get(c, entity, ids[i], &v) != WB_OK || v.hit != want_hit || v.len != VALUE_LEN;
        wb_value_free(&v);
    }
    return bad;
}

static int cmd_get(const char *config, const char *entity, size_t n, size_t rounds)
{
    char errstr[1024], tag[64];
    char **names = calloc(2 * n * rounds, sizeof(*names));
    wb_value_t *values = calloc(n, sizeof(*values));
    wb_err_t *errs = calloc(n, sizeof(*errs));
    uint64_t *t[4]; /* hit_many, hit_single, miss_many, miss_single */
    wb_client_t *c = NULL;
    unsigned errors = 0;
    int rc;

    if (!names || !values || !errs) return 1;
    for (int k = 0; k < 4; k++)
        if (!(t[k] = calloc(rounds, sizeof(*t[k])))) return 1;
    snprintf(tag, sizeof(tag), "bg%ld", (long)time(NULL));
    if ((rc = insert_rows(config, entity, tag, 2 * n * rounds)) != 0) return rc;
    for (size_t g = 0; g < 2 * n * rounds; g++) {
        char id[96];

        snprintf(id, sizeof(id), "%s-%zu", tag, g);
        if (!(names[g] = strdup(id))) return 1;
    }
    if (wb_client_open(config, NULL, NULL, &c, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "bench_get: %s\n", errstr);
        return 1;
    }
    for (size_t r = 0; r < rounds; r++) {
        const char *const *many = (const char *const *)names + 2 * n * r;
        const char *const *single = many + n;

        for (int hit = 0; hit <= 1; hit++) {
            for (int pass = 0; pass < 2; pass++) {
                int use_many = (pass == 0) == (r % 2 == 0);
                uint64_t t0 = now_ns();

                if (use_many)
                    errors += read_many(c, entity, many, n, hit, values, errs);
                else
                    errors += read_single(c, entity, single, n, hit);
                t[(hit ? 0 : 2) + (use_many ? 0 : 1)][r] = now_ns() - t0;
            }
        }
    }
    printf("n=%zu rounds=%zu hit_many=%.3f hit_single=%.3f miss_many=%.3f miss_single=%.3f "
           "errors=%u\n",
           n, rounds, median_ms(t[0], rounds), median_ms(t[1], rounds), median_ms(t[2], rounds),
           median_ms(t[3], rounds), errors);
    wb_client_close(c);
    for (size_t g = 0; g < 2 * n * rounds; g++)
        free(names[g]);
    free(names);
    free(values);
    free(errs);
    for (int k = 0; k < 4; k++)
        free(t[k]);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "get") == 0) {
        size_t n = strtoull(argv[4], NULL, 10), rounds = strtoull(argv[5], NULL, 10);

        if (n > 0 && rounds > 0) return cmd_get(argv[2], argv[3], n, rounds);
    }
    fprintf(stderr, "usage: see the comment at the top of bench_get.c\n");
    return 2;
}
