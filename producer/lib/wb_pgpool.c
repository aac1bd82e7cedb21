/* wb_pgpool.c — a thread-safe, lazily connected pool of PostgreSQL connections. */
#include "wb_pgpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "wb_pg.h"

struct wb_pgpool_s {
    const wb_config_t *conf;
    pthread_mutex_t mu; /* guards idle/nidle only; never held while connecting */
    PGconn **idle;
    int nidle;
    int max_idle;
};

wb_pgpool_t *wb_pgpool_new(const wb_config_t *conf, int max_idle)
{
    wb_pgpool_t *pool = calloc(1, sizeof(*pool));

    if (!pool) return NULL;
    pool->max_idle = max_idle > 0 ? max_idle : 1;
    pool->idle = calloc((size_t)pool->max_idle, sizeof(*pool->idle));
    if (!pool->idle) {
        free(pool);
        return NULL;
    }
    pool->conf = conf;
    pthread_mutex_init(&pool->mu, NULL);
    return pool;
}

void wb_pgpool_destroy(wb_pgpool_t *pool)
{
    if (!pool) return;
    for (int i = 0; i < pool->nidle; i++)
        PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->mu);
    free(pool->idle);
    free(pool);
}

wb_err_t wb_pgpool_get(wb_pgpool_t *pool, PGconn **conn, int *reused, char *errstr,
                       size_t errstr_size)
{
    PGconn *c = NULL;

    pthread_mutex_lock(&pool->mu);
    if (pool->nidle > 0) c = pool->idle[--pool->nidle];
    pthread_mutex_unlock(&pool->mu);
    if (reused) *reused = c != NULL;
    if (c) {
        *conn = c;
        return WB_OK;
    }
    return wb_pg_connect(pool->conf, conn, errstr, errstr_size);
}

void wb_pgpool_put(wb_pgpool_t *pool, PGconn *conn)
{
    if (!conn) return;
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE) {
        pthread_mutex_lock(&pool->mu);
        if (pool->nidle < pool->max_idle) {
            pool->idle[pool->nidle++] = conn;
            conn = NULL;
        }
        pthread_mutex_unlock(&pool->mu);
    }
    if (conn) PQfinish(conn);
}
