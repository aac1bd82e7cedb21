/* wb_util.h — small shared helpers: clocks, error text, strings, strict number parsing. */
#ifndef WB_UTIL_H
#define WB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Clocks. mono_* never jump (use for timeouts and intervals); real_* is wall
 * time since the Unix epoch (use for timestamps that leave the process). */
int64_t wb_time_mono_ms(void);
int64_t wb_time_mono_us(void);
int64_t wb_time_real_ms(void);
int64_t wb_time_real_us(void);
/* The CLOCK_MONOTONIC time ms (>= 0) from now, for pthread_cond_timedwait
 * on a cond whose clock is CLOCK_MONOTONIC. */
struct timespec wb_time_mono_deadline(int64_t ms);

/* Formats into the caller's errstr like snprintf (truncating). errstr may be
 * NULL or size 0, then nothing is written. errno is preserved, so this may be
 * called between a failing syscall and the code that inspects errno. */
void wb_set_err(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* strdup that returns NULL for NULL (and on allocation failure); the caller
 * owns the result. */
char *wb_strdup(const char *s);

/* Escape flags for wb_escape. Control bytes (< 0x20, 0x7f) are always
 * escaped, as \n \r \t or \xHH. */
#define WB_ESC_QUOTE 0x1 /* also escape '"' and '\\' (for text shown in quotes) */
#define WB_ESC_HIGH  0x2 /* also escape bytes >= 0x80 (binary input, not UTF-8) */

/* Writes a printable, NUL-terminated rendering of len bytes at src into dst
 * (size > 0). Never splits an escape sequence; if the output does not fit it
 * is cut short and ends with "...". Returns the number of bytes of src that
 * were rendered (len when everything fitted). src may be NULL when len is 0. */
size_t wb_escape(char *dst, size_t size, const void *src, size_t len, int flags);

/* Parses exactly len bytes at s as a canonical non-negative decimal: digits
 * only (no sign, spaces or leading zeros except "0" itself), at most
 * INT64_MAX. Returns 0 and sets *out, or one of the WB_PARSE_* codes. */
#define WB_PARSE_SYNTAX  (-1) /* empty, or a byte that is not 0-9 */
#define WB_PARSE_ZEROPAD (-2) /* leading zero */
#define WB_PARSE_RANGE   (-3) /* above INT64_MAX */
int wb_parse_i64(const char *s, size_t len, int64_t *out);

/* A seed for PRNGs that must differ between processes (getrandom, falling
 * back to time and pid). Thread-safe. */
uint64_t wb_random_seed(void);

#endif /* WB_UTIL_H */
