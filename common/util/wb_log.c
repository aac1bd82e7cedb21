/* wb_log.c — leveled one-line-per-event logging, to stderr or a caller's sink. */
#include "wb_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wb_utf8.h"
#include "wb_util.h"

/* Raw message buffer before escaping; bigger than a line so that a cut
 * message still fills the line after escaping. */
#define MSG_MAX WB_LOG_LINE_MAX

static atomic_int g_level = WB_LOG_INFO;
static atomic_int g_format = WB_LOG_FORMAT_TEXT;

/* g_lock guards the program name and the sink, and is held while a sink
 * runs so wb_log_set_sink can promise the old sink is no longer in use. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_progname[64] = "wbcache";
static wb_log_fn g_sink;
static void *g_sink_opaque;

/* Set while this thread runs the sink, to divert re-entrant logging. */
static _Thread_local int t_in_sink;

/* The scope this thread is in; NULL: the process-wide sink and level. */
static _Thread_local wb_log_scope_t *t_scope;

void wb_log_init(const char *progname)
{
    pthread_mutex_lock(&g_lock);
    snprintf(g_progname, sizeof(g_progname), "%s", progname && *progname ? progname : "wbcache");
    pthread_mutex_unlock(&g_lock);
}

void wb_log_set_level(wb_log_level_t level)
{
    atomic_store(&g_level, (int)level);
}

wb_log_level_t wb_log_get_level(void)
{
    return (wb_log_level_t)atomic_load(&g_level);
}

int wb_log_level_parse(const char *name)
{
    if (!name) return -1;
    if (!strcasecmp(name, "debug")) return WB_LOG_DEBUG;
    if (!strcasecmp(name, "info")) return WB_LOG_INFO;
    if (!strcasecmp(name, "warn") || !strcasecmp(name, "warning")) return WB_LOG_WARN;
    if (!strcasecmp(name, "error")) return WB_LOG_ERROR;
    return -1;
}

const char *wb_log_level_name(int level)
{
    switch (level) {
    case WB_LOG_DEBUG:
        return "DEBUG";
    case WB_LOG_INFO:
        return "INFO";
    case WB_LOG_WARN:
        return "WARN";
    case WB_LOG_ERROR:
        return "ERROR";
    }
    return "?";
}

void wb_log_set_format(wb_log_format_t format)
{
    atomic_store(&g_format, (int)format);
}

wb_log_format_t wb_log_get_format(void)
{
    return (wb_log_format_t)atomic_load(&g_format);
}

int wb_log_format_parse(const char *name)
{
    if (!name) return -1;
    if (!strcasecmp(name, "text")) return WB_LOG_FORMAT_TEXT;
    if (!strcasecmp(name, "json")) return WB_LOG_FORMAT_JSON;
    return -1;
}

void wb_log_set_sink(wb_log_fn sink, void *opaque)
{
    pthread_mutex_lock(&g_lock);
    g_sink = sink;
    g_sink_opaque = sink ? opaque : NULL;
    pthread_mutex_unlock(&g_lock);
}

void wb_log_scope_init(wb_log_scope_t *scope, wb_log_fn sink, void *opaque, wb_log_level_t level)
{
    scope->sink = sink;
    scope->opaque = sink ? opaque : NULL;
    atomic_init(&scope->level, (int)level);
}

void wb_log_scope_set_level(wb_log_scope_t *scope, wb_log_level_t level)
{
    atomic_store(&scope->level, (int)level);
}

wb_log_scope_t *wb_log_scope_enter(wb_log_scope_t *scope)
{
    wb_log_scope_t *prev = t_scope;

    t_scope = scope;
    return prev;
}

void wb_log_scope_leave(wb_log_scope_t *prev)
{
    t_scope = prev;
}

int wb_log_enabled(int level)
{
    wb_log_scope_t *scope = t_scope;

    if (scope) return scope->sink && level >= atomic_load(&scope->level);
    return level >= atomic_load(&g_level);
}

