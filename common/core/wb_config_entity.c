/* wb_config_entity.c — the entities: list (key prefix -> table) and its lookups.
 *
 * Each item is walked like a small config of its own against the entity
 * table; then name, prefix and table must each be unique across items, no
 * prefix may start another (a cache key belongs to exactly one entity,
 * invariant 12) and none may overlap the internal "wb:" keys. A mapped
 * entity (key_column set) has its columns parsed and checked here.
 */
#include "wb_config_int.h"
#include "wb_entry.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports a repeated name / prefix / table among the entities. */
static void check_unique(wb_yaml_ctx_t *ctx, const wb_config_t *conf, const int *idx,
                         const cfg_mark_t *marks, size_t field)
{
    const cfg_field_t *f = &wb_config_entity_fields[field];
    size_t a, b;

    for (b = 1; b < conf->nentities; b++) {
        const char *vb = *(char *const *)((const char *)&conf->entities[b] + f->offset);

        if (!vb || !*vb) continue;
        for (a = 0; a < b; a++) {
            const char *va = *(char *const *)((const char *)&conf->entities[a] + f->offset);
            char pbuf[CFG_PATH_SIZE], ebuf[WB_YAML_ECHO_SIZE];
            const cfg_mark_t *m = &marks[b * wb_config_entity_nfields + field];

            if (!va || strcmp(va, vb) != 0) continue;
            snprintf(pbuf, sizeof(pbuf), "entities[%d].%s", idx[b], f->key);
            wb_yaml_error(ctx, m->line, m->col, pbuf, "duplicate of entities[%d].%s %s", idx[a],
                          f->key, wb_yaml_echo(ebuf, sizeof(ebuf), vb, strlen(vb)));
            break;
        }
    }
}

/* 1 if one of a, b starts with the other (equal included). */
static int prefix_overlap(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return memcmp(a, b, la < lb ? la : lb) == 0;
}

/* Reports a prefix that starts another entity's (`user:` and `user:admin:`:
 * the key "user:admin:5" would be both user "admin:5" and admin_user "5",
 * so reads would cross over and the flusher could write the wrong table),
 * and one that overlaps the internal keys (WB_CONFIG_INTERNAL_PREFIX: the
 * dirty index, its lease and floor, the refresh markers and locks). Equal
 * prefixes are check_unique's. */
static void check_prefixes(wb_yaml_ctx_t *ctx, const wb_config_t *conf, const int *idx,
                           const cfg_mark_t *marks)
{
    const size_t field = 1; /* prefix */
    const cfg_field_t *f = &wb_config_entity_fields[field];
    char pbuf[CFG_PATH_SIZE], ebuf[WB_YAML_ECHO_SIZE], obuf[WB_YAML_ECHO_SIZE];

    for (size_t b = 0; b < conf->nentities; b++) {
        const char *vb = conf->entities[b].prefix;
        const cfg_mark_t *m = &marks[b * wb_config_entity_nfields + field];

        if (!vb || !*vb) continue;
        snprintf(pbuf, sizeof(pbuf), "entities[%d].%s", idx[b], f->key);
        if (strpbrk(vb, "{}"))
            wb_yaml_error(ctx, m->line, m->col, pbuf,
                          "%s has a brace: a cache key's hash tag is its shard's \"{N}\"",
                          wb_yaml_echo(ebuf, sizeof(ebuf), vb, strlen(vb)));
        if (prefix_overlap(vb, WB_CONFIG_INTERNAL_PREFIX))
            wb_yaml_error(ctx, m->line, m->col, pbuf,
                          "%s overlaps the internal keys \"" WB_CONFIG_INTERNAL_PREFIX "...\"",
                          wb_yaml_echo(ebuf, sizeof(ebuf), vb, strlen(vb)));
        for (size_t a = 0; a < b; a++) {
            const char *va = conf->entities[a].prefix;
            const cfg_mark_t *ma = &marks[a * wb_config_entity_nfields + field];

            if (!va || !*va || strcmp(va, vb) == 0 || !prefix_overlap(va, vb)) continue;
            wb_yaml_error(ctx, m->line, m->col, pbuf,
                          "%s of entity %s overlaps entities[%d].%s %s of entity %s (line %d, "
                          "column %d): a cache key must belong to one entity",
                          wb_yaml_echo(ebuf, sizeof(ebuf), vb, strlen(vb)),
                          conf->entities[b].name ? conf->entities[b].name : "?", idx[a], f->key,
                          wb_yaml_echo(obuf, sizeof(obuf), va, strlen(va)),
                          conf->entities[a].name ? conf->entities[a].name : "?", ma->line, ma->col);
            break;
        }
    }
}

