/* wb_upsert.h — the version-guarded, set-based upsert of rows into an entity's table. */
#ifndef WB_UPSERT_H
#define WB_UPSERT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"

/* One row to apply. Pointers are borrowed for the duration of the call. */
typedef struct wb_row_s {
    const char *key; /* the id (cache key without the entity prefix) */
    size_t keylen;
    const void *value; /* ignored when deleted */
    size_t valuelen;
    int deleted;     /* soft delete: row kept with deleted = true */
    int64_t version; /* applied only if greater than the stored version */
} wb_row_t;

/* Applies n rows (keys must be distinct: coalesce first) to ent's table
 * with ONE statement: INSERT … SELECT FROM unnest(…) ON CONFLICT (key) DO
 * UPDATE … WHERE table.version < EXCLUDED.version. Runs in the caller's
 * transaction if one is open. *applied (may be NULL) = rows inserted or
 * updated. On failure returns WB_ERR_PG, copies the SQLSTATE (5 chars +
 * NUL, "" if none) into sqlstate, and the detail into errstr. */
wb_err_t wb_upsert_rows(PGconn *conn, const wb_entity_t *ent, const wb_row_t *rows, size_t n,
                        size_t *applied, char sqlstate[6], char *errstr, size_t errstr_size);

/* ---- the pieces of wb_upsert_rows, pure (no server), for tests and tools ---- */

/* The four statement parameters: binary one-dimensional PostgreSQL arrays
 * (keys text[], values text[] or bytea[], versions int8[], deleted bool[]). */
#define WB_UPSERT_NPARAMS 4
typedef struct wb_upsert_params_s {
    char *data[WB_UPSERT_NPARAMS]; /* malloc'ed, owned */
    int len[WB_UPSERT_NPARAMS];
    unsigned int types[WB_UPSERT_NPARAMS]; /* array type OIDs */
} wb_upsert_params_t;

/* Returns the statement text for ent (table quoted by wb_pg_quote_ident,
 * so "schema.table" works) as a new malloc'ed string the caller frees, or
 * NULL when out of memory or ent's table is not a valid identifier. */
char *wb_upsert_sql(const wb_entity_t *ent);

/* Encodes rows into *p (zeroed first). A deleted row sends a NULL value.
 * Returns WB_OK, WB_ERR_TOO_LARGE (an array above 1 GiB, PostgreSQL's
 * limit) or WB_ERR_NOMEM. Free with wb_upsert_params_free even on error. */
wb_err_t wb_upsert_params_build(wb_value_type_t vt, const wb_row_t *rows, size_t n,
                                wb_upsert_params_t *p);

/* Frees what wb_upsert_params_build allocated; NULL is fine. */
void wb_upsert_params_free(wb_upsert_params_t *p);

#endif /* WB_UPSERT_H */
