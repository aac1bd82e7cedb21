/* test_library_stampede.c — libwbcache concurrency against the real services: one loader per
 * key across threads and processes, dead lock holders, versions from two processes. */
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

#define NTHREADS 16
#define LOAD_MS  300

static lh_t H;

/* Shared between the processes of a test (MAP_SHARED). */
typedef struct shared_s {
    pthread_barrier_t start;
    atomic_int loader_calls;
    atomic_int failures;
    int64_t versions[2][400];
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

static void reset_shared(void)
{
    atomic_store(&S->loader_calls, 0);
    atomic_store(&S->failures, 0);
}

/* A slow loader: the window in which a stampede would call it again. */
static wb_err_t slow_loader(void *opaque, const char *entity, const char *id, void **value,
                            size_t *len)
{
    (void)opaque, (void)entity, (void)id;
    atomic_fetch_add(&S->loader_calls, 1);
    lh_sleep_ms(LOAD_MS);
    *value = strdup("slow-value");
    *len = 10;
    return WB_OK;
}

typedef struct reader_s {
    wb_client_t *client;
    const char *id;
    int aside; /* 1: wb_get_or_load, 0: wb_get */
    pthread_t thread;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    wb_value_t out = {0};
    wb_err_t err;

    pthread_barrier_wait(&S->start); /* all readers miss at once */
    err = r->aside ? wb_get_or_load(r->client, "item", r->id, slow_loader, NULL, &out)
                   : wb_get(r->client, "item", r->id, &out);
    if (err != WB_OK || out.len != 10 || memcmp(out.data, "slow-value", 10) != 0) {
        fprintf(stderr, "reader: %s\n", wb_err2str(err));
        atomic_fetch_add(&S->failures, 1);
    }
    wb_value_free(&out);
    return NULL;
}

/* Runs n readers of id on client, started together. */
static void run_readers(wb_client_t *client, const char *id, int aside, int n)
{
    reader_t r[NTHREADS];

    for (int i = 0; i < n; i++) {
        r[i].client = client;
        r[i].id = id;
        r[i].aside = aside;
        pthread_create(&r[i].thread, NULL, reader_main, &r[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(r[i].thread, NULL);
}

/* Runs in a forked child (called before this process creates any client
 * of its own). Each child opens its own client, as a second service
 * instance would. Exits. */
static void child_readers(const char *id, int n)
{
    wb_client_t *client = lh_client(&H, NULL);

    run_readers(client, id, 1, n);
    wb_client_close(client);
    _exit(0);
}

/* 16 concurrent misses of one key from two processes (8 threads each)
 * call the loader once: the stampede lock lives in Redis. */
static void stampede_two_processes_one_loader(void **state)
{
    char id[128];
    pid_t pid[2];
    int status;

    (void)state;
    reset_shared();
    lh_id(&H, "stampede-proc", id, sizeof(id));
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) child_readers(id, NTHREADS / 2);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(atomic_load(&S->failures), 0);
    assert_int_equal(atomic_load(&S->loader_calls), 1);
}

/* 16 concurrent misses of one key in one process call the loader once. */
static void stampede_threads_one_loader(void **state)
{
    char id[128];
    wb_client_t *client = lh_client(&H, NULL);

    (void)state;
    reset_shared();
    lh_id(&H, "stampede-threads", id, sizeof(id));
    run_readers(client, id, 1, NTHREADS);
    assert_int_equal(atomic_load(&S->failures), 0);
    assert_int_equal(atomic_load(&S->loader_calls), 1);
    wb_client_close(client);
}

/* Read-through: 16 concurrent misses read the table once. */
static void stampede_read_through_one_load(void **state)
{
    char id[128];
    wb_client_t *client = lh_client(&H, NULL);
    wb_stats_t st;

    (void)state;
    reset_shared();
    lh_id(&H, "stampede-rt", id, sizeof(id));
    PQclear(lh_sql(
        &H, "INSERT INTO wb_libtest_items (key, value, version) VALUES ($1, 'slow-value', 1)", 1,
        id, NULL, NULL));
    run_readers(client, id, 0, NTHREADS);
    wb_client_stats(client, &st, sizeof(st));
    assert_int_equal(atomic_load(&S->failures), 0);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.misses + st.hits, NTHREADS);
    wb_client_close(client);
}

/* A holder that died keeps the key locked only until its lock expires;
 * then a waiting reader takes over and loads. */
static void dead_lock_holder_blocks_until_expiry(void **state)
{
    char id[128], key[200], lock[WB_KEY_SIDE_MAX];
    wb_client_t *client = lh_client(&H, NULL);
    wb_value_t out = {0};
    redisReply *r;
    int64_t t0, ms;

    (void)state;
    reset_shared();
    lh_id(&H, "deadlock", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    wb_key_side("lock", key, lock);
    r = wb_test_redis(H.redis, "SET %s dead-holder PX 800", lock);
    assert_non_null(r);
    freeReplyObject(r);
    t0 = wb_time_mono_ms();
    assert_int_equal(wb_get_or_load(client, "item", id, slow_loader, NULL, &out), WB_OK);
    ms = wb_time_mono_ms() - t0;
    assert_string_equal(out.data, "slow-value");
    wb_value_free(&out);
    assert_int_equal(atomic_load(&S->loader_calls), 1);
    assert_true(ms >= 700 + LOAD_MS - 100); /* waited for the expiry, then loaded */
    assert_true(ms < 800 + LOAD_MS + 1500);
    wb_client_close(client);
}

/* Puts to one key from two processes at once: every version is new and
 * each process sees its own versions strictly increase (invariant 1). */
static void versions_increase_across_processes(void **state)
{
    enum { PUTS = 400 };
    char id[128], key[160];
    pid_t pid[2];
    int status;

    (void)state;
    lh_id(&H, "versions", id, sizeof(id));
    lh_key(&H, key, sizeof(key), "li:", id);
    for (int p = 0; p < 2; p++) {
        pid[p] = fork();
        assert_true(pid[p] >= 0);
        if (pid[p] == 0) {
            wb_client_t *client = lh_client(&H, NULL);
            char val[32];
            int rc = 0;

            for (int i = 0; i < PUTS; i++) {
                snprintf(val, sizeof(val), "p%d-%d", p, i);
                if (wb_put(client, "item", id, val, strlen(val), WB_ACK_CACHE,
                           &S->versions[p][i]) != WB_OK)
                    rc = 1;
            }
            wb_client_close(client);
            _exit(rc);
        }
    }
    for (int p = 0; p < 2; p++) {
        assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int64_t max = 0;
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < PUTS; i++) {
            if (i > 0) assert_true(S->versions[p][i] > S->versions[p][i - 1]);
            if (S->versions[p][i] > max) max = S->versions[p][i];
        }
    /* No version was handed out twice: merge the two sorted runs. */
    for (int a = 0, b = 0; a < PUTS && b < PUTS;) {
        assert_true(S->versions[0][a] != S->versions[1][b]);
        if (S->versions[0][a] < S->versions[1][b])
            a++;
        else
            b++;
    }
    char *ver = lh_hget(&H, key, "ver");
    assert_int_equal(strtoll(ver, NULL, 10), max);
    free(ver);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Forking tests first, before this process has clients of its own. */
        cmocka_unit_test(stampede_two_processes_one_loader),
        cmocka_unit_test(versions_increase_across_processes),
        cmocka_unit_test(stampede_threads_one_loader),
        cmocka_unit_test(stampede_read_through_one_load),
        cmocka_unit_test(dead_lock_holder_blocks_until_expiry),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
