/* wb_config.c — the key tables, and how a YAML value becomes a typed field.
 *
 * Each table row is {key, type, offset, default, range, flags, check, help}
 * and is the one place a key is described: wb_config_walk.c finds keys in it,
 * wb_config_field_set parses and validates values by it, defaults come from
 * it, wb_config_print.c prints by it and wb_config_destroy frees by it.
 * Adding a key is adding a row (and the wb_config_t member it points at).
 */
#include "wb_config_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wb_ttl.h"
#include "wb_util.h"

#define CFG_STR_MAX 4096

/* Enum fields are stored through an int pointer. */
_Static_assert(sizeof(wb_ack_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_value_type_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_schema_mode_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_key_type_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_delete_mode_t) == sizeof(int), "enum size");

/* ---------------------------------------------------------------- tables */

static const char *check_ident(const char *s);
static const char *check_table(const char *s);
static const char *check_ident_or_empty(const char *s);
static const char *check_topic(const char *s);
static const char *check_hostport(const char *s);

static const char *const ack_names[] = {"cache", "log", "replica", NULL};
static const char *const schema_names[] = {"create", "verify", "migrate", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const vt_names[] = {"text", "jsonb", "bytea", NULL};
static const char *const kt_names[] = {"text", "bigint", "uuid", NULL};
static const char *const delete_names[] = {"hard", "soft", NULL};

#define C_OFF(m) offsetof(wb_config_t, m)
#define E_OFF(m) offsetof(wb_entity_t, m)

#define STR(k, off, d, lo, hi, fl, chk, h)                                                         \
    {                                                                                              \
        .key = k, .type = FT_STRING, .offset = off, .def = d, .min = lo, .max = hi, .flags = fl,   \
        .check = chk, .help = h                                                                    \
    }
#define INT(k, off, d, lo, hi, h)                                                                  \
    {                                                                                              \
        .key = k, .type = FT_INT, .offset = off, .def = d, .min = lo, .max = hi, .help = h         \
    }
#define I64(k, off, d, lo, hi, h)                                                                  \
    {                                                                                              \
        .key = k, .type = FT_INT64, .offset = off, .def = d, .min = lo, .max = hi, .help = h       \
    }
#define ENUM(k, off, d, nm, h)                                                                     \
    {                                                                                              \
        .key = k, .type = FT_ENUM, .offset = off, .def = d, .names = nm, .help = h                 \
    }

/* Order matters: printing emits the keys in this order, and a section's keys
 * must be contiguous. */
const cfg_field_t wb_config_fields[] = {
    STR("redis.host", C_OFF(redis.host), "127.0.0.1", 1, 1024, 0, NULL, "Redis host name or IP"),
    INT("redis.port", C_OFF(redis.port), "6379", 1, 65535, "Redis TCP port"),
    STR("redis.user", C_OFF(redis.user), "", 0, 1024, 0, NULL,
        "ACL user for AUTH user password; empty = the default user (password-only AUTH)"),
    STR("redis.password", C_OFF(redis.password), "", 0, CFG_STR_MAX, F_SECRET, NULL,
        "AUTH password; empty = none (env WBCACHE_REDIS_PASSWORD)"),
    INT("redis.db", C_OFF(redis.db), "0", 0, 1023, "database number (SELECT)"),
    INT("redis.timeout_ms", C_OFF(redis.timeout_ms), "1000", 10, 600000,
        "connect and command timeout"),
    STR("redis.dirty_index", C_OFF(redis.dirty_index), "wb:dirty", 1, 1024, 0, NULL,
        "dirty index name: shards \"<name>:{N}\" list dirty keys by write time"),
    INT("redis.dirty_shards", C_OFF(redis.dirty_shards), "64", 1, 16384,
        "dirty-index shards (cache keys carry their shard's tag \"{N}\"); a live cache "
        "refuses a change: drain and flush it first"),
    STR("redis.seed_nodes", C_OFF(redis.seed_nodes), "", 0, CFG_STR_MAX, 0, NULL,
        "Redis Cluster: more nodes to read the slot map from when redis.host:port is down, "
        "host:port[,host:port...]"),

    STR("kafka.brokers", C_OFF(kafka.brokers), "127.0.0.1:9092", 1, CFG_STR_MAX, 0, NULL,
        "bootstrap brokers, host:port[,host:port...]"),
    STR("kafka.topics.changes", C_OFF(kafka.topic_changes), "wb.changes", 1, 249, 0, check_topic,
        "change events (write-behind log)"),
    STR("kafka.topics.refresh", C_OFF(kafka.topic_refresh), "wb.refresh", 1, 249, 0, check_topic,
        "refresh-ahead requests"),
    STR("kafka.topics.dead_letter", C_OFF(kafka.topic_dead_letter), "wb.dlq", 1, 249, 0,
        check_topic, "events that could not be applied"),
    INT("kafka.partitions", C_OFF(kafka.partitions), "4", 1, 10000,
        "partitions when topics are created"),
    {.key = "kafka.properties", .type = FT_PROPS, .help = "passed verbatim to librdkafka"},

    STR("postgres.dsn", C_OFF(postgres.dsn), "", 0, CFG_STR_MAX, F_DSN, NULL,
        "libpq connection string; empty = libpq defaults (env WBCACHE_PG_DSN)"),
    STR("postgres.password", C_OFF(postgres.password), "", 0, CFG_STR_MAX, F_SECRET, NULL,
        "overrides the DSN's password; empty = none (env WBCACHE_PG_PASSWORD)"),
    INT("postgres.connect_timeout_ms", C_OFF(postgres.connect_timeout_ms), "5000", 100, 600000,
        "connection timeout"),
    INT("postgres.statement_timeout_ms", C_OFF(postgres.statement_timeout_ms), "30000", 0, 3600000,
        "per-statement timeout; 0 = none"),
    ENUM("postgres.schema", C_OFF(postgres.schema), "create", schema_names,
         "create: create missing tables; verify: only check them; migrate: add what "
         "mapped entities need (version column, tombstone table), never drop or alter"),

    ENUM("producer.ack", C_OFF(producer.ack), "cache", ack_names,
         "put returns after Redis (cache), after Kafka acked (log), or after Redis and "
         "a replica of the key's master confirmed the write (replica: Redis WAIT)"),
    INT("producer.queue_max", C_OFF(producer.queue_max), "100000", 1, 10000000,
        "events waiting for Kafka before put fails"),
    /* Below librdkafka's default message.max.bytes (1000000), which must also
     * hold the key (<= 1024), the wb-* headers and, on the dead-letter
     * topic, the wb-dlq-* headers; a value that cannot be one Kafka message
     * is refused by the library anyway (WB_ERR_TOO_LARGE). */
    INT("producer.max_value_bytes", C_OFF(producer.max_value_bytes), "900000", 1, 67108864,
        "largest value put accepts"),
    INT("producer.kafka_timeout_ms", C_OFF(producer.kafka_timeout_ms), "5000", 100, 300000,
        "ack: log waits at most this long"),
    INT("producer.replica_timeout_ms", C_OFF(producer.replica_timeout_ms), "1000", 1, 600000,
        "ack: replica waits at most this long for a replica (Redis WAIT 1 <this>)"),
    INT("producer.negative_ttl_ms", C_OFF(producer.negative_ttl_ms), "5000", 0, 86400000,
        "not-found results cached this long; 0 = not cached"),
    INT("producer.lock_ttl_ms", C_OFF(producer.lock_ttl_ms), "5000", 100, 300000,
        "stampede lock lifetime"),
    INT("producer.lock_wait_ms", C_OFF(producer.lock_wait_ms), "3000", 0, 300000,
        "how long readers wait for the lock holder's fill"),
    INT("producer.refresh_dedupe_ms", C_OFF(producer.refresh_dedupe_ms), "5000", 0, 3600000,
        "one refresh request per key per window; 0 = no dedupe"),
    INT("producer.ttl_jitter_pct", C_OFF(producer.ttl_jitter_pct), "10", 0, WB_TTL_JITTER_MAX_PCT,
        "+-% random jitter on fill TTLs"),

    STR("flusher.group_id", C_OFF(flusher.group_id), "wb-flusher", 1, 255, 0, NULL,
        "Kafka consumer group"),
    INT("flusher.batch.max_events", C_OFF(flusher.batch_max_events), "10000", 1, 1000000,
        "flush when this many events are buffered"),
    I64("flusher.batch.max_bytes", C_OFF(flusher.batch_max_bytes), "16777216", 1024, 268435456,
        "flush when buffered messages (keys, values, headers) reach this size"),
    INT("flusher.batch.max_wait_ms", C_OFF(flusher.batch_max_wait_ms), "100", 0, 60000,
        "flush at most this long after the first buffered event"),
    INT("flusher.retry.initial_ms", C_OFF(flusher.retry_initial_ms), "100", 1, 60000,
        "first backoff after a database error"),
    INT("flusher.retry.max_ms", C_OFF(flusher.retry_max_ms), "30000", 1, 3600000, "backoff cap"),
    STR("flusher.http_listen", C_OFF(flusher.http_listen), "127.0.0.1:26380", 1, 1024, 0,
        check_hostport, "host:port for /metrics /healthz /readyz"),
    INT("flusher.shutdown_deadline_ms", C_OFF(flusher.shutdown_deadline_ms), "30000", 100, 600000,
        "time allowed to finish the batch on SIGTERM"),
    I64("flusher.tombstone_retention_ms", C_OFF(flusher.tombstone_retention_ms), "1209600000", 0,
        INT64_C(315360000000),
        "soft-deleted rows purged after this; 0 = never; >= topic retention.ms + segment.ms"),
    STR("flusher.instance_id", C_OFF(flusher.instance_id), "", 0, 249, 0, NULL,
        "static group membership (group.instance.id), unique per replica; empty = dynamic"),
    /* Versions are Redis time in microseconds: one far ahead of the clock
     * is forged or from a broken clock, and would hold its row above every
     * real write until the clock caught up (invariant 4). */
    I64("flusher.max_version_ahead_ms", C_OFF(flusher.max_version_ahead_ms), "3600000", 0,
        INT64_C(315360000000),
        "dead-letter events whose version is this far ahead of the flusher's clock; 0 = off"),

    STR("refresher.group_id", C_OFF(refresher.group_id), "wb-refresher", 1, 255, 0, NULL,
        "Kafka consumer group"),
    STR("refresher.instance_id", C_OFF(refresher.instance_id), "", 0, 249, 0, NULL,
        "static group membership (group.instance.id), unique per replica; empty = dynamic"),
    INT("refresher.batch.max_keys", C_OFF(refresher.batch_max_keys), "500", 1, 100000,
        "reload at most this many keys per query"),
    I64("refresher.batch.max_bytes", C_OFF(refresher.batch_max_bytes), "16777216", 1024, 268435456,
        "row bytes held at once while reloading; rows are filled in chunks of this size"),
    INT("refresher.batch.max_wait_ms", C_OFF(refresher.batch_max_wait_ms), "100", 0, 60000,
        "reload at most this long after the first request"),
    INT("refresher.retry.initial_ms", C_OFF(refresher.retry_initial_ms), "100", 1, 60000,
        "first backoff after a PostgreSQL, Redis or Kafka error"),
    INT("refresher.retry.max_ms", C_OFF(refresher.retry_max_ms), "30000", 1, 3600000,
        "backoff cap"),
    INT("refresher.collapse_window_ms", C_OFF(refresher.collapse_window_ms), "1000", 0, 600000,
        "repeated requests for a key within this window are dropped"),
    INT("refresher.sweep_interval_ms", C_OFF(refresher.sweep_interval_ms), "5000", 100, 3600000,
        "how often the dirty sweeper runs"),
    INT("refresher.sweep_after_ms", C_OFF(refresher.sweep_after_ms), "30000", 1000, 86400000,
        "re-publish entries dirty for longer than this"),
    INT("refresher.sweep_max_per_pass", C_OFF(refresher.sweep_max_per_pass), "1000", 1, 1000000,
        "entries re-published per sweep at most"),
    STR("refresher.http_listen", C_OFF(refresher.http_listen), "127.0.0.1:26381", 1, 1024, 0,
        check_hostport, "host:port for /metrics /healthz /readyz"),
    INT("refresher.shutdown_deadline_ms", C_OFF(refresher.shutdown_deadline_ms), "30000", 100,
        600000, "time allowed to finish the batch on SIGTERM"),

    {.key = "log.level",
     .type = FT_ENUM_STR,
     .offset = C_OFF(log.level),
     .def = "info",
     .min = 1,
     .max = 16,
     .names = level_names,
     .help = "lowest level logged"},
    {.key = "log.format",
     .type = FT_ENUM_STR,
     .offset = C_OFF(log.format),
     .def = "text",
     .min = 1,
     .max = 16,
     .names = log_format_names,
     .help = "text lines, or json: one object per line (time, level, program, message, fields)"},

    {.key = "entities", .type = FT_ENTITIES, .flags = F_REQUIRED, .help = "key prefix -> table"},
};

const cfg_field_t wb_config_entity_fields[] = {
    STR("name", E_OFF(name), NULL, 1, 63, F_REQUIRED, check_ident, "carried in change events"),
    STR("prefix", E_OFF(prefix), NULL, 1, 256, F_REQUIRED, NULL,
        "cache key = \"{shard}\" + prefix + id"),
    STR("table", E_OFF(table), NULL, 1, 127, F_REQUIRED, check_table, "PostgreSQL table"),
    I64("ttl_ms", E_OFF(ttl_ms), "3600000", 1000, INT64_C(31536000000), "TTL of a clean entry"),
    {.key = "refresh_ahead",
     .type = FT_DOUBLE,
     .offset = E_OFF(refresh_ahead),
     .def = "0",
     .fmin = 0.0,
     .fmax = 1.0,
     .flags = F_MAX_EXCL,
     .help = "refresh when this fraction of the TTL has passed; 0 = off"},
    ENUM("value_type", E_OFF(value_type), "bytea", vt_names, "column type of the value"),
    STR("key_column", E_OFF(key_column), "", 0, 63, 0, check_ident_or_empty,
        "mapped entity: the id's column on your own table; \"\" = wbcache's layout"),
    ENUM("key_type", E_OFF(key_type), "text", kt_names, "mapped entity: type of key_column"),
    STR("version_column", E_OFF(version_column), "version", 1, 63, 0, check_ident,
        "mapped entity: bigint column of the version (migrate adds it)"),
    STR("columns", E_OFF(columns), "", 0, CFG_STR_MAX, 0, NULL,
        "mapped entity: top-level JSON fields to columns, \"field[=column], ...\""),
    ENUM("delete", E_OFF(delete_mode), "hard", delete_names,
         "mapped entity: hard deletes the row (version kept in wb_tombstones); soft sets "
         "deleted_column"),
    STR("deleted_column", E_OFF(deleted_column), "deleted", 1, 63, 0, check_ident,
        "mapped entity, delete: soft: boolean column flagging a deleted row (migrate adds it)"),
};

const size_t wb_config_nfields = sizeof(wb_config_fields) / sizeof(wb_config_fields[0]);
const size_t wb_config_entity_nfields =
    sizeof(wb_config_entity_fields) / sizeof(wb_config_entity_fields[0]);

/* ---------------------------------------------------------- typed values */

static const char *expected(const cfg_field_t *f)
{
    switch (f->type) {
    case FT_INT:
    case FT_INT64:
        return "an integer";
    case FT_DOUBLE:
        return "a number";
    case FT_BOOL:
        return "true or false";
    case FT_ENUM:
    case FT_ENUM_STR:
        return "a name";
    default:
        return "a string";
    }
}

/* Strict decimal integer: optional '-', digits, no leading zeros. Returns 0,
 * -1 for bad syntax, -2 for overflow. */
static int parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0, lim;

    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n || (s[i] == '0' && n - i > 1)) return -1;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9') return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) {
            /* Keep checking the syntax: "99999999999999999999x" is not a number. */
            for (; i < n; i++)
                if (s[i] < '0' || s[i] > '9') return -1;
            return -2;
        }
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

