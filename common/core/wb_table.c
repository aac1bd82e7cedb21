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

/* ------------------------------------------------------ mapped entities */

static wb_err_t exec_simple(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);

/* A mapped entity (WB_ENTITY_MAPPED) has its own table: the key column,
 * one column per mapped JSON field, the version column; a hard delete
 * removes the row and keeps its version in the schema's tombstone table
 * (wb_table.h). Every statement below returns or takes the same things as
 * the blob layout's, so callers do not tell the two apart. */

/* The SQL type of the key column. */
static const char *key_sql_type(wb_key_type_t kt)
{
    switch (kt) {
    case WB_KT_BIGINT:
        return "bigint";
    case WB_KT_UUID:
        return "uuid";
    default:
        return "text";
    }
}

/* The names a mapped statement needs, quoted. */
typedef struct mapped_names_s {
    char table[WB_PG_QUOTED_MAX];
    char tomb[WB_PG_QUOTED_MAX]; /* <schema of table>.wb_tombstones */
    char key[WB_PG_QUOTED_MAX];
    char ver[WB_PG_QUOTED_MAX];
    char del[WB_PG_QUOTED_MAX]; /* delete: soft's column, "" for hard */
    int soft;
    const char *kt; /* key_sql_type */
} mapped_names_t;

/* Fills *n from ent; 0 on success. Entity names are identifiers (the
 * config loader checks), so they go into statements as '...' literals. */
static int mapped_names(const wb_entity_t *ent, mapped_names_t *n)
{
    char tomb[2 * WB_PG_IDENT_MAX + 2];
    const char *dot;

    if (quote_table(ent, n->table) || !WB_ENTITY_MAPPED(ent) || !ent->version_column ||
        strchr(ent->name, '\'') ||
        wb_pg_quote_ident(ent->key_column, n->key, sizeof(n->key)) != WB_OK ||
        wb_pg_quote_ident(ent->version_column, n->ver, sizeof(n->ver)) != WB_OK)
        return 1;
    dot = strchr(ent->table, '.');
    snprintf(tomb, sizeof(tomb), "%.*s%s" WB_TABLE_TOMBSTONES, dot ? (int)(dot - ent->table) : 0,
             ent->table, dot ? "." : "");
    if (wb_pg_quote_ident(tomb, n->tomb, sizeof(n->tomb)) != WB_OK) return 1;
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        if (wb_pg_quote_ident(ent->map[i].column, q, sizeof(q)) != WB_OK ||
            strchr(ent->map[i].field, '\''))
            return 1;
    }
    n->kt = key_sql_type(ent->key_type);
    n->soft = ent->delete_mode == WB_DELETE_SOFT;
    n->del[0] = '\0';
    if (n->soft && (!ent->deleted_column ||
                    wb_pg_quote_ident(ent->deleted_column, n->del, sizeof(n->del)) != WB_OK))
        return 1;
    return 0;
}

/* Writes "'field', <src>" pairs of jsonb_build_object calls joined by ||
 * (a call takes at most 100 arguments): from_row = 1 builds the value
 * from t's columns ('field', t."column"), 0 builds a record source from
 * the value u.v ('column', u.v->'field'). */
static void build_object(FILE *f, const wb_entity_t *ent, int from_row)
{
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        if (i % 40 == 0)
            fprintf(f, "%sjsonb_build_object(", i ? ") || " : "");
        else
            fputs(", ", f);
        if (from_row)
            fprintf(f, "'%s', t.%s", ent->map[i].field, q);
        else
            fprintf(f, "'%s', u.v->'%s'", ent->map[i].column, ent->map[i].field);
    }
    fputs(ent->nmap ? ")" : "'{}'::jsonb", f);
}

/* Closes the memstream f over *sql; returns *sql, or NULL (freed) on error. */
static char *stream_done(FILE *f, char **sql)
{
    int bad = ferror(f);

    if (fclose(f) != 0 || bad) {
        free(*sql);
        *sql = NULL;
    }
    return *sql;
}

/* The rest of a delete: soft upsert after its "r" CTE: upserts clear the
 * flag, deletes set it (a key-only row when there was none, so the version
 * is kept), both under the row's version guard; a deleted row keeps its
 * other columns. */
