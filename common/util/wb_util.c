/* wb_util.c — small shared helpers: clocks, error text, strings, strict number parsing. */
#include "wb_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t wb_time_mono_ms(void)
{
    return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t wb_time_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

struct timespec wb_time_mono_deadline(int64_t ms)
{
    struct timespec ts;

    if (ms < 0) ms = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int64_t wb_time_real_ms(void)
{
    return clock_us(CLOCK_REALTIME) / 1000;
}

int64_t wb_time_real_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

void wb_set_err(char *errstr, size_t size, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (errstr && size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, size, fmt, ap);
        va_end(ap);
    }
    errno = saved;
}

char *wb_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

size_t wb_escape(char *dst, size_t size, const void *src, size_t len, int flags)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = src;
    size_t o = 0, i;

    if (size == 0) return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = p[i];
        char esc[4];
        size_t n = 0;

        if (c == '\n') {
            esc[n++] = '\\', esc[n++] = 'n';
        } else if (c == '\r') {
            esc[n++] = '\\', esc[n++] = 'r';
        } else if (c == '\t') {
            esc[n++] = '\\', esc[n++] = 't';
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && (flags & WB_ESC_HIGH))) {
            esc[n++] = '\\', esc[n++] = 'x', esc[n++] = hex[c >> 4], esc[n++] = hex[c & 0xf];
        } else if ((c == '"' || c == '\\') && (flags & WB_ESC_QUOTE)) {
            esc[n++] = '\\', esc[n++] = (char)c;
        } else {
            esc[n++] = (char)c;
        }
        /* Keep room for "..." unless this is the last byte and it fits. */
        if (o + n + (i + 1 < len ? 3 : 0) >= size) break;
        memcpy(dst + o, esc, n);
        o += n;
    }
    if (i < len) {
        size_t k;

        for (k = 0; k < 3 && o + 1 < size; k++)
            dst[o++] = '.';
    }
    dst[o] = '\0';
    return i;
}

int wb_parse_i64(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    size_t i;

    if (!s || len == 0) return WB_PARSE_SYNTAX;
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return WB_PARSE_SYNTAX;
    if (s[0] == '0' && len > 1) return WB_PARSE_ZEROPAD;
    for (i = 0; i < len; i++) {
        int d = s[i] - '0';

        if (v > (INT64_MAX - d) / 10) return WB_PARSE_RANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

uint64_t wb_random_seed(void)
{
    uint64_t seed;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed)) return seed;
    return (uint64_t)clock_us(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32) ^
           (uint64_t)clock_us(CLOCK_MONOTONIC);
}
