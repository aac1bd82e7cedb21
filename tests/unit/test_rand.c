/* test_rand.c — the one PRNG: splitmix64's reference sequence, bounded draws, per-thread streams.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wb_rand.h"

/* The published splitmix64 outputs for seed 1234567 (Vigna's reference
 * implementation), so a change of the generator cannot go unnoticed: the
 * backoff, TTL jitter and `wbctl load` values depend on it. */
static void next_matches_the_reference(void **state)
{
    static const uint64_t want[] = {6457827717110365317ULL, 3203168211198807973ULL,
                                    9817491932198370423ULL, 4593380528125082431ULL,
                                    16408922859458223821ULL};
    uint64_t s = 1234567;

    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(wb_rand_next(&s), want[i]);
}

static void same_seed_same_sequence(void **state)
{
    uint64_t a = 42, b = 42, c = 43;
    int differ = 0;

    (void)state;
    for (int i = 0; i < 100; i++) {
        uint64_t x = wb_rand_next(&a);

        assert_int_equal(x, wb_rand_next(&b));
        differ |= x != wb_rand_next(&c);
    }
    assert_true(differ);
}

/* Every value of a small range comes up, nothing outside it. */
static void upto_stays_in_range_and_covers_it(void **state)
{
    uint64_t s = 7, seen[11] = {0};

    (void)state;
    for (int i = 0; i < 11000; i++) {
        uint64_t r = wb_rand_upto(&s, 10);

        assert_true(r <= 10);
        seen[r]++;
    }
    for (int i = 0; i <= 10; i++)
        assert_in_range(seen[i], 700, 1300);
    for (int i = 0; i < 100; i++)
        assert_int_equal(wb_rand_upto(&s, 0), 0);
    /* The whole range, and a range where rejection matters most. */
    (void)wb_rand_upto(&s, UINT64_MAX);
    for (int i = 0; i < 100; i++)
        assert_true(wb_rand_upto(&s, UINT64_MAX / 2 + 1) <= UINT64_MAX / 2 + 1);
}

static void unit_is_in_zero_one(void **state)
{
    uint64_t s = 99;
    double sum = 0;

    (void)state;
    for (int i = 0; i < 10000; i++) {
        double u = wb_rand_unit(&s);

        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(sum / 10000 > 0.45 && sum / 10000 < 0.55);
}

static void *draw_one(void *arg)
{
    *(uint64_t *)arg = wb_rand();
    return NULL;
}

/* Each thread has its own stream, seeded apart. */
static void threads_draw_different_streams(void **state)
{
    uint64_t r[4];
    pthread_t t[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, draw_one, &r[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_true(r[i] != r[j]);
    assert_true(wb_rand() != wb_rand());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_matches_the_reference),
        cmocka_unit_test(same_seed_same_sequence),
        cmocka_unit_test(upto_stays_in_range_and_covers_it),
        cmocka_unit_test(unit_is_in_zero_one),
        cmocka_unit_test(threads_draw_different_streams),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
