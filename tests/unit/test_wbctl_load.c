/* test_wbctl_load.c — the pure parts of `wbctl load`: options, zipf sampler, values, histogram.
 * load_util.c belongs to the wbctl executable, so it is compiled into this test directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load_util.h"
#include "wb_rand.h"

static void mix_parses_and_picks(void **state)
{
    wbl_mix_t m;
    char err[128];

    (void)state;
    assert_int_equal(wbl_parse_mix("put=80,get=15,del=5", &m, err, sizeof(err)), 0);
    assert_int_equal(m.put, 80);
    assert_int_equal(m.get, 15);
    assert_int_equal(m.del, 5);
    assert_int_equal(wbl_mix_pick(&m, 0), WBL_PUT);
    assert_int_equal(wbl_mix_pick(&m, 79), WBL_PUT);
    assert_int_equal(wbl_mix_pick(&m, 80), WBL_GET);
    assert_int_equal(wbl_mix_pick(&m, 94), WBL_GET);
    assert_int_equal(wbl_mix_pick(&m, 95), WBL_DEL);
    assert_int_equal(wbl_mix_pick(&m, 99), WBL_DEL);
    assert_int_equal(wbl_parse_mix("put=60,get=15,del=5,through=20", &m, err, sizeof(err)), 0);
    assert_int_equal(m.through, 20);
    assert_int_equal(wbl_mix_pick(&m, 79), WBL_DEL);
    assert_int_equal(wbl_mix_pick(&m, 80), WBL_THROUGH);
    assert_int_equal(wbl_mix_pick(&m, 99), WBL_THROUGH);
    assert_int_equal(wbl_parse_mix("get=100", &m, err, sizeof(err)), 0);
    assert_int_equal(m.put, 0);
    assert_int_equal(wbl_mix_pick(&m, 0), WBL_GET);

    assert_int_equal(wbl_parse_mix("put=80,get=10", &m, err, sizeof(err)), -1);
    assert_string_equal(err, "--mix: percentages add up to 90, not 100");
    assert_int_equal(wbl_parse_mix("put=50,put=50", &m, err, sizeof(err)), -1);
    assert_string_equal(err, "--mix: put given twice");
    assert_int_equal(wbl_parse_mix("write=100", &m, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_mix("put=x", &m, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_mix("put=101", &m, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_mix("", &m, err, sizeof(err)), -1);
}

static void dist_and_counts_parse(void **state)
{
    wbl_dist_t d;
    uint64_t n;
    char err[128];

    (void)state;
    assert_int_equal(wbl_parse_dist("uniform", &d, err, sizeof(err)), 0);
    assert_false(d.zipf);
    assert_int_equal(wbl_parse_dist("zipf:1.1", &d, err, sizeof(err)), 0);
    assert_true(d.zipf);
    assert_true(d.s > 1.09 && d.s < 1.11);
    assert_int_equal(wbl_parse_dist("zipf:", &d, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_dist("zipf:0", &d, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_dist("zipf:1x", &d, err, sizeof(err)), -1);
    assert_int_equal(wbl_parse_dist("normal", &d, err, sizeof(err)), -1);

    assert_int_equal(wbl_parse_count("100000", 1000000, &n), 0);
    assert_int_equal(n, 100000);
    assert_int_equal(wbl_parse_count("2m", 10000000, &n), 0);
    assert_int_equal(n, 2000000);
    assert_int_equal(wbl_parse_count("10k", 10000, &n), 0);
    assert_int_equal(wbl_parse_count("10k", 9999, &n), -1);
    assert_int_equal(wbl_parse_count("0", 100, &n), -1);
    assert_int_equal(wbl_parse_count("-5", 100, &n), -1);
    assert_int_equal(wbl_parse_count("5x", 100, &n), -1);
    assert_int_equal(wbl_parse_count("", 100, &n), -1);
}

/* Empirical frequencies follow 1/(k+1)^s: rank 0 about twice as often as
 * rank 1 for s = 1, and the CDF covers every rank. */
