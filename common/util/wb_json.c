/* wb_json.c — strict RFC 8259 JSON validation, with the extra limits of a PostgreSQL jsonb column.
 *
 * One pass over the bytes with an explicit stack of open containers (no
 * recursion, so a hostile document cannot exhaust the C stack). Numbers are
 * checked against the rules of PostgreSQL's numeric input, which jsonb uses
 * for every number: |exponent| < INT_MAX / 2, display scale (digits after
 * the point, minus the exponent) <= 16383, and for a non-zero value the
 * decimal weight of its first significant digit <= 131071 (numeric keeps a
 * 16-bit weight in base-10000 digits).
 */
#include "wb_json.h"

#include <stdint.h>

#include "wb_utf8.h"
#include "wb_util.h"

#define NUMERIC_DSCALE_MAX   16383
#define NUMERIC_WEIGHT_MAX   131071     /* decimal: 4 * 32767 + 3 */
#define NUMERIC_EXPONENT_LIM 1073741823 /* INT_MAX / 2 */

#define STR_(x) #x
#define STR(x)  STR_(x)

typedef struct jp_s {
    const unsigned char *p;
    size_t n;
    size_t i;
    char *errstr;
    size_t errstr_size;
} jp_t;

static wb_err_t fail_at(jp_t *j, size_t at, const char *what)
{
    if (at >= j->n)
        wb_set_err(j->errstr, j->errstr_size, "byte %zu: %s, found the end of the value", at, what);
    else if (j->p[at] > 0x20 && j->p[at] < 0x7f)
        wb_set_err(j->errstr, j->errstr_size, "byte %zu: %s, found '%c'", at, what, j->p[at]);
    else
        wb_set_err(j->errstr, j->errstr_size, "byte %zu: %s, found byte 0x%02x", at, what,
                   j->p[at]);
    return WB_ERR_INVALID_ARG;
}

/* A complete message that needs no "found ..." part. */
static wb_err_t fail_msg(jp_t *j, size_t at, const char *what)
{
    wb_set_err(j->errstr, j->errstr_size, "byte %zu: %s", at, what);
    return WB_ERR_INVALID_ARG;
}

