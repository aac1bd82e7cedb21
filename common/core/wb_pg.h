/* wb_pg.h — PostgreSQL connection setup, identifier quoting and error classification. */
#ifndef WB_PG_H
#define WB_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#include "wb_config.h"
#include "wbcache.h"

/* Longest identifier part PostgreSQL keeps (NAMEDATALEN - 1); longer ones
 * it truncates silently, which could make two configured tables one. */
#define WB_PG_IDENT_MAX 63

/* Buffer size that holds any quoted "schema"."table" of parts up to
 * WB_PG_IDENT_MAX bytes each (every byte a '"' doubled). */
#define WB_PG_QUOTED_MAX (2 * (2 * WB_PG_IDENT_MAX + 2) + 2)

/* Connects with conf->postgres.dsn (a conninfo string or URI, expanded by
 * libpq; the WBCACHE_PG_DSN override is applied by the config loader),
 * conf->postgres.password if set (passed as its own parameter, overriding
 * any in the DSN, never pasted into a string), connect_timeout rounded up
 * to whole seconds, TCP keepalives (idle 10 s, interval 5 s, count 3) and
 * tcp_user_timeout = max(connect_timeout_ms, 5000) ms unless the DSN sets
 * them, then SET statement_timeout. On WB_OK *out owns the
 * connection (PQfinish). On failure *out is NULL and the result is WB_ERR_PG
 * (WB_ERR_TIMEOUT if the connect timed out, WB_ERR_CONFIG for a malformed
 * DSN) with errstr saying what failed; any password is replaced by "****".
 * A connection is used by one thread at a time. */
wb_err_t wb_pg_connect(const wb_config_t *conf, PGconn **out, char *errstr, size_t errstr_size);

/* Re-establishes a broken connection in place (PQreset) and repeats the
 * session settings. Same errors as wb_pg_connect; conn stays owned by the
 * caller either way. */
wb_err_t wb_pg_reset(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size);

/* Runs sql (one or more statements, no parameters) and expects success
 * with or without rows; the rows are discarded. Returns WB_OK, or as
 * wb_pg_result_error. */
wb_err_t wb_pg_exec_ok(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);

/* Describes a failed result (res may be NULL: the connection failed) into
 * errstr as "what: primary message (SQLSTATE xxxxx)" and returns
 * WB_ERR_TIMEOUT for a cancelled statement (57014, statement_timeout),
 * else WB_ERR_PG. */
wb_err_t wb_pg_result_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                            size_t errstr_size);

/* Quotes an identifier from config for SQL: each '.'-separated part in
 * double quotes with '"' doubled (so "schema.table" -> "schema"."table";
 * a dot is always a separator). Returns WB_OK, or WB_ERR_INVALID_ARG for
 * NULL/empty name, an empty part, a part over WB_PG_IDENT_MAX bytes or an
 * out buffer too small (out is then ""). */
wb_err_t wb_pg_quote_ident(const char *name, char *out, size_t out_size);

/* 1 if an error with this SQLSTATE is worth retrying unchanged — the
 * database or the connection is unwell (classes 08 connection, 53
 * resources, 57 operator intervention incl. statement timeout, 40
 * serialization/deadlock, 58 system, 28 authorization; 55P03 lock timeout,
 * 55006 object in use, 25006 read-only after a failover) or the schema
 * or grants are wrong, which an operator fixes and which would otherwise
 * dead-letter every event of a table (42P01 undefined table, 42501
 * privilege, 3D000 database, 3F000 schema). 0 for errors caused by the data
 * or statement (22 data, 23 constraints, other 42, ...): poison. NULL or a
 * malformed code (no server error at all) counts as transient. */
int wb_pg_sqlstate_is_transient(const char *sqlstate);

/* As wb_pg_sqlstate_is_transient for a failed result; a connection that is
 * CONNECTION_BAD is always transient. */
int wb_pg_result_is_transient(const PGconn *conn, const PGresult *res);

#endif /* WB_PG_H */
