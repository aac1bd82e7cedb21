/* test_library_get_many.c — wb_get_many against the real services: mixed hits, misses,
 * not-found and deleted ids in one call; each key loaded once by concurrent calls (threads and
 * processes); a fill never overwrites a dirty or newer entry; refresh-ahead; argument errors;
 * `wbctl get ENTITY ID...`. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib_harness.h"
#include "wb_key.h"

#define NROWS    50
#define NTHREADS 8

static lh_t H;

/* Shared between the processes of a test (MAP_SHARED). */
typedef struct shared_s {
    pthread_barrier_t start;
    atomic_int loaded;   /* sum of wb_get_many_t.loaded */
    atomic_int failures; /* wrong answers */
} shared_t;

static shared_t *S;

static int group_setup(void **state)
{
    pthread_barrierattr_t ba;

    (void)state;
    lh_setup(&H);
    S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) return -1;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&S->start, &ba, NTHREADS);
    pthread_barrierattr_destroy(&ba);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pthread_barrier_destroy(&S->start);
    munmap(S, sizeof(*S));
    lh_teardown(&H);
    return 0;
}

static void insert_row(const char *table, const char *id, const char *value, const char *version,
                       int deleted)
{
    char sql[256];

    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (key, value, version, deleted) VALUES ($1, $2, $3, %s)", table,
             deleted ? "true" : "false");
    PQclear(lh_sql(&H, sql, 3, id, value, version));
}

/* A wb_get_many_t over caller arrays of n. */
typedef struct many_s {
    wb_value_t values[64];
    wb_err_t errs[64];
    wb_get_many_t out;
} many_t;

static wb_err_t get_many(wb_client_t *c, const char *entity, const char *const *ids, size_t n,
                         many_t *m)
{
    memset(m, 0, sizeof(*m));
    m->out.size = sizeof(m->out);
    m->out.values = m->values;
    m->out.errs = m->errs;
    return wb_get_many(c, entity, ids, n, &m->out);
}

static void many_free(many_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wb_value_free(&m->values[i]);
}

/* One call answers every kind of id on its own: a cached value (hit), a
 * dirty write (hit, newer than its row), a row not cached (loaded), an id
 * with no row, a soft-deleted row, a cached delete (tombstone), a repeated
 * id (its own copy) and an invalid id (only that id fails). The missing
 * ones are loaded once and cached negatively: a second call reads nothing. */