/* One write(2) per line; retried only for the unwritten tail (EINTR or a
 * short write), which is as close to atomic as stderr allows. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

size_t wb_log_json_escape(char *dst, size_t size, const void *src, size_t len, int *cut)
{
    const unsigned char *p = src;
    size_t o = 0, i = 0;

    if (cut) *cut = 0;
    while (i < len) {
        unsigned char c = p[i];
        char esc[8];
        const char *piece = esc;
        size_t plen = 2, adv = 1;

        esc[0] = '\\';
        if (c == '"' || c == '\\')
            esc[1] = (char)c;
        else if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c == '\b')
            esc[1] = 'b';
        else if (c == '\f')
            esc[1] = 'f';
        else if (c < 0x20 || c == 0x7f)
            plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        else if (c < 0x80)
            esc[0] = (char)c, plen = 1;
        else if ((adv = wb_utf8_seq(p + i, len - i)) > 0)
            piece = (const char *)p + i, plen = adv;
        else
            piece = "\\ufffd", plen = 6, adv = 1;
        if (o + plen >= size) {
            if (cut) *cut = 1;
            break;
        }
        memcpy(dst + o, piece, plen);
        o += plen;
        i += adv;
    }
    dst[o] = '\0';
    return o;
}

/* Appends the C string s to line at *o if it fits (with the NUL). */
static int put(char *line, size_t size, size_t *o, const char *s)
{
    size_t n = strlen(s);

    if (*o + n >= size) return 0;
    memcpy(line + *o, s, n + 1);
    *o += n;
    return 1;
}

/* Appends "s" JSON-escaped, whole or not at all. */
static int put_json_string(char *line, size_t size, size_t *o, const char *s)
{
    size_t start = *o;
    int cut = 0;

    if (!put(line, size, o, "\"")) return 0;
    *o += wb_log_json_escape(line + *o, size - *o, s, strlen(s), &cut);
    if (cut || !put(line, size, o, "\"")) {
        *o = start;
        line[start] = '\0';
        return 0;
    }
    return 1;
}

static const char *json_level(int level)
{
    switch (level) {
    case WB_LOG_DEBUG:
        return "debug";
    case WB_LOG_INFO:
        return "info";
    case WB_LOG_WARN:
        return "warn";
    case WB_LOG_ERROR:
        return "error";
    }
    return "?";
}

size_t wb_log_json_line(char *line, size_t size, const char *time, int level, const char *program,
                        const char *msg, size_t msglen, const wb_log_field_t *fields,
                        size_t nfields)
{
    /* The fields go into a tail of their own (at most a quarter of the
     * line, whole fields only), so that a long message is cut, not them. */
    char tail[WB_LOG_LINE_MAX / 4];
    size_t o = 0, t = 0, room;
    int cut = 0;

    tail[0] = '\0';
    for (size_t i = 0; i < nfields; i++) {
        size_t mark = t;
        if (!fields[i].name || !fields[i].value || !put(tail, sizeof(tail), &t, ",") ||
            !put_json_string(tail, sizeof(tail), &t, fields[i].name) ||
            !put(tail, sizeof(tail), &t, ":") ||
            !put_json_string(tail, sizeof(tail), &t, fields[i].value)) {
            t = mark;
            tail[t] = '\0';
        }
    }
    if (size / 4 < t) { /* a small line: no fields */
        t = 0;
        tail[0] = '\0';
    }
    line[0] = '\0';
    if (!put(line, size, &o, "{\"time\":") || !put_json_string(line, size, &o, time) ||
        !put(line, size, &o, ",\"level\":\"") || !put(line, size, &o, json_level(level)) ||
        !put(line, size, &o, "\",\"program\":") || !put_json_string(line, size, &o, program) ||
        !put(line, size, &o, ",\"message\":\"")) {
        snprintf(line, size, "{}");
        return strlen(line);
    }
    /* Room for the message: what is left after the tail, the closing "}
     * and a "..." for a cut message. */
    room = size - o;
    room = room > t + 6 ? room - t - 5 : 1;
    o += wb_log_json_escape(line + o, room, msg, msglen, &cut);
    if (cut) put(line, size, &o, "...");
    put(line, size, &o, "\"");
    put(line, size, &o, tail);
    put(line, size, &o, "}");
    return o;
}

/* The text form of the fields: " name=value", value quoted when it has a
 * space or a quote or is empty; whole fields only. */