static void zipf_follows_the_law(void **state)
{
    enum { N = 1000, DRAWS = 400000 };
    wbl_zipf_t *z = wbl_zipf_new(N, 1.0);
    uint64_t *count = calloc(N, sizeof(*count)), rng = 7;
    double h = 0;

    (void)state;
    for (int k = 1; k <= N; k++)
        h += 1.0 / k;
    for (int i = 0; i < DRAWS; i++)
        count[wbl_zipf_sample(z, wb_rand_unit(&rng))]++;
    double p0 = (double)count[0] / DRAWS, p1 = (double)count[1] / DRAWS;
    assert_true(p0 > 0.95 / h && p0 < 1.05 / h);
    assert_true(p1 > 0.95 / (2 * h) && p1 < 1.05 / (2 * h));
    assert_int_equal(wbl_zipf_sample(z, 0.0), 0);
    assert_int_equal(wbl_zipf_sample(z, 0.9999999999), N - 1);
    wbl_zipf_destroy(z);
    free(count);
    assert_null(wbl_zipf_new(0, 1.0));
}

static void values_are_deterministic_and_sized(void **state)
{
    char a[300], b[300], hex[600];

    (void)state;
    size_t n = wbl_value(a, 200, WB_VT_TEXT, 5, 9);
    assert_int_equal(n, 200);
    assert_int_equal(wbl_value(b, 200, WB_VT_TEXT, 5, 9), 200);
    assert_memory_equal(a, b, 200);
    wbl_value(b, 200, WB_VT_TEXT, 5, 10);
    assert_memory_not_equal(a, b, 200);

    n = wbl_value(a, 200, WB_VT_JSONB, 5, 9);
    assert_int_equal(n, 200);
    a[n] = '\0';
    /* PostgreSQL's jsonb text form: ordered keys, ", " and ": ". */
    assert_int_equal(strncmp(a, "{\"k\": 5, \"p\": \"", 15), 0);
    assert_non_null(strstr(a, "\", \"s\": 9}"));
    n = wbl_value(a, 1, WB_VT_JSONB, 5, 9); /* too small: the minimal document */
    a[n] = '\0';
    assert_string_equal(a, "{\"k\": 5, \"p\": \"\", \"s\": 9}");

    assert_int_equal(wbl_value(a, 64, WB_VT_BYTEA, 1, 1), 64);
    wbl_hex(hex, "\x00\xff\x10", 3);
    assert_string_equal(hex, "00ff10");
}

static void histogram_quantiles(void **state)
{
    wbl_hist_t *h = calloc(1, sizeof(*h)), *g = calloc(1, sizeof(*g));

    (void)state;
    assert_int_equal(wbl_hist_quantile(h, 0.5), 0);
    /* 1..100000 ns uniformly: p50 ~ 50 us, p99 ~ 99 us, within 3 %. */
    for (uint64_t v = 1; v <= 100000; v++)
        wbl_hist_add(v % 2 ? h : g, v);
    wbl_hist_merge(h, g);
    assert_int_equal(h->n, 100000);
    assert_int_equal(h->max, 100000);
    uint64_t p50 = wbl_hist_quantile(h, 0.5), p99 = wbl_hist_quantile(h, 0.99);
    assert_true(p50 > 48500 && p50 < 51500);
    assert_true(p99 > 96000 && p99 < 102000);
    assert_int_equal(wbl_hist_quantile(h, 1.0), 100000);
    assert_true(wbl_hist_quantile(h, 0.00001) <= 2);

    /* Exact below 64 ns; huge values land in the last bucket. */
    memset(g, 0, sizeof(*g));
    wbl_hist_add(g, 7);
    assert_int_equal(wbl_hist_quantile(g, 0.5), 7);
    wbl_hist_add(g, UINT64_MAX);
    assert_int_equal(wbl_hist_quantile(g, 1.0), UINT64_MAX);
    free(h);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mix_parses_and_picks),
        cmocka_unit_test(dist_and_counts_parse),
        cmocka_unit_test(zipf_follows_the_law),
        cmocka_unit_test(values_are_deterministic_and_sized),
        cmocka_unit_test(histogram_quantiles),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
