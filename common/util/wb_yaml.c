/* wb_yaml.c — the YAML side of the config loader.
 *
 * The file is read with libyaml's event parser into a small tree, so every
 * node keeps its line and column, and anchors/aliases/tags can be refused
 * before they are expanded. Every problem found is recorded as
 * "FILE:LINE:COL: key.path: message" and the caller goes on after an error,
 * so the user sees all of them at once. ${VAR} expansion happens here, per
 * scalar, when wb_config assigns it to a key.
 */
#include "wb_yaml.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "wb_util.h"

#define WB_YAML_MAX_DEPTH    32 /* the layout needs 4; libyaml itself does not limit */
#define WB_YAML_ERRORS_SHOWN 20
#define WB_YAML_ERRORS_KEPT  200

/* ---------------------------------------------------------- small buffer */

void wb_yaml_buf_add(wb_yaml_buf_t *sb, const char *s, size_t n)
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

void wb_yaml_buf_puts(wb_yaml_buf_t *sb, const char *s)
{
    wb_yaml_buf_add(sb, s, strlen(s));
}

/* ----------------------------------------------------------------- errors */

/* The message is formatted now (not kept as fmt + args) so the values it
 * quotes may be freed; the sequence number keeps same-place errors in the
 * order they were found when wb_yaml_render_errors sorts them. */