static void soft_upsert_rest(FILE *f, const wb_entity_t *ent, const mapped_names_t *n)
{
    fprintf(f, ") AS p FROM u), ups AS (INSERT INTO %s AS t (%s", n->table, n->key);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, ", %s", q);
    }
    fprintf(f, ", %s, %s) SELECT r.id", n->ver, n->del);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, ", (r.p).%s", q);
    }
    fprintf(f, ", r.ver, false FROM r WHERE NOT r.del ON CONFLICT (%s) DO UPDATE SET ", n->key);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, "%s = EXCLUDED.%s, ", q, q);
    }
    fprintf(f,
            "%s = EXCLUDED.%s, %s = false WHERE t.%s < EXCLUDED.%s RETURNING 1), "
            "gone AS (INSERT INTO %s AS t (%s, %s, %s) SELECT r.id, r.ver, true FROM r WHERE "
            "r.del ON CONFLICT (%s) DO UPDATE SET %s = EXCLUDED.%s, %s = true WHERE t.%s < "
            "EXCLUDED.%s RETURNING 1) "
            "SELECT (SELECT count(*) FROM ups) + (SELECT count(*) FROM gone)",
            n->ver, n->ver, n->del, n->ver, n->ver, n->table, n->key, n->ver, n->del, n->key,
            n->ver, n->ver, n->del, n->ver, n->ver);
}

static char *mapped_upsert_sql(const wb_entity_t *ent)
{
    mapped_names_t n;
    char *sql = NULL;
    size_t len = 0;
    FILE *f;

    if (mapped_names(ent, &n) || !(f = open_memstream(&sql, &len))) return NULL;
    /* u: the batch; r: each row's fields converted to the columns' types
     * by jsonb_populate_record on the table's row type (a field that does
     * not fit its column fails the statement, class 22: poison, and
     * wb_table_blame names the column). Deletes: the tombstone is kept at
     * the delete's version unless a newer row or tombstone exists, and the
     * row goes if it is older. Upserts: refused when a tombstone at the
     * same or a newer version exists (no resurrection), else under the
     * row's own version guard. Keys are distinct in a batch, so the CTEs,
     * which all see one snapshot, never touch the same key twice. */
    fprintf(f,
            "WITH u AS (SELECT u.k, u.v::jsonb AS v, u.ver, u.del "
            "FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[]) AS u(k, v, ver, del)), "
            "r AS (SELECT u.k, u.k::%s AS id, u.ver, u.del, jsonb_populate_record(NULL::%s, ",
            n.kt, n.table);
    build_object(f, ent, 0);
    if (n.soft) {
        soft_upsert_rest(f, ent, &n);
        return stream_done(f, &sql);
    }
    fprintf(f,
            ") AS p FROM u), "
            "tomb AS (INSERT INTO %s AS b (\"entity\", \"key\", \"version\") "
            "SELECT '%s', r.k, r.ver FROM r WHERE r.del AND NOT EXISTS (SELECT 1 FROM %s AS t "
            "WHERE t.%s = r.id AND t.%s >= r.ver) "
            "ON CONFLICT (\"entity\", \"key\") DO UPDATE SET \"version\" = EXCLUDED.\"version\", "
            "\"deleted_at\" = now() WHERE b.\"version\" < EXCLUDED.\"version\" RETURNING 1), "
            "gone AS (DELETE FROM %s AS t USING r WHERE r.del AND t.%s = r.id AND t.%s < r.ver "
            "RETURNING 1), "
            "ups AS (INSERT INTO %s AS t (%s",
            n.tomb, ent->name, n.table, n.key, n.ver, n.table, n.key, n.ver, n.table, n.key);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, ", %s", q);
    }
    fprintf(f, ", %s) SELECT r.id", n.ver);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, ", (r.p).%s", q);
    }
    fprintf(f,
            ", r.ver FROM r WHERE NOT r.del AND NOT EXISTS (SELECT 1 FROM %s AS b WHERE "
            "b.\"entity\" = '%s' AND b.\"key\" = r.k AND b.\"version\" >= r.ver) "
            "ON CONFLICT (%s) DO UPDATE SET ",
            n.tomb, ent->name, n.key);
    for (size_t i = 0; i < ent->nmap; i++) {
        char q[WB_PG_QUOTED_MAX];
        wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
        fprintf(f, "%s = EXCLUDED.%s, ", q, q);
    }
    fprintf(f,
            "%s = EXCLUDED.%s WHERE t.%s < EXCLUDED.%s RETURNING 1) "
            "SELECT (SELECT count(*) FROM tomb) + (SELECT count(*) FROM ups)",
            n.ver, n.ver, n.ver, n.ver);
    return stream_done(f, &sql);
}

