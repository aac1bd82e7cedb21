/* wb_client_int.h — the client handle behind wbcache.h, and how its parts fit together.
 *
 * DESIGN (read this first)
 *
 * One wb_client_t is shared by all threads of an application:
 *   rpool     a mutex-protected pool of Redis deployment handles (wb_rpool.c).
 *             A call borrows one for its Redis round trips and gives it back;
 *             the pool grows on demand (one per concurrent caller) and frees
 *             broken contexts, so a Redis restart costs one reconnect per
 *             caller, never a crash. Every command has redis.timeout_ms.
 *   pgpool    the same for PGconn, connected lazily (wb_pgpool.c): only
 *             read-through misses and write-through need PostgreSQL.
 *   producer  one idempotent (acks=all) librdkafka producer plus a poll
 *             thread that serves delivery reports (wb_producer.c). Its
 *             local queue is the bounded queue of ack: cache: a put reserves
 *             a slot BEFORE touching Redis and fails with WB_ERR_QUEUE_FULL
 *             when none is free, so a Kafka outage turns into a clear error
 *             instead of unbounded memory. ack: log waits for this message's
 *             delivery report (a waiter passed as the message opaque).
 *
 * The patterns, one file each:
 *   wb_write.c    write-behind put/del/batch: put script (version, dirty,
 *                 no TTL, dirty index) -> change event.
 *   wb_through.c  write-through: version script -> PostgreSQL upsert
 *                 (wb_table_upsert, n = 1) -> through script (clean + TTL).
 *   wb_read.c     read-through and cache-aside with stampede protection;
 *                 the hit path is ONE round trip (the "get" script of
 *                 wb_entry.h also decides refresh-ahead and takes the lock);
 *                 wb_get_many pipelines it for many keys.
 * Every Redis script and command on the cache entry is wb_entry.h's.
 *
 * Logging: the handle's log scope (wb_log.h) carries its callback and
 * level. Every public call enters it on the caller's thread and leaves it
 * on return; the poll thread lives in it. So everything logged while
 * working for this handle -- by producer/lib, by the core modules, by
 * librdkafka (routed to the poll thread) -- reaches this handle's callback
 * and no other. Errors never print.
 *
 * SIGPIPE: hiredis writes with write(2), so a write to a connection the
 * server closed would raise SIGPIPE, whose default action kills the
 * application. Every Redis step (wb_client_redis, the connection made by
 * open) runs with SIGPIPE blocked on the calling thread (wb_sigpipe.h);
 * libpq and librdkafka protect their own sockets.
 */
#ifndef WB_CLIENT_INT_H
#define WB_CLIENT_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "wb_config.h"
#include "wb_log.h"
#include "wb_pgpool.h"
#include "wb_producer.h"
#include "wb_rpool.h"
#include "wbcache.h"

/* Room for error detail inside the library (logged, never returned). */
#define WB_ERRSTR_MAX 512

typedef struct wb_client_counters_s {
    atomic_uint_fast64_t puts;
    atomic_uint_fast64_t put_errors;
    atomic_uint_fast64_t through_writes;
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t misses;
    atomic_uint_fast64_t loads;
    atomic_uint_fast64_t refresh_requests;
    atomic_uint_fast64_t kafka_errors;
    atomic_uint_fast64_t redis_moved;
    atomic_uint_fast64_t redis_ask;
    atomic_uint_fast64_t redis_retries;
} wb_client_counters_t;

struct wb_client_s {
    wb_config_t *conf;  /* owned */
    wb_log_scope_t log; /* the application's callback and this handle's level */
    wb_rpool_t *rpool;
    wb_pgpool_t *pgpool;
    wb_producer_t *producer;
    wb_client_counters_t stats;
};

/* Resolves entity and id to the entity and the cache key (buf holds
 * WB_KEY_MAX bytes). Returns WB_ERR_UNKNOWN_ENTITY, WB_ERR_INVALID_ARG
 * (bad id; logged at debug) or WB_OK. */
wb_err_t wb_client_key(wb_client_t *client, const char *entity, const char *id,
                       const wb_entity_t **entp, char *buf, size_t *lenp);

/* Checks a value against ent's column type (wb_column_check) before any
 * write. A refused value is WB_ERR_INVALID_ARG and its reason (byte offset,
 * what is wrong) goes to the log callback at WARN — unlike a malformed id
 * (logged at debug): such a value is a bug in the application's data that
 * would otherwise have become poison in the flusher, and wb_put has no
 * errstr to carry the reason. key is the cache key, for the log line. */
wb_err_t wb_client_check_value(const wb_entity_t *ent, const char *key, const void *value,
                               size_t len);

/* Fills ev with the change event of one write (invariant 3): key, value
 * (none for a delete), version, write time, entity. ev borrows key and
 * value. Used by write-behind (wb_write.c) and write-through. */
void wb_write_event(wb_event_t *ev, const wb_entity_t *ent, const char *key, size_t keylen,
                    const void *value, size_t len, int is_delete, int64_t version, int64_t time_us);

/* One Redis step of a call: runs on a borrowed context. */
typedef wb_err_t (*wb_redis_op_fn)(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size);

/* Borrows a context, runs op, gives the context back (freed if broken).
 * If op failed because a pooled connection had gone stale (the server
 * restarted while it sat idle; the command never ran), drops the idle
 * connections and runs op once more on a fresh one. Returns op's result or
 * the connect error. */
wb_err_t wb_client_redis(wb_client_t *client, wb_redis_op_fn op, void *arg, char *errstr,
                         size_t errstr_size);

/* One PostgreSQL step of a call: runs on a borrowed connection. */
typedef wb_err_t (*wb_pg_op_fn)(PGconn *conn, void *arg, char *errstr, size_t errstr_size);

/* The PostgreSQL twin of wb_client_redis: borrows a connection, runs op,
 * gives it back; if op failed on a pooled connection found dead (the
 * server restarted while it sat idle, so the statement never reached a
 * server), runs op once more on a fresh one. Returns op's result or the
 * connect error. */
wb_err_t wb_client_pg(wb_client_t *client, wb_pg_op_fn op, void *arg, char *errstr,
                      size_t errstr_size);

/* Counts one refresh request and publishes it (fire-and-forget). */
void wb_client_request_refresh(wb_client_t *client, const wb_entity_t *ent, const char *key,
                               size_t keylen, int64_t version);

#endif /* WB_CLIENT_INT_H */
