/* test_ttl.c — the TTL policy: the entity's TTL with jitter, its band and its limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wb_ttl.h"

/* splitmix64: any well-spread 64-bit source will do. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void jitter_stays_in_band(void **state)
{
    (void)state;
    uint64_t rng = 42;
    int64_t lo = INT64_MAX, hi = 0;

    for (int i = 0; i < 10000; i++) {
        int64_t t = wb_ttl_jitter(10000, 10, next(&rng));
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    assert_true(lo >= 9000 && lo < 9100);
    assert_true(hi <= 11000 && hi > 10900);

    lo = INT64_MAX, hi = 0;
    for (uint64_t r = 0; r < 20000; r++) {
        int64_t t = wb_ttl_jitter(60000, 10, next(&rng));

        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    assert_true(lo >= 54000 && lo < 54100);
    assert_true(hi <= 66000 && hi > 65900);
}

static void no_ttl_and_no_jitter_pass_through(void **state)
{
    (void)state;
    assert_int_equal(wb_ttl_jitter(60000, 0, 12345), 60000);
    assert_int_equal(wb_ttl_jitter(10000, -5, 12345), 10000);
    assert_int_equal(wb_ttl_jitter(0, 10, 12345), 0); /* no TTL stays no TTL */
    assert_int_equal(wb_ttl_jitter(-1, 10, 12345), -1);
    assert_int_equal(wb_ttl_jitter(1, 50, 0), 1); /* never below 1 ms */
    assert_true(wb_ttl_jitter(1, 50, 12345) >= 1);
    assert_int_equal(wb_ttl_jitter(9, 10, 7), 9); /* span rounds to 0 */
}

static void edges_and_the_cap(void **state)
{
    (void)state;
    /* rnd picks uniformly from [ttl - span, ttl + span]. */
    assert_int_equal(wb_ttl_jitter(10000, 10, 0), 9000);
    assert_int_equal(wb_ttl_jitter(10000, 10, 1000), 10000);
    assert_int_equal(wb_ttl_jitter(10000, 10, 2000), 11000);
    assert_int_equal(wb_ttl_jitter(10000, 10, 2001), 9000);
    /* Above WB_TTL_JITTER_MAX_PCT the jitter is capped: a TTL never drops
     * below half (or rises above one and a half) of the entity's. */
    assert_int_equal(WB_TTL_JITTER_MAX_PCT, 50);
    assert_int_equal(wb_ttl_jitter(10000, 100, 0), 5000);
    assert_int_equal(wb_ttl_jitter(10000, 100, 10000), 15000);
    assert_int_equal(wb_ttl_jitter(10000, 50, 0), 5000);
}

static void fill_uses_the_entity_and_config(void **state)
{
    (void)state;
    wb_config_t conf = {0};
    wb_entity_t ent = {.name = "e", .prefix = "e:", .table = "t", .ttl_ms = 10000};

    conf.producer.ttl_jitter_pct = 10;
    assert_int_equal(wb_ttl_fill(&conf, &ent, 0), 9000);
    assert_int_equal(wb_ttl_fill(&conf, &ent, 2000), 11000);
    conf.producer.ttl_jitter_pct = 0;
    assert_int_equal(wb_ttl_fill(&conf, &ent, 0), 10000);
    ent.ttl_ms = 0;
    conf.producer.ttl_jitter_pct = 10;
    assert_int_equal(wb_ttl_fill(&conf, &ent, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jitter_stays_in_band),
        cmocka_unit_test(no_ttl_and_no_jitter_pass_through),
        cmocka_unit_test(edges_and_the_cap),
        cmocka_unit_test(fill_uses_the_entity_and_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