/* Decimal floating point only: no hex floats, inf or nan. */
static int parse_double(const char *s, size_t n, double *out)
{
    char buf[64];
    char *end;
    size_t i;
    bool digit = false;

    if (n == 0 || n >= sizeof(buf)) return -1;
    for (i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digit = true;
        else if (!strchr("+-.eE", s[i]) || s[i] == '\0')
            return -1;
    }
    if (!digit) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(*out)) return -1;
    return 0;
}

static int name_index(const char *const *names, const char *s, size_t n)
{
    int i;

    for (i = 0; names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return i;
    return -1;
}

static void names_join(char *buf, size_t size, const char *const *names)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; names[i]; i++) {
        if (i) strncat(buf, ", ", size - strlen(buf) - 1);
        strncat(buf, names[i], size - strlen(buf) - 1);
    }
}

/* Parses s (n bytes) as field f into base. Returns 0, -1 with a message in
 * msg, or -2 when out of memory. Secrets are never quoted in msg. */
static int field_parse(const cfg_field_t *f, const char *s, size_t n, void *base, char *msg,
                       size_t msgsz)
{
    void *dst = (char *)base + f->offset;
    char ebuf[WB_YAML_ECHO_SIZE], nbuf[128];
    int64_t iv = 0;
    double dv;
    int rc, idx;

    switch (f->type) {
    case FT_STRING:
    case FT_ENUM_STR: {
        const char *why;
        char *copy;

        if (memchr(s, '\0', n)) {
            snprintf(msg, msgsz, "must not contain NUL bytes");
            return -1;
        }
        if (f->type == FT_ENUM_STR && name_index(f->names, s, n) < 0) {
            names_join(nbuf, sizeof(nbuf), f->names);
            snprintf(msg, msgsz, "must be one of %s, got %s", nbuf,
                     wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        if ((int64_t)n < f->min) {
            if (f->min == 1)
                snprintf(msg, msgsz, "must not be empty");
            else
                snprintf(msg, msgsz, "must be at least %" PRId64 " characters long", f->min);
            return -1;
        }
        if ((int64_t)n > f->max) {
            snprintf(msg, msgsz, "must be at most %" PRId64 " characters long, got %zu", f->max, n);
            return -1;
        }
        if (f->check && (why = f->check(s)) != NULL) {
            snprintf(msg, msgsz, "%s, got %s", why, wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        copy = strndup(s, n);
        if (!copy) return -2;
        free(*(char **)dst);
        *(char **)dst = copy;
        return 0;
    }
    case FT_INT:
    case FT_INT64:
        rc = parse_int(s, n, &iv);
        if (rc == -1) {
            snprintf(msg, msgsz, "expected an integer, got %s",
                     wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        if (rc == -2 || iv < f->min || iv > f->max) {
            wb_escape(ebuf, sizeof(ebuf), s, n, WB_ESC_QUOTE | WB_ESC_HIGH);
            snprintf(msg, msgsz, "must be between %" PRId64 " and %" PRId64 ", got %s", f->min,
                     f->max, ebuf);
            return -1;
        }
        if (f->type == FT_INT)
            *(int *)dst = (int)iv;
        else
            *(int64_t *)dst = iv;
        return 0;
    case FT_DOUBLE:
        if (parse_double(s, n, &dv) != 0) {
            snprintf(msg, msgsz, "expected a number, got %s",
                     wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        if (dv < f->fmin || dv > f->fmax || ((f->flags & F_MAX_EXCL) && dv >= f->fmax)) {
            wb_escape(ebuf, sizeof(ebuf), s, n, WB_ESC_QUOTE | WB_ESC_HIGH);
            if (f->flags & F_MAX_EXCL)
                snprintf(msg, msgsz, "must be at least %g and below %g, got %s", f->fmin, f->fmax,
                         ebuf);
            else
                snprintf(msg, msgsz, "must be between %g and %g, got %s", f->fmin, f->fmax, ebuf);
            return -1;
        }
        *(double *)dst = dv;
        return 0;
    case FT_BOOL:
        if (n == 4 && strncasecmp(s, "true", 4) == 0)
            *(bool *)dst = true;
        else if (n == 5 && strncasecmp(s, "false", 5) == 0)
            *(bool *)dst = false;
        else {
            snprintf(msg, msgsz, "expected true or false, got %s",
                     wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        return 0;
    case FT_ENUM:
        idx = name_index(f->names, s, n);
        if (idx < 0) {
            names_join(nbuf, sizeof(nbuf), f->names);
            snprintf(msg, msgsz, "must be one of %s, got %s", nbuf,
                     wb_yaml_echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        *(int *)dst = idx;
        return 0;
    default:
        snprintf(msg, msgsz, "internal error: field type");
        return -1;
    }
}

void wb_config_field_set(wb_yaml_ctx_t *ctx, const cfg_field_t *f, void *base,
                         const wb_yaml_node_t *key, const wb_yaml_node_t *val, const char *path)
{
    char msg[512], dbuf[WB_YAML_ECHO_SIZE];
    char *s;
    size_t n;
    int rc;

    if (!wb_yaml_supported(ctx, val, path)) return;
    if (val->kind != WB_YAML_SCALAR) {
        wb_yaml_error(ctx, key->line, key->col, path, "expected %s, got %s", expected(f),
                      wb_yaml_describe(dbuf, sizeof(dbuf), val));
        return;
    }
    if (wb_yaml_is_null(val)) {
        if (f->type == FT_ENUM || f->type == FT_ENUM_STR) {
            names_join(msg, sizeof(msg), f->names);
            wb_yaml_error(ctx, key->line, key->col, path, "must be one of %s, got %s", msg,
                          wb_yaml_describe(dbuf, sizeof(dbuf), val));
            return;
        }
        if (f->type != FT_STRING) {
            wb_yaml_error(ctx, key->line, key->col, path, "expected %s, got %s", expected(f),
                          wb_yaml_describe(dbuf, sizeof(dbuf), val));
            return;
        }
        s = strdup("");
        n = 0;
        if (!s) {
            ctx->nomem = true;
            return;
        }
    } else if ((s = wb_yaml_expand(ctx, key, path, val, &n)) == NULL) {
        return;
    }
    rc = field_parse(f, s, n, base, msg, sizeof(msg));
    if (rc == -2)
        ctx->nomem = true;
    else if (rc == -1)
        wb_yaml_error(ctx, key->line, key->col, path, "%s", msg);
    free(s);
}

/* ---------------------------------------------------------- value checks */

static bool ident_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 63) return false;
    if (!(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (i = 1; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static const char *check_ident(const char *s)
{
    return ident_ok(s, strlen(s)) ? NULL : "must be an identifier ([A-Za-z_][A-Za-z0-9_]{0,62})";
}

static const char *check_ident_or_empty(const char *s)
{
    return *s ? check_ident(s) : NULL;
}

static const char *check_table(const char *s)
{
    const char *dot = strchr(s, '.');
    bool ok = dot ? ident_ok(s, (size_t)(dot - s)) && ident_ok(dot + 1, strlen(dot + 1))
                  : ident_ok(s, strlen(s));

    return ok ? NULL
              : "must be a table name: identifier or schema.identifier "
                "([A-Za-z_][A-Za-z0-9_]{0,62} each)";
}

static const char *check_topic(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

    if (n == strlen(s) && n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0) return NULL;
    return "must be a Kafka topic name ([A-Za-z0-9._-], not \".\" or \"..\")";
}

static const char *check_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    int64_t port;

    if (!colon || colon == s || parse_int(colon + 1, strlen(colon + 1), &port) != 0 || port < 1 ||
        port > 65535 || colon[1] == '+' || colon[1] == '-')
        return "must be host:port with a port from 1 to 65535";
    return NULL;
}

/* ------------------------------------------------------------- lifecycle */

int wb_config_apply_defaults(const cfg_field_t *fields, size_t nfields, void *base)
{
    char msg[256];
    size_t i;

    for (i = 0; i < nfields; i++) {
        const cfg_field_t *f = &fields[i];

        if (!f->def) continue;
        if (field_parse(f, f->def, strlen(f->def), base, msg, sizeof(msg)) != 0) return -1;
    }
    return 0;
}

void wb_config_free_fields(const cfg_field_t *fields, size_t nfields, void *base)
{
    size_t i;

    for (i = 0; i < nfields; i++) {
        if (fields[i].type == FT_STRING || fields[i].type == FT_ENUM_STR) {
            char **p = (char **)((char *)base + fields[i].offset);

            free(*p);
            *p = NULL;
        }
    }
}

void wb_config_destroy(wb_config_t *conf)
{
    size_t i;

    if (!conf) return;
    wb_config_free_fields(wb_config_fields, wb_config_nfields, conf);
    for (i = 0; i < conf->kafka.nprops; i++) {
        free(conf->kafka.props[i].name);
        free(conf->kafka.props[i].value);
    }
    free(conf->kafka.props);
    /* Entities past nentities were never filled, but calloc left them NULL. */
    for (i = 0; i < conf->nentities; i++) {
        wb_config_free_fields(wb_config_entity_fields, wb_config_entity_nfields,
                              &conf->entities[i]);
        wb_config_entity_map_free(&conf->entities[i]);
    }
    free(conf->entities);
    free(conf->path);
    free(conf);
}
