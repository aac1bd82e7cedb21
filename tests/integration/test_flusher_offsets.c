/* test_flusher_offsets.c — PostgreSQL knows where it stands (invariant 5): the applied
 * offsets recorded in each batch's transaction, the rewind after a restore, replay
 * bounded by them, retention that lost what the database needs; and the changes
 * topic's settings checked at start (invariants 3 and 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "flusher_harness.h"
#include "wb_entry.h"

#define K 200

static void produce_range(fh_t *fh, fh_row_t *truth, int n, int64_t vbase, unsigned *seed)
{
    char key[64], val[64];
    for (int i = 0; i < n; i++) {
        int k = rand_r(seed) % K, del = rand_r(seed) % 7 == 0;
        int64_t ver = vbase + i;
        snprintf(key, sizeof(key), "item:%d", k);
        snprintf(val, sizeof(val), "o%" PRId64, ver);
        fh_truth_apply(&truth[k], del ? NULL : val, ver);
        fh_produce(fh, key, del ? NULL : val, ver);
    }
    fh_flush(fh);
}

/* What wb_offsets records for a partition of the test's topic (-1: nothing). */
static int64_t recorded(fh_t *fh, int partition)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT next_offset FROM wb_offsets WHERE topic = '%s' AND \"partition\" = %d",
             fh->topic, partition);
    fh_pg_connect(fh);
    PGresult *res = fh_sql(fh, sql);
    int64_t off = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return off;
}

static void set_recorded(fh_t *fh, int partition, int64_t off)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE wb_offsets SET next_offset = %" PRId64
             " WHERE topic = '%s' AND \"partition\" = %d",
             off, fh->topic, partition);
    fh_pg_connect(fh);
    PQclear(fh_sql(fh, sql));
}

static int64_t high_watermark(fh_t *fh, int partition, int64_t *lo)
{
    int64_t l = -1, h = -1;
    if (rd_kafka_query_watermark_offsets(fh->producer, fh->topic, partition, &l, &h, 10000))
        fh_die("watermarks");
    if (lo) *lo = l;
    return h;
}

/* The group's committed offsets of the test's topic, partitions 0..n-1. */
static void group_committed(fh_t *fh, int n, int64_t *out)
{
    char errstr[256];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    if (wb_kafka_conf_new(fh->conf, "test", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kc, fh->group, &rk, errstr, sizeof(errstr)) != WB_OK)
        fh_die(errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, fh->topic, p);
    if (rd_kafka_committed(rk, l, 10000)) fh_die("committed");
    for (int p = 0; p < n; p++)
        out[p] = l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/* A metric's value (first sample of that name), -1 if absent. */
static double metric(fh_t *fh, const char *name)
{
    static char buf[65536];
    char pat[128];
    if (wb_test_http_get(fh->http_port, "/metrics", buf, sizeof(buf)) < 0) buf[0] = '\0';
    snprintf(pat, sizeof(pat), "\n%s ", name);
    const char *p = strstr(buf, pat);
    return p ? atof(p + strlen(pat)) : -1;
}

/* How many lines of the flusher's log contain all of the strings. */
static int log_count(fh_t *fh, const char *a, const char *b)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(fh->log, "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, a) && (!b || strstr(line, b));
    fclose(f);
    return n;
}

static int wait_log(fh_t *fh, const char *a, const char *b, int timeout_ms)
{
    int64_t t0 = wb_time_mono_ms();
    while (log_count(fh, a, b) == 0 && wb_time_mono_ms() - t0 < timeout_ms)
        usleep(100000);
    return log_count(fh, a, b);
}

/* The offsets row is written in the batch's own transaction, and after a
 * flush it equals the group's committed offset and the partition's end. */
static void offsets_recorded_with_the_batch(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 3;
    int64_t committed[3];

    fh_setup(&fh, "offrec", "text", NULL);
    produce_range(&fh, truth, 1500, 1000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    /* Asynchronous commits reach the broker a little after the batch. */
    int64_t t0 = wb_time_mono_ms();
    int same = 0;
    while (!same && wb_time_mono_ms() - t0 < 15000) {
        group_committed(&fh, 3, committed);
        same = 1;
        for (int p = 0; p < 3; p++)
            same &=
                committed[p] == recorded(&fh, p) && committed[p] == high_watermark(&fh, p, NULL);
        if (!same) usleep(200000);
    }
    for (int p = 0; p < 3; p++)
        fprintf(stderr, "partition %d: recorded %" PRId64 ", committed %" PRId64 "\n", p,
                recorded(&fh, p), committed[p]);
    assert_true(same);

    /* One more event: its row and its partition's offset row come from one
     * transaction: both carry its start time (now()), and the offset row is
     * the event's partition's, moved by one. */
    int64_t before[3];
    for (int p = 0; p < 3; p++)
        before[p] = recorded(&fh, p);
    fh_produce(&fh, "item:7", "last", 999999);
    fh_flush(&fh);
    fh_truth_apply(&truth[7], "last", 999999);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 30000), 0);
    int moved = 0;
    for (int p = 0; p < 3; p++)
        moved += recorded(&fh, p) == before[p] + 1;
    assert_int_equal(moved, 1);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM wb_offsets WHERE topic = '%s' AND updated_at = "
             "(SELECT updated_at FROM \"%s\" WHERE key = '7')",
             fh.topic, fh.table);
    PGresult *res = fh_sql(&fh, sql);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

