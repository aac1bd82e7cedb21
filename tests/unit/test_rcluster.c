/* test_rcluster.c — Redis Cluster routing: CRC16 vectors, hash tags, slot map parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_rcluster.h"

static int slot(const char *key)
{
    return wb_rc_slot(key, strlen(key));
}

/* The cluster spec's vector, and slots `CLUSTER KEYSLOT` gives. */
static void test_crc16_vectors(void **state)
{
    (void)state;
    assert_int_equal(wb_rc_crc16("123456789", 9), 0x31C3);
    assert_int_equal(wb_rc_crc16("", 0), 0);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("123456789"), 0x31C3 & 16383);
}

/* The spec's hash tag rules. */
static void test_hash_tags(void **state)
{
    (void)state;
    /* the tag is hashed: both keys of one user share a slot */
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_equal(slot("{user1000}.followers"), slot("user1000"));
    /* an empty first tag: the whole key is hashed */
    assert_int_equal(slot("foo{}{bar}"), wb_rc_crc16("foo{}{bar}", 10) & 16383);
    /* from the first '{' to the first '}' after it */
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    /* only the first tag counts */
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    /* no closing brace: the whole key */
    assert_int_equal(slot("foo{bar"), wb_rc_crc16("foo{bar", 7) & 16383);
    /* the shard tags of wb_entry: "{7}user:1" goes with its index "wb:dirty:{7}" */
    assert_int_equal(slot("{7}user:1"), slot("wb:dirty:{7}"));
    assert_int_equal(slot("{7}user:1"), slot("{7}wb:rr:user:1"));
}

static redisReply *parse_resp(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

/* A CLUSTER SLOTS reply of redis-server 7.0 (3 masters, 1 replica each),
 * as RESP2 sends it; the second master announced no address. */
static const char captured[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:28690\r\n$40\r\n9d1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:28694\r\n$40\r\n0a1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$0\r\n\r\n:28691\r\n$40\r\n1b1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:28695\r\n$40\r\n2c1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n"
    "*4\r\n:10923\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:28692\r\n$40\r\n3d1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:28693\r\n$40\r\n4e1c0e1c9b8f1b7e2f7a3c5d6e7f8091a2b3c4d5\r\n*0\r\n";

static void test_parse_slots(void **state)
{
    redisReply *r = parse_resp(captured);
    wb_rc_range_t *v = NULL;
    size_t n = 0;
    char err[256];

    (void)state;
    assert_int_equal(wb_rc_parse_slots(r, "seed", &v, &n, err, sizeof(err)), WB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].lo, 0);
    assert_int_equal(v[0].hi, 5460);
    assert_string_equal(v[0].host, "127.0.0.1");
    assert_int_equal(v[0].port, 28690);
    assert_int_equal(v[1].lo, 5461);
    assert_string_equal(v[1].host, "seed"); /* "" = the node asked */
    assert_int_equal(v[1].port, 28691);
    assert_int_equal(v[2].hi, 16383);
    assert_int_equal(v[2].port, 28692); /* the master, not its replica */
    free(v);
    freeReplyObject(r);
}

static void test_parse_slots_refuses_other_shapes(void **state)
{
    static const char *bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n*2\r\n:0\r\n:16383\r\n",                             /* no master */
        "*1\r\n*3\r\n:16000\r\n:20000\r\n*2\r\n$1\r\nh\r\n:1\r\n",  /* slot out of range */
        "*1\r\n*3\r\n$1\r\n0\r\n:16383\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* string slot */
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = parse_resp(bad[i]);
        wb_rc_range_t *v = (wb_rc_range_t *)1;
        size_t n = 1;

        assert_int_equal(wb_rc_parse_slots(r, "seed", &v, &n, err, sizeof(err)), WB_ERR_REDIS);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "CLUSTER SLOTS"));
        freeReplyObject(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vectors),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_parse_slots),
        cmocka_unit_test(test_parse_slots_refuses_other_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
