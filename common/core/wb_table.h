/* wb_table.h — the entity tables in PostgreSQL: every statement on them, and their row format.
 *
 * Layout (one table per entity, entities[].table; identifiers are always
 * quoted by wb_pg_quote_ident, so "schema.table" names a table in a schema):
 *   "key"        text PRIMARY KEY        the id: the cache key without the entity's prefix
 *   "value"      text|jsonb|bytea NULL   by entities[].value_type; NULL in a tombstone
 *   "version"    bigint NOT NULL         the version of the write that made the row
 *   "deleted"    boolean NOT NULL DEFAULT false
 *   "updated_at" timestamptz NOT NULL DEFAULT now()   server time of the last apply
 * plus the partial index "<table>_wb_tombstones" on (updated_at) WHERE deleted,
 * which keeps the purge cheap. Other columns are allowed if they are nullable
 * or have a default (wb_table_verify).
 *
 * Version guard (invariant 4): a row is written only if its version
 * is greater than the stored one (INSERT … ON CONFLICT (key) DO UPDATE …
 * WHERE version < EXCLUDED.version), so duplicates, reordering and replays
 * converge. Deletes are soft: the row stays with deleted = true and its
 * version, so an older upsert that arrives late cannot bring it back; the
 * purge removes a tombstone only once its updated_at is older than the
 * retention the caller passes (flusher.tombstone_retention_ms, checked
 * against the topic's retention at start).
 *
 * Reads return four columns ("key", "value", "version", "deleted") in binary
 * form — jsonb as text, because its binary form starts with a format byte —
 * decoded by wb_table_row_decode.
 *
 * Mapped entities (entities[].key_column set, WB_ENTITY_MAPPED) live on a
 * table of the user's own instead:
 *   <key_column>     text|bigint|uuid (key_type), unique   the id
 *   <column> ...     one per entities[].columns entry: the top-level JSON
 *                    field of the value, converted to the column's type by
 *                    jsonb_populate_record (types are the table's own)
 *   <version_column> bigint NOT NULL     (postgres.schema: migrate adds it)
 * and, per schema, the tombstone table "<schema>.wb_tombstones" (entity
 * text, key text, version bigint, deleted_at timestamptz; primary key
 * (entity, key)). A delete removes the row (other readers of the table
 * never see it) and keeps its version there, in the same statement; an
 * upsert at or below a kept version is refused, so a late older event
 * cannot resurrect the row; the purge drops tombstones after the
 * retention. Reads build the value back as a JSON object of the mapped
 * fields (those whose column is NULL left out) and return the same four
 * columns, a tombstone as a deleted row; so every caller works on both.
 * With entities[].delete: soft the row stays instead, its deleted_column
 * (boolean NOT NULL) set under the version guard: no tombstone table, no
 * purge, and a deleted row reads with no value.
 *
 * Every call runs in the caller's transaction if one is open, else in
 * autocommit (wb_table_create opens its own). A connection is used by one
 * thread at a time. */
#ifndef WB_TABLE_H
#define WB_TABLE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"

/* The tombstone table of a mapped entity, in its table's schema. */
#define WB_TABLE_TOMBSTONES "wb_tombstones"

/* One row of an entity's table: what the upsert writes, what the probe
 * looks up (key only) and what a read decodes. Pointers are borrowed: for
 * the duration of the call when written, from the PGresult when read. */
typedef struct wb_row_s {
    const char *key; /* the id (cache key without the entity prefix) */
    size_t keylen;
    const void *value; /* ignored when writing a delete; NULL when read as SQL NULL */
    size_t valuelen;
    int deleted;     /* soft delete: row kept with deleted = true */
    int64_t version; /* written only if greater than the stored version */
} wb_row_t;

/* Rows of one entity (upsert, probe). */
typedef struct wb_table_rows_s {
    const wb_entity_t *ent;
    const wb_row_t *rows; /* n rows with distinct keys (coalesce first) */
    size_t n;
} wb_table_rows_t;

