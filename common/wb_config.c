/* wb_config.c — strict YAML config loader, driven by one table of keys.
 *
 * The file is read with libyaml's event parser into a small tree (so every
 * node keeps its line and column, and anchors/aliases/tags can be refused
 * before they are expanded), then walked against the field tables below.
 * Every problem found is collected as "FILE:LINE:COL: key.path: message";
 * the walk goes on after an error so the user sees all of them at once.
 */
#include "wb_config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>
#include <yaml.h>

#include "wb_util.h"

#define CFG_DEFAULT_PATH   "config/wbcache.yaml"
#define CFG_MAX_FILE_BYTES (1024 * 1024) /* a config is a few KiB; refuse to slurp a disk image */
#define CFG_MAX_DEPTH      32            /* the layout needs 4; libyaml itself does not limit */
#define CFG_ERRORS_SHOWN   20
#define CFG_ERRORS_KEPT    200
#define CFG_ECHO_SIZE      72  /* a value quoted in a message is cut to about this */
#define CFG_PATH_SIZE      256 /* key paths in messages are cut to this */
#define CFG_STR_MAX        4096
#define CFG_MASK           "****"

/* Enum fields are stored through an int pointer. */
_Static_assert(sizeof(wb_ack_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_value_type_t) == sizeof(int), "enum size");
_Static_assert(sizeof(wb_schema_mode_t) == sizeof(int), "enum size");

/* ---------------------------------------------------------------- tables */

typedef enum field_type_e {
    FT_STRING,
    FT_INT,
    FT_INT64,
    FT_DOUBLE,
    FT_BOOL,
    FT_ENUM,     /* int field, value = index into names */
    FT_ENUM_STR, /* char * field restricted to names */
    FT_PROPS,    /* kafka.properties */
    FT_ENTITIES, /* entities */
} field_type_t;

#define F_REQUIRED 0x1u
#define F_SECRET   0x2u /* printed as ****, never echoed in a message */
#define F_DSN      0x4u /* printed with its password part masked */
#define F_MAX_EXCL 0x8u /* doubles: the value must be below fmax */

/* Returns NULL when s is acceptable, else a description of what is expected. */
typedef const char *(*check_fn_t)(const char *s);

typedef struct field_s {
    const char *key; /* dotted path; sections are the dotted prefixes */
    field_type_t type;
    size_t offset;
    const char *def;  /* parsed like a value from the file; NULL = no default */
    int64_t min, max; /* integers: value range; strings: length range */
    double fmin, fmax;
    const char *const *names; /* enums, NULL-terminated */
    unsigned flags;
    check_fn_t check;
    const char *help;
} field_t;

static const char *check_ident(const char *s);
static const char *check_table(const char *s);
static const char *check_topic(const char *s);
static const char *check_hostport(const char *s);

static const char *const ack_names[] = {"cache", "log", NULL};
static const char *const schema_names[] = {"create", "verify", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const vt_names[] = {"text", "jsonb", "bytea", NULL};

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
static const field_t conf_fields[] = {
    STR("redis.host", C_OFF(redis.host), "127.0.0.1", 1, 1024, 0, NULL, "Redis host name or IP"),
    INT("redis.port", C_OFF(redis.port), "6379", 1, 65535, "Redis TCP port"),
    STR("redis.password", C_OFF(redis.password), "", 0, CFG_STR_MAX, F_SECRET, NULL,
        "AUTH password; empty = none (env WBCACHE_REDIS_PASSWORD)"),
    INT("redis.db", C_OFF(redis.db), "0", 0, 1023, "database number (SELECT)"),
    INT("redis.timeout_ms", C_OFF(redis.timeout_ms), "1000", 10, 600000,
        "connect and command timeout"),
    STR("redis.dirty_index", C_OFF(redis.dirty_index), "wb:dirty", 1, 1024, 0, NULL,
        "sorted set listing dirty keys by write time"),

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
         "create: create missing tables; verify: only check them"),

    ENUM("producer.ack", C_OFF(producer.ack), "cache", ack_names,
         "put returns after Redis (cache) or after Kafka acked (log)"),
    INT("producer.queue_max", C_OFF(producer.queue_max), "100000", 1, 10000000,
        "events waiting for Kafka before put fails"),
    INT("producer.max_value_bytes", C_OFF(producer.max_value_bytes), "1048576", 1, 67108864,
        "largest value put accepts"),
    INT("producer.kafka_timeout_ms", C_OFF(producer.kafka_timeout_ms), "5000", 100, 300000,
        "ack: log waits at most this long"),
    INT("producer.negative_ttl_ms", C_OFF(producer.negative_ttl_ms), "5000", 0, 86400000,
        "not-found results cached this long; 0 = not cached"),
    INT("producer.lock_ttl_ms", C_OFF(producer.lock_ttl_ms), "5000", 100, 300000,
        "stampede lock lifetime"),
    INT("producer.lock_wait_ms", C_OFF(producer.lock_wait_ms), "3000", 0, 300000,
        "how long readers wait for the lock holder's fill"),
    INT("producer.refresh_dedupe_ms", C_OFF(producer.refresh_dedupe_ms), "5000", 0, 3600000,
        "one refresh request per key per window; 0 = no dedupe"),
    INT("producer.ttl_jitter_pct", C_OFF(producer.ttl_jitter_pct), "10", 0, 50,
        "+-% random jitter on fill TTLs"),

    STR("flusher.group_id", C_OFF(flusher.group_id), "wb-flusher", 1, 255, 0, NULL,
        "Kafka consumer group"),
    INT("flusher.batch.max_events", C_OFF(flusher.batch_max_events), "10000", 1, 1000000,
        "flush when this many events are buffered"),
    I64("flusher.batch.max_bytes", C_OFF(flusher.batch_max_bytes), "16777216", 1024, 1073741824,
        "flush when buffered payloads reach this size"),
    INT("flusher.batch.max_wait_ms", C_OFF(flusher.batch_max_wait_ms), "100", 0, 60000,
        "flush at most this long after the first buffered event"),
    INT("flusher.retry.initial_ms", C_OFF(flusher.retry_initial_ms), "100", 1, 60000,
        "first backoff after a database error"),
    INT("flusher.retry.max_ms", C_OFF(flusher.retry_max_ms), "30000", 1, 3600000, "backoff cap"),
    STR("flusher.http_listen", C_OFF(flusher.http_listen), "127.0.0.1:26380", 1, 1024, 0,
        check_hostport, "host:port for /metrics /healthz /readyz"),
    INT("flusher.shutdown_deadline_ms", C_OFF(flusher.shutdown_deadline_ms), "30000", 100, 600000,
        "time allowed to finish the batch on SIGTERM"),
    I64("flusher.tombstone_retention_ms", C_OFF(flusher.tombstone_retention_ms), "604800000", 0,
        INT64_C(315360000000), "soft-deleted rows purged after this; 0 = never"),

    STR("refresher.group_id", C_OFF(refresher.group_id), "wb-refresher", 1, 255, 0, NULL,
        "Kafka consumer group"),
    INT("refresher.batch.max_keys", C_OFF(refresher.batch_max_keys), "500", 1, 100000,
        "reload at most this many keys per query"),
    INT("refresher.batch.max_wait_ms", C_OFF(refresher.batch_max_wait_ms), "100", 0, 60000,
        "reload at most this long after the first request"),
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

    {.key = "entities", .type = FT_ENTITIES, .flags = F_REQUIRED, .help = "key prefix -> table"},
};