static size_t text_fields(char *line, size_t size, const wb_log_field_t *fields, size_t nfields)
{
    size_t o = 0;

    line[0] = '\0';
    for (size_t i = 0; i < nfields; i++) {
        char buf[512];
        size_t mark = o;
        const char *v = fields[i].value;
        int quote;

        if (!fields[i].name || !v) continue;
        quote = !*v || strpbrk(v, " \"") != NULL;
        wb_escape(buf, sizeof(buf), v, strlen(v), quote ? WB_ESC_QUOTE : 0);
        if (!put(line, size, &o, " ") || !put(line, size, &o, fields[i].name) ||
            !put(line, size, &o, quote ? "=\"" : "=") || !put(line, size, &o, buf) ||
            (quote && !put(line, size, &o, "\""))) {
            o = mark;
            line[o] = '\0';
            break;
        }
    }
    return o;
}

/* One finished line (no newline) of the process-wide format into line. */
static size_t format_line(char *line, size_t size, int level, const char *progname, const char *msg,
                          size_t msglen, const wb_log_field_t *fields, size_t nfields)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32], stamp_ms[64], tail[WB_LOG_LINE_MAX / 4];
    size_t len, tlen;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp_ms, sizeof(stamp_ms), "%s.%03dZ", stamp, (int)(ts.tv_nsec / 1000000) % 1000);
    if (atomic_load(&g_format) == WB_LOG_FORMAT_JSON)
        return wb_log_json_line(line, size, stamp_ms, level, progname, msg, msglen, fields,
                                nfields);
    n = snprintf(line, size, "%s %-5s %s: ", stamp_ms, wb_log_level_name(level), progname);
    len = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
    tlen = text_fields(tail, sizeof(tail), fields, nfields);
    if (tlen + len + 8 > size) tlen = 0;
    wb_escape(line + len, size - len - tlen, msg, msglen, 0);
    len += strlen(line + len);
    if (tlen) memcpy(line + len, tail, tlen + 1), len += tlen;
    return len;
}

static void log_emit(int level, const wb_log_field_t *fields, size_t nfields, const char *fmt,
                     va_list ap)
{
    int saved = errno;
    char msg[MSG_MAX];
    char line[WB_LOG_LINE_MAX];
    size_t len, msglen;
    int n, nested = t_in_sink;

    if (!wb_log_enabled(level)) return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        msglen = 0;
    } else if ((size_t)n >= sizeof(msg)) {
        msglen = sizeof(msg) - 1;
        memcpy(msg + msglen - 3, "...", 3);
    } else {
        msglen = (size_t)n;
    }

    if (t_scope) {
        wb_log_scope_t *scope = t_scope;

        /* A scope's sink runs without g_lock (threads of one scope log at
         * once); a line it logs itself is dropped, never printed. */
        if (nested) goto out;
        pthread_mutex_lock(&g_lock);
        char prog[sizeof(g_progname)];
        memcpy(prog, g_progname, sizeof(prog));
        pthread_mutex_unlock(&g_lock);
        format_line(line, sizeof(line), level, prog, msg, msglen, fields, nfields);
        t_in_sink = 1;
        scope->sink((wb_log_level_t)level, line, scope->opaque);
        t_in_sink = 0;
        goto out;
    }
    /* A sink that logs already holds g_lock on this thread (and so may read
     * g_progname); its line bypasses the sink and goes to stderr. */
    if (!nested) pthread_mutex_lock(&g_lock);
    /* Leave one byte for the newline the stderr path appends. */
    len = format_line(line, sizeof(line) - 1, level, g_progname, msg, msglen, fields, nfields);
    if (g_sink && !nested) {
        t_in_sink = 1;
        g_sink((wb_log_level_t)level, line, g_sink_opaque);
        t_in_sink = 0;
        pthread_mutex_unlock(&g_lock);
    } else {
        if (!nested) pthread_mutex_unlock(&g_lock);
        line[len++] = '\n';
        write_all(STDERR_FILENO, line, len);
    }
out:
    errno = saved;
}

void wb_log_vwrite(int level, const char *fmt, va_list ap)
{
    log_emit(level, NULL, 0, fmt, ap);
}

void wb_log_write_fields(int level, const wb_log_field_t *fields, size_t nfields, const char *fmt,
                         ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, fields, nfields, fmt, ap);
    va_end(ap);
}

void wb_log_write(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    wb_log_vwrite(level, fmt, ap);
    va_end(ap);
}
