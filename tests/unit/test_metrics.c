/* test_metrics.c — registry rules, exact Prometheus text output, lock-free updates. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_metrics.h"

/* Renders reg and compares with the exact expected text. */
static void assert_render(wb_metrics_t *reg, const char *expected)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(wb_metrics_render(reg, &text, &len), WB_OK);
    assert_non_null(text);
    assert_string_equal(text, expected);
    assert_int_equal(len, strlen(expected));
    free(text);
}

static void test_empty_registry_renders_nothing(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();

    assert_non_null(reg);
    assert_render(reg, "");
    wb_metrics_destroy(reg);
    wb_metrics_destroy(NULL);
}

static void test_counter(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam = wb_metrics_counter(reg, "wb_events_total", "Events applied.", NULL);
    wb_counter_t *c = wb_metrics_counter_with(fam, NULL);

    assert_non_null(fam);
    assert_non_null(c);
    /* An unlabelled counter is exported as 0 before its first event. */
    assert_render(reg, "# HELP wb_events_total Events applied.\n"
                       "# TYPE wb_events_total counter\n"
                       "wb_events_total 0\n");
    wb_counter_add(c, 3);
    wb_counter_add(c, 4);
    assert_int_equal(wb_counter_value(c), 7);
    /* The same child every time. */
    assert_ptr_equal(wb_metrics_counter_with(fam, NULL), c);
    assert_render(reg, "# HELP wb_events_total Events applied.\n"
                       "# TYPE wb_events_total counter\n"
                       "wb_events_total 7\n");
    wb_metrics_destroy(reg);
}

static void test_labelled_gauge(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *lag =
        wb_metrics_gauge(reg, "wb_consumer_lag", "Messages behind.", "topic", "partition", NULL);
    wb_metric_family_t *unused = wb_metrics_gauge(reg, "wb_unused", "Never set.", "x", NULL);
    wb_gauge_t *p0, *p1;

    assert_non_null(lag);
    assert_non_null(unused);
    p0 = wb_metrics_gauge_with(lag, "changes", "0", NULL);
    p1 = wb_metrics_gauge_with(lag, "changes", "1", NULL);
    assert_non_null(p0);
    assert_non_null(p1);
    assert_ptr_not_equal(p0, p1);
    assert_ptr_equal(wb_metrics_gauge_with(lag, "changes", "0", NULL), p0);

    wb_gauge_set(p0, 12);
    wb_gauge_add(p0, -1);
    wb_gauge_set(p1, 2.5);
    wb_gauge_add(p1, 0.25);
    assert_true(wb_gauge_value(p0) == 11.0);
    /* A labelled family with no child yet is left out. */
    assert_render(reg, "# HELP wb_consumer_lag Messages behind.\n"
                       "# TYPE wb_consumer_lag gauge\n"
                       "wb_consumer_lag{topic=\"changes\",partition=\"0\"} 11\n"
                       "wb_consumer_lag{topic=\"changes\",partition=\"1\"} 2.75\n");
    wb_metrics_destroy(reg);
}

static void test_gauge_special_values(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam = wb_metrics_gauge(reg, "g", "", "k", NULL);

    wb_gauge_set(wb_metrics_gauge_with(fam, "inf", NULL), INFINITY);
    wb_gauge_set(wb_metrics_gauge_with(fam, "ninf", NULL), -INFINITY);
    wb_gauge_set(wb_metrics_gauge_with(fam, "nan", NULL), NAN);
    wb_gauge_set(wb_metrics_gauge_with(fam, "tenth", NULL), 0.1);
    wb_gauge_set(wb_metrics_gauge_with(fam, "big", NULL), 1e21);
    wb_gauge_set(wb_metrics_gauge_with(fam, "neg", NULL), -42);
    assert_render(reg, "# HELP g \n"
                       "# TYPE g gauge\n"
                       "g{k=\"inf\"} +Inf\n"
                       "g{k=\"ninf\"} -Inf\n"
                       "g{k=\"nan\"} NaN\n"
                       "g{k=\"tenth\"} 0.1\n"
                       "g{k=\"big\"} 1e+21\n"
                       "g{k=\"neg\"} -42\n");
    wb_metrics_destroy(reg);
}

