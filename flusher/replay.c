/* replay.c — `wb-flusher replay`: re-apply the change log from a time or offsets (invariant 10). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flusher.h"
#include "wb_daemon.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_loop.h"
#include "wb_time.h"
#include "wb_util.h"

#define RP_TIMEOUT_MS    10000
#define RP_CLEAN_WAIT_MS 10000 /* at the end, for Redis to answer the last clean-marks */

typedef struct rp_part_s {
    int32_t partition;
    int64_t start, end; /* replay [start, end) */
    int64_t pos;        /* next offset expected */
    int done;
} rp_part_t;

static void replay_usage(FILE *out)
{
    fprintf(out,
            "usage: wb-flusher [-c FILE] replay (--from-time T | --from-db | --from-beginning |\n"
            "                                    --from-offsets P:O[,P:O...])\n"
            "                                   [--to-time T] [--entity NAME] [--group-id G]\n"
            "\n"
            "Re-reads the change topic and applies it through the same version-guarded\n"
            "batch path as the daemon, so it is idempotent and never moves a row back.\n"
            "By default it uses a separate consumer that commits nothing, so it can run\n"
            "next to live flushers. With --group-id it commits its progress to G; it\n"
            "refuses while G has active members (e.g. the live flushers' group).\n"
            "\n"
            "  --from-time T        first event written at or after T (ISO-8601, e.g.\n"
            "                       2026-11-28T16:40:00Z; no zone = UTC), or earlier:\n"
            "                       never after the offset PostgreSQL records as applied\n"
            "  --from-db            exactly from the offsets PostgreSQL records as applied\n"
            "                       (a partition with none: from the beginning)\n"
            "  --from-beginning     from the oldest event the topic still holds\n"
            "  --from-offsets LIST  partition:offset pairs; other partitions are skipped\n"
            "  --to-time T          stop before events written after T (default: the end\n"
            "                       of each partition when replay starts)\n"
            "  --entity NAME        apply only this entity's events (not with\n"
            "                       --group-id: that would commit past the others)\n"
            "  --group-id G         commit progress to consumer group G\n");
}

static int parse_offsets(const char *s, rp_part_t **out, size_t *nout)
{
    rp_part_t *parts = NULL;
    size_t n = 0;
    const char *p = s;

    while (*p) {
        char *end;
        long long part = strtoll(p, &end, 10);
        if (end == p || *end != ':' || part < 0 || part > INT32_MAX) goto bad;
        p = end + 1;
        long long off = strtoll(p, &end, 10);
        if (end == p || off < 0 || (*end && *end != ',')) goto bad;
        rp_part_t *np = realloc(parts, (n + 1) * sizeof(*np));
        if (!np) goto bad;
        parts = np;
        parts[n++] = (rp_part_t){(int32_t)part, off, -1, off, 0};
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) goto bad;
    }
    if (n == 0) goto bad;
    *out = parts;
    *nout = n;
    return 0;
bad:
    free(parts);
    return -1;
}

