/* cmd_warm.c — `wbctl warm ENTITY`: fill the cache from the entity's table, version-checked.
 *
 * Reads the table in key order, a page at a time (wb_table_scan, keyset
 * pagination), and fills each page with one pipeline of the same `fill`
 * script as a read-through miss (wb_entry_fill_many): an entry that is
 * dirty or holds a newer version is left alone, so warming is safe while
 * writers run. The PostgreSQL session is read-only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_cli.h"
#include "wb_entry.h"
#include "wb_pg.h"
#include "wb_rand.h"
#include "wb_table.h"
#include "wb_ttl.h"
#include "wb_util.h"
#include "wbctl.h"

#define WARM_BATCH_DEFAULT 500
#define WARM_BATCH_MAX     10000
#define WARM_TAG_ROOM      8 /* "{16383}" and its NUL: the longest shard tag */

typedef struct warm_s {
    const wb_config_t *conf;
    const wb_entity_t *ent;
    PGconn *pg;
    wb_rc_t *redis;
    int64_t total; /* rows to warm (count, capped by --limit) */
    int64_t done;
    int64_t count[6]; /* [0] errors, [code] per wb_entry_fill_t */
    int64_t t0_ms;
    int tty;
} warm_t;

static int usage(void)
{
    fprintf(stderr,
            "usage: wbctl [-c FILE] warm ENTITY [--where SQL-CONDITION] [--limit N] [--batch N]\n"
            "  Fills the cache from ENTITY's table: the rows satisfying the condition\n"
            "  (on the columns key, value, version, deleted, updated_at; default: all),\n"
            "  in key order, at most N of them, in batches of --batch rows (default %d).\n"
            "  Each row is filled like a read-through miss: a cache entry that is dirty\n"
            "  or holds a newer version is left alone, so it is safe while writers run.\n"
            "  Tombstones (deleted rows) are filled as clean tombstones.\n"
            "  e.g. wbctl warm user --where \"updated_at > now() - interval '1 day'\"\n",
            WARM_BATCH_DEFAULT);
    return 2;
}

static void progress(const warm_t *w, int final)
{
    double secs = (double)(wb_time_mono_ms() - w->t0_ms) / 1000.0;
    double rate = secs > 0 ? (double)w->done / secs : 0;
    int width = 30, fill = w->total > 0 ? (int)((double)w->done / (double)w->total * width) : 0;

    if (fill > width) fill = width;
    fprintf(stderr, "\rwarm %s [%.*s%*s] %" PRId64 "/%" PRId64 " rows, %.0f rows/s", w->ent->name,
            fill, "##############################", width - fill, "", w->done, w->total, rate);
    if (final) fputc('\n', stderr);
}

