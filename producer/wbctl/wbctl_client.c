/* wbctl_client.c — what wbctl's client subcommands share: opening a client, reading values, errors.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_cli.h"
#include "wb_log.h"
#include "wb_utf8.h"
#include "wbctl.h"

/* Library log lines: warnings and errors only, as the library has no
 * stderr of its own. Called from any library thread. */
static void log_to_stderr(wb_log_level_t level, const char *line, void *opaque)
{
    (void)opaque;
    if (level >= WB_LOG_WARN) fprintf(stderr, "%s\n", line);
}

wb_client_t *wbctl_client_from_config(wb_config_t *conf, int *status)
{
    char errstr[1024];
    wb_client_t *client = NULL;
    wb_err_t err;
    int format = wb_log_format_parse(conf->log.format);

    /* The library's lines (warnings and errors) in the config's log.format. */
    if (format >= 0) wb_log_set_format((wb_log_format_t)format);
    err = wb_client_open_config(conf, log_to_stderr, NULL, &client, errstr, sizeof(errstr));
    if (err != WB_OK) {
        fprintf(stderr, "wbctl: cannot open the client: %s: %s\n", wb_err2str(err), errstr);
        wb_config_destroy(conf);
        *status = err == WB_ERR_CONFIG ? 2 : 1;
        return NULL;
    }
    *status = 0;
    return client;
}

wb_client_t *wbctl_client_open(const wbctl_opts_t *opts, const wb_config_t **confp, int *status)
{
    wb_config_t *conf = wb_cli_load_config("wbctl", opts->config_path);
    wb_client_t *client;

    if (!conf) {
        *status = 2;
        return NULL;
    }
    client = wbctl_client_from_config(conf, status);
    if (client && confp) *confp = conf;
    return client;
}

int wbctl_read_value(const char *arg, FILE *in, size_t max, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b;

    if (arg && strcmp(arg, "-") != 0) {
        *buf = strdup(arg);
        *len = strlen(arg);
        return *buf ? 0 : -1;
    }
    /* Read at most max + 1 bytes: one more than allowed tells "too large"
     * without holding whatever a pipe may still send. */
    b = malloc(cap);
    while (b && n <= max) {
        size_t want = cap - n < max + 1 - n ? cap - n : max + 1 - n;
        size_t got = fread(b + n, 1, want, in);

        n += got;
        if (got == 0) break;
        if (n == cap && n <= max) {
            char *nb = realloc(b, cap * 2);

            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    if (!b || ferror(in)) {
        fprintf(stderr, "wbctl: cannot read the value from stdin\n");
        free(b);
        return -1;
    }
    if (n > max) {
        fprintf(stderr,
                "wbctl: the value on stdin is larger than producer.max_value_bytes (%zu bytes); "
                "nothing was written\n",
                max);
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

int wbctl_write_shown(FILE *out, const void *data, size_t len, int tty)
{
    const unsigned char *p = data;
    size_t i = 0, seq;

    if (!tty) return fwrite(data, 1, len, out) == len ? 0 : -1;
    while (i < len) {
        seq = wb_utf8_seq(p + i, len - i);
        if (seq == 1 && (p[i] >= 0x20 || p[i] == '\n' || p[i] == '\t') && p[i] != 0x7f) {
            fputc(p[i], out);
        } else if (seq > 1 && !(p[i] == 0xc2 && p[i + 1] < 0xa0)) { /* not a C1 control */
            fwrite(p + i, 1, seq, out);
        } else {
            /* A control byte, a C1 control or a byte that is not UTF-8:
             * one escape per byte, so nothing reaches the terminal raw. */
            seq = seq ? seq : 1;
            for (size_t k = 0; k < seq; k++) {
                if (p[i + k] == '\r')
                    fputs("\\r", out);
                else
                    fprintf(out, "\\x%02x", p[i + k]);
            }
        }
        i += seq;
    }
    return ferror(out) ? -1 : 0;
}

int wbctl_parse_ack(const char *s, wb_ack_t *ack)
{
    if (s && strcmp(s, "cache") == 0)
        *ack = WB_ACK_CACHE;
    else if (s && strcmp(s, "log") == 0)
        *ack = WB_ACK_LOG;
    else if (s && strcmp(s, "replica") == 0)
        *ack = WB_ACK_REPLICA;
    else
        return -1;
    return 0;
}

int wbctl_fail(const char *what, wb_err_t err)
{
    fprintf(stderr, "wbctl: %s: %s\n", what, wb_err2str(err));
    return err == WB_ERR_NOT_FOUND ? WBCTL_EXIT_NOT_FOUND : 1;
}

int wbctl_parse_ack_opts(int argc, char **argv, wb_ack_t *ack)
{
    static const struct option lopts[] = {{"ack", required_argument, NULL, 'a'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        if (c == 'a' && wbctl_parse_ack(optarg, ack) == 0) continue;
        return -1;
    }
    return 0;
}

wb_client_t *wbctl_client_open_value(const wbctl_opts_t *opts, const char *arg, char **value,
                                     size_t *len, int *status)
{
    wb_config_t *conf = wb_cli_load_config("wbctl", opts->config_path);
    wb_client_t *client;

    if (!conf) {
        *status = 2;
        return NULL;
    }
    if (wbctl_read_value(arg, stdin, (size_t)conf->producer.max_value_bytes, value, len) != 0) {
        wb_config_destroy(conf);
        *status = 1;
        return NULL;
    }
    client = wbctl_client_from_config(conf, status);
    if (!client) {
        free(*value);
        *value = NULL;
    }
    return client;
}

int wbctl_print_version(const char *what, wb_err_t err, int64_t version)
{
    if (err != WB_OK) return wbctl_fail(what, err);
    printf("%" PRId64 "\n", version);
    return 0;
}

rd_kafka_topic_partition_list_t *wbctl_topic_partitions(rd_kafka_t *rk, const char *topic,
                                                        const char *what, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;

    if (!rkt) return NULL;
    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (!err && md->topic_cnt == 1 && !md->topics[0].err) {
        list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(list, topic, md->topics[0].partitions[i].id);
    } else {
        fprintf(stderr, "wbctl: %s: kafka: topic %s: %s\n", what, topic,
                rd_kafka_err2str(err                  ? err
                                 : md->topic_cnt == 1 ? md->topics[0].err
                                                      : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return list;
}
