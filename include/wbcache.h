/* wbcache.h — public API of libwbcache, the write-behind cache client.
 *
 * This is the only public header. Everything else (common/, producer/lib/)
 * is internal. Handles are opaque.
 */
#ifndef WBCACHE_H
#define WBCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions. libwbcache is built with hidden
 * visibility, so exactly the functions declared with WB_EXPORT in this
 * header are its ABI (CI compares `nm -D` of libwbcache.so with them). */
#if defined(__GNUC__) || defined(__clang__)
#define WB_EXPORT __attribute__((visibility("default")))
#else
#define WB_EXPORT
#endif

#define WBCACHE_VERSION_MAJOR 0
#define WBCACHE_VERSION_MINOR 1
#define WBCACHE_VERSION_PATCH 0

/* One error enum for the whole project; 0 is success. Errors of hiredis,
 * libpq and librdkafka are translated into these at the boundary; the
 * detail goes into the caller's errstr buffer where a call takes one. */
typedef enum wb_err_e {
    WB_OK = 0,
    WB_ERR_INVALID_ARG,    /* a NULL, empty or malformed argument */
    WB_ERR_NOMEM,          /* allocation failed */
    WB_ERR_CONFIG,         /* configuration file invalid */
    WB_ERR_IO,             /* file or socket error (errno kept in errstr) */
    WB_ERR_REDIS,          /* Redis unreachable or replied with an error */
    WB_ERR_KAFKA,          /* Kafka client or broker error */
    WB_ERR_PG,             /* PostgreSQL unreachable or statement failed */
    WB_ERR_TIMEOUT,        /* an operation exceeded its configured timeout */
    WB_ERR_NOT_FOUND,      /* key absent (or deleted) */
    WB_ERR_QUEUE_FULL,     /* the local event queue is full (ack: cache) */
    WB_ERR_TOO_LARGE,      /* value above producer.max_value_bytes */
    WB_ERR_UNKNOWN_ENTITY, /* entity name not in the config */
    WB_ERR_DECODE,         /* change event malformed */
    WB_ERR_STALE,          /* a version guard refused an older write */
    WB_ERR_LOADER,         /* the caller's loader callback failed */
    WB_ERR_CLOSED,         /* handle is shutting down */
    WB_ERR__COUNT
} wb_err_t;

/* Returns a static, human-readable name for err; never NULL (an unknown
 * value gives "unknown error"). Thread-safe. */
WB_EXPORT const char *wb_err2str(wb_err_t err);

/* ------------------------------------------------------------------------
 * Client handle
 *
 * Threads: a wb_client_t is thread-safe. Any number of threads may call
 * any function on one handle at once (it keeps a small pool of Redis and
 * PostgreSQL connections and one Kafka producer); only wb_client_close()
 * must not race with other calls on the same handle.
 * Keys: every call names an entity (entities[].name in the config) and an
 * id; the cache key is the entity's prefix followed by the id, and the
 * PostgreSQL row's key is the id.
 * Threads of its own: each handle runs one Kafka poll thread (delivery
 * reports, librdkafka's log lines) plus librdkafka's internal threads,
 * which block all signals. Callbacks run on the calling thread (the loader
 * of wb_get_or_load) or, for the log callback, also on the poll thread.
 * Signals: SIGPIPE cannot kill the application, whatever its disposition,
 * so there is no need to ignore it. The library blocks it on the calling
 * thread around its writes to Redis (hiredis writes with write(2)) and
 * consumes the SIGPIPE such a write raised before unblocking, as libpq
 * does; libpq itself sends with MSG_NOSIGNAL, and librdkafka does all its
 * socket I/O on its own threads, which block every signal. A write to a
 * connection Redis closed is retried once on a fresh connection, else the
 * call fails with WB_ERR_REDIS. The library installs no signal handler.
 * ------------------------------------------------------------------------ */

typedef struct wb_client_s wb_client_t;
typedef struct wb_config_s wb_config_t; /* a loaded config (internal) */