/* A restore: the table and its offsets go back to a snapshot while the
 * group is ahead. The restarted flusher rewinds by itself (warn + metric)
 * and the table ends complete. */
static void restore_rewinds_by_itself(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 11;
    char sql[1024];
    int64_t snap[3];

    fh_setup(&fh, "offrestore", "text", NULL);
    produce_range(&fh, truth, 1000, 1000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    /* The "backup": rows and offsets as they are now. */
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS \"%s_snap\"; CREATE TABLE \"%s_snap\" AS "
             "SELECT * FROM \"%s\"",
             fh.table, fh.table, fh.table);
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        snap[p] = recorded(&fh, p);
    fh_start(&fh);
    produce_range(&fh, truth, 2000, 100000, &seed);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);

    /* The "restore". */
    snprintf(sql, sizeof(sql),
             "TRUNCATE \"%s\"; INSERT INTO \"%s\" SELECT * FROM \"%s_snap\"; "
             "DROP TABLE \"%s_snap\"",
             fh.table, fh.table, fh.table, fh.table);
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        set_recorded(&fh, p, snap[p]);
    assert_true(fh_diff(&fh, truth, K, 0) > 0);

    fh_start(&fh);
    int rc = fh_wait_truth(&fh, truth, K, 60000);
    if (rc) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_true(log_count(&fh, "WARN", "rewinding to the database's offset") >= 1);
    assert_true(metric(&fh, "wb_flusher_rewinds_total") >= 1);
    for (int p = 0; p < 3; p++)
        assert_int_equal(recorded(&fh, p), high_watermark(&fh, p, NULL));
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

/* The same restore while the flusher runs (a failover to a standby that
 * missed the last transactions): the next check rewinds. */
