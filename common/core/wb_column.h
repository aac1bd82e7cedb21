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

#endif /* WB_COLUMN_H */