static const field_t entity_fields[] = {
    STR("name", E_OFF(name), NULL, 1, 63, F_REQUIRED, check_ident, "carried in change events"),
    STR("prefix", E_OFF(prefix), NULL, 1, 256, F_REQUIRED, NULL, "cache key = prefix + id"),
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
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* ---------------------------------------------------------- small buffer */

typedef struct sbuf_s {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *sb, const char *s, size_t n)
{
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        char *p;

        while (cap < sb->len + n + 1)
            cap *= 2;
        p = realloc(sb->p, cap);
        if (!p) {
            sb->oom = true;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_puts(sbuf_t *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

/* ----------------------------------------------------------------- errors */

typedef struct cfg_err_s {
    int line, col;
    size_t seq;
    char *text;
} cfg_err_t;

typedef struct cfg_ctx_s {
    const char *name;
    cfg_err_t *errs;
    size_t nerrs, cap, nlost;
    bool nomem;
} cfg_ctx_t;

static void cfg_error(cfg_ctx_t *ctx, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* path NULL = a problem of the file, not of a key. */
static void cfg_error(cfg_ctx_t *ctx, int line, int col, const char *path, const char *fmt, ...)
{
    char msg[512];
    char *text;
    size_t n;
    va_list ap;

    if (ctx->nerrs >= CFG_ERRORS_KEPT) {
        ctx->nlost++;
        return;
    }
    if (ctx->nerrs == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 8;
        cfg_err_t *errs = realloc(ctx->errs, cap * sizeof(*errs));

        if (!errs) {
            ctx->nomem = true;
            return;
        }
        ctx->errs = errs;
        ctx->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = strlen(ctx->name) + strlen(msg) + (path ? strlen(path) : 0) + 64;
    text = malloc(n);
    if (!text) {
        ctx->nomem = true;
        return;
    }
    if (path)
        snprintf(text, n, "%s:%d:%d: %s: %s", ctx->name, line, col, path, msg);
    else
        snprintf(text, n, "%s:%d:%d: %s", ctx->name, line, col, msg);
    ctx->errs[ctx->nerrs].line = line;
    ctx->errs[ctx->nerrs].col = col;
    ctx->errs[ctx->nerrs].seq = ctx->nerrs;
    ctx->errs[ctx->nerrs].text = text;
    ctx->nerrs++;
}

static int err_cmp(const void *a, const void *b)
{
    const cfg_err_t *x = a, *y = b;

    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes the errors in file order, one per line, cut at a line boundary
 * when they do not all fit. */
static void render_errors(cfg_ctx_t *ctx, char *errstr, size_t size)
{
    sbuf_t sb = {0};
    size_t i, shown, total = ctx->nerrs + ctx->nlost;
    char tail[96];

    if (!errstr || size == 0) return;
    qsort(ctx->errs, ctx->nerrs, sizeof(*ctx->errs), err_cmp);
    shown = ctx->nerrs < CFG_ERRORS_SHOWN ? ctx->nerrs : CFG_ERRORS_SHOWN;
    for (i = 0; i < shown; i++) {
        if (i) sb_add(&sb, "\n", 1);
        sb_puts(&sb, ctx->errs[i].text);
    }
    if (total > shown) {
        snprintf(tail, sizeof(tail), "\n%s: %zu more error%s not shown", ctx->name, total - shown,
                 total - shown == 1 ? "" : "s");
        sb_puts(&sb, tail);
    }
    if (sb.oom || !sb.p) {
        wb_set_err(errstr, size, "%s: out of memory while reporting config errors", ctx->name);
    } else if (sb.len < size) {
        memcpy(errstr, sb.p, sb.len + 1);
    } else {
        char *nl = memrchr(sb.p, '\n', size - 1);
        size_t n = nl ? (size_t)(nl - sb.p) : size - 1;

        memcpy(errstr, sb.p, n);
        errstr[n] = '\0';
    }
    free(sb.p);
}

/* A value quoted in a message: escaped, and cut short with "...". */
static const char *echo(char *buf, size_t size, const char *s, size_t n)
{
    buf[0] = '"';
    wb_escape(buf + 1, size - 2, s, n, WB_ESC_QUOTE | WB_ESC_HIGH);
    strcat(buf, "\"");
    return buf;
}

/* ------------------------------------------------------------- YAML tree */

typedef enum node_kind_e { NODE_SCALAR, NODE_MAP, NODE_SEQ, NODE_ALIAS } node_kind_t;

typedef struct node_s {
    node_kind_t kind;
    int line, col; /* 1-based */
    bool plain;    /* a plain (unquoted) scalar */
    bool anchored, tagged;
    char *text; /* scalars: NUL-terminated copy, may contain NULs */
    size_t len;
    struct node_s **kids; /* maps: key, value, key, value ... */
    size_t nkids, cap;
} node_t;

static void node_free(node_t *node)
{
    size_t i;

    if (!node) return;
    for (i = 0; i < node->nkids; i++)
        node_free(node->kids[i]);
    free(node->kids);
    free(node->text);
    free(node);
}

static node_t *node_new(node_kind_t kind, yaml_mark_t mark)
{
    node_t *node = calloc(1, sizeof(*node));

    if (!node) return NULL;
    node->kind = kind;
    node->line = mark.line >= INT_MAX ? INT_MAX : (int)mark.line + 1;
    node->col = mark.column >= INT_MAX ? INT_MAX : (int)mark.column + 1;
    return node;
}

static int node_add(node_t *parent, node_t *kid)
{
    if (parent->nkids == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        node_t **kids = realloc(parent->kids, cap * sizeof(*kids));

        if (!kids) return -1;
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

static void report_parser_error(cfg_ctx_t *ctx, const yaml_parser_t *parser, const char *yaml,
                                size_t len)
{
    const char *problem = parser->problem ? parser->problem : "unknown problem";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        ctx->nomem = true;
        break;
    case YAML_READER_ERROR: {
        /* The reader runs ahead of the scanner, so its mark is not where the
         * bad byte is; count lines up to the offset instead. */
        size_t off = parser->problem_offset < len ? parser->problem_offset : len, i;
        int line = 1, col = 1;

        for (i = 0; i < off; i++) {
            if (yaml[i] == '\n') {
                if (line < INT_MAX) line++;
                col = 1;
            } else if (col < INT_MAX) {
                col++;
            }
        }
        cfg_error(ctx, line, col, NULL, "invalid input: %s (byte offset %zu)", problem,
                  parser->problem_offset);
        break;
    }
    default:
        if (parser->context)
            cfg_error(ctx, (int)parser->problem_mark.line + 1, (int)parser->problem_mark.column + 1,
                      NULL, "YAML syntax error: %s (%s at line %zu, column %zu)", problem,
                      parser->context, parser->context_mark.line + 1,
                      parser->context_mark.column + 1);
        else
            cfg_error(ctx, (int)parser->problem_mark.line + 1, (int)parser->problem_mark.column + 1,
                      NULL, "YAML syntax error: %s", problem);
        break;
    }
}

/* Builds the node tree of the one document in yaml. Returns 0 with *rootp
 * (NULL for an empty stream), or -1 after reporting. */
static int parse_tree(cfg_ctx_t *ctx, const char *yaml, size_t len, node_t **rootp)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    node_t *stack[CFG_MAX_DEPTH];
    node_t *root = NULL;
    int depth = 0, ndocs = 0, rc = 0;
    bool done = false;

    *rootp = NULL;
    if (!yaml_parser_initialize(&parser)) {
        ctx->nomem = true;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    while (!done && rc == 0) {
        node_t *node = NULL;

        if (!yaml_parser_parse(&parser, &ev)) {
            report_parser_error(ctx, &parser, yaml, len);
            rc = -1;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1) {
                cfg_error(ctx, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                          "only one YAML document is allowed");
                rc = -1;
            }
            break;
        case YAML_SCALAR_EVENT:
            node = node_new(NODE_SCALAR, ev.start_mark);
            if (!node) break;
            node->text = malloc(ev.data.scalar.length + 1);
            if (!node->text) {
                node_free(node);
                node = NULL;
                break;
            }
            memcpy(node->text, ev.data.scalar.value, ev.data.scalar.length);
            node->text[ev.data.scalar.length] = '\0';
            node->len = ev.data.scalar.length;
            node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            node->anchored = ev.data.scalar.anchor != NULL;
            node->tagged = ev.data.scalar.tag != NULL;
            break;
        case YAML_ALIAS_EVENT:
            node = node_new(NODE_ALIAS, ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == CFG_MAX_DEPTH) {
                cfg_error(ctx, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                          "nesting deeper than %d levels is not supported", CFG_MAX_DEPTH);
                rc = -1;
                break;
            }
            if (ev.type == YAML_MAPPING_START_EVENT) {
                node = node_new(NODE_MAP, ev.start_mark);
                if (node) {
                    node->anchored = ev.data.mapping_start.anchor != NULL;
                    node->tagged = ev.data.mapping_start.tag != NULL;
                }
            } else {
                node = node_new(NODE_SEQ, ev.start_mark);
                if (node) {
                    node->anchored = ev.data.sequence_start.anchor != NULL;
                    node->tagged = ev.data.sequence_start.tag != NULL;
                }
            }
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) depth--;
            break;
        default:
            break;
        }
        if (rc == 0 && !done &&
            (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
             ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT)) {
            if (!node) {
                ctx->nomem = true;
                rc = -1;
            } else if (depth == 0 && !root) {
                root = node;
            } else if (depth == 0) {
                /* libyaml gives one root per document; never trust "never". */
                cfg_error(ctx, node->line, node->col, NULL, "unexpected second top-level node");
                node_free(node);
                rc = -1;
            } else if (node_add(stack[depth - 1], node) != 0) {
                node_free(node);
                ctx->nomem = true;
                rc = -1;
            }
            if (rc == 0 && (node->kind == NODE_MAP || node->kind == NODE_SEQ))
                stack[depth++] = node;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc != 0) {
        node_free(root);
        return -1;
    }
    *rootp = root;
    return 0;
}

static bool node_is_null(const node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    size_t i;

    if (node->kind != NODE_SCALAR || !node->plain) return false;
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strlen(nulls[i]) == node->len && memcmp(node->text, nulls[i], node->len) == 0)
            return true;
    return false;
}

/* "a mapping", "an empty value", "\"abc\"" — for "expected X, got Y". */
static const char *node_desc(char *buf, size_t size, const node_t *node)
{
    switch (node->kind) {
    case NODE_MAP:
        return "a mapping";
    case NODE_SEQ:
        return "a sequence";
    case NODE_ALIAS:
        return "an alias";
    default:
        if (node->plain && node->len == 0) return "an empty value";
        if (node_is_null(node)) return "null";
        return echo(buf, size, node->text, node->len);
    }
}

/* ------------------------------------------------------------------ walk */

typedef struct mark_s {
    int line, col; /* 0 = key not present */
} mark_t;

typedef struct walk_s {
    cfg_ctx_t *ctx;
    wb_config_t *conf;
    const field_t *fields;
    size_t nfields;
    void *base;          /* struct the field offsets refer to */
    const char *display; /* "" or "entities[3]", put before key paths in messages */
    mark_t *marks;       /* per field: where the key was */
} walk_t;

/* buf = a "." b, or whichever is non-empty; cut to size (paths are only
 * shown in messages, so a cut path is acceptable). */
static const char *join_path(char *buf, size_t size, const char *a, const char *b, size_t blen)
{
    size_t al = strlen(a), n = 0;

    if (al >= size) al = size - 1;
    memcpy(buf, a, al);
    n = al;
    if (al && blen && n + 1 < size) buf[n++] = '.';
    if (blen > size - 1 - n) blen = size - 1 - n;
    memcpy(buf + n, b, blen);
    buf[n + blen] = '\0';
    return buf;
}

/* Message path of a table path: "redis.port" or "entities[3].ttl_ms". */
static const char *dpath(char *buf, size_t size, const walk_t *w, const char *path)
{
    return join_path(buf, size, w->display, path, strlen(path));
}

/* Refuses YAML features the loader does not take. Returns false after
 * reporting. */
static bool node_supported(cfg_ctx_t *ctx, const node_t *node, const char *path)
{
    if (node->kind == NODE_ALIAS) {
        cfg_error(ctx, node->line, node->col, path, "aliases are not supported");
        return false;
    }
    if (node->anchored) {
        cfg_error(ctx, node->line, node->col, path, "anchors are not supported");
        return false;
    }
    if (node->tagged) {
        cfg_error(ctx, node->line, node->col, path, "YAML tags are not supported");
        return false;
    }
    return true;
}

static bool env_name_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 255 ||
        !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (i = 1; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* Expands ${VAR}, ${VAR:-default} and $$ in a scalar. Returns a malloc'd
 * string (length in *outlen), or NULL after reporting at the key. */
static char *expand_env(cfg_ctx_t *ctx, const node_t *key, const char *path, const node_t *val,
                        size_t *outlen)
{
    sbuf_t sb = {0};
    const char *s = val->text;
    size_t i = 0, n = val->len;
    char ebuf[CFG_ECHO_SIZE];

    sb_add(&sb, "", 0);
    while (i < n) {
        const char *close, *name, *def = NULL;
        size_t namelen, deflen = 0;
        char var[256];
        const char *value;

        if (s[i] != '$' || i + 1 >= n || (s[i + 1] != '$' && s[i + 1] != '{')) {
            sb_add(&sb, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            sb_add(&sb, "$", 1);
            i += 2;
            continue;
        }
        close = memchr(s + i + 2, '}', n - i - 2);
        if (!close) {
            cfg_error(ctx, key->line, key->col, path,
                      "unterminated \"${\" in value (write $$ for a literal $)");
            goto fail;
        }
        name = s + i + 2;
        namelen = (size_t)(close - name);
        {
            const char *sep = memmem(name, namelen, ":-", 2);

            if (sep) {
                def = sep + 2;
                deflen = (size_t)(close - def);
                namelen = (size_t)(sep - name);
            }
        }
        if (!env_name_ok(name, namelen)) {
            /* Only the name is shown: the default may be a secret. */
            cfg_error(ctx, key->line, key->col, path, "bad environment variable name %s in ${...}",
                      echo(ebuf, sizeof(ebuf), name, namelen));
            goto fail;
        }
        memcpy(var, name, namelen);
        var[namelen] = '\0';
        value = getenv(var);
        if (def && (!value || !*value))
            sb_add(&sb, def, deflen);
        else if (value)
            sb_puts(&sb, value);
        else {
            cfg_error(ctx, key->line, key->col, path, "environment variable %s is not set", var);
            goto fail;
        }
        i = (size_t)(close - s) + 1;
    }
    if (sb.oom) {
        ctx->nomem = true;
        goto fail;
    }
    *outlen = sb.len;
    return sb.p;
fail:
    free(sb.p);
    return NULL;
}

static const char *expected(const field_t *f)
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
static int field_parse(const field_t *f, const char *s, size_t n, void *base, char *msg,
                       size_t msgsz)
{
    void *dst = (char *)base + f->offset;
    char ebuf[CFG_ECHO_SIZE], nbuf[128];
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
            snprintf(msg, msgsz, "must be one of %s, got %s", nbuf, echo(ebuf, sizeof(ebuf), s, n));
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
            snprintf(msg, msgsz, "%s, got %s", why, echo(ebuf, sizeof(ebuf), s, n));
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
            snprintf(msg, msgsz, "expected an integer, got %s", echo(ebuf, sizeof(ebuf), s, n));
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
            snprintf(msg, msgsz, "expected a number, got %s", echo(ebuf, sizeof(ebuf), s, n));
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
            snprintf(msg, msgsz, "expected true or false, got %s", echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        return 0;
    case FT_ENUM:
        idx = name_index(f->names, s, n);
        if (idx < 0) {
            names_join(nbuf, sizeof(nbuf), f->names);
            snprintf(msg, msgsz, "must be one of %s, got %s", nbuf, echo(ebuf, sizeof(ebuf), s, n));
            return -1;
        }
        *(int *)dst = idx;
        return 0;
    default:
        snprintf(msg, msgsz, "internal error: field type");
        return -1;
    }
}

static void set_field(walk_t *w, const field_t *f, const node_t *key, const node_t *val,
                      const char *path)
{
    char msg[512], dbuf[CFG_ECHO_SIZE];
    char *s;
    size_t n;
    int rc;

    if (!node_supported(w->ctx, val, path)) return;
    if (val->kind != NODE_SCALAR) {
        cfg_error(w->ctx, key->line, key->col, path, "expected %s, got %s", expected(f),
                  node_desc(dbuf, sizeof(dbuf), val));
        return;
    }
    if (node_is_null(val)) {
        if (f->type == FT_ENUM || f->type == FT_ENUM_STR) {
            names_join(msg, sizeof(msg), f->names);
            cfg_error(w->ctx, key->line, key->col, path, "must be one of %s, got %s", msg,
                      node_desc(dbuf, sizeof(dbuf), val));
            return;
        }
        if (f->type != FT_STRING) {
            cfg_error(w->ctx, key->line, key->col, path, "expected %s, got %s", expected(f),
                      node_desc(dbuf, sizeof(dbuf), val));
            return;
        }
        s = strdup("");
        n = 0;
        if (!s) {
            w->ctx->nomem = true;
            return;
        }
    } else if ((s = expand_env(w->ctx, key, path, val, &n)) == NULL) {
        return;
    }
    rc = field_parse(f, s, n, w->base, msg, sizeof(msg));
    if (rc == -2)
        w->ctx->nomem = true;
    else if (rc == -1)
        cfg_error(w->ctx, key->line, key->col, path, "%s", msg);
    free(s);
}

/* Optimal string alignment distance, so "prot" is 1 from "port". */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[33][33], i, j;

    if (la > 32 || lb > 32) return SIZE_MAX;
    for (i = 0; i <= la; i++)
        d[i][0] = i;
    for (j = 0; j <= lb; j++)
        d[0][j] = j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;

            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* Child key of section within a table path, or NULL when path is not below
 * section. Sets *len. */
static const char *child_of(const char *section, const char *path, size_t *len)
{
    size_t sl = strlen(section);
    const char *c, *dot;

    if (sl) {
        if (strncmp(path, section, sl) != 0 || path[sl] != '.') return NULL;
        c = path + sl + 1;
    } else {
        c = path;
    }
    dot = strchr(c, '.');
    *len = dot ? (size_t)(dot - c) : strlen(c);
    return c;
}

static void unknown_key(walk_t *w, const node_t *key, const char *section, const char *path)
{
    const char *best = NULL;
    size_t bestlen = 0, bestd = SIZE_MAX, i;
    char sbuf[CFG_PATH_SIZE], hbuf[CFG_PATH_SIZE];

    if (memchr(key->text, '.', key->len)) {
        cfg_error(w->ctx, key->line, key->col, path,
                  "unknown key (dotted keys are not supported; nest the mappings instead)");
        return;
    }
    for (i = 0; i < w->nfields; i++) {
        size_t clen, d;
        const char *c = child_of(section, w->fields[i].key, &clen);

        if (!c) continue;
        d = edit_distance(key->text, key->len, c, clen);
        if (d < bestd) {
            bestd = d;
            best = c;
            bestlen = clen;
        }
    }
    if (best && bestd <= 2 && bestd * 2 <= key->len) {
        join_path(sbuf, sizeof(sbuf), section, best, bestlen);
        cfg_error(w->ctx, key->line, key->col, path, "unknown key (did you mean %s?)",
                  dpath(hbuf, sizeof(hbuf), w, sbuf));
    } else {
        cfg_error(w->ctx, key->line, key->col, path, "unknown key");
    }
}

/* Checks a mapping key; returns false (after reporting) when the pair must be
 * skipped. A duplicate is reported against its first occurrence. */
static bool key_ok(cfg_ctx_t *ctx, const node_t *map, size_t i, const char *parent)
{
    const node_t *key = map->kids[i];
    size_t j;

    if (!node_supported(ctx, key, parent[0] ? parent : NULL)) return false;
    if (key->kind != NODE_SCALAR) {
        cfg_error(ctx, key->line, key->col, parent[0] ? parent : NULL,
                  "keys must be scalars, got %s",
                  key->kind == NODE_MAP ? "a mapping" : "a sequence");
        return false;
    }
    for (j = 0; j < i; j += 2) {
        const node_t *prev = map->kids[j];

        if (prev->kind == NODE_SCALAR && prev->len == key->len &&
            memcmp(prev->text, key->text, key->len) == 0) {
            char kbuf[CFG_ECHO_SIZE], pbuf[CFG_PATH_SIZE];

            wb_escape(kbuf, sizeof(kbuf), key->text, key->len, WB_ESC_HIGH);
            join_path(pbuf, sizeof(pbuf), parent, kbuf, strlen(kbuf));
            cfg_error(ctx, key->line, key->col, pbuf,
                      "duplicate key (first defined at line %d, column %d)", prev->line, prev->col);
            return false;
        }
    }
    return true;
}

static void walk_props(walk_t *w, const node_t *key, const node_t *val, const char *path);
static void walk_entities(walk_t *w, const node_t *key, const node_t *val, const char *path);

/* Walks one mapping of the table's section ("" = top level). */
static void walk_mapping(walk_t *w, const node_t *map, const char *section)
{
    char tpath[CFG_PATH_SIZE], mpath[CFG_PATH_SIZE], dsec[CFG_PATH_SIZE];
    size_t i, k;

    dpath(dsec, sizeof(dsec), w, section);
    for (i = 0; i + 1 < map->nkids; i += 2) {
        const node_t *key = map->kids[i], *val = map->kids[i + 1];
        const field_t *f = NULL;
        char kbuf[CFG_ECHO_SIZE];
        bool section_key = false;

        if (!key_ok(w->ctx, map, i, dsec)) continue;
        wb_escape(kbuf, sizeof(kbuf), key->text, key->len, WB_ESC_HIGH);
        join_path(tpath, sizeof(tpath), section, kbuf, strlen(kbuf));
        dpath(mpath, sizeof(mpath), w, tpath);
        /* Dotted keys would alias nested ones ("batch.max_events"); refuse them. */
        if (key->len > 0 && !memchr(key->text, '.', key->len) &&
            !memchr(key->text, '\0', key->len) && strlen(tpath) < sizeof(tpath) - 1) {
            size_t tl = strlen(tpath);

            for (k = 0; k < w->nfields; k++) {
                if (strcmp(w->fields[k].key, tpath) == 0) {
                    f = &w->fields[k];
                    break;
                }
                if (strncmp(w->fields[k].key, tpath, tl) == 0 && w->fields[k].key[tl] == '.')
                    section_key = true;
            }
        }
        if (f) {
            w->marks[k].line = key->line;
            w->marks[k].col = key->col;
            if (f->type == FT_PROPS)
                walk_props(w, key, val, mpath);
            else if (f->type == FT_ENTITIES)
                walk_entities(w, key, val, mpath);
            else
                set_field(w, f, key, val, mpath);
        } else if (section_key) {
            char dbuf[CFG_ECHO_SIZE];

            if (!node_supported(w->ctx, val, mpath)) continue;
            if (val->kind == NODE_MAP)
                walk_mapping(w, val, tpath);
            else if (!node_is_null(val)) /* an empty section means all defaults */
                cfg_error(w->ctx, key->line, key->col, mpath, "expected a mapping, got %s",
                          node_desc(dbuf, sizeof(dbuf), val));
        } else {
            unknown_key(w, key, section, mpath);
        }
    }

    /* Required keys below this section whose key (or whose enclosing
     * section) is absent from this mapping. */
    for (k = 0; k < w->nfields; k++) {
        const field_t *f = &w->fields[k];
        size_t clen;
        const char *c;
        bool present = false;

        if (!(f->flags & F_REQUIRED) || w->marks[k].line) continue;
        c = child_of(section, f->key, &clen);
        if (!c) continue;
        for (i = 0; i + 1 < map->nkids && c[clen] == '.'; i += 2)
            if (map->kids[i]->kind == NODE_SCALAR && map->kids[i]->len == clen &&
                memcmp(map->kids[i]->text, c, clen) == 0)
                present = true;
        if (!present)
            cfg_error(w->ctx, map->line, map->col, dpath(mpath, sizeof(mpath), w, f->key),
                      "missing required key");
    }
}

/* ---------------------------------------------------------- kafka props */

static bool is_secret_prop(const char *name)
{
    return strcasestr(name, "password") || strcasestr(name, "secret");
}

static int props_set(wb_config_t *conf, const char *name, const char *value)
{
    char *v = strdup(value);
    size_t i;

    if (!v) return -1;
    for (i = 0; i < conf->kafka.nprops; i++) {
        if (strcmp(conf->kafka.props[i].name, name) == 0) {
            free(conf->kafka.props[i].value);
            conf->kafka.props[i].value = v;
            return 0;
        }
    }
    {
        wb_kv_t *props = realloc(conf->kafka.props, (conf->kafka.nprops + 1) * sizeof(*props));
        char *n = strdup(name);

        if (!props || !n) {
            if (props) conf->kafka.props = props;
            free(n);
            free(v);
            return -1;
        }
        conf->kafka.props = props;
        props[conf->kafka.nprops].name = n;
        props[conf->kafka.nprops].value = v;
        conf->kafka.nprops++;
    }
    return 0;
}

static void walk_props(walk_t *w, const node_t *key, const node_t *val, const char *path)
{
    rd_kafka_conf_t *rk = NULL;
    char dbuf[CFG_ECHO_SIZE];
    size_t i;

    if (!node_supported(w->ctx, val, path)) return;
    if (node_is_null(val)) return;
    if (val->kind != NODE_MAP) {
        cfg_error(w->ctx, key->line, key->col, path,
                  "expected a mapping of librdkafka properties, got %s",
                  node_desc(dbuf, sizeof(dbuf), val));
        return;
    }
    /* Validate names and values with librdkafka itself, so a typo is caught
     * here with its line number instead of when a daemon starts. */
    rk = rd_kafka_conf_new();
    for (i = 0; i + 1 < val->nkids; i += 2) {
        const node_t *pk = val->kids[i], *pv = val->kids[i + 1];
        char ppath[CFG_PATH_SIZE], kbuf[CFG_ECHO_SIZE], rkerr[512];
        char *s = NULL;
        size_t n;

        if (!key_ok(w->ctx, val, i, path)) continue;
        wb_escape(kbuf, sizeof(kbuf), pk->text, pk->len, WB_ESC_HIGH);
        join_path(ppath, sizeof(ppath), path, kbuf, strlen(kbuf));
        if (pk->len == 0 || memchr(pk->text, '\0', pk->len)) {
            cfg_error(w->ctx, pk->line, pk->col, ppath, "unknown librdkafka property");
            continue;
        }
        if (!node_supported(w->ctx, pv, ppath)) continue;
        if (pv->kind != NODE_SCALAR) {
            cfg_error(w->ctx, pk->line, pk->col, ppath, "expected a scalar value, got %s",
                      node_desc(dbuf, sizeof(dbuf), pv));
            continue;
        }
        if (node_is_null(pv)) {
            s = strdup("");
            n = 0;
            if (!s) {
                w->ctx->nomem = true;
                continue;
            }
        } else if ((s = expand_env(w->ctx, pk, ppath, pv, &n)) == NULL) {
            continue;
        }
        if (memchr(s, '\0', n)) {
            cfg_error(w->ctx, pk->line, pk->col, ppath, "must not contain NUL bytes");
        } else if (!strcmp(pk->text, "bootstrap.servers") ||
                   !strcmp(pk->text, "metadata.broker.list")) {
            cfg_error(w->ctx, pk->line, pk->col, ppath, "set kafka.brokers instead");
        } else if (!strcmp(pk->text, "group.id")) {
            cfg_error(w->ctx, pk->line, pk->col, ppath,
                      "set flusher.group_id / refresher.group_id instead");
        } else {
            rd_kafka_conf_res_t res = RD_KAFKA_CONF_OK;

            /* plugin.library.paths loads the libraries as soon as it is set. */
            if (rk && strcmp(pk->text, "plugin.library.paths") != 0)
                res = rd_kafka_conf_set(rk, pk->text, s, rkerr, sizeof(rkerr));
            if (res == RD_KAFKA_CONF_UNKNOWN) {
                cfg_error(w->ctx, pk->line, pk->col, ppath, "unknown librdkafka property");
            } else if (res != RD_KAFKA_CONF_OK) {
                /* librdkafka may quote the value; keep a secret out of it. */
                if (is_secret_prop(pk->text) && (n == 0 || strstr(rkerr, s))) {
                    cfg_error(w->ctx, pk->line, pk->col, ppath, "invalid value");
                } else {
                    char ebuf[256];

                    wb_escape(ebuf, sizeof(ebuf), rkerr, strlen(rkerr), WB_ESC_HIGH);
                    cfg_error(w->ctx, pk->line, pk->col, ppath, "invalid value: %s", ebuf);
                }
            } else if (props_set(w->conf, pk->text, s) != 0) {
                w->ctx->nomem = true;
            }
        }
        free(s);
    }
    if (rk) rd_kafka_conf_destroy(rk);
}

/* -------------------------------------------------------------- entities */

static int apply_defaults(const field_t *fields, size_t nfields, void *base)
{
    char msg[256];
    size_t i;

    for (i = 0; i < nfields; i++) {
        const field_t *f = &fields[i];

        if (!f->def) continue;
        if (field_parse(f, f->def, strlen(f->def), base, msg, sizeof(msg)) != 0) return -1;
    }
    return 0;
}

static void free_fields(const field_t *fields, size_t nfields, void *base)
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

/* Reports a repeated name / prefix / table among the entities. */
static void check_unique(cfg_ctx_t *ctx, const wb_config_t *conf, const int *idx,
                         const mark_t *marks, size_t field)
{
    const field_t *f = &entity_fields[field];
    size_t a, b;

    for (b = 1; b < conf->nentities; b++) {
        const char *vb = *(char *const *)((const char *)&conf->entities[b] + f->offset);

        if (!vb || !*vb) continue;
        for (a = 0; a < b; a++) {
            const char *va = *(char *const *)((const char *)&conf->entities[a] + f->offset);
            char pbuf[CFG_PATH_SIZE], ebuf[CFG_ECHO_SIZE];
            const mark_t *m = &marks[b * NFIELDS(entity_fields) + field];

            if (!va || strcmp(va, vb) != 0) continue;
            snprintf(pbuf, sizeof(pbuf), "entities[%d].%s", idx[b], f->key);
            cfg_error(ctx, m->line, m->col, pbuf, "duplicate of entities[%d].%s %s", idx[a], f->key,
                      echo(ebuf, sizeof(ebuf), vb, strlen(vb)));
            break;
        }
    }
}

static void walk_entities(walk_t *w, const node_t *key, const node_t *val, const char *path)
{
    wb_config_t *conf = w->conf;
    char dbuf[CFG_ECHO_SIZE];
    mark_t *marks = NULL;
    int *idx = NULL;
    size_t i, nf = NFIELDS(entity_fields);

    if (!node_supported(w->ctx, val, path)) return;
    if (val->kind != NODE_SEQ) {
        cfg_error(w->ctx, key->line, key->col, path, "expected a sequence of entities, got %s",
                  node_desc(dbuf, sizeof(dbuf), val));
        return;
    }
    if (val->nkids == 0) {
        cfg_error(w->ctx, key->line, key->col, path, "at least one entity is required");
        return;
    }
    conf->entities = calloc(val->nkids, sizeof(*conf->entities));
    marks = calloc(val->nkids * nf, sizeof(*marks));
    idx = calloc(val->nkids, sizeof(*idx));
    if (!conf->entities || !marks || !idx) {
        w->ctx->nomem = true;
        goto out;
    }
    for (i = 0; i < val->nkids; i++) {
        const node_t *item = val->kids[i];
        char disp[32];
        walk_t ew;

        snprintf(disp, sizeof(disp), "entities[%zu]", i);
        if (!node_supported(w->ctx, item, disp)) continue;
        if (item->kind != NODE_MAP) {
            cfg_error(w->ctx, item->line, item->col, disp, "expected a mapping, got %s",
                      node_desc(dbuf, sizeof(dbuf), item));
            continue;
        }
        if (apply_defaults(entity_fields, nf, &conf->entities[conf->nentities]) != 0) {
            free_fields(entity_fields, nf, &conf->entities[conf->nentities]);
            w->ctx->nomem = true;
            continue;
        }
        ew = (walk_t){.ctx = w->ctx,
                      .conf = conf,
                      .fields = entity_fields,
                      .nfields = nf,
                      .base = &conf->entities[conf->nentities],
                      .display = disp,
                      .marks = &marks[conf->nentities * nf]};
        walk_mapping(&ew, item, "");
        idx[conf->nentities] = i > INT_MAX ? INT_MAX : (int)i;
        conf->nentities++;
    }
    for (i = 0; i < 3; i++) /* name, prefix, table */
        check_unique(w->ctx, conf, idx, marks, i);
out:
    free(marks);
    free(idx);
}

/* ---------------------------------------------------------------- checks */

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

static size_t field_index(const field_t *fields, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(fields[i].key, key) == 0) return i;
    return 0; /* not reached for keys of the table */
}

/* Checks between two keys; run once every key is valid on its own. The
 * error goes to whichever key the file set (the later one if both), worded
 * from that key's side: fmt_a at ka, fmt_b at kb, each naming the other. */
static void check_pair(cfg_ctx_t *ctx, const mark_t *marks, bool bad, const char *ka,
                       const char *fmt_a, const char *kb, const char *fmt_b)
{
    const mark_t *ma = &marks[field_index(conf_fields, NFIELDS(conf_fields), ka)];
    const mark_t *mb = &marks[field_index(conf_fields, NFIELDS(conf_fields), kb)];

    if (!bad) return;
    if (ma->line &&
        (!mb->line || ma->line > mb->line || (ma->line == mb->line && ma->col > mb->col)))
        cfg_error(ctx, ma->line, ma->col, ka, fmt_a, kb);
    else
        cfg_error(ctx, mb->line ? mb->line : 1, mb->line ? mb->col : 1, kb, fmt_b, ka);
}

static void check_cross(cfg_ctx_t *ctx, const wb_config_t *conf, const mark_t *marks)
{
    check_pair(ctx, marks, conf->flusher.retry_initial_ms > conf->flusher.retry_max_ms,
               "flusher.retry.initial_ms", "must not exceed %s", "flusher.retry.max_ms",
               "must not be below %s");
    check_pair(ctx, marks, strcmp(conf->kafka.topic_changes, conf->kafka.topic_refresh) == 0,
               "kafka.topics.changes", "must differ from %s", "kafka.topics.refresh",
               "must differ from %s");
    check_pair(ctx, marks, strcmp(conf->kafka.topic_changes, conf->kafka.topic_dead_letter) == 0,
               "kafka.topics.changes", "must differ from %s", "kafka.topics.dead_letter",
               "must differ from %s");
    check_pair(ctx, marks, strcmp(conf->kafka.topic_refresh, conf->kafka.topic_dead_letter) == 0,
               "kafka.topics.refresh", "must differ from %s", "kafka.topics.dead_letter",
               "must differ from %s");
    check_pair(ctx, marks, strcmp(conf->flusher.group_id, conf->refresher.group_id) == 0,
               "flusher.group_id", "must differ from %s", "refresher.group_id",
               "must differ from %s");
}

/* Secrets from the environment win over the file, so a Kubernetes Secret
 * never has to sit in the ConfigMap. */
static int apply_secret_env(wb_config_t *conf)
{
    static const struct {
        const char *env;
        size_t offset;
    } strs[] = {
        {"WBCACHE_REDIS_PASSWORD", C_OFF(redis.password)},
        {"WBCACHE_PG_DSN", C_OFF(postgres.dsn)},
        {"WBCACHE_PG_PASSWORD", C_OFF(postgres.password)},
    };
    static const struct {
        const char *env, *prop;
    } props[] = {
        {"WBCACHE_KAFKA_SASL_USERNAME", "sasl.username"},
        {"WBCACHE_KAFKA_SASL_PASSWORD", "sasl.password"},
    };
    size_t i;

    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = getenv(strs[i].env);
        char **dst = (char **)((char *)conf + strs[i].offset);
        char *copy;

        if (!v || !*v) continue;
        if (!(copy = strdup(v))) return -1;
        free(*dst);
        *dst = copy;
    }
    for (i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        const char *v = getenv(props[i].env);

        if (v && *v && props_set(conf, props[i].prop, v) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- load */

static wb_err_t cfg_load(const char *name, const char *yaml, size_t len, wb_config_t **confp,
                         char *errstr, size_t errstr_size)
{
    cfg_ctx_t ctx = {.name = name};
    wb_config_t *conf = NULL;
    node_t *root = NULL;
    mark_t marks[NFIELDS(conf_fields)];
    wb_err_t err = WB_OK;
    char dbuf[CFG_ECHO_SIZE];
    size_t i;

    memset(marks, 0, sizeof(marks));
    conf = calloc(1, sizeof(*conf));
    if (!conf || !(conf->path = strdup(name)) ||
        apply_defaults(conf_fields, NFIELDS(conf_fields), conf) != 0) {
        ctx.nomem = true;
        goto out;
    }
    if (parse_tree(&ctx, yaml, len, &root) != 0) goto out;
    if (!root || node_is_null(root)) {
        cfg_error(&ctx, root ? root->line : 1, root ? root->col : 1, NULL,
                  "the config is empty; expected a mapping with at least an entities: list");
        goto out;
    }
    if (!node_supported(&ctx, root, NULL)) goto out;
    if (root->kind != NODE_MAP) {
        cfg_error(&ctx, root->line, root->col, NULL, "expected a mapping at the top level, got %s",
                  node_desc(dbuf, sizeof(dbuf), root));
        goto out;
    }
    {
        walk_t w = {.ctx = &ctx,
                    .conf = conf,
                    .fields = conf_fields,
                    .nfields = NFIELDS(conf_fields),
                    .base = conf,
                    .display = "",
                    .marks = marks};

        walk_mapping(&w, root, "");
    }
    if (ctx.nerrs == 0 && !ctx.nomem) check_cross(&ctx, conf, marks);
    if (ctx.nerrs == 0 && !ctx.nomem && apply_secret_env(conf) != 0) ctx.nomem = true;

out:
    node_free(root);
    if (ctx.nomem) {
        wb_set_err(errstr, errstr_size, "%s: out of memory while loading the config", name);
        err = WB_ERR_NOMEM;
    } else if (ctx.nerrs || ctx.nlost) {
        render_errors(&ctx, errstr, errstr_size);
        err = WB_ERR_CONFIG;
    }
    for (i = 0; i < ctx.nerrs; i++)
        free(ctx.errs[i].text);
    free(ctx.errs);
    if (err != WB_OK) {
        wb_config_destroy(conf);
        conf = NULL;
    }
    *confp = conf;
    return err;
}

wb_err_t wb_config_load_string(const char *name, const char *yaml, size_t len, wb_config_t **confp,
                               char *errstr, size_t errstr_size)
{
    if (!confp) {
        wb_set_err(errstr, errstr_size, "wb_config_load_string: confp is NULL");
        return WB_ERR_INVALID_ARG;
    }
    *confp = NULL;
    if (!yaml && len > 0) {
        wb_set_err(errstr, errstr_size, "wb_config_load_string: yaml is NULL");
        return WB_ERR_INVALID_ARG;
    }
    return cfg_load(name ? name : "<memory>", yaml ? yaml : "", len, confp, errstr, errstr_size);
}

wb_err_t wb_config_load(const char *path, wb_config_t **confp, char *errstr, size_t errstr_size)
{
    FILE *fp = NULL;
    char *buf = NULL;
    size_t len = 0;
    wb_err_t err;

    if (!confp || !path || !*path) {
        wb_set_err(errstr, errstr_size, "wb_config_load: no config path given");
        return WB_ERR_INVALID_ARG;
    }
    *confp = NULL;
    fp = fopen(path, "rb");
    if (!fp) {
        wb_set_err(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
        return WB_ERR_IO;
    }
    buf = malloc(CFG_MAX_FILE_BYTES + 1);
    if (!buf) {
        wb_set_err(errstr, errstr_size, "%s: out of memory", path);
        err = WB_ERR_NOMEM;
        goto out;
    }
    len = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, fp);
    if (ferror(fp)) {
        wb_set_err(errstr, errstr_size, "%s: cannot read: %s", path, strerror(errno));
        err = WB_ERR_IO;
        goto out;
    }
    if (len > CFG_MAX_FILE_BYTES) {
        wb_set_err(errstr, errstr_size, "%s: larger than %d bytes; not a config file?", path,
                   CFG_MAX_FILE_BYTES);
        err = WB_ERR_CONFIG;
        goto out;
    }
    err = cfg_load(path, buf, len, confp, errstr, errstr_size);
out:
    free(buf);
    fclose(fp);
    return err;
}

const char *wb_config_default_path(void)
{
    const char *p = getenv("WBCACHE_CONFIG");

    return p && *p ? p : CFG_DEFAULT_PATH;
}

/* ------------------------------------------------------------------ print */

/* A YAML double-quoted string that loads back to s. In values '$' is
 * doubled because the loader expands ${...} there (not in keys). */
static void sb_quoted_as(sbuf_t *sb, const char *s, bool value)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char hex[8];

    sb_add(sb, "\"", 1);
    for (; *p; p++) {
        if (*p == '"') {
            sb_puts(sb, "\\\"");
        } else if (*p == '\\') {
            sb_puts(sb, "\\\\");
        } else if (*p == '\n') {
            sb_puts(sb, "\\n");
        } else if (*p == '\t') {
            sb_puts(sb, "\\t");
        } else if (*p == '\r') {
            sb_puts(sb, "\\r");
        } else if (*p == '$' && value) {
            sb_puts(sb, "$$");
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(hex, sizeof(hex), "\\x%02x", *p);
            sb_puts(sb, hex);
        } else if (p[0] == 0xc2 && p[1] == 0x85) {
            /* YAML folds raw NEL, LS and PS like newlines; escape them. */
            sb_puts(sb, "\\N");
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            sb_puts(sb, p[2] == 0xa8 ? "\\L" : "\\P");
            p += 2;
        } else {
            sb_add(sb, (const char *)p, 1);
        }
    }
    sb_add(sb, "\"", 1);
}

static void sb_quoted(sbuf_t *sb, const char *s)
{
    sb_quoted_as(sb, s, true);
}

/* Copies a libpq DSN with the password value replaced by ****. Anything it
 * cannot parse is masked whole: better unreadable than leaked. */
static void sb_masked_dsn(sbuf_t *out, const char *dsn)
{
    static const char ws[] = " \t\n\r\f\v";
    sbuf_t sb = {0};
    const char *p = dsn;

    sb_add(&sb, "", 0);
    if (!strncmp(dsn, "postgresql://", 13) || !strncmp(dsn, "postgres://", 11)) {
        const char *auth = strstr(dsn, "://") + 3;
        const char *end = auth + strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', (size_t)(end - auth));
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        const char *q;

        if (colon) {
            sb_add(&sb, dsn, (size_t)(colon + 1 - dsn));
            sb_puts(&sb, CFG_MASK);
            p = at;
        }
        /* Query parameters may carry it too: ...?sslmode=x&password=y */
        q = strchr(p, '?');
        if (!q) {
            sb_puts(&sb, p);
        } else {
            sb_add(&sb, p, (size_t)(q - p));
            for (p = q; *p;) {
                size_t n = strcspn(p + 1, "&") + 1; /* separator + parameter */

                if (!strncmp(p + 1, "password=", 9)) {
                    sb_add(&sb, p, 10);
                    sb_puts(&sb, CFG_MASK);
                } else {
                    sb_add(&sb, p, n);
                }
                p += n;
            }
        }
    } else {
        while (*p) {
            const char *k, *v;
            size_t klen;

            if (strchr(ws, *p)) {
                sb_add(&sb, p++, 1);
                continue;
            }
            k = p;
            while (*p && *p != '=' && !strchr(ws, *p))
                p++;
            klen = (size_t)(p - k);
            while (*p && strchr(ws, *p))
                p++;
            if (*p != '=') goto whole;
            p++;
            while (*p && strchr(ws, *p))
                p++;
            v = p;
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    if (*p == '\\' && p[1]) p++;
                if (*p != '\'') goto whole;
                p++;
                if (*p && !strchr(ws, *p)) goto whole;
            } else {
                for (; *p && !strchr(ws, *p); p++)
                    if (*p == '\\' && p[1]) p++;
            }
            sb_add(&sb, k, (size_t)(v - k));
            if (klen == 8 && !strncmp(k, "password", 8))
                sb_puts(&sb, CFG_MASK);
            else
                sb_add(&sb, v, (size_t)(p - v));
        }
    }
    if (sb.oom) goto whole;
    sb_quoted(out, sb.p);
    free(sb.p);
    return;
whole:
    free(sb.p);
    sb_quoted(out, CFG_MASK);
}

static void sb_value(sbuf_t *sb, const field_t *f, const void *base)
{
    const void *src = (const char *)base + f->offset;
    char buf[64];
    double d;
    int v, n;

    switch (f->type) {
    case FT_STRING: {
        const char *s = *(char *const *)src;

        if ((f->flags & F_SECRET) && s && *s)
            sb_quoted(sb, CFG_MASK);
        else if ((f->flags & F_DSN) && s && *s)
            sb_masked_dsn(sb, s);
        else
            sb_quoted(sb, s);
        return;
    }
    case FT_ENUM_STR:
        sb_puts(sb, *(char *const *)src ? *(char *const *)src : "\"\"");
        return;
    case FT_INT:
        snprintf(buf, sizeof(buf), "%d", *(const int *)src);
        break;
    case FT_INT64:
        snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)src);
        break;
    case FT_DOUBLE:
        /* Shortest form that reads back to the same double. */
        d = *(const double *)src;
        snprintf(buf, sizeof(buf), "%.15g", d);
        if (strtod(buf, NULL) != d) snprintf(buf, sizeof(buf), "%.17g", d);
        break;
    case FT_BOOL:
        snprintf(buf, sizeof(buf), "%s", *(const bool *)src ? "true" : "false");
        break;
    case FT_ENUM:
        v = *(const int *)src;
        for (n = 0; f->names[n]; n++)
            ;
        snprintf(buf, sizeof(buf), "%s", v >= 0 && v < n ? f->names[v] : "\"\"");
        break;
    default:
        return;
    }
    sb_puts(sb, buf);
}

/* One "key: value   # help" line. */
static void put_line(FILE *out, sbuf_t *sb, const char *lead, const char *key, const field_t *f,
                     const void *base)
{
    sb->len = 0;
    sb_puts(sb, lead);
    sb_puts(sb, key);
    sb_puts(sb, ": ");
    sb_value(sb, f, base);
    if (sb->oom) return;
    fputs(sb->p, out);
    if (f->help) fprintf(out, "%*s# %s", sb->len < 38 ? (int)(40 - sb->len) : 2, "", f->help);
    fputc('\n', out);
}

static void print_entities(FILE *out, sbuf_t *sb, const wb_config_t *conf)
{
    size_t i, k;

    if (conf->nentities == 0) {
        fputs("entities: []\n", out);
        return;
    }
    fputs("entities:\n", out);
    for (i = 0; i < conf->nentities; i++)
        for (k = 0; k < NFIELDS(entity_fields); k++)
            put_line(out, sb, k == 0 ? "  - " : "    ", entity_fields[k].key, &entity_fields[k],
                     &conf->entities[i]);
}

static void print_props(FILE *out, sbuf_t *sb, const wb_config_t *conf, int indent)
{
    size_t i;

    if (conf->kafka.nprops == 0) {
        fputs(" {}\n", out);
        return;
    }
    fputc('\n', out);
    for (i = 0; i < conf->kafka.nprops; i++) {
        const wb_kv_t *kv = &conf->kafka.props[i];

        sb->len = 0;
        sb_quoted_as(sb, kv->name, false);
        sb_puts(sb, ": ");
        sb_quoted(sb, is_secret_prop(kv->name) && kv->value[0] ? CFG_MASK : kv->value);
        if (!sb->oom) fprintf(out, "%*s%s\n", indent, "", sb->p);
    }
}

void wb_config_print(const wb_config_t *conf, FILE *out)
{
    const char *prev = "";
    sbuf_t sb = {0};
    char lead[64];
    size_t i;

    if (!conf || !out) return;
    fputs("# effective wbcache configuration from ", out);
    for (const char *p = conf->path ? conf->path : "?"; *p; p++)
        fputc(*p == '\n' || *p == '\r' ? '?' : *p, out);
    fputs("; secrets are shown as ****\n", out);
    for (i = 0; i < NFIELDS(conf_fields); i++) {
        const field_t *f = &conf_fields[i];
        const char *k = f->key, *last = strrchr(k, '.');
        size_t common = 0, depth = 0, j;

        /* Open the sections of this key that the previous key was not in. */
        for (j = 0; k[j] && k[j] == prev[j]; j++)
            if (k[j] == '.') common = j + 1;
        for (j = 0; j < common; j++)
            if (k[j] == '.') depth++;
        for (j = common; last && k + j < last; j++) {
            size_t n = strcspn(k + j, ".");

            fprintf(out, "%*s%.*s:\n", (int)(2 * depth), "", (int)n, k + j);
            depth++;
            j += n;
        }
        prev = k;
        if (f->type == FT_ENTITIES) {
            print_entities(out, &sb, conf);
        } else if (f->type == FT_PROPS) {
            fprintf(out, "%*s%s:", (int)(2 * depth), "", last ? last + 1 : k);
            print_props(out, &sb, conf, (int)(2 * depth + 2));
        } else {
            snprintf(lead, sizeof(lead), "%*s", (int)(2 * depth), "");
            put_line(out, &sb, lead, last ? last + 1 : k, f, conf);
        }
    }
    free(sb.p);
}

/* ---------------------------------------------------------------- destroy */

void wb_config_destroy(wb_config_t *conf)
{
    size_t i;

    if (!conf) return;
    free_fields(conf_fields, NFIELDS(conf_fields), conf);
    for (i = 0; i < conf->kafka.nprops; i++) {
        free(conf->kafka.props[i].name);
        free(conf->kafka.props[i].value);
    }
    free(conf->kafka.props);
    /* Entities past nentities were never filled, but calloc left them NULL. */
    for (i = 0; i < conf->nentities; i++)
        free_fields(entity_fields, NFIELDS(entity_fields), &conf->entities[i]);
    free(conf->entities);
    free(conf->path);
    free(conf);
}

const wb_entity_t *wb_config_entity(const wb_config_t *conf, const char *name)
{
    size_t i;

    if (!conf || !name) return NULL;
    for (i = 0; i < conf->nentities; i++)
        if (conf->entities[i].name && strcmp(conf->entities[i].name, name) == 0)
            return &conf->entities[i];
    return NULL;
}

const wb_entity_t *wb_config_entity_by_key(const wb_config_t *conf, const char *key, size_t keylen)
{
    const wb_entity_t *best = NULL;
    size_t bestlen = 0, i;

    if (!conf || (!key && keylen)) return NULL;
    for (i = 0; i < conf->nentities; i++) {
        const wb_entity_t *e = &conf->entities[i];
        size_t plen = e->prefix ? strlen(e->prefix) : 0;

        if (!e->prefix || plen > keylen || (best && plen <= bestlen)) continue;
        if (memcmp(key, e->prefix, plen) == 0) {
            best = e;
            bestlen = plen;
        }
    }
    return best;
}