static void restore_while_running_rewinds(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 12;
    char sql[512];

    fh_setup(&fh, "offlive", "text", NULL);
    produce_range(&fh, truth, 1000, 1000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    /* Everything lost, offsets back to 0. */
    snprintf(sql, sizeof(sql), "TRUNCATE \"%s\"", fh.table);
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        set_recorded(&fh, p, 0);
    int rc = fh_wait_truth(&fh, truth, K, 60000);
    if (rc) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_true(metric(&fh, "wb_flusher_rewinds_total") >= 1);
    /* And new writes go on. */
    produce_range(&fh, truth, 300, 500000, &seed);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

/* Write-through writes are in the log too (invariant 11): after a restore
 * that lost them (the table and its offsets back to before them), the
 * flusher's rewind brings them back, each with its own version, among
 * write-behind writes; and their entries, pinned until the flusher saw
 * their events, are clean with a TTL. */
static void restore_brings_back_write_through(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 13;
    char errstr[512], id[32], key[64], val[64], sql[512];
    wb_config_t *conf = NULL;
    wb_client_t *client = NULL;
    wb_entry_t e;

    fh_setup(&fh, "offthrough", "text", NULL);
    fh_start(&fh);
    assert_int_equal(wb_config_load(fh.cfg, &conf, errstr, sizeof(errstr)), WB_OK);
    assert_int_equal(wb_client_open_config(conf, NULL, NULL, &client, errstr, sizeof(errstr)),
                     WB_OK);
    produce_range(&fh, truth, 300, 1000, &seed);
    /* Write-through on keys of their own, after the write-behind ones
     * (whose versions are small, so the write-throughs' are newer). */
    for (int k = K / 2; k < K; k += 3) {
        int64_t v = 0;
        snprintf(id, sizeof(id), "%d", k);
        snprintf(val, sizeof(val), "through %d", k);
        assert_int_equal(wb_put_through(client, "item", id, val, strlen(val), &v), WB_OK);
        fh_truth_apply(&truth[k], val, v);
    }
    assert_int_equal(wb_client_flush(client, 10000), WB_OK);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    /* Every write-through entry is cleaned once its event was consumed. */
    int64_t t0 = wb_time_mono_ms();
    for (int k = K / 2; k < K; k += 3) {
        char body[32];
        snprintf(body, sizeof(body), "item:%d", k);
        wb_test_key(key, sizeof(key), fh.conf->redis.dirty_shards, body);
        for (;;) {
            memset(&e, 0, sizeof(e));
            assert_int_equal(wb_entry_read(fh.redis, key, strlen(key), &e, errstr, sizeof(errstr)),
                             WB_OK);
            int done = e.found && !e.dirty && e.version == truth[k].version && e.pttl_ms > 0;
            wb_entry_clear(&e);
            if (done) break;
            assert_true(wb_time_mono_ms() - t0 < 30000);
            usleep(50000);
        }
    }

    /* Everything lost: the table and its offsets back to before the load. */
    snprintf(sql, sizeof(sql), "TRUNCATE \"%s\"", fh.table);
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        set_recorded(&fh, p, 0);
    int rc = fh_wait_truth(&fh, truth, K, 60000);
    if (rc) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_true(metric(&fh, "wb_flusher_rewinds_total") >= 1);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    wb_client_close(client);
    fh_teardown(&fh);
    free(truth);
}

static void now_iso(int64_t offset_s, char *buf, size_t size)
{
    time_t t = time(NULL) + offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* replay --from-time with a time later than the recorded offset starts at
 * the recorded offset; replay --from-db replays exactly from it. */
static void replay_never_starts_after_the_database(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 21;
    char sql[256], when[64];

    fh_setup(&fh, "offreplay", "text", NULL);
    produce_range(&fh, truth, 1200, 1000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);

    /* A restore of an empty database that recorded offset 0, and a margin
     * far too small: a time after every event. */
    snprintf(sql, sizeof(sql), "TRUNCATE \"%s\"", fh.table);
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        set_recorded(&fh, p, 0);
    now_iso(3600, when, sizeof(when));
    const char *late[] = {"replay", "--from-time", when, NULL};
    int rc = fh_run(&fh, late, 120000);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_int_equal(fh_diff(&fh, truth, K, 1), 0);

    /* --from-db: no time at all; it also records where it got to. */
    PQclear(fh_sql(&fh, sql));
    for (int p = 0; p < 3; p++)
        set_recorded(&fh, p, 0);
    const char *db[] = {"replay", "--from-db", NULL};
    rc = fh_run(&fh, db, 120000);
    if (rc != 0) fh_dump_log(&fh);
    assert_int_equal(rc, 0);
    assert_int_equal(fh_diff(&fh, truth, K, 1), 0);
    for (int p = 0; p < 3; p++)
        assert_int_equal(recorded(&fh, p), high_watermark(&fh, p, NULL));
    /* From what the database records: with everything applied, nothing. */
    rc = fh_run(&fh, db, 120000);
    assert_int_equal(rc, 0);
    assert_true(log_count(&fh, "replaying 0 events", NULL) >= 1);
    fh_teardown(&fh);
    free(truth);
}

/* Sets topic configs (the whole set: AlterConfigs replaces) on the test's topic. */
static void alter_topic(fh_t *fh, const char *const *kv)
{
    rd_kafka_ConfigResource_t *res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, fh->topic);
    for (int i = 0; kv[i]; i += 2)
        rd_kafka_ConfigResource_set_config(res, kv[i], kv[i + 1]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(fh->producer);
    rd_kafka_AlterConfigs(fh->producer, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev)) fh_die("alter configs");
    size_t n = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
    if (n != 1 || rd_kafka_ConfigResource_error(rs[0])) fh_die("alter configs result");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    sleep(1); /* the brokers apply it asynchronously */
}

/* A compacted changes topic is refused at start, with the reason. */
static void compacted_topic_is_refused(void **state)
{
    (void)state;
    fh_t fh;
    const char *compact[] = {"cleanup.policy", "compact", NULL};

    fh_setup(&fh, "offcompact", "text", NULL);
    alter_topic(&fh, compact);
    fh_start(&fh);
    int rc = fh_wait_pid(fh.pid, 60000, NULL);
    fh.pid = -1;
    if (rc != 1) fh_dump_log(&fh);
    assert_int_equal(rc, 1);
    assert_int_equal(log_count(&fh, "ERROR", "cleanup.policy=compact"), 1);
    fh_teardown(&fh);
}

/* Tombstones purged sooner than the topic can hold an older event: refused;
 * at retention.ms + segment.ms the flusher starts. */
static void tombstone_retention_below_topic_retention_is_refused(void **state)
{
    (void)state;
    fh_t fh;
    const char *retention[] = {"cleanup.policy", "delete", "retention.ms", "600000", "segment.ms",
                               "600000",         NULL};

    fh_setup(&fh, "offtomb", "text", "  tombstone_retention_ms: 1199999\n");
    alter_topic(&fh, retention);
    fh_start(&fh);
    int rc = fh_wait_pid(fh.pid, 60000, NULL);
    fh.pid = -1;
    if (rc != 1) fh_dump_log(&fh);
    assert_int_equal(rc, 1);
    assert_int_equal(log_count(&fh, "ERROR", "is below topic"), 1);
    fh_teardown(&fh);

    fh_setup(&fh, "offtomb2", "text", "  tombstone_retention_ms: 1200000\n");
    alter_topic(&fh, retention);
    fh_start(&fh);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 30000), 200);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

static void delete_records(fh_t *fh, int partition, int64_t before)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, fh->topic, partition)->offset = before;
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_queue_t *q = rd_kafka_queue_new(fh->producer);
    rd_kafka_DeleteRecords(fh->producer, &dr, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev)) fh_die("delete records");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The database needs offsets the topic no longer holds: error naming the
 * partition and both offsets, not ready, the partition held (nothing
 * skipped), until the operator deletes its row. */
