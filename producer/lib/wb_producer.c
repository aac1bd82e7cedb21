/* wb_producer.c — the client's Kafka side: idempotent producers (a batching one, and one without
 * linger for waited sends), their bounded queue, delivery waiters. */
#include "wb_producer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_util.h"

/* librdkafka's queue also carries refresh requests, which take no reserved
 * slot; this much room above queue_max keeps them from ever crowding out
 * the change events the reservation admitted. */
#define REFRESH_HEADROOM 10000
#define LOG_EVERY_MS     5000 /* delivery failures are logged at most this often */
#define HEADERS_ROOM     512  /* wb-* headers of a change event, with their framing */

/* One librdkafka producer instance and the thread that serves it.
 *
 * Two lanes: LANE_QUEUED has the configured linger.ms and carries every
 * message nobody waits for (ack: cache, write-through, refresh requests)
 * and batched ack: log sends, which fill their own message sets.
 * LANE_WAITED has linger.ms 0 and carries a waited send of ONE event
 * (ack: log one at a time), so a caller blocked on the broker does not
 * also pay the batching delay meant for background sends. With a
 * configured linger.ms of 0 there is one lane.
 *
 * Ordering: a key's events keep the order of its sequential writes, as
 * with one instance: a waited send takes LANE_WAITED only when no earlier
 * event of its key (of its slot in `queued`, a per-key-hash count of the
 * change events LANE_QUEUED holds without a delivery report) can still
 * be behind it; otherwise it goes through LANE_QUEUED, after them, and
 * pays the linger. Concurrent writes of one key from several threads were
 * never ordered in the log. Nothing downstream depends on that order
 * anyway: every event carries its version (invariant 1), the flusher
 * keeps the highest version per key and PostgreSQL's version guard
 * refuses an older one (invariants 4 and 6), and a clean-mark applies only
 * to the version the entry still holds (invariant 2). */
typedef struct wb_lane_s {
    wb_producer_t *p;
    /* rk and its topics are replaced after a fatal error (on the lane's
     * poll thread, the only writer, under p->rk_lock's write lock); every
     * other use holds the read lock. */
    rd_kafka_t *rk;
    rd_kafka_topic_t *changes;
    rd_kafka_topic_t *refresh; /* LANE_QUEUED only, else NULL */
    rd_kafka_conf_t *kconf;    /* copy of rk's conf, for a replacement */
    atomic_int fatal;          /* rk hit a fatal error: replace it */
    int64_t replace_at_ms;     /* poll thread only: next replacement attempt */
    pthread_t poll_thread;
    int poll_started;
} wb_lane_t;

enum { LANE_QUEUED = 0, LANE_WAITED = 1, LANES_MAX = 2 };
#define ORDER_SLOTS 4096 /* per-key-hash counts of LANE_QUEUED's unreported events */

struct wb_producer_s {
    const wb_config_t *conf;
    wb_log_scope_t *log; /* the poll threads' log scope */
    pthread_rwlock_t rk_lock;
    int rk_lock_ok;
    wb_lane_t lanes[LANES_MAX];
    int nlanes; /* 1 when the configured linger.ms is 0 already */
    atomic_uint queued[ORDER_SLOTS];
    atomic_int stop;
    atomic_int_fast64_t reserved; /* change events admitted and not yet reported */
    int64_t queue_max;
    int64_t max_msg; /* librdkafka message.max.bytes: key + value + headers */
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t unlogged; /* failures since the last log line */
    atomic_int_fast64_t last_log_ms;
    char cache_tag; /* address = opaque of an ack: cache change event */
};

/* One message of a waiter: its opaque. */
typedef struct wb_slot_s {
    wb_waiter_t *w;
    wb_err_t result;
} wb_slot_t;

struct wb_waiter_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;       /* the caller + one per message without a report */
    size_t pending; /* messages without a report */
    size_t n;
    wb_slot_t slots[];
};

/* ------------------------------------------------------------ waiters */

