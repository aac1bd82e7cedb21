/* fl_clean.c — the cleaner thread: marks committed cache entries clean (and
 * forgets dead-lettered ones) on its own Redis connection, off the batch path. */
#include "fl_clean.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wb_log.h"
#include "wb_entry.h"
#include "wb_redis.h"
#include "wb_util.h"

#define FL_CLEAN_MAX 1000000 /* beyond this, entries are dropped (they stay dirty: safe) */
/* Clean-marks per wb_entry_clean_many call (one pipeline): with the default
 * 64 dirty-index shards, about 64 keys per `clean_many` call. */
#define FL_CLEAN_CHUNK 4096

/* ------------------------------------------------------------- the queue */

/* Appends one entry (cl->mu held). Returns 0, or -1 when the backlog is
 * full or memory ran out: the entry then stays dirty, which is safe (the
 * sweeper re-publishes it and its next delivery queues it again). */
static int q_push(fl_cleaner_t *cl, const fl_clean_t *c)
{
    /* A key without a shard tag is an event of the old layout (a replay of
     * an old log): no entry of this layout has it, nothing to mark. */
    if (!wb_entry_key_tag(c->key, c->keylen, NULL)) return 0;
    if (cl->n + cl->busy >= FL_CLEAN_MAX) return -1;
    if (cl->n == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 4096;
        fl_clean_t *q = realloc(cl->q, cap * sizeof(*q));
        if (!q) return -1;
        cl->q = q;
        cl->cap = cap;
    }
    char *copy = malloc(c->keylen + 1);
    if (!copy) return -1;
    memcpy(copy, c->key, c->keylen);
    copy[c->keylen] = '\0';
    cl->q[cl->n] = *c;
    cl->q[cl->n++].key = copy;
    return 0;
}

/* The cache key and version of a dead-lettered message: from the decoded
 * event, or — when it could not be decoded as a whole — straight from the
 * Kafka key and a well-formed wb-version header. Returns 0 if both are
 * known. */
static int poison_key_version(const fl_msg_t *msg, const fl_item_t *it, const char **key,
                              size_t *keylen, int64_t *version)
{
    const void *v = NULL;
    size_t vlen = 0;

    if (it->ev.version > 0 && it->ev.key && it->ev.keylen > 0) {
        *key = it->ev.key;
        *keylen = it->ev.keylen;
        *version = it->ev.version;
        return 0;
    }
    if (!msg->key || msg->keylen == 0 || msg->keylen > WB_EVENT_KEY_MAX) return -1;
    if (fl_msg_header_last(msg, WB_HDR_VERSION, &v, &vlen) != 0 || !v ||
        wb_parse_i64(v, vlen, version) != 0 || *version <= 0)
        return -1;
    *key = msg->key;
    *keylen = msg->keylen;
    return 0;
}