static void test_histogram(void **state)
{
    /* A trailing +Inf is accepted and not doubled. */
    static const double buckets[] = {0.5, 1, 2.5, INFINITY};
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam =
        wb_metrics_histogram(reg, "wb_batch_seconds", "Batch latency.", buckets, 4, "table", NULL);
    wb_histogram_t *h = wb_metrics_histogram_with(fam, "users", NULL);

    assert_non_null(fam);
    assert_non_null(h);
    wb_histogram_observe(h, 0.25);
    wb_histogram_observe(h, 0.5); /* le is inclusive */
    wb_histogram_observe(h, 0.75);
    wb_histogram_observe(h, 3);
    wb_histogram_observe(h, 100);
    wb_histogram_observe(h, NAN); /* ignored */
    assert_render(reg, "# HELP wb_batch_seconds Batch latency.\n"
                       "# TYPE wb_batch_seconds histogram\n"
                       "wb_batch_seconds_bucket{table=\"users\",le=\"0.5\"} 2\n"
                       "wb_batch_seconds_bucket{table=\"users\",le=\"1\"} 3\n"
                       "wb_batch_seconds_bucket{table=\"users\",le=\"2.5\"} 3\n"
                       "wb_batch_seconds_bucket{table=\"users\",le=\"+Inf\"} 5\n"
                       "wb_batch_seconds_sum{table=\"users\"} 104.5\n"
                       "wb_batch_seconds_count{table=\"users\"} 5\n");
    wb_metrics_destroy(reg);
}

static void test_histogram_unlabelled_and_no_buckets(void **state)
{
    static const double buckets[] = {0.001, 0.01};
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *a = wb_metrics_histogram(reg, "a_seconds", "A.", buckets, 2, NULL);
    wb_metric_family_t *b = wb_metrics_histogram(reg, "b_bytes", "B.", NULL, 0, NULL);

    assert_non_null(a);
    assert_non_null(b);
    wb_histogram_observe(wb_metrics_histogram_with(a, NULL), 0.005);
    wb_histogram_observe(wb_metrics_histogram_with(b, NULL), 7);
    wb_histogram_observe(wb_metrics_histogram_with(b, NULL), 9);
    assert_render(reg, "# HELP a_seconds A.\n"
                       "# TYPE a_seconds histogram\n"
                       "a_seconds_bucket{le=\"0.001\"} 0\n"
                       "a_seconds_bucket{le=\"0.01\"} 1\n"
                       "a_seconds_bucket{le=\"+Inf\"} 1\n"
                       "a_seconds_sum 0.005\n"
                       "a_seconds_count 1\n"
                       "# HELP b_bytes B.\n"
                       "# TYPE b_bytes histogram\n"
                       "b_bytes_bucket{le=\"+Inf\"} 2\n"
                       "b_bytes_sum 16\n"
                       "b_bytes_count 2\n");
    wb_metrics_destroy(reg);
}

static void test_escaping(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam = wb_metrics_counter(
        reg, "wb_dead_letters_total", "Poison \"events\" \\ per\nreason.", "reason", NULL);

    wb_counter_add(wb_metrics_counter_with(fam, "bad \"json\" at C:\\x\nline 2", NULL), 1);
    assert_render(reg,
                  "# HELP wb_dead_letters_total Poison \"events\" \\\\ per\\nreason.\n"
                  "# TYPE wb_dead_letters_total counter\n"
                  "wb_dead_letters_total{reason=\"bad \\\"json\\\" at C:\\\\x\\nline 2\"} 1\n");
    wb_metrics_destroy(reg);
}

