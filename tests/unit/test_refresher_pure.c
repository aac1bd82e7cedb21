/* test_refresher_pure.c — wb-refresher's pure parts: request collapser, key -> entity,
 * lease key, refresh request checks (linked from the wbrefresher library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "refresher.h"
#include "rf_collapse.h"
#include "rf_request.h"
#include "rf_util.h"
#include "wb_entry.h"

#define K(s) (s), strlen(s)

static void collapse_within_window_and_batch(void **state)
{
    (void)state;
    rf_collapse_t *c = rf_collapse_new(1000, 0);
    assert_non_null(c);

    assert_int_equal(rf_collapse_admit(c, K("a"), 0, 1), 1);
    assert_int_equal(rf_collapse_admit(c, K("a"), 10, 1), 0);  /* same batch */
    assert_int_equal(rf_collapse_admit(c, K("b"), 10, 1), 1);  /* another key */
    assert_int_equal(rf_collapse_admit(c, K("a"), 500, 2), 0); /* next batch, in window */
    assert_int_equal(rf_collapse_admit(c, K("a"), 999, 3), 0);
    assert_int_equal(rf_collapse_admit(c, K("a"), 1000, 3), 1); /* window over */
    assert_int_equal(rf_collapse_admit(c, K("a"), 1500, 4), 0);
    assert_int_equal(rf_collapse_admit(c, K("b"), 1010, 4), 1);
    rf_collapse_destroy(c);
    rf_collapse_destroy(NULL);
}

static void zero_window_collapses_only_within_a_batch(void **state)
{
    (void)state;
    rf_collapse_t *c = rf_collapse_new(0, 0);

    assert_int_equal(rf_collapse_admit(c, K("a"), 5, 7), 1);
    assert_int_equal(rf_collapse_admit(c, K("a"), 5, 7), 0);
    assert_int_equal(rf_collapse_admit(c, K("a"), 5, 8), 1);
    /* Keys of closed batches are forgotten at once: memory stays small. */
    assert_int_equal(rf_collapse_admit(c, K("b"), 6, 9), 1);
    assert_int_equal(rf_collapse_size(c), 1);
    rf_collapse_destroy(c);
}

static void binary_keys_and_expiry_keep_memory_bounded(void **state)
{
    (void)state;
    rf_collapse_t *c = rf_collapse_new(100, 0);
    const char k1[] = {'x', 0, 'y'}, k2[] = {'x', 0, 'z'};

    assert_int_equal(rf_collapse_admit(c, k1, 3, 0, 1), 1);
    assert_int_equal(rf_collapse_admit(c, k2, 3, 0, 1), 1); /* differs after the NUL */
    assert_int_equal(rf_collapse_admit(c, k1, 3, 0, 1), 0);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        rf_collapse_admit(c, K(key), 10 + i, 2 + (uint64_t)i);
    }
    /* Only keys admitted in the last 100 ms are remembered. */
    assert_true(rf_collapse_size(c) <= 101);
    assert_int_equal(rf_collapse_admit(c, K("k999"), 1010, 5000), 0);
    assert_int_equal(rf_collapse_admit(c, K("k5"), 1010, 5000), 1);
    rf_collapse_destroy(c);
}

static void collapser_cap_forgets_oldest(void **state)
{
    (void)state;
    rf_collapse_t *c = rf_collapse_new(60000, 3);

    assert_int_equal(rf_collapse_admit(c, K("a"), 0, 1), 1);
    assert_int_equal(rf_collapse_admit(c, K("b"), 1, 1), 1);
    assert_int_equal(rf_collapse_admit(c, K("c"), 2, 1), 1);
    assert_int_equal(rf_collapse_admit(c, K("d"), 3, 1), 1);
    assert_int_equal(rf_collapse_size(c), 3);
    assert_int_equal(rf_collapse_admit(c, K("a"), 4, 1), 1); /* forgotten: served again */
    assert_int_equal(rf_collapse_admit(c, K("d"), 5, 1), 0);
    rf_collapse_destroy(c);
}

static const char YAML[] = "entities:\n"
                           "  - {name: user, prefix: \"u:\", table: users, value_type: text}\n"
                           "  - {name: vip, prefix: \"v:\", table: vips, value_type: text}\n"
                           "  - {name: sess, prefix: \"s:\", table: sess, value_type: text}\n";

static void entity_for_key_prefers_hint_then_prefix(void **state)
{
    (void)state;
    char errstr[512];
    wb_config_t *conf = NULL;
    assert_int_equal(wb_config_load_string("t", YAML, strlen(YAML), &conf, errstr, sizeof(errstr)),
                     WB_OK);

    assert_string_equal(rf_entity_for_key(conf, NULL, 0, K("u:1"))->name, "user");
    assert_string_equal(rf_entity_for_key(conf, NULL, 0, K("v:1"))->name, "vip");
    /* A valid hint wins (the request names its entity)... */
    assert_string_equal(rf_entity_for_key(conf, "user", 4, K("u:vip:1"))->name, "user");
    assert_string_equal(rf_entity_for_key(conf, "user", 4, K("v:1"))->name, "vip");
    /* ...an unknown or mismatching one falls back to the key. */
    assert_string_equal(rf_entity_for_key(conf, "nope", 4, K("s:9"))->name, "sess");
    assert_string_equal(rf_entity_for_key(conf, "user", 4, K("s:9"))->name, "sess");
    assert_null(rf_entity_for_key(conf, NULL, 0, K("x:1")));
    assert_null(rf_entity_for_key(conf, NULL, 0, K("s:"))); /* empty id */
    assert_null(rf_entity_for_key(conf, "sess", 4, K("s:")));
    wb_config_destroy(conf);
}