void wb_yaml_error(wb_yaml_ctx_t *ctx, int line, int col, const char *path, const char *fmt, ...)
{
    char msg[512];
    char *text;
    size_t n;
    va_list ap;

    if (ctx->nerrs >= WB_YAML_ERRORS_KEPT) {
        ctx->nlost++;
        return;
    }
    if (ctx->nerrs == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 8;
        wb_yaml_err_t *errs = realloc(ctx->errs, cap * sizeof(*errs));

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
    const wb_yaml_err_t *x = a, *y = b;

    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void wb_yaml_render_errors(wb_yaml_ctx_t *ctx, char *errstr, size_t size)
{
    wb_yaml_buf_t sb = {0};
    size_t i, shown, total = ctx->nerrs + ctx->nlost;
    char tail[96];

    if (!errstr || size == 0) return;
    qsort(ctx->errs, ctx->nerrs, sizeof(*ctx->errs), err_cmp);
    shown = ctx->nerrs < WB_YAML_ERRORS_SHOWN ? ctx->nerrs : WB_YAML_ERRORS_SHOWN;
    for (i = 0; i < shown; i++) {
        if (i) wb_yaml_buf_add(&sb, "\n", 1);
        wb_yaml_buf_puts(&sb, ctx->errs[i].text);
    }
    if (total > shown) {
        snprintf(tail, sizeof(tail), "\n%s: %zu more error%s not shown", ctx->name, total - shown,
                 total - shown == 1 ? "" : "s");
        wb_yaml_buf_puts(&sb, tail);
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

void wb_yaml_ctx_clear(wb_yaml_ctx_t *ctx)
{
    size_t i;

    for (i = 0; i < ctx->nerrs; i++)
        free(ctx->errs[i].text);
    free(ctx->errs);
    ctx->errs = NULL;
    ctx->nerrs = ctx->cap = 0;
}

const char *wb_yaml_echo(char *buf, size_t size, const char *s, size_t n)
{
    buf[0] = '"';
    wb_escape(buf + 1, size - 2, s, n, WB_ESC_QUOTE | WB_ESC_HIGH);
    strcat(buf, "\"");
    return buf;
}

/* ------------------------------------------------------------- YAML tree */

void wb_yaml_destroy(wb_yaml_node_t *node)
{
    size_t i;

    if (!node) return;
    for (i = 0; i < node->nkids; i++)
        wb_yaml_destroy(node->kids[i]);
    free(node->kids);
    free(node->text);
    free(node);
}

static wb_yaml_node_t *node_new(wb_yaml_kind_t kind, yaml_mark_t mark)
{
    wb_yaml_node_t *node = calloc(1, sizeof(*node));

    if (!node) return NULL;
    node->kind = kind;
    node->line = mark.line >= INT_MAX ? INT_MAX : (int)mark.line + 1;
    node->col = mark.column >= INT_MAX ? INT_MAX : (int)mark.column + 1;
    return node;
}

static int node_add(wb_yaml_node_t *parent, wb_yaml_node_t *kid)
{
    if (parent->nkids == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        wb_yaml_node_t **kids = realloc(parent->kids, cap * sizeof(*kids));

        if (!kids) return -1;
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

static void report_parser_error(wb_yaml_ctx_t *ctx, const yaml_parser_t *parser, const char *yaml,
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
        wb_yaml_error(ctx, line, col, NULL, "invalid input: %s (byte offset %zu)", problem,
                      parser->problem_offset);
        break;
    }
    default:
        if (parser->context)
            wb_yaml_error(
                ctx, (int)parser->problem_mark.line + 1, (int)parser->problem_mark.column + 1, NULL,
                "YAML syntax error: %s (%s at line %zu, column %zu)", problem, parser->context,
                parser->context_mark.line + 1, parser->context_mark.column + 1);
        else
            wb_yaml_error(ctx, (int)parser->problem_mark.line + 1,
                          (int)parser->problem_mark.column + 1, NULL, "YAML syntax error: %s",
                          problem);
        break;
    }
}

int wb_yaml_parse(wb_yaml_ctx_t *ctx, const char *yaml, size_t len, wb_yaml_node_t **rootp)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    wb_yaml_node_t *stack[WB_YAML_MAX_DEPTH];
    wb_yaml_node_t *root = NULL;
    int depth = 0, ndocs = 0, rc = 0;
    bool done = false;

    *rootp = NULL;
    if (!yaml_parser_initialize(&parser)) {
        ctx->nomem = true;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    while (!done && rc == 0) {
        wb_yaml_node_t *node = NULL;

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
                wb_yaml_error(ctx, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                              "only one YAML document is allowed");
                rc = -1;
            }
            break;
        case YAML_SCALAR_EVENT:
            node = node_new(WB_YAML_SCALAR, ev.start_mark);
            if (!node) break;
            node->text = malloc(ev.data.scalar.length + 1);
            if (!node->text) {
                wb_yaml_destroy(node);
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
            node = node_new(WB_YAML_ALIAS, ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == WB_YAML_MAX_DEPTH) {
                wb_yaml_error(ctx, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                              "nesting deeper than %d levels is not supported", WB_YAML_MAX_DEPTH);
                rc = -1;
                break;
            }
            if (ev.type == YAML_MAPPING_START_EVENT) {
                node = node_new(WB_YAML_MAP, ev.start_mark);
                if (node) {
                    node->anchored = ev.data.mapping_start.anchor != NULL;
                    node->tagged = ev.data.mapping_start.tag != NULL;
                }
            } else {
                node = node_new(WB_YAML_SEQ, ev.start_mark);
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
                wb_yaml_error(ctx, node->line, node->col, NULL, "unexpected second top-level node");
                wb_yaml_destroy(node);
                rc = -1;
            } else if (node_add(stack[depth - 1], node) != 0) {
                wb_yaml_destroy(node);
                ctx->nomem = true;
                rc = -1;
            }
            if (rc == 0 && (node->kind == WB_YAML_MAP || node->kind == WB_YAML_SEQ))
                stack[depth++] = node;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc != 0) {
        wb_yaml_destroy(root);
        return -1;
    }
    *rootp = root;
    return 0;
}

bool wb_yaml_is_null(const wb_yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    size_t i;

    if (node->kind != WB_YAML_SCALAR || !node->plain) return false;
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strlen(nulls[i]) == node->len && memcmp(node->text, nulls[i], node->len) == 0)
            return true;
    return false;
}

const char *wb_yaml_describe(char *buf, size_t size, const wb_yaml_node_t *node)
{
    switch (node->kind) {
    case WB_YAML_MAP:
        return "a mapping";
    case WB_YAML_SEQ:
        return "a sequence";
    case WB_YAML_ALIAS:
        return "an alias";
    default:
        if (node->plain && node->len == 0) return "an empty value";
        if (wb_yaml_is_null(node)) return "null";
        return wb_yaml_echo(buf, size, node->text, node->len);
    }
}

/* ----------------------------------------------------------------- values */

bool wb_yaml_supported(wb_yaml_ctx_t *ctx, const wb_yaml_node_t *node, const char *path)
{
    if (node->kind == WB_YAML_ALIAS) {
        wb_yaml_error(ctx, node->line, node->col, path, "aliases are not supported");
        return false;
    }
    if (node->anchored) {
        wb_yaml_error(ctx, node->line, node->col, path, "anchors are not supported");
        return false;
    }
    if (node->tagged) {
        wb_yaml_error(ctx, node->line, node->col, path, "YAML tags are not supported");
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

char *wb_yaml_expand(wb_yaml_ctx_t *ctx, const wb_yaml_node_t *key, const char *path,
                     const wb_yaml_node_t *val, size_t *outlen)
{
    wb_yaml_buf_t sb = {0};
    const char *s = val->text;
    size_t i = 0, n = val->len;
    char ebuf[WB_YAML_ECHO_SIZE];

    wb_yaml_buf_add(&sb, "", 0);
    while (i < n) {
        const char *close, *name, *def = NULL;
        size_t namelen, deflen = 0;
        char var[256];
        const char *value;

        if (s[i] != '$' || i + 1 >= n || (s[i + 1] != '$' && s[i + 1] != '{')) {
            wb_yaml_buf_add(&sb, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            wb_yaml_buf_add(&sb, "$", 1);
            i += 2;
            continue;
        }
        close = memchr(s + i + 2, '}', n - i - 2);
        if (!close) {
            wb_yaml_error(ctx, key->line, key->col, path,
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
            wb_yaml_error(ctx, key->line, key->col, path,
                          "bad environment variable name %s in ${...}",
                          wb_yaml_echo(ebuf, sizeof(ebuf), name, namelen));
            goto fail;
        }
        memcpy(var, name, namelen);
        var[namelen] = '\0';
        value = getenv(var);
        if (def && (!value || !*value))
            wb_yaml_buf_add(&sb, def, deflen);
        else if (value)
            wb_yaml_buf_puts(&sb, value);
        else {
            wb_yaml_error(ctx, key->line, key->col, path, "environment variable %s is not set",
                          var);
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
