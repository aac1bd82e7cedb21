/* wb_config_print.c — the effective config as YAML, secrets masked.
 *
 * Driven by the same key tables as loading, so a new key is printed without
 * touching this file. The output loads back to the same config (the fuzz
 * target checks print -> load -> print), except that secrets read "****".
 */
#include "wb_config_int.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#define CFG_MASK "****"

/* A YAML double-quoted string that loads back to s. In values '$' is
 * doubled because the loader expands ${...} there (wb_yaml_expand; not in
 * keys). */
static void sb_quoted_as(wb_yaml_buf_t *sb, const char *s, bool value)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char hex[8];

    wb_yaml_buf_add(sb, "\"", 1);
    for (; *p; p++) {
        if (*p == '"') {
            wb_yaml_buf_puts(sb, "\\\"");
        } else if (*p == '\\') {
            wb_yaml_buf_puts(sb, "\\\\");
        } else if (*p == '\n') {
            wb_yaml_buf_puts(sb, "\\n");
        } else if (*p == '\t') {
            wb_yaml_buf_puts(sb, "\\t");
        } else if (*p == '\r') {
            wb_yaml_buf_puts(sb, "\\r");
        } else if (*p == '$' && value) {
            wb_yaml_buf_puts(sb, "$$");
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(hex, sizeof(hex), "\\x%02x", *p);
            wb_yaml_buf_puts(sb, hex);
        } else if (p[0] == 0xc2 && p[1] == 0x85) {
            /* YAML folds raw NEL, LS and PS like newlines; escape them. */
            wb_yaml_buf_puts(sb, "\\N");
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            wb_yaml_buf_puts(sb, p[2] == 0xa8 ? "\\L" : "\\P");
            p += 2;
        } else {
            wb_yaml_buf_add(sb, (const char *)p, 1);
        }
    }
    wb_yaml_buf_add(sb, "\"", 1);
}

static void sb_quoted(wb_yaml_buf_t *sb, const char *s)
{
    sb_quoted_as(sb, s, true);
}

/* ------------------------------------------------------------- secrets */

/* The one list of setting names whose values are secrets. kafka: the
 * properties librdkafka itself marks sensitive, but sasl.username (an
 * identity, shown so an operator can check it) and ssl.key.location and
 * ssl.ca.pem (a path and a public certificate). postgres: the libpq
 * connection keywords that carry a secret. */
static const char *const kafka_secret_props[] = {
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl_key",
    NULL,
};
static const char *const pg_secret_keywords[] = {"password", "sslpassword", NULL};

static bool in_list(const char *const *list, const char *name, size_t len)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == len && strncasecmp(list[i], name, len) == 0) return true;
    return false;
}

bool wb_config_prop_is_secret(const char *name)
{
    /* A property added by a later librdkafka that names a password, a
     * passphrase or a secret is masked before it reaches the list. */
    return in_list(kafka_secret_props, name, strlen(name)) || strcasestr(name, "password") ||
           strcasestr(name, "passphrase") || strcasestr(name, "secret");
}

bool wb_config_pg_keyword_is_secret(const char *keyword)
{
    return in_list(pg_secret_keywords, keyword, strlen(keyword));
}

/* Whether masked is dsn with every secret keyword's value replaced by ****
 * and every other keyword's value unchanged, as libpq parses both (key=value
 * and URI forms, percent-decoding, quoting). This is what makes the textual
 * masking below safe: whatever it misses fails here and is hidden whole. */
static bool dsn_mask_holds(const char *dsn, const char *masked)
{
    PQconninfoOption *a = PQconninfoParse(dsn, NULL), *b = PQconninfoParse(masked, NULL);
    bool ok = a && b;

    for (size_t i = 0; ok && a[i].keyword; i++) {
        const char *av = a[i].val, *bv = b[i].val;

        if (!b[i].keyword || strcmp(a[i].keyword, b[i].keyword) != 0)
            ok = false;
        else if (!av || !bv)
            ok = !av && !bv;
        else if (wb_config_pg_keyword_is_secret(a[i].keyword))
            ok = strcmp(bv, CFG_MASK) == 0 || (!*av && !*bv);
        else
            ok = strcmp(av, bv) == 0;
    }
    PQconninfoFree(a);
    PQconninfoFree(b);
    return ok;
}

/* Writes into sb (empty, caller frees) a libpq DSN in the form it was given
 * with the value of every secret keyword (pg_secret_keywords; in a URI also
 * the userinfo password) replaced by ****. Returns 0, or -1 when libpq cannot
 * parse the DSN, the result does not parse to the same DSN with its secrets
 * masked (dsn_mask_holds), or out of memory: the caller then masks it whole,
 * better unreadable than leaked. */
