/* fl_writer.h — the flusher's writer thread: one batch applies while the next fills. */
#ifndef FL_WRITER_H
#define FL_WRITER_H

#include <pthread.h>

#include "fl_batch.h"
#include "wbcache.h"

/* Applies b on the writer thread; returns WB_OK or an outage with errstr set. */
typedef wb_err_t fl_writer_fn(void *arg, fl_batch_t *b, char *errstr, size_t errstr_size);

enum { FL_W_IDLE = 0, FL_W_RUNNING = 1, FL_W_DONE = 2 };

/* The writer thread and the batch it holds. The batch belongs to the
 * thread while it runs (state RUNNING), to the caller otherwise. */
typedef struct fl_writer_s {
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* state changed (either direction) */
    int state;         /* FL_W_*, under mu */
    wb_err_t err;      /* result of the last run (state DONE) */
    char errstr[512];
    fl_batch_t batch; /* applying, or failed and held for a retry */
    fl_writer_fn *apply;
    void *arg;
} fl_writer_t;

/* Starts the thread, which runs apply(arg, &w->batch, ...) per submit. w
 * must not move afterwards. WB_ERR_NOMEM if the thread cannot start. */
wb_err_t fl_writer_start(fl_writer_t *w, fl_writer_fn *apply, void *arg);
/* Waits for the run in progress, stops the thread and frees the batch it
 * holds. w may be zeroed or stopped. */
void fl_writer_stop(fl_writer_t *w);

/* 1 while the writer runs or holds an uncollected result. */
int fl_writer_busy(fl_writer_t *w);
/* Starts a run on the batch the writer holds after a failure (a retry)
 * or, if none, on *filling (moved: *filling gets the writer's empty
 * arrays). The writer must not be busy. */
void fl_writer_submit(fl_writer_t *w, fl_batch_t *filling);
/* Waits up to timeout_ms (< 0: for ever) for the run to end. Returns 0
 * if the writer is idle or still running; otherwise 1 with *err (and the
 * reason in errstr): the writer is idle again and w->batch holds the
 * batch, applied (WB_OK; the caller completes it) or failed (held for the
 * next submit, resumed at the step that failed). */
int fl_writer_collect(fl_writer_t *w, int timeout_ms, wb_err_t *err, char *errstr,
                      size_t errstr_size);

#endif /* FL_WRITER_H */
