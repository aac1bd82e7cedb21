/* ck_verify.c — `check verify`: the acknowledged history against PostgreSQL's rows and the cache.
 *
 * For every key of the truth files (highest acknowledged version V):
 *   matching  PostgreSQL holds exactly V (same value, same deleted flag);
 *   newer     PostgreSQL holds a version above V: allowed only for a key
 *             whose later write failed (wbctl load counts errors; a failed
 *             write may still have reached Redis and then PostgreSQL), so
 *             --strict (the load reported no errors) makes it a failure;
 *   lost      no row, an older version, or version V with another value or
 *             deleted flag: an acknowledged write that did not arrive.
 * And for the cache entry of the key, if there is one:
 *   stale     its version is below PostgreSQL's;
 *   diverged  same version as PostgreSQL, another value or deleted flag;
 *   ahead     it is clean with a version PostgreSQL does not have (a clean
 *             mark without the commit);
 *   dirty     it is still dirty: the pipeline has not drained (with
 *             --allow-dirty not a failure: the log is applied, clean marks
 *             may still be missing, e.g. after a flusher was killed).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wb_entry.h"
#include "wb_key.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_table.h"
#include "wb_util.h"

#define MAX_TRUTH   64
#define SHOW_MAX    10  /* examples printed per kind of problem */
#define REDIS_CHUNK 500 /* keys per pipelined round trip */

typedef struct tally_s {
    uint64_t acknowledged, matching, newer, lost, stale, diverged, ahead, dirty, backwards, dlq_bad;
    int64_t dead_lettered;
} tally_t;