/* Acknowledgement mode of write-behind writes.
 * Redis replicates asynchronously: with WB_ACK_CACHE a write acknowledged by
 * a master that fails before its replica got the write, and before its
 * change event reached Kafka (say the producer died with it, or Kafka was
 * down), is lost — the promoted replica never saw it and nothing else holds
 * it. WB_ACK_LOG (the event is in Kafka) and WB_ACK_REPLICA (a replica holds
 * the write, and the sweeper publishes it from there) close that window. */
typedef enum wb_ack_e {
    WB_ACK_CACHE = 0,    /* return after Redis; Kafka send in the background */
    WB_ACK_LOG = 1,      /* return after Kafka acknowledged (acks=all) */
    WB_ACK_REPLICA = 2,  /* return after Redis and `WAIT 1 producer.replica_timeout_ms` on
                          * the key's master confirmed a replica has the write; Kafka
                          * send in the background as with WB_ACK_CACHE */
    WB_ACK_DEFAULT = -1, /* producer.ack from the config */
} wb_ack_t;

/* Levels of log lines, lowest first. */
typedef enum wb_log_level_e {
    WB_LOG_DEBUG = 0,
    WB_LOG_INFO = 1,
    WB_LOG_WARN = 2,
    WB_LOG_ERROR = 3,
} wb_log_level_t;

/* Log lines of one handle (already formatted, one line, no newline; line
 * is only valid during the call) go to the callback given when it was
 * opened; the library itself never prints. Each handle has its own
 * callback and level (log.level of its config, or
 * wb_client_set_log_level): two handles in one process each get only the
 * lines logged while working for them, including those of the library's
 * internal modules and of librdkafka (syslog levels 0-3 as ERROR, 4 WARN,
 * 5 INFO, 6-7 DEBUG; librdkafka's "debug" property in kafka.properties adds
 * its debug lines). Threads: called on the thread that called into the
 * handle, or on the handle's Kafka poll thread, possibly on several at
 * once; it must be thread-safe and must not call back into the client. */
typedef void (*wb_log_fn)(wb_log_level_t level, const char *line, void *opaque);

/* Loads and strictly validates a YAML config (see config/README.md). On
 * success *confp owns it (free with wb_config_destroy); on failure returns
 * WB_ERR_CONFIG / WB_ERR_IO and errstr holds one "FILE:LINE:COL: key: what"
 * line per error. Thread-safe (no shared state). */
WB_EXPORT wb_err_t wb_config_load(const char *path, wb_config_t **confp, char *errstr,
                                  size_t errstr_size);

/* Frees a config; NULL is fine. */
WB_EXPORT void wb_config_destroy(wb_config_t *conf);

/* Opens a client from the YAML config at config_path (NULL: $WBCACHE_CONFIG,
 * else config/wbcache.yaml). Connects to Redis (and loads the scripts;
 * WB_ERR_REDIS if its maxmemory-policy is allkeys-*, which could evict
 * dirty entries) and creates the Kafka producer (up to 3 s asking the
 * changes topic's max.message.bytes; Kafka being down does not fail the
 * open); PostgreSQL is connected lazily on the first
 * read-through or write-through miss. This handle's log lines at log.level
 * of the config and above go to log_cb with log_opaque (borrowed: both must
 * stay valid until wb_client_close returns); log_cb may be NULL (lines
 * dropped). Lines of the open itself go there too.
 * On success *clientp owns a new handle. On failure returns WB_ERR_CONFIG,
 * WB_ERR_REDIS, WB_ERR_KAFKA, WB_ERR_NOMEM and writes the detail into errstr. */
WB_EXPORT wb_err_t wb_client_open(const char *config_path, wb_log_fn log_cb, void *log_opaque,
                                  wb_client_t **clientp, char *errstr, size_t errstr_size);

/* As wb_client_open, from a config already loaded; the client takes
 * ownership of conf on success only (on failure the caller still owns it). */
