/* wb_loop.c — the daemons' skeleton: stop signals, backoff wait, timers, drain. */
#include "wb_loop.h"

#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "wb_log.h"
#include "wb_util.h"

#define WB_LOOP_STEP_MS 50 /* how soon a wait notices a stop */

static volatile sig_atomic_t wb_loop_stops;

static void wb_loop_on_signal(int sig)
{
    (void)sig;
    if (++wb_loop_stops >= 2) _exit(1); /* second signal: the operator wants out now */
}

void wb_loop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wb_loop_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

int wb_loop_stopping(void)
{
    return (int)wb_loop_stops;
}

int wb_loop_wait(int64_t ms)
{
    for (int64_t t = 0; t < ms && !wb_loop_stopping(); t += WB_LOOP_STEP_MS)
        usleep(WB_LOOP_STEP_MS * 1000);
    return wb_loop_stopping() ? 1 : 0;
}

int wb_loop_connect(wb_backoff_t *backoff, wb_loop_try_fn *attempt, void *arg, char *errstr,
                    size_t errstr_size)
{
    for (;;) {
        wb_err_t err = attempt(arg, errstr, errstr_size);
        if (err == WB_OK) {
            wb_backoff_reset(backoff);
            return 0;
        }
        if (err == WB_ERR_CONFIG) return -1;
        int64_t delay = wb_backoff_next_ms(backoff);
        WB_WARN("%s; retrying in %" PRId64 " ms", errstr, delay);
        if (wb_loop_wait(delay)) return 1;
    }
}

int wb_timers_add(wb_timers_t *ts, wb_timer_fn *fn, void *arg, int64_t first_ms)
{
    if (ts->n >= WB_TIMERS_MAX) return -1;
    ts->t[ts->n++] = (wb_timer_t){fn, arg, wb_time_mono_ms() + first_ms};
    return 0;
}

void wb_timers_run(wb_timers_t *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        wb_timer_t *t = &ts->t[i];
        if (wb_time_mono_ms() < t->due_ms) continue;
        int64_t delay = t->fn(t->arg);
        if (delay >= 0) t->due_ms = wb_time_mono_ms() + delay;
    }
}

wb_err_t wb_loop_drain(wb_backoff_t *backoff, int64_t deadline_ms, wb_loop_drain_fn *drain,
                       void *arg, char *errstr, size_t errstr_size)
{
    for (;;) {
        wb_err_t err = drain(arg, errstr, errstr_size);
        if (err == WB_OK) return WB_OK;
        int64_t delay = wb_backoff_next_ms(backoff);
        if (wb_time_mono_ms() + delay >= deadline_ms) return err;
        WB_WARN("%s; retrying in %" PRId64 " ms", errstr, delay);
        usleep((useconds_t)delay * 1000);
    }
}
