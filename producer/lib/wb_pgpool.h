/* wb_pgpool.h — a thread-safe, lazily connected pool of PostgreSQL connections. */
#ifndef WB_PGPOOL_H
#define WB_PGPOOL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "wb_config.h"

typedef struct wb_pgpool_s wb_pgpool_t;

/* Creates a pool for conf (borrowed; must outlive the pool) keeping at most
 * max_idle idle connections. Connects nothing. NULL when out of memory. */
wb_pgpool_t *wb_pgpool_new(const wb_config_t *conf, int max_idle);

/* Closes the idle connections and frees the pool; every borrowed
 * connection must have been returned. NULL is fine. */
void wb_pgpool_destroy(wb_pgpool_t *pool);

/* Borrows a connection: an idle one (*reused = 1) or a new one from
 * wb_pg_connect (*reused = 0). Returns WB_OK, or WB_ERR_PG / WB_ERR_TIMEOUT
 * / WB_ERR_CONFIG / WB_ERR_NOMEM with errstr. Thread-safe. */
wb_err_t wb_pgpool_get(wb_pgpool_t *pool, PGconn **conn, int *reused, char *errstr,
                       size_t errstr_size);

/* Returns a borrowed connection; a broken one (CONNECTION_BAD), one left
 * inside a transaction, or one beyond max_idle is closed. NULL is fine. */
void wb_pgpool_put(wb_pgpool_t *pool, PGconn *conn);

#endif /* WB_PGPOOL_H */