/* Decodes a refresh request of entity (NULL: no wb-entity header) for
 * keylen bytes of key. */
static wb_err_t decode(const wb_config_t *conf, const char *entity, const char *key, size_t keylen,
                       rf_request_t *req, char *errstr, size_t size)
{
    wb_header_t hdrs[2] = {{WB_HDR_KIND, "refresh", 7}, {WB_HDR_ENTITY, entity, 0}};
    hdrs[1].len = entity ? strlen(entity) : 0;
    return rf_request_decode(conf, key, keylen, NULL, 0, hdrs, entity ? 2 : 1, req, errstr, size);
}

static void request_decode_checks_ids(void **state)
{
    (void)state;
    char errstr[512], big[WB_EVENT_KEY_MAX + 8];
    wb_config_t *conf = NULL;
    rf_request_t req;
    assert_int_equal(wb_config_load_string("t", YAML, strlen(YAML), &conf, errstr, sizeof(errstr)),
                     WB_OK);

    assert_int_equal(decode(conf, "user", K("u:42"), &req, errstr, sizeof(errstr)), WB_OK);
    assert_string_equal(req.ent->name, "user");
    assert_int_equal(req.keylen, 4);
    assert_memory_equal(req.key, "u:42", 4);
    /* The key as the library sends it: its shard tag first, then the prefix. */
    char tagged[32], body[] = "u:42";
    int n = snprintf(tagged, sizeof(tagged), "{%d}%s",
                     wb_entry_shard_of(body, strlen(body), conf->redis.dirty_shards), body);
    assert_int_equal(decode(conf, "user", tagged, (size_t)n, &req, errstr, sizeof(errstr)), WB_OK);
    assert_string_equal(req.ent->name, "user");
    assert_int_equal(req.keylen, (size_t)n);
    /* Another shard's tag: refused (it would fill a key no reader looks up). */
    n = snprintf(tagged, sizeof(tagged), "{%d}%s",
                 (wb_entry_shard_of(body, strlen(body), conf->redis.dirty_shards) + 1) %
                     conf->redis.dirty_shards,
                 body);
    assert_int_equal(decode(conf, "user", tagged, (size_t)n, &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "shard tag"));
    /* UTF-8 ids are fine, and the named entity decides, not the longest prefix. */
    assert_int_equal(
        decode(conf, "user", K("u:vip:\xc3\xa9t\xc3\xa9"), &req, errstr, sizeof(errstr)), WB_OK);
    assert_string_equal(req.ent->name, "user");

    /* A NUL in the id, invalid UTF-8, an overlong form, a surrogate. */
    assert_int_equal(decode(conf, "user", "u:a\0b", 5, &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "NUL"));
    assert_null(req.ent);
    assert_int_equal(decode(conf, "user", K("u:\xff\xfe"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "UTF-8"));
    assert_int_equal(decode(conf, "user", K("u:\xc0\xaf"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(decode(conf, "user", K("u:\xed\xa0\x80"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    /* Outside the named entity's prefix, an empty id, an unknown entity. */
    assert_int_equal(decode(conf, "user", K("s:1"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "prefix"));
    assert_int_equal(decode(conf, "user", K("u:"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(decode(conf, "nope", K("u:1"), &req, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "unknown entity"));
    /* Not a refresh request at all: no entity header, or too long a key. */
    assert_int_equal(decode(conf, NULL, K("u:1"), &req, errstr, sizeof(errstr)), WB_ERR_DECODE);
    memset(big, 'a', sizeof(big));
    memcpy(big, "u:", 2);
    assert_int_not_equal(decode(conf, "user", big, sizeof(big), &req, errstr, sizeof(errstr)),
                         WB_OK);
    assert_int_equal(decode(conf, "user", big, WB_EVENT_KEY_MAX, &req, errstr, sizeof(errstr)),
                     WB_OK);
    wb_config_destroy(conf);
}

static void lease_key_follows_dirty_index(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(rf_lease_key("wb:dirty", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "wb:dirty:sweeper");
    assert_int_equal(rf_lease_key(NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "wb:dirty:sweeper");
    assert_int_equal(rf_lease_key("app:dirty", buf, 8), -1);
}

/* Issue 14 item 3: what Kafka will never take is poison for the sweeper
 * (parked an hour), an outage is retried (backed off a sweep_after_ms). */
static void sweep_tells_poison_from_outage(void **state)
{
    (void)state;
    assert_true(rf_sweep_permanent(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
    assert_true(rf_sweep_permanent(RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE));
    assert_true(rf_sweep_permanent(RD_KAFKA_RESP_ERR_INVALID_RECORD));
    assert_false(rf_sweep_permanent(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
    assert_false(rf_sweep_permanent(RD_KAFKA_RESP_ERR__TRANSPORT));
    assert_false(rf_sweep_permanent(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS));
    assert_false(rf_sweep_permanent(RD_KAFKA_RESP_ERR_NO_ERROR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(collapse_within_window_and_batch),
        cmocka_unit_test(zero_window_collapses_only_within_a_batch),
        cmocka_unit_test(binary_keys_and_expiry_keep_memory_bounded),
        cmocka_unit_test(collapser_cap_forgets_oldest),
        cmocka_unit_test(entity_for_key_prefers_hint_then_prefix),
        cmocka_unit_test(request_decode_checks_ids),
        cmocka_unit_test(lease_key_follows_dirty_index),
        cmocka_unit_test(sweep_tells_poison_from_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