static int dsn_masked(wb_yaml_buf_t *sbp, const char *dsn)
{
    static const char ws[] = " \t\n\r\f\v";
    wb_yaml_buf_t sb = *sbp;
    const char *p = dsn;

    wb_yaml_buf_add(&sb, "", 0);
    if (!strncmp(dsn, "postgresql://", 13) || !strncmp(dsn, "postgres://", 11)) {
        const char *auth = strstr(dsn, "://") + 3;
        /* As libpq reads it: the userinfo runs to the first '@' before any
         * '/', so a password may hold '?', '#' or ':'. */
        const char *end = auth + strcspn(auth, "@/");
        const char *colon = *end == '@' ? memchr(auth, ':', (size_t)(end - auth)) : NULL;
        const char *q;

        if (colon) {
            wb_yaml_buf_add(&sb, dsn, (size_t)(colon + 1 - dsn));
            wb_yaml_buf_puts(&sb, CFG_MASK);
            p = end;
        }
        /* Query parameters may carry one too: ...?sslmode=x&password=y */
        q = strchr(p, '?');
        if (!q) {
            wb_yaml_buf_puts(&sb, p);
        } else {
            wb_yaml_buf_add(&sb, p, (size_t)(q - p));
            for (p = q; *p;) {
                size_t n = strcspn(p + 1, "&") + 1; /* separator + parameter */
                size_t klen = strcspn(p + 1, "=&");

                if (p[1 + klen] == '=' && in_list(pg_secret_keywords, p + 1, klen)) {
                    wb_yaml_buf_add(&sb, p, klen + 2);
                    wb_yaml_buf_puts(&sb, CFG_MASK);
                } else {
                    wb_yaml_buf_add(&sb, p, n);
                }
                p += n;
            }
        }
    } else {
        while (*p) {
            const char *k, *v;
            size_t klen;

            if (strchr(ws, *p)) {
                wb_yaml_buf_add(&sb, p++, 1);
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
            wb_yaml_buf_add(&sb, k, (size_t)(v - k));
            if (in_list(pg_secret_keywords, k, klen))
                wb_yaml_buf_puts(&sb, CFG_MASK);
            else
                wb_yaml_buf_add(&sb, v, (size_t)(p - v));
        }
    }
    *sbp = sb;
    return !sb.oom && dsn_mask_holds(dsn, sb.p) ? 0 : -1;
whole:
    *sbp = sb;
    return -1;
}

/* A DSN quoted with its password masked (see dsn_masked). */
static void sb_masked_dsn(wb_yaml_buf_t *out, const char *dsn)
{
    wb_yaml_buf_t sb = {0};

    sb_quoted(out, dsn_masked(&sb, dsn) == 0 ? sb.p : CFG_MASK);
    free(sb.p);
}

static void sb_value(wb_yaml_buf_t *sb, const cfg_field_t *f, const void *base)
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
        wb_yaml_buf_puts(sb, *(char *const *)src ? *(char *const *)src : "\"\"");
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
    wb_yaml_buf_puts(sb, buf);
}

/* One "key: value   # help" line. */
static void put_line(FILE *out, wb_yaml_buf_t *sb, const char *lead, const char *key,
                     const cfg_field_t *f, const void *base)
{
    sb->len = 0;
    wb_yaml_buf_puts(sb, lead);
    wb_yaml_buf_puts(sb, key);
    wb_yaml_buf_puts(sb, ": ");
    sb_value(sb, f, base);
    if (sb->oom) return;
    fputs(sb->p, out);
    if (f->help) fprintf(out, "%*s# %s", sb->len < 38 ? (int)(40 - sb->len) : 2, "", f->help);
    fputc('\n', out);
}

static void print_entities(FILE *out, wb_yaml_buf_t *sb, const wb_config_t *conf)
{
    size_t i, k;

    if (conf->nentities == 0) {
        fputs("entities: []\n", out);
        return;
    }
    fputs("entities:\n", out);
    for (i = 0; i < conf->nentities; i++)
        for (k = 0; k < wb_config_entity_nfields; k++)
            put_line(out, sb, k == 0 ? "  - " : "    ", wb_config_entity_fields[k].key,
                     &wb_config_entity_fields[k], &conf->entities[i]);
}

static void print_props(FILE *out, wb_yaml_buf_t *sb, const wb_config_t *conf, int indent)
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
        wb_yaml_buf_puts(sb, ": ");
        sb_quoted(sb, wb_config_prop_is_secret(kv->name) && kv->value[0] ? CFG_MASK : kv->value);
        if (!sb->oom) fprintf(out, "%*s%s\n", indent, "", sb->p);
    }
}

