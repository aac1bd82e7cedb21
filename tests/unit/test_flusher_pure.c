/* test_flusher_pure.c — wb-flusher's pure rules: when a batch is due or full, each key's newest
 * event, what a failed upsert calls for, poison rounds; and ISO-8601 times (wb_time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_apply.h"
#include "fl_batch.h"
#include "wb_config.h"
#include "wb_time.h"

/* ------------------------------------------------------------ due / full */

static wb_config_t limits(void)
{
    wb_config_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.flusher.batch_max_events = 3;
    conf.flusher.batch_max_bytes = 100;
    conf.flusher.batch_max_wait_ms = 50;
    return conf;
}

static void batch_due_by_age(void **state)
{
    (void)state;
    wb_config_t conf = limits();
    fl_batch_t b;
    memset(&b, 0, sizeof(b));

    b.opened_ms = 1000;
    assert_int_equal(fl_batch_due(&b, &conf, 5000, 0), 0); /* empty: never due */
    b.n = 1;
    b.bytes = 10;
    assert_int_equal(fl_batch_full(&b, &conf), 0);
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 0), 0);
    assert_int_equal(fl_batch_due(&b, &conf, 1049, 0), 0);
    assert_int_equal(fl_batch_due(&b, &conf, 1050, 0), 1); /* batch_max_wait_ms old */
    assert_int_equal(fl_batch_due(&b, &conf, 9999, 0), 1);
}

/* Idle flush: a batch the consumer has caught up with leaves at once,
 * however young and small; caught_up never makes an empty batch due, and
 * without it the age and size rules stand. */
static void batch_due_when_caught_up(void **state)
{
    (void)state;
    wb_config_t conf = limits();
    fl_batch_t b;
    memset(&b, 0, sizeof(b));

    b.opened_ms = 1000;
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 1), 0); /* empty: never due */
    b.n = 1;
    b.bytes = 10;
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 1), 1); /* one event, 0 ms old */
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 0), 0); /* more to fetch: keeps filling */
    assert_int_equal(fl_batch_due(&b, &conf, 1049, 0), 0);
    assert_int_equal(fl_batch_due(&b, &conf, 1050, 0), 1); /* max_wait_ms stays the bound */
}

static void batch_full_by_count_or_bytes(void **state)
{
    (void)state;
    wb_config_t conf = limits();
    fl_batch_t b;
    memset(&b, 0, sizeof(b));

    b.opened_ms = 1000;
    b.n = 2;
    b.bytes = 99;
    assert_int_equal(fl_batch_full(&b, &conf), 0);
    b.n = 3; /* batch_max_events */
    assert_int_equal(fl_batch_full(&b, &conf), 1);
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 0), 1); /* full: due at once */
    b.n = 1;
    b.bytes = 100; /* batch_max_bytes */
    assert_int_equal(fl_batch_full(&b, &conf), 1);
    assert_int_equal(fl_batch_due(&b, &conf, 1000, 0), 1);
}

/* A version more than flusher.max_version_ahead_ms ahead of the clock is
 * too far; 0 turns the check off. */
static void version_ahead_bound(void **state)
{
    (void)state;
    wb_config_t conf = limits();
    const int64_t now = INT64_C(1700000000000000), hour_us = INT64_C(3600000000);

    conf.flusher.max_version_ahead_ms = 3600000;
    assert_int_equal(fl_batch_version_too_far(&conf, now, now), 0);
    assert_int_equal(fl_batch_version_too_far(&conf, 1, now), 0); /* far behind: fine */
    assert_int_equal(fl_batch_version_too_far(&conf, now + 60 * INT64_C(1000000), now), 0);
    assert_int_equal(fl_batch_version_too_far(&conf, now + hour_us, now), 0);
    assert_int_equal(fl_batch_version_too_far(&conf, now + hour_us + 1000, now), 1);
    assert_int_equal(fl_batch_version_too_far(&conf, now + 2 * hour_us, now), 1);
    assert_int_equal(fl_batch_version_too_far(&conf, WB_EVENT_VERSION_MAX, now), 1);
    conf.flusher.max_version_ahead_ms = 0;
    assert_int_equal(fl_batch_version_too_far(&conf, WB_EVENT_VERSION_MAX, now), 0);
}

/* ------------------------------------------------------- per-key newest */