static void offsets_below_retention_hold_the_partition(void **state)
{
    (void)state;
    fh_t fh;
    fh_row_t *truth = calloc(K, sizeof(*truth));
    unsigned seed = 31;
    char sql[512];

    fh_setup_ex(&fh, "offgone", "text", NULL, NULL, 1);
    produce_range(&fh, truth, 600, 1000, &seed);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, K, 60000), 0);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);

    /* A restore to offset 5, and the topic lost everything below 300. */
    set_recorded(&fh, 0, 5);
    delete_records(&fh, 0, 300);
    int64_t lo = -1;
    high_watermark(&fh, 0, &lo);
    assert_int_equal(lo, 300);

    fh_start(&fh);
    assert_true(wait_log(&fh, "ERROR", "records offset 5 but the topic starts at 300", 30000) >= 1);
    assert_int_equal(fh_wait_http(&fh, "/readyz", 503, 10000), 503);
    /* Nothing is skipped: new writes are not applied, the record stays. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\" WHERE key = 'new'", fh.table);
    fh_produce(&fh, "item:new", "x", 9999999);
    fh_flush(&fh);
    sleep(3);
    PGresult *res = fh_sql(&fh, sql);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
    assert_int_equal(recorded(&fh, 0), 5);
    assert_int_equal(fh_http_status(&fh, "/readyz"), 503);

    /* The operator accepts the loss: the row goes, the partition resumes
     * where the group stands. */
    snprintf(sql, sizeof(sql), "DELETE FROM wb_offsets WHERE topic = '%s'", fh.topic);
    PQclear(fh_sql(&fh, sql));
    assert_int_equal(fh_wait_http(&fh, "/readyz", 200, 20000), 200);
    int64_t t0 = wb_time_mono_ms();
    long n = 0;
    while ((n = fh_count(&fh, "WHERE key = 'new'")) != 1 && wb_time_mono_ms() - t0 < 20000)
        usleep(200000);
    assert_int_equal(n, 1);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
    free(truth);
}