static char *mapped_probe_sql(const wb_entity_t *ent)
{
    mapped_names_t n;
    char *sql = NULL;

    if (mapped_names(ent, &n)) return NULL;
    if (n.soft) {
        if (asprintf(&sql,
                     "SELECT u.i, t.%s FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) "
                     "JOIN %s AS t ON t.%s = u.k::%s",
                     n.ver, n.table, n.key, n.kt) < 0)
            sql = NULL;
        return sql;
    }
    /* The stored version is the row's or the tombstone's, the greater. */
    if (asprintf(&sql,
                 "SELECT u.i, GREATEST(t.%s, b.\"version\") "
                 "FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) "
                 "LEFT JOIN %s AS t ON t.%s = u.k::%s "
                 "LEFT JOIN %s AS b ON b.\"entity\" = '%s' AND b.\"key\" = u.k "
                 "WHERE t.%s IS NOT NULL OR b.\"key\" IS NOT NULL",
                 n.ver, n.table, n.key, n.kt, n.tomb, ent->name, n.key) < 0)
        sql = NULL;
    return sql;
}

static char *mapped_select_sql(const wb_entity_t *ent, int many)
{
    static const char *const one[] = {"$1::text", "$1::text::bigint", "$1::text::uuid"};
    static const char *const all[] = {"ANY($1::text[])", "ANY($1::text[]::bigint[])",
                                      "ANY($1::text[]::uuid[])"};
    mapped_names_t n;
    char *sql = NULL;
    size_t len = 0;
    FILE *f;

    if (mapped_names(ent, &n) || !(f = open_memstream(&sql, &len))) return NULL;
    /* The four columns of the layout: the value built from the columns
     * (fields whose column is NULL left out), and a tombstone as a deleted
     * row without a value when there is no row. The key column is compared
     * in its own type, so its index is used. */
    if (n.soft) { /* a deleted row: no value, the flag */
        fprintf(f, "SELECT t.%s::text, CASE WHEN t.%s THEN NULL ELSE jsonb_strip_nulls(", n.key,
                n.del);
        build_object(f, ent, 1);
        fprintf(f, ")::text END, t.%s, t.%s FROM %s AS t WHERE t.%s = %s", n.ver, n.del, n.table,
                n.key, (many ? all : one)[ent->key_type]);
        return stream_done(f, &sql);
    }
    fprintf(f, "SELECT t.%s::text, jsonb_strip_nulls(", n.key);
    build_object(f, ent, 1);
    fprintf(f,
            ")::text, t.%s, false FROM %s AS t WHERE t.%s = %s "
            "UNION ALL SELECT b.\"key\", NULL::text, b.\"version\", true FROM %s AS b "
            "WHERE b.\"entity\" = '%s' AND b.\"key\" = %s AND NOT EXISTS "
            "(SELECT 1 FROM %s AS t WHERE t.%s = b.\"key\"::%s)",
            n.ver, n.table, n.key, (many ? all : one)[ent->key_type], n.tomb, ent->name,
            (many ? all : one)[0], n.table, n.key, n.kt);
    return stream_done(f, &sql);
}

static char *mapped_purge_sql(const wb_entity_t *ent)
{
    mapped_names_t n;
    char *sql = NULL;

    if (mapped_names(ent, &n) || n.soft) return NULL;
    /* The rows are gone already; their tombstones go after the retention. */
    if (asprintf(&sql,
                 "DELETE FROM %s WHERE \"entity\" = '%s' AND \"key\" IN (SELECT \"key\" FROM %s "
                 "WHERE \"entity\" = '%s' AND \"deleted_at\" < now() - $1::bigint * "
                 "interval '1 millisecond' LIMIT $2::bigint) "
                 "AND \"deleted_at\" < now() - $1::bigint * interval '1 millisecond'",
                 n.tomb, ent->name, n.tomb, ent->name) < 0)
        sql = NULL;
    return sql;
}