static rd_kafka_t *replay_consumer(fl_t *fl, const char *group, char *errstr, size_t errstr_size)
{
    char detail[512], gid[300];
    rd_kafka_conf_t *kc =
        wb_daemon_kafka_conf(fl->conf, "flusher", WB_KAFKA_F_SMALL_PREFETCH, errstr, errstr_size);
    rd_kafka_t *rk;

    if (!kc) return NULL;
    /* A group id is needed by librdkafka even with assign(); a unique one
     * makes sure nothing of the live group is touched. */
    if (!group) {
        snprintf(gid, sizeof(gid), "%s.replay.%d.%" PRId64, fl->conf->flusher.group_id,
                 (int)getpid(), wb_time_real_ms());
        group = gid;
    }
    if (rd_kafka_conf_set(kc, "enable.partition.eof", "true", detail, sizeof(detail))) {
        wb_set_err(errstr, errstr_size, "kafka config: %s", detail);
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    rd_kafka_conf_set_offset_commit_cb(kc, fl_offset_commit_cb);
    rd_kafka_conf_set_opaque(kc, fl);
    if (wb_kafka_consumer_new(kc, group, &rk, errstr, errstr_size) != WB_OK) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    return rk;
}

/* Number of active members of group, or -1 on error. */
static int group_members(rd_kafka_t *rk, const char *group, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(rk, group, &gl, RP_TIMEOUT_MS);
    int n = 0;

    if (err) {
        wb_set_err(errstr, errstr_size, "cannot describe consumer group %s: %s", group,
                   rd_kafka_err2str(err));
        return -1;
    }
    for (int i = 0; i < gl->group_cnt; i++)
        if (strcmp(gl->groups[i].group, group) == 0) n += gl->groups[i].member_cnt;
    rd_kafka_group_list_destroy(gl);
    return n;
}

/* Partitions of the topic, with start = end = -1. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, rp_part_t **out, size_t *nout,
                            char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, RP_TIMEOUT_MS);
    int rc = -1;

    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        wb_set_err(errstr, errstr_size, "topic %s: %s", topic,
                   rd_kafka_err2str(err             ? err
                                    : md->topic_cnt ? md->topics[0].err
                                                    : err));
        goto out;
    }
    *nout = (size_t)md->topics[0].partition_cnt;
    *out = calloc(*nout ? *nout : 1, sizeof(**out));
    if (!*out) goto out;
    for (size_t i = 0; i < *nout; i++)
        (*out)[i] = (rp_part_t){md->topics[0].partitions[i].id, -1, -1, -1, 0};
    rc = 0;
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Offsets of the first events at or after ms (-1 if none) for every partition. */
static int offsets_for_time(rd_kafka_t *rk, const char *topic, rp_part_t *parts, size_t n,
                            int64_t ms, int64_t *out, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i].partition)->offset = ms;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, RP_TIMEOUT_MS);
    if (err) {
        wb_set_err(errstr, errstr_size, "offsets for time: %s", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, topic, parts[i].partition);
        out[i] = tp && !tp->err ? tp->offset : -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

int fl_replay(const wb_config_t *conf, int argc, char **argv)
{
    static const struct option opts[] = {{"from-time", required_argument, NULL, 't'},
                                         {"from-db", no_argument, NULL, 'd'},
                                         {"from-beginning", no_argument, NULL, 'b'},
                                         {"from-offsets", required_argument, NULL, 'o'},
                                         {"to-time", required_argument, NULL, 'T'},
                                         {"entity", required_argument, NULL, 'e'},
                                         {"group-id", required_argument, NULL, 'g'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *topic = conf->kafka.topic_changes, *group = NULL, *entity = NULL;
    int64_t from_ms = -1, to_ms = -1;
    int from_beginning = 0, from_db = 0, nfrom = 0, c, rc = 2;
    rp_part_t *parts = NULL, *given = NULL;
    size_t nparts = 0, ngiven = 0;
    int64_t *tmp = NULL, *recorded = NULL;
    int32_t *ids = NULL;
    size_t ngone = 0;
    char errstr[1024] = "out of memory";
    fl_t fl;
    int fl_ready = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (wb_time_parse_iso8601(optarg, &from_ms, errstr, sizeof(errstr)) != 0) {
                fprintf(stderr, "wb-flusher replay: --from-time: %s\n", errstr);
                goto out;
            }
            nfrom++;
            break;
        case 'b':
            from_beginning = 1;
            nfrom++;
            break;
        case 'd':
            from_db = 1;
            nfrom++;
            break;
        case 'o':
            free(given);
            given = NULL;
            if (parse_offsets(optarg, &given, &ngiven) != 0) {
                fprintf(stderr,
                        "wb-flusher replay: --from-offsets: expected PARTITION:OFFSET[,...], "
                        "got \"%s\"\n",
                        optarg);
                goto out;
            }
            nfrom++;
            break;
        case 'T':
            if (wb_time_parse_iso8601(optarg, &to_ms, errstr, sizeof(errstr)) != 0) {
                fprintf(stderr, "wb-flusher replay: --to-time: %s\n", errstr);
                goto out;
            }
            break;
        case 'e':
            entity = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'h':
            replay_usage(stdout);
            rc = 0;
            goto out;
        default:
            replay_usage(stderr);
            goto out;
        }
    }
    if (optind < argc || nfrom != 1) {
        fprintf(stderr, "wb-flusher replay: give exactly one of --from-time, --from-db, "
                        "--from-beginning, --from-offsets\n");
        replay_usage(stderr);
        goto out;
    }
    if (entity && !wb_config_entity(conf, entity)) {
        fprintf(stderr, "wb-flusher replay: --entity %s: no such entity in %s\n", entity,
                conf->path);
        goto out;
    }
    if (entity && group) {
        /* The commit covers every offset of the batch, also the skipped
         * events of other entities: the group would move past them without
         * PostgreSQL ever getting them. */
        fprintf(stderr, "wb-flusher replay: --entity cannot be combined with --group-id (the "
                        "group's offsets would move past the other entities' events, which "
                        "are skipped); replay one entity without --group-id\n");
        goto out;
    }
    if (from_ms >= 0 && to_ms >= 0 && to_ms < from_ms) {
        fprintf(stderr, "wb-flusher replay: --to-time is before --from-time\n");
        goto out;
    }

    rc = 1;
    if (fl_init(&fl, conf) != WB_OK) goto out;
    fl_ready = 1;
    fl.entity_filter = entity;
    fl.off.commit = group != NULL;
    /* Replay moves the database's applied offsets too (never back; a range
     * the database contradicts is only not recorded) when it starts where
     * the database stands or at the topic's beginning: then it is
     * contiguous with what the database holds. Not from a time or given
     * offsets (a partition without a record would claim what is before
     * its start), nor for one entity (it applies part of the log). */
    fl.ap.offsets_by = entity || !(from_db || from_beginning) ? NULL : group ? group : "replay";
    fl.ap.offsets_guard = 0;
    /* Poison events go to the dead-letter topic as in the daemon. */
    if (fl_dlq_open(&fl.dlq, conf, errstr, sizeof(errstr)) != WB_OK) goto fail;
    if (!(fl.consumer = replay_consumer(&fl, group, errstr, sizeof(errstr)))) goto fail;
    if (group) {
        int members = group_members(fl.consumer, group, errstr, sizeof(errstr));
        if (members < 0) goto fail;
        if (members > 0) {
            fprintf(stderr,
                    "wb-flusher replay: consumer group %s has %d active member(s) (running "
                    "flushers?); refusing to move its offsets. Stop them first, or replay "
                    "without --group-id (a separate consumer that leaves every group alone)\n",
                    group, members);
            rc = 2;
            goto done;
        }
    }
    if (topic_partitions(fl.consumer, topic, &parts, &nparts, errstr, sizeof(errstr)) != 0)
        goto fail;
    /* A compacted topic may have lost a key's newer events: refused. */
    fl_topic_conf_t tc;
    if (fl_topic_describe(fl.consumer, topic, RP_TIMEOUT_MS, &tc, errstr, sizeof(errstr)) ==
            WB_OK &&
        fl_topic_check(&tc, topic, 0, errstr, sizeof(errstr)) != WB_OK)
        goto fail;
    if (!(tmp = calloc(nparts ? nparts : 1, sizeof(*tmp))) ||
        !(recorded = calloc(nparts ? nparts : 1, sizeof(*recorded))) ||
        !(ids = calloc(nparts ? nparts : 1, sizeof(*ids))))
        goto fail;
    /* What PostgreSQL records as applied (also creates the tables). */
    for (size_t i = 0; i < nparts; i++)
        ids[i] = parts[i].partition;
    if (fl_apply_pg_ensure(&fl.ap, errstr, sizeof(errstr)) != WB_OK ||
        fl_pgoffsets_read(fl.ap.pg, topic, ids, nparts, recorded, errstr, sizeof(errstr)) != WB_OK)
        goto fail;

    /* Start and end offsets of every partition. */
    if (from_ms >= 0 && offsets_for_time(fl.consumer, topic, parts, nparts, from_ms, tmp, errstr,
                                         sizeof(errstr)) != 0)
        goto fail;
    for (size_t i = 0; i < nparts; i++) {
        rp_part_t *p = &parts[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
            fl.consumer, topic, p->partition, &lo, &hi, RP_TIMEOUT_MS);
        if (kerr) {
            snprintf(errstr, sizeof(errstr), "watermarks of %s [%" PRId32 "]: %s", topic,
                     p->partition, rd_kafka_err2str(kerr));
            goto fail;
        }
        p->end = hi;
        if (from_beginning) {
            p->start = lo;
        } else if (from_db || from_ms >= 0) {
            /* Never later than the database's offset: it lacks everything
             * after it, however early the time (invariant 5). */
            int64_t want =
                from_db ? (recorded[i] >= 0 ? recorded[i] : lo) : (tmp[i] >= 0 ? tmp[i] : hi);
            int64_t start;
            if (from_db && recorded[i] < 0)
                WB_WARN("partition %" PRId32 ": PostgreSQL records no offset; from the beginning",
                        p->partition);
            if (fl_pgoffsets_decide(want, recorded[i], lo, &start) == FL_START_GONE) {
                fprintf(stderr,
                        "wb-flusher replay: partition %" PRId32
                        ": PostgreSQL records offset %" PRId64 " but the topic starts at %" PRId64
                        " (retention): the events between are gone. Replay --from-beginning "
                        "applies what is left.\n",
                        p->partition, recorded[i], lo);
                ngone++;
            }
            if (!from_db && start < want)
                WB_INFO("partition %" PRId32 ": starting at %" PRId64
                        ", the offset PostgreSQL records, not at %" PRId64 " (--from-time)",
                        p->partition, start, want);
            p->start = start > hi ? hi : start;
        } else {
            p->start = hi; /* not listed: nothing to replay */
            for (size_t g = 0; g < ngiven; g++) {
                if (given[g].partition != p->partition) continue;
                p->start = given[g].start < lo ? lo : given[g].start;
                if (given[g].start < lo)
                    WB_WARN("partition %" PRId32 ": offset %" PRId64
                            " is gone (retention); starting at %" PRId64,
                            p->partition, given[g].start, lo);
                given[g].done = 1;
            }
        }
    }
    if (ngone > 0) goto fail_quiet;
    for (size_t g = 0; g < ngiven; g++) {
        if (!given[g].done) {
            fprintf(stderr, "wb-flusher replay: topic %s has no partition %" PRId32 "\n", topic,
                    given[g].partition);
            rc = 2;
            goto done;
        }
    }
    if (to_ms >= 0) {
        if (offsets_for_time(fl.consumer, topic, parts, nparts, to_ms, tmp, errstr,
                             sizeof(errstr)) != 0)
            goto fail;
        for (size_t i = 0; i < nparts; i++)
            if (tmp[i] >= 0 && tmp[i] < parts[i].end) parts[i].end = tmp[i];
    }
    int64_t total = 0;
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new((int)nparts);
    for (size_t i = 0; i < nparts; i++) {
        rp_part_t *p = &parts[i];
        p->pos = p->start;
        if (p->start >= p->end) {
            p->done = 1;
            continue;
        }
        total += p->end - p->start;
        rd_kafka_topic_partition_list_add(assign, topic, p->partition)->offset = p->start;
        WB_INFO("replay %s [%" PRId32 "]: offsets %" PRId64 "..%" PRId64, topic, p->partition,
                p->start, p->end - 1);
    }
    rd_kafka_resp_err_t aerr = assign->cnt ? rd_kafka_assign(fl.consumer, assign) : 0;
    for (int i = 0; !aerr && i < assign->cnt; i++) {
        fl_part_t *fp =
            fl_offsets_part(&fl.off, assign->elems[i].topic, assign->elems[i].partition);
        if (fp) {
            fp->assigned = 1; /* fl_offsets_commit_sync commits the assigned ones */
            fp->committed = assign->elems[i].offset; /* where the ranges start */
        }
    }
    rd_kafka_topic_partition_list_destroy(assign);
    if (aerr) {
        snprintf(errstr, sizeof(errstr), "assign: %s", rd_kafka_err2str(aerr));
        goto fail;
    }
    WB_INFO("replaying %" PRId64 " events of %s%s%s%s", total, topic, entity ? " (entity " : "",
            entity ? entity : "", entity ? " only)" : "");

    int64_t t0 = wb_time_mono_ms(), next_progress = t0 + 1000;
    size_t ndone = 0;
    for (size_t i = 0; i < nparts; i++)
        ndone += parts[i].done;
    /* As the daemon: this thread consumes and decodes while the writer
     * applies the previous batch; a failed batch is retried with backoff. */
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(fl.consumer);
    int64_t nudged_ms = 0, retry_at = 0;
    while (!wb_loop_stopping()) {
        int all_done = ndone == nparts;
        int64_t now = wb_time_mono_ms();
        int busy = fl_writer_busy(&fl.w);
        /* A full batch waits for the writer, or for the retry of the one it
         * holds: it does not grow meanwhile. */
        int full = (busy || fl.w.batch.n > 0) && fl_batch_full(&fl.batch, conf);
        if (!all_done && !full) {
            rd_kafka_message_t *msgs[FL_TAKE_MAX];
            ssize_t n = fl_take(&fl, cq, busy ? 5 : 100, &nudged_ms, msgs);
            rp_part_t *rewound = NULL;
            for (ssize_t k = 0; k < n; k++) {
                rd_kafka_message_t *msg = msgs[k];
                rp_part_t *p = NULL;
                for (size_t i = 0; i < nparts; i++)
                    if (parts[i].partition == msg->partition) p = &parts[i];
                if (!p || p->done) {
                    rd_kafka_message_destroy(msg);
                } else if (msg->err) {
                    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        p->done = 1; /* caught up with the partition's end */
                        ndone++;
                    } else {
                        WB_WARN("kafka: %s", rd_kafka_message_errstr(msg));
                    }
                    rd_kafka_message_destroy(msg);
                } else if (p == rewound) {
                    /* after a rewind of its partition in this call: it comes again */
                    rd_kafka_message_destroy(msg);
                } else {
                    int64_t off = msg->offset, next = off + 1;
                    if (off >= p->end)
                        rd_kafka_message_destroy(msg);
                    else if (fl_consume(&fl, msg) != 0) {
                        next = off; /* rewound (out of memory): it comes again */
                        rewound = p;
                    } else
                        p->pos = next;
                    if (next >= p->end) {
                        p->done = 1;
                        ndone++;
                    }
                }
            }
            all_done = ndone == nparts;
        }
        now = wb_time_mono_ms();
        if (busy) {
            wb_err_t werr = WB_OK;
            int wait = fl_batch_full(&fl.batch, conf) || all_done ? 100 : 0;
            if (fl_collect(&fl, wait, &werr, errstr, sizeof(errstr))) {
                if (werr == WB_OK) {
                    wb_backoff_reset(&fl.backoff);
                } else {
                    int64_t delay = wb_backoff_next_ms(&fl.backoff);
                    WB_WARN("%s; retrying in %" PRId64 " ms", errstr, delay);
                    retry_at = now + delay;
                }
            }
        }
        if (!fl_writer_busy(&fl.w)) {
            if (fl.w.batch.n > 0) { /* held after a failure */
                if (now >= retry_at)
                    fl_submit(&fl);
                else if (all_done || fl_batch_due(&fl.batch, conf, now, 0))
                    usleep(10000);
            } else if (fl_batch_due(&fl.batch, conf, now, 0) || (all_done && fl.batch.n > 0)) {
                /* No idle flush (caught_up 0): a replay reads a range that
                 * is there already; its batches fill, and its end (all_done)
                 * sends the last one. */
                fl_submit(&fl);
            }
        }
        int finished = all_done && fl_pending(&fl) == 0 && !fl_writer_busy(&fl.w);
        if (now >= next_progress || finished) {
            int64_t pos = 0;
            for (size_t i = 0; i < nparts; i++)
                pos += parts[i].pos - parts[i].start;
            double secs = (double)(now - t0) / 1000.0;
            double rate = secs > 0 ? (double)pos / secs : 0;
            fprintf(stderr,
                    "replay: %" PRId64 "/%" PRId64 " events (%.1f%%), %.0f events/s, ETA %.0f s\n",
                    pos, total, total ? 100.0 * (double)pos / (double)total : 100.0, rate,
                    rate > 0 ? (double)(total - pos) / rate : 0.0);
            next_progress = now + 1000;
        }
        if (finished) break;
    }
    rd_kafka_queue_destroy(cq);
    int interrupted = wb_loop_stopping() != 0;
    if (fl_pending(&fl) > 0 && fl_flush(&fl, errstr, sizeof(errstr)) != WB_OK) {
        WB_WARN("last batch not written: %s", errstr);
        interrupted = 1;
    }
    /* The asynchronous commits are on the broker before we report. */
    fl_offsets_commit_sync(&fl.off, fl.consumer, NULL);
    size_t dirty = fl_clean_wait(&fl.cl, RP_CLEAN_WAIT_MS);
    if (dirty)
        WB_WARN("%zu cache entries still dirty (Redis did not answer in time; the sweeper "
                "re-publishes them)",
                dirty);
    double secs = (double)(wb_time_mono_ms() - t0) / 1000.0;
    fprintf(stderr,
            "replay %s: %" PRIu64 " events read in %.1f s, %" PRIu64 " rows written, %" PRIu64
            " already up to date, %" PRIu64 " coalesced, %" PRIu64 " dead-lettered, %" PRIu64
            " skipped (other entities)\n",
            interrupted ? "interrupted" : "done", fl.t_consumed, secs, fl.t_upserted, fl.t_stale,
            fl.t_coalesced, fl.t_dead, fl.t_skipped);
    rc = interrupted ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "wb-flusher replay: %s\n", errstr);
fail_quiet:
    rc = 1;
done:
    if (fl_ready) {
        fl_discard(&fl);
        if (fl.consumer) {
            rd_kafka_consumer_close(fl.consumer);
            rd_kafka_destroy(fl.consumer);
            fl.consumer = NULL;
        }
        fl_fini(&fl);
    }
out:
    free(parts);
    free(given);
    free(tmp);
    free(recorded);
    free(ids);
    return rc;
}
