/* test_lib_pure.c — libwbcache parts that need no server: keys, the get script's
 * reply, delivery waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wb_client_int.h"
#include "wb_entry.h"
#include "wb_key.h"
#include "wb_producer.h"
#include "wb_rand.h"

static wb_entity_t ent = {.name = "user", .prefix = "user:", .table = "users", .ttl_ms = 60000};

/* "{N}" + prefix + id, N = CRC16("user:42") % 64 = 15880 % 64 (CLUSTER
 * KEYSLOT user:42 is 15880); the entity is found behind the tag. */
static void key_is_shard_tag_prefix_id(void **state)
{
    char key[WB_KEY_MAX];
    size_t len = 0;
    int shard = -1;

    (void)state;
    assert_int_equal(wb_key_build(&ent, 64, "42", key, &len, NULL, 0), WB_OK);
    assert_string_equal(key, "{8}user:42");
    assert_int_equal(len, 10);
    assert_int_equal(wb_entry_key_tag(key, len, &shard), 3);
    assert_int_equal(shard, 8);
    assert_int_equal(wb_entity_id_offset(&ent, key, len), 8);
    assert_int_equal(wb_key_build(&ent, 1, "42", key, &len, NULL, 0), WB_OK);
    assert_string_equal(key, "{0}user:42");
    assert_int_equal(wb_key_build(&ent, 64, "caf\xc3\xa9 \xf0\x9f\x98\x80", key, &len, NULL, 0),
                     WB_OK);
    /* a key without a tag, or with something else in braces, has no shard */
    assert_int_equal(wb_entry_key_tag("user:42", 7, NULL), 0);
    assert_int_equal(wb_entry_key_tag("{}user:42", 9, NULL), 0);
    assert_int_equal(wb_entry_key_tag("{08}user:42", 11, NULL), 0);
    assert_int_equal(wb_entry_key_tag("{16384}u:1", 10, NULL), 0);
    assert_int_equal(wb_entry_key_tag("{x}user:42", 10, NULL), 0);
    assert_int_equal(wb_entity_id_offset(&ent, "user:42", 7), 5);
    assert_int_equal(wb_entity_id_offset(&ent, "{8}user:", 8), 0);
}

/* The entry, its dirty-index shard, the shard's floor and the side keys
 * share one hash slot (invariant 12). */
static void layout_keys_share_the_slot(void **state)
{
    char key[WB_KEY_MAX], idx[WB_ENTRY_KEY_MAX], floor[WB_ENTRY_KEY_MAX], side[WB_KEY_SIDE_MAX];
    size_t len = 0;
    int shard = -1, slot;

    (void)state;
    for (int i = 0; i < 200; i++) {
        char id[16];

        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(wb_key_build(&ent, 64, id, key, &len, NULL, 0), WB_OK);
        assert_true(wb_entry_key_tag(key, len, &shard) > 0);
        assert_in_range(shard, 0, 63);
        slot = wb_rc_slot(key, len);
        assert_int_equal(wb_entry_index_key("wb:dirty", shard, idx, sizeof(idx)), 0);
        assert_int_equal(wb_entry_floor_key(NULL, shard, floor, sizeof(floor)), 0);
        assert_int_equal(wb_rc_slot(idx, strlen(idx)), slot);
        assert_int_equal(wb_rc_slot(floor, strlen(floor)), slot);
        wb_key_side("lock", key, side);
        assert_int_equal(wb_rc_slot(side, strlen(side)), slot);
        wb_key_side("rr", key, side);
        assert_int_equal(wb_rc_slot(side, strlen(side)), slot);
    }
    assert_int_equal(wb_entry_index_key("wb:dirty", 7, idx, sizeof(idx)), 0);
    assert_string_equal(idx, "wb:dirty:{7}");
    assert_int_equal(wb_entry_floor_key("", 7, floor, sizeof(floor)), 0);
    assert_string_equal(floor, "wb:dirty:{7}:floor");
}

