/* cmd_status.c — `wbctl status [--json]`: dirty entries, flusher consumer-group lag, dead-letter
 * topic size. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_cli.h"
#include "wb_entry.h"
#include "wb_kafka.h"
#include "wb_log.h"
#include "wb_redis.h"
#include "wb_util.h"
#include "wbctl.h"

#define KAFKA_TIMEOUT_MS 5000

/* One partition of the changes topic. */
typedef struct status_part_s {
    int32_t partition;
    int64_t lag, committed, end; /* committed -1: no commit yet */
} status_part_t;

/* What status found; a section whose *_ok is 0 could not be read. */
typedef struct status_s {
    int dirty_ok;
    wb_entry_dirty_stats_t dirty;
    double oldest_age_s;
    int lag_ok;
    status_part_t *parts;
    int nparts;
    int64_t total_lag;
    int dlq_ok;
    int64_t dead_letters;
} status_t;

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] status [--json]\n"
                    "  Dirty cache entries and the age of the oldest (dirty index), the\n"
                    "  flusher group's lag per partition of the changes topic, and the\n"
                    "  number of messages in the dead-letter topic. --json prints one JSON\n"
                    "  object (a section that cannot be read is null; exit status 1).\n");
    return 2;
}

/* Dirty index, all shards: its size and the lowest score (the oldest
 * write time, us). A cache of another layout is reported, not misread. */
static int redis_status(const wb_config_t *conf, status_t *st)
{
    char errstr[512];
    wb_rc_t *rc = NULL;

    if (wb_rc_connect(conf, &rc, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        return 1;
    }
    if (wb_entry_layout_check(rc, conf->redis.dirty_index, conf->redis.dirty_shards, errstr,
                              sizeof(errstr)) != WB_OK ||
        wb_entry_dirty_stats(rc, conf->redis.dirty_index, conf->redis.dirty_shards, &st->dirty,
                             errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        wb_rc_free(rc);
        return 1;
    }
    if (st->dirty.has_oldest) {
        st->oldest_age_s = ((double)wb_time_real_us() - st->dirty.oldest_us) / 1e6;
        if (st->oldest_age_s < 0) st->oldest_age_s = 0;
    }
    st->dirty_ok = 1;
    wb_rc_free(rc);
    return 0;
}

/* Lag of the flusher group per partition: high watermark - committed
 * offset (no commit yet: everything from the low watermark). The consumer
 * never subscribes, so it does not join the group or disturb it. */
static int kafka_status(const wb_config_t *conf, status_t *st)
{
    char errstr[512];
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL, *dlq = NULL;
    int rc = 1;

    if (wb_kafka_conf_new(conf, "wbctl-status", 0, &kconf, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kconf, conf->flusher.group_id, &rk, errstr, sizeof(errstr)) !=
            WB_OK) {
        if (kconf && !rk) rd_kafka_conf_destroy(kconf);
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        return 1;
    }
    parts = wbctl_topic_partitions(rk, conf->kafka.topic_changes, "status", KAFKA_TIMEOUT_MS);
    if (!parts) goto done;
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, KAFKA_TIMEOUT_MS);
    if (err) {
        fprintf(stderr, "wbctl: status: kafka: committed offsets of group %s: %s\n",
                conf->flusher.group_id, rd_kafka_err2str(err));
        goto done;
    }
    st->parts = calloc((size_t)parts->cnt + 1, sizeof(*st->parts));
    if (!st->parts) goto done;
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo = 0, hi = 0;

        err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi,
                                               KAFKA_TIMEOUT_MS);
        if (err) {
            fprintf(stderr, "wbctl: status: kafka: watermarks of %s[%d]: %s\n", p->topic,
                    p->partition, rd_kafka_err2str(err));
            goto done;
        }
        st->parts[i] = (status_part_t){p->partition, p->offset >= 0 ? hi - p->offset : hi - lo,
                                       p->offset >= 0 ? p->offset : -1, hi};
        st->total_lag += st->parts[i].lag;
        st->nparts++;
    }
    st->lag_ok = 1;

    dlq = wbctl_topic_partitions(rk, conf->kafka.topic_dead_letter, "status", KAFKA_TIMEOUT_MS);
    if (!dlq) goto done;
    for (int i = 0; i < dlq->cnt; i++) {
        int64_t lo = 0, hi = 0;

        err = rd_kafka_query_watermark_offsets(rk, dlq->elems[i].topic, dlq->elems[i].partition,
                                               &lo, &hi, KAFKA_TIMEOUT_MS);
        if (err) {
            fprintf(stderr, "wbctl: status: kafka: watermarks of %s[%d]: %s\n", dlq->elems[i].topic,
                    dlq->elems[i].partition, rd_kafka_err2str(err));
            goto done;
        }
        st->dead_letters += hi - lo;
    }
    st->dlq_ok = 1;
    rc = 0;

