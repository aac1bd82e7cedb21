/* wb_rpool.c — a thread-safe pool of Redis deployment handles for one client handle. */
#include "wb_rpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wb_entry.h"

struct wb_rpool_s {
    const wb_config_t *conf;
    pthread_mutex_t mu; /* guards idle/nidle only; never held during I/O */
    wb_rc_t **idle;
    int nidle;
    int max_idle;
};

wb_rpool_t *wb_rpool_new(const wb_config_t *conf, int max_idle)
{
    wb_rpool_t *pool = calloc(1, sizeof(*pool));

    if (!pool) return NULL;
    pool->idle = calloc((size_t)(max_idle > 0 ? max_idle : 1), sizeof(*pool->idle));
    if (!pool->idle) {
        free(pool);
        return NULL;
    }
    pool->conf = conf;
    pool->max_idle = max_idle > 0 ? max_idle : 1;
    pthread_mutex_init(&pool->mu, NULL);
    return pool;
}

void wb_rpool_destroy(wb_rpool_t *pool)
{
    if (!pool) return;
    for (int i = 0; i < pool->nidle; i++)
        wb_rc_free(pool->idle[i]);
    pthread_mutex_destroy(&pool->mu);
    free(pool->idle);
    free(pool);
}

wb_err_t wb_rpool_get(wb_rpool_t *pool, wb_rc_t **rc, int *reused, char *errstr, size_t errstr_size)
{
    wb_rc_t *c = NULL;

    pthread_mutex_lock(&pool->mu);
    if (pool->nidle > 0) c = pool->idle[--pool->nidle];
    pthread_mutex_unlock(&pool->mu);
    if (reused) *reused = c != NULL;
    if (c) {
        *rc = c;
        return WB_OK;
    }
    /* A new handle: connected, layout checked, scripts loaded (so its
     * first EVALSHA hits); the other nodes of a cluster connect on use. */
    return wb_entry_open(pool->conf, rc, errstr, errstr_size);
}

void wb_rpool_put(wb_rpool_t *pool, wb_rc_t *rc)
{
    if (!rc) return;
    if (!wb_rc_failed(rc)) {
        pthread_mutex_lock(&pool->mu);
        if (pool->nidle < pool->max_idle) {
            pool->idle[pool->nidle++] = rc;
            rc = NULL;
        }
        pthread_mutex_unlock(&pool->mu);
    }
    wb_rc_free(rc);
}

int wb_rpool_is_stale(const wb_rc_t *rc)
{
    const redisContext *ctx = wb_rc_failed(rc);

    if (!ctx) return 0;
    if (ctx->err == REDIS_ERR_EOF) return 1;
    return ctx->err == REDIS_ERR_IO &&
           (strstr(ctx->errstr, "reset") || strstr(ctx->errstr, "Broken pipe"));
}

void wb_rpool_drop_idle(wb_rpool_t *pool)
{
    wb_rc_t **old;
    int n;

    pthread_mutex_lock(&pool->mu);
    n = pool->nidle;
    old = n > 0 ? malloc((size_t)n * sizeof(*old)) : NULL;
    if (old)
        memcpy(old, pool->idle, (size_t)n * sizeof(*old));
    else
        n = 0;
    pool->nidle -= n;
    pthread_mutex_unlock(&pool->mu);
    /* Freed outside the lock: closing a socket is I/O. */
    for (int i = 0; i < n; i++)
        wb_rc_free(old[i]);
    free(old);
}
