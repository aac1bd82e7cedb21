/* wb_column.c — whether a value can be stored in its entity's PostgreSQL value column. */
#include "wb_column.h"

#include <string.h>

#include "wb_json.h"
#include "wb_utf8.h"
#include "wb_util.h"

wb_err_t wb_column_check(wb_value_type_t vt, const void *data, size_t len, char *errstr,
                         size_t errstr_size)
{
    char why[256];
    const char *nul;
    size_t bad = 0;

    if (!data && len > 0) {
        wb_set_err(errstr, errstr_size, "no value bytes");
        return WB_ERR_INVALID_ARG;
    }
    switch (vt) {
    case WB_VT_BYTEA:
        return WB_OK;
    case WB_VT_JSONB:
        if (wb_json_check(data, len, why, sizeof(why)) == WB_OK) return WB_OK;
        wb_set_err(errstr, errstr_size, "value is not valid JSON for a jsonb column: %s", why);
        return WB_ERR_INVALID_ARG;
    case WB_VT_TEXT:
    default:
        if (len > 0 && (nul = memchr(data, '\0', len))) {
            wb_set_err(errstr, errstr_size,
                       "byte %zu: a text value cannot hold a NUL byte (use value_type bytea)",
                       (size_t)(nul - (const char *)data));
            return WB_ERR_INVALID_ARG;
        }
        if (!wb_utf8_valid(data, len, &bad)) {
            wb_set_err(errstr, errstr_size,
                       "byte %zu: a text value must be valid UTF-8 (use value_type bytea)", bad);
            return WB_ERR_INVALID_ARG;
        }
        return WB_OK;
    }
}

/* ------------------------------------------------------ mapped entities */

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The end of the string starting at s[i] == '"' (just past its closing
 * quote); the JSON is valid, so there is one. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    return i + 1;
}

/* The end of the value starting at s[i] (valid JSON). */
static size_t skip_value(const char *s, size_t i, size_t len)
{
    int depth = 0;

    do {
        if (s[i] == '"') {
            i = skip_string(s, i, len);
            continue;
        }
        if (s[i] == '{' || s[i] == '[') depth++;
        if (s[i] == '}' || s[i] == ']') depth--;
        i++;
        if (depth == 0 && i < len && s[i - 1] != '}' && s[i - 1] != ']')
            while (i < len && !strchr(",}] \t\r\n", s[i]))
                i++;
    } while (i < len && depth > 0);
    return i;
}

/* Decodes the key string at s[i] (its quotes excluded) into out; 0 when it
 * fits and has no escape beyond ASCII, else -1. */
static int key_text(const char *s, size_t i, size_t end, char *out, size_t size)
{
    size_t n = 0;

    for (i++; i + 1 < end; i++) {
        char c = s[i];
        if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *p = strchr(from, s[++i]);
            if (s[i] == 'u' && i + 4 < end && s[i + 1] == '0' && s[i + 2] == '0' &&
                s[i + 3] < '8') {
                unsigned v = 0;
                for (int k = 3; k <= 4; k++) {
                    char h = s[i + k];
                    v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                c = (char)v;
                i += 4;
            } else if (p && *p) {
                c = to[p - from];
            } else {
                return -1;
            }
        }
        if (n + 1 >= size) return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

wb_err_t wb_column_check_mapped(const wb_entity_t *ent, const void *data, size_t len, char *errstr,
                                size_t errstr_size)
{
    const char *s = data;
    char key[256];
    size_t i;
    wb_err_t err = wb_column_check(WB_VT_JSONB, data, len, errstr, errstr_size);

    if (err != WB_OK) return err;
    i = skip_ws(s, 0, len);
    if (i >= len || s[i] != '{') {
        wb_set_err(errstr, errstr_size,
                   "entity %s maps fields to columns: the value must be a "
                   "JSON object",
                   ent->name);
        return WB_ERR_INVALID_ARG;
    }
    for (i = skip_ws(s, i + 1, len); i < len && s[i] == '"';) {
        size_t end = skip_string(s, i, len);
        size_t m = 0;
        int ok = key_text(s, i, end, key, sizeof(key)) == 0;

        while (ok && m < ent->nmap && strcmp(ent->map[m].field, key) != 0)
            m++;
        if (!ok || m == ent->nmap) {
            wb_set_err(errstr, errstr_size,
                       "field \"%.*s\" is not mapped to a column of table %s (entities[].columns "
                       "of entity %s)",
                       (int)(end - i - 2 > 64 ? 64 : end - i - 2), s + i + 1, ent->table,
                       ent->name);
            return WB_ERR_INVALID_ARG;
        }
        i = skip_ws(s, end, len); /* ':' */
        i = skip_value(s, skip_ws(s, i + 1, len), len);
        i = skip_ws(s, i, len);
        if (i < len && s[i] == ',') i = skip_ws(s, i + 1, len);
    }
    return WB_OK;
}

wb_err_t wb_column_check_id(const wb_entity_t *ent, const char *id, char *errstr,
                            size_t errstr_size)
{
    size_t n = id ? strlen(id) : 0, i;

    if (!WB_ENTITY_MAPPED(ent)) return WB_OK;
    switch (ent->key_type) {
    case WB_KT_BIGINT: {
        const char *d = id[0] == '-' ? id + 1 : id;
        size_t dn = strlen(d);
        int ok = dn > 0 && dn <= 19 && strspn(d, "0123456789") == dn && (d[0] != '0' || dn == 1) &&
                 strcmp(id, "-0") != 0 &&
                 (dn < 19 ||
                  strcmp(d, id[0] == '-' ? "9223372036854775808" : "9223372036854775807") <= 0);
        if (ok) return WB_OK;
        wb_set_err(errstr, errstr_size,
                   "entity %s has a bigint key: the id must be an integer in canonical form "
                   "(no sign but '-', no leading zero)",
                   ent->name);
        return WB_ERR_INVALID_ARG;
    }
    case WB_KT_UUID:
        for (i = 0; i < n && n == 36; i++) {
            int dash = i == 8 || i == 13 || i == 18 || i == 23;
            if (dash ? id[i] != '-' : !strchr("0123456789abcdef", id[i]) || !id[i]) break;
        }
        if (n == 36 && i == 36) return WB_OK;
        wb_set_err(errstr, errstr_size,
                   "entity %s has a uuid key: the id must be a lowercase, hyphenated uuid",
                   ent->name);
        return WB_ERR_INVALID_ARG;
    default:
        return WB_OK;
    }
}
