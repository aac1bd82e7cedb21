/* wb_log.h — leveled one-line-per-event logging, to stderr or a caller's sink. */
#ifndef WB_LOG_H
#define WB_LOG_H

#include <stdarg.h>

typedef enum wb_log_level_e {
    WB_LOG_DEBUG = 0,
    WB_LOG_INFO = 1,
    WB_LOG_WARN = 2,
    WB_LOG_ERROR = 3,
} wb_log_level_t;

/* Longest line handed to a sink or written to stderr, newline included.
 * Kept at PIPE_BUF so one write(2) to a pipe is atomic. Longer messages are
 * cut and end with "...". */
#define WB_LOG_LINE_MAX 4096

/* Receives one finished line: "2026-11-28T16:40:01.123Z INFO  prog: msg",
 * NUL-terminated, without trailing newline, with no control characters.
 * line is only valid during the call. Calls are serialized (one at a time,
 * from whichever thread logged). The sink must not call wb_log itself; if it
 * does, that nested line goes to stderr. */
typedef void (*wb_log_sink_t)(int level, const char *line, void *opaque);

/* Sets the program name shown in every line (copied; at most 63 bytes).
 * NULL or "" gives "wbcache". Thread-safe. */
void wb_log_init(const char *progname);

/* Lines below level are dropped (default WB_LOG_INFO). Thread-safe. */
void wb_log_set_level(wb_log_level_t level);
wb_log_level_t wb_log_get_level(void);

/* "debug" | "info" | "warn" (or "warning") | "error", any case. Returns the
 * level, or -1 for anything else (NULL included). */
int wb_log_level_parse(const char *name);

/* "DEBUG", "INFO", "WARN", "ERROR"; "?" for an unknown level. */
const char *wb_log_level_name(int level);

/* Routes lines to sink (opaque is passed back) instead of stderr; NULL
 * restores stderr. The process has one sink: libwbcache installs the
 * application's callback here so the library itself never prints. Once this
 * returns, the previous sink is no longer called, so its opaque may be
 * freed. Thread-safe. */
void wb_log_set_sink(wb_log_sink_t sink, void *opaque);

/* Non-zero if a line at level would be emitted (use to skip costly work). */
int wb_log_enabled(int level);

/* Formats and emits one line at level if enabled. Newlines and other control
 * characters in the message are escaped (\n, \xHH) so a line stays a line.
 * Thread-safe; preserves errno. Prefer the WB_* macros. */
void wb_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wb_log_vwrite(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* The arguments are not evaluated when the level is disabled. */
#define WB_LOG_AT(level, ...)                                                                      \
    do {                                                                                           \
        if (wb_log_enabled(level)) wb_log_write((level), __VA_ARGS__);                             \
    } while (0)
#define WB_DEBUG(...) WB_LOG_AT(WB_LOG_DEBUG, __VA_ARGS__)
#define WB_INFO(...)  WB_LOG_AT(WB_LOG_INFO, __VA_ARGS__)
#define WB_WARN(...)  WB_LOG_AT(WB_LOG_WARN, __VA_ARGS__)
#define WB_ERROR(...) WB_LOG_AT(WB_LOG_ERROR, __VA_ARGS__)

#endif /* WB_LOG_H */