WB_EXPORT wb_err_t wb_client_open_config(wb_config_t *conf, wb_log_fn log_cb, void *log_opaque,
                                         wb_client_t **clientp, char *errstr, size_t errstr_size);

/* Waits up to timeout_ms for queued change events to be acknowledged by
 * Kafka. Returns WB_OK when the queue is empty, else WB_ERR_TIMEOUT (the
 * entries stay dirty in Redis, so the sweeper re-publishes them). */
WB_EXPORT wb_err_t wb_client_flush(wb_client_t *client, int timeout_ms);

/* Flushes (up to producer.kafka_timeout_ms), closes every connection, stops
 * the handle's threads and frees the handle; once it returns, its log
 * callback is no longer called. NULL is fine. */
WB_EXPORT void wb_client_close(wb_client_t *client);

/* Lines of this handle below level are dropped from now on (the initial
 * level is log.level of its config). Other handles are not affected.
 * Returns WB_OK, or WB_ERR_INVALID_ARG for a NULL client or a level that
 * is not a wb_log_level_t. Thread-safe. */
WB_EXPORT wb_err_t wb_client_set_log_level(wb_client_t *client, wb_log_level_t level);

/* ---------------------------------------------------------------- values */

/* A value read from the cache or the database. data is malloc'ed and owned
 * by the caller: release with wb_value_free(). */
typedef struct wb_value_s {
    void *data; /* value bytes (NUL-terminated for convenience, not counted in len) */
    size_t len;
    int64_t version; /* 0 when unknown (cache-aside fill from a loader) */
    int hit;         /* 1 when served from the cache, 0 when loaded */
} wb_value_t;

/* Frees value->data and zeroes the struct. NULL is fine. */
WB_EXPORT void wb_value_free(wb_value_t *value);

/* ------------------------------------------------------ write-behind */

/* Write-behind put: one Redis script gives the write a new version, stores
 * the value dirty (no TTL, listed in the dirty index), then the change
 * event is sent to Kafka. ack: see wb_ack_t. On success *versionp (may be
 * NULL) receives the version.
 * Errors: WB_ERR_UNKNOWN_ENTITY; WB_ERR_INVALID_ARG (NULL or empty id, an
 * id that is not UTF-8 or holds control bytes or braces, value NULL with
 * len > 0, or a value the entity's column cannot hold — see "Values are
 * checked" below); WB_ERR_TOO_LARGE (value above producer.max_value_bytes,
 * or too big for one Kafka message per kafka.properties message.max.bytes
 * or the changes topic's max.message.bytes, read at open when the broker
 * allows DescribeConfigs);
 * WB_ERR_QUEUE_FULL (producer.queue_max events already wait for Kafka).
 * For these nothing is written. WB_ERR_REDIS / WB_ERR_TIMEOUT: Redis
 * failed within redis.timeout_ms, nothing acknowledged (a timed-out script
 * may still run on a server that was only slow; its entry is then dirty
 * and the sweeper delivers it). With ack: log, WB_ERR_KAFKA /
 * WB_ERR_TIMEOUT: the cache holds the write, dirty, and the sweeper will
 * deliver it, but the caller must treat the write as not acknowledged.
 * With ack: cache a produce failure after the Redis write still returns
 * WB_OK (the write is acknowledged by the cache; the failure is logged and
 * counted in wb_stats_t.kafka_errors; the sweeper delivers the entry).
 * With ack: replica the call also sends `WAIT 1 producer.replica_timeout_ms`
 * on the connection that ran the script (the calling thread blocks up to
 * that long, holding one pooled connection); WB_ERR_TIMEOUT when no replica
 * confirmed in time (a standalone server never can), WB_ERR_REDIS when the
 * connection failed during WAIT: the cache holds the write, dirty, and its
 * event was queued as with ack: cache, but the caller must treat the write
 * as not acknowledged. */
