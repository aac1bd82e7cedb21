/* fl_pgoffsets.c — the flusher's own bookkeeping in PostgreSQL: where the log is applied up to. */
#include "fl_pgoffsets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_pg.h"
#include "wb_util.h"

/* The advisory lock taken around the create: any constant works, it only
 * has to be the same in every replica (2003988326 = 0x77626f66, "wbof"). */
#define FL_PGOFFSETS_LOCK_ID "2003988326"

static wb_err_t failed(PGconn *pg, PGresult *res, const char *what, char *errstr,
                       size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);

    wb_set_err(errstr, errstr_size, "%s " FL_PGOFFSETS_TABLE ": %.*s", what,
               (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return WB_ERR_PG;
}

wb_err_t fl_pgoffsets_ensure(PGconn *pg, const wb_config_t *conf, char *errstr, size_t errstr_size)
{
    static const char *const want[][2] = {{"topic", "text"},
                                          {"partition", "integer"},
                                          {"next_offset", "bigint"},
                                          {"written_by", "text"},
                                          {"updated_at", "timestamp with time zone"}};
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    PGresult *res;

    if (conf->postgres.schema == WB_SCHEMA_CREATE) {
        res = PQexec(pg, "BEGIN; SELECT pg_advisory_xact_lock(" FL_PGOFFSETS_LOCK_ID "); "
                         "CREATE TABLE IF NOT EXISTS " FL_PGOFFSETS_TABLE " ("
                         "topic text NOT NULL, \"partition\" integer NOT NULL, "
                         "next_offset bigint NOT NULL, written_by text NOT NULL, "
                         "updated_at timestamptz NOT NULL DEFAULT now(), "
                         "PRIMARY KEY (topic, \"partition\")); COMMIT");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(PQexec(pg, "ROLLBACK"));
            return failed(pg, res, "creating", errstr, errstr_size);
        }
        PQclear(res);
    }
    res = PQexec(pg, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                     "WHERE a.attrelid = to_regclass('" FL_PGOFFSETS_TABLE "') AND a.attnum > 0 "
                     "AND NOT a.attisdropped");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(pg, res, "reading the columns of", errstr, errstr_size);
    if (PQntuples(res) == 0) {
        PQclear(res);
        wb_set_err(errstr, errstr_size,
                   "table " FL_PGOFFSETS_TABLE " (the flusher's applied offsets) does not exist; "
                   "create it or set postgres.schema: create");
        return WB_ERR_CONFIG;
    }
    for (size_t i = 0; i < nwant; i++) {
        int found = 0;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), want[i][0]) == 0 &&
                    strcmp(PQgetvalue(res, r, 1), want[i][1]) == 0;
        if (!found) {
            wb_set_err(errstr, errstr_size,
                       "table " FL_PGOFFSETS_TABLE ": column \"%s\" of type %s is missing",
                       want[i][0], want[i][1]);
            PQclear(res);
            return WB_ERR_CONFIG;
        }
    }
    PQclear(res);
    return WB_OK;
}

/* Appends s to the array literal being built in *buf (quoted when text). */
static int lit_add(char **buf, size_t *len, size_t *cap, const char *s, int quote)
{
    size_t need = *len + strlen(s) + 4;
    if (need > *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        while (ncap < need)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return -1;
        *buf = nb;
        *cap = ncap;
    }
    /* Topic names are [A-Za-z0-9._-]: nothing to escape inside the quotes. */
    *len += (size_t)sprintf(*buf + *len, "%s%s%s%s", *len > 1 ? "," : "", quote ? "\"" : "", s,
                            quote ? "\"" : "");
    return 0;
}

