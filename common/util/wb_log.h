/* wb_log.h — leveled one-line-per-event logging, to stderr or a caller's sink. */
#ifndef WB_LOG_H
#define WB_LOG_H

#include <stdarg.h>
#include <stdatomic.h>

/* The levels (wb_log_level_t) and the callback type (wb_log_fn) are the
 * public ones of wbcache.h: one definition for the library's callers and
 * for the daemons. */
#include "wbcache.h"

/* Longest line handed to a sink or written to stderr, newline included.
 * Kept at PIPE_BUF so one write(2) to a pipe is atomic. Longer messages are
 * cut and end with "...". */
#define WB_LOG_LINE_MAX 4096

/* A sink (wb_log_fn) receives one finished line:
 * "2026-11-28T16:40:01.123Z INFO  prog: msg", NUL-terminated, without
 * trailing newline, with no control characters; line is only valid during
 * the call. The process-wide sink's calls are serialized (one at a time,
 * from whichever thread logged); a scope's sink is called concurrently from
 * the threads in that scope. A sink must not call wb_log itself; if it
 * does, that nested line goes to stderr (process-wide) or is dropped
 * (scope). */

/* Sets the program name shown in every line (copied; at most 63 bytes).
 * NULL or "" gives "wbcache". Thread-safe. */
void wb_log_init(const char *progname);

/* Lines below level are dropped (default WB_LOG_INFO). This is the
 * process-wide level: it does not apply to a thread inside a scope.
 * Thread-safe. */
void wb_log_set_level(wb_log_level_t level);
wb_log_level_t wb_log_get_level(void);

/* "debug" | "info" | "warn" (or "warning") | "error", any case. Returns the
 * level, or -1 for anything else (NULL included). */
int wb_log_level_parse(const char *name);

/* "DEBUG", "INFO", "WARN", "ERROR"; "?" for an unknown level. */
const char *wb_log_level_name(int level);

/* Routes lines to sink (opaque is passed back) instead of stderr; NULL
 * restores stderr. This is the process-wide sink (the daemons use it): it
 * gets the lines of threads that are not inside a scope. Once this
 * returns, the previous sink is no longer called, so its opaque may be
 * freed. Thread-safe. */
void wb_log_set_sink(wb_log_fn sink, void *opaque);

/* A scope: where the lines logged by the threads that entered it go, with
 * its own level, instead of the process-wide sink and level. libwbcache
 * gives every client handle one and enters it at each public call and in
 * the handle's own threads, so two handles in one process each get their
 * own lines, the core modules' included, and the library never prints.
 * Plain struct so it can live inside its owner; touch it only through
 * these functions. It must outlive every thread inside it. */
typedef struct wb_log_scope_s {
    wb_log_fn sink; /* NULL: lines are dropped */
    void *opaque;
    atomic_int level;
} wb_log_scope_t;

/* Prepares scope: lines at level and above go to sink (NULL drops them). */
void wb_log_scope_init(wb_log_scope_t *scope, wb_log_fn sink, void *opaque, wb_log_level_t level);

/* Changes the scope's level, at once for every thread inside it.
 * Thread-safe. */
void wb_log_scope_set_level(wb_log_scope_t *scope, wb_log_level_t level);

/* Makes scope the calling thread's (NULL: the process-wide sink and level)
 * and returns the one it replaces; give that back to wb_log_scope_leave
 * before returning, so scopes nest (a loader callback that calls another
 * handle). Costs no lock. */
wb_log_scope_t *wb_log_scope_enter(wb_log_scope_t *scope);
void wb_log_scope_leave(wb_log_scope_t *prev);

/* Line formats. text: "2026-11-28T16:40:01.123Z INFO  prog: msg k=v".
 * json: one JSON object per line, {"time":"2026-11-28T16:40:01.123Z",
 * "level":"info","program":"prog","message":"msg","k":"v"} — the message
 * and field values as JSON strings (control characters escaped, a byte
 * that is not UTF-8 replaced by U+FFFD), cut with "..." to fit
 * WB_LOG_LINE_MAX and still one valid object. */
typedef enum wb_log_format_e {
    WB_LOG_FORMAT_TEXT = 0,
    WB_LOG_FORMAT_JSON = 1,
} wb_log_format_t;

/* Sets the process-wide line format (default text): the lines of the
 * process-wide sink or stderr and of every scope. Only programs call it (a
 * config's log.format); the library never does, so its callers keep text.
 * Thread-safe. */
void wb_log_set_format(wb_log_format_t format);
wb_log_format_t wb_log_get_format(void);

/* "text" | "json", any case -> the format, or -1 (NULL included). */
int wb_log_format_parse(const char *name);

/* A structured field of a line: name (a plain identifier; not time, level,
 * program or message) and value, both NUL-terminated. In text lines they
 * follow the message as name=value (value quoted when it has a space, a
 * quote or is empty); in JSON lines they are members of the object. */
typedef struct wb_log_field_s {
    const char *name;
    const char *value;
} wb_log_field_t;

/* As wb_log_write, with nfields fields (fields may be NULL when 0). */
void wb_log_write_fields(int level, const wb_log_field_t *fields, size_t nfields, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

/* Writes len bytes at src as the inside of a JSON string into dst (size >
 * 0, always NUL-terminated): '"' and '\\' escaped, \n \r \t \b \f, other
 * control bytes and DEL as \u00XX, a byte that does not start a well-formed
 * UTF-8 sequence as \ufffd; never splits an escape or a sequence. Stops
 * when the next piece does not fit, then sets *cut (may be NULL) to 1.
 * Returns the bytes written. Pure. */
size_t wb_log_json_escape(char *dst, size_t size, const void *src, size_t len, int *cut);

/* Builds one JSON line (without newline) into line (size > 0, always
 * NUL-terminated, valid JSON whenever size >= 128): time, level (lowercase),
 * program, message (msglen bytes; "..." appended when cut to fit) and the
 * fields. Returns its length. Pure. */
size_t wb_log_json_line(char *line, size_t size, const char *time, int level, const char *program,
                        const char *msg, size_t msglen, const wb_log_field_t *fields,
                        size_t nfields);

/* Non-zero if a line at level would be emitted on this thread (its scope's
 * level and sink, else the process-wide level). Use to skip costly work. */
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