/* Ids of one entity to read (select many). */
typedef struct wb_table_keys_s {
    const wb_entity_t *ent;
    const char *const *ids; /* ids[i] of idlens[i] bytes (no NUL needed) */
    const size_t *idlens;
    size_t n;
} wb_table_keys_t;

/* The tombstone purge of one entity's table. */
typedef struct wb_table_purge_s {
    const wb_entity_t *ent;
    int64_t older_than_ms; /* tombstones whose updated_at is older than now() minus this */
    size_t limit;          /* at most this many rows in one statement */
} wb_table_purge_t;

/* What a statement that changes rows did. */
typedef struct wb_table_result_s {
    size_t rows;      /* rows inserted or updated (upsert), deleted (purge) */
    char sqlstate[6]; /* SQLSTATE of a failure, "" if none or no server error */
} wb_table_result_t;

/* ---- schema */

/* Creates ent's table and index if missing, in one transaction serialized
 * by an advisory lock (replicas starting together do not race). Must be
 * called outside a transaction. Returns WB_OK, WB_ERR_NOMEM or WB_ERR_PG
 * (detail in errstr). */
wb_err_t wb_table_create(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size);

/* Checks that ent's table exists with the layout above: every column with
 * its type and nullability, a unique index on key alone, and no other
 * NOT NULL column without a default (an INSERT would fail). Returns WB_OK,
 * WB_ERR_CONFIG with a message naming the table and column ("table
 * \"users\": column \"version\" is integer, expected bigint"), or WB_ERR_PG
 * when the catalog cannot be read. */
wb_err_t wb_table_verify(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size);

/* For every entity of conf: create (postgres.schema: create) then verify.
 * Stops at the first failure. Returns as wb_table_create / verify. */
wb_err_t wb_table_ensure(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size);

/* ---- writes */

/* Applies req->rows to the table with ONE set-based statement under the
 * version guard (INSERT … SELECT FROM unnest(…) ON CONFLICT (key) DO
 * UPDATE … WHERE version < EXCLUDED.version); n = 0 does nothing. res (may
 * be NULL) gets the rows inserted or updated — fewer than n when the guard
 * refused some — or, on failure, the SQLSTATE. Returns WB_OK,
 * WB_ERR_INVALID_ARG, WB_ERR_CONFIG (the table name cannot be quoted),
 * WB_ERR_NOMEM, WB_ERR_TOO_LARGE (an array above PostgreSQL's 1 GiB) or
 * WB_ERR_PG, with the detail in errstr. */
wb_err_t wb_table_upsert(PGconn *conn, const wb_table_rows_t *req, wb_table_result_t *res,
                         char *errstr, size_t errstr_size);

/* Deletes at most req->limit tombstones whose updated_at is older than
 * now() - req->older_than_ms, in one statement. A row re-deleted or revived
 * meanwhile is spared. res (may be NULL) gets the rows deleted (call again
 * while it equals the limit) or the SQLSTATE. Returns WB_OK,
 * WB_ERR_INVALID_ARG, WB_ERR_CONFIG, WB_ERR_NOMEM or WB_ERR_PG. */
wb_err_t wb_table_purge(PGconn *conn, const wb_table_purge_t *req, wb_table_result_t *res,
                        char *errstr, size_t errstr_size);

/* ---- reads */

/* The version probe: stored[i] = the version the table holds for
 * req->rows[i].key, -1 when there is no row (stored has req->n entries;
 * only the keys of the rows are used). In the upsert's transaction it reads
 * what the guard compared against: ON CONFLICT locks a row even when its
 * WHERE refuses it. Returns WB_OK, WB_ERR_INVALID_ARG, WB_ERR_CONFIG,
 * WB_ERR_NOMEM (also for keys above 1 GiB), WB_ERR_TIMEOUT
 * (statement_timeout) or WB_ERR_PG. */
