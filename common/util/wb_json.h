/* wb_json.h — strict RFC 8259 JSON validation, with the extra limits of a PostgreSQL jsonb column.
 */
#ifndef WB_JSON_H
#define WB_JSON_H

#include <stddef.h>

#include "wbcache.h"

/* Deepest nesting of arrays and objects accepted. RFC 8259 lets a parser
 * set one; PostgreSQL's own limit comes from max_stack_depth (at the
 * default 2 MB it accepts about 10000 levels), so this stays well below. */
#define WB_JSON_MAX_DEPTH 1000

/* Checks that len bytes at data are exactly one JSON text by RFC 8259 —
 * one value of any type (a bare scalar is fine), optional whitespace
 * (space, tab, CR, LF) around it, UTF-8 without a byte order mark, no
 * control characters inside strings, no trailing commas, no leading zeros,
 * no comments — that a PostgreSQL jsonb column also accepts:
 *   - no \u0000 escape (jsonb cannot store NUL);
 *   - no unpaired UTF-16 surrogate escape (\uD800 alone);
 *   - numbers within the range of PostgreSQL numeric (at most 131072
 *     digits before the decimal point and 16383 after it);
 *   - nesting at most WB_JSON_MAX_DEPTH.
 * Duplicate object keys are allowed (jsonb keeps the last).
 * Returns WB_OK, or WB_ERR_INVALID_ARG with one line in errstr such as
 * "byte 7: expected ':' after an object key, found '}'" (offsets count
 * from 0). data may be NULL when len is 0. Pure: no allocation, linear
 * time, no recursion, thread-safe. */
wb_err_t wb_json_check(const void *data, size_t len, char *errstr, size_t errstr_size);

#endif /* WB_JSON_H */
