/* wb_yaml.h — config YAML as a node tree with positions, located errors, ${VAR} (wb_config only).
 */
#ifndef WB_YAML_H
#define WB_YAML_H

#include <stdbool.h>
#include <stddef.h>

#define WB_YAML_ECHO_SIZE 72 /* a value quoted in a message is cut to about this */

/* Growable NUL-terminated string. Starts as {0}; after a failed allocation
 * oom is set and further adds are ignored. The owner frees p. */
typedef struct wb_yaml_buf_s {
    char *p;
    size_t len, cap;
    bool oom;
} wb_yaml_buf_t;

void wb_yaml_buf_add(wb_yaml_buf_t *sb, const char *s, size_t n);
void wb_yaml_buf_puts(wb_yaml_buf_t *sb, const char *s);

/* One problem found, "NAME:LINE:COL: key.path: message". */
typedef struct wb_yaml_err_s {
    int line, col;
    size_t seq;
    char *text;
} wb_yaml_err_t;

/* One document being loaded: its name for messages and every problem found
 * so far. Starts as {.name = ...}; free with wb_yaml_ctx_clear. */
typedef struct wb_yaml_ctx_s {
    const char *name;
    wb_yaml_err_t *errs;
    size_t nerrs, cap, nlost;
    bool nomem;
} wb_yaml_ctx_t;

/* Records a problem at line:col. path NULL = a problem of the file, not of a
 * key. Past a limit only the count is kept; out of memory sets ctx->nomem. */
void wb_yaml_error(wb_yaml_ctx_t *ctx, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Writes the recorded problems into errstr in file order, one per line, cut
 * at a line boundary when they do not all fit. */
void wb_yaml_render_errors(wb_yaml_ctx_t *ctx, char *errstr, size_t size);

/* Frees the recorded problems. */
void wb_yaml_ctx_clear(wb_yaml_ctx_t *ctx);

/* s (n bytes) escaped and in double quotes, for a message; cut short with
 * "..." to fit size. Returns buf. */
const char *wb_yaml_echo(char *buf, size_t size, const char *s, size_t n);

typedef enum wb_yaml_kind_e {
    WB_YAML_SCALAR,
    WB_YAML_MAP,
    WB_YAML_SEQ,
    WB_YAML_ALIAS
} wb_yaml_kind_t;

typedef struct wb_yaml_node_s {
    wb_yaml_kind_t kind;
    int line, col; /* 1-based */
    bool plain;    /* a plain (unquoted) scalar */
    bool anchored, tagged;
    char *text; /* scalars: NUL-terminated copy, may contain NULs */
    size_t len;
    struct wb_yaml_node_s **kids; /* maps: key, value, key, value ... */
    size_t nkids, cap;
} wb_yaml_node_t;

/* Builds the node tree of the one document in yaml (len bytes). Returns 0
 * with *rootp owned by the caller (NULL for an empty stream; free with
 * wb_yaml_destroy), or -1 after recording the problem in ctx. */
int wb_yaml_parse(wb_yaml_ctx_t *ctx, const char *yaml, size_t len, wb_yaml_node_t **rootp);

/* Frees node and everything below it; NULL is fine. */
void wb_yaml_destroy(wb_yaml_node_t *node);

/* A plain scalar spelled as YAML null: "", ~, null, Null, NULL. */
bool wb_yaml_is_null(const wb_yaml_node_t *node);

/* "a mapping", "an empty value", "\"abc\"" — for "expected X, got Y". The
 * result is buf or a string constant. */
const char *wb_yaml_describe(char *buf, size_t size, const wb_yaml_node_t *node);

/* Refuses aliases, anchors and tags. Returns false after recording at path. */
bool wb_yaml_supported(wb_yaml_ctx_t *ctx, const wb_yaml_node_t *node, const char *path);

/* The scalar val with ${VAR}, ${VAR:-default} and $$ expanded, read with
 * getenv. Returns a malloc'd string the caller frees (length in *outlen), or
 * NULL after recording at key / path. */
char *wb_yaml_expand(wb_yaml_ctx_t *ctx, const wb_yaml_node_t *key, const char *path,
                     const wb_yaml_node_t *val, size_t *outlen);

#endif /* WB_YAML_H */
