/* wb_rpool.h — a thread-safe pool of Redis deployment handles for one client handle. */
#ifndef WB_RPOOL_H
#define WB_RPOOL_H

#include <stddef.h>

#include "wb_config.h"
#include "wb_rcluster.h"

typedef struct wb_rpool_s wb_rpool_t;

/* Creates a pool for conf (borrowed; must outlive the pool) keeping at most
 * max_idle idle handles. Connects nothing. NULL when out of memory. Each
 * handle (wb_rcluster.h) holds one connection per node it has used, so on
 * a Redis Cluster the pool is, in effect, one pool of connections per node. */
wb_rpool_t *wb_rpool_new(const wb_config_t *conf, int max_idle);

/* Closes every idle handle and frees the pool; all borrowed handles must
 * have been returned. NULL is fine. */
void wb_rpool_destroy(wb_rpool_t *pool);

/* Borrows a handle: an idle one (*reused = 1), else a new one made by
 * wb_entry_open (*reused = 0; AUTH, SELECT, the layout checked and the
 * entry's scripts loaded). The caller has it exclusively until
 * wb_rpool_put. Returns WB_OK, or WB_ERR_REDIS / WB_ERR_TIMEOUT /
 * WB_ERR_NOMEM with errstr. Thread-safe. */
wb_err_t wb_rpool_get(wb_rpool_t *pool, wb_rc_t **rc, int *reused, char *errstr,
                      size_t errstr_size);

/* Returns a borrowed handle. One with a failed connection (wb_rc_failed)
 * or one beyond max_idle is freed. NULL is fine. Thread-safe. */
void wb_rpool_put(wb_rpool_t *pool, wb_rc_t *rc);

/* Frees every idle handle: after one turned out stale (the server
 * restarted), the others are too. Thread-safe. */
void wb_rpool_drop_idle(wb_rpool_t *pool);

/* 1 if a connection of rc failed the way a connection that sat idle while
 * the server restarted fails (EOF, reset, broken pipe): the command never
 * ran, so it is safe to retry once on a fresh handle. */
int wb_rpool_is_stale(const wb_rc_t *rc);

#endif /* WB_RPOOL_H */