static const wb_entity_t ent_a = {.name = "a", .prefix = "a:", .table = "ta"};
static const wb_entity_t ent_b = {.name = "b", .prefix = "b:", .table = "tb"};

static fl_item_t item(const wb_entity_t *ent, const char *key, int64_t version, int state)
{
    fl_item_t it;
    memset(&it, 0, sizeof(it));
    it.ent = ent;
    it.ev.key = key;
    it.ev.keylen = strlen(key);
    it.ev.version = version;
    it.state = state;
    return it;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The index's newest items, sorted. */
static size_t newest_sorted(fl_batch_t *b, size_t *out)
{
    size_t n = fl_batch_newest(b, out);
    qsort(out, n, sizeof(*out), cmp_size);
    return n;
}

static void dedup_keeps_newest_per_key(void **state)
{
    (void)state;
    fl_item_t items[] = {
        item(&ent_a, "a:1", 3, FL_ITEM_GOOD),   /* 0 */
        item(&ent_a, "a:1", 5, FL_ITEM_GOOD),   /* 1: newest of a:1 */
        item(&ent_a, "a:1", 4, FL_ITEM_GOOD),   /* 2 */
        item(&ent_a, "a:2", 7, FL_ITEM_GOOD),   /* 3: newest of a:2 */
        item(&ent_a, "a:2", 9, FL_ITEM_POISON), /* 4: not a candidate */
        item(&ent_b, "a:1", 1, FL_ITEM_GOOD),   /* 5: same bytes, other entity */
        item(&ent_a, "a:3", 2, FL_ITEM_GOOD),   /* 6 */
        item(&ent_a, "a:3", 2, FL_ITEM_GOOD),   /* 7: equal version, later wins */
        item(&ent_a, "a:4", 1, FL_ITEM_SKIP),   /* 8: skipped entity */
    };
    size_t n = sizeof(items) / sizeof(items[0]), out[16];
    fl_batch_t b;
    memset(&b, 0, sizeof(b));
    b.items = items;
    b.n = b.cap = n;

    assert_int_equal(fl_batch_dedup_reset(&b), 0);
    assert_int_equal(newest_sorted(&b, out), 4);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 5);
    assert_int_equal(out[3], 7);

    /* Kept as messages arrive: the same answer item by item. */
    b.n = 0;
    assert_int_equal(fl_batch_dedup_reset(&b), 0);
    for (size_t i = 0; i < n; i++) {
        b.n = i + 1;
        if (items[i].state == FL_ITEM_GOOD) fl_batch_dedup_add(&b, i);
    }
    assert_int_equal(newest_sorted(&b, out), 4);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[3], 7);

    /* An older event arriving later does not displace the newest. */
    fl_item_t more[] = {item(&ent_a, "k", 8, FL_ITEM_GOOD), item(&ent_a, "k", 2, FL_ITEM_GOOD)};
    fl_batch_t c;
    memset(&c, 0, sizeof(c));
    c.items = more;
    c.n = c.cap = 2;
    assert_int_equal(fl_batch_dedup_reset(&c), 0);
    assert_int_equal(newest_sorted(&c, out), 1);
    assert_int_equal(out[0], 0);
    free(b.slots);
    free(c.slots);
}

static void dedup_many_keys(void **state)
{
    (void)state;
    enum { N = 5000, KEYS = 700 };
    fl_item_t *items = calloc(N, sizeof(*items));
    char(*keys)[16] = calloc(KEYS, sizeof(*keys));
    size_t *out = calloc(N, sizeof(*out));
    int64_t best[KEYS];
    size_t best_i[KEYS];
    fl_batch_t b;

    assert_non_null(items);
    assert_non_null(keys);
    assert_non_null(out);
    for (size_t k = 0; k < KEYS; k++) {
        snprintf(keys[k], sizeof(keys[k]), "a:%zu", k);
        best[k] = -1;
    }
    srand(7);
    for (size_t i = 0; i < N; i++) {
        size_t k = (size_t)rand() % KEYS;
        int64_t v = 1 + rand() % 50;
        items[i] = item(&ent_a, keys[k], v, FL_ITEM_GOOD);
        if (v >= best[k]) {
            best[k] = v;
            best_i[k] = i;
        }
    }
    memset(&b, 0, sizeof(b));
    b.items = items;
    b.n = b.cap = N;
    assert_int_equal(fl_batch_dedup_reset(&b), 0);
    size_t n = fl_batch_newest(&b, out);
    size_t want = 0;
    for (size_t k = 0; k < KEYS; k++)
        want += best[k] >= 0;
    assert_int_equal(n, want);
    for (size_t j = 0; j < n; j++) {
        size_t k = (size_t)strtoul(items[out[j]].ev.key + 2, NULL, 10);
        assert_int_equal(out[j], best_i[k]);
    }
    free(b.slots);
    free(out);
    free(keys);
    free(items);
}