static void test_invalid_names_rejected(void **state)
{
    static const double unsorted[] = {1, 0.5};
    static const double equal[] = {1, 1};
    static const double has_nan[] = {0.5, NAN};
    static const double ok[] = {1};
    wb_metrics_t *reg = wb_metrics_new();
    wb_metric_family_t *fam;

    assert_null(wb_metrics_counter(reg, "", "h", NULL));
    assert_null(wb_metrics_counter(reg, NULL, "h", NULL));
    assert_null(wb_metrics_counter(reg, "1abc", "h", NULL));
    assert_null(wb_metrics_counter(reg, "a-b", "h", NULL));
    assert_null(wb_metrics_counter(reg, "a b", "h", NULL));
    assert_null(wb_metrics_gauge(reg, "caf\xc3\xa9", "h", NULL));
    assert_null(wb_metrics_counter(NULL, "a", "h", NULL));
    assert_non_null(wb_metrics_counter(reg, ":wb_rule:rate5m_1", "h", NULL));
    assert_non_null(wb_metrics_gauge(reg, "_x9", NULL, NULL));

    /* Duplicates, whatever the type. */
    assert_null(wb_metrics_gauge(reg, "_x9", "h", NULL));

    /* Label names: no ':', no reserved "__", distinct, at most two. */
    assert_null(wb_metrics_gauge(reg, "l1", "h", "a:b", NULL));
    assert_null(wb_metrics_gauge(reg, "l2", "h", "__name", NULL));
    assert_null(wb_metrics_gauge(reg, "l3", "h", "9x", NULL));
    assert_null(wb_metrics_gauge(reg, "l4", "h", "p", "p", NULL));
    assert_null(wb_metrics_gauge(reg, "l5", "h", "a", "b", "c", NULL));
    assert_null(wb_metrics_histogram(reg, "l6", "h", ok, 1, "le", NULL));
    assert_non_null(wb_metrics_gauge(reg, "l7", "h", "le", NULL)); /* fine outside histograms */

    /* Buckets must strictly increase and be numbers. */
    assert_null(wb_metrics_histogram(reg, "h1", "h", unsorted, 2, NULL));
    assert_null(wb_metrics_histogram(reg, "h2", "h", equal, 2, NULL));
    assert_null(wb_metrics_histogram(reg, "h3", "h", has_nan, 2, NULL));
    assert_null(wb_metrics_histogram(reg, "h4", "h", NULL, 3, NULL));

    /* Children: the value count must match, and the type too. */
    fam = wb_metrics_counter(reg, "c", "h", "a", "b", NULL);
    assert_non_null(fam);
    assert_null(wb_metrics_counter_with(fam, NULL));
    assert_null(wb_metrics_counter_with(fam, "1", NULL));
    assert_null(wb_metrics_counter_with(fam, "1", "2", "3", NULL));
    assert_null(wb_metrics_gauge_with(fam, "1", "2", NULL));
    assert_null(wb_metrics_histogram_with(fam, "1", "2", NULL));
    assert_non_null(wb_metrics_counter_with(fam, "1", "2", NULL));
    assert_null(wb_metrics_counter_with(NULL, NULL));

    /* A rejected registration left nothing behind. */
    assert_render(reg, "# HELP :wb_rule:rate5m_1 h\n"
                       "# TYPE :wb_rule:rate5m_1 counter\n"
                       ":wb_rule:rate5m_1 0\n"
                       "# HELP _x9 \n"
                       "# TYPE _x9 gauge\n"
                       "_x9 0\n"
                       "# HELP c h\n"
                       "# TYPE c counter\n"
                       "c{a=\"1\",b=\"2\"} 0\n");
    wb_metrics_destroy(reg);
}

static void test_null_handles_are_noops(void **state)
{
    char *text = (char *)"x";
    size_t len = 9;

    wb_counter_add(NULL, 1);
    wb_gauge_set(NULL, 1);
    wb_gauge_add(NULL, 1);
    wb_histogram_observe(NULL, 1);
    assert_int_equal(wb_counter_value(NULL), 0);
    assert_true(wb_gauge_value(NULL) == 0.0);
    assert_int_equal(wb_metrics_render(NULL, &text, &len), WB_ERR_INVALID_ARG);
    assert_null(text);
    assert_int_equal(len, 0);
}

typedef struct collect_state_s {
    wb_metric_family_t *lag;
    int calls;
} collect_state_t;

/* Plays the daemon: refreshes per-partition lag at scrape time. */
static void collect(wb_metrics_t *reg, void *opaque)
{
    collect_state_t *st = opaque;

    st->calls++;
    wb_gauge_set(wb_metrics_gauge_with(st->lag, "0", NULL), 10.0 * st->calls);
}

