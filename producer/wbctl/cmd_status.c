/* cmd_status.c — `wbctl status`: dirty entries, flusher consumer-group lag, dead-letter topic size.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_cli.h"
#include "wb_entry.h"
#include "wb_kafka.h"
#include "wb_redis.h"
#include "wb_util.h"
#include "wbctl.h"

#define KAFKA_TIMEOUT_MS 5000

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] status\n"
                    "  Dirty cache entries and the age of the oldest (dirty index), the\n"
                    "  flusher group's lag per partition of the changes topic, and the\n"
                    "  number of messages in the dead-letter topic.\n");
    return 2;
}

/* Dirty index, all shards: its size and the lowest score (the oldest
 * write time, us). A cache of another layout is reported, not misread. */
static int redis_status(const wb_config_t *conf)
{
    char errstr[512];
    wb_rc_t *rc = NULL;
    wb_entry_dirty_stats_t st;

    if (wb_rc_connect(conf, &rc, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        return 1;
    }
    if (wb_entry_layout_check(rc, conf->redis.dirty_index, conf->redis.dirty_shards, errstr,
                              sizeof(errstr)) != WB_OK ||
        wb_entry_dirty_stats(rc, conf->redis.dirty_index, conf->redis.dirty_shards, &st, errstr,
                             sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        wb_rc_free(rc);
        return 1;
    }
    printf("dirty entries:     %lld (index %s, %d shards)\n", (long long)st.count,
           conf->redis.dirty_index, conf->redis.dirty_shards);
    if (st.has_oldest) {
        double age_s = ((double)wb_time_real_us() - st.oldest_us) / 1e6;

        /* A cache key is any bytes an application chose: on a terminal,
         * shown without its controls. */
        printf("oldest dirty:      %.3f s ago (", age_s < 0 ? 0 : age_s);
        wbctl_write_shown(stdout, st.oldest_key, strlen(st.oldest_key), isatty(STDOUT_FILENO));
        printf(")\n");
    } else {
        printf("oldest dirty:      -\n");
    }
    wb_rc_free(rc);
    return 0;
}

/* Partitions of topic (from metadata) into a new list; NULL on error. */
static rd_kafka_topic_partition_list_t *topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;

    if (!rkt) return NULL;
    err = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
    if (!err && md->topic_cnt == 1 && !md->topics[0].err) {
        list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(list, topic, md->topics[0].partitions[i].id);
    } else {
        fprintf(stderr, "wbctl: status: kafka: topic %s: %s\n", topic,
                rd_kafka_err2str(err                  ? err
                                 : md->topic_cnt == 1 ? md->topics[0].err
                                                      : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return list;
}

/* Lag of the flusher group per partition: high watermark - committed
 * offset (no commit yet: everything from the low watermark). The consumer
 * never subscribes, so it does not join the group or disturb it. */
static int kafka_status(const wb_config_t *conf)
{
    char errstr[512];
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL, *dlq = NULL;
    int64_t total = 0, dlq_total = 0;
    int rc = 1;

    if (wb_kafka_conf_new(conf, "wbctl-status", 0, &kconf, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kconf, conf->flusher.group_id, &rk, errstr, sizeof(errstr)) !=
            WB_OK) {
        if (kconf && !rk) rd_kafka_conf_destroy(kconf);
        fprintf(stderr, "wbctl: status: %s\n", errstr);
        return 1;
    }
    parts = topic_partitions(rk, conf->kafka.topic_changes);
    if (!parts) goto done;
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, KAFKA_TIMEOUT_MS);
    if (err) {
        fprintf(stderr, "wbctl: status: kafka: committed offsets of group %s: %s\n",
                conf->flusher.group_id, rd_kafka_err2str(err));
        goto done;
    }
    printf("flusher lag:       group %s, topic %s\n", conf->flusher.group_id,
           conf->kafka.topic_changes);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo = 0, hi = 0, lag;

        err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi,
                                               KAFKA_TIMEOUT_MS);
        if (err) {
            fprintf(stderr, "wbctl: status: kafka: watermarks of %s[%d]: %s\n", p->topic,
                    p->partition, rd_kafka_err2str(err));
            goto done;
        }
        lag = p->offset >= 0 ? hi - p->offset : hi - lo;
        total += lag;
        if (p->offset >= 0)
            printf("  partition %-3d    lag %" PRId64 " (committed %" PRId64 ", end %" PRId64 ")\n",
                   p->partition, lag, p->offset, hi);
        else
            printf("  partition %-3d    lag %" PRId64 " (no commit yet, end %" PRId64 ")\n",
                   p->partition, lag, hi);
    }
    printf("  total            lag %" PRId64 "\n", total);

    dlq = topic_partitions(rk, conf->kafka.topic_dead_letter);
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
        dlq_total += hi - lo;
    }
    printf("dead letters:      %" PRId64 " (topic %s)\n", dlq_total, conf->kafka.topic_dead_letter);
    rc = 0;

done:
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    if (dlq) rd_kafka_topic_partition_list_destroy(dlq);
    rd_kafka_destroy(rk);
    return rc;
}

int wbctl_cmd_status(const wbctl_opts_t *opts, int argc, char **argv)
{
    wb_config_t *conf;
    int rc;

    if (argc != 1) {
        (void)argv;
        return usage();
    }
    conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf) return 2;
    rc = redis_status(conf);
    rc |= kafka_status(conf);
    wb_config_destroy(conf);
    return rc;
}
