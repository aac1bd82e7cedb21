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