wb_err_t wb_table_probe(PGconn *conn, const wb_table_rows_t *req, int64_t *stored, char *errstr,
                        size_t errstr_size);

/* Reads the row of id (NUL-terminated). On WB_OK *res owns the result
 * (PQclear): no tuple when there is no row, else one, read with
 * wb_table_row_decode. On failure *res is NULL and the result is
 * WB_ERR_CONFIG (the table name cannot be quoted), WB_ERR_NOMEM,
 * WB_ERR_TIMEOUT or WB_ERR_PG. */
wb_err_t wb_table_select_one(PGconn *conn, const wb_entity_t *ent, const char *id, PGresult **res,
                             char *errstr, size_t errstr_size);

/* Reads the rows of req->ids in one statement. On WB_OK *res owns the
 * result (PQclear): one tuple per id that has a row, in no particular
 * order, read with wb_table_row_decode. Errors as wb_table_select_one. */
wb_err_t wb_table_select(PGconn *conn, const wb_table_keys_t *req, PGresult **res, char *errstr,
                         size_t errstr_size);

/* As wb_table_select, streamed: sends the read in single-row mode, so the
 * caller holds one row at a time rather than every row of the batch (rows
 * may be large). Then call wb_table_select_next until it gives no row; the
 * connection is busy until then. Returns WB_OK, or as wb_table_select
 * (nothing is pending then). */
wb_err_t wb_table_select_send(PGconn *conn, const wb_table_keys_t *req, char *errstr,
                              size_t errstr_size);

/* The next row of a wb_table_select_send: *res owns a result of one tuple
 * (PQclear; read with wb_table_row_decode, r = 0), or NULL when the read
 * is complete and the connection idle again. On failure *res is NULL, the
 * rest of the read is consumed (the connection is idle again if it is
 * still up), st (may be NULL) gets the SQLSTATE ("" if none) and the
 * result is WB_ERR_TIMEOUT or WB_ERR_PG. */
wb_err_t wb_table_select_next(PGconn *conn, const wb_entity_t *ent, PGresult **res,
                              wb_table_result_t *st, char *errstr, size_t errstr_size);

/* Consumes (and frees) what is left of a wb_table_select_send read. */
void wb_table_select_drain(PGconn *conn);

/* One page of a scan of ent's table in key order (keyset pagination): the
 * rows whose id is above after (NULL: from the first) that satisfy where
 * (an SQL condition on the table's columns given by the operator, inserted
 * verbatim; NULL or "": every row), at most limit of them. On WB_OK *res
 * owns the result (PQclear), read with wb_table_row_decode; the last
 * tuple's key is the next page's after, fewer than limit tuples mean the
 * end. Errors as wb_table_select_one (a bad where is WB_ERR_PG). */
typedef struct wb_table_scan_s {
    const wb_entity_t *ent;
    const char *where;
    const char *after; /* NUL-terminated id, or NULL */
    size_t limit;
} wb_table_scan_t;

wb_err_t wb_table_scan(PGconn *conn, const wb_table_scan_t *req, PGresult **res, char *errstr,
                       size_t errstr_size);

/* Rows of ent's table that satisfy where (as wb_table_scan) into *n.
 * Errors as wb_table_scan. */
wb_err_t wb_table_count(PGconn *conn, const wb_entity_t *ent, const char *where, int64_t *n,
                        char *errstr, size_t errstr_size);

/* Decodes tuple r of a wb_table_select(_one) result into *row, every
 * pointer borrowed from res (valid until PQclear): row->value is NULL for
 * an SQL NULL (a tombstone, or a live row written by hand without a value);
 * text and jsonb values are followed by the NUL libpq adds. Returns WB_OK,
 * or WB_ERR_PG when the columns are not in the layout's binary form (the
 * table was changed under us; ent names it in errstr). Pure. */
