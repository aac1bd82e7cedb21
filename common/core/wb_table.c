/* wb_table.c — the entity tables in PostgreSQL: every statement on them, and their row format. */
#include "wb_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_pg.h"
#include "wb_util.h"

/* Any constant works; it only has to be the same in every replica. */
#define WB_TABLE_LOCK_ID 0x77626361 /* "wbca" */

/* Type OIDs from pg_type.h (stable across PostgreSQL versions). */
#define OID_BOOL       16
#define OID_BYTEA      17
#define OID_INT8       20
#define OID_TEXT       25
#define OID_BOOL_ARR   1000
#define OID_BYTEA_ARR  1001
#define OID_TEXT_ARR   1009
#define OID_INT8_ARR   1016
#define PG_ARRAY_LIMIT ((size_t)1 << 30) /* MaxAllocSize: largest datum the server accepts */
#define ARRAY_HEADER   20                /* one dimension: ndim, flags, type, size, lbound */

/* The columns every read returns, in this order (wb_table_row_decode). */
enum { COL_KEY = 0, COL_VALUE = 1, COL_VERSION = 2, COL_DELETED = 3 };

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

/* ent's table quoted into table[WB_PG_QUOTED_MAX]; 0 on success. */
static int quote_table(const wb_entity_t *ent, char *table)
{
    return !ent || !ent->table || wb_pg_quote_ident(ent->table, table, WB_PG_QUOTED_MAX) != WB_OK;
}

/* Accounts for a statement builder's NULL: ent's table name cannot be
 * quoted (WB_ERR_CONFIG; the config loader should have refused it) or out
 * of memory. Returns WB_OK when sql is not NULL. */
static wb_err_t built(const wb_entity_t *ent, const char *sql, char *errstr, size_t errstr_size)
{
    char table[WB_PG_QUOTED_MAX];

    if (sql) return WB_OK;
    if (quote_table(ent, table)) {
        wb_set_err(errstr, errstr_size, "entity %s: table name \"%s\" cannot be quoted",
                   ent->name ? ent->name : "?", ent->table ? ent->table : "");
        return WB_ERR_CONFIG;
    }
    wb_set_err(errstr, errstr_size, "out of memory building a statement on table %s", ent->table);
    return WB_ERR_NOMEM;
}

/* ------------------------------------------------------------ statements */

char *wb_table_create_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], index[WB_PG_QUOTED_MAX], idxname[WB_PG_IDENT_MAX + 1];
    char *sql = NULL;

    if (quote_table(ent, table)) return NULL;
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

char *wb_table_upsert_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    /* Binary array parameters carry their element type, so unnest needs no
     * casts except text -> jsonb, where the server validates the JSON (an
     * invalid document fails with class 22 and is treated as poison). The
     * WHERE clause is invariant 4: an older or equal version never
     * overwrites, which makes duplicates, reordering and replays harmless. */
    if (asprintf(
            &sql,
            "INSERT INTO %s AS t (\"key\", \"value\", \"version\", \"deleted\", \"updated_at\") "
            "SELECT u.k, u.v%s, u.ver, u.del, now() "
            "FROM unnest($1::text[], $2::%s[], $3::int8[], $4::bool[]) AS u(k, v, ver, del) "
            "ON CONFLICT (\"key\") DO UPDATE SET \"value\" = EXCLUDED.\"value\", "
            "\"version\" = EXCLUDED.\"version\", \"deleted\" = EXCLUDED.\"deleted\", "
            "\"updated_at\" = EXCLUDED.\"updated_at\" "
            "WHERE t.\"version\" < EXCLUDED.\"version\"",
            table, ent->value_type == WB_VT_JSONB ? "::jsonb" : "",
            ent->value_type == WB_VT_BYTEA ? "bytea" : "text") < 0)
        sql = NULL;
    return sql;
}

char *wb_table_purge_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
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
                 table, table) < 0)
        sql = NULL;
    return sql;
}

char *wb_table_probe_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    if (asprintf(&sql,
                 "SELECT u.i, t.\"version\" FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) "
                 "JOIN %s AS t ON t.\"key\" = u.k",
                 table) < 0)
        sql = NULL;
    return sql;
}