/* ------------------------------------------------- failed upsert verdicts */

static void verdict_content_errors_bisect_to_poison(void **state)
{
    (void)state;
    /* 22 data exception, 23 integrity violation, 54 program limit. */
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "22P02", 8), FL_VERDICT_SPLIT);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "22P02", 1), FL_VERDICT_POISON);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "23514", 1), FL_VERDICT_POISON);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "54001", 2), FL_VERDICT_SPLIT);
}

static void verdict_server_problems_are_outages(void **state)
{
    (void)state;
    /* The connection is gone: whatever the code said, not the rows' fault. */
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 0, "22P02", 8), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 0, "22P02", 1), FL_VERDICT_OUTAGE);
    /* Syntax error, missing table, serialization failure, shutdown, no code. */
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "42601", 8), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "42P01", 1), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "40001", 1), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "57P01", 4), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "", 4), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, NULL, 4), FL_VERDICT_OUTAGE);
}

static void verdict_size_errors_split(void **state)
{
    (void)state;
    /* Parameters over the protocol limit: split; one row alone is poison. */
    assert_int_equal(fl_apply_verdict(WB_ERR_TOO_LARGE, 1, "", 5), FL_VERDICT_SPLIT);
    assert_int_equal(fl_apply_verdict(WB_ERR_TOO_LARGE, 1, "", 1), FL_VERDICT_POISON);
    assert_int_equal(fl_apply_verdict(WB_ERR_TOO_LARGE, 0, "", 1), FL_VERDICT_POISON);
    /* Out of memory building it, statement timeout, server out of memory:
     * smaller statements may pass, but one row is retried as an outage. */
    assert_int_equal(fl_apply_verdict(WB_ERR_NOMEM, 1, "", 2), FL_VERDICT_SPLIT);
    assert_int_equal(fl_apply_verdict(WB_ERR_NOMEM, 1, "", 1), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "57014", 8), FL_VERDICT_SPLIT);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "57014", 1), FL_VERDICT_OUTAGE);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 1, "53200", 2), FL_VERDICT_SPLIT);
    assert_int_equal(fl_apply_verdict(WB_ERR_PG, 0, "57014", 8), FL_VERDICT_OUTAGE);
}

/* ------------------------------------------------------------ poison rounds */

static void settle_round_gives_poisoned_keys_another_round(void **state)
{
    (void)state;
    fl_item_t items[] = {
        item(&ent_a, "a:1", 1, FL_ITEM_GOOD),   /* 0: next-newest of a:1 */
        item(&ent_a, "a:1", 2, FL_ITEM_POISON), /* 1: a:1's winner, rejected */
        item(&ent_a, "a:2", 1, FL_ITEM_GOOD),   /* 2: a:2's winner, applied */
        item(&ent_b, "a:1", 1, FL_ITEM_GOOD),   /* 3: b's a:1, applied */
        item(&ent_a, "a:1", 0, FL_ITEM_GOOD),   /* 4: older still */
        item(&ent_a, "a:2", 0, FL_ITEM_GOOD),   /* 5: a:2's older: coalesced away */
    };
    size_t winners[6], win[] = {1, 2, 3}, pend[] = {0, 1, 2, 3, 4, 5};
    uint64_t sent = 0, deletes = 0;
    fl_batch_t b;

    items[2].ev.is_delete = 1;
    memset(&b, 0, sizeof(b));
    b.items = items;
    b.n = b.cap = 6;
    b.winners = winners;

    size_t nnext = fl_apply_settle_round(&b, win, 3, pend, 6, &sent, &deletes);
    assert_int_equal(sent, 2);
    assert_int_equal(deletes, 1);
    assert_int_equal(b.nwinners, 2);
    assert_int_equal(winners[0], 2);
    assert_int_equal(winners[1], 3);
    assert_int_equal(items[2].state, FL_ITEM_DONE);
    assert_int_equal(items[3].state, FL_ITEM_DONE);
    assert_int_equal(items[1].state, FL_ITEM_POISON);
    assert_int_equal(win[0], 1); /* the poison winner, at the front */
    /* Only a:1 of entity a gets another round: its two older events. */
    assert_int_equal(nnext, 2);
    assert_int_equal(pend[0], 0);
    assert_int_equal(pend[1], 4);

    /* No poison: nothing more to do. */
    size_t win2[] = {0};
    size_t pend2[] = {0, 4};
    assert_int_equal(fl_apply_settle_round(&b, win2, 1, pend2, 2, &sent, &deletes), 0);
    assert_int_equal(b.nwinners, 3);
    assert_int_equal(sent, 3);
}

