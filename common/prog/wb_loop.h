/* wb_loop.h — the daemons' skeleton: stop signals, backoff wait, timers, drain. */
#ifndef WB_LOOP_H
#define WB_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "wb_backoff.h"
#include "wbcache.h"

/* ---- stop signals ---- */

/* Installs SIGINT/SIGTERM handlers that only count signals into a
 * volatile sig_atomic_t: the first asks for a graceful stop, the second
 * exits at once with status 1. SIGPIPE is ignored. */
void wb_loop_signals(void);
/* Number of stop signals received so far (0 while running). Any thread. */
int wb_loop_stopping(void);

/* ---- waiting ---- */

/* Sleeps ms milliseconds in short steps. Returns 0 when the time passed,
 * 1 at once when a stop was requested (before or while waiting). */
int wb_loop_wait(int64_t ms);

/* One attempt to reach what the daemon needs before it is ready: WB_OK,
 * WB_ERR_CONFIG (fatal: retrying cannot help) or another error (retried).
 * errstr says why. */
typedef wb_err_t wb_loop_try_fn(void *arg, char *errstr, size_t errstr_size);

/* Calls attempt(arg) until it succeeds, waiting backoff (reset on
 * success) between attempts and logging each failure ("...; retrying in N
 * ms"). Returns 0 on success, 1 when a stop was requested while waiting,
 * -1 when attempt returned WB_ERR_CONFIG (its reason in errstr; the caller
 * logs it). */
int wb_loop_connect(wb_backoff_t *backoff, wb_loop_try_fn *attempt, void *arg, char *errstr,
                    size_t errstr_size);

/* ---- periodic tasks ---- */

/* A periodic task: runs when due (polling thread) and returns the delay in
 * ms until its next run, or < 0 to be tried again at the next
 * wb_timers_run (not its moment: say the writer is busy). */
typedef int64_t wb_timer_fn(void *arg);

#define WB_TIMERS_MAX 8

typedef struct wb_timer_s {
    wb_timer_fn *fn;
    void *arg;
    int64_t due_ms; /* monotonic */
} wb_timer_t;

/* A small list of periodic tasks, run in the order they were added. */
typedef struct wb_timers_s {
    wb_timer_t t[WB_TIMERS_MAX];
    size_t n;
} wb_timers_t;

/* Adds fn(arg), first due first_ms from now (0: at the next run). Returns
 * 0, or -1 when the list is full (WB_TIMERS_MAX). */
int wb_timers_add(wb_timers_t *ts, wb_timer_fn *fn, void *arg, int64_t first_ms);
/* Runs every task that is due; each is due again the delay it returned
 * after it finished. */
void wb_timers_run(wb_timers_t *ts);

/* ---- draining ---- */

/* Finishes what is pending, once: WB_OK when nothing is left, else an
 * error with errstr set (what failed stays pending). */
typedef wb_err_t wb_loop_drain_fn(void *arg, char *errstr, size_t errstr_size);

/* Calls drain(arg) until it returns WB_OK or waiting backoff for another
 * attempt would pass deadline_ms (monotonic); each retry is logged. Stop
 * signals do not cut it short (a second one exits the process). Returns
 * WB_OK, or the last error with errstr set: the caller gives up what is
 * left. */
wb_err_t wb_loop_drain(wb_backoff_t *backoff, int64_t deadline_ms, wb_loop_drain_fn *drain,
                       void *arg, char *errstr, size_t errstr_size);

#endif /* WB_LOOP_H */