void fl_clean_push(fl_cleaner_t *cl, const fl_batch_t *b)
{
    uint64_t dropped = 0;

    pthread_mutex_lock(&cl->mu);
    /* Clean-marks of the rows PostgreSQL committed (invariant 2): against
     * the version it holds when it refused an older event (a settle, which
     * leaves an entry dirty at that version to its own event). An event
     * whose version PostgreSQL holds already (a write-through's, a
     * duplicate, a replay) cleans at its own version. */
    for (size_t j = 0; j < b->nwinners; j++) {
        size_t i = b->winners[j];
        const fl_item_t *it = &b->items[i];
        fl_clean_t c = {.key = (char *)it->ev.key,
                        .keylen = it->ev.keylen,
                        .version = it->ev.version,
                        .ttl_ms = it->ent->ttl_ms};
        if (it->stored_version > 0) {
            c.version = it->stored_version;
            c.refused_version = it->ev.version;
            c.entity = it->ent->name;
            c.partition = b->msgs[i].partition;
            c.offset = b->msgs[i].offset;
        }
        if (q_push(cl, &c) != 0) {
            dropped += b->nwinners - j;
            break;
        }
    }
    /* Poison must not loop (invariant 7 meets invariant 9): once the
     * dead-letter topic holds a poison event, its cache entry — if it still
     * holds exactly that version, dirty — is forgotten (the `forget`
     * script), so the sweeper does not re-publish it forever and reads
     * fall back to PostgreSQL. Only after the dead-letter acknowledgement. */
    for (size_t i = 0; i < b->n && b->dlq_done; i++) {
        const fl_item_t *it = &b->items[i];
        const char *key = NULL;
        size_t keylen = 0;
        int64_t version = 0;

        if (it->state != FL_ITEM_POISON) continue;
        if (poison_key_version(&b->msgs[i], it, &key, &keylen, &version) != 0) continue;
        fl_clean_t c = {.key = (char *)key,
                        .keylen = keylen,
                        .version = version,
                        .ttl_ms = it->ent ? it->ent->ttl_ms : 0,
                        .forget = 1};
        if (q_push(cl, &c) != 0) dropped++;
    }
    size_t pending = cl->n + cl->busy;
    if (cl->n > 0) pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    wb_counter_add(cl->m.dropped, dropped);
    wb_gauge_set(cl->m.pending, (double)pending);
}

