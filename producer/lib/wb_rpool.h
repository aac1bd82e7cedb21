/* wb_rpool.h — a thread-safe pool of blocking Redis connections for one client handle. */
#ifndef WB_RPOOL_H
#define WB_RPOOL_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "wb_config.h"

typedef struct wb_rpool_s wb_rpool_t;

/* Creates a pool for conf (borrowed; must outlive the pool) keeping at most
 * max_idle idle connections. Connects nothing. NULL when out of memory. */
wb_rpool_t *wb_rpool_new(const wb_config_t *conf, int max_idle);

/* Closes every idle connection and frees the pool; all borrowed contexts
 * must have been returned. NULL is fine. */
void wb_rpool_destroy(wb_rpool_t *pool);

/* Borrows a context: an idle one (*reused = 1), else a new connection made
 * by wb_redis_connect (*reused = 0; AUTH, SELECT, and the entry's scripts
 * loaded by wb_entry_load). The caller has it exclusively until wb_rpool_put. Returns WB_OK,
 * or WB_ERR_REDIS / WB_ERR_TIMEOUT / WB_ERR_NOMEM with errstr. Thread-safe. */
wb_err_t wb_rpool_get(wb_rpool_t *pool, redisContext **ctx, int *reused, char *errstr,
                      size_t errstr_size);

/* Returns a borrowed context. A broken one (ctx->err set) or one beyond
 * max_idle is freed. NULL is fine. Thread-safe. */
void wb_rpool_put(wb_rpool_t *pool, redisContext *ctx);

/* Frees every idle connection: after one turned out stale (the server
 * restarted), the others are too. Thread-safe. */
void wb_rpool_drop_idle(wb_rpool_t *pool);

/* 1 if ctx failed the way a connection that sat idle while the server
 * restarted fails (EOF, reset, broken pipe): the command never ran, so it
 * is safe to retry once on a fresh connection. */
int wb_rpool_is_stale(const redisContext *ctx);

#endif /* WB_RPOOL_H */
