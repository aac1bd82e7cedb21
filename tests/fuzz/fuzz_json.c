/* fuzz_json.c — libFuzzer target for the strict JSON validator (wb_json_check).
 *
 * Beyond "no crash, no sanitizer report" it checks properties that must hold
 * for every input:
 *   - a valid document is also valid UTF-8 without NUL bytes, so a jsonb
 *     value always passes the text check too;
 *   - whitespace around a valid document keeps it valid;
 *   - a valid document wrapped as [doc] is valid (unless that nests one
 *     level too deep), and as {"k":doc} likewise;
 *   - doc followed by a stray ']' is never valid;
 *   - the reported error offset lies within the input (0..len).
 * A violation aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_column.h"
#include "wb_json.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json: property violated: %s\n", what);
        abort();
    }
}

/* Nesting depth reached by a valid document (strings skipped). */
static size_t max_depth(const uint8_t *p, size_t n)
{
    size_t d = 0, m = 0;
    int in_str = 0;

    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (p[i] == '\\')
                i++;
            else if (p[i] == '"')
                in_str = 0;
        } else if (p[i] == '"') {
            in_str = 1;
        } else if (p[i] == '[' || p[i] == '{') {
            if (++d > m) m = d;
        } else if (p[i] == ']' || p[i] == '}') {
            d--;
        }
    }
    return m;
}

static int valid(const void *p, size_t n)
{
    return wb_json_check(p, n, NULL, 0) == WB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    uint8_t *buf;
    int ok;

    why[0] = '\0';
    ok = wb_json_check(data, size, why, sizeof(why)) == WB_OK;
    if (!ok) {
        size_t at = 0;
        check(sscanf(why, "byte %zu:", &at) == 1 && at <= size, "error offset within the input");
        return 0;
    }
    check(wb_column_check(WB_VT_TEXT, data, size, NULL, 0) == WB_OK, "valid JSON is valid text");
    check(wb_column_check(WB_VT_JSONB, data, size, NULL, 0) == WB_OK, "jsonb check agrees");

    if (!(buf = malloc(size + 8))) return 0;
    buf[0] = ' ';
    buf[1] = '\n';
    memcpy(buf + 2, data, size);
    buf[size + 2] = '\t';
    check(valid(buf, size + 3), "whitespace around a valid document");

    buf[0] = '[';
    memcpy(buf + 1, data, size);
    buf[size + 1] = ']';
    check(valid(buf, size + 2) == (max_depth(data, size) < WB_JSON_MAX_DEPTH), "[doc]");
    check(!valid(buf + 1, size + 1), "doc]");

    free(buf);
    if (!(buf = malloc(size + 8))) return 0;
    memcpy(buf, "{\"k\":", 5);
    memcpy(buf + 5, data, size);
    buf[size + 5] = '}';
    check(valid(buf, size + 6) == (max_depth(data, size) < WB_JSON_MAX_DEPTH), "{\"k\":doc}");
    free(buf);
    return 0;
}
