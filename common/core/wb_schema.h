/* wb_schema.h — the entity tables in PostgreSQL: create, verify, purge old tombstones. */
#ifndef WB_SCHEMA_H
#define WB_SCHEMA_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"

/* Table layout (one per entity, identifiers always quoted):
 *   key text PRIMARY KEY, value text|jsonb|bytea NULL (by value_type),
 *   version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false,
 *   updated_at timestamptz NOT NULL DEFAULT now()
 * plus a partial index on updated_at WHERE deleted, for the purge. */

/* Returns the CREATE TABLE IF NOT EXISTS + CREATE INDEX IF NOT EXISTS
 * statements for ent (";"-separated) as a new malloc'ed string the caller
 * frees; NULL when out of memory or ent has no table. Pure. */
char *wb_schema_create_sql(const wb_entity_t *ent);

/* Creates ent's table and index if missing, in one transaction serialized
 * by an advisory lock (replicas starting together do not race). Must be
 * called outside a transaction. Returns WB_OK or WB_ERR_PG (detail in
 * errstr). */
wb_err_t wb_schema_create(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size);

/* Checks that ent's table exists with the layout above: every column with
 * its type and nullability, a unique index on key alone, and no other
 * NOT NULL column without a default (an INSERT would fail). Returns WB_OK,
 * WB_ERR_CONFIG with a message naming the table and column ("table
 * \"users\": column \"version\" is integer, expected bigint"), or WB_ERR_PG
 * when the catalog cannot be read. */
wb_err_t wb_schema_verify(PGconn *conn, const wb_entity_t *ent, char *errstr, size_t errstr_size);

/* For every entity of conf: create (postgres.schema: create) then verify.
 * Stops at the first failure. Returns as wb_schema_create / verify. */
wb_err_t wb_schema_ensure(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size);

/* Deletes at most limit tombstones (deleted rows) of ent's table whose
 * updated_at is older than now() - older_than_ms, in its own statement
 * (autocommit). *purged (may be NULL) = rows deleted; call again while it
 * equals limit. Returns WB_OK or WB_ERR_PG; sqlstate as in wb_upsert_rows. */
wb_err_t wb_schema_purge(PGconn *conn, const wb_entity_t *ent, int64_t older_than_ms, size_t limit,
                         size_t *purged, char sqlstate[6], char *errstr, size_t errstr_size);

#endif /* WB_SCHEMA_H */