WB_EXPORT wb_err_t wb_put(wb_client_t *client, const char *entity, const char *id,
                          const void *value, size_t len, wb_ack_t ack, int64_t *versionp);

/* Values are checked against the entity's value_type before anything is
 * written (wb_put, wb_put_batch, wb_put_through), so a value PostgreSQL
 * would refuse never reaches the cache or the log:
 *   jsonb — exactly one JSON text by RFC 8259 (UTF-8, no trailing commas,
 *           comments, NaN or leading zeros; an empty value is not JSON),
 *           and what jsonb stores: no \u0000 escape, no unpaired surrogate
 *           escape, numbers within PostgreSQL numeric's range, nesting at
 *           most 1000 levels;
 *   text  — valid UTF-8 without NUL bytes;
 *   bytea — any bytes;
 *   a mapped entity (entities[].key_column, on a table of your own) — a
 *           JSON object whose top-level fields are all mapped to columns
 *           (entities[].columns), and an id in the key type's canonical
 *           form (bigint "42", lowercase uuid; also checked by wb_get).
 *           Whether a field fits its column's type is PostgreSQL's to say:
 *           the flusher dead-letters a row it refuses, naming the column.
 * A refused value is WB_ERR_INVALID_ARG; the reason, with the byte offset,
 * goes to the log callback at WARN level as "<cache key>: write refused,
 * nothing written: <reason>" (other argument errors log at debug level). */

/* Write-behind delete: a versioned tombstone in the cache (dirty) and a
 * Kafka tombstone (null value). Same errors as wb_put. */
WB_EXPORT wb_err_t wb_del(wb_client_t *client, const char *entity, const char *id, wb_ack_t ack,
                          int64_t *versionp);

/* One write of a batch for wb_put_batch. value == NULL means delete. */
typedef struct wb_write_s {
    const char *entity;
    const char *id;
    const void *value;
    size_t len;
    int64_t version; /* out: the version given to this write */
    wb_err_t err;    /* out: this write's result */
} wb_write_t;

/* Throughput form of wb_put/wb_del: all n writes go to Redis in one
 * pipelined round trip, then to Kafka; with ack: log it waits once for all
 * of them. Each write gets its own err/version. Writes are applied in
 * array order; if Redis lost its script cache mid-pipeline, a write that
 * could not run in order comes back WB_ERR_REDIS with nothing written.
 * With ack: replica, one WAIT goes to each master that ran part of the
 * batch, after the pipeline; if one of them confirms no replica, every
 * write of the batch gets WB_ERR_TIMEOUT (WAIT does not say which writes a
 * replica lacks; all of them are in the cache and their events queued).
 * Returns WB_OK when every write succeeded, else the first error (look at
 * writes[i].err). */
WB_EXPORT wb_err_t wb_put_batch(wb_client_t *client, wb_write_t *writes, size_t n, wb_ack_t ack);

/* ------------------------------------------------------ write-through */

/* Write-through put: a version from Redis, then a version-guarded upsert
 * committed in PostgreSQL, then the cache, then the change event.
 * If PostgreSQL fails the call fails and the cache is not touched.
 * On WB_OK PostgreSQL holds the write. The cache holds it too, dirty
 * (no TTL, in the dirty index, like a wb_put) until wb-flusher has
 * consumed its change event (same version; PostgreSQL already holds it, so
 * the flusher only marks the entry clean and gives it the entity's TTL):
 * every write PostgreSQL holds is in the log, so a replay after a restore
 * brings it back. The event is sent in the background, never waited for
 * (as with ack: cache): a slow or absent Kafka does not fail the call; an
 * event that cannot be queued or delivered is logged, counted in
 * wb_stats_t.kafka_errors when Kafka refused it, and the sweeper
 * (wb-refresher) delivers it from the pinned entry.
 * Errors: WB_ERR_PG (or WB_ERR_TIMEOUT for statement_timeout; the cache
 * is not touched), WB_ERR_STALE (PostgreSQL already holds a newer version,
 * from a later write-behind put), WB_ERR_REDIS / WB_ERR_TIMEOUT (before the
 * upsert: nothing written; after it: PostgreSQL holds the write but the
 * cache may serve the previous value until its TTL — logged; the event is
 * still sent, and once the flusher has consumed it the older cached value
 * is dropped), WB_ERR_TOO_LARGE (also for a value too big for one Kafka
 * message: its event could never be delivered; nothing written), and the
 * argument errors of wb_put. A write-through replaces an older dirty
 * write-behind entry (its own value is newer and durable). */
