/* wb_config.h — the one YAML config shared by wbctl, wb-flusher, wb-refresher. */
#ifndef WB_CONFIG_H
#define WB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wbcache.h"

typedef enum wb_value_type_e { WB_VT_TEXT = 0, WB_VT_JSONB = 1, WB_VT_BYTEA = 2 } wb_value_type_t;
typedef enum wb_schema_mode_e {
    WB_SCHEMA_CREATE = 0,
    WB_SCHEMA_VERIFY = 1,
    WB_SCHEMA_MIGRATE = 2
} wb_schema_mode_t;
typedef enum wb_key_type_e { WB_KT_TEXT = 0, WB_KT_BIGINT = 1, WB_KT_UUID = 2 } wb_key_type_t;
typedef enum wb_delete_mode_e { WB_DELETE_HARD = 0, WB_DELETE_SOFT = 1 } wb_delete_mode_t;

/* One mapped column of an entity: the top-level JSON field of the value
 * and the column of the table that holds it. */
typedef struct wb_column_map_s {
    char *field;
    char *column;
} wb_column_map_t;

/* name=value pair of the kafka.properties map, passed verbatim to librdkafka. */
typedef struct wb_kv_s {
    char *name;
    char *value;
} wb_kv_t;

typedef struct wb_entity_s {
    char *name;                 /* entities[].name — carried in every change event */
    char *prefix;               /* entities[].prefix — cache key = prefix + id */
    char *table;                /* entities[].table — PostgreSQL table (quoted when used) */
    int64_t ttl_ms;             /* entities[].ttl_ms — TTL of a clean cache entry */
    double refresh_ahead;       /* entities[].refresh_ahead — 0 disables; (0,1) */
    wb_value_type_t value_type; /* entities[].value_type: text | jsonb | bytea */
    /* A mapped entity (key_column set) lives on a table of the user's own,
     * one column per top-level JSON field (wb_table.h); "" = wbcache's layout. */
    char *key_column;             /* entities[].key_column — the id's column; "" = not mapped */
    wb_key_type_t key_type;       /* entities[].key_type: text | bigint | uuid */
    char *version_column;         /* entities[].version_column */
    char *columns;                /* entities[].columns as written: "field[=column], ..." */
    wb_delete_mode_t delete_mode; /* entities[].delete: hard (row deleted) | soft */
    char *deleted_column;         /* entities[].deleted_column — the flag of delete: soft */
    wb_column_map_t *map;         /* columns parsed, in order */
    size_t nmap;
} wb_entity_t;

/* Whether ent is mapped onto the user's columns (entities[].key_column). */
#define WB_ENTITY_MAPPED(ent) ((ent)->key_column && (ent)->key_column[0])

typedef struct wb_config_s {
    char *path; /* file it was loaded from ("<memory>" for strings) */

    struct {
        char *host;
        int port;
        char *user;     /* ACL user; "" = the default user (AUTH password) */
        char *password; /* secret: WBCACHE_REDIS_PASSWORD overrides */
        int db;
        int timeout_ms;
        char *dirty_index; /* dirty index name; shard N is "<name>:{N}" (wb_entry.h) */
        int dirty_shards;  /* shards of the dirty index; keys carry "{N}" */
        char *seed_nodes;  /* "host:port,...": tried when host:port is down (cluster) */
    } redis;

    struct {
        char *brokers;
        char *topic_changes;     /* kafka.topics.changes */
        char *topic_refresh;     /* kafka.topics.refresh */
        char *topic_dead_letter; /* kafka.topics.dead_letter */
        int partitions;          /* used when topics are created */
        wb_kv_t *props;          /* kafka.properties, in file order */
        size_t nprops;
    } kafka;

    struct {
        char *dsn;      /* secret: WBCACHE_PG_DSN overrides */
        char *password; /* secret: WBCACHE_PG_PASSWORD overrides */
        int connect_timeout_ms;
        int statement_timeout_ms;
        wb_schema_mode_t schema;
    } postgres;

    struct {
        wb_ack_t ack;
        int queue_max; /* events waiting for Kafka (ack: cache) */
        int max_value_bytes;
        int kafka_timeout_ms;   /* ack: log waits at most this long */
        int replica_timeout_ms; /* ack: replica: WAIT's timeout */
        int negative_ttl_ms;    /* not-found cached this long */
        int lock_ttl_ms;        /* stampede lock lifetime */
        int lock_wait_ms;       /* how long losers wait for the winner */
        int refresh_dedupe_ms;
        int ttl_jitter_pct; /* 0..50: +-% random jitter on fill TTLs */
    } producer;

    struct {
        char *group_id;
        int batch_max_events;
        int64_t batch_max_bytes;
        int batch_max_wait_ms;
        int retry_initial_ms;
        int retry_max_ms;
        char *http_listen; /* "host:port" for /metrics /healthz /readyz */
        int shutdown_deadline_ms;
        int64_t tombstone_retention_ms; /* soft-deleted rows purged after this */
        char *instance_id;              /* group.instance.id; "" = dynamic membership */
        int64_t max_version_ahead_ms;   /* versions further ahead of the clock: poison; 0 = off */
    } flusher;

    struct {
        char *group_id;
        char *instance_id; /* group.instance.id; "" = dynamic membership */
        int batch_max_keys;
        int64_t batch_max_bytes; /* row bytes held at once while reloading */
        int batch_max_wait_ms;
        int retry_initial_ms;
        int retry_max_ms;
        int collapse_window_ms;
        int sweep_interval_ms;
        int sweep_after_ms;
        int sweep_max_per_pass;
        char *http_listen;
        int shutdown_deadline_ms;
    } refresher;

    struct {
        char *level;  /* debug | info | warn | error */
        char *format; /* text | json */
    } log;

    wb_entity_t *entities;
    size_t nentities;
} wb_config_t;