static void skip_ws(jp_t *j)
{
    while (j->i < j->n &&
           (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r'))
        j->i++;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at j->p[at..at+4), or -1. */
static long hex4(const jp_t *j, size_t at)
{
    long v = 0;

    if (at > j->n || j->n - at < 4) return -1;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(j->p[at + k]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* A string; j->i is at the opening quote. */
static wb_err_t string(jp_t *j)
{
    size_t start = j->i++;

    for (;;) {
        if (j->i >= j->n) return fail_msg(j, start, "string is not terminated");
        unsigned char c = j->p[j->i];
        if (c == '"') {
            j->i++;
            return WB_OK;
        }
        if (c < 0x20) return fail_at(j, j->i, "a control character in a string must be escaped");
        if (c >= 0x80) {
            size_t step = wb_utf8_seq(j->p + j->i, j->n - j->i);
            if (step == 0) return fail_msg(j, j->i, "invalid UTF-8 in a string");
            j->i += step;
            continue;
        }
        if (c != '\\') {
            j->i++;
            continue;
        }
        size_t esc = j->i;
        if (j->i + 1 >= j->n) return fail_at(j, j->i + 1, "expected an escape character");
        c = j->p[j->i + 1];
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
            c == 't') {
            j->i += 2;
            continue;
        }
        if (c != 'u') return fail_at(j, j->i + 1, "invalid escape");
        long u = hex4(j, j->i + 2);
        if (u < 0) return fail_msg(j, esc, "\\u must be followed by 4 hex digits");
        j->i += 6;
        if (u == 0) return fail_msg(j, esc, "\\u0000 is not allowed (jsonb cannot store NUL)");
        if (u >= 0xdc00 && u <= 0xdfff)
            return fail_msg(j, esc, "unpaired UTF-16 low surrogate escape");
        if (u >= 0xd800 && u <= 0xdbff) {
            long lo = j->i + 1 < j->n && j->p[j->i] == '\\' && j->p[j->i + 1] == 'u'
                          ? hex4(j, j->i + 2)
                          : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return fail_msg(j, esc, "unpaired UTF-16 high surrogate escape");
            j->i += 6;
        }
    }
}

static int is_digit(const jp_t *j, size_t at)
{
    return at < j->n && j->p[at] >= '0' && j->p[at] <= '9';
}

/* A number; j->i is at '-' or a digit. */
static wb_err_t number(jp_t *j)
{
    size_t start = j->i;
    int64_t ndigits = 0, nfrac = 0, lead = 0, exponent = 0;
    int nonzero = 0;

    if (j->p[j->i] == '-') j->i++;
    if (!is_digit(j, j->i)) return fail_at(j, j->i, "expected a digit");
    if (j->p[j->i] == '0' && is_digit(j, j->i + 1))
        return fail_msg(j, j->i, "a number must not have a leading zero");
    /* lead: decimal weight of the first non-zero digit, counted from the
     * start of the integer part (fixed up once its length is known). */
    for (; is_digit(j, j->i); j->i++, ndigits++)
        if (!nonzero && j->p[j->i] != '0') nonzero = 1, lead = -ndigits;
    if (nonzero) lead += ndigits - 1;
    if (j->i < j->n && j->p[j->i] == '.') {
        j->i++;
        if (!is_digit(j, j->i)) return fail_at(j, j->i, "expected a digit after the decimal point");
        for (; is_digit(j, j->i); j->i++) {
            nfrac++;
            if (!nonzero && j->p[j->i] != '0') nonzero = 1, lead = -nfrac;
        }
    }
    if (j->i < j->n && (j->p[j->i] == 'e' || j->p[j->i] == 'E')) {
        int neg = 0;
        j->i++;
        if (j->i < j->n && (j->p[j->i] == '+' || j->p[j->i] == '-')) neg = j->p[j->i++] == '-';
        if (!is_digit(j, j->i)) return fail_at(j, j->i, "expected a digit in the exponent");
        for (; is_digit(j, j->i); j->i++)
            if (exponent < NUMERIC_EXPONENT_LIM) exponent = exponent * 10 + (j->p[j->i] - '0');
        if (neg) exponent = -exponent;
    }
    /* PostgreSQL numeric's limits (jsonb stores every number as numeric). */
    if (exponent >= NUMERIC_EXPONENT_LIM || exponent <= -NUMERIC_EXPONENT_LIM ||
        nfrac - exponent > NUMERIC_DSCALE_MAX || (nonzero && lead + exponent > NUMERIC_WEIGHT_MAX))
        return fail_msg(j, start, "number is out of the range of PostgreSQL numeric");
    return WB_OK;
}

/* true, false or null. */
static wb_err_t literal(jp_t *j)
{
    static const char *const words[] = {"true", "false", "null"};

    for (size_t w = 0; w < 3; w++) {
        const char *s = words[w];
        size_t k = 0;
        while (s[k] && j->i + k < j->n && j->p[j->i + k] == (unsigned char)s[k])
            k++;
        if (!s[k]) {
            j->i += k;
            return WB_OK;
        }
    }
    return fail_at(j, j->i, "expected a value");
}

wb_err_t wb_json_check(const void *data, size_t len, char *errstr, size_t errstr_size)
{
    unsigned char stack[WB_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
    size_t depth = 0;
    jp_t j = {data, len, 0, errstr, errstr_size};
    wb_err_t err;

    if (!data && len > 0) {
        wb_set_err(errstr, errstr_size, "no data");
        return WB_ERR_INVALID_ARG;
    }
    if (len >= 3 && j.p[0] == 0xef && j.p[1] == 0xbb && j.p[2] == 0xbf)
        return fail_msg(&j, 0, "a byte order mark is not allowed");

value:
    skip_ws(&j);
    if (j.i >= j.n) return fail_at(&j, j.i, "expected a value");
    switch (j.p[j.i]) {
    case '{':
    case '[':
        if (depth == WB_JSON_MAX_DEPTH)
            return fail_msg(&j, j.i, "nested deeper than " STR(WB_JSON_MAX_DEPTH) " levels");
        stack[depth++] = j.p[j.i++];
        skip_ws(&j);
        if (j.i < j.n && j.p[j.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            j.i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{') goto key;
        goto value;
    case '"':
        err = string(&j);
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        err = number(&j);
        break;
    default:
        err = literal(&j);
        break;
    }
    if (err != WB_OK) return err;

after:
    skip_ws(&j);
    if (depth == 0) {
        if (j.i < j.n) return fail_at(&j, j.i, "expected the end after the value");
        return WB_OK;
    }
    if (j.i < j.n && j.p[j.i] == ',') {
        j.i++;
        if (stack[depth - 1] == '[') goto value;
        skip_ws(&j);
        goto key;
    }
    if (j.i < j.n && j.p[j.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        j.i++;
        depth--;
        goto after;
    }
    return fail_at(&j, j.i,
                   stack[depth - 1] == '{' ? "expected ',' or '}' after an object member"
                                           : "expected ',' or ']' after an array element");

key:
    if (j.i >= j.n || j.p[j.i] != '"') return fail_at(&j, j.i, "expected a string as object key");
    if ((err = string(&j)) != WB_OK) return err;
    skip_ws(&j);
    if (j.i >= j.n || j.p[j.i] != ':') return fail_at(&j, j.i, "expected ':' after an object key");
    j.i++;
    goto value;
}
