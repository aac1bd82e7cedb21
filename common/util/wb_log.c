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

#include "wb_util.h"

/* Raw message buffer before escaping; bigger than a line so that a cut
 * message still fills the line after escaping. */
#define MSG_MAX WB_LOG_LINE_MAX

static atomic_int g_level = WB_LOG_INFO;

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

static size_t format_prefix(char *line, size_t size, int level, const char *progname)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, size, "%s.%03ldZ %-5s %s: ", stamp, ts.tv_nsec / 1000000,
                 wb_log_level_name(level), progname);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

void wb_log_vwrite(int level, const char *fmt, va_list ap)
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
        len = format_prefix(line, sizeof(line), level, g_progname);
        pthread_mutex_unlock(&g_lock);
        wb_escape(line + len, sizeof(line) - len, msg, msglen, 0);
        t_in_sink = 1;
        scope->sink((wb_log_level_t)level, line, scope->opaque);
        t_in_sink = 0;
        goto out;
    }
    /* A sink that logs already holds g_lock on this thread (and so may read
     * g_progname); its line bypasses the sink and goes to stderr. */
    if (!nested) pthread_mutex_lock(&g_lock);
    len = format_prefix(line, sizeof(line), level, g_progname);
    /* Leave one byte for the newline the stderr path appends. */
    wb_escape(line + len, sizeof(line) - 1 - len, msg, msglen, 0);
    len += strlen(line + len);
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

void wb_log_write(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    wb_log_vwrite(level, fmt, ap);
    va_end(ap);
}