char *wb_table_migrate_sql(const wb_entity_t *ent)
{
    mapped_names_t n;
    char *sql = NULL;

    if (mapped_names(ent, &n)) return NULL;
    if (n.soft) { /* the version and the flag; no tombstone table */
        if (asprintf(&sql,
                     "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s bigint NOT NULL DEFAULT 0, "
                     "ADD COLUMN IF NOT EXISTS %s boolean NOT NULL DEFAULT false",
                     n.table, n.ver, n.del) < 0)
            sql = NULL;
        return sql;
    }
    /* Only additions: the tombstone table, and the version column (rows
     * already there get version 0, so any write replaces them). */
    if (asprintf(&sql,
                 "CREATE TABLE IF NOT EXISTS %s (\"entity\" text NOT NULL, \"key\" text NOT NULL, "
                 "\"version\" bigint NOT NULL, \"deleted_at\" timestamptz NOT NULL DEFAULT now(), "
                 "PRIMARY KEY (\"entity\", \"key\")); "
                 "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s bigint NOT NULL DEFAULT 0",
                 n.tomb, n.table, n.ver) < 0)
        sql = NULL;
    return sql;
}

const char *wb_table_canary_key(const wb_entity_t *ent)
{
    if (ent && WB_ENTITY_MAPPED(ent) && ent->key_type == WB_KT_BIGINT) return "0";
    if (ent && WB_ENTITY_MAPPED(ent) && ent->key_type == WB_KT_UUID)
        return "00000000-0000-0000-0000-000000000000";
    return "wb-canary";
}

wb_err_t wb_table_blame(PGconn *conn, const wb_entity_t *ent, const wb_row_t *row, char *column,
                        size_t column_size)
{
    mapped_names_t n;
    char *sql = NULL, *value = NULL;
    int intx = PQtransactionStatus(conn) == PQTRANS_INTRANS;
    wb_err_t err = WB_OK;

    if (column_size) column[0] = '\0';
    if (!conn || !row || mapped_names(ent, &n) || row->deleted) return WB_ERR_INVALID_ARG;
    if (!(value = strndup(row->value ? row->value : "", row->valuelen))) return WB_ERR_NOMEM;
    if (intx && exec_simple(conn, "SAVEPOINT wb_blame", NULL, 0) != WB_OK) {
        free(value);
        return WB_ERR_PG;
    }
    /* A value that is no JSON object is no column's fault. */
    const char *vparam[1] = {value};
    PGresult *obj =
        PQexecParams(conn, "SELECT jsonb_typeof($1::jsonb)", 1, NULL, vparam, NULL, NULL, 0);
    if (PQresultStatus(obj) != PGRES_TUPLES_OK || strcmp(PQgetvalue(obj, 0, 0), "object") != 0) {
        err = WB_ERR_PG;
        if (intx) exec_simple(conn, "ROLLBACK TO SAVEPOINT wb_blame", NULL, 0);
    }
    PQclear(obj);
    for (size_t i = 0; i <= ent->nmap && err == WB_OK; i++) {
        const char *params[2] = {value, NULL};
        char *keyz = NULL;
        PGresult *res;

        free(sql);
        sql = NULL;
        if (i == ent->nmap) { /* last, the key */
            if (asprintf(&sql, "SELECT $1::text::%s", n.kt) < 0) break;
            if (!(keyz = strndup(row->key, row->keylen))) break;
            params[0] = keyz;
        } else {
            char q[WB_PG_QUOTED_MAX];
            wb_pg_quote_ident(ent->map[i].column, q, sizeof(q));
            if (asprintf(&sql,
                         "SELECT (jsonb_populate_record(NULL::%s, "
                         "jsonb_build_object('%s', $1::jsonb->'%s'))).%s",
                         n.table, ent->map[i].column, ent->map[i].field, q) < 0)
                break;
        }
        res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            /* Only the value's own fault names a column (classes 22, 23). */
            if (st && (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0))
                snprintf(column, column_size, "%s",
                         i == ent->nmap ? ent->key_column : ent->map[i].column);
            err = WB_ERR_PG;
            if (intx) exec_simple(conn, "ROLLBACK TO SAVEPOINT wb_blame", NULL, 0);
        }
        PQclear(res);
        free(keyz);
    }
    if (intx) exec_simple(conn, "RELEASE SAVEPOINT wb_blame", NULL, 0);
    free(sql);
    free(value);
    if (*column) return WB_OK;
    return err == WB_OK ? WB_ERR_NOT_FOUND : err;
}

/* ------------------------------------------------------------ statements */