/* ------------------------------------------------------------ ISO-8601 */

#define T_2026_11_28_1640 INT64_C(1795884000000)

static void time_valid_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } cases[] = {
        {"1970-01-01", 0},
        {"2024-02-29", INT64_C(1709164800000)},
        {"2026-11-28T16:40:00Z", T_2026_11_28_1640},
        {"2026-11-28t16:40:00z", T_2026_11_28_1640},
        {"2026-11-28 16:40", T_2026_11_28_1640},
        {"2026-11-28T16:40", T_2026_11_28_1640},
        {"2026-11-28T17:40:00+01:00", T_2026_11_28_1640},
        {"2026-11-28T18:40:00+0200", T_2026_11_28_1640},
        {"2026-11-28T15:10:00-01:30", T_2026_11_28_1640},
        {"2026-11-28T16:40:00.250Z", T_2026_11_28_1640 + 250},
        {"2026-11-28T16:40:00,5", T_2026_11_28_1640 + 500},
        {"2026-11-28T16:40:00.123456Z", T_2026_11_28_1640 + 123},
    };
    char errstr[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        if (wb_time_parse_iso8601(cases[i].s, &ms, errstr, sizeof(errstr)) != 0)
            fail_msg("%s: %s", cases[i].s, errstr);
        if (ms != cases[i].ms)
            fail_msg("%s: %lld, want %lld", cases[i].s, (long long)ms, (long long)cases[i].ms);
    }
}

static void time_invalid_forms(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "now",
        "26-11-28",
        "2026-1-28",
        "2026-13-01",
        "2026-00-10",
        "2023-02-29",
        "2026-04-31",
        "1969-12-31",
        "2026-11-28X",
        "2026-11-28T",
        "2026-11-28T16",
        "2026-11-28T24:00",
        "2026-11-28T16:60",
        "2026-11-28T16:40:61",
        "2026-11-28T16:40:00.",
        "2026-11-28T16:40:00.Z",
        "2026-11-28T16:40+25:00",
        "2026-11-28T16:40+01:60",
        "2026-11-28T16:40+1",
        "2026-11-28T16:40:00Z junk",
    };
    char errstr[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        errstr[0] = '\0';
        if (wb_time_parse_iso8601(bad[i], &ms, errstr, sizeof(errstr)) != -1)
            fail_msg("\"%s\" accepted as %lld", bad[i], (long long)ms);
        assert_int_equal(ms, 42);
        assert_non_null(strstr(errstr, "invalid time"));
    }
    int64_t ms = 42;
    assert_int_equal(wb_time_parse_iso8601(NULL, &ms, errstr, sizeof(errstr)), -1);
    assert_int_equal(ms, 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_due_by_age),
        cmocka_unit_test(batch_due_when_caught_up),
        cmocka_unit_test(batch_full_by_count_or_bytes),
        cmocka_unit_test(version_ahead_bound),
        cmocka_unit_test(dedup_keeps_newest_per_key),
        cmocka_unit_test(dedup_many_keys),
        cmocka_unit_test(verdict_content_errors_bisect_to_poison),
        cmocka_unit_test(verdict_server_problems_are_outages),
        cmocka_unit_test(verdict_size_errors_split),
        cmocka_unit_test(settle_round_gives_poisoned_keys_another_round),
        cmocka_unit_test(time_valid_forms),
        cmocka_unit_test(time_invalid_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
