/* wb_column.h — whether a value can be stored in its entity's PostgreSQL value column. */
#ifndef WB_COLUMN_H
#define WB_COLUMN_H

#include <stddef.h>

#include "wb_config.h"

/* Checks len bytes at data against the column type vt (entities[].value_type),
 * so a value PostgreSQL would refuse is refused before it is written
 * anywhere instead of reaching the flusher as poison:
 *   text  — valid UTF-8 (the database encoding is UTF8) and no NUL byte
 *           (PostgreSQL text cannot hold one);
 *   jsonb — wb_json_check (strict RFC 8259 plus jsonb's own limits);
 *   bytea — anything.
 * Returns WB_OK, or WB_ERR_INVALID_ARG with one line in errstr naming the
 * type, the byte offset and what is wrong. data may be NULL when len is 0.
 * Pure, thread-safe. */
wb_err_t wb_column_check(wb_value_type_t vt, const void *data, size_t len, char *errstr,
                         size_t errstr_size);

/* The value of a mapped entity (WB_ENTITY_MAPPED) at put: valid JSON for a
 * jsonb column, a JSON object, and every top-level field one of
 * entities[].columns (a field not mapped is refused rather than dropped:
 * it would be lost at the next read from the table). Whether a field's
 * value fits its column's type is PostgreSQL's to say (the flusher
 * dead-letters a row it refuses, naming the column). Returns WB_OK or
 * WB_ERR_INVALID_ARG with the field named in errstr. Pure, thread-safe. */
wb_err_t wb_column_check_mapped(const wb_entity_t *ent, const void *data, size_t len, char *errstr,
                                size_t errstr_size);

/* The id (NUL-terminated) of a mapped entity: with key_type bigint an
 * integer in canonical form ("42", "-7"; not "042", "+1", "1e3"), with
 * uuid a lowercase hyphenated uuid, so the cache key and the row's key
 * read back as text are the same string. WB_OK for text keys and blob
 * entities. Returns WB_OK or WB_ERR_INVALID_ARG (errstr). Pure. */
wb_err_t wb_column_check_id(const wb_entity_t *ent, const char *id, char *errstr,
                            size_t errstr_size);

#endif /* WB_COLUMN_H */
