/* test_lib_pure.c — libwbcache parts that need no server: keys, the get script's
 * reply, delivery waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_client_int.h"
#include "wb_entry.h"
#include "wb_key.h"
#include "wb_producer.h"
#include "wb_rand.h"

static wb_entity_t ent = {.name = "user", .prefix = "user:", .table = "users", .ttl_ms = 60000};

static void key_is_prefix_plus_id(void **state)
{
    char key[WB_KEY_MAX];
    size_t len = 0;

    (void)state;
    assert_int_equal(wb_key_build(&ent, "42", key, &len, NULL, 0), WB_OK);
    assert_string_equal(key, "user:42");
    assert_int_equal(len, 7);
    assert_int_equal(wb_key_build(&ent, "caf\xc3\xa9 \xf0\x9f\x98\x80", key, &len, NULL, 0), WB_OK);
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

    memset(longid, 'a', 1019);
    longid[1019] = '\0'; /* "user:" + 1019 = 1024 bytes: the limit */
    assert_int_equal(wb_key_build(&ent, longid, key, NULL, NULL, 0), WB_OK);
    longid[1019] = 'a';
    longid[1020] = '\0';
    assert_int_equal(wb_key_build(&ent, longid, key, NULL, why, sizeof(why)), WB_ERR_INVALID_ARG);
    assert_string_equal(why, "key is 1025 bytes, at most 1024 allowed");
    free(longid);
}

static void side_keys_share_the_hash_slot(void **state)
{
    char side[WB_KEY_SIDE_MAX];

    (void)state;
    assert_int_equal(wb_key_side("lock", "user:42", side), strlen("wb:lock:{user:42}"));
    assert_string_equal(side, "wb:lock:{user:42}");
    wb_key_side("rr", "user:42", side);
    assert_string_equal(side, "wb:rr:{user:42}");
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
        cmocka_unit_test(key_is_prefix_plus_id),
        cmocka_unit_test(bad_ids_are_refused),
        cmocka_unit_test(side_keys_share_the_hash_slot),
        cmocka_unit_test(get_reply_hit_and_miss),
        cmocka_unit_test(waiter_times_out_without_reports),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
