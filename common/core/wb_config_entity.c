/* wb_config_entity.c — the entities: list (key prefix -> table) and its lookups.
 *
 * Each item is walked like a small config of its own against the entity
 * table; then name, prefix and table must each be unique across items, no
 * prefix may start another (a cache key belongs to exactly one entity,
 * invariant 12) and none may overlap the internal "wb:" keys.
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