char *wb_table_select_sql(const wb_entity_t *ent, int many)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    /* jsonb is read as text: its binary form starts with a format byte. */
    if (asprintf(
            &sql, "SELECT \"key\", \"value\"%s, \"version\", \"deleted\" FROM %s WHERE \"key\" %s",
            ent->value_type == WB_VT_JSONB ? "::text" : "", table, many ? "= ANY($1)" : "= $1") < 0)
        sql = NULL;
    return sql;
}

char *wb_table_scan_sql(const wb_entity_t *ent, const char *where)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    /* The condition in its own parentheses on a line of its own, so that a
     * trailing "--" comment in it cannot swallow the rest. */
    if (asprintf(&sql,
                 "SELECT \"key\", \"value\"%s, \"version\", \"deleted\" FROM %s WHERE (\n%s\n) "
                 "AND ($1::text IS NULL OR \"key\" > $1) ORDER BY \"key\" LIMIT $2",
                 ent->value_type == WB_VT_JSONB ? "::text" : "", table,
                 where && *where ? where : "true") < 0)
        sql = NULL;
    return sql;
}

char *wb_table_count_sql(const wb_entity_t *ent, const char *where)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    if (asprintf(&sql, "SELECT count(*) FROM %s WHERE (\n%s\n)", table,
                 where && *where ? where : "true") < 0)
        sql = NULL;
    return sql;
}

/* ------------------------------------------------------------ parameters */

static void put_be32(char **p, uint32_t v)
{
    unsigned char *b = (unsigned char *)*p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    *p += 4;
}

static void put_be64(char **p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p, (uint32_t)v);
}

static uint64_t get_be64(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* Array binary format (array_recv): ndim, has-nulls flag, element type,
 * then per dimension (size, lower bound), then per element a length (-1 for
 * NULL) and the element's binary form. Returns the buffer with the header
 * written (payload bytes follow), *lenp set. */
static char *array_begin(size_t payload, size_t n, int has_nulls, uint32_t elemtype, int *lenp)
{
    size_t total = ARRAY_HEADER + payload;
    char *buf = malloc(total), *p = buf;
    if (!buf) return NULL;
    put_be32(&p, 1);
    put_be32(&p, has_nulls ? 1 : 0);
    put_be32(&p, elemtype);
    put_be32(&p, (uint32_t)n);
    put_be32(&p, 1);
    *lenp = (int)total;
    return buf;
}

/* The text[] of the keys of rows[0, n). */
static char *key_array(const wb_row_t *rows, size_t n, int *lenp)
{
    size_t bytes = 0;
    char *buf, *w;

    for (size_t i = 0; i < n; i++) {
        bytes += 4 + rows[i].keylen;
        if (bytes > PG_ARRAY_LIMIT - ARRAY_HEADER) return NULL;
    }
    if (!(buf = array_begin(bytes, n, 0, OID_TEXT, lenp))) return NULL;
    w = buf + ARRAY_HEADER;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, (uint32_t)rows[i].keylen);
        if (rows[i].keylen) memcpy(w, rows[i].key, rows[i].keylen);
        w += rows[i].keylen;
    }
    return buf;
}

char *wb_table_text_array(const char *const *strs, const size_t *lens, size_t n, int *len)
{
    size_t bytes = 0;
    char *buf, *w;

    for (size_t i = 0; i < n; i++) {
        if (lens[i] > PG_ARRAY_LIMIT) return NULL;
        bytes += 4 + lens[i];
        if (bytes > PG_ARRAY_LIMIT - ARRAY_HEADER) return NULL;
    }
    if (!(buf = array_begin(bytes, n, 0, OID_TEXT, len))) return NULL;
    w = buf + ARRAY_HEADER;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, (uint32_t)lens[i]);
        if (lens[i]) memcpy(w, strs[i], lens[i]);
        w += lens[i];
    }
    return buf;
}

void wb_table_params_free(wb_table_params_t *p)
{
    if (!p) return;
    for (int i = 0; i < WB_TABLE_UPSERT_NPARAMS; i++) {
        free(p->data[i]);
        p->data[i] = NULL;
    }
}

