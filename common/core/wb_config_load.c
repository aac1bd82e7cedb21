/* wb_config_load.c — wb_config_load: read, parse, walk, cross-check, apply secrets.
 *
 * Every problem found is collected (see wb_yaml.h) and reported together,
 * in file order, so a user fixes a config in one round. Checks between keys
 * run only once each key is valid on its own, and the WBCACHE_* secrets from
 * the environment are applied last, only to a config that is otherwise good.
 */
#include "wb_config_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_util.h"

#define CFG_DEFAULT_PATH   "config/wbcache.yaml"
#define CFG_MAX_FILE_BYTES (1024 * 1024) /* a config is a few KiB; refuse to slurp a disk image */

/* ------------------------------------------------- cross checks, secrets */

static size_t field_index(const cfg_field_t *fields, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(fields[i].key, key) == 0) return i;
    return 0; /* not reached for keys of the table */
}

/* Checks between two keys; run once every key is valid on its own. The
 * error goes to whichever key the file set (the later one if both), worded
 * from that key's side: fmt_a at ka, fmt_b at kb, each naming the other. */
static void check_pair(wb_yaml_ctx_t *ctx, const cfg_mark_t *marks, bool bad, const char *ka,
                       const char *fmt_a, const char *kb, const char *fmt_b)
{
    const cfg_mark_t *ma = &marks[field_index(wb_config_fields, wb_config_nfields, ka)];
    const cfg_mark_t *mb = &marks[field_index(wb_config_fields, wb_config_nfields, kb)];

    if (!bad) return;
    if (ma->line &&
        (!mb->line || ma->line > mb->line || (ma->line == mb->line && ma->col > mb->col)))
        wb_yaml_error(ctx, ma->line, ma->col, ka, fmt_a, kb);
    else
        wb_yaml_error(ctx, mb->line ? mb->line : 1, mb->line ? mb->col : 1, kb, fmt_b, ka);
}

static void check_cross(wb_yaml_ctx_t *ctx, const wb_config_t *conf, const cfg_mark_t *marks)
{
    check_pair(ctx, marks, conf->flusher.retry_initial_ms > conf->flusher.retry_max_ms,
               "flusher.retry.initial_ms", "must not exceed %s", "flusher.retry.max_ms",
               "must not be below %s");
    check_pair(ctx, marks, conf->refresher.retry_initial_ms > conf->refresher.retry_max_ms,
               "refresher.retry.initial_ms", "must not exceed %s", "refresher.retry.max_ms",
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
        {"WBCACHE_REDIS_PASSWORD", offsetof(wb_config_t, redis.password)},
        {"WBCACHE_PG_DSN", offsetof(wb_config_t, postgres.dsn)},
        {"WBCACHE_PG_PASSWORD", offsetof(wb_config_t, postgres.password)},
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

        if (v && *v && wb_config_props_set(conf, props[i].prop, v) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- load */

static wb_err_t cfg_load(const char *name, const char *yaml, size_t len, wb_config_t **confp,
                         char *errstr, size_t errstr_size)
{
    wb_yaml_ctx_t ctx = {.name = name};
    wb_config_t *conf = NULL;
    wb_yaml_node_t *root = NULL;
    cfg_mark_t *marks = NULL;
    wb_err_t err = WB_OK;
    char dbuf[WB_YAML_ECHO_SIZE];

    marks = calloc(wb_config_nfields, sizeof(*marks));
    conf = calloc(1, sizeof(*conf));
    if (!marks || !conf || !(conf->path = strdup(name)) ||
        wb_config_apply_defaults(wb_config_fields, wb_config_nfields, conf) != 0) {
        ctx.nomem = true;
        goto out;
    }
    if (wb_yaml_parse(&ctx, yaml, len, &root) != 0) goto out;
    if (!root || wb_yaml_is_null(root)) {
        wb_yaml_error(&ctx, root ? root->line : 1, root ? root->col : 1, NULL,
                      "the config is empty; expected a mapping with at least an entities: list");
        goto out;
    }
    if (!wb_yaml_supported(&ctx, root, NULL)) goto out;
    if (root->kind != WB_YAML_MAP) {
        wb_yaml_error(&ctx, root->line, root->col, NULL,
                      "expected a mapping at the top level, got %s",
                      wb_yaml_describe(dbuf, sizeof(dbuf), root));
        goto out;
    }
    {
        cfg_walk_t w = {.ctx = &ctx,
                        .conf = conf,
                        .fields = wb_config_fields,
                        .nfields = wb_config_nfields,
                        .base = conf,
                        .display = "",
                        .marks = marks};

        wb_config_walk_mapping(&w, root, "");
    }
    if (ctx.nerrs == 0 && !ctx.nomem) check_cross(&ctx, conf, marks);
    if (ctx.nerrs == 0 && !ctx.nomem && apply_secret_env(conf) != 0) ctx.nomem = true;

out:
    wb_yaml_destroy(root);
    if (ctx.nomem) {
        wb_set_err(errstr, errstr_size, "%s: out of memory while loading the config", name);
        err = WB_ERR_NOMEM;
    } else if (ctx.nerrs || ctx.nlost) {
        wb_yaml_render_errors(&ctx, errstr, errstr_size);
        err = WB_ERR_CONFIG;
    }
    wb_yaml_ctx_clear(&ctx);
    free(marks);
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