WB_EXPORT wb_err_t wb_put_through(wb_client_t *client, const char *entity, const char *id,
                                  const void *value, size_t len, int64_t *versionp);

/* ------------------------------------------------- read-through / aside */

/* Read-through get: a cache hit returns the value (and may trigger a
 * refresh-ahead request, never waited for); a miss reads the entity's table
 * and fills the cache with a version-checked script (never overwrites a
 * newer or dirty entry). At most one process loads a key at a time; the
 * others wait up to producer.lock_wait_ms for its result.
 * Returns WB_OK with *out filled (out->hit 1 when served from the cache,
 * also after waiting for another loader), WB_ERR_NOT_FOUND (absent or
 * deleted; cached negatively for producer.negative_ttl_ms; a cached
 * tombstone answers this too), WB_ERR_REDIS, WB_ERR_PG, WB_ERR_TIMEOUT
 * (Redis or PostgreSQL timed out, or another process held the key's load
 * lock for longer than lock_wait_ms), WB_ERR_UNKNOWN_ENTITY,
 * WB_ERR_INVALID_ARG. *out is zeroed on every error. */
WB_EXPORT wb_err_t wb_get(wb_client_t *client, const char *entity, const char *id, wb_value_t *out);

/* What wb_get_many fills. The caller sets size to sizeof(wb_get_many_t)
 * (of the header it was built with) and provides the two arrays; fields
 * are only ever appended, and the library reads and writes only the fields
 * that fit whole into size, so a caller built with an older header keeps
 * working (a size too small to hold errs is WB_ERR_INVALID_ARG). */
typedef struct wb_get_many_s {
    size_t size;        /* in: sizeof(wb_get_many_t) */
    wb_value_t *values; /* in: room for n; out: values[i] answers ids[i] */
    wb_err_t *errs;     /* in: room for n; out: errs[i] is ids[i]'s result */
    size_t hits;        /* out: ids answered from the cache (tombstones included) */
    size_t loaded;      /* out: keys this call read from the table (its one query) */
} wb_get_many_t;

/* Bulk read-through get of n ids of one entity: wb_get for each id, in
 * fewer round trips. The lookups of all ids go to Redis in ONE pipelined
 * round trip (the same script as wb_get: hits, refresh-ahead requests, and
 * the stampede lock of each missing key). The keys whose lock this call
 * took are read from the entity's table with ONE query, filled with the
 * same version-checked script as wb_get (one pipeline; never overwrites a
 * newer or dirty entry) and their locks released (one pipeline). A key
 * another process (or thread) is loading is waited for, as by wb_get, up to
 * producer.lock_wait_ms, and then served from that loader's fill — each key
 * is loaded once. Ids named twice are looked up once and answered in both
 * slots (each slot owns its own copy).
 * Each id has its own result: errs[i] WB_OK with values[i] filled
 * (values[i].hit as for wb_get), WB_ERR_NOT_FOUND (absent or deleted;
 * cached negatively for producer.negative_ttl_ms, as by wb_get),
 * WB_ERR_INVALID_ARG (NULL, empty or malformed id: only that id), or
 * WB_ERR_REDIS, WB_ERR_PG, WB_ERR_TIMEOUT, WB_ERR_NOMEM; values[i] is
 * zeroed whenever errs[i] is not WB_OK. The caller owns every values[i]
 * and releases each with wb_value_free (the arrays themselves stay the
 * caller's). out->hits and out->loaded count this call's work.
 * Returns WB_OK when every id answered WB_OK or WB_ERR_NOT_FOUND, else the
 * first other per-id error (in id order). For a whole-call argument error
 * nothing is read and the return says which: WB_ERR_INVALID_ARG for a NULL
 * client, ids or out, out->values or out->errs NULL, out->size too small,
 * or n = 0 (arrays that exist are zeroed, errs[i] set to it);
 * WB_ERR_UNKNOWN_ENTITY (every errs[i] set to it).
 * Threads: as wb_get — any number of threads may call it on one handle;
 * one call uses one Redis connection and at most one PostgreSQL
 * connection at a time, and the caller's arrays must not be touched by
 * other threads during the call. */