wb_err_t wb_table_params_build(wb_value_type_t vt, const wb_row_t *rows, size_t n,
                               wb_table_params_t *p)
{
    size_t keybytes = 0, valbytes = 0;
    int has_nulls = 0;
    char *w;

    memset(p, 0, sizeof(*p));
    if (n > (PG_ARRAY_LIMIT - ARRAY_HEADER) / 12) return WB_ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        keybytes += 4 + rows[i].keylen;
        if (rows[i].deleted) {
            valbytes += 4;
            has_nulls = 1;
        } else {
            valbytes += 4 + rows[i].valuelen;
        }
        if (keybytes > PG_ARRAY_LIMIT - ARRAY_HEADER || valbytes > PG_ARRAY_LIMIT - ARRAY_HEADER)
            return WB_ERR_TOO_LARGE;
    }
    p->types[0] = OID_TEXT_ARR;
    p->types[1] = vt == WB_VT_BYTEA ? OID_BYTEA_ARR : OID_TEXT_ARR;
    p->types[2] = OID_INT8_ARR;
    p->types[3] = OID_BOOL_ARR;

    p->data[0] = key_array(rows, n, &p->len[0]);
    p->data[1] =
        array_begin(valbytes, n, has_nulls, vt == WB_VT_BYTEA ? OID_BYTEA : OID_TEXT, &p->len[1]);
    p->data[2] = array_begin(n * 12, n, 0, OID_INT8, &p->len[2]);
    p->data[3] = array_begin(n * 5, n, 0, OID_BOOL, &p->len[3]);
    for (int i = 0; i < WB_TABLE_UPSERT_NPARAMS; i++)
        if (!p->data[i]) return WB_ERR_NOMEM;

    w = p->data[1] + ARRAY_HEADER;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].deleted) {
            put_be32(&w, UINT32_MAX); /* -1: NULL */
            continue;
        }
        put_be32(&w, (uint32_t)rows[i].valuelen);
        if (rows[i].valuelen) memcpy(w, rows[i].value, rows[i].valuelen);
        w += rows[i].valuelen;
    }
    w = p->data[2] + ARRAY_HEADER;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, 8);
        put_be64(&w, (uint64_t)rows[i].version);
    }
    w = p->data[3] + ARRAY_HEADER;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, 1);
        *w++ = rows[i].deleted ? 1 : 0;
    }
    return WB_OK;
}

/* ------------------------------------------------------------ schema */

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

wb_err_t wb_table_create(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size)
{
    char detail[512] = "";
    char lock[96];
    char *sql = wb_table_create_sql(ent);
    wb_err_t err;

    if (!sql) {
        wb_set_err(errstr, errstr_size, "out of memory (or no table) for entity %s",
                   ent && ent->name ? ent->name : "?");
        return WB_ERR_NOMEM;
    }
    /* Quiet: "already exists, skipping" notices would land on stderr. */
    snprintf(lock, sizeof(lock),
             "BEGIN; SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(%d)",
             WB_TABLE_LOCK_ID);
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

/* What the flusher needs from each column; see the layout in wb_table.h. */
typedef struct want_col_s {
    const char *name;
    const char *type; /* as format_type() prints it */
    int notnull;      /* 1 must be NOT NULL, 0 must allow NULL */
    int seen;
} want_col_t;

wb_err_t wb_table_verify(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size)
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

wb_err_t wb_table_ensure(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < conf->nentities; i++) {
        const wb_entity_t *ent = &conf->entities[i];
        wb_err_t err;

        if (conf->postgres.schema == WB_SCHEMA_CREATE) {
            err = wb_table_create(conn, ent, errstr, errstr_size);
            if (err != WB_OK) return err;
        }
        err = wb_table_verify(conn, ent, errstr, errstr_size);
        if (err != WB_OK) return err;
    }
    return WB_OK;
}

/* ------------------------------------------------------------ writes */