char *wb_table_create_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], index[WB_PG_QUOTED_MAX], idxname[WB_PG_IDENT_MAX + 1];
    char *sql = NULL;

    if (quote_table(ent, table)) return NULL;
    if (WB_ENTITY_MAPPED(ent)) return wb_table_migrate_sql(ent);
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
    if (WB_ENTITY_MAPPED(ent)) return mapped_upsert_sql(ent);
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
    if (WB_ENTITY_MAPPED(ent)) return mapped_purge_sql(ent);
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
    if (WB_ENTITY_MAPPED(ent)) return mapped_probe_sql(ent);
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
    if (WB_ENTITY_MAPPED(ent)) return mapped_select_sql(ent, many);
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

/* The columns of table qtable (quoted, maybe schema-qualified), one row
 * each in attnum order: name, type as format_type prints it, NOT NULL, has a
 * default, and has a unique single-column index of its own. No row: no such
 * table. On success *resp is the result (the caller clears it). */
static wb_err_t read_columns(PGconn *conn, const wb_entity_t *ent, const char *qtable,
                             PGresult **resp, char *errstr, size_t errstr_size)
{
    const char *params[1] = {qtable};
    PGresult *res;

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
        PQclear(res);
        return WB_ERR_PG;
    }
    *resp = res;
    return WB_OK;
}

/* wb_table_verify of a mapped entity: the key column of key_type with a
 * unique index of its own, the version column bigint NOT NULL, every mapped
 * column, no other NOT NULL column without a default, and the tombstone
 * table. */
