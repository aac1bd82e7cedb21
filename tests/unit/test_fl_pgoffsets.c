/* test_fl_pgoffsets.c — the pure rules of the flusher's offsets kept in PostgreSQL
 * (where a partition starts) and of the changes topic's settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_batch.h"
#include "fl_offsets.h"
#include "fl_pgoffsets.h"
#include "fl_topic.h"

/* The database records nothing: nothing to compare, start where the group is. */
static void start_without_record_keeps(void **state)
{
    (void)state;
    int64_t start;
    assert_int_equal(fl_pgoffsets_decide(500, -1, 0, &start), FL_START_KEEP);
    assert_int_equal(start, 500);
    assert_int_equal(fl_pgoffsets_decide(-1, -1, 100, &start), FL_START_KEEP);
    assert_int_equal(start, -1);
}

/* start = min(database, group): the database behind rewinds, ahead or equal keeps. */
static void start_is_min_of_db_and_group(void **state)
{
    (void)state;
    int64_t start;
    assert_int_equal(fl_pgoffsets_decide(500, 500, 0, &start), FL_START_KEEP);
    assert_int_equal(start, 500);
    assert_int_equal(fl_pgoffsets_decide(500, 800, 0, &start), FL_START_KEEP);
    assert_int_equal(start, 500);
    assert_int_equal(fl_pgoffsets_decide(500, 120, 0, &start), FL_START_REWIND);
    assert_int_equal(start, 120);
    /* Replay from a time: the time's offset, never after the database's. */
    assert_int_equal(fl_pgoffsets_decide(900, 300, 10, &start), FL_START_REWIND);
    assert_int_equal(start, 300);
    assert_int_equal(fl_pgoffsets_decide(200, 300, 10, &start), FL_START_KEEP);
    assert_int_equal(start, 200);
    /* The low watermark unknown: the rewind is still the answer. */
    assert_int_equal(fl_pgoffsets_decide(500, 120, -1, &start), FL_START_REWIND);
    assert_int_equal(start, 120);
}

/* Below the low watermark: gone, whatever the group says; never a silent skip. */
static void start_below_retention_is_gone(void **state)
{
    (void)state;
    int64_t start;
    assert_int_equal(fl_pgoffsets_decide(500, 120, 200, &start), FL_START_GONE);
    assert_int_equal(start, 120);
    /* The group never committed (the earliest): gone too. */
    assert_int_equal(fl_pgoffsets_decide(-1, 120, 200, &start), FL_START_GONE);
    /* Exactly the low watermark is still there. */
    assert_int_equal(fl_pgoffsets_decide(500, 200, 200, &start), FL_START_REWIND);
    assert_int_equal(start, 200);
    assert_int_equal(fl_pgoffsets_decide(-1, 200, 200, &start), FL_START_KEEP);
    /* The group below the database, the database below the topic's start:
     * still gone (Kafka would move the consumer to the earliest silently). */
    assert_int_equal(fl_pgoffsets_decide(100, 150, 200, &start), FL_START_GONE);
    assert_int_equal(start, 150);
}

static fl_topic_conf_t topic_conf(const char *policy, int64_t retention, int64_t segment)
{
    fl_topic_conf_t tc;
    memset(&tc, 0, sizeof(tc));
    strcpy(tc.cleanup_policy, policy);
    tc.retention_ms = retention;
    tc.segment_ms = segment;
    return tc;
}

static void topic_compacted_is_refused(void **state)
{
    (void)state;
    char errstr[512];
    fl_topic_conf_t tc = topic_conf("compact", 1000, 1000);
    assert_int_equal(fl_topic_check(&tc, "wb.changes", 0, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "cleanup.policy=compact"));
    tc = topic_conf("compact,delete", 1000, 1000);
    assert_int_equal(fl_topic_check(&tc, "wb.changes", 0, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    tc = topic_conf("delete", 1000, 1000);
    assert_int_equal(fl_topic_check(&tc, "wb.changes", 0, errstr, sizeof(errstr)), WB_OK);
}

static void tombstones_stay_behind_retention_plus_segment(void **state)
{
    (void)state;
    char errstr[512];
    fl_topic_conf_t tc = topic_conf("delete", 604800000, 604800000);
    assert_int_equal(fl_topic_check(&tc, "t", 1209600000, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(fl_topic_check(&tc, "t", 1209599999, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    assert_non_null(strstr(errstr, "1209600000"));
    assert_int_equal(fl_topic_check(&tc, "t", 604800000, errstr, sizeof(errstr)), WB_ERR_CONFIG);
    /* Purge off: any retention. */
    assert_int_equal(fl_topic_check(&tc, "t", 0, errstr, sizeof(errstr)), WB_OK);
    /* Kept for ever: no purge is safe. */
    tc = topic_conf("delete", -1, 604800000);
    assert_int_equal(fl_topic_check(&tc, "t", INT64_C(315360000000), errstr, sizeof(errstr)),
                     WB_ERR_CONFIG);
    assert_int_equal(fl_topic_check(&tc, "t", 0, errstr, sizeof(errstr)), WB_OK);
}

/* A batch's ranges continue where the consumer stood (the offset committed
 * last), not at the batch's first message: a gap between would otherwise
 * go unnoticed by the database's check. */
static void ranges_start_at_the_consumers_position(void **state)
{
    (void)state;
    /* Partition 1 at 40 (a gap before 45), partition 2 never committed. */
    fl_msg_t msgs[4] = {{.topic = "t", .partition = 1, .offset = 45},
                        {.topic = "t", .partition = 2, .offset = 7},
                        {.topic = "t", .partition = 1, .offset = 46},
                        {.topic = "t", .partition = 2, .offset = 9}};
    fl_offsets_t o;
    fl_batch_t b;

    fl_offsets_init(&o, NULL, NULL, NULL);
    memset(&b, 0, sizeof(b));
    b.msgs = msgs;
    b.n = 4;
    fl_offsets_part(&o, "t", 1)->committed = 40;
    fl_offsets_ranges(&o, &b);
    assert_int_equal(b.ranges_ok, 1);
    assert_int_equal(b.nranges, 2);
    assert_int_equal(b.ranges[0].partition, 1);
    assert_int_equal(b.ranges[0].from, 40);
    assert_int_equal(b.ranges[0].next, 47);
    assert_int_equal(b.ranges[1].partition, 2);
    assert_int_equal(b.ranges[1].from, 7);
    assert_int_equal(b.ranges[1].next, 10);
    assert_string_equal(b.ranges[1].topic, "t");
    free(b.ranges);
    fl_offsets_fini(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_without_record_keeps),
        cmocka_unit_test(start_is_min_of_db_and_group),
        cmocka_unit_test(start_below_retention_is_gone),
        cmocka_unit_test(topic_compacted_is_refused),
        cmocka_unit_test(tombstones_stay_behind_retention_plus_segment),
        cmocka_unit_test(ranges_start_at_the_consumers_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