wb_waiter_t *wb_waiter_new(size_t n)
{
    wb_waiter_t *w = calloc(1, sizeof(*w) + n * sizeof(wb_slot_t));
    pthread_condattr_t ca;

    if (!w) return NULL;
    pthread_mutex_init(&w->mu, NULL);
    /* Monotonic waits: a wall-clock jump must not stretch an ack: log wait. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->refs = 1;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        w->slots[i].w = w;
        w->slots[i].result = WB_ERR_TIMEOUT;
    }
    return w;
}

static void waiter_free(wb_waiter_t *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Drops one reference with w->mu held; unlocks; frees on the last one. */
static void waiter_unref_unlock(wb_waiter_t *w)
{
    int last = --w->refs == 0;

    pthread_mutex_unlock(&w->mu);
    if (last) waiter_free(w);
}

wb_err_t wb_waiter_wait(wb_waiter_t *w, int timeout_ms)
{
    struct timespec ts;
    wb_err_t err = WB_OK;

    ts = wb_time_mono_deadline(timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) {
            err = w->pending > 0 ? WB_ERR_TIMEOUT : WB_OK;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return err;
}

wb_err_t wb_waiter_result(wb_waiter_t *w, size_t i)
{
    wb_err_t err;

    pthread_mutex_lock(&w->mu);
    err = i < w->n ? w->slots[i].result : WB_ERR_INVALID_ARG;
    pthread_mutex_unlock(&w->mu);
    return err;
}

void wb_waiter_release(wb_waiter_t *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    waiter_unref_unlock(w);
}

/* ------------------------------------------------------------ producer */

/* The slot of a key in wb_producer_s.queued (FNV-1a). */
static size_t order_slot(const void *key, size_t keylen)
{
    const unsigned char *k = key;
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < keylen; i++)
        h = (h ^ k[i]) * 16777619u;
    return h % ORDER_SLOTS;
}

static void note_failure(wb_producer_t *p, const char *what, rd_kafka_resp_err_t err)
{
    int64_t now = wb_time_mono_ms();
    int64_t last = atomic_load(&p->last_log_ms);
    uint64_t n = atomic_fetch_add(&p->unlogged, 1) + 1;

    /* A broker outage fails every queued message at once: one line per
     * LOG_EVERY_MS with a count, not one per message. */
    if (now - last >= LOG_EVERY_MS && atomic_compare_exchange_strong(&p->last_log_ms, &last, now)) {
        atomic_fetch_sub(&p->unlogged, n);
        WB_WARN("kafka: %s failed: %s (%llu failure(s) since the last report; the entries stay "
                "dirty and the sweeper re-publishes them)",
                what, rd_kafka_err2str(err), (unsigned long long)n);
    }
}

/* A fatal error (the idempotent producer lost its guarantees: e.g. a
 * sequence gap the broker cannot resolve) leaves rk refusing every message
 * for good. Flags it for the poll thread, which replaces the producer. */
static void note_fatal(wb_lane_t *lane, rd_kafka_t *rk)
{
    char why[512];
    rd_kafka_resp_err_t err;

    if (atomic_exchange(&lane->fatal, 1)) return;
    err = rd_kafka_fatal_error(rk, why, sizeof(why));
    WB_ERROR("kafka producer: fatal error %s: %s; replacing the producer (change events still "
             "queued fail: their entries stay dirty and the sweeper re-publishes them)",
             rd_kafka_err2name(err), err ? why : "unknown");
}

/* Runs on the poll thread. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) /* opaque: lane */
{
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        note_fatal(opaque, rk);
    else
        WB_DEBUG("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Runs on the poll thread (or a thread inside rd_kafka_flush). Touches
 * only atomics and the waiter under its mutex. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) /* lane */
{
    wb_lane_t *lane = opaque;
    wb_producer_t *p = lane->p;
    void *mo = msg->_private;
    wb_slot_t *slot;

    if (msg->err == RD_KAFKA_RESP_ERR__FATAL) note_fatal(lane, rk);
    if (!mo) { /* refresh request: fire-and-forget */
        if (msg->err)
            WB_DEBUG("kafka: refresh request not delivered: %s", rd_kafka_err2str(msg->err));
        return;
    }
    atomic_fetch_sub(&p->reserved, 1);
    if (lane == &p->lanes[LANE_QUEUED] && p->nlanes > 1)
        atomic_fetch_sub(&p->queued[order_slot(msg->key, msg->key_len)], 1);
    if (msg->err) {
        atomic_fetch_add(&p->errors, 1);
        note_failure(p, "change event delivery", msg->err);
    }
    if (mo == &p->cache_tag) return;
    slot = mo;
    pthread_mutex_lock(&slot->w->mu);
    slot->result = wb_kafka_err(msg->err);
    slot->w->pending--;
    pthread_cond_broadcast(&slot->w->cv);
    waiter_unref_unlock(slot->w);
}

/* The topic handles of a lane on rk: changes, and refresh for
 * LANE_QUEUED (*refresh NULL otherwise). 0, or -1 with none created. */
static int lane_topics(const wb_producer_t *p, int queued, rd_kafka_t *rk,
                       rd_kafka_topic_t **changes, rd_kafka_topic_t **refresh)
{
    *changes = rd_kafka_topic_new(rk, p->conf->kafka.topic_changes, NULL);
    *refresh = queued ? rd_kafka_topic_new(rk, p->conf->kafka.topic_refresh, NULL) : NULL;
    if (*changes && (*refresh || !queued)) return 0;
    if (*changes) rd_kafka_topic_destroy(*changes);
    if (*refresh) rd_kafka_topic_destroy(*refresh);
    *changes = *refresh = NULL;
    return -1;
}

/* The lane's poll thread: swaps a fresh producer in for one that had a
 * fatal error, then fails what the old one still held (its reports release
 * their slots and waiters) and destroys it. Retried every second until it
 * works. */
static void replace_rk(wb_lane_t *lane)
{
    wb_producer_t *p = lane->p;
    rd_kafka_conf_t *kc = rd_kafka_conf_dup(lane->kconf);
    rd_kafka_t *fresh = NULL, *old;
    rd_kafka_topic_t *changes = NULL, *refresh = NULL, *oldc, *oldr;
    char errstr[512] = "out of memory";

    lane->replace_at_ms = wb_time_mono_ms() + 1000;
    if (!kc || wb_kafka_producer_new(kc, 1, &fresh, errstr, sizeof(errstr)) != WB_OK) {
        if (kc) rd_kafka_conf_destroy(kc);
        WB_ERROR("kafka producer: cannot replace it after a fatal error: %s", errstr);
        return;
    }
    if (lane_topics(p, lane == &p->lanes[LANE_QUEUED], fresh, &changes, &refresh) != 0) {
        rd_kafka_destroy(fresh);
        WB_ERROR("kafka producer: cannot replace it after a fatal error: topic handle");
        return;
    }
    pthread_rwlock_wrlock(&p->rk_lock);
    old = lane->rk, oldc = lane->changes, oldr = lane->refresh;
    lane->rk = fresh, lane->changes = changes, lane->refresh = refresh;
    atomic_store(&lane->fatal, 0);
    pthread_rwlock_unlock(&p->rk_lock);

    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(old, 0);
    rd_kafka_topic_destroy(oldc);
    if (oldr) rd_kafka_topic_destroy(oldr);
    rd_kafka_destroy(old);
    WB_ERROR("kafka producer: replaced after a fatal error; sending again");
}

static void *poll_main(void *arg)
{
    wb_lane_t *lane = arg;

    wb_log_scope_enter(lane->p->log);
    while (!atomic_load(&lane->p->stop)) {
        /* lane->rk changes only on this thread: no lock needed to read it. */
        rd_kafka_poll(lane->rk, 100);
        if (atomic_load(&lane->fatal) && wb_time_mono_ms() >= lane->replace_at_ms) replace_rk(lane);
    }
    return NULL;
}

/* Creates lane i of p from kconf (taken over, also on failure) and starts
 * its poll thread. */
static wb_err_t lane_open(wb_producer_t *p, int i, rd_kafka_conf_t *kconf, char *errstr,
                          size_t errstr_size)
{
    wb_lane_t *lane = &p->lanes[i];
    wb_err_t err;

    lane->p = p;
    rd_kafka_conf_set_opaque(kconf, lane);
    if (!(lane->kconf = rd_kafka_conf_dup(kconf))) {
        rd_kafka_conf_destroy(kconf);
        wb_set_err(errstr, errstr_size, "kafka producer: out of memory");
        return WB_ERR_NOMEM;
    }
    err = wb_kafka_producer_new(kconf, 1, &lane->rk, errstr, errstr_size);
    if (err != WB_OK) {
        rd_kafka_conf_destroy(kconf);
        return err;
    }
    if (lane_topics(p, i == LANE_QUEUED, lane->rk, &lane->changes, &lane->refresh) != 0) {
        wb_set_err(errstr, errstr_size, "kafka producer: topic handle: %s",
                   rd_kafka_err2str(rd_kafka_last_error()));
        return WB_ERR_KAFKA;
    }
    if (pthread_create(&lane->poll_thread, NULL, poll_main, lane) != 0) {
        wb_set_err(errstr, errstr_size, "kafka producer: cannot start the poll thread");
        return WB_ERR_NOMEM;
    }
    lane->poll_started = 1;
    return WB_OK;
}

static wb_err_t set_prop(rd_kafka_conf_t *kconf, const char *name, const char *value, char *errstr,
                         size_t errstr_size)
{
    char why[256];

    if (rd_kafka_conf_set(kconf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return WB_OK;
    wb_set_err(errstr, errstr_size, "kafka: cannot set %s=%s: %s", name, value, why);
    return WB_ERR_CONFIG;
}

wb_err_t wb_producer_new(const wb_config_t *conf, wb_log_scope_t *log, wb_producer_t **out,
                         char *errstr, size_t errstr_size)
{
    wb_producer_t *p = NULL;
    rd_kafka_conf_t *kconf = NULL;
    char buf[32];
    wb_err_t err;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p) {
        wb_set_err(errstr, errstr_size, "kafka producer: out of memory");
        return WB_ERR_NOMEM;
    }
    p->conf = conf;
    p->log = log;
    {
        /* Writers first: a steady stream of sends must not starve the
         * replacement of a failed producer. No thread nests read locks. */
        pthread_rwlockattr_t ra;
        int rc;

        pthread_rwlockattr_init(&ra);
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        rc = pthread_rwlock_init(&p->rk_lock, &ra);
        pthread_rwlockattr_destroy(&ra);
        if (rc != 0) {
            free(p);
            wb_set_err(errstr, errstr_size, "kafka producer: cannot create a lock");
            return WB_ERR_NOMEM;
        }
    }
    p->rk_lock_ok = 1;
    p->queue_max = conf->producer.queue_max > 0 ? conf->producer.queue_max : 1;
    atomic_store(&p->last_log_ms, INT64_MIN / 2);
    err = wb_kafka_conf_new(conf, "producer", WB_KAFKA_F_LOG_QUEUE, &kconf, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    snprintf(buf, sizeof(buf), "%d",
             conf->producer.kafka_timeout_ms > 0 ? conf->producer.kafka_timeout_ms : 5000);
    if ((err = set_prop(kconf, "message.timeout.ms", buf, errstr, errstr_size)) != WB_OK) goto fail;
    snprintf(buf, sizeof(buf), "%lld", (long long)p->queue_max + REFRESH_HEADROOM);
    if ((err = set_prop(kconf, "queue.buffering.max.messages", buf, errstr, errstr_size)) != WB_OK)
        goto fail;
    {
        size_t size = sizeof(buf);

        p->max_msg = rd_kafka_conf_get(kconf, "message.max.bytes", buf, &size) == RD_KAFKA_CONF_OK
                         ? strtoll(buf, NULL, 10)
                         : 1000000;
    }
    rd_kafka_conf_set_dr_msg_cb(kconf, on_delivery);
    rd_kafka_conf_set_error_cb(kconf, on_error);
    {
        /* The waited lane: the same settings without linger (see wb_lane_t). */
        size_t size = sizeof(buf);
        rd_kafka_conf_t *waited = NULL;

        p->nlanes = 1;
        if (rd_kafka_conf_get(kconf, "linger.ms", buf, &size) == RD_KAFKA_CONF_OK &&
            strtod(buf, NULL) > 0) {
            if (!(waited = rd_kafka_conf_dup(kconf))) {
                wb_set_err(errstr, errstr_size, "kafka producer: out of memory");
                err = WB_ERR_NOMEM;
                goto fail;
            }
            if ((err = set_prop(waited, "linger.ms", "0", errstr, errstr_size)) != WB_OK) {
                rd_kafka_conf_destroy(waited);
                goto fail;
            }
        }
        err = lane_open(p, LANE_QUEUED, kconf, errstr, errstr_size);
        kconf = NULL; /* taken over */
        if (err != WB_OK) {
            if (waited) rd_kafka_conf_destroy(waited);
            goto fail;
        }
        if (waited) {
            p->nlanes = 2;
            if ((err = lane_open(p, LANE_WAITED, waited, errstr, errstr_size)) != WB_OK) goto fail;
        }
    }
    {
        /* What the changes topic accepts may be less than what this client
         * sends (a raised message.max.bytes): such an event would be
         * refused by the broker for ever and strand its entry in the cache
         * (the sweeper could not deliver it either). Read at open when the
         * broker lets us; otherwise the client's limit is the bound. */
        int64_t topic_max = 0;
        char why[256];
        int ms = conf->producer.kafka_timeout_ms > 0 && conf->producer.kafka_timeout_ms < 3000
                     ? conf->producer.kafka_timeout_ms
                     : 3000;

        if (wb_kafka_topic_max_bytes(p->lanes[LANE_QUEUED].rk, conf->kafka.topic_changes, ms,
                                     &topic_max, why, sizeof(why)) == WB_OK) {
            if (topic_max < p->max_msg) p->max_msg = topic_max;
        } else {
            WB_DEBUG("kafka: the limit of topic %s is unknown (%s); values are bounded by "
                     "message.max.bytes %lld",
                     conf->kafka.topic_changes, why, (long long)p->max_msg);
        }
    }
    *out = p;
    return WB_OK;

fail:
    if (kconf) rd_kafka_conf_destroy(kconf);
    wb_producer_destroy(p, 0);
    return err;
}

void wb_producer_destroy(wb_producer_t *p, int timeout_ms)
{
    int64_t deadline = wb_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

    if (!p) return;
    if (p->rk_lock_ok) pthread_rwlock_rdlock(&p->rk_lock); /* a poll thread may swap rk */
    for (int i = 0; i < LANES_MAX; i++) {
        rd_kafka_t *rk = p->lanes[i].rk;
        int64_t left = deadline - wb_time_mono_ms();

        if (rk && timeout_ms > 0 &&
            rd_kafka_flush(rk, left > 0 ? (int)left : 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
            WB_WARN("kafka: %d message(s) not delivered at close; their entries stay dirty and "
                    "the sweeper re-publishes them",
                    rd_kafka_outq_len(rk));
    }
    if (p->rk_lock_ok) pthread_rwlock_unlock(&p->rk_lock);
    atomic_store(&p->stop, 1);
    for (int i = 0; i < LANES_MAX; i++) {
        wb_lane_t *lane = &p->lanes[i];

        if (lane->poll_started) pthread_join(lane->poll_thread, NULL);
        if (lane->rk) {
            /* Serve the reports of what is left now, while p is alive. */
            rd_kafka_purge(lane->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(lane->rk, 0);
        }
        if (lane->changes) rd_kafka_topic_destroy(lane->changes);
        if (lane->refresh) rd_kafka_topic_destroy(lane->refresh);
        if (lane->rk) rd_kafka_destroy(lane->rk);
        if (lane->kconf) rd_kafka_conf_destroy(lane->kconf);
    }
    if (p->rk_lock_ok) pthread_rwlock_destroy(&p->rk_lock);
    free(p);
}

size_t wb_producer_reserve(wb_producer_t *p, size_t n)
{
    int_fast64_t cur = atomic_load(&p->reserved), take;

    do {
        int_fast64_t room = p->queue_max - cur;

        if (room <= 0) return 0;
        take = (int_fast64_t)n < room ? (int_fast64_t)n : room;
    } while (!atomic_compare_exchange_weak(&p->reserved, &cur, cur + take));
    return (size_t)take;
}

void wb_producer_unreserve(wb_producer_t *p, size_t n)
{
    atomic_fetch_sub(&p->reserved, (int_fast64_t)n);
}

int wb_producer_fits(const wb_producer_t *p, size_t keylen, size_t vlen)
{
    return (int64_t)(keylen + vlen + HEADERS_ROOM) <= p->max_msg;
}

uint64_t wb_producer_depth(wb_producer_t *p)
{
    int_fast64_t d = atomic_load(&p->reserved);

    return d > 0 ? (uint64_t)d : 0;
}

uint64_t wb_producer_errors(wb_producer_t *p)
{
    return atomic_load(&p->errors);
}

/* refresh: 1 for the refresh topic (LANE_QUEUED), else the changes topic
 * of lane `lane`. */
static wb_err_t produce(wb_producer_t *p, int lane_i, int refresh, const wb_event_t *ev,
                        void *opaque, char *errstr, size_t errstr_size)
{
    wb_lane_t *lane = &p->lanes[lane_i];
    rd_kafka_topic_t *topic;
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t rerr;
    wb_err_t err;

    err = wb_event_to_rd_headers(ev, &hdrs);
    if (err != WB_OK) {
        wb_set_err(errstr, errstr_size, "kafka: cannot encode the event headers");
        return err;
    }
    /* The value is copied: the caller's buffer is only borrowed. The Kafka
     * timestamp is the Redis write time, so a replay --from-time finds the
     * writes by when they happened. */
    pthread_rwlock_rdlock(&p->rk_lock);
    topic = refresh ? lane->refresh : lane->changes;
    rerr = rd_kafka_producev(
        lane->rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(ev->key, ev->keylen),
        RD_KAFKA_V_VALUE((void *)ev->value, ev->value ? ev->valuelen : 0), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_TIMESTAMP(ev->time_us > 0 ? ev->time_us / 1000 : 0), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
    if (rerr == RD_KAFKA_RESP_ERR__FATAL) note_fatal(lane, lane->rk);
    pthread_rwlock_unlock(&p->rk_lock);
    if (rerr) {
        rd_kafka_headers_destroy(hdrs);
        wb_set_err(errstr, errstr_size, "kafka produce: %s", rd_kafka_err2str(rerr));
        return wb_kafka_err(rerr);
    }
    return WB_OK;
}

wb_err_t wb_producer_send(wb_producer_t *p, const wb_event_t *ev, wb_waiter_t *w, size_t slot,
                          char *errstr, size_t errstr_size)
{
    void *opaque = &p->cache_tag;
    int lane = LANE_QUEUED;
    atomic_uint *order = NULL;
    wb_err_t err;

    if (p->nlanes > 1) {
        /* One waited event goes without linger unless an earlier event of
         * its key may still wait in LANE_QUEUED (see wb_lane_t). */
        order = &p->queued[order_slot(ev->key, ev->keylen)];
        if (w && w->n == 1 && atomic_load(order) == 0)
            lane = LANE_WAITED, order = NULL;
        else
            atomic_fetch_add(order, 1);
    }
    if (w) {
        pthread_mutex_lock(&w->mu);
        w->refs++;
        w->pending++;
        pthread_mutex_unlock(&w->mu);
        opaque = &w->slots[slot];
    }
    err = produce(p, lane, 0, ev, opaque, errstr, errstr_size);
    if (err != WB_OK) {
        if (order) atomic_fetch_sub(order, 1);
        atomic_fetch_sub(&p->reserved, 1);
        atomic_fetch_add(&p->errors, 1);
        if (w) {
            pthread_mutex_lock(&w->mu);
            w->slots[slot].result = err;
            w->pending--;
            waiter_unref_unlock(w);
        }
    }
    return err;
}

wb_err_t wb_producer_send_refresh(wb_producer_t *p, const wb_event_t *ev)
{
    return produce(p, LANE_QUEUED, 1, ev, NULL, NULL, 0);
}

wb_err_t wb_producer_flush(wb_producer_t *p, int timeout_ms)
{
    int64_t deadline = wb_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;

    pthread_rwlock_rdlock(&p->rk_lock);
    for (int i = 0; i < p->nlanes && !rerr; i++) {
        int64_t left = deadline - wb_time_mono_ms();
        rerr = rd_kafka_flush(p->lanes[i].rk, left > 0 ? (int)left : 0);
    }
    pthread_rwlock_unlock(&p->rk_lock);
    return rerr == RD_KAFKA_RESP_ERR_NO_ERROR ? WB_OK : WB_ERR_TIMEOUT;
}

wb_err_t wb_producer_test_fatal(wb_producer_t *p, const char *reason)
{
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;

    pthread_rwlock_rdlock(&p->rk_lock);
    for (int i = 0; i < p->nlanes && !rerr; i++)
        rerr = rd_kafka_test_fatal_error(p->lanes[i].rk,
                                         RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                         reason ? reason : "test");
    pthread_rwlock_unlock(&p->rk_lock);
    return rerr ? WB_ERR_KAFKA : WB_OK;
}
