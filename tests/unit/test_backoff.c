/* test_backoff.c — capped exponential backoff: bounds, growth, no overflow, determinism, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wb_backoff.h"

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Every delay lies in [cap/2, cap] with cap = min(max, initial * 2^attempt). */
static void check_bounds(int64_t initial, int64_t max, uint64_t seed, int steps)
{
    wb_backoff_t b;
    int64_t cap = initial;
    int i;

    wb_backoff_init(&b, initial, max, seed);
    for (i = 0; i < steps; i++) {
        int64_t d = wb_backoff_next_ms(&b);

        assert_in_range(d, cap / 2, cap);
        cap = cap > max / 2 ? max : min64(cap * 2, max);
    }
}

static void test_bounds_over_many_attempts(void **state)
{
    uint64_t seed;

    for (seed = 0; seed < 50; seed++) {
        check_bounds(100, 30000, seed, 200);
        check_bounds(1, 1, seed, 100);
        check_bounds(7, 1000, seed, 100);
        check_bounds(1, INT64_MAX, seed, 200); /* doubling up to the type's limit */
        check_bounds(INT64_MAX / 3, INT64_MAX, seed, 10);
    }
}

static void test_growth_then_plateau(void **state)
{
    wb_backoff_t b;
    int i;

    wb_backoff_init(&b, 100, 30000, 42);
    assert_int_equal(wb_backoff_cap_ms(&b), 100);
    wb_backoff_next_ms(&b);
    assert_int_equal(wb_backoff_cap_ms(&b), 200);
    for (i = 0; i < 7; i++)
        wb_backoff_next_ms(&b);
    assert_int_equal(wb_backoff_cap_ms(&b), 25600);
    wb_backoff_next_ms(&b);
    assert_int_equal(wb_backoff_cap_ms(&b), 30000);
    /* At the plateau the wait is never shorter than half the cap. */
    for (i = 0; i < 1000; i++)
        assert_in_range(wb_backoff_next_ms(&b), 15000, 30000);
}

static void test_huge_attempt_counts(void **state)
{
    wb_backoff_t b;
    int i;

    wb_backoff_init(&b, 250, 60000, 1);
    b.attempt = UINT32_MAX - 5; /* as after years of retrying */
    for (i = 0; i < 20; i++)
        assert_in_range(wb_backoff_next_ms(&b), 30000, 60000);
    assert_int_equal(b.attempt, UINT32_MAX); /* saturates, no wrap to step 0 */
    assert_int_equal(wb_backoff_cap_ms(&b), 60000);

    wb_backoff_init(&b, 1, INT64_MAX, 1);
    b.attempt = 1000;
    assert_int_equal(wb_backoff_cap_ms(&b), INT64_MAX);
    assert_in_range(wb_backoff_next_ms(&b), INT64_MAX / 2, INT64_MAX);
}

static void test_deterministic_with_seed(void **state)
{
    wb_backoff_t a, b, c;
    int i, differ = 0;

    wb_backoff_init(&a, 100, 30000, 12345);
    wb_backoff_init(&b, 100, 30000, 12345);
    wb_backoff_init(&c, 100, 30000, 54321);
    for (i = 0; i < 100; i++) {
        int64_t da = wb_backoff_next_ms(&a), dc = wb_backoff_next_ms(&c);

        assert_int_equal(da, wb_backoff_next_ms(&b));
        differ += da != dc;
    }
    /* Another seed spreads retries differently (that is the point of jitter). */
    assert_true(differ > 50);
}

static void test_jitter_spreads(void **state)
{
    wb_backoff_t b;
    int64_t lo = INT64_MAX, hi = 0;
    int i;

    /* Many clients at the same step must not all wait the same time. */
    for (i = 0; i < 1000; i++) {
        int64_t d;

        wb_backoff_init(&b, 1000, 1000, (uint64_t)i);
        d = wb_backoff_next_ms(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 550);
    assert_true(hi > 950);
}

static void test_reset(void **state)
{
    wb_backoff_t b;
    int i;

    wb_backoff_init(&b, 50, 5000, 9);
    for (i = 0; i < 20; i++)
        wb_backoff_next_ms(&b);
    assert_int_equal(wb_backoff_cap_ms(&b), 5000);
    wb_backoff_reset(&b);
    assert_int_equal(b.attempt, 0);
    assert_int_equal(wb_backoff_cap_ms(&b), 50);
    assert_in_range(wb_backoff_next_ms(&b), 25, 50);
}

static void test_degenerate_parameters(void **state)
{
    wb_backoff_t b;

    wb_backoff_init(&b, 0, 0, 0); /* taken as initial = max = 1 */
    assert_int_equal(wb_backoff_cap_ms(&b), 1);
    assert_in_range(wb_backoff_next_ms(&b), 0, 1);
    wb_backoff_init(&b, 500, 10, 0); /* max below initial: max = initial */
    assert_int_equal(wb_backoff_cap_ms(&b), 500);
    assert_in_range(wb_backoff_next_ms(&b), 250, 500);
    assert_in_range(wb_backoff_next_ms(&b), 250, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_over_many_attempts),
        cmocka_unit_test(test_growth_then_plateau),
        cmocka_unit_test(test_huge_attempt_counts),
        cmocka_unit_test(test_deterministic_with_seed),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_degenerate_parameters),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
