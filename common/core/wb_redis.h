/* wb_redis.h — Redis connections: connect with timeouts, AUTH and SELECT; reconnect; errors.
 * What is stored in Redis, and every command on it, is wb_entry.h's. */
#ifndef WB_REDIS_H
#define WB_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "wb_config.h"
#include "wbcache.h"

/* Connects to conf->redis.host:port with conf->redis.timeout_ms for the
 * connect and for every later command (so a dead server cannot block a
 * caller longer), AUTHs (`AUTH user password` when redis.user is set, else
 * `AUTH password` if a password is set), SELECTs the db, PINGs (so a
 * server that accepts but never answers fails here; the scripts are
 * wb_entry_load's) and checks the eviction policy
 * (wb_redis_check_eviction): every program and the library connect
 * through here, so none runs against a Redis that may evict dirty
 * entries. On WB_OK *out owns a new blocking context (free with
 * redisFree). On failure *out is NULL and the result is WB_ERR_REDIS,
 * WB_ERR_TIMEOUT, WB_ERR_INVALID_ARG or WB_ERR_NOMEM with errstr naming
 * host:port and what failed (never the password). A context is used by one
 * thread at a time. */
wb_err_t wb_redis_connect(const wb_config_t *conf, redisContext **out, char *errstr,
                          size_t errstr_size);

/* As wb_redis_connect, to host:port instead of conf->redis.host:port (a
 * node of a Redis Cluster, wb_rcluster.h). */
wb_err_t wb_redis_connect_node(const wb_config_t *conf, const char *host, int port,
                               redisContext **out, char *errstr, size_t errstr_size);

/* Refuses an `allkeys-*` maxmemory-policy (invariant 2: dirty entries are
 * pinned by having no TTL, which only `volatile-*` policies and
 * `noeviction` respect): WB_ERR_REDIS with a message naming the policy and
 * the fix. A server that does not let CONFIG GET through is accepted (it
 * cannot be checked). where names the server in messages. */
wb_err_t wb_redis_check_eviction(redisContext *ctx, const char *where, char *errstr,
                                 size_t errstr_size);

/* Replaces *ctx (typically broken: ctx->err set) with a new connection made
 * as wb_redis_connect does. On WB_OK the old context was freed; on failure
 * *ctx is left as it was, so the caller may retry later. */
wb_err_t wb_redis_reconnect(const wb_config_t *conf, redisContext **ctx, char *errstr,
                            size_t errstr_size);

/* Translates ctx's I/O error (ctx->err) into WB_ERR_TIMEOUT (read, write or
 * connect timed out) or WB_ERR_REDIS, writing "what: detail" to errstr. */
wb_err_t wb_redis_ctx_error(const redisContext *ctx, const char *what, char *errstr,
                            size_t errstr_size);

#endif /* WB_REDIS_H */
