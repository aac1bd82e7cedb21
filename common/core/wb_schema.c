/* wb_schema.c — the entity tables in PostgreSQL: create, verify, purge old tombstones. */
#include "wb_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_pg.h"
#include "wb_util.h"

/* Any constant works; it only has to be the same in every replica. */
#define WB_SCHEMA_LOCK_ID 0x77626361 /* "wbca" */

static const char *value_sql_type(wb_value_type_t vt)
{
    switch (vt) {
    case WB_VT_JSONB:
        return "jsonb";
    case WB_VT_BYTEA:
        return "bytea";
    default:
        return "text";
    }
}

char *wb_schema_create_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], index[WB_PG_QUOTED_MAX], idxname[WB_PG_IDENT_MAX + 1];
    char *sql = NULL;

    if (!ent || !ent->table || wb_pg_quote_ident(ent->table, table, sizeof(table)) != WB_OK)
        return NULL;
    /* The index lives in the table's schema and is named after the table
     * part, cut so the name stays within the 63 bytes PostgreSQL keeps. */
    const char *base = strrchr(ent->table, '.');
    base = base ? base + 1 : ent->table;
    snprintf(idxname, sizeof(idxname), "%.*s_wb_tombstones", WB_PG_IDENT_MAX - 14, base);
    if (wb_pg_quote_ident(idxname, index, sizeof(index)) != WB_OK) return NULL;
    if (asprintf(&sql,
                 "CREATE TABLE IF NOT EXISTS %s ("
                 "\"key\" text PRIMARY KEY, "
                 "\"value\" %s NULL, "
                 "\"version\" bigint NOT NULL, "
                 "\"deleted\" boolean NOT NULL DEFAULT false, "
                 "\"updated_at\" timestamptz NOT NULL DEFAULT now()); "
                 "CREATE INDEX IF NOT EXISTS %s ON %s (\"updated_at\") WHERE \"deleted\"",
                 table, value_sql_type(ent->value_type), index, table) < 0)
        sql = NULL;
    return sql;
}

