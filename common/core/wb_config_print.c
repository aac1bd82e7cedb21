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

/* Copies a libpq DSN with the password value replaced by ****. Anything it
 * cannot parse is masked whole: better unreadable than leaked. */
static void sb_masked_dsn(wb_yaml_buf_t *out, const char *dsn)
{
    static const char ws[] = " \t\n\r\f\v";
    wb_yaml_buf_t sb = {0};
    const char *p = dsn;

    wb_yaml_buf_add(&sb, "", 0);
    if (!strncmp(dsn, "postgresql://", 13) || !strncmp(dsn, "postgres://", 11)) {
        const char *auth = strstr(dsn, "://") + 3;
        const char *end = auth + strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', (size_t)(end - auth));
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        const char *q;

        if (colon) {
            wb_yaml_buf_add(&sb, dsn, (size_t)(colon + 1 - dsn));
            wb_yaml_buf_puts(&sb, CFG_MASK);
            p = at;
        }
        /* Query parameters may carry it too: ...?sslmode=x&password=y */
        q = strchr(p, '?');
        if (!q) {
            wb_yaml_buf_puts(&sb, p);
        } else {
            wb_yaml_buf_add(&sb, p, (size_t)(q - p));
            for (p = q; *p;) {
                size_t n = strcspn(p + 1, "&") + 1; /* separator + parameter */

                if (!strncmp(p + 1, "password=", 9)) {
                    wb_yaml_buf_add(&sb, p, 10);
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
            if (klen == 8 && !strncmp(k, "password", 8))
                wb_yaml_buf_puts(&sb, CFG_MASK);
            else
                wb_yaml_buf_add(&sb, v, (size_t)(p - v));
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