/* Static membership: a flusher with an instance id killed with SIGKILL and
 * restarted at once gets its partitions back in seconds, well under the
 * session timeout (10 s) its old membership would otherwise hold them. */
static void static_member_takes_its_partitions_back_at_once(void **state)
{
    (void)state;
    fh_t fh;
    char extra[256];
    fh_row_t truth[4];

    memset(truth, 0, sizeof(truth));
    snprintf(extra, sizeof(extra), "  instance_id: \"fl-static-%d\"\n", (int)getpid());
    fh_setup(&fh, "offstatic", "text", extra);
    fh_produce(&fh, "item:1", "a", 10);
    fh_flush(&fh);
    fh_truth_apply(&truth[1], "a", 10);
    fh_start(&fh);
    assert_int_equal(fh_wait_truth(&fh, truth, 4, 60000), 0);
    assert_true(wait_log(&fh, "assigned 3 partition(s)", NULL, 30000) >= 1);

    kill(fh.pid, SIGKILL);
    waitpid(fh.pid, NULL, 0);
    unlink(fh.log);
    int64_t t0 = wb_time_mono_ms();
    fh_start(&fh);
    fh_produce(&fh, "item:2", "b", 20);
    fh_flush(&fh);
    fh_truth_apply(&truth[2], "b", 20);
    assert_true(wait_log(&fh, "assigned 3 partition(s)", NULL, 30000) >= 1);
    int64_t assigned_ms = wb_time_mono_ms() - t0;
    assert_int_equal(fh_wait_truth(&fh, truth, 4, 30000), 0);
    int64_t applied_ms = wb_time_mono_ms() - t0;
    fprintf(stderr,
            "static member restart: partitions back after %" PRId64
            " ms, first write applied after %" PRId64 " ms (session timeout 10000 ms)\n",
            assigned_ms, applied_ms);
    assert_true(assigned_ms < 5000);
    assert_true(applied_ms < 5000);
    assert_int_equal(fh_stop(&fh, 30000, NULL), 0);
    fh_teardown(&fh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offsets_recorded_with_the_batch),
        cmocka_unit_test(restore_rewinds_by_itself),
        cmocka_unit_test(restore_while_running_rewinds),
        cmocka_unit_test(restore_brings_back_write_through),
        cmocka_unit_test(replay_never_starts_after_the_database),
        cmocka_unit_test(compacted_topic_is_refused),
        cmocka_unit_test(tombstone_retention_below_topic_retention_is_refused),
        cmocka_unit_test(offsets_below_retention_hold_the_partition),
        cmocka_unit_test(static_member_takes_its_partitions_back_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
