/* wb_config_walk.c — matching the keys of YAML mappings against a key table.
 *
 * A key is either a row of the table, a section (a dotted prefix of rows),
 * or unknown; unknown keys get a "did you mean" from the section's keys. The
 * walk goes on after an error so the user sees every problem at once.
 * kafka.properties is walked here too: its keys are librdkafka's, not ours.
 */
#include "wb_config_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "wb_util.h"

/* ------------------------------------------------------------------ paths */

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
static const char *dpath(char *buf, size_t size, const cfg_walk_t *w, const char *path)
{
    return join_path(buf, size, w->display, path, strlen(path));
}

/* ------------------------------------------------------------------- keys */

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

static void unknown_key(cfg_walk_t *w, const wb_yaml_node_t *key, const char *section,
                        const char *path)
{
    const char *best = NULL;
    size_t bestlen = 0, bestd = SIZE_MAX, i;
    char sbuf[CFG_PATH_SIZE], hbuf[CFG_PATH_SIZE];

    if (memchr(key->text, '.', key->len)) {
        wb_yaml_error(w->ctx, key->line, key->col, path,
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
        wb_yaml_error(w->ctx, key->line, key->col, path, "unknown key (did you mean %s?)",
                      dpath(hbuf, sizeof(hbuf), w, sbuf));
    } else {
        wb_yaml_error(w->ctx, key->line, key->col, path, "unknown key");
    }
}

/* Checks a mapping key; returns false (after reporting) when the pair must be
 * skipped. A duplicate is reported against its first occurrence. */
static bool key_ok(wb_yaml_ctx_t *ctx, const wb_yaml_node_t *map, size_t i, const char *parent)
{
    const wb_yaml_node_t *key = map->kids[i];
    size_t j;

    if (!wb_yaml_supported(ctx, key, parent[0] ? parent : NULL)) return false;
    if (key->kind != WB_YAML_SCALAR) {
        wb_yaml_error(ctx, key->line, key->col, parent[0] ? parent : NULL,
                      "keys must be scalars, got %s",
                      key->kind == WB_YAML_MAP ? "a mapping" : "a sequence");
        return false;
    }
    for (j = 0; j < i; j += 2) {
        const wb_yaml_node_t *prev = map->kids[j];

        if (prev->kind == WB_YAML_SCALAR && prev->len == key->len &&
            memcmp(prev->text, key->text, key->len) == 0) {
            char kbuf[WB_YAML_ECHO_SIZE], pbuf[CFG_PATH_SIZE];

            wb_escape(kbuf, sizeof(kbuf), key->text, key->len, WB_ESC_HIGH);
            join_path(pbuf, sizeof(pbuf), parent, kbuf, strlen(kbuf));
            wb_yaml_error(ctx, key->line, key->col, pbuf,
                          "duplicate key (first defined at line %d, column %d)", prev->line,
                          prev->col);
            return false;
        }
    }
    return true;
}

static void walk_props(cfg_walk_t *w, const wb_yaml_node_t *key, const wb_yaml_node_t *val,
                       const char *path);

/* Walks one mapping of the table's section ("" = top level). */
void wb_config_walk_mapping(cfg_walk_t *w, const wb_yaml_node_t *map, const char *section)
{
    char tpath[CFG_PATH_SIZE], mpath[CFG_PATH_SIZE], dsec[CFG_PATH_SIZE];
    size_t i, k;

    dpath(dsec, sizeof(dsec), w, section);
    for (i = 0; i + 1 < map->nkids; i += 2) {
        const wb_yaml_node_t *key = map->kids[i], *val = map->kids[i + 1];
        const cfg_field_t *f = NULL;
        char kbuf[WB_YAML_ECHO_SIZE];
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
                wb_config_walk_entities(w, key, val, mpath);
            else
                wb_config_field_set(w->ctx, f, w->base, key, val, mpath);
        } else if (section_key) {
            char dbuf[WB_YAML_ECHO_SIZE];

            if (!wb_yaml_supported(w->ctx, val, mpath)) continue;
            if (val->kind == WB_YAML_MAP)
                wb_config_walk_mapping(w, val, tpath);
            else if (!wb_yaml_is_null(val)) /* an empty section means all defaults */
                wb_yaml_error(w->ctx, key->line, key->col, mpath, "expected a mapping, got %s",
                              wb_yaml_describe(dbuf, sizeof(dbuf), val));
        } else {
            unknown_key(w, key, section, mpath);
        }
    }

    /* Required keys below this section whose key (or whose enclosing
     * section) is absent from this mapping. */
    for (k = 0; k < w->nfields; k++) {
        const cfg_field_t *f = &w->fields[k];
        size_t clen;
        const char *c;
        bool present = false;

        if (!(f->flags & F_REQUIRED) || w->marks[k].line) continue;
        c = child_of(section, f->key, &clen);
        if (!c) continue;
        for (i = 0; i + 1 < map->nkids && c[clen] == '.'; i += 2)
            if (map->kids[i]->kind == WB_YAML_SCALAR && map->kids[i]->len == clen &&
                memcmp(map->kids[i]->text, c, clen) == 0)
                present = true;
        if (!present)
            wb_yaml_error(w->ctx, map->line, map->col, dpath(mpath, sizeof(mpath), w, f->key),
                          "missing required key");
    }
}

