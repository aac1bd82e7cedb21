/* wb_utf8.h — strict UTF-8 validation (what a PostgreSQL UTF8 database accepts as text). */
#ifndef WB_UTF8_H
#define WB_UTF8_H

#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence at p, looking at no more
 * than n bytes (n >= 1), or 0 if it is malformed: a stray continuation
 * byte, a truncated sequence, an overlong form, a UTF-16 surrogate
 * (U+D800..U+DFFF) or a code point above U+10FFFF. NUL is a valid 1-byte
 * sequence. Pure. */
size_t wb_utf8_seq(const unsigned char *p, size_t n);

/* 1 if all len bytes at s are well-formed UTF-8 (see wb_utf8_seq), else 0
 * with the offset of the first bad sequence in *bad (may be NULL). s may be
 * NULL when len is 0. Pure. */
int wb_utf8_valid(const void *s, size_t len, size_t *bad);

#endif /* WB_UTF8_H */