WB_EXPORT wb_err_t wb_get_many(wb_client_t *client, const char *entity, const char *const *ids,
                               size_t n, wb_get_many_t *out);

/* Cache-aside loader: fills *value (malloc'ed; the library takes ownership)
 * and *len and returns WB_OK, or returns WB_ERR_NOT_FOUND, or another error
 * (reported to the caller as WB_ERR_LOADER). Called on the calling thread,
 * at most once per key at a time across all processes sharing the Redis. */
typedef wb_err_t (*wb_loader_fn)(void *opaque, const char *entity, const char *id, void **value,
                                 size_t *len);

/* Cache-aside get: like wb_get but a miss calls loader (out->version is 0
 * for a loaded value). The loaded value is stored only if the key is still
 * absent (it carries no version); if a write got there first, that newer
 * value is returned instead. WB_ERR_NOT_FOUND from the loader is cached
 * negatively like a missing row; any other loader error is WB_ERR_LOADER
 * (not cached). A NULL loader is WB_ERR_INVALID_ARG. */
WB_EXPORT wb_err_t wb_get_or_load(wb_client_t *client, const char *entity, const char *id,
                                  wb_loader_fn loader, void *loader_opaque, wb_value_t *out);

/* ------------------------------------------------------------ statistics */

/* A handle's counters. Every field is a uint64_t; new ones are only ever
 * appended, never reordered or removed, so a struct from an older header
 * is a prefix of a newer one (see wb_client_stats). */
typedef struct wb_stats_s {
    uint64_t puts; /* write-behind writes acknowledged (incl. deletes) */
    uint64_t put_errors;
    uint64_t through_writes; /* write-through writes committed */
    uint64_t hits;
    uint64_t misses;
    uint64_t loads;            /* loader / table reads done by this client */
    uint64_t refresh_requests; /* refresh-ahead requests published */
    uint64_t kafka_errors;     /* events Kafka failed to take (entries stay dirty) */
    uint64_t queue_depth;      /* events waiting for Kafka right now */
    uint64_t redis_moved;      /* Redis Cluster MOVED replies followed (a slot moved) */
    uint64_t redis_ask;        /* ASK replies followed (a key of a slot being migrated) */
    uint64_t redis_retries;    /* pauses for TRYAGAIN, CLUSTERDOWN or a master unreachable */
} wb_stats_t;

/* Copies the handle's counters into stats, which has room for stats_size
 * bytes: pass sizeof(wb_stats_t) (of the header the caller was built
 * with). The library writes the counters it has that fit whole into
 * stats_size and nothing beyond it: a caller built with an older, smaller
 * wb_stats_t gets the fields it knows; one built with a newer, larger one
 * on an older library finds the fields the library lacks untouched (zero
 * the struct first). Returns the number of bytes written, a multiple of
 * sizeof(uint64_t); 0 for a NULL client or stats. Thread-safe. */
WB_EXPORT size_t wb_client_stats(wb_client_t *client, wb_stats_t *stats, size_t stats_size);

#ifdef __cplusplus
}
#endif
#endif /* WBCACHE_H */