done:
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    if (dlq) rd_kafka_topic_partition_list_destroy(dlq);
    rd_kafka_destroy(rk);
    return rc;
}

static void print_text(const wb_config_t *conf, const status_t *st)
{
    if (st->dirty_ok) {
        printf("dirty entries:     %lld (index %s, %d shards)\n", (long long)st->dirty.count,
               conf->redis.dirty_index, conf->redis.dirty_shards);
        if (st->dirty.has_oldest) {
            /* A cache key is any bytes an application chose: on a terminal,
             * shown without its controls. */
            printf("oldest dirty:      %.3f s ago (", st->oldest_age_s);
            wbctl_write_shown(stdout, st->dirty.oldest_key, strlen(st->dirty.oldest_key),
                              isatty(STDOUT_FILENO));
            printf(")\n");
        } else
            printf("oldest dirty:      -\n");
    }
    if (st->lag_ok) {
        printf("flusher lag:       group %s, topic %s\n", conf->flusher.group_id,
               conf->kafka.topic_changes);
        for (int i = 0; i < st->nparts; i++) {
            const status_part_t *p = &st->parts[i];
            if (p->committed >= 0)
                printf("  partition %-3d    lag %" PRId64 " (committed %" PRId64 ", end %" PRId64
                       ")\n",
                       p->partition, p->lag, p->committed, p->end);
            else
                printf("  partition %-3d    lag %" PRId64 " (no commit yet, end %" PRId64 ")\n",
                       p->partition, p->lag, p->end);
        }
        printf("  total            lag %" PRId64 "\n", st->total_lag);
    }
    if (st->dlq_ok)
        printf("dead letters:      %" PRId64 " (topic %s)\n", st->dead_letters,
               conf->kafka.topic_dead_letter);
}

/* s as a JSON string (binary-safe: see wb_log_json_escape). */
static void json_str(const char *s)
{
    char buf[2048];

    wb_log_json_escape(buf, sizeof(buf), s, strlen(s), NULL);
    printf("\"%s\"", buf);
}

static void print_json(const wb_config_t *conf, const status_t *st)
{
    printf("{\"dirty\":");
    if (st->dirty_ok) {
        printf("{\"index\":");
        json_str(conf->redis.dirty_index);
        printf(",\"shards\":%d,\"entries\":%lld,\"oldest_age_seconds\":", conf->redis.dirty_shards,
               (long long)st->dirty.count);
        if (st->dirty.has_oldest) {
            printf("%.3f,\"oldest_key\":", st->oldest_age_s);
            json_str(st->dirty.oldest_key);
        } else {
            printf("null,\"oldest_key\":null");
        }
        printf("}");
    } else {
        printf("null");
    }
    printf(",\"flusher\":");
    if (st->lag_ok) {
        printf("{\"group\":");
        json_str(conf->flusher.group_id);
        printf(",\"topic\":");
        json_str(conf->kafka.topic_changes);
        printf(",\"partitions\":[");
        for (int i = 0; i < st->nparts; i++) {
            const status_part_t *p = &st->parts[i];
            printf("%s{\"partition\":%" PRId32 ",\"lag\":%" PRId64 ",\"committed\":", i ? "," : "",
                   p->partition, p->lag);
            if (p->committed >= 0)
                printf("%" PRId64, p->committed);
            else
                printf("null");
            printf(",\"end\":%" PRId64 "}", p->end);
        }
        printf("],\"total_lag\":%" PRId64 "}", st->total_lag);
    } else {
        printf("null");
    }
    printf(",\"dead_letters\":");
    if (st->dlq_ok) {
        printf("{\"topic\":");
        json_str(conf->kafka.topic_dead_letter);
        printf(",\"messages\":%" PRId64 "}", st->dead_letters);
    } else {
        printf("null");
    }
    printf("}\n");
}

int wbctl_cmd_status(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    wb_config_t *conf;
    status_t st;
    int c, json = 0, rc;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c != 'j') return usage();
        json = 1;
    }
    if (optind != argc) return usage();
    conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf) return 2;
    memset(&st, 0, sizeof(st));
    rc = redis_status(conf, &st);
    rc |= kafka_status(conf, &st);
    if (json)
        print_json(conf, &st);
    else
        print_text(conf, &st);
    free(st.parts);
    wb_config_destroy(conf);
    return rc;
}