static void mixed_ids_each_get_their_own_result(void **state)
{
    char cached[128], dirty[128], row[128], none[128], softdel[128], deleted[128], key[200];
    const char *ids[9];
    wb_client_t *c = lh_client(&H, NULL);
    wb_value_t v = {0};
    wb_stats_t s0, s1;
    int64_t dv = 0;
    char *d;
    many_t m;

    (void)state;
    lh_id(&H, "m-cached", cached, sizeof(cached));
    lh_id(&H, "m-dirty", dirty, sizeof(dirty));
    lh_id(&H, "m-row", row, sizeof(row));
    lh_id(&H, "m-none", none, sizeof(none));
    lh_id(&H, "m-softdel", softdel, sizeof(softdel));
    lh_id(&H, "m-deleted", deleted, sizeof(deleted));
    insert_row("wb_libtest_items", cached, "c-value", "7", 0);
    assert_int_equal(wb_get(c, "item", cached, &v), WB_OK); /* now cached */
    wb_value_free(&v);
    insert_row("wb_libtest_items", dirty, "old", "5", 0);
    assert_int_equal(wb_put(c, "item", dirty, "new", 3, WB_ACK_CACHE, &dv), WB_OK);
    insert_row("wb_libtest_items", row, "r-value", "11", 0);
    insert_row("wb_libtest_items", softdel, NULL, "12", 1);
    assert_int_equal(wb_put(c, "item", deleted, "x", 1, WB_ACK_CACHE, NULL), WB_OK);
    assert_int_equal(wb_del(c, "item", deleted, WB_ACK_CACHE, NULL), WB_OK);

    ids[0] = cached, ids[1] = dirty, ids[2] = row, ids[3] = none, ids[4] = softdel;
    ids[5] = deleted, ids[6] = row, ids[7] = "bad{id}", ids[8] = NULL;
    wb_client_stats(c, &s0, sizeof(s0));
    assert_int_equal(get_many(c, "item", ids, 9, &m), WB_ERR_INVALID_ARG);
    assert_int_equal(m.errs[0], WB_OK);
    assert_string_equal(m.values[0].data, "c-value");
    assert_int_equal(m.values[0].version, 7);
    assert_int_equal(m.values[0].hit, 1);
    assert_int_equal(m.errs[1], WB_OK);
    assert_string_equal(m.values[1].data, "new"); /* the dirty write, not the row */
    assert_int_equal(m.values[1].version, dv);
    assert_int_equal(m.values[1].hit, 1);
    assert_int_equal(m.errs[2], WB_OK);
    assert_string_equal(m.values[2].data, "r-value");
    assert_int_equal(m.values[2].len, 7);
    assert_int_equal(m.values[2].version, 11);
    assert_int_equal(m.values[2].hit, 0);
    assert_int_equal(m.errs[3], WB_ERR_NOT_FOUND);
    assert_null(m.values[3].data);
    assert_int_equal(m.errs[4], WB_ERR_NOT_FOUND);
    assert_null(m.values[4].data);
    assert_int_equal(m.errs[5], WB_ERR_NOT_FOUND);
    assert_int_equal(m.errs[6], WB_OK); /* the repeated id: its own copy */
    assert_string_equal(m.values[6].data, "r-value");
    assert_ptr_not_equal(m.values[6].data, m.values[2].data);
    assert_int_equal(m.errs[7], WB_ERR_INVALID_ARG);
    assert_int_equal(m.errs[8], WB_ERR_INVALID_ARG);
    assert_null(m.values[7].data);
    /* Loaded: row, none, softdel, each once (row is named twice). */
    assert_int_equal(m.out.loaded, 3);
    assert_int_equal(m.out.hits, 3); /* cached, dirty, deleted */
    wb_client_stats(c, &s1, sizeof(s1));
    assert_int_equal(s1.loads - s0.loads, 3);
    assert_int_equal(s1.hits - s0.hits, 3);
    assert_int_equal(s1.misses - s0.misses, 3);
    many_free(&m, 9);
    /* The dirty entry is still the dirty write. */
    lh_key(&H, key, sizeof(key), "li:", dirty);
    d = lh_hget(&H, key, "d");
    assert_string_equal(d, "1");
    free(d);

    /* Again, valid ids only: everything is a hit now, the missing ones as
     * negative entries; nothing is read from the table. */
    assert_int_equal(get_many(c, "item", ids, 7, &m), WB_OK);
    assert_int_equal(m.out.loaded, 0);
    assert_int_equal(m.out.hits, 7);
    assert_int_equal(m.errs[3], WB_ERR_NOT_FOUND);
    assert_int_equal(m.errs[4], WB_ERR_NOT_FOUND);
    assert_string_equal(m.values[2].data, "r-value");
    assert_int_equal(m.values[2].hit, 1);
    many_free(&m, 7);
    wb_client_close(c);
}

typedef struct reader_s {
    wb_client_t *client;
    char (*ids)[128];
    int first; /* rotation of the id order */
    pthread_t thread;
} reader_t;

/* Reads all NROWS ids in one call, in an order of its own, after every
 * reader reached the barrier; checks each value. */
static void *reader_main(void *arg)
{
    reader_t *r = arg;
    const char *ids[NROWS];
    many_t *m = calloc(1, sizeof(*m));

    for (int i = 0; i < NROWS; i++)
        ids[i] = r->ids[(i + r->first) % NROWS];
    pthread_barrier_wait(&S->start);
    if (get_many(r->client, "item", ids, NROWS, m) != WB_OK) atomic_fetch_add(&S->failures, 1);
    for (int i = 0; i < NROWS; i++) {
        int k = (i + r->first) % NROWS;
        char want[32];

        snprintf(want, sizeof(want), "value-%d", k);
        if (m->errs[i] != WB_OK || !m->values[i].data || strcmp(m->values[i].data, want) != 0)
            atomic_fetch_add(&S->failures, 1);
    }
    atomic_fetch_add(&S->loaded, (int)m->out.loaded);
    many_free(m, NROWS);
    free(m);
    return NULL;
}