static void test_collect_cb_runs_before_render(void **state)
{
    wb_metrics_t *reg = wb_metrics_new();
    collect_state_t st = {0};

    st.lag = wb_metrics_gauge(reg, "lag", "Lag.", "partition", NULL);
    wb_metrics_set_collect_cb(reg, collect, &st);
    assert_render(reg, "# HELP lag Lag.\n# TYPE lag gauge\nlag{partition=\"0\"} 10\n");
    assert_render(reg, "# HELP lag Lag.\n# TYPE lag gauge\nlag{partition=\"0\"} 20\n");
    assert_int_equal(st.calls, 2);
    wb_metrics_set_collect_cb(reg, NULL, NULL);
    assert_render(reg, "# HELP lag Lag.\n# TYPE lag gauge\nlag{partition=\"0\"} 20\n");
    assert_int_equal(st.calls, 2);
    wb_metrics_destroy(reg);
}

#define N_PER_THREAD 200000

typedef struct hammer_s {
    wb_counter_t *c;
    wb_gauge_t *g;
    wb_histogram_t *h;
    wb_metric_family_t *fam; /* labelled: children created concurrently */
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *hm = arg;
    int i;

    for (i = 0; i < N_PER_THREAD; i++) {
        wb_counter_add(hm->c, 1);
        wb_gauge_add(hm->g, 1.0);
        wb_histogram_observe(hm->h, (i & 1) ? 0.5 : 2.0);
        if (i % 1000 == 0) wb_counter_add(wb_metrics_counter_with(hm->fam, "k", NULL), 1);
    }
    return NULL;
}

static void test_concurrent_updates_are_exact(void **state)
{
    static const double buckets[] = {1};
    wb_metrics_t *reg = wb_metrics_new();
    hammer_t hm;
    pthread_t t1, t2;
    char *text = NULL;
    size_t len;
    char expected[1024];

    hm.c = wb_metrics_counter_with(wb_metrics_counter(reg, "c_total", "C.", NULL), NULL);
    hm.g = wb_metrics_gauge_with(wb_metrics_gauge(reg, "g", "G.", NULL), NULL);
    hm.h = wb_metrics_histogram_with(wb_metrics_histogram(reg, "h", "H.", buckets, 1, NULL), NULL);
    hm.fam = wb_metrics_counter(reg, "k_total", "K.", "key", NULL);
    assert_int_equal(pthread_create(&t1, NULL, hammer, &hm), 0);
    assert_int_equal(pthread_create(&t2, NULL, hammer, &hm), 0);
    /* Rendering while the writers run must be safe (and sane). */
    assert_int_equal(wb_metrics_render(reg, &text, &len), WB_OK);
    free(text);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);

    assert_int_equal(wb_counter_value(hm.c), 2 * N_PER_THREAD);
    assert_true(wb_gauge_value(hm.g) == 2.0 * N_PER_THREAD);
    snprintf(expected, sizeof expected,
             "# HELP c_total C.\n# TYPE c_total counter\nc_total %d\n"
             "# HELP g G.\n# TYPE g gauge\ng %d\n"
             "# HELP h H.\n# TYPE h histogram\n"
             "h_bucket{le=\"1\"} %d\nh_bucket{le=\"+Inf\"} %d\nh_sum %d\nh_count %d\n"
             "# HELP k_total K.\n# TYPE k_total counter\nk_total{key=\"k\"} %d\n",
             2 * N_PER_THREAD, 2 * N_PER_THREAD, N_PER_THREAD, 2 * N_PER_THREAD,
             (int)(N_PER_THREAD * 0.5 + N_PER_THREAD * 2.0), 2 * N_PER_THREAD,
             2 * (N_PER_THREAD / 1000));
    assert_render(reg, expected);
    wb_metrics_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_registry_renders_nothing),
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_labelled_gauge),
        cmocka_unit_test(test_gauge_special_values),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_unlabelled_and_no_buckets),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_names_rejected),
        cmocka_unit_test(test_null_handles_are_noops),
        cmocka_unit_test(test_collect_cb_runs_before_render),
        cmocka_unit_test(test_concurrent_updates_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
