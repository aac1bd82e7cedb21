/* ck_tools.c — `check snapshot` (PostgreSQL key -> version, never backwards) and `check strand`
 * (the put script alone: a producer that died between Redis and Kafka). */
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

#define SHOW_MAX 10

typedef struct snap_s {
    char *key;
    int64_t version;
    UT_hash_handle hh;
} snap_t;

static void snap_free(snap_t **table)
{
    snap_t *s, *tmp;

    HASH_ITER(hh, *table, s, tmp)
    {
        HASH_DEL(*table, s);
        free(s->key);
        free(s);
    }
}

static int snap_load(const char *path, snap_t **table)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = -1;

    if (!f) {
        perror(path);
        return -1;
    }
    while ((len = getline(&line, &cap, f)) != -1) {
        char *tab = strchr(line, '\t');
        snap_t *s;

        if (!tab) continue;
        *tab = '\0';
        if (!(s = calloc(1, sizeof(*s))) || !(s->key = strdup(line))) {
            free(s);
            goto done;
        }
        s->version = strtoll(tab + 1, NULL, 10);
        HASH_ADD_KEYPTR(hh, *table, s->key, strlen(s->key), s);
    }
    rc = 0;

done:
    free(line);
    fclose(f);
    return rc;
}

int ck_cmd_snapshot(const wb_config_t *conf, int argc, char **argv)
{
    static const struct option lopts[] = {{"entity", required_argument, NULL, 'e'},
                                          {"id-prefix", required_argument, NULL, 'p'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"before", required_argument, NULL, 'b'},
                                          {NULL, 0, NULL, 0}};
    const char *entity = NULL, *prefix = NULL, *out = NULL, *before = NULL;
    char errstr[1024], qtable[WB_PG_QUOTED_MAX], sql[2048];
    const wb_entity_t *ent;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    snap_t *prev = NULL;
    uint64_t compared = 0, backwards = 0;
    FILE *f = NULL;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == 'e')
            entity = optarg;
        else if (c == 'p')
            prefix = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'b')
            before = optarg;
        else
            return 2;
    }
    if (!entity || !prefix || !out || optind != argc) {
        fprintf(stderr, "check: snapshot: needs --entity, --id-prefix and --out\n");
        return 2;
    }
    if (!(ent = wb_config_entity(conf, entity)) ||
        wb_pg_quote_ident(ent->table, qtable, sizeof(qtable)) != WB_OK) {
        fprintf(stderr, "check: snapshot: unknown entity \"%s\"\n", entity);
        return 2;
    }
    if (before && snap_load(before, &prev) != 0) goto done;
    if (wb_pg_connect(conf, &conn, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        goto done;
    }
    if (WB_ENTITY_MAPPED(ent)) {
        /* A mapped entity: the row's version, or a hard delete's tombstone's. */
        char qkey[WB_PG_QUOTED_MAX], qver[WB_PG_QUOTED_MAX], tomb[160], qtomb[WB_PG_QUOTED_MAX];
        const char *dot = strchr(ent->table, '.');
        snprintf(tomb, sizeof(tomb), "%.*s%s" WB_TABLE_TOMBSTONES,
                 dot ? (int)(dot - ent->table) : 0, ent->table, dot ? "." : "");
        if (wb_pg_quote_ident(ent->key_column, qkey, sizeof(qkey)) != WB_OK ||
            wb_pg_quote_ident(ent->version_column, qver, sizeof(qver)) != WB_OK ||
            wb_pg_quote_ident(tomb, qtomb, sizeof(qtomb)) != WB_OK)
            goto done;
        if (ent->delete_mode == WB_DELETE_SOFT)
            snprintf(sql, sizeof(sql),
                     "SELECT %s::text, %s FROM %s WHERE starts_with(%s::text, $1) ORDER BY 1", qkey,
                     qver, qtable, qkey);
        else
            snprintf(sql, sizeof(sql),
                     "SELECT k, max(v) FROM (SELECT %s::text AS k, %s AS v FROM %s UNION ALL "
                     "SELECT \"key\", \"version\" FROM %s WHERE \"entity\" = '%s') AS s "
                     "WHERE starts_with(k, $1) GROUP BY k ORDER BY 1",
                     qkey, qver, qtable, qtomb, ent->name);
    } else {
        snprintf(sql, sizeof(sql),
                 "SELECT \"key\", \"version\" FROM %s WHERE starts_with(\"key\", $1) ORDER BY 1",
                 qtable);
    }
    res = PQexecParams(conn, sql, 1, NULL, &prefix, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        wb_pg_result_error(conn, res, "snapshot", errstr, sizeof(errstr));
        fprintf(stderr, "check: postgres: %s\n", errstr);
        goto done;
    }
    if (!(f = fopen(out, "w"))) {
        perror(out);
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *key = PQgetvalue(res, i, 0);
        int64_t ver = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        snap_t *s;

        fprintf(f, "%s\t%" PRId64 "\n", key, ver);
        HASH_FIND_STR(prev, key, s);
        if (!s) continue;
        compared++;
        if (ver < s->version) {
            if (++backwards <= SHOW_MAX)
                fprintf(stderr, "check: backwards: %s: version %" PRId64 " after %" PRId64 "\n",
                        key, ver, s->version);
        }
        HASH_DEL(prev, s);
        free(s->key);
        free(s);
    }
    /* Rows are soft-deleted, never removed (the purge only takes week-old
     * tombstones), so a row that vanished went backwards too. */
    {
        snap_t *s, *tmp;

        HASH_ITER(hh, prev, s, tmp)
        {
            if (++backwards <= SHOW_MAX)
                fprintf(stderr, "check: backwards: %s: row at version %" PRId64 " vanished\n",
                        s->key, s->version);
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        perror(out);
        goto done;
    }
    f = NULL;
    printf("rows           %d\n", PQntuples(res));
    if (before) {
        printf("compared       %" PRIu64 "\n", compared);
        printf("backwards      %" PRIu64 "\n", backwards);
    }
    rc = backwards ? 1 : 0;

done:
    if (f) fclose(f);
    snap_free(&prev);
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* A value the entity's column accepts, which PostgreSQL stores byte for
 * byte as given (for jsonb: keys of one letter in order, ", " and ": " are
 * what jsonb prints back). */
static size_t strand_value(char *buf, size_t size, const wb_entity_t *ent, const char *id,
                           uint64_t i)
{
    int n;

    if (ent->value_type == WB_VT_JSONB)
        n = snprintf(buf, size, "{\"k\": \"%s\", \"v\": %" PRIu64 "}", id, i);
    else
        n = snprintf(buf, size, "stranded %s #%" PRIu64, id, i);
    return n < 0 ? 0 : (size_t)n;
}

int ck_cmd_strand(const wb_config_t *conf, int argc, char **argv)
{
    static const struct option lopts[] = {{"entity", required_argument, NULL, 'e'},
                                          {"id-prefix", required_argument, NULL, 'p'},
                                          {"count", required_argument, NULL, 'n'},
                                          {"truth", required_argument, NULL, 't'},
                                          {NULL, 0, NULL, 0}};
    const char *entity = NULL, *prefix = NULL, *truth = NULL;
    char errstr[512], id[256], key[512], value[512];
    const wb_entity_t *ent;
    wb_rc_t *ctx = NULL;
    FILE *f = NULL;
    int64_t count = -1;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == 'e')
            entity = optarg;
        else if (c == 'p')
            prefix = optarg;
        else if (c == 'n')
            wb_parse_i64(optarg, strlen(optarg), &count);
        else if (c == 't')
            truth = optarg;
        else
            return 2;
    }
    if (!entity || !prefix || !truth || count < 1 || strlen(prefix) > 200 || optind != argc) {
        fprintf(stderr, "check: strand: needs --entity, --id-prefix (short), --count N >= 1 "
                        "and --truth\n");
        return 2;
    }
    if (!(ent = wb_config_entity(conf, entity))) {
        fprintf(stderr, "check: strand: unknown entity \"%s\"\n", entity);
        return 2;
    }
    if (wb_entry_open(conf, &ctx, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        goto done;
    }
    if (!(f = fopen(truth, "w"))) {
        perror(truth);
        goto done;
    }
    for (int64_t i = 0; i < count; i++) {
        wb_entry_put_res_t res;
        size_t vlen, klen;

        snprintf(id, sizeof(id), "%s%" PRId64, prefix, i);
        if (wb_key_build(ent, conf->redis.dirty_shards, id, key, &klen, errstr, sizeof(errstr)) !=
            WB_OK) {
            fprintf(stderr, "check: strand: %s\n", errstr);
            goto done;
        }
        vlen = strand_value(value, sizeof(value), ent, id, (uint64_t)i);
        /* Exactly what wb_put does first; the process "dies" before Kafka. */
        wb_entry_put_req_t req = {.key = key,
                                  .keylen = klen,
                                  .value = value,
                                  .len = vlen,
                                  .dirty_index = conf->redis.dirty_index};
        if (wb_entry_put(ctx, &req, &res, errstr, sizeof(errstr)) != WB_OK) {
            fprintf(stderr, "check: strand: %s\n", errstr);
            goto done;
        }
        ck_truth_write_line(f, id, res.version, value, vlen, 0);
    }
    if (fclose(f) != 0) {
        f = NULL;
        perror(truth);
        goto done;
    }
    f = NULL;
    printf("stranded       %" PRId64 "\n", count);
    rc = 0;

done:
    if (f) fclose(f);
    wb_rc_free(ctx);
    return rc;
}