size_t fl_clean_pending(fl_cleaner_t *cl)
{
    size_t n;
    if (!cl->started) return 0;
    pthread_mutex_lock(&cl->mu);
    n = cl->n + cl->busy;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

size_t fl_clean_wait(fl_cleaner_t *cl, int64_t timeout_ms)
{
    struct timespec until = wb_time_mono_deadline(timeout_ms > 0 ? timeout_ms : 0);
    size_t n;

    if (!cl->started) return 0;
    pthread_mutex_lock(&cl->mu);
    /* Not while Redis is failing: the entries stay dirty (safe), and a
     * shutdown should not spend its deadline on it. */
    while (cl->n + cl->busy > 0 && !cl->stop && !cl->failing)
        if (pthread_cond_timedwait(&cl->idle_cv, &cl->mu, &until) == ETIMEDOUT) break;
    n = cl->n + cl->busy;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* ------------------------------------------------------------ the thread */

/* A dirty write PostgreSQL refused because it holds a newer version this
 * Redis never handed out (the clean script found the entry still dirty at
 * the refused version and dropped it): never silent. ERROR, counter, and a
 * dead letter rebuilt from the cache entry, with the reason, so an operator
 * sees it and can redrive it. */
static void refused(fl_cleaner_t *cl, const fl_clean_t *c, const wb_entry_clean_res_t *res)
{
    const char *entity = res->entity[0] ? res->entity : c->entity;
    char reason[256], errstr[256];
    wb_event_t ev = {.key = c->key,
                     .keylen = c->keylen,
                     .value = res->is_delete ? NULL : res->value,
                     .valuelen = res->is_delete ? 0 : res->len,
                     .is_delete = res->is_delete,
                     .version = c->refused_version,
                     .time_us = res->write_us,
                     .entity = entity,
                     .entitylen = entity ? strlen(entity) : 0};

    wb_counter_add(cl->m.refused, 1);
    snprintf(reason, sizeof(reason),
             "refused: PostgreSQL holds version %" PRId64 ", newer than this write's %" PRId64
             " that no later write superseded (Redis clock behind, or the row written outside "
             "the log)",
             c->version, c->refused_version);
    WB_ERROR("%s version %" PRId64 ": dirty write LOST from the cache: %s; dead-lettering it",
             c->key, c->refused_version, reason);
    if (!cl->dlq.producer && fl_dlq_open(&cl->dlq, cl->conf, errstr, sizeof(errstr)) != WB_OK) {
        WB_ERROR("%s: cannot dead-letter the refused write (%zu bytes): %s", c->key, res->len,
                 errstr);
        return;
    }
    if (fl_dlq_send_event(&cl->dlq, &ev, reason, cl->conf->kafka.topic_changes, c->partition,
                          c->offset, errstr, sizeof(errstr)) != WB_OK)
        WB_ERROR("%s: cannot dead-letter the refused write (%zu bytes): %s", c->key, res->len,
                 errstr);
}

/* Sends work[0..n) to Redis in pipelines of FL_CLEAN_CHUNK. Returns how
 * many were answered; fewer than n means Redis failed (the connection is
 * dropped and the rest must be retried) or the cleaner is stopping. Runs
 * without cl->mu. */
static size_t send_all(fl_cleaner_t *cl, const fl_clean_t *work, size_t n)
{
    size_t done = 0, forgotten = 0;
    char errstr[256];

    if (!cl->redis) {
        if (wb_entry_open(cl->conf, &cl->redis, errstr, sizeof(errstr)) != WB_OK) {
            WB_WARN("redis unavailable, %zu entries stay dirty until it is back: %s", n, errstr);
            return 0;
        }
        wb_backoff_reset(&cl->backoff);
    }
    if (!cl->req) cl->req = calloc(FL_CLEAN_CHUNK, sizeof(*cl->req));
    if (!cl->res) cl->res = calloc(FL_CLEAN_CHUNK, sizeof(*cl->res));
    wb_entry_clean_req_t *req = cl->req;
    wb_entry_clean_res_t *res = cl->res;
    if (!req || !res) {
        WB_WARN("out of memory: %zu entries stay dirty for now", n);
        n = 0;
    }
    while (done < n) {
        size_t m = n - done < FL_CLEAN_CHUNK ? n - done : FL_CLEAN_CHUNK;
        pthread_mutex_lock(&cl->mu);
        int stop = cl->stop;
        pthread_mutex_unlock(&cl->mu);
        if (stop) break; /* the rest stays dirty: fl_cleaner_stop must not wait for 1M entries */

        for (size_t i = 0; i < m; i++) {
            const fl_clean_t *c = &work[done + i];
            req[i] = (wb_entry_clean_req_t){.key = c->key,
                                            .keylen = c->keylen,
                                            .dirty_index = cl->conf->redis.dirty_index,
                                            .version = c->version,
                                            .ttl_ms = c->ttl_ms,
                                            .forget = c->forget,
                                            .refused_version = c->refused_version};
        }
        if (wb_entry_clean_many(cl->redis, req, m, res, errstr, sizeof(errstr)) != WB_OK) {
            WB_WARN("redis clean-marking failed, %zu entries stay dirty for now: %s", n - done,
                    errstr);
            wb_rc_free(cl->redis);
            cl->redis = NULL;
            break;
        }
        for (size_t i = 0; i < m; i++) {
            const fl_clean_t *c = &work[done + i];
            if (res[i].err != WB_OK)
                WB_WARN("%s script: %s", c->forget ? "forget" : "clean", res[i].error);
            else if (c->forget && res[i].code == 1) {
                forgotten++;
                WB_INFO("forgot the dirty cache entry %s version %" PRId64
                        " (dead-lettered; reads fall back to PostgreSQL)",
                        c->key, c->version);
            } else if (!c->forget && res[i].code == WB_ENTRY_CLEAN_REFUSED) {
                refused(cl, c, &res[i]);
            }
            wb_entry_clean_clear(&res[i]);
        }
        wb_counter_add(cl->m.cleaned, m);
        done += m;
    }
    wb_counter_add(cl->m.forgotten, forgotten);
    return done;
}

static void free_entries(fl_clean_t *work, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(work[i].key);
}

/* FIFO: the thread takes the whole queue, sends it, and on a Redis failure
 * puts what was not answered back in front of what arrived meanwhile, then
 * backs off. */
static void *cleaner_main(void *arg)
{
    fl_cleaner_t *cl = arg;
    fl_clean_t *work = NULL;
    size_t nwork = 0, capwork = 0;

    pthread_mutex_lock(&cl->mu);
    for (;;) {
        while (cl->n == 0 && !cl->stop)
            pthread_cond_wait(&cl->cv, &cl->mu);
        if (cl->stop) break;
        /* Swap the queue with the (empty) work array. */
        fl_clean_t *q = cl->q;
        size_t cap = cl->cap;
        work = q;
        nwork = cl->n;
        cl->q = NULL;
        cl->cap = 0;
        cl->n = 0;
        capwork = cap;
        cl->busy = nwork;
        pthread_mutex_unlock(&cl->mu);

        size_t done = send_all(cl, work, nwork);
        free_entries(work, done);

        pthread_mutex_lock(&cl->mu);
        if (done < nwork) {
            /* Put the rest in front of what arrived meanwhile (order
             * matters only per key, and a key's later entries are later
             * in the queue). */
            size_t rest = nwork - done, total = rest + cl->n;
            fl_clean_t *merged = total <= capwork ? work : realloc(work, total * sizeof(*merged));
            if (!merged) {
                free_entries(work + done, rest);
                wb_counter_add(cl->m.dropped, rest);
                free(work);
            } else {
                memmove(merged, merged + done, rest * sizeof(*merged));
                if (cl->n) memcpy(merged + rest, cl->q, cl->n * sizeof(*merged));
                free(cl->q);
                cl->q = merged;
                cl->cap = total > capwork ? total : capwork;
                cl->n = total;
            }
            work = NULL;
            capwork = 0;
            cl->busy = 0;
            wb_gauge_set(cl->m.pending, (double)cl->n);
            if (cl->stop) break;
            cl->failing = 1;
            pthread_cond_broadcast(&cl->idle_cv);
            struct timespec until = wb_time_mono_deadline(wb_backoff_next_ms(&cl->backoff));
            while (!cl->stop)
                if (pthread_cond_timedwait(&cl->cv, &cl->mu, &until) == ETIMEDOUT) break;
            continue;
        }
        /* All answered: keep the larger array for the queue. */
        if (!cl->q) {
            cl->q = work;
            cl->cap = capwork;
        } else {
            free(work);
        }
        work = NULL;
        capwork = 0;
        cl->busy = 0;
        cl->failing = 0;
        wb_gauge_set(cl->m.pending, (double)cl->n);
        if (cl->n == 0) pthread_cond_broadcast(&cl->idle_cv);
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

wb_err_t fl_cleaner_start(fl_cleaner_t *cl, const wb_config_t *conf, const fl_clean_metrics_t *m)
{
    pthread_condattr_t ca;

    cl->conf = conf;
    if (m) cl->m = *m;
    wb_backoff_init(&cl->backoff, cl->conf->flusher.retry_initial_ms,
                    cl->conf->flusher.retry_max_ms, wb_random_seed());
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, &ca);
    pthread_cond_init(&cl->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&cl->thread, NULL, cleaner_main, cl) != 0) {
        pthread_cond_destroy(&cl->idle_cv);
        pthread_cond_destroy(&cl->cv);
        pthread_mutex_destroy(&cl->mu);
        return WB_ERR_NOMEM;
    }
    cl->started = 1;
    return WB_OK;
}

void fl_cleaner_stop(fl_cleaner_t *cl)
{
    if (!cl->started) return;
    pthread_mutex_lock(&cl->mu);
    cl->stop = 1;
    pthread_cond_broadcast(&cl->cv);
    pthread_cond_broadcast(&cl->idle_cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->thread, NULL);
    if (cl->n > 0)
        WB_WARN("%zu cache entries left dirty at exit (the sweeper re-publishes them)", cl->n);
    free_entries(cl->q, cl->n);
    free(cl->q);
    wb_rc_free(cl->redis);
    free(cl->req);
    free(cl->res);
    fl_dlq_close(&cl->dlq);
    pthread_cond_destroy(&cl->idle_cv);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    memset(cl, 0, sizeof(*cl));
}
