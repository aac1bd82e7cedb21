/* wb_config_int.h — what the wb_config*.c files share; nothing outside them includes it.
 *
 * How a config is loaded (wb_config_load.c): wb_yaml.c turns the text into a
 * node tree; wb_config_walk.c matches its keys against the key tables of
 * wb_config.c, which turn each value into a typed field (entities: list in
 * wb_config_entity.c); then wb_config_load.c checks keys against each other
 * and applies the WBCACHE_* secrets from the environment. wb_config_print.c
 * writes the result back as YAML from the same tables.
 */
#ifndef WB_CONFIG_INT_H
#define WB_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"
#include "wb_yaml.h"

#define CFG_PATH_SIZE 256 /* key paths in messages are cut to this */

typedef enum cfg_field_type_e {
    FT_STRING,
    FT_INT,
    FT_INT64,
    FT_DOUBLE,
    FT_BOOL,
    FT_ENUM,     /* int field, value = index into names */
    FT_ENUM_STR, /* char * field restricted to names */
    FT_PROPS,    /* kafka.properties */
    FT_ENTITIES, /* entities */
} cfg_field_type_t;

#define F_REQUIRED 0x1u
#define F_SECRET   0x2u /* printed as ****, never echoed in a message */
#define F_DSN      0x4u /* printed with its password part masked */
#define F_MAX_EXCL 0x8u /* doubles: the value must be below fmax */

/* Returns NULL when s is acceptable, else a description of what is expected. */
typedef const char *(*cfg_check_fn_t)(const char *s);

/* One key of a table. */
typedef struct cfg_field_s {
    const char *key; /* dotted path; sections are the dotted prefixes */
    cfg_field_type_t type;
    size_t offset;
    const char *def;  /* parsed like a value from the file; NULL = no default */
    int64_t min, max; /* integers: value range; strings: length range */
    double fmin, fmax;
    const char *const *names; /* enums, NULL-terminated */
    unsigned flags;
    cfg_check_fn_t check;
    const char *help;
} cfg_field_t;

/* The keys of wb_config_t, in printing order, and of one wb_entity_t
 * (wb_config.c). */
extern const cfg_field_t wb_config_fields[];
extern const size_t wb_config_nfields;
extern const cfg_field_t wb_config_entity_fields[];
extern const size_t wb_config_entity_nfields;

/* Where a key was found in the file. */
typedef struct cfg_mark_s {
    int line, col; /* 0 = key not present */
} cfg_mark_t;

/* Walking one mapping (and the sections below it) against one table. */
typedef struct cfg_walk_s {
    wb_yaml_ctx_t *ctx;
    wb_config_t *conf;
    const cfg_field_t *fields;
    size_t nfields;
    void *base;          /* struct the field offsets refer to */
    const char *display; /* "" or "entities[3]", put before key paths in messages */
    cfg_mark_t *marks;   /* per field: where the key was */
} cfg_walk_t;

/* wb_config.c: table-driven field handling. */

/* Sets every field of the table that has a default. Returns 0, or -1 when
 * out of memory (the defaults themselves are known to be valid). */
int wb_config_apply_defaults(const cfg_field_t *fields, size_t nfields, void *base);

/* Frees the string fields of base and sets them to NULL. */
void wb_config_free_fields(const cfg_field_t *fields, size_t nfields, void *base);

/* Sets field f of base from the scalar val (after ${VAR} expansion), or
 * records at key why it cannot; path is the key's path in messages. */
void wb_config_field_set(wb_yaml_ctx_t *ctx, const cfg_field_t *f, void *base,
                         const wb_yaml_node_t *key, const wb_yaml_node_t *val, const char *path);

/* wb_config_walk.c: matching YAML mappings against a table. */

/* Walks one mapping of the table's section ("" = top level): sets the
 * fields found, records where each key was in w->marks, and reports unknown,
 * duplicate and missing required keys. */
void wb_config_walk_mapping(cfg_walk_t *w, const wb_yaml_node_t *map, const char *section);

/* Sets kafka.properties name to a copy of value, replacing an earlier one.
 * Returns 0, or -1 when out of memory. */
int wb_config_props_set(wb_config_t *conf, const char *name, const char *value);

/* wb_config_print.c, the one list of secret setting names: whether a
 * kafka.properties value must be masked and never quoted, and whether a
 * libpq connection keyword carries a secret (password, sslpassword). */
bool wb_config_prop_is_secret(const char *name);
bool wb_config_pg_keyword_is_secret(const char *keyword);

/* wb_config_entity.c: the entities: sequence into w->conf->entities. */
void wb_config_walk_entities(cfg_walk_t *w, const wb_yaml_node_t *key, const wb_yaml_node_t *val,
                             const char *path);

/* wb_config_entity.c: frees ent's parsed columns (ent->map). */
void wb_config_entity_map_free(wb_entity_t *ent);

#endif /* WB_CONFIG_INT_H */