static wb_err_t verify_mapped(PGconn *conn, const wb_entity_t *ent, char *errstr,
                              size_t errstr_size)
{
    mapped_names_t n;
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_CONFIG;
    const char *params[1];
    int key_seen = 0, ver_seen = 0, del_seen = 0;
    unsigned char *seen = NULL;

    if (mapped_names(ent, &n)) {
        wb_set_err(errstr, errstr_size, "entity %s: a name is not a valid identifier", ent->name);
        return WB_ERR_CONFIG;
    }
    if (!(seen = calloc(ent->nmap + 1, 1))) return WB_ERR_NOMEM;
    if ((err = read_columns(conn, ent, n.table, &res, errstr, errstr_size)) != WB_OK) goto out;
    err = WB_ERR_CONFIG;
    if (PQntuples(res) == 0) {
        wb_set_err(errstr, errstr_size,
                   "table \"%s\" (entity %s, mapped) does not exist; wbcache does not create "
                   "mapped tables",
                   ent->table, ent->name);
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 0), *type = PQgetvalue(res, r, 1);
        int notnull = PQgetvalue(res, r, 2)[0] == 't', hasdef = PQgetvalue(res, r, 3)[0] == 't';
        int unique = PQgetvalue(res, r, 4)[0] == 't', mapped = 0;

        if (strcmp(name, ent->key_column) == 0) {
            key_seen = 1;
            if (strcmp(type, n.kt) != 0) {
                wb_set_err(errstr, errstr_size,
                           "table \"%s\": key column \"%s\" is %s, key_type says %s", ent->table,
                           name, type, n.kt);
                goto out;
            }
            if (!unique) {
                wb_set_err(errstr, errstr_size,
                           "table \"%s\": key column \"%s\" needs a primary key or unique index "
                           "of its own (the upsert uses ON CONFLICT)",
                           ent->table, name);
                goto out;
            }
            continue;
        }
        if (strcmp(name, ent->version_column) == 0) {
            ver_seen = 1;
            if (strcmp(type, "bigint") != 0 || !notnull) {
                wb_set_err(errstr, errstr_size,
                           "table \"%s\": version column \"%s\" is %s%s, expected bigint NOT NULL",
                           ent->table, name, type, notnull ? " NOT NULL" : "");
                goto out;
            }
            continue;
        }
        if (n.soft && strcmp(name, ent->deleted_column) == 0) {
            del_seen = 1;
            if (strcmp(type, "boolean") != 0 || !notnull) {
                wb_set_err(errstr, errstr_size,
                           "table \"%s\": deleted column \"%s\" is %s%s, expected boolean NOT "
                           "NULL",
                           ent->table, name, type, notnull ? " NOT NULL" : "");
                goto out;
            }
            continue;
        }
        for (size_t i = 0; i < ent->nmap; i++)
            if (strcmp(ent->map[i].column, name) == 0) mapped = seen[i] = 1;
        if (n.soft && notnull && !hasdef) {
            wb_set_err(errstr, errstr_size,
                       "table \"%s\": column \"%s\" is NOT NULL without a default; with "
                       "delete: soft a delete of an id without a row inserts one with only its "
                       "key, version and flag",
                       ent->table, name);
            goto out;
        }
        if (!mapped && notnull && !hasdef) {
            wb_set_err(errstr, errstr_size,
                       "table \"%s\": column \"%s\" is NOT NULL without a default and not in "
                       "entities[].columns; the flusher cannot insert rows",
                       ent->table, name);
            goto out;
        }
    }
    if (!key_seen) {
        wb_set_err(errstr, errstr_size, "table \"%s\": key column \"%s\" (%s) is missing",
                   ent->table, ent->key_column, n.kt);
        goto out;
    }
    if (!ver_seen) {
        wb_set_err(errstr, errstr_size,
                   "table \"%s\": version column \"%s\" (bigint NOT NULL) is missing; add it or "
                   "set postgres.schema: migrate",
                   ent->table, ent->version_column);
        goto out;
    }
    if (n.soft && !del_seen) {
        wb_set_err(errstr, errstr_size,
                   "table \"%s\": deleted column \"%s\" (boolean NOT NULL) is missing; add it "
                   "or set postgres.schema: migrate",
                   ent->table, ent->deleted_column);
        goto out;
    }
    for (size_t i = 0; i < ent->nmap; i++) {
        if (!seen[i]) {
            wb_set_err(errstr, errstr_size,
                       "table \"%s\": column \"%s\" (field \"%s\" of entities[].columns) is "
                       "missing",
                       ent->table, ent->map[i].column, ent->map[i].field);
            goto out;
        }
    }
    if (n.soft) {
        err = WB_OK;
        goto out;
    }
    PQclear(res);
    params[0] = n.tomb;
    res = PQexecParams(conn,
                       "SELECT count(*) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
                       "AND NOT a.attisdropped AND (a.attname, format_type(a.atttypid, "
                       "a.atttypmod)) IN (('entity', 'text'), ('key', 'text'), "
                       "('version', 'bigint'), ('deleted_at', 'timestamp with time zone'))",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        wb_set_err(errstr, errstr_size, "reading the columns of table %s: %.*s", n.tomb,
                   (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "4") != 0) {
        wb_set_err(errstr, errstr_size,
                   "tombstone table %s (of mapped entity %s) is missing or lacks its columns "
                   "(entity text, key text, version bigint, deleted_at timestamptz); set "
                   "postgres.schema: migrate",
                   n.tomb, ent->name);
        goto out;
    }
    err = WB_OK;
out:
    free(seen);
    PQclear(res);
    return err;
}

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

    if (WB_ENTITY_MAPPED(ent)) return verify_mapped(conn, ent, errstr, errstr_size);
    if (wb_pg_quote_ident(ent->table, qtable, sizeof(qtable)) != WB_OK) {
        wb_set_err(errstr, errstr_size, "table \"%s\": not a valid identifier", ent->table);
        return WB_ERR_CONFIG;
    }
    if ((err = read_columns(conn, ent, qtable, &res, errstr, errstr_size)) != WB_OK) goto out;
    err = WB_ERR_CONFIG;
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

        if (conf->postgres.schema == WB_SCHEMA_CREATE ||
            conf->postgres.schema == WB_SCHEMA_MIGRATE) {
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
    /* A mapped entity's statement returns its count as one row. */
    if (PQresultStatus(pgres) !=
        (WB_ENTITY_MAPPED(req->ent) ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
        change_failed(conn, pgres, "upsert into", req->ent->table, res, errstr, errstr_size);
        err = WB_ERR_PG;
        goto out;
    }
    if (res)
        res->rows = (size_t)strtoull(WB_ENTITY_MAPPED(req->ent) && PQntuples(pgres) == 1
                                         ? PQgetvalue(pgres, 0, 0)
                                         : PQcmdTuples(pgres),
                                     NULL, 10);
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
    /* delete: soft keeps the user's rows; there is nothing of ours to purge. */
    if (WB_ENTITY_MAPPED(req->ent) && req->ent->delete_mode == WB_DELETE_SOFT) return WB_OK;
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