static void run_readers(wb_client_t *client, char (*ids)[128], int n, int first)
{
    reader_t r[NTHREADS];

    for (int i = 0; i < n; i++) {
        r[i] = (reader_t){client, ids, first + i * 7, 0};
        pthread_create(&r[i].thread, NULL, reader_main, &r[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(r[i].thread, NULL);
}

static void insert_rows(const char *name, char (*ids)[128])
{
    for (int i = 0; i < NROWS; i++) {
        char n[64], value[32];

        snprintf(n, sizeof(n), "%s-%d", name, i);
        lh_id(&H, n, ids[i], sizeof(ids[i]));
        snprintf(value, sizeof(value), "value-%d", i);
        insert_row("wb_libtest_items", ids[i], value, "3", 0);
    }
}

/* 8 threads read the same 50 uncached ids at once, each in its own order:
 * every key is read from the table once in all (their loads add up to 50),
 * and every thread gets every value. */
static void concurrent_threads_load_each_key_once(void **state)
{
    static char ids[NROWS][128];
    wb_client_t *c = lh_client(&H, NULL);
    wb_stats_t s0, s1;

    (void)state;
    atomic_store(&S->loaded, 0);
    atomic_store(&S->failures, 0);
    insert_rows("conc-t", ids);
    wb_client_stats(c, &s0, sizeof(s0));
    run_readers(c, ids, NTHREADS, 0);
    wb_client_stats(c, &s1, sizeof(s1));
    assert_int_equal(atomic_load(&S->failures), 0);
    assert_int_equal(atomic_load(&S->loaded), NROWS);
    assert_int_equal(s1.loads - s0.loads, NROWS);
    wb_client_close(c);
}

/* The same from two processes (4 threads each, one client each, as two
 * service instances): the locks live in Redis, so still 50 loads in all. */
static void concurrent_processes_load_each_key_once(void **state)
{
    static char ids[NROWS][128];
    pid_t pid[2];
    int status;

    (void)state;
    atomic_store(&S->loaded, 0);
    atomic_store(&S->failures, 0);
    insert_rows("conc-p", ids);
    for (int p = 0; p < 2; p++) {
        pid[p] = fork();
        assert_true(pid[p] >= 0);
        if (pid[p] == 0) {
            wb_client_t *c = lh_client(&H, NULL);

            run_readers(c, ids, NTHREADS / 2, p * 3);
            wb_client_close(c);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(atomic_load(&S->failures), 0);
    assert_int_equal(atomic_load(&S->loaded), NROWS);
}

typedef struct bg_s {
    wb_client_t *client;
    const char *id;
    char other[128]; /* an id without a row */
    many_t m;
    wb_err_t err;
} bg_t;

static void *bg_get_many(void *arg)
{
    bg_t *b = arg;
    const char *ids[2] = {b->id, b->other};

    b->err = get_many(b->client, "item", ids, 2, &b->m);
    return NULL;
}

/* A write that lands between the table read and the fill wins: the read of
 * the old row is held by a table lock while the key is written (dirty);
 * the fill leaves the dirty entry alone and the call answers the write. */
static void fill_never_overwrites_a_dirty_write(void **state)
{
    char id[128], key[200];
    wb_client_t *c = lh_client(&H, NULL);
    bg_t b = {.client = c};
    pthread_t t;
    int64_t v = 0;
    char *s;

    (void)state;
    lh_id(&H, "race-dirty", id, sizeof(id));
    lh_id(&H, "race-other", b.other, sizeof(b.other));
    b.id = id;
    insert_row("wb_libtest_items", id, "old", "5", 0);
    PQclear(lh_sql(&H, "BEGIN", 0, NULL, NULL, NULL));
    PQclear(
        lh_sql(&H, "LOCK TABLE wb_libtest_items IN ACCESS EXCLUSIVE MODE", 0, NULL, NULL, NULL));
    pthread_create(&t, NULL, bg_get_many, &b);
    lh_sleep_ms(300); /* the call took the key's lock and waits on the table */
    assert_int_equal(wb_put(c, "item", id, "new", 3, WB_ACK_CACHE, &v), WB_OK);
    PQclear(lh_sql(&H, "COMMIT", 0, NULL, NULL, NULL));
    pthread_join(t, NULL);
    assert_int_equal(b.err, WB_OK);
    assert_int_equal(b.m.errs[0], WB_OK);
    assert_string_equal(b.m.values[0].data, "new");
    assert_int_equal(b.m.values[0].version, v);
    assert_int_equal(b.m.values[0].hit, 1); /* read again from the cache */
    assert_int_equal(b.m.errs[1], WB_ERR_NOT_FOUND);
    many_free(&b.m, 2);
    lh_key(&H, key, sizeof(key), "li:", id);
    s = lh_hget(&H, key, "v");
    assert_string_equal(s, "new");
    free(s);
    s = lh_hget(&H, key, "d");
    assert_string_equal(s, "1");
    free(s);
    wb_client_close(c);
}

/* A newer version the cache remembers (a value-less hash, as `clean` leaves
 * it) is never overwritten by the fill of an older row: the call reads the
 * row again (a bounded number of times) and then serves what it read. */
static void fill_never_overwrites_a_newer_version(void **state)
{
    char id[128], key[200];
    const char *ids[1];
    wb_client_t *c = lh_client(&H, NULL);
    redisReply *r;
    many_t m;
    char *s;

    (void)state;
    lh_id(&H, "race-newer", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    insert_row("wb_libtest_items", id, "older", "5", 0);
    r = wb_test_redis(H.redis, "HSET %s ver 900000000000000", key);
    assert_non_null(r);
    freeReplyObject(r);
    ids[0] = id;
    assert_int_equal(get_many(c, "item", ids, 1, &m), WB_OK);
    assert_string_equal(m.values[0].data, "older");
    assert_int_equal(m.values[0].hit, 0);
    assert_true(m.out.loaded >= 2); /* read again after the lost fill */
    many_free(&m, 1);
    s = lh_hget(&H, key, "v");
    assert_string_equal(s, ""); /* no value was filled */
    free(s);
    s = lh_hget(&H, key, "ver");
    assert_string_equal(s, "900000000000000");
    free(s);
    wb_client_close(c);
}

typedef struct other_loader_s {
    const char *key, *lock;
} other_loader_t;

/* Another process's loader: fills its key 300 ms later and unlocks it. */
static void *other_loader(void *arg)
{
    other_loader_t *o = arg;

    lh_sleep_ms(300);
    freeReplyObject(wb_test_redis(H.redis, "HSET %s v filled ver 9 d 0 del 0 wt 1 e item", o->key));
    freeReplyObject(wb_test_redis(H.redis, "PEXPIRE %s 60000", o->key));
    freeReplyObject(wb_test_redis(H.redis, "DEL %s", o->lock));
    return NULL;
}

/* Keys another loader holds are waited for, not loaded again: one whose
 * loader fills it is answered from that fill (a hit); one whose loader
 * never finishes times out after producer.lock_wait_ms (5 s here) — that
 * id only; a free key in the same call is loaded at once. */
static void locked_keys_are_waited_for(void **state)
{
    char filled[128], stuck[128], free_id[128], key[200], stuck_key[200];
    char lock[WB_KEY_SIDE_MAX], stuck_lock[WB_KEY_SIDE_MAX];
    const char *ids[3];
    wb_client_t *c = lh_client(&H, NULL);
    other_loader_t o = {key, lock};
    pthread_t t;
    many_t m;
    int64_t t0;

    (void)state;
    lh_id(&H, "w-filled", filled, sizeof(filled));
    lh_id(&H, "w-stuck", stuck, sizeof(stuck));
    lh_id(&H, "w-free", free_id, sizeof(free_id));
    insert_row("wb_libtest_items", filled, "from-table", "3", 0);
    insert_row("wb_libtest_items", stuck, "from-table", "3", 0);
    insert_row("wb_libtest_items", free_id, "free-value", "4", 0);
    lh_key(&H, key, sizeof(key), "li:", filled);
    wb_key_side("lock", key, lock);
    lh_key(&H, stuck_key, sizeof(stuck_key), "li:", stuck);
    wb_key_side("lock", stuck_key, stuck_lock);
    freeReplyObject(wb_test_redis(H.redis, "SET %s other PX 8000", lock));
    freeReplyObject(wb_test_redis(H.redis, "SET %s other PX 8000", stuck_lock));
    ids[0] = filled, ids[1] = stuck, ids[2] = free_id;
    pthread_create(&t, NULL, other_loader, &o);
    t0 = wb_time_mono_ms();
    assert_int_equal(get_many(c, "item", ids, 3, &m), WB_ERR_TIMEOUT);
    pthread_join(t, NULL);
    assert_true(wb_time_mono_ms() - t0 >= 5000);
    assert_int_equal(m.errs[0], WB_OK);
    assert_string_equal(m.values[0].data, "filled"); /* the other loader's, not the table's */
    assert_int_equal(m.values[0].hit, 1);
    assert_int_equal(m.errs[1], WB_ERR_TIMEOUT);
    assert_null(m.values[1].data);
    assert_int_equal(m.errs[2], WB_OK);
    assert_string_equal(m.values[2].data, "free-value");
    assert_int_equal(m.values[2].hit, 0);
    assert_int_equal(m.out.loaded, 1); /* only the free key */
    many_free(&m, 3);
    freeReplyObject(wb_test_redis(H.redis, "DEL %s", stuck_lock));
    wb_client_close(c);
}

/* Refresh-ahead as for single gets: a hit late in its TTL publishes one
 * request per dedupe window, the repeated id included. */
static void refresh_ahead_as_for_wb_get(void **state)
{
    char id[128];
    const char *ids[2];
    wb_client_t *c = lh_client(&H, NULL);
    wb_stats_t s0, s1;
    many_t m;

    (void)state;
    lh_id(&H, "m-hot", id, sizeof(id));
    PQclear(lh_sql(&H, "INSERT INTO wb_libtest_hot (key, value, version) VALUES ($1, 'warm', 3)", 1,
                   id, NULL, NULL));
    ids[0] = ids[1] = id;
    assert_int_equal(get_many(c, "hot", ids, 2, &m), WB_OK); /* miss: fill, TTL 4000 */
    many_free(&m, 2);
    wb_client_stats(c, &s0, sizeof(s0));
    lh_sleep_ms(2200); /* remaining TTL ~1800 < 2000 */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get_many(c, "hot", ids, 2, &m), WB_OK);
        assert_int_equal(m.values[0].hit, 1);
        many_free(&m, 2);
    }
    wb_client_stats(c, &s1, sizeof(s1));
    assert_int_equal(s1.refresh_requests - s0.refresh_requests, 1);
    wb_client_close(c);
}

/* Whole-call argument errors, and a caller built with an older, smaller
 * wb_get_many_t (only size, values, errs): the counters after them are
 * left alone. */
static void argument_errors(void **state)
{
    char id[128];
    const char *ids[2];
    wb_client_t *c = lh_client(&H, NULL);
    wb_value_t values[2];
    wb_err_t errs[2];
    wb_get_many_t out = {sizeof(out), values, errs, 0, 0}, old;

    (void)state;
    lh_id(&H, "m-args", id, sizeof(id));
    insert_row("wb_libtest_items", id, "a", "1", 0);
    ids[0] = id, ids[1] = id;
    assert_int_equal(wb_get_many(c, "item", NULL, 2, &out), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_get_many(c, "item", ids, 0, &out), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_get_many(c, "item", ids, 2, NULL), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_get_many(NULL, "item", ids, 2, &out), WB_ERR_INVALID_ARG);
    assert_int_equal(errs[0], WB_ERR_INVALID_ARG);
    out.size = offsetof(wb_get_many_t, errs); /* no room for errs */
    assert_int_equal(wb_get_many(c, "item", ids, 2, &out), WB_ERR_INVALID_ARG);
    out.size = sizeof(out);
    out.values = NULL;
    assert_int_equal(wb_get_many(c, "item", ids, 2, &out), WB_ERR_INVALID_ARG);
    out.values = values;
    assert_int_equal(wb_get_many(c, "nosuch", ids, 2, &out), WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(errs[0], WB_ERR_UNKNOWN_ENTITY);
    assert_int_equal(errs[1], WB_ERR_UNKNOWN_ENTITY);
    assert_null(values[0].data);

    memset(&old, 0, sizeof(old));
    old.size = offsetof(wb_get_many_t, hits);
    old.values = values;
    old.errs = errs;
    old.hits = 77;
    old.loaded = 77;
    assert_int_equal(wb_get_many(c, "item", ids, 2, &old), WB_OK);
    assert_string_equal(values[0].data, "a");
    assert_string_equal(values[1].data, "a");
    assert_int_equal(old.hits, 77);
    assert_int_equal(old.loaded, 77);
    wb_value_free(&values[0]);
    wb_value_free(&values[1]);
    wb_client_close(c);
}

/* Runs `wbctl -c <this test's config> ARGS`; out[size] gets what it
 * printed on stdout (and stderr when with_stderr). Returns its exit status
 * (-1 when it did not exit). */
static int run_wbctl(const char *args, int with_stderr, char *out, size_t size)
{
    char cfg[128], yaml[4096], cmd[1024];
    size_t n = lh_config_yaml(&H, NULL, yaml, sizeof(yaml)), got;
    FILE *f;
    int status;

    snprintf(cfg, sizeof(cfg), "/tmp/%s.wbctl.yaml", H.tag);
    f = fopen(cfg, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(yaml, 1, n, f), n);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/wbctl -c %s %s %s", WB_BINARY_DIR, cfg, args,
             with_stderr ? "2>&1" : "2>/dev/null");
    f = popen(cmd, "r");
    assert_non_null(f);
    got = fread(out, 1, size - 1, f);
    out[got] = '\0';
    status = pclose(f);
    unlink(cfg);
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

/* `wbctl get ENTITY ID...`: one line per id, in order; a single id prints
 * the value alone, as before. */
static void wbctl_get_several_ids(void **state)
{
    char a[128], b[128], none[128], args[512], out[4096], want[1024];
    int status;

    (void)state;
    lh_id(&H, "ctl-a", a, sizeof(a));
    lh_id(&H, "ctl-b", b, sizeof(b));
    lh_id(&H, "ctl-none", none, sizeof(none));
    insert_row("wb_libtest_items", a, "alpha", "1", 0);
    insert_row("wb_libtest_items", b, "beta", "2", 0);

    snprintf(args, sizeof(args), "get item %s %s", a, b);
    status = run_wbctl(args, 1, out, sizeof(out));
    snprintf(want, sizeof(want), "%s\talpha\n%s\tbeta\n", a, b);
    if (status != 0) fprintf(stderr, "%s", out);
    assert_int_equal(status, 0);
    assert_string_equal(out, want);

    snprintf(args, sizeof(args), "get item %s %s", b, none);
    status = run_wbctl(args, 0, out, sizeof(out));
    snprintf(want, sizeof(want), "%s\tbeta\n%s\n", b, none);
    assert_int_equal(status, 3);
    assert_string_equal(out, want);

    snprintf(args, sizeof(args), "get item %s", a);
    status = run_wbctl(args, 1, out, sizeof(out));
    assert_int_equal(status, 0);
    assert_string_equal(out, "alpha\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: forks before this process opened any client */
        cmocka_unit_test(concurrent_processes_load_each_key_once),
        cmocka_unit_test(mixed_ids_each_get_their_own_result),
        cmocka_unit_test(concurrent_threads_load_each_key_once),
        cmocka_unit_test(fill_never_overwrites_a_dirty_write),
        cmocka_unit_test(fill_never_overwrites_a_newer_version),
        cmocka_unit_test(locked_keys_are_waited_for),
        cmocka_unit_test(refresh_ahead_as_for_wb_get),
        cmocka_unit_test(argument_errors),
        cmocka_unit_test(wbctl_get_several_ids),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