wb_err_t wb_table_row_decode(const PGresult *res, int r, const wb_entity_t *ent, wb_row_t *row,
                             char *errstr, size_t errstr_size);

/* ---- the statements and parameters, pure (no server), for tests and tools.
 * Every *_sql returns a new malloc'ed string the caller frees, or NULL when
 * out of memory or ent's table is not a valid identifier. */

char *wb_table_create_sql(const wb_entity_t *ent); /* CREATE TABLE + CREATE INDEX, ";"-separated */
char *wb_table_upsert_sql(const wb_entity_t *ent); /* $1 keys, $2 values, $3 versions, $4 deleted */
char *wb_table_purge_sql(const wb_entity_t *ent);  /* $1 age in ms, $2 limit */
char *wb_table_probe_sql(const wb_entity_t *ent);  /* $1 keys; (ordinal from 1, version) */
char *wb_table_select_sql(const wb_entity_t *ent, int many); /* $1 id, or $1 ids (many) */
/* $1 id to start after (NULL: from the first), $2 limit; where as wb_table_scan */
char *wb_table_scan_sql(const wb_entity_t *ent, const char *where);
char *wb_table_count_sql(const wb_entity_t *ent, const char *where); /* count(*) */

/* A mapped entity's migration: the tombstone table if missing, the version
 * column if missing (bigint NOT NULL DEFAULT 0); never drops or alters a
 * column. wb_table_create_sql returns it for a mapped entity. */
char *wb_table_migrate_sql(const wb_entity_t *ent);

/* Which column of mapped entity ent refuses row (an upsert PostgreSQL
 * rejected for its content): converts each mapped field, then the key, on
 * its own and writes the first column that fails into column (""
 * otherwise). Inside a transaction it runs under a savepoint, so the
 * transaction stays usable. Returns WB_OK (column named), WB_ERR_NOT_FOUND
 * (every column converts: the table refused the row for another reason),
 * WB_ERR_INVALID_ARG (not mapped, a delete), WB_ERR_NOMEM or WB_ERR_PG. */
wb_err_t wb_table_blame(PGconn *conn, const wb_entity_t *ent, const wb_row_t *row, char *column,
                        size_t column_size);

/* A key ent's table accepts whatever the rows hold ("wb-canary", or "0"
 * and the nil uuid for a mapped entity's bigint and uuid keys), for a
 * probe write that is rolled back. Static storage. */
const char *wb_table_canary_key(const wb_entity_t *ent);

/* The upsert's four parameters: binary one-dimensional PostgreSQL arrays
 * (keys text[], values text[] or bytea[], versions int8[], deleted bool[]). */
#define WB_TABLE_UPSERT_NPARAMS 4
typedef struct wb_table_params_s {
    char *data[WB_TABLE_UPSERT_NPARAMS]; /* malloc'ed, owned */
    int len[WB_TABLE_UPSERT_NPARAMS];
    unsigned int types[WB_TABLE_UPSERT_NPARAMS]; /* array type OIDs */
} wb_table_params_t;

/* Encodes rows into *p (zeroed first). A deleted row sends a NULL value.
 * Returns WB_OK, WB_ERR_TOO_LARGE (an array above 1 GiB, PostgreSQL's
 * limit) or WB_ERR_NOMEM. Free with wb_table_params_free even on error. */
wb_err_t wb_table_params_build(wb_value_type_t vt, const wb_row_t *rows, size_t n,
                               wb_table_params_t *p);

/* Frees what wb_table_params_build allocated; NULL is fine. */
void wb_table_params_free(wb_table_params_t *p);

/* The binary form of a one-dimensional text[] of n elements (strs[i],
 * lens[i] bytes; no NULLs), type OID 1009. Returns a malloc'ed buffer the
 * caller frees and sets *len, or NULL when out of memory or the array would
 * exceed 1 GiB. */
char *wb_table_text_array(const char *const *strs, const size_t *lens, size_t n, int *len);

#endif /* WB_TABLE_H */
