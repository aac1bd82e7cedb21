/* wb_utf8.c — strict UTF-8 validation (what a PostgreSQL UTF8 database accepts as text). */
#include "wb_utf8.h"

size_t wb_utf8_seq(const unsigned char *p, size_t n)
{
    size_t len, i;
    unsigned cp;

    if (p[0] < 0x80) return 1;
    /* 0xc0, 0xc1 could only start overlong 2-byte forms; 0xf5.. only code
     * points above U+10FFFF. */
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int wb_utf8_valid(const void *s, size_t len, size_t *bad)
{
    const unsigned char *p = s;
    size_t i = 0, step;

    while (i < len) {
        /* ASCII runs are the common case: no decoding needed. */
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        step = wb_utf8_seq(p + i, len - i);
        if (step == 0) {
            if (bad) *bad = i;
            return 0;
        }
        i += step;
    }
    return 1;
}
