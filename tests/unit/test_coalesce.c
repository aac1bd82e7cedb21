/* test_coalesce.c — the newest event per key survives a batch, grouped by table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_coalesce.h"

#define ITEM(g, k, v)                                                                              \
    {                                                                                              \
        (g), (k), sizeof(k) - 1, (v)                                                               \
    }

static void keeps_highest_version_per_key(void **state)
{
    (void)state;
    /* Reordered and duplicated versions of two keys. */
    fl_coalesce_item_t in[] = {
        ITEM(0, "a", 5), ITEM(0, "b", 2), ITEM(0, "a", 9),
        ITEM(0, "a", 7), ITEM(0, "b", 2), ITEM(0, "b", 1),
    };
    size_t out[6];
    size_t n = fl_coalesce(in, 6, out);

    assert_int_equal(n, 2);
    assert_int_equal(in[out[0]].version, 9);
    assert_memory_equal(in[out[0]].key, "a", 1);
    assert_int_equal(in[out[1]].version, 2);
    assert_memory_equal(in[out[1]].key, "b", 1);
    /* Equal versions: the later duplicate wins (index 4, not 1). */
    assert_int_equal(out[1], 4);
}

static void same_key_in_two_groups_is_two_rows(void **state)
{
    (void)state;
    fl_coalesce_item_t in[] = {ITEM(1, "k", 3), ITEM(0, "k", 4), ITEM(1, "k", 8), ITEM(0, "j", 1)};
    size_t out[4];
    size_t n = fl_coalesce(in, 4, out);

    assert_int_equal(n, 3);
    /* Grouped by group, then key order. */
    assert_int_equal(in[out[0]].group, 0);
    assert_memory_equal(in[out[0]].key, "j", 1);
    assert_int_equal(in[out[1]].group, 0);
    assert_int_equal(in[out[1]].version, 4);
    assert_int_equal(in[out[2]].group, 1);
    assert_int_equal(in[out[2]].version, 8);
}

static void keys_compare_as_bytes_not_strings(void **state)
{
    (void)state;
    /* "ab" vs "ab\0" and a key that is a prefix of another are distinct. */
    fl_coalesce_item_t in[] = {
        {0, "ab", 2, 1},
        {0, "ab\0", 3, 2},
        {0, "a", 1, 3},
        {0, "ab", 2, 4},
    };
    size_t out[4];
    size_t n = fl_coalesce(in, 4, out);

    assert_int_equal(n, 3);
    assert_int_equal(in[out[0]].keylen, 1);
    assert_int_equal(in[out[1]].keylen, 2);
    assert_int_equal(in[out[1]].version, 4);
    assert_int_equal(in[out[2]].keylen, 3);
}

static void empty_and_single(void **state)
{
    (void)state;
    fl_coalesce_item_t one = ITEM(0, "x", 1);
    size_t out[1];

    assert_int_equal(fl_coalesce(NULL, 0, out), 0);
    assert_int_equal(fl_coalesce(&one, 1, out), 1);
    assert_int_equal(out[0], 0);
}

/* Against a brute-force model on random batches. */
static void matches_model_on_random_batches(void **state)
{
    (void)state;
    enum { N = 2000, K = 50 };
    static char keys[K][8];
    fl_coalesce_item_t *in = calloc(N, sizeof(*in));
    size_t *out = calloc(N, sizeof(*out));
    unsigned seed = 12345;

    assert_non_null(in);
    assert_non_null(out);
    for (int k = 0; k < K; k++)
        snprintf(keys[k], sizeof(keys[k]), "k%d", k);
    for (int round = 0; round < 20; round++) {
        int64_t best[2][K];
        size_t n, expect = 0;

        memset(best, 0, sizeof(best));
        for (int i = 0; i < N; i++) {
            int k = rand_r(&seed) % K, g = rand_r(&seed) % 2;
            in[i] = (fl_coalesce_item_t){(uint32_t)g, keys[k], strlen(keys[k]),
                                         1 + rand_r(&seed) % 100};
            if (in[i].version > best[g][k]) best[g][k] = in[i].version;
        }
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < K; k++)
                expect += best[g][k] > 0;
        n = fl_coalesce(in, N, out);
        assert_int_equal(n, expect);
        for (size_t i = 0; i < n; i++) {
            const fl_coalesce_item_t *it = &in[out[i]];
            int k = atoi(it->key + 1);
            assert_int_equal(it->version, best[it->group][k]);
            if (i > 0) assert_true(in[out[i - 1]].group <= it->group);
        }
    }
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keeps_highest_version_per_key),
        cmocka_unit_test(same_key_in_two_groups_is_two_rows),
        cmocka_unit_test(keys_compare_as_bytes_not_strings),
        cmocka_unit_test(empty_and_single),
        cmocka_unit_test(matches_model_on_random_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
