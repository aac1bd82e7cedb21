/* fl_writer.c — the flusher's writer thread: one batch applies while the next fills. */
#include "fl_writer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wb_util.h"

static void *writer_main(void *arg)
{
    fl_writer_t *w = arg;
    char errstr[sizeof(w->errstr)];

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != FL_W_RUNNING && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state != FL_W_RUNNING) break; /* stop, and nothing to run */
        pthread_mutex_unlock(&w->mu);
        errstr[0] = '\0';
        wb_err_t err = w->apply(w->arg, &w->batch, errstr, sizeof(errstr));
        pthread_mutex_lock(&w->mu);
        w->err = err;
        memcpy(w->errstr, errstr, sizeof(errstr));
        w->state = FL_W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

wb_err_t fl_writer_start(fl_writer_t *w, fl_writer_fn *apply, void *arg)
{
    pthread_condattr_t ca;

    w->apply = apply;
    w->arg = arg;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return WB_ERR_NOMEM;
    }
    w->started = 1;
    return WB_OK;
}

void fl_writer_stop(fl_writer_t *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    fl_batch_free(&w->batch);
    memset(w, 0, sizeof(*w));
}

int fl_writer_busy(fl_writer_t *w)
{
    int busy;
    if (!w->started) return 0;
    pthread_mutex_lock(&w->mu);
    busy = w->state != FL_W_IDLE;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

void fl_writer_submit(fl_writer_t *w, fl_batch_t *filling)
{
    if (w->batch.n == 0) {
        /* Hand the filled batch over; the polling thread keeps the empty
         * arrays of the previous one for the next. */
        fl_batch_t t = w->batch;
        w->batch = *filling;
        *filling = t;
    }
    pthread_mutex_lock(&w->mu);
    w->state = FL_W_RUNNING;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int fl_writer_collect(fl_writer_t *w, int timeout_ms, wb_err_t *err, char *errstr,
                      size_t errstr_size)
{
    struct timespec until = wb_time_mono_deadline(timeout_ms);

    if (!w->started) return 0;
    pthread_mutex_lock(&w->mu);
    while (w->state == FL_W_RUNNING && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
            break;
    }
    if (w->state != FL_W_DONE) {
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    *err = w->err;
    if (errstr && errstr_size) snprintf(errstr, errstr_size, "%s", w->errstr);
    w->state = FL_W_IDLE;
    pthread_mutex_unlock(&w->mu);
    return 1;
}