/* Loads and strictly validates the YAML file at path. On success *confp owns
 * a new config (free with wb_config_destroy). On failure returns
 * WB_ERR_CONFIG (or WB_ERR_IO / WB_ERR_NOMEM) and writes one message per
 * line into errstr: "FILE:LINE:COL: key.path: what is wrong".
 * The environment is read during the load, with getenv: ${VAR},
 * ${VAR:-default} in values are expanded, and the secrets
 * WBCACHE_REDIS_PASSWORD, WBCACHE_PG_DSN, WBCACHE_PG_PASSWORD,
 * WBCACHE_KAFKA_SASL_USERNAME and WBCACHE_KAFKA_SASL_PASSWORD override the
 * file. The returned config is a snapshot; later environment changes do not
 * affect it. Do not call setenv/unsetenv in another thread while a load
 * runs (load before starting threads). */
wb_err_t wb_config_load(const char *path, wb_config_t **confp, char *errstr, size_t errstr_size);

/* As wb_config_load, from a buffer; name is used in messages. */
wb_err_t wb_config_load_string(const char *name, const char *yaml, size_t len, wb_config_t **confp,
                               char *errstr, size_t errstr_size);

/* Path a program uses when -c is not given: $WBCACHE_CONFIG, else
 * "config/wbcache.yaml". Static storage / environment; do not free. */
const char *wb_config_default_path(void);

/* Writes the effective config as YAML to out; secrets are shown as "****". */
void wb_config_print(const wb_config_t *conf, FILE *out);

/* Frees conf and everything it owns; NULL is fine. */
void wb_config_destroy(wb_config_t *conf);

/* The prefix of the internal Redis keys (the default dirty index, the
 * refresh markers and stampede locks): no entity prefix may overlap it. */
#define WB_CONFIG_INTERNAL_PREFIX "wb:"

/* Entity lookups. Return NULL when nothing matches. No prefix starts
 * another (the loader refuses overlaps), so by_key finds at most one
 * entity; it picks the longest prefix key starts with all the same. */
const wb_entity_t *wb_config_entity(const wb_config_t *conf, const char *name);
const wb_entity_t *wb_config_entity_by_key(const wb_config_t *conf, const char *key, size_t keylen);

/* Where the id starts in key: after its shard tag "{N}" (wb_entry.h; a key
 * without one is read as prefix + id) and ent's prefix. 0 if key does not
 * start so or its id is empty. */
size_t wb_entity_id_offset(const wb_entity_t *ent, const char *key, size_t keylen);

/* Writes the effective value of the dotted key (as in `config show`, e.g.
 * "kafka.brokers") of conf to out, unquoted, and a newline; secrets are
 * shown as "****" (a DSN with its password masked). Returns WB_OK, else
 * WB_ERR_INVALID_ARG (an unknown key, or kafka.properties / entities, which
 * are not single values) or WB_ERR_NOMEM, with the reason in errstr. */
wb_err_t wb_config_print_key(const wb_config_t *conf, const char *key, FILE *out, char *errstr,
                             size_t errstr_size);

/* One key of the config as documentation describes it, from the table
 * that drives loading. */
typedef struct wb_config_key_s {
    char key[64];     /* dotted path; an entity's keys as "entities[].name" */
    const char *type; /* int, int64, number, bool, enum, string, mapping, list */
    const char *def;  /* the default as written in YAML; NULL = none */
    bool required;
    bool secret;      /* never printed (a password) */
    bool secret_part; /* printed with its password masked (a DSN) */
    char range[256];  /* allowed values in words; "" = any of its type */
    const char *help; /* one line; "" when the table has none */
} wb_config_key_t;

/* Describes the i-th key (from 0: the config's keys in printing order, then
 * an entity's) into *key. Returns false when i is past the last key. Static
 * data; no config needed. */
bool wb_config_key_describe(size_t i, wb_config_key_t *key);

#endif /* WB_CONFIG_H */