void wb_config_print(const wb_config_t *conf, FILE *out)
{
    const char *prev = "";
    wb_yaml_buf_t sb = {0};
    char lead[64];
    size_t i;

    if (!conf || !out) return;
    fputs("# effective wbcache configuration from ", out);
    for (const char *p = conf->path ? conf->path : "?"; *p; p++)
        fputc(*p == '\n' || *p == '\r' ? '?' : *p, out);
    fputs("; secrets are shown as ****\n", out);
    for (i = 0; i < wb_config_nfields; i++) {
        const cfg_field_t *f = &wb_config_fields[i];
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

/* ------------------------------------------------------ one key, reference */

/* The row of a dotted top-level key, or NULL. */
static const cfg_field_t *field_by_key(const char *key)
{
    for (size_t i = 0; i < wb_config_nfields; i++)
        if (strcmp(wb_config_fields[i].key, key) == 0) return &wb_config_fields[i];
    return NULL;
}

wb_err_t wb_config_print_key(const wb_config_t *conf, const char *key, FILE *out, char *errstr,
                             size_t errstr_size)
{
    const cfg_field_t *f = key ? field_by_key(key) : NULL;
    const void *src;
    wb_yaml_buf_t sb = {0};

    if (!conf || !out || !key) {
        snprintf(errstr, errstr_size, "no config, key or output");
        return WB_ERR_INVALID_ARG;
    }
    if (!f) {
        snprintf(errstr, errstr_size, "%s: unknown key", key);
        return WB_ERR_INVALID_ARG;
    }
    if (f->type == FT_PROPS || f->type == FT_ENTITIES) {
        snprintf(errstr, errstr_size, "%s: not a single value but a %s", key,
                 f->type == FT_PROPS ? "mapping" : "list");
        return WB_ERR_INVALID_ARG;
    }
    src = (const char *)conf + f->offset;
    if (f->type == FT_STRING || f->type == FT_ENUM_STR) {
        /* Unquoted, the way a script wants it; secrets as printing shows them. */
        const char *s = *(char *const *)src ? *(char *const *)src : "";

        if ((f->flags & F_SECRET) && *s)
            s = CFG_MASK;
        else if ((f->flags & F_DSN) && *s)
            s = dsn_masked(&sb, s) == 0 ? sb.p : CFG_MASK;
        fprintf(out, "%s\n", s);
        free(sb.p);
        return WB_OK;
    }
    sb_value(&sb, f, conf);
    if (sb.oom) {
        free(sb.p);
        snprintf(errstr, errstr_size, "out of memory");
        return WB_ERR_NOMEM;
    }
    fprintf(out, "%s\n", sb.p);
    free(sb.p);
    return WB_OK;
}

/* The range of f in words into buf ("" when any value of its type goes). */
static void describe_range(const cfg_field_t *f, char *buf, size_t size)
{
    size_t n = 0;
    const char *why;

    buf[0] = '\0';
    switch (f->type) {
    case FT_INT:
    case FT_INT64:
        snprintf(buf, size, "%" PRId64 "–%" PRId64, f->min, f->max);
        return;
    case FT_DOUBLE:
        snprintf(buf, size, (f->flags & F_MAX_EXCL) ? "%g ≤ x < %g" : "%g–%g", f->fmin, f->fmax);
        return;
    case FT_BOOL:
        snprintf(buf, size, "true, false");
        return;
    case FT_ENUM:
    case FT_ENUM_STR:
        for (size_t k = 0; f->names[k] && n < size; k++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", k ? ", " : "", f->names[k]);
        return;
    case FT_STRING:
        if (f->min == 0)
            n = (size_t)snprintf(buf, size, "at most %" PRId64 " chars", f->max);
        else
            n = (size_t)snprintf(buf, size, "%" PRId64 "–%" PRId64 " chars", f->min, f->max);
        /* A check says what it expects when handed a value it refuses. */
        if (f->check && (why = f->check("")) != NULL && n < size) {
            if (strncmp(why, "must be ", 8) == 0) why += 8;
            snprintf(buf + n, size - n, "; %s", why);
        }
        return;
    case FT_ENTITIES:
        snprintf(buf, size, "at least one");
        return;
    case FT_PROPS:
        return;
    }
}

bool wb_config_key_describe(size_t i, wb_config_key_t *key)
{
    static const char *const types[] = {
        [FT_STRING] = "string", [FT_INT] = "int",       [FT_INT64] = "int64",
        [FT_DOUBLE] = "number", [FT_BOOL] = "bool",     [FT_ENUM] = "enum",
        [FT_ENUM_STR] = "enum", [FT_PROPS] = "mapping", [FT_ENTITIES] = "list",
    };
    const cfg_field_t *f;

    if (i < wb_config_nfields) {
        f = &wb_config_fields[i];
        snprintf(key->key, sizeof(key->key), "%s", f->key);
    } else if (i - wb_config_nfields < wb_config_entity_nfields) {
        f = &wb_config_entity_fields[i - wb_config_nfields];
        snprintf(key->key, sizeof(key->key), "entities[].%s", f->key);
    } else {
        return false;
    }
    key->type = types[f->type];
    key->def = f->type == FT_PROPS ? "{}" : f->def;
    key->required = (f->flags & F_REQUIRED) != 0;
    key->secret = (f->flags & F_SECRET) != 0;
    key->secret_part = (f->flags & F_DSN) != 0;
    describe_range(f, key->range, sizeof(key->range));
    key->help = f->help ? f->help : "";
    return true;
}
