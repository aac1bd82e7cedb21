/* wb_upsert.c — the version-guarded, set-based upsert of rows into an entity's table. */
#include "wb_upsert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_pg.h"
#include "wb_util.h"

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

char *wb_upsert_sql(const wb_entity_t *ent)
{
    char table[WB_PG_QUOTED_MAX], *sql = NULL;

    if (!ent || !ent->table || wb_pg_quote_ident(ent->table, table, sizeof(table)) != WB_OK)
        return NULL;
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

/* Array binary format (array_recv): ndim, has-nulls flag, element type,
 * then per dimension (size, lower bound), then per element a length (-1 for
 * NULL) and the element's binary form. */
static char *array_begin(size_t payload, size_t n, int has_nulls, uint32_t elemtype, int *lenp)
{
    size_t total = 20 + payload;
    char *buf = malloc(total ? total : 1), *p = buf;
    if (!buf) return NULL;
    put_be32(&p, 1);
    put_be32(&p, has_nulls ? 1 : 0);
    put_be32(&p, elemtype);
    put_be32(&p, (uint32_t)n);
    put_be32(&p, 1);
    *lenp = (int)total;
    return buf;
}

void wb_upsert_params_free(wb_upsert_params_t *p)
{
    if (!p) return;
    for (int i = 0; i < WB_UPSERT_NPARAMS; i++) {
        free(p->data[i]);
        p->data[i] = NULL;
    }
}

wb_err_t wb_upsert_params_build(wb_value_type_t vt, const wb_row_t *rows, size_t n,
                                wb_upsert_params_t *p)
{
    size_t keybytes = 0, valbytes = 0;
    int has_nulls = 0;
    char *w;

    memset(p, 0, sizeof(*p));
    if (n > (PG_ARRAY_LIMIT - 20) / 12) return WB_ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        keybytes += 4 + rows[i].keylen;
        if (rows[i].deleted) {
            valbytes += 4;
            has_nulls = 1;
        } else {
            valbytes += 4 + rows[i].valuelen;
        }
        if (keybytes > PG_ARRAY_LIMIT - 20 || valbytes > PG_ARRAY_LIMIT - 20)
            return WB_ERR_TOO_LARGE;
    }
    p->types[0] = OID_TEXT_ARR;
    p->types[1] = vt == WB_VT_BYTEA ? OID_BYTEA_ARR : OID_TEXT_ARR;
    p->types[2] = OID_INT8_ARR;
    p->types[3] = OID_BOOL_ARR;

    p->data[0] = array_begin(keybytes, n, 0, OID_TEXT, &p->len[0]);
    p->data[1] =
        array_begin(valbytes, n, has_nulls, vt == WB_VT_BYTEA ? OID_BYTEA : OID_TEXT, &p->len[1]);
    p->data[2] = array_begin(n * 12, n, 0, OID_INT8, &p->len[2]);
    p->data[3] = array_begin(n * 5, n, 0, OID_BOOL, &p->len[3]);
    for (int i = 0; i < WB_UPSERT_NPARAMS; i++)
        if (!p->data[i]) return WB_ERR_NOMEM;

    w = p->data[0] + 20;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, (uint32_t)rows[i].keylen);
        if (rows[i].keylen) memcpy(w, rows[i].key, rows[i].keylen);
        w += rows[i].keylen;
    }
    w = p->data[1] + 20;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].deleted) {
            put_be32(&w, UINT32_MAX); /* -1: NULL */
            continue;
        }
        put_be32(&w, (uint32_t)rows[i].valuelen);
        if (rows[i].valuelen) memcpy(w, rows[i].value, rows[i].valuelen);
        w += rows[i].valuelen;
    }
    w = p->data[2] + 20;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, 8);
        put_be64(&w, (uint64_t)rows[i].version);
    }
    w = p->data[3] + 20;
    for (size_t i = 0; i < n; i++) {
        put_be32(&w, 1);
        *w++ = rows[i].deleted ? 1 : 0;
    }
    return WB_OK;
}

wb_err_t wb_upsert_rows(PGconn *conn, const wb_entity_t *ent, const wb_row_t *rows, size_t n,
                        size_t *applied, char sqlstate[6], char *errstr, size_t errstr_size)
{
    static const int formats[WB_UPSERT_NPARAMS] = {1, 1, 1, 1};
    wb_upsert_params_t p;
    char *sql = NULL;
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_PG;

    memset(&p, 0, sizeof(p));
    if (sqlstate) sqlstate[0] = '\0';
    if (applied) *applied = 0;
    if (!conn || !ent || (!rows && n)) {
        wb_set_err(errstr, errstr_size, "wb_upsert_rows: invalid argument");
        return WB_ERR_INVALID_ARG;
    }
    if (n == 0) return WB_OK;
    if (!(sql = wb_upsert_sql(ent))) {
        wb_set_err(errstr, errstr_size, "out of memory building the upsert statement");
        err = WB_ERR_NOMEM;
        goto out;
    }
    err = wb_upsert_params_build(ent->value_type, rows, n, &p);
    if (err != WB_OK) {
        wb_set_err(errstr, errstr_size, "%s: cannot build the parameters of %zu rows",
                   wb_err2str(err), n);
        goto out;
    }
    res = PQexecParams(conn, sql, WB_UPSERT_NPARAMS, p.types, (const char *const *)p.data, p.len,
                       formats, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (!msg) msg = PQerrorMessage(conn);
        if (sqlstate && st) snprintf(sqlstate, 6, "%s", st);
        wb_set_err(errstr, errstr_size, "upsert into %s: %.*s", ent->table, (int)strcspn(msg, "\n"),
                   msg);
        err = WB_ERR_PG;
        goto out;
    }
    if (applied) *applied = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    err = WB_OK;
out:
    PQclear(res);
    wb_upsert_params_free(&p);
    free(sql);
    return err;
}