/* ---------------------------------------------------------- kafka props */

int wb_config_props_set(wb_config_t *conf, const char *name, const char *value)
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

static void walk_props(cfg_walk_t *w, const wb_yaml_node_t *key, const wb_yaml_node_t *val,
                       const char *path)
{
    rd_kafka_conf_t *rk = NULL;
    char dbuf[WB_YAML_ECHO_SIZE];
    size_t i;

    if (!wb_yaml_supported(w->ctx, val, path)) return;
    if (wb_yaml_is_null(val)) return;
    if (val->kind != WB_YAML_MAP) {
        wb_yaml_error(w->ctx, key->line, key->col, path,
                      "expected a mapping of librdkafka properties, got %s",
                      wb_yaml_describe(dbuf, sizeof(dbuf), val));
        return;
    }
    /* Validate names and values with librdkafka itself, so a typo is caught
     * here with its line number instead of when a daemon starts. */
    rk = rd_kafka_conf_new();
    for (i = 0; i + 1 < val->nkids; i += 2) {
        const wb_yaml_node_t *pk = val->kids[i], *pv = val->kids[i + 1];
        char ppath[CFG_PATH_SIZE], kbuf[WB_YAML_ECHO_SIZE], rkerr[512];
        char *s = NULL;
        size_t n;

        if (!key_ok(w->ctx, val, i, path)) continue;
        wb_escape(kbuf, sizeof(kbuf), pk->text, pk->len, WB_ESC_HIGH);
        join_path(ppath, sizeof(ppath), path, kbuf, strlen(kbuf));
        if (pk->len == 0 || memchr(pk->text, '\0', pk->len)) {
            wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "unknown librdkafka property");
            continue;
        }
        if (!wb_yaml_supported(w->ctx, pv, ppath)) continue;
        if (pv->kind != WB_YAML_SCALAR) {
            wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "expected a scalar value, got %s",
                          wb_yaml_describe(dbuf, sizeof(dbuf), pv));
            continue;
        }
        if (wb_yaml_is_null(pv)) {
            s = strdup("");
            n = 0;
            if (!s) {
                w->ctx->nomem = true;
                continue;
            }
        } else if ((s = wb_yaml_expand(w->ctx, pk, ppath, pv, &n)) == NULL) {
            continue;
        }
        if (memchr(s, '\0', n)) {
            wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "must not contain NUL bytes");
        } else if (!strcmp(pk->text, "bootstrap.servers") ||
                   !strcmp(pk->text, "metadata.broker.list")) {
            wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "set kafka.brokers instead");
        } else if (!strcmp(pk->text, "group.id")) {
            wb_yaml_error(w->ctx, pk->line, pk->col, ppath,
                          "set flusher.group_id / refresher.group_id instead");
        } else {
            rd_kafka_conf_res_t res = RD_KAFKA_CONF_OK;

            /* plugin.library.paths loads the libraries as soon as it is set. */
            if (rk && strcmp(pk->text, "plugin.library.paths") != 0)
                res = rd_kafka_conf_set(rk, pk->text, s, rkerr, sizeof(rkerr));
            if (res == RD_KAFKA_CONF_UNKNOWN) {
                wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "unknown librdkafka property");
            } else if (res != RD_KAFKA_CONF_OK) {
                /* librdkafka may quote the value; keep a secret out of it. */
                if (wb_config_prop_is_secret(pk->text) && (n == 0 || strstr(rkerr, s))) {
                    wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "invalid value");
                } else {
                    char ebuf[256];

                    wb_escape(ebuf, sizeof(ebuf), rkerr, strlen(rkerr), WB_ESC_HIGH);
                    wb_yaml_error(w->ctx, pk->line, pk->col, ppath, "invalid value: %s", ebuf);
                }
            } else if (wb_config_props_set(w->conf, pk->text, s) != 0) {
                w->ctx->nomem = true;
            }
        }
        free(s);
    }
    if (rk) rd_kafka_conf_destroy(rk);
}