static wb_err_t exec_simple(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    wb_err_t err = WB_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        wb_set_err(errstr, errstr_size, "%.*s", (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
    }
    PQclear(res);
    return err;
}

wb_err_t wb_schema_create(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size)
{
    char detail[512] = "";
    char lock[96];
    char *sql = wb_schema_create_sql(ent);
    wb_err_t err;

    if (!sql) {
        wb_set_err(errstr, errstr_size, "out of memory (or no table) for entity %s",
                   ent && ent->name ? ent->name : "?");
        return WB_ERR_NOMEM;
    }
    /* Quiet: "already exists, skipping" notices would land on stderr. */
    snprintf(lock, sizeof(lock),
             "BEGIN; SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(%d)",
             WB_SCHEMA_LOCK_ID);
    err = exec_simple(conn, lock, detail, sizeof(detail));
    if (err == WB_OK) err = exec_simple(conn, sql, detail, sizeof(detail));
    if (err == WB_OK) err = exec_simple(conn, "COMMIT", detail, sizeof(detail));
    if (err != WB_OK) {
        exec_simple(conn, "ROLLBACK", NULL, 0);
        wb_set_err(errstr, errstr_size, "creating table \"%s\": %s", ent->table, detail);
    }
    free(sql);
    return err;
}

/* What the flusher needs from each column; see the layout in wb_schema.h. */
typedef struct want_col_s {
    const char *name;
    const char *type; /* as format_type() prints it */
    int notnull;      /* 1 must be NOT NULL, 0 must allow NULL */
    int seen;
} want_col_t;

wb_err_t wb_schema_verify(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size)
{
    want_col_t want[] = {
        {"key", "text", 1, 0},
        {"value", value_sql_type(ent->value_type), 0, 0},
        {"version", "bigint", 1, 0},
        {"deleted", "boolean", 1, 0},
        {"updated_at", "timestamp with time zone", 1, 0},
    };
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    char qtable[WB_PG_QUOTED_MAX];
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_CONFIG;
    const char *params[1];

    if (wb_pg_quote_ident(ent->table, qtable, sizeof(qtable)) != WB_OK) {
        wb_set_err(errstr, errstr_size, "table \"%s\": not a valid identifier", ent->table);
        return WB_ERR_CONFIG;
    }
    params[0] = qtable;
    res = PQexecParams(conn,
                       "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                       "a.atthasdef, "
                       "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid "
                       "AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL "
                       "AND i.indexprs IS NULL AND i.indkey[0] = a.attnum) "
                       "FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
                       "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        wb_set_err(errstr, errstr_size, "reading the columns of table \"%s\": %.*s", ent->table,
                   (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
        goto out;
    }
    if (PQntuples(res) == 0) {
        wb_set_err(errstr, errstr_size,
                   "table \"%s\" (entity %s) does not exist; create it or set postgres.schema: "
                   "create",
                   ent->table, ent->name);
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 0), *type = PQgetvalue(res, r, 1);
        int notnull = PQgetvalue(res, r, 2)[0] == 't';
        int hasdef = PQgetvalue(res, r, 3)[0] == 't';
        int unique = PQgetvalue(res, r, 4)[0] == 't';
        want_col_t *w = NULL;

        for (size_t i = 0; i < nwant; i++)
            if (strcmp(want[i].name, name) == 0) w = &want[i];
        if (!w) {
            if (notnull && !hasdef) {
                wb_set_err(errstr, errstr_size,
                           "table \"%s\": column \"%s\" is NOT NULL without a default; the "
                           "flusher cannot insert rows",
                           ent->table, name);
                goto out;
            }
            continue;
        }
        w->seen = 1;
        if (strcmp(type, w->type) != 0) {
            wb_set_err(errstr, errstr_size, "table \"%s\": column \"%s\" is %s, expected %s",
                       ent->table, name, type, w->type);
            goto out;
        }
        if (w->notnull && !notnull) {
            wb_set_err(errstr, errstr_size, "table \"%s\": column \"%s\" must be NOT NULL",
                       ent->table, name);
            goto out;
        }
        if (!w->notnull && notnull) {
            wb_set_err(errstr, errstr_size,
                       "table \"%s\": column \"%s\" must allow NULL (deleted rows have no value)",
                       ent->table, name);
            goto out;
        }
        if (strcmp(name, "key") == 0 && !unique) {
            wb_set_err(errstr, errstr_size,
                       "table \"%s\": column \"key\" needs a primary key or unique index of its "
                       "own (the upsert uses ON CONFLICT (key))",
                       ent->table);
            goto out;
        }
    }
    for (size_t i = 0; i < nwant; i++) {
        if (!want[i].seen) {
            wb_set_err(errstr, errstr_size, "table \"%s\": column \"%s\" (%s) is missing",
                       ent->table, want[i].name, want[i].type);
            goto out;
        }
    }
    err = WB_OK;
out:
    PQclear(res);
    return err;
}

wb_err_t wb_schema_ensure(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < conf->nentities; i++) {
        const wb_entity_t *ent = &conf->entities[i];
        wb_err_t err;

        if (conf->postgres.schema == WB_SCHEMA_CREATE) {
            err = wb_schema_create(conn, ent, errstr, errstr_size);
            if (err != WB_OK) return err;
        }
        err = wb_schema_verify(conn, ent, errstr, errstr_size);
        if (err != WB_OK) return err;
    }
    return WB_OK;
}

wb_err_t wb_schema_purge(PGconn *conn, const wb_entity_t *ent, int64_t older_than_ms, size_t limit,
                         size_t *purged, char sqlstate[6], char *errstr, size_t errstr_size)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;
    char age[32], lim[32];
    const char *params[2] = {age, lim};
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_PG;

    if (purged) *purged = 0;
    if (sqlstate) sqlstate[0] = '\0';
    if (wb_pg_quote_ident(ent->table, table, sizeof(table)) != WB_OK) return WB_ERR_INVALID_ARG;
    /* The row's own age decides, by the server clock that wrote updated_at;
     * the partial index on (updated_at) WHERE deleted makes this cheap. The
     * outer WHERE repeats both conditions: when a flusher re-deletes (or
     * revives) a picked row concurrently, READ COMMITTED re-checks only the
     * outer WHERE against the new row, and a fresh tombstone must stay. */
    if (asprintf(&sql,
                 "DELETE FROM %s WHERE \"key\" IN (SELECT \"key\" FROM %s WHERE \"deleted\" AND "
                 "\"updated_at\" < now() - $1::bigint * interval '1 millisecond' LIMIT $2::bigint) "
                 "AND \"deleted\" AND "
                 "\"updated_at\" < now() - $1::bigint * interval '1 millisecond'",
                 table, table) < 0) {
        sql = NULL;
        err = WB_ERR_NOMEM;
        goto out;
    }
    snprintf(age, sizeof(age), "%lld", (long long)older_than_ms);
    snprintf(lim, sizeof(lim), "%zu", limit);
    res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        if (sqlstate && st) snprintf(sqlstate, 6, "%s", st);
        wb_set_err(errstr, errstr_size, "purging tombstones of \"%s\": %.*s", ent->table,
                   (int)strcspn(msg, "\n"), msg);
        goto out;
    }
    if (purged) *purged = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    err = WB_OK;
out:
    PQclear(res);
    free(sql);
    return err;
}