void wb_config_entity_map_free(wb_entity_t *ent)
{
    for (size_t i = 0; i < ent->nmap; i++) {
        free(ent->map[i].field);
        free(ent->map[i].column);
    }
    free(ent->map);
    ent->map = NULL;
    ent->nmap = 0;
}

/* The index of key in the entity table (it is there). */
static size_t entity_field(const char *key)
{
    size_t i;

    for (i = 0; i < wb_config_entity_nfields; i++)
        if (strcmp(wb_config_entity_fields[i].key, key) == 0) break;
    return i;
}

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !(s[0] == '_' || ((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(s[i] == '_' || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* Trims the blanks around s[0, *n) and returns where it starts. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) {
        s++;
        (*n)--;
    }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        (*n)--;
    return s;
}

/* Parses and checks the mapped-entity keys of ent (entities[di]): columns
 * as "field[=column], ..." (column defaults to the field's name), every
 * column an identifier used once, none the key or version column; a
 * mapped entity needs columns and value_type jsonb (its value is a JSON
 * object); columns without key_column mean nothing. */
static void parse_map(wb_yaml_ctx_t *ctx, wb_entity_t *ent, int di, const cfg_mark_t *m)
{
    const cfg_mark_t *mc = &m[entity_field("columns")], *mk = &m[entity_field("key_column")];
    char pbuf[CFG_PATH_SIZE];
    const char *s = ent->columns ? ent->columns : "";
    size_t cap = 1;

    snprintf(pbuf, sizeof(pbuf), "entities[%d].columns", di);
    if (!WB_ENTITY_MAPPED(ent)) {
        if (*s) wb_yaml_error(ctx, mc->line, mc->col, pbuf, "needs key_column (a mapped entity)");
        return;
    }
    if (ent->value_type != WB_VT_JSONB) {
        snprintf(pbuf, sizeof(pbuf), "entities[%d].key_column", di);
        wb_yaml_error(ctx, mk->line, mk->col, pbuf,
                      "a mapped entity's value is a JSON object: set value_type: jsonb");
        return;
    }
    for (const char *c = s; *c; c++)
        cap += *c == ',';
    if (!(ent->map = calloc(cap, sizeof(*ent->map)))) {
        ctx->nomem = true;
        return;
    }
    while (*s) {
        size_t len = strcspn(s, ","), fl, cl;
        const char *eq = memchr(s, '=', len), *f, *c;

        fl = eq ? (size_t)(eq - s) : len;
        f = trim(s, &fl);
        cl = fl;
        c = f;
        if (eq) {
            cl = len - (size_t)(eq + 1 - s);
            c = trim(eq + 1, &cl);
        }
        int field_ok = fl > 0;
        for (size_t k = 0; k < fl; k++)
            if (f[k] == '\'' || f[k] == '\\' || f[k] == '"' || (unsigned char)f[k] < 0x20)
                field_ok = 0;
        if (!field_ok || !is_ident(c, cl)) {
            wb_yaml_error(ctx, mc->line, mc->col, pbuf,
                          "\"%.*s\": expected field or field=column (column an identifier; no "
                          "quote, backslash or control character in a field)",
                          (int)len, s);
            return;
        }
        if ((cl == strlen(ent->key_column) && !memcmp(c, ent->key_column, cl)) ||
            (cl == strlen(ent->version_column) && !memcmp(c, ent->version_column, cl)) ||
            (ent->delete_mode == WB_DELETE_SOFT && cl == strlen(ent->deleted_column) &&
             !memcmp(c, ent->deleted_column, cl))) {
            wb_yaml_error(ctx, mc->line, mc->col, pbuf,
                          "column \"%.*s\" is the key, version or deleted column", (int)cl, c);
            return;
        }
        for (size_t i = 0; i < ent->nmap; i++) {
            if ((strlen(ent->map[i].field) == fl && !memcmp(ent->map[i].field, f, fl)) ||
                (strlen(ent->map[i].column) == cl && !memcmp(ent->map[i].column, c, cl))) {
                wb_yaml_error(ctx, mc->line, mc->col, pbuf, "\"%.*s\" is mapped twice", (int)len,
                              s);
                return;
            }
        }
        wb_column_map_t *e = &ent->map[ent->nmap];
        if (!(e->field = strndup(f, fl)) || !(e->column = strndup(c, cl))) {
            free(e->field);
            e->field = NULL;
            ctx->nomem = true;
            return;
        }
        ent->nmap++;
        s += len;
        if (*s == ',') s++;
    }
    if (ent->nmap == 0)
        wb_yaml_error(ctx, mc->line ? mc->line : mk->line, mc->line ? mc->col : mk->col, pbuf,
                      "a mapped entity needs at least one column");
    if (!strcmp(ent->key_column, ent->version_column)) {
        const cfg_mark_t *mv = &m[entity_field("version_column")];
        snprintf(pbuf, sizeof(pbuf), "entities[%d].version_column", di);
        wb_yaml_error(ctx, mv->line, mv->col, pbuf, "must differ from key_column");
    }
    if (ent->delete_mode == WB_DELETE_SOFT && (!strcmp(ent->deleted_column, ent->key_column) ||
                                               !strcmp(ent->deleted_column, ent->version_column))) {
        const cfg_mark_t *md = &m[entity_field("deleted_column")];
        snprintf(pbuf, sizeof(pbuf), "entities[%d].deleted_column", di);
        wb_yaml_error(ctx, md->line, md->col, pbuf,
                      "must differ from key_column and version_column");
    }
}

void wb_config_walk_entities(cfg_walk_t *w, const wb_yaml_node_t *key, const wb_yaml_node_t *val,
                             const char *path)
{
    wb_config_t *conf = w->conf;
    char dbuf[WB_YAML_ECHO_SIZE];
    cfg_mark_t *marks = NULL;
    int *idx = NULL;
    size_t i, nf = wb_config_entity_nfields;

    if (!wb_yaml_supported(w->ctx, val, path)) return;
    if (val->kind != WB_YAML_SEQ) {
        wb_yaml_error(w->ctx, key->line, key->col, path, "expected a sequence of entities, got %s",
                      wb_yaml_describe(dbuf, sizeof(dbuf), val));
        return;
    }
    if (val->nkids == 0) {
        wb_yaml_error(w->ctx, key->line, key->col, path, "at least one entity is required");
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
        const wb_yaml_node_t *item = val->kids[i];
        char disp[32];
        cfg_walk_t ew;

        snprintf(disp, sizeof(disp), "entities[%zu]", i);
        if (!wb_yaml_supported(w->ctx, item, disp)) continue;
        if (item->kind != WB_YAML_MAP) {
            wb_yaml_error(w->ctx, item->line, item->col, disp, "expected a mapping, got %s",
                          wb_yaml_describe(dbuf, sizeof(dbuf), item));
            continue;
        }
        if (wb_config_apply_defaults(wb_config_entity_fields, nf,
                                     &conf->entities[conf->nentities]) != 0) {
            wb_config_free_fields(wb_config_entity_fields, nf, &conf->entities[conf->nentities]);
            w->ctx->nomem = true;
            continue;
        }
        ew = (cfg_walk_t){.ctx = w->ctx,
                          .conf = conf,
                          .fields = wb_config_entity_fields,
                          .nfields = nf,
                          .base = &conf->entities[conf->nentities],
                          .display = disp,
                          .marks = &marks[conf->nentities * nf]};
        wb_config_walk_mapping(&ew, item, "");
        idx[conf->nentities] = i > INT_MAX ? INT_MAX : (int)i;
        parse_map(w->ctx, &conf->entities[conf->nentities], idx[conf->nentities], ew.marks);
        conf->nentities++;
    }
    for (i = 0; i < 3; i++) /* name, prefix, table */
        check_unique(w->ctx, conf, idx, marks, i);
    check_prefixes(w->ctx, conf, idx, marks);
out:
    free(marks);
    free(idx);
}

/* ---------------------------------------------------------------- lookups */

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
    /* The shard tag "{N}" first (wb_entry.h), then the entity prefix. */
    i = wb_entry_key_tag(key, keylen, NULL);
    key += i;
    keylen -= i;
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

size_t wb_entity_id_offset(const wb_entity_t *ent, const char *key, size_t keylen)
{
    size_t tag = wb_entry_key_tag(key, keylen, NULL), plen;

    if (!ent || !ent->prefix || !key) return 0;
    plen = strlen(ent->prefix);
    if (keylen - tag <= plen || memcmp(key + tag, ent->prefix, plen) != 0) return 0;
    return tag + plen;
}