static void bad_ids_are_refused(void **state)
{
    char key[WB_KEY_MAX], why[128];
    char *longid = malloc(2000);

    (void)state;
    assert_int_equal(wb_key_check_id(NULL, why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("", why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_string_equal(why, "id is empty");
    assert_int_equal(wb_key_check_id("a\tb", why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_string_equal(why, "id has a control byte 0x09 at offset 1");
    assert_int_equal(wb_key_check_id("a\x7f", NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("x{y", why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("x}", NULL, 0), WB_ERR_INVALID_ARG);
    /* Not UTF-8: a lone continuation byte, an overlong '/', a surrogate,
     * a truncated sequence, a code point above U+10FFFF. */
    assert_int_equal(wb_key_check_id("\x80", NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("\xc0\xaf", NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("\xed\xa0\x80", NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("\xe2\x82", NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_key_check_id("\xf4\x90\x80\x80", why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_string_equal(why, "id is not valid UTF-8 at offset 0");

    memset(longid, 'a', 1016);
    longid[1016] = '\0'; /* "{0}" + "user:" + 1016 = 1024 bytes: the limit */
    assert_int_equal(wb_key_build(&ent, 1, longid, key, NULL, NULL, 0), WB_OK);
    longid[1016] = 'a';
    longid[1017] = '\0';
    assert_int_equal(wb_key_build(&ent, 1, longid, key, NULL, why, sizeof(why)),
                     WB_ERR_INVALID_ARG);
    assert_string_equal(why, "key is 1025 bytes, at most 1024 allowed");
    free(longid);
}

static void side_keys_share_the_hash_slot(void **state)
{
    char side[WB_KEY_SIDE_MAX];

    (void)state;
    assert_int_equal(wb_key_side("lock", "{8}user:42", side), strlen("{8}wb:lock:user:42"));
    assert_string_equal(side, "{8}wb:lock:user:42");
    wb_key_side("rr", "{8}user:42", side);
    assert_string_equal(side, "{8}wb:rr:user:42");
}

/* Builders for hiredis replies as the server would send them. */
static redisReply *r_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));

    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *r_str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));

    r->type = REDIS_REPLY_STRING;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *r_arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    va_list ap;

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(*r->element));
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void get_reply_hit_and_miss(void **state)
{
    wb_entry_get_res_t g;
    redisReply *r;

    (void)state;
    r = r_arr(7, r_int(1), r_str("hello"), r_str("1795884367619802"), r_str("0"), r_str("0"),
              r_int(1500), r_int(1));
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_OK);
    freeReplyObject(r); /* the value was moved out: still ours */
    assert_true(g.hit);
    assert_string_equal(g.value, "hello");
    assert_int_equal(g.len, 5);
    assert_int_equal(g.version, 1795884367619802LL);
    assert_false(g.dirty);
    assert_false(g.deleted);
    assert_int_equal(g.pttl, 1500);
    assert_true(g.refresh);
    wb_entry_get_clear(&g);
    assert_null(g.value);

    r = r_arr(7, r_int(1), r_str(""), r_str("9"), r_str("1"), r_str("1"), r_int(-1), r_int(0));
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_OK);
    assert_true(g.hit && g.dirty && g.deleted);
    assert_int_equal(g.pttl, -1);
    wb_entry_get_clear(&g);
    freeReplyObject(r);

    r = r_arr(2, r_int(0), r_int(1));
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_OK);
    assert_false(g.hit);
    assert_true(g.locked);
    freeReplyObject(r);
    r = r_arr(2, r_int(0), r_int(0));
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_OK);
    assert_false(g.locked);
    freeReplyObject(r);

    r = r_arr(3, r_int(1), r_str("x"), r_str("1"));
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_ERR_REDIS);
    freeReplyObject(r);
    r = r_int(3);
    assert_int_equal(wb_entry_get_parse(r, &g, NULL, 0), WB_ERR_REDIS);
    freeReplyObject(r);
}

static void waiter_times_out_without_reports(void **state)
{
    wb_waiter_t *w = wb_waiter_new(3);

    (void)state;
    assert_non_null(w);
    /* Nothing sent: nothing pending, so the wait returns at once. */
    assert_int_equal(wb_waiter_wait(w, 10), WB_OK);
    assert_int_equal(wb_waiter_result(w, 2), WB_ERR_TIMEOUT); /* "no report yet" */
    assert_int_equal(wb_waiter_result(w, 3), WB_ERR_INVALID_ARG);
    wb_waiter_release(w);
    wb_waiter_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_is_shard_tag_prefix_id),
        cmocka_unit_test(layout_keys_share_the_slot),
        cmocka_unit_test(bad_ids_are_refused),
        cmocka_unit_test(side_keys_share_the_hash_slot),
        cmocka_unit_test(get_reply_hit_and_miss),
        cmocka_unit_test(waiter_times_out_without_reports),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