/* Fills the n rows of res. Returns 0, or 1 after printing why. */
static int warm_page(warm_t *w, PGresult *res, int n)
{
    char errstr[512];
    size_t plen = strlen(w->ent->prefix);
    wb_entry_fill_req_t *req = calloc((size_t)n, sizeof(*req));
    wb_entry_fill_res_t *out = calloc((size_t)n, sizeof(*out));
    char **keys = calloc((size_t)n, sizeof(*keys));
    int rc = 1;

    if (!req || !out || !keys) {
        fprintf(stderr, "wbctl: warm: out of memory\n");
        goto done;
    }
    for (int r = 0; r < n; r++) {
        wb_row_t row;

        if (wb_table_row_decode(res, r, w->ent, &row, errstr, sizeof(errstr)) != WB_OK) {
            fprintf(stderr, "wbctl: warm: %s\n", errstr);
            goto done;
        }
        /* The cache key: its shard's tag "{N}", the prefix, the id
         * (wb_entry.h's layout). */
        if (!(keys[r] = malloc(WARM_TAG_ROOM + plen + row.keylen + 1))) {
            fprintf(stderr, "wbctl: warm: out of memory\n");
            goto done;
        }
        memcpy(keys[r] + WARM_TAG_ROOM, w->ent->prefix, plen);
        memcpy(keys[r] + WARM_TAG_ROOM + plen, row.key, row.keylen);
        int tag = snprintf(keys[r], WARM_TAG_ROOM, "{%d}",
                           wb_entry_shard_of(keys[r] + WARM_TAG_ROOM, plen + row.keylen,
                                             w->conf->redis.dirty_shards));
        memmove(keys[r] + tag, keys[r] + WARM_TAG_ROOM, plen + row.keylen);
        keys[r][tag + plen + row.keylen] = '\0';
        /* A live row with a NULL value (written by hand) reads as empty. */
        req[r] = (wb_entry_fill_req_t){.key = keys[r],
                                       .keylen = (size_t)tag + plen + row.keylen,
                                       .value = row.deleted ? NULL
                                                : row.value ? row.value
                                                            : "",
                                       .len = row.deleted ? 0 : row.valuelen,
                                       .version = row.version,
                                       .ttl_ms = wb_ttl_fill(w->conf, w->ent, wb_rand()),
                                       .is_deleted = row.deleted};
    }
    if (wb_entry_fill_many(w->redis, req, (size_t)n, out, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: warm: redis: %s\n", errstr);
        goto done;
    }
    for (int r = 0; r < n; r++) {
        if (out[r].err == WB_OK && out[r].code >= 1 && out[r].code <= 5) {
            w->count[out[r].code]++;
        } else {
            w->count[0]++;
            if (w->count[0] <= 10)
                fprintf(stderr, "%swbctl: warm: fill of %s: %s\n", w->tty ? "\n" : "", keys[r],
                        out[r].error);
        }
    }
    w->done += n;
    rc = 0;

done:
    for (int r = 0; keys && r < n; r++)
        free(keys[r]);
    free(keys);
    free(req);
    free(out);
    return rc;
}

static int warm_run(warm_t *w, const char *where, int64_t limit, int64_t batch)
{
    char errstr[512], *after = NULL;
    int rc = 1;

    w->t0_ms = wb_time_mono_ms();
    if (wb_table_count(w->pg, w->ent, where, &w->total, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: warm: %s\n", errstr);
        return 1;
    }
    if (limit > 0 && w->total > limit) w->total = limit;
    for (;;) {
        int64_t want = limit > 0 && limit - w->done < batch ? limit - w->done : batch;
        wb_table_scan_t req = {w->ent, where, after, (size_t)want};
        PGresult *res = NULL;
        int n;

        if (want <= 0) break;
        if (wb_table_scan(w->pg, &req, &res, errstr, sizeof(errstr)) != WB_OK) {
            fprintf(stderr, "%swbctl: warm: %s\n", w->tty ? "\n" : "", errstr);
            goto done;
        }
        n = PQntuples(res);
        if (n > 0 && warm_page(w, res, n) != 0) {
            PQclear(res);
            goto done;
        }
        if (n > 0) {
            free(after);
            after = strdup(PQgetvalue(res, n - 1, 0));
            if (!after) {
                PQclear(res);
                fprintf(stderr, "wbctl: warm: out of memory\n");
                goto done;
            }
        }
        PQclear(res);
        if (w->tty) progress(w, 0);
        if (n < want) break;
    }
    rc = w->count[0] ? 1 : 0;

done:
    if (w->tty) progress(w, 1);
    free(after);
    return rc;
}

int wbctl_cmd_warm(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"where", required_argument, NULL, 'w'},
        {"limit", required_argument, NULL, 'l'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char errstr[512];
    const char *where = NULL;
    int64_t limit = 0, batch = WARM_BATCH_DEFAULT;
    wb_config_t *conf;
    warm_t w;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            where = optarg;
            break;
        case 'l':
            if (wb_parse_i64(optarg, strlen(optarg), &limit) != 0 || limit == 0) return usage();
            break;
        case 'b':
            if (wb_parse_i64(optarg, strlen(optarg), &batch) != 0 || batch == 0 ||
                batch > WARM_BATCH_MAX)
                return usage();
            break;
        default:
            return usage();
        }
    }
    if (optind + 1 != argc) return usage();
    conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf) return 2;
    memset(&w, 0, sizeof(w));
    w.conf = conf;
    w.tty = isatty(2);
    w.ent = wb_config_entity(conf, argv[optind]);
    if (!w.ent) {
        fprintf(stderr, "wbctl: warm: no entity \"%s\" in the config\n", argv[optind]);
        rc = 2;
        goto done;
    }
    if (wb_pg_connect(conf, &w.pg, errstr, sizeof(errstr)) != WB_OK ||
        wb_pg_exec_ok(w.pg, "SET default_transaction_read_only = on", errstr, sizeof(errstr)) !=
            WB_OK ||
        wb_entry_open(conf, &w.redis, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: warm: %s\n", errstr);
        goto done;
    }
    rc = warm_run(&w, where, limit, batch);
    {
        double secs = (double)(wb_time_mono_ms() - w.t0_ms) / 1000.0;
        printf("warmed %" PRId64 " rows of %s in %.1f s (%.0f rows/s): created %" PRId64
               ", replaced %" PRId64 ", extended %" PRId64 ", kept newer %" PRId64
               ", kept dirty %" PRId64 ", errors %" PRId64 "\n",
               w.done, w.ent->name, secs, secs > 0 ? (double)w.done / secs : 0.0,
               w.count[WB_ENTRY_FILL_CREATED], w.count[WB_ENTRY_FILL_REPLACED],
               w.count[WB_ENTRY_FILL_EXTENDED], w.count[WB_ENTRY_FILL_SKIPPED_NEWER],
               w.count[WB_ENTRY_FILL_SKIPPED_DIRTY], w.count[0]);
    }

done:
    if (w.pg) PQfinish(w.pg);
    wb_rc_free(w.redis);
    wb_config_destroy(conf);
    return rc;
}