/* Records a failed change in res and errstr as "what table: message". */
static void change_failed(PGconn *conn, const PGresult *pgres, const char *what, const char *table,
                          wb_table_result_t *res, char *errstr, size_t errstr_size)
{
    const char *st = pgres ? PQresultErrorField(pgres, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = pgres ? PQresultErrorField(pgres, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (!msg) msg = pgres ? PQresultErrorMessage(pgres) : PQerrorMessage(conn);
    if (res && st) snprintf(res->sqlstate, sizeof(res->sqlstate), "%s", st);
    wb_set_err(errstr, errstr_size, "%s %s: %.*s", what, table, (int)strcspn(msg, "\n"), msg);
}

wb_err_t wb_table_upsert(PGconn *conn, const wb_table_rows_t *req, wb_table_result_t *res,
                         char *errstr, size_t errstr_size)
{
    static const int formats[WB_TABLE_UPSERT_NPARAMS] = {1, 1, 1, 1};
    wb_table_params_t p;
    char *sql = NULL;
    PGresult *pgres = NULL;
    wb_err_t err = WB_ERR_PG;

    memset(&p, 0, sizeof(p));
    if (res) memset(res, 0, sizeof(*res));
    if (!conn || !req || !req->ent || (!req->rows && req->n)) {
        wb_set_err(errstr, errstr_size, "wb_table_upsert: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    if (req->n == 0) return WB_OK;
    sql = wb_table_upsert_sql(req->ent);
    if ((err = built(req->ent, sql, errstr, errstr_size)) != WB_OK) goto out;
    err = wb_table_params_build(req->ent->value_type, req->rows, req->n, &p);
    if (err != WB_OK) {
        wb_set_err(errstr, errstr_size, "%s: cannot build the parameters of %zu rows",
                   wb_err2str(err), req->n);
        goto out;
    }
    pgres = PQexecParams(conn, sql, WB_TABLE_UPSERT_NPARAMS, p.types, (const char *const *)p.data,
                         p.len, formats, 0);
    if (PQresultStatus(pgres) != PGRES_COMMAND_OK) {
        change_failed(conn, pgres, "upsert into", req->ent->table, res, errstr, errstr_size);
        err = WB_ERR_PG;
        goto out;
    }
    if (res) res->rows = (size_t)strtoull(PQcmdTuples(pgres), NULL, 10);
    err = WB_OK;
out:
    PQclear(pgres);
    wb_table_params_free(&p);
    free(sql);
    return err;
}

wb_err_t wb_table_purge(PGconn *conn, const wb_table_purge_t *req, wb_table_result_t *res,
                        char *errstr, size_t errstr_size)
{
    char age[32], lim[32], *sql = NULL;
    const char *params[2] = {age, lim};
    PGresult *pgres = NULL;
    wb_err_t err = WB_ERR_PG;

    if (res) memset(res, 0, sizeof(*res));
    if (!conn || !req || !req->ent) {
        wb_set_err(errstr, errstr_size, "wb_table_purge: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_purge_sql(req->ent);
    if ((err = built(req->ent, sql, errstr, errstr_size)) != WB_OK) return err;
    snprintf(age, sizeof(age), "%lld", (long long)req->older_than_ms);
    snprintf(lim, sizeof(lim), "%zu", req->limit);
    pgres = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(pgres) != PGRES_COMMAND_OK) {
        change_failed(conn, pgres, "purging tombstones of", req->ent->table, res, errstr,
                      errstr_size);
        goto out;
    }
    if (res) res->rows = (size_t)strtoull(PQcmdTuples(pgres), NULL, 10);
    err = WB_OK;
out:
    PQclear(pgres);
    free(sql);
    return err;
}

/* ------------------------------------------------------------ reads */

/* Runs a read: sql with one binary-or-text parameter, binary results. On
 * WB_OK *res owns the result; else *res is NULL. Frees sql. */
static wb_err_t run_read(PGconn *conn, const wb_entity_t *ent, char *sql, const char *what,
                         Oid type, const char *param, int paramlen, int paramfmt, PGresult **res,
                         char *errstr, size_t errstr_size)
{
    char where[WB_PG_QUOTED_MAX + 64];
    wb_err_t err = WB_OK;

    *res = PQexecParams(conn, sql, 1, type ? &type : NULL, &param, &paramlen, &paramfmt, 1);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
        snprintf(where, sizeof(where), "%s %s", what, ent->table);
        err = wb_pg_result_error(conn, *res, where, errstr, errstr_size);
        PQclear(*res);
        *res = NULL;
    }
    free(sql);
    return err;
}

wb_err_t wb_table_probe(PGconn *conn, const wb_table_rows_t *req, int64_t *stored, char *errstr,
                        size_t errstr_size)
{
    PGresult *res = NULL;
    char *sql, *keys = NULL;
    int keyslen = 0;
    wb_err_t err = WB_OK;

    if (!conn || !req || !req->ent || !stored || (!req->rows && req->n)) {
        wb_set_err(errstr, errstr_size, "wb_table_probe: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < req->n; i++)
        stored[i] = -1;
    if (req->n == 0) return WB_OK;
    sql = wb_table_probe_sql(req->ent);
    if ((err = built(req->ent, sql, errstr, errstr_size)) != WB_OK) return err;
    if (!(keys = key_array(req->rows, req->n, &keyslen))) {
        wb_set_err(errstr, errstr_size, "cannot build the keys of %zu rows of %s", req->n,
                   req->ent->table);
        free(sql);
        return WB_ERR_NOMEM;
    }
    err = run_read(conn, req->ent, sql, "version probe of", OID_TEXT_ARR, keys, keyslen, 1, &res,
                   errstr, errstr_size);
    if (err != WB_OK) goto out;
    for (int r = 0; r < PQntuples(res); r++) {
        if (PQgetlength(res, r, 0) != 8 || PQgetlength(res, r, 1) != 8) {
            wb_set_err(errstr, errstr_size, "version probe of %s: unexpected result",
                       req->ent->table);
            err = WB_ERR_PG;
            goto out;
        }
        uint64_t i = get_be64(PQgetvalue(res, r, 0));
        if (i >= 1 && i <= req->n) stored[i - 1] = (int64_t)get_be64(PQgetvalue(res, r, 1));
    }
out:
    PQclear(res);
    free(keys);
    return err;
}

wb_err_t wb_table_select_one(PGconn *conn, const wb_entity_t *ent, const char *id, PGresult **res,
                             char *errstr, size_t errstr_size)
{
    wb_err_t err = WB_OK;
    char *sql;

    *res = NULL;
    if (!conn || !ent || !id) {
        wb_set_err(errstr, errstr_size, "wb_table_select_one: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_select_sql(ent, 0);
    if ((err = built(ent, sql, errstr, errstr_size)) != WB_OK) return err;
    return run_read(conn, ent, sql, "reading table", 0, id, 0, 0, res, errstr, errstr_size);
}

wb_err_t wb_table_select(PGconn *conn, const wb_table_keys_t *req, PGresult **res, char *errstr,
                         size_t errstr_size)
{
    wb_err_t err = WB_OK;
    char *sql, *ids;
    int idslen = 0;

    *res = NULL;
    if (!conn || !req || !req->ent || (req->n && (!req->ids || !req->idlens))) {
        wb_set_err(errstr, errstr_size, "wb_table_select: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_select_sql(req->ent, 1);
    if ((err = built(req->ent, sql, errstr, errstr_size)) != WB_OK) return err;
    if (!(ids = wb_table_text_array(req->ids, req->idlens, req->n, &idslen))) {
        wb_set_err(errstr, errstr_size, "cannot build the ids of %zu rows of %s", req->n,
                   req->ent->table);
        free(sql);
        return WB_ERR_NOMEM;
    }
    err = run_read(conn, req->ent, sql, "reading table", OID_TEXT_ARR, ids, idslen, 1, res, errstr,
                   errstr_size);
    free(ids);
    return err;
}

wb_err_t wb_table_select_send(PGconn *conn, const wb_table_keys_t *req, char *errstr,
                              size_t errstr_size)
{
    const Oid type = OID_TEXT_ARR;
    const int fmt = 1;
    char where[WB_PG_QUOTED_MAX + 64], *sql, *ids;
    int idslen = 0, sent;

    if (!conn || !req || !req->ent || (req->n && (!req->ids || !req->idlens))) {
        wb_set_err(errstr, errstr_size, "wb_table_select_send: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_select_sql(req->ent, 1);
    wb_err_t err = built(req->ent, sql, errstr, errstr_size);
    if (err != WB_OK) return err;
    if (!(ids = wb_table_text_array(req->ids, req->idlens, req->n, &idslen))) {
        wb_set_err(errstr, errstr_size, "cannot build the ids of %zu rows of %s", req->n,
                   req->ent->table);
        free(sql);
        return WB_ERR_NOMEM;
    }
    sent = PQsendQueryParams(conn, sql, 1, &type, (const char *const *)&ids, &idslen, &fmt, 1);
    free(ids);
    free(sql);
    if (!sent || !PQsetSingleRowMode(conn)) {
        snprintf(where, sizeof(where), "reading table %s", req->ent->table);
        err = wb_pg_result_error(conn, NULL, where, errstr, errstr_size);
        if (sent) wb_table_select_drain(conn);
        return err;
    }
    return WB_OK;
}

wb_err_t wb_table_select_next(PGconn *conn, const wb_entity_t *ent, PGresult **res,
                              wb_table_result_t *st, char *errstr, size_t errstr_size)
{
    char where[WB_PG_QUOTED_MAX + 64];
    PGresult *r = PQgetResult(conn);
    wb_err_t err;

    *res = NULL;
    if (st) memset(st, 0, sizeof(*st));
    if (!r) return WB_OK;
    switch (PQresultStatus(r)) {
    case PGRES_SINGLE_TUPLE:
        *res = r;
        return WB_OK;
    case PGRES_TUPLES_OK: /* the end: no tuple, then NULL */
        PQclear(r);
        wb_table_select_drain(conn);
        return WB_OK;
    default:
        break;
    }
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (st && code) snprintf(st->sqlstate, sizeof(st->sqlstate), "%s", code);
    snprintf(where, sizeof(where), "reading table %s", ent->table);
    err = wb_pg_result_error(conn, r, where, errstr, errstr_size);
    PQclear(r);
    wb_table_select_drain(conn);
    return err;
}

void wb_table_select_drain(PGconn *conn)
{
    PGresult *r;

    while (conn && (r = PQgetResult(conn)) != NULL)
        PQclear(r);
}

wb_err_t wb_table_scan(PGconn *conn, const wb_table_scan_t *req, PGresult **res, char *errstr,
                       size_t errstr_size)
{
    char where[WB_PG_QUOTED_MAX + 64], limit[24], *sql;
    const char *params[2];
    wb_err_t err = WB_OK;

    *res = NULL;
    if (!conn || !req || !req->ent || req->limit == 0) {
        wb_set_err(errstr, errstr_size, "wb_table_scan: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_scan_sql(req->ent, req->where);
    if ((err = built(req->ent, sql, errstr, errstr_size)) != WB_OK) return err;
    snprintf(limit, sizeof(limit), "%zu", req->limit);
    params[0] = req->after;
    params[1] = limit;
    *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
        snprintf(where, sizeof(where), "scanning table %s", req->ent->table);
        err = wb_pg_result_error(conn, *res, where, errstr, errstr_size);
        PQclear(*res);
        *res = NULL;
    }
    free(sql);
    return err;
}

wb_err_t wb_table_count(PGconn *conn, const wb_entity_t *ent, const char *where, int64_t *n,
                        char *errstr, size_t errstr_size)
{
    char what[WB_PG_QUOTED_MAX + 64], *sql;
    PGresult *res;
    wb_err_t err = WB_OK;

    *n = 0;
    if (!conn || !ent) {
        wb_set_err(errstr, errstr_size, "wb_table_count: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    sql = wb_table_count_sql(ent, where);
    if ((err = built(ent, sql, errstr, errstr_size)) != WB_OK) return err;
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(what, sizeof(what), "counting rows of %s", ent->table);
        err = wb_pg_result_error(conn, res, what, errstr, errstr_size);
    } else {
        *n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    free(sql);
    return err;
}

wb_err_t wb_table_row_decode(const PGresult *res, int r, const wb_entity_t *ent, wb_row_t *row,
                             char *errstr, size_t errstr_size)
{
    memset(row, 0, sizeof(*row));
    if (!res || r < 0 || r >= PQntuples(res) || PQnfields(res) != 4 ||
        PQfformat(res, COL_VERSION) != 1 || PQgetlength(res, r, COL_VERSION) != 8 ||
        PQgetlength(res, r, COL_DELETED) != 1 || PQgetisnull(res, r, COL_KEY)) {
        wb_set_err(errstr, errstr_size, "table %s has an unexpected layout",
                   ent && ent->table ? ent->table : "?");
        return WB_ERR_PG;
    }
    row->key = PQgetvalue(res, r, COL_KEY);
    row->keylen = (size_t)PQgetlength(res, r, COL_KEY);
    row->version = (int64_t)get_be64(PQgetvalue(res, r, COL_VERSION));
    row->deleted = PQgetvalue(res, r, COL_DELETED)[0] != 0;
    if (!PQgetisnull(res, r, COL_VALUE)) {
        row->value = PQgetvalue(res, r, COL_VALUE);
        row->valuelen = (size_t)PQgetlength(res, r, COL_VALUE);
    }
    return WB_OK;
}