wb_err_t fl_pgoffsets_record(PGconn *pg, const char *written_by, fl_range_t *ranges, size_t n,
                             size_t *nrefused, char *errstr, size_t errstr_size)
{
    /* One statement for all the batch's partitions: the upsert refuses a
     * row whose recorded offset is below the range's start (the database
     * lacks events before it), and the outer SELECT, which sees the rows
     * as they were before the upsert, lists the refused ones with what
     * they record. */
    static const char sql[] =
        "WITH u AS (SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::int8[]) "
        "AS u(topic, part, from_off, next_off)), "
        "ins AS (INSERT INTO " FL_PGOFFSETS_TABLE " AS o "
        "(topic, \"partition\", next_offset, written_by, updated_at) "
        "SELECT topic, part, next_off, $5, now() FROM u "
        "ON CONFLICT (topic, \"partition\") DO UPDATE SET "
        "next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset), "
        "written_by = EXCLUDED.written_by, updated_at = EXCLUDED.updated_at "
        "WHERE o.next_offset >= (SELECT u.from_off FROM u WHERE u.topic = o.topic "
        "AND u.part = o.\"partition\") RETURNING o.topic, o.\"partition\") "
        "SELECT u.topic, u.part, o.next_offset FROM u JOIN " FL_PGOFFSETS_TABLE " o "
        "ON o.topic = u.topic AND o.\"partition\" = u.part WHERE NOT EXISTS "
        "(SELECT 1 FROM ins WHERE ins.topic = u.topic AND ins.\"partition\" = u.part)";
    char *lit[4] = {NULL, NULL, NULL, NULL};
    size_t len[4] = {0}, cap[4] = {0};
    char num[32];
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_NOMEM;

    *nrefused = 0;
    if (n == 0) return WB_OK;
    for (int a = 0; a < 4; a++)
        if (lit_add(&lit[a], &len[a], &cap[a], "{", 0) != 0) goto nomem;
    for (size_t i = 0; i < n; i++) {
        ranges[i].recorded = -1;
        if (lit_add(&lit[0], &len[0], &cap[0], ranges[i].topic, 1) != 0) goto nomem;
        snprintf(num, sizeof(num), "%" PRId32, ranges[i].partition);
        if (lit_add(&lit[1], &len[1], &cap[1], num, 0) != 0) goto nomem;
        snprintf(num, sizeof(num), "%" PRId64, ranges[i].from);
        if (lit_add(&lit[2], &len[2], &cap[2], num, 0) != 0) goto nomem;
        snprintf(num, sizeof(num), "%" PRId64, ranges[i].next);
        if (lit_add(&lit[3], &len[3], &cap[3], num, 0) != 0) goto nomem;
    }
    for (int a = 0; a < 4; a++) {
        if (len[a] + 2 > cap[a] && lit_add(&lit[a], &len[a], &cap[a], "", 0) != 0) goto nomem;
        lit[a][len[a]++] = '}';
        lit[a][len[a]] = '\0';
    }
    const char *params[5] = {lit[0], lit[1], lit[2], lit[3], written_by};
    res = PQexecParams(pg, sql, 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err = failed(pg, res, "recording offsets in", errstr, errstr_size);
        res = NULL;
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        const char *topic = PQgetvalue(res, r, 0);
        int32_t part = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
        for (size_t i = 0; i < n; i++) {
            if (ranges[i].partition != part || strcmp(ranges[i].topic, topic) != 0) continue;
            ranges[i].recorded = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            (*nrefused)++;
        }
    }
    err = WB_OK;
    goto out;
nomem:
    wb_set_err(errstr, errstr_size, "recording offsets: out of memory");
out:
    PQclear(res);
    for (int a = 0; a < 4; a++)
        free(lit[a]);
    return err;
}

wb_err_t fl_pgoffsets_read(PGconn *pg, const char *topic, const int32_t *parts, size_t n,
                           int64_t *out, char *errstr, size_t errstr_size)
{
    const char *params[1] = {topic};
    PGresult *res;

    for (size_t i = 0; i < n; i++)
        out[i] = -1;
    res = PQexecParams(
        pg, "SELECT \"partition\", next_offset FROM " FL_PGOFFSETS_TABLE " WHERE topic = $1", 1,
        NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(pg, res, "reading", errstr, errstr_size);
    for (int r = 0; r < PQntuples(res); r++) {
        int32_t part = (int32_t)strtol(PQgetvalue(res, r, 0), NULL, 10);
        for (size_t i = 0; i < n; i++)
            if (parts[i] == part) out[i] = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    }
    PQclear(res);
    return WB_OK;
}

fl_start_t fl_pgoffsets_decide(int64_t pos, int64_t recorded, int64_t lo, int64_t *start)
{
    *start = pos;
    if (recorded < 0) return FL_START_KEEP; /* nothing recorded: nothing to compare */
    /* The topic must still hold the recorded offset, wherever the consumer
     * stands: below it, the events the database lacks are gone (and a
     * consumer that stood below too would be moved to the earliest by
     * Kafka, silently). */
    if (lo >= 0 && recorded < lo) {
        *start = recorded;
        return FL_START_GONE;
    }
    if (pos < 0 || recorded >= pos) return FL_START_KEEP;
    *start = recorded;
    return FL_START_REWIND;
}