/* SQL text array literal {"a","b"} of every key id, with " and \ escaped. */
static char *id_array(ck_key_t *table)
{
    size_t cap = 3;
    ck_key_t *k, *tmp;
    char *s, *p;

    HASH_ITER(hh, table, k, tmp)
    cap += 2 * strlen(k->id) + 3;
    s = malloc(cap);
    if (!s) return NULL;
    p = s;
    *p++ = '{';
    HASH_ITER(hh, table, k, tmp)
    {
        if (p != s + 1) *p++ = ',';
        *p++ = '"';
        for (const char *q = k->id; *q; q++) {
            if (*q == '"' || *q == '\\') *p++ = '\\';
            *p++ = *q;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* SQL expression giving the value column as lowercase hex of its bytes, in
 * the form the truth file records it (jsonb as its canonical text). */
static const char *value_hex_expr(const wb_entity_t *ent)
{
    switch (ent->value_type) {
    case WB_VT_BYTEA:
        return "encode(\"value\", 'hex')";
    case WB_VT_JSONB:
        return "encode(convert_to(\"value\"::text, 'UTF8'), 'hex')";
    default:
        return "encode(convert_to(\"value\", 'UTF8'), 'hex')";
    }
}

static int pg_fetch(const wb_config_t *conf, const wb_entity_t *ent, ck_key_t *table)
{
    char errstr[1024], qtable[WB_PG_QUOTED_MAX], sql[4096];
    PGconn *conn = NULL;
    PGresult *res = NULL;
    char *ids = NULL;
    const char *params[1];
    int rc = -1;

    if (wb_pg_quote_ident(ent->table, qtable, sizeof(qtable)) != WB_OK) {
        fprintf(stderr, "check: bad table name %s\n", ent->table);
        return -1;
    }
    if (wb_pg_connect(conf, &conn, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        return -1;
    }
    if (!(ids = id_array(table))) {
        fprintf(stderr, "check: out of memory\n");
        goto done;
    }
    if (WB_ENTITY_MAPPED(ent)) {
        /* A mapped entity: wb_table's own read (the value built from the
         * columns, a hard delete's tombstone as a deleted row). */
        char *msql = wb_table_select_sql(ent, 1);
        int n = msql ? snprintf(sql, sizeof(sql),
                                "SELECT m.k, m.ver, m.del, encode(convert_to(m.v, 'UTF8'), 'hex') "
                                "FROM (%s) AS m(k, v, ver, del)",
                                msql)
                     : -1;
        free(msql);
        if (n < 0 || (size_t)n >= sizeof(sql)) {
            fprintf(stderr, "check: cannot build the read of %s\n", ent->table);
            goto done;
        }
    } else {
        snprintf(sql, sizeof(sql),
                 "SELECT \"key\", \"version\", \"deleted\", %s FROM %s WHERE \"key\" = "
                 "ANY($1::text[])",
                 value_hex_expr(ent), qtable);
    }
    params[0] = ids;
    res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        wb_pg_result_error(conn, res, "select rows", errstr, sizeof(errstr));
        fprintf(stderr, "check: postgres: %s\n", errstr);
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        ck_key_t *k;

        HASH_FIND_STR(table, PQgetvalue(res, i, 0), k);
        if (!k) continue;
        k->pfound = 1;
        k->pver = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        k->pdel = PQgetvalue(res, i, 2)[0] == 't';
        if (!PQgetisnull(res, i, 3) && !(k->phex = strdup(PQgetvalue(res, i, 3)))) {
            fprintf(stderr, "check: out of memory\n");
            goto done;
        }
    }
    rc = 0;

done:
    PQclear(res);
    free(ids);
    PQfinish(conn);
    return rc;
}

/* Reads the entries of up to REDIS_CHUNK keys in one pipelined round trip. */
static int redis_chunk(wb_rc_t *ctx, const wb_config_t *conf, const wb_entity_t *ent,
                       ck_key_t **keys, size_t n)
{
    wb_entry_key_t ck[REDIS_CHUNK];
    wb_entry_t e[REDIS_CHUNK];
    char errstr[512];
    int rc = -1;

    memset(ck, 0, sizeof(ck));
    for (size_t i = 0; i < n; i++) {
        char *k = malloc(WB_KEY_MAX);
        size_t klen = 0;

        if (!k) goto done;
        ck[i] = (wb_entry_key_t){k, 0};
        if (wb_key_build(ent, conf->redis.dirty_shards, keys[i]->id, k, &klen, errstr,
                         sizeof(errstr)) != WB_OK) {
            fprintf(stderr, "check: %s\n", errstr);
            goto done;
        }
        ck[i].keylen = klen;
    }
    if (wb_entry_read_many(ctx, ck, n, e, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        goto done;
    }
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        ck_key_t *k = keys[i];

        if (rc == 0 && e[i].found) {
            k->cfound = 1;
            k->cver = e[i].version;
            k->cdirty = e[i].dirty;
            k->cdel = e[i].deleted;
            if (!(k->chex = malloc(2 * e[i].value_len + 1)))
                rc = -1;
            else
                ck_hex(k->chex, e[i].value, e[i].value_len);
        }
        wb_entry_clear(&e[i]);
    }

done:
    for (size_t i = 0; i < n; i++)
        free((char *)ck[i].key);
    return rc;
}

static int redis_fetch(const wb_config_t *conf, const wb_entity_t *ent, ck_key_t *table)
{
    char errstr[512];
    wb_rc_t *ctx = NULL;
    ck_key_t *chunk[REDIS_CHUNK], *k, *tmp;
    size_t n = 0;
    int rc = -1;

    if (wb_rc_connect(conf, &ctx, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        return -1;
    }
    HASH_ITER(hh, table, k, tmp)
    {
        chunk[n++] = k;
        if (n == REDIS_CHUNK) {
            if (redis_chunk(ctx, conf, ent, chunk, n) != 0) goto done;
            n = 0;
        }
    }
    if (n > 0 && redis_chunk(ctx, conf, ent, chunk, n) != 0) goto done;
    rc = 0;

done:
    wb_rc_free(ctx);
    return rc;
}

static void show(uint64_t count, const char *what, const ck_key_t *k, const char *detail)
{
    if (count > SHOW_MAX) return;
    fprintf(stderr,
            "check: %s: %s: acknowledged v%" PRId64 " %s; postgres %s v%" PRId64
            "; cache %s v%" PRId64 "%s\n",
            what, k->id, k->tver, k->tdel ? "del" : "put",
            !k->pfound ? "no row"
            : k->pdel  ? "deleted"
                       : "row",
            k->pver,
            !k->cfound  ? "none"
            : k->cdirty ? "dirty"
                        : "clean",
            k->cver, detail);
}

static void classify(ck_key_t *table, tally_t *t)
{
    ck_key_t *k, *tmp;

    HASH_ITER(hh, table, k, tmp)
    {
        t->acknowledged++;
        if (!k->pfound) {
            show(++t->lost, "lost", k, " (no row)");
        } else if (k->pver < k->tver) {
            show(++t->lost, "lost", k, " (older row)");
        } else if (k->pver > k->tver) {
            t->newer++;
        } else if (k->tdel != k->pdel) {
            show(++t->lost, "lost", k, k->tdel ? " (row not deleted)" : " (row deleted)");
        } else if (!k->tdel && (!k->phex || strcmp(k->phex, k->thex) != 0)) {
            show(++t->lost, "lost", k, " (another value at that version)");
        } else {
            t->matching++;
        }
        if (!k->cfound) continue;
        if (k->cdirty) show(++t->dirty, "dirty", k, " (not drained)");
        if (k->pfound && k->cver < k->pver)
            show(++t->stale, "stale", k, "");
        else if (k->pfound && k->cver == k->pver &&
                 (k->cdel != k->pdel || (!k->cdel && (!k->phex || strcmp(k->chex, k->phex) != 0))))
            show(++t->diverged, "diverged", k, " (same version, another value)");
        else if (!k->cdirty && (!k->pfound || k->cver > k->pver))
            show(++t->ahead, "ahead", k, " (clean without the commit)");
    }
}

int ck_cmd_verify(const wb_config_t *conf, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"entity", required_argument, NULL, 'e'},     {"truth", required_argument, NULL, 't'},
        {"ordered", no_argument, NULL, 'o'},          {"strict", no_argument, NULL, 's'},
        {"allow-dirty", no_argument, NULL, 'd'},      {"dlq-since", required_argument, NULL, 'm'},
        {"dlq-expect", required_argument, NULL, 'x'}, {NULL, 0, NULL, 0}};
    const char *truth[MAX_TRUTH], *entity = NULL, *mark = NULL, *expect = NULL;
    int ntruth = 0, ordered = 0, strict = 0, allow_dirty = 0, c, failed;
    const wb_entity_t *ent;
    ck_key_t *table = NULL;
    tally_t t = {0};
    int rc = 1;

    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            entity = optarg;
            break;
        case 't':
            if (ntruth == MAX_TRUTH) {
                fprintf(stderr, "check: verify: at most %d --truth files\n", MAX_TRUTH);
                return 2;
            }
            truth[ntruth++] = optarg;
            break;
        case 'o':
            ordered = 1;
            break;
        case 's':
            strict = 1;
            break;
        case 'd':
            allow_dirty = 1;
            break;
        case 'm':
            mark = optarg;
            break;
        case 'x':
            expect = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!entity || ntruth == 0 || optind != argc) {
        fprintf(stderr, "check: verify: needs --entity NAME and --truth FILE\n");
        return 2;
    }
    if (!(ent = wb_config_entity(conf, entity))) {
        fprintf(stderr, "check: verify: unknown entity \"%s\"\n", entity);
        return 2;
    }
    for (int i = 0; i < ntruth; i++)
        if (ck_truth_load(truth[i], &table, ordered, &t.backwards) != 0) goto done;
    if (table && (pg_fetch(conf, ent, table) != 0 || redis_fetch(conf, ent, table) != 0)) goto done;
    classify(table, &t);
    if (ck_dlq_check(conf, mark, expect, &t.dead_lettered, &t.dlq_bad) != 0) goto done;
    /* Outside a poison drill nothing may be dead-lettered: an outage is not poison. */
    if (mark && !expect && t.dead_lettered != 0) t.dlq_bad += (uint64_t)t.dead_lettered;

    printf("acknowledged   %" PRIu64 "\n", t.acknowledged);
    printf("matching       %" PRIu64 "\n", t.matching);
    printf("newer          %" PRIu64 "\n", t.newer);
    printf("lost           %" PRIu64 "\n", t.lost);
    printf("stale          %" PRIu64 "\n", t.stale);
    printf("diverged       %" PRIu64 "\n", t.diverged);
    printf("ahead          %" PRIu64 "\n", t.ahead);
    printf("dirty          %" PRIu64 "\n", t.dirty);
    printf("backwards      %" PRIu64 "\n", t.backwards);
    printf("dead-lettered  %" PRId64 "\n", t.dead_lettered);
    printf("dlq-mismatch   %" PRIu64 "\n", t.dlq_bad);
    failed = t.lost || t.stale || t.diverged || t.ahead || (t.dirty && !allow_dirty) ||
             t.backwards || t.dlq_bad || (strict && t.newer) || t.acknowledged == 0;
    if (failed) {
        printf("result         FAIL");
        if (t.acknowledged == 0) printf(" (nothing acknowledged)");
        if (strict && t.newer) printf(" (newer rows, but the load reported no failed write)");
        printf("\n");
    } else {
        printf("result         ok\n");
    }
    rc = failed ? 1 : 0;

done:
    ck_keys_free(&table);
    return rc;
}
