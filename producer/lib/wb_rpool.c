/* wb_rpool.c — a thread-safe pool of blocking Redis connections for one client handle. */
#include "wb_rpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wb_entry.h"
#include "wb_redis.h"

struct wb_rpool_s {
    const wb_config_t *conf;
    pthread_mutex_t mu; /* guards idle/nidle only; never held during I/O */
    redisContext **idle;
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
        redisFree(pool->idle[i]);
    pthread_mutex_destroy(&pool->mu);
    free(pool->idle);
    free(pool);
}

/* A new connection with the entry's scripts loaded, so its first EVALSHA
 * hits. */
static wb_err_t connect_one(wb_rpool_t *pool, redisContext **ctx, char *errstr, size_t errstr_size)
{
    wb_err_t err = wb_redis_connect(pool->conf, ctx, errstr, errstr_size);

    if (err == WB_OK && (err = wb_entry_load(*ctx, errstr, errstr_size)) != WB_OK) {
        redisFree(*ctx);
        *ctx = NULL;
    }
    return err;
}

wb_err_t wb_rpool_get(wb_rpool_t *pool, redisContext **ctx, int *reused, char *errstr,
                      size_t errstr_size)
{
    redisContext *c = NULL;

    pthread_mutex_lock(&pool->mu);
    if (pool->nidle > 0) c = pool->idle[--pool->nidle];
    pthread_mutex_unlock(&pool->mu);
    if (reused) *reused = c != NULL;
    if (c) {
        *ctx = c;
        return WB_OK;
    }
    return connect_one(pool, ctx, errstr, errstr_size);
}

void wb_rpool_put(wb_rpool_t *pool, redisContext *ctx)
{
    if (!ctx) return;
    if (!ctx->err) {
        pthread_mutex_lock(&pool->mu);
        if (pool->nidle < pool->max_idle) {
            pool->idle[pool->nidle++] = ctx;
            ctx = NULL;
        }
        pthread_mutex_unlock(&pool->mu);
    }
    if (ctx) redisFree(ctx);
}

int wb_rpool_is_stale(const redisContext *ctx)
{
    if (!ctx || !ctx->err) return 0;
    if (ctx->err == REDIS_ERR_EOF) return 1;
    return ctx->err == REDIS_ERR_IO &&
           (strstr(ctx->errstr, "reset") || strstr(ctx->errstr, "Broken pipe"));
}

void wb_rpool_drop_idle(wb_rpool_t *pool)
{
    redisContext **old;
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
    /* Freed outside the lock: redisFree closes a socket. */
    for (int i = 0; i < n; i++)
        redisFree(old[i]);
    free(old);
}
