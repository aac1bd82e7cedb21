/* cmd_dlq.c — `wbctl dlq list|show|redrive`: the flusher's dead letters, read and sent back.
 *
 * The flusher dead-letters an event it cannot apply (fl_dlq.c): the original
 * key, value and headers plus wb-dlq-reason and the origin (wb-dlq-topic,
 * wb-dlq-partition, wb-dlq-offset). A dead letter is named by its place in
 * the dead-letter topic, "PARTITION:OFFSET". Redriving produces the original
 * key, value and headers (without the wb-dlq-* ones) to the changes topic
 * again; it is safe to repeat because the flusher's version guard turns an
 * event older than the row into a no-op (invariant 4).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wb_cli.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_util.h"
#include "wbctl.h"

#define DLQ_TIMEOUT_MS 10000
#define DLQ_MAX_IDS    64
#define DLQ_KEY_SHOWN  48

/* What to select; every set field must match. */
typedef struct dlq_filter_s {
    const char *reason;     /* substring of wb-dlq-reason */
    const char *entity;     /* wb-entity equal */
    const char *key_prefix; /* key starts with */
    int64_t newer_ms;       /* dead-lettered less than this long ago (0: any) */
    int64_t older_ms;       /* dead-lettered more than this long ago (0: any) */
    int32_t id_part[DLQ_MAX_IDS];
    int64_t id_off[DLQ_MAX_IDS];
    int nids; /* --id given: only these */
    int64_t limit;
} dlq_filter_t;

/* One dead letter as read: borrowed from msg. */
typedef struct dlq_msg_s {
    const rd_kafka_message_t *msg;
    int64_t time_ms; /* dead-letter time (message timestamp), -1 unknown */
    char reason[512], otopic[256], opart[24], ooff[24];
    int decoded; /* ev is a valid change event */
    wb_event_t ev;
    char decode_err[256];
} dlq_msg_t;

typedef int (*dlq_visit_fn)(const dlq_msg_t *m, void *opaque);

static int usage(void)
{
    fprintf(
        stderr,
        "usage: wbctl [-c FILE] dlq list [FILTERS]\n"
        "       wbctl [-c FILE] dlq show PARTITION:OFFSET\n"
        "       wbctl [-c FILE] dlq redrive [FILTERS] [--execute]\n"
        "  The flusher's dead letters (topic kafka.topics.dead_letter), each named by\n"
        "  its place there, PARTITION:OFFSET. list prints one line per dead letter:\n"
        "  id, age, entity, key, version, op, origin (topic[partition]@offset) and\n"
        "  reason; show prints one in full; redrive produces the selected ones, with\n"
        "  their original key, value and headers, to the changes topic again. It is\n"
        "  a dry run unless --execute is given. Redriving is safe: the flusher's\n"
        "  version guard makes an event older than the stored row a no-op, so a\n"
        "  dead letter overtaken by a newer write changes nothing; fix the cause\n"
        "  (e.g. add the entity to the flusher's config) before redriving.\n"
        "filters:\n"
        "  --reason TEXT        reason contains TEXT (e.g. \"unknown entity\")\n"
        "  --entity NAME        events of entity NAME\n"
        "  --key-prefix P       keys starting with P\n"
        "  --newer-than DUR     dead-lettered less than DUR ago (DUR: 90s, 15m, 2h, 1d, 500ms)\n"
        "  --older-than DUR     dead-lettered more than DUR ago\n"
        "  --id PARTITION:OFFSET  this dead letter (repeatable)\n"
        "  --limit N            at most N dead letters\n");
    return 2;
}

/* "500ms", "90s", "15m", "2h", "1d" (a bare number is seconds) -> ms. */
static int parse_duration(const char *s, int64_t *ms)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t mult;

    if (end == s || v < 0) return -1;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > INT64_MAX / mult) return -1;
    *ms = v * mult;
    return 0;
}

/* "PARTITION:OFFSET". */
static int parse_id(const char *s, int32_t *part, int64_t *off)
{
    const char *colon = strchr(s, ':');
    int64_t p, o;

    if (!colon || wb_parse_i64(s, (size_t)(colon - s), &p) != 0 ||
        wb_parse_i64(colon + 1, strlen(colon + 1), &o) != 0 || p > INT32_MAX)
        return -1;
    *part = (int32_t)p;
    *off = o;
    return 0;
}

/* Header name's last value as a C string in buf ("" when absent). */
static void header_str(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *val = NULL;
    size_t len = 0;

    buf[0] = '\0';
    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val)
        return;
    if (len >= size) len = size - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
}

static int filter_match(const dlq_filter_t *f, const dlq_msg_t *m, int64_t now_ms)
{
    const rd_kafka_message_t *msg = m->msg;
    int64_t age = m->time_ms >= 0 ? now_ms - m->time_ms : -1;

    if (f->nids) {
        int hit = 0;
        for (int i = 0; i < f->nids && !hit; i++)
            hit = f->id_part[i] == msg->partition && f->id_off[i] == msg->offset;
        if (!hit) return 0;
    }
    if (f->reason && !strstr(m->reason, f->reason)) return 0;
    if (f->entity && (!m->decoded || m->ev.entitylen != strlen(f->entity) ||
                      memcmp(m->ev.entity, f->entity, m->ev.entitylen) != 0))
        return 0;
    if (f->key_prefix) {
        size_t n = strlen(f->key_prefix);
        if (msg->key_len < n || memcmp(msg->key, f->key_prefix, n) != 0) return 0;
    }
    if (f->newer_ms && (age < 0 || age >= f->newer_ms)) return 0;
    if (f->older_ms && (age < 0 || age <= f->older_ms)) return 0;
    return 1;
}

/* Reads the dead-letter topic from its start to its end as of now and calls
 * visit for each dead letter matching f (at most f->limit), stopping early
 * when visit returns non-zero. Returns 0, or 1 after printing the error. */
static int dlq_scan(const wb_config_t *conf, const dlq_filter_t *f, dlq_visit_fn visit,
                    void *opaque)
{
    char errstr[512];
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL, *assign = NULL;
    int64_t *end = NULL, seen = 0, last_ms, now_ms = wb_time_real_ms();
    int rc = 1, open = 0, stop = 0;

    if (wb_kafka_conf_new(conf, "wbctl-dlq", 0, &kconf, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kconf, "wbctl-dlq", &rk, errstr, sizeof(errstr)) != WB_OK) {
        if (kconf && !rk) rd_kafka_conf_destroy(kconf);
        fprintf(stderr, "wbctl: dlq: %s\n", errstr);
        return 1;
    }
    parts = wbctl_topic_partitions(rk, conf->kafka.topic_dead_letter, "dlq", DLQ_TIMEOUT_MS);
    if (!parts) goto done;
    assign = rd_kafka_topic_partition_list_new(parts->cnt);
    end = calloc((size_t)parts->cnt + 1, sizeof(*end));
    if (!end) goto done;
    /* Each partition from its low watermark to its high one as of now. */
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, parts->elems[i].topic, parts->elems[i].partition, &lo, &hi, DLQ_TIMEOUT_MS);

        if (err) {
            fprintf(stderr, "wbctl: dlq: kafka: watermarks of %s[%d]: %s\n", parts->elems[i].topic,
                    parts->elems[i].partition, rd_kafka_err2str(err));
            goto done;
        }
        end[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(assign, parts->elems[i].topic,
                                              parts->elems[i].partition)
                ->offset = lo;
            open++;
        }
    }
    if (open && rd_kafka_assign(rk, assign) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "wbctl: dlq: kafka: cannot assign %s\n", conf->kafka.topic_dead_letter);
        goto done;
    }
    last_ms = wb_time_mono_ms();
    while (open > 0 && !stop) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
        dlq_msg_t m;
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_timestamp_type_t tstype;
        int idx = -1;

        if (!msg) {
            /* Offsets the log skips (none in a plain topic, but a
             * compacted or transactional one has gaps): done once every
             * partition's position has reached its end. */
            int reached = rd_kafka_position(rk, assign) == RD_KAFKA_RESP_ERR_NO_ERROR;
            for (int i = 0; reached && i < assign->cnt; i++)
                for (int j = 0; j < parts->cnt; j++)
                    if (parts->elems[j].partition == assign->elems[i].partition)
                        reached = assign->elems[i].offset >= end[j];
            if (reached) break;
            if (wb_time_mono_ms() - last_ms > DLQ_TIMEOUT_MS) {
                fprintf(stderr, "wbctl: dlq: kafka: no message from %s for %d ms\n",
                        conf->kafka.topic_dead_letter, DLQ_TIMEOUT_MS);
                goto done;
            }
            continue;
        }
        last_ms = wb_time_mono_ms();
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "wbctl: dlq: kafka: %s\n", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].partition == msg->partition) idx = i;
        if (idx < 0 || msg->offset >= end[idx]) { /* written after we started */
            rd_kafka_message_destroy(msg);
            continue;
        }
        memset(&m, 0, sizeof(m));
        m.msg = msg;
        m.time_ms = rd_kafka_message_timestamp(msg, &tstype);
        if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = NULL;
        header_str(hdrs, WB_HDR_DLQ_REASON, m.reason, sizeof(m.reason));
        header_str(hdrs, WB_HDR_DLQ_TOPIC, m.otopic, sizeof(m.otopic));
        header_str(hdrs, WB_HDR_DLQ_PARTITION, m.opart, sizeof(m.opart));
        header_str(hdrs, WB_HDR_DLQ_OFFSET, m.ooff, sizeof(m.ooff));
        m.decoded = wb_event_from_message(msg, &m.ev, m.decode_err, sizeof(m.decode_err)) == WB_OK;
        if (filter_match(f, &m, now_ms)) {
            seen++;
            stop = visit(&m, opaque) != 0 || (f->limit > 0 && seen >= f->limit);
        }
        if (msg->offset + 1 >= end[idx]) open--;
        rd_kafka_message_destroy(msg);
    }
    rc = 0;

done:
    free(end);
    if (assign) rd_kafka_topic_partition_list_destroy(assign);
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return rc;
}

/* "12s", "3m", "5h", "2d" or "-". */
static void format_age(const dlq_msg_t *m, char *buf, size_t size)
{
    int64_t s = m->time_ms >= 0 ? (wb_time_real_ms() - m->time_ms) / 1000 : -1;

    if (s < 0)
        snprintf(buf, size, "-");
    else if (s < 120)
        snprintf(buf, size, "%" PRId64 "s", s);
    else if (s < 7200)
        snprintf(buf, size, "%" PRId64 "m", s / 60);
    else if (s < 172800)
        snprintf(buf, size, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, size, "%" PRId64 "d", s / 86400);
}

static void print_line(const dlq_msg_t *m)
{
    char age[16], key[DLQ_KEY_SHOWN + 8], entity[WB_EVENT_ENTITY_MAX + 1], id[48], version[24];
    const rd_kafka_message_t *msg = m->msg;

    format_age(m, age, sizeof(age));
    wb_escape(key, sizeof(key), msg->key, msg->key_len, WB_ESC_HIGH);
    snprintf(id, sizeof(id), "%" PRId32 ":%" PRId64, msg->partition, msg->offset);
    if (m->decoded) {
        wb_event_entity_cstr(&m->ev, entity, sizeof(entity));
        snprintf(version, sizeof(version), "%" PRId64, m->ev.version);
    } else {
        snprintf(entity, sizeof(entity), "-");
        snprintf(version, sizeof(version), "-");
    }
    printf("%-10s %-6s %-12s %-24s %-17s %-4s %s[%s]@%s  %s\n", id, age, entity, key, version,
           !m->decoded       ? "-"
           : m->ev.is_delete ? "del"
                             : "put",
           m->otopic[0] ? m->otopic : "-", m->opart[0] ? m->opart : "-", m->ooff[0] ? m->ooff : "-",
           m->reason);
}

static int list_visit(const dlq_msg_t *m, void *opaque)
{
    int64_t *n = opaque;

    if ((*n)++ == 0)
        printf("%-10s %-6s %-12s %-24s %-17s %-4s %s  %s\n", "ID", "AGE", "ENTITY", "KEY",
               "VERSION", "OP", "ORIGIN", "REASON");
    print_line(m);
    return 0;
}

/* Prints len bytes escaped (binary-safe), whole. */
static void print_escaped(const void *p, size_t len)
{
    size_t size = len * 4 + 8;
    char *buf = malloc(size);

    if (!buf) return;
    wb_escape(buf, size, p, len, WB_ESC_HIGH);
    fputs(buf, stdout);
    free(buf);
}

static int show_visit(const dlq_msg_t *m, void *opaque)
{
    const rd_kafka_message_t *msg = m->msg;
    rd_kafka_headers_t *hdrs = NULL;
    char age[16];

    *(int *)opaque = 1;
    format_age(m, age, sizeof(age));
    printf("id:           %" PRId32 ":%" PRId64 "\n", msg->partition, msg->offset);
    printf("dead-lettered: %" PRId64 " ms since the epoch (%s ago)\n", m->time_ms, age);
    printf("reason:       %s\n", m->reason);
    printf("origin:       %s[%s]@%s\n", m->otopic, m->opart, m->ooff);
    if (m->decoded) {
        char entity[WB_EVENT_ENTITY_MAX + 1];
        printf("entity:       %s\n", wb_event_entity_cstr(&m->ev, entity, sizeof(entity)));
        printf("version:      %" PRId64 "\n", m->ev.version);
        printf("written:      %" PRId64 " us since the epoch\n", m->ev.time_us);
        printf("op:           %s\n", m->ev.is_delete ? "del" : "put");
    } else {
        printf("event:        not a change event (%s)\n", m->decode_err);
    }
    printf("key:          ");
    print_escaped(msg->key, msg->key_len);
    printf("\nvalue:        ");
    if (msg->payload) {
        printf("(%zu bytes) ", msg->len);
        print_escaped(msg->payload, msg->len);
    } else {
        printf("(null: delete)");
    }
    printf("\nheaders:\n");
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &len) == 0; i++) {
            printf("  %s: ", name);
            if (val)
                print_escaped(val, len);
            else
                printf("(null)");
            printf("\n");
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- redrive */

/* A selected dead letter, copied for producing. */
typedef struct redrive_item_s {
    char *key;
    size_t keylen;
    char *value; /* NULL: delete (Kafka null value) */
    size_t len;
    rd_kafka_headers_t *hdrs; /* the original headers, without wb-dlq-* */
} redrive_item_t;

typedef struct redrive_s {
    const wb_config_t *conf;
    redrive_item_t *items;
    size_t n, cap;
    int64_t undecodable, unknown_entity;
    int oom;
    int64_t delivered, failed;
} redrive_t;

static char *memdup(const void *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d && len) memcpy(d, p, len);
    return d;
}

static int redrive_visit(const dlq_msg_t *m, void *opaque)
{
    redrive_t *r = opaque;
    const rd_kafka_message_t *msg = m->msg;
    rd_kafka_headers_t *hdrs = NULL;
    redrive_item_t *it;
    char entity[WB_EVENT_ENTITY_MAX + 1];

    if (!m->decoded) { /* would only be dead-lettered again */
        r->undecodable++;
        printf("skip    ");
        print_line(m);
        return 0;
    }
    if (!wb_config_entity(r->conf, wb_event_entity_cstr(&m->ev, entity, sizeof(entity))))
        r->unknown_entity++;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        redrive_item_t *p = realloc(r->items, cap * sizeof(*p));
        if (!p) goto oom;
        r->items = p;
        r->cap = cap;
    }
    it = &r->items[r->n];
    memset(it, 0, sizeof(*it));
    it->keylen = msg->key_len;
    it->key = memdup(msg->key, msg->key_len);
    it->len = msg->len;
    it->value = msg->payload ? memdup(msg->payload, msg->len) : NULL;
    it->hdrs = rd_kafka_headers_new(8);
    if (!it->key || (msg->payload && !it->value)) goto oom_item;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &len) == 0; i++)
            if (strncmp(name, "wb-dlq-", 7) != 0)
                rd_kafka_header_add(it->hdrs, name, -1, val, val ? (ssize_t)len : 0);
    }
    r->n++;
    printf("redrive ");
    print_line(m);
    return 0;

oom_item:
    free(it->key);
    free(it->value);
    rd_kafka_headers_destroy(it->hdrs);
oom:
    r->oom = 1;
    return 1;
}

static void redrive_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    redrive_t *r = opaque;
    (void)rk;
    if (msg->err) {
        r->failed++;
        fprintf(stderr, "wbctl: dlq: redrive delivery failed: %s\n", rd_kafka_err2str(msg->err));
    } else {
        r->delivered++;
    }
}

/* "\r[#####     ] n/total" on stderr. */
static void progress(size_t done, size_t total)
{
    int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;

    fprintf(stderr, "\rredriving [%.*s%*s] %zu/%zu", fill, "##############################",
            width - fill, "", done, total);
    if (done == total) fputc('\n', stderr);
}

/* Produces every selected item to the changes topic and waits for the
 * acknowledgements. Returns 0 when all were acknowledged. */
static int redrive_execute(redrive_t *r)
{
    char errstr[512];
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_t *rk = NULL;
    int tty = isatty(2);
    size_t i;

    if (wb_kafka_conf_new(r->conf, "wbctl-dlq", 0, &kconf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "wbctl: dlq: %s\n", errstr);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(kconf, redrive_dr_cb);
    rd_kafka_conf_set_opaque(kconf, r);
    if (wb_kafka_producer_new(kconf, 1, &rk, errstr, sizeof(errstr)) != WB_OK) {
        rd_kafka_conf_destroy(kconf);
        fprintf(stderr, "wbctl: dlq: %s\n", errstr);
        return 1;
    }
    for (i = 0; i < r->n; i++) {
        redrive_item_t *it = &r->items[i];
        rd_kafka_resp_err_t err;

        for (;;) {
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r->conf->kafka.topic_changes),
                                    RD_KAFKA_V_KEY(it->key, it->keylen),
                                    RD_KAFKA_V_VALUE(it->value, it->len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADERS(it->hdrs), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(rk, 100);
        }
        if (err) {
            fprintf(stderr, "wbctl: dlq: redrive: %s\n", rd_kafka_err2str(err));
            break;
        }
        it->hdrs = NULL; /* the producer owns them now */
        rd_kafka_poll(rk, 0);
        if (tty && (i % 64 == 0 || i + 1 == r->n)) progress((size_t)r->delivered, r->n);
    }
    while (rd_kafka_outq_len(rk) > 0 && r->delivered + r->failed < (int64_t)i) {
        rd_kafka_flush(rk, 500);
        if (tty) progress((size_t)r->delivered, r->n);
    }
    rd_kafka_flush(rk, DLQ_TIMEOUT_MS);
    rd_kafka_destroy(rk);
    return r->delivered == (int64_t)r->n ? 0 : 1;
}

static int cmd_redrive(const wb_config_t *conf, const dlq_filter_t *f, int execute)
{
    redrive_t r = {0};
    int rc;

    r.conf = conf;
    rc = dlq_scan(conf, f, redrive_visit, &r);
    if (r.oom) {
        fprintf(stderr, "wbctl: dlq: out of memory\n");
        rc = 1;
    }
    if (rc == 0 && execute && r.n > 0) rc = redrive_execute(&r);
    if (r.unknown_entity)
        fprintf(stderr,
                "wbctl: dlq: %" PRId64 " of them name an entity this config does not have: "
                "they are dead-lettered again unless the flusher's config has it\n",
                r.unknown_entity);
    if (execute)
        printf("redriven: %" PRId64 " of %zu to %s (%" PRId64 " failed), %" PRId64
               " skipped (not a change event)\n",
               r.delivered, r.n, conf->kafka.topic_changes, r.failed, r.undecodable);
    else
        printf("dry run: %zu would be redriven to %s, %" PRId64
               " skipped (not a change event); add --execute to redrive\n",
               r.n, conf->kafka.topic_changes, r.undecodable);
    for (size_t i = 0; i < r.n; i++) {
        free(r.items[i].key);
        free(r.items[i].value);
        if (r.items[i].hdrs) rd_kafka_headers_destroy(r.items[i].hdrs);
    }
    free(r.items);
    return rc;
}

int wbctl_cmd_dlq(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"reason", required_argument, NULL, 'r'},
        {"entity", required_argument, NULL, 'e'},
        {"key-prefix", required_argument, NULL, 'k'},
        {"newer-than", required_argument, NULL, 'N'},
        {"older-than", required_argument, NULL, 'O'},
        {"id", required_argument, NULL, 'i'},
        {"limit", required_argument, NULL, 'l'},
        {"execute", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    dlq_filter_t f;
    const char *sub;
    wb_config_t *conf;
    int c, execute = 0, rc;

    memset(&f, 0, sizeof(f));
    if (argc < 2) return usage();
    sub = argv[1];
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            f.reason = optarg;
            break;
        case 'e':
            f.entity = optarg;
            break;
        case 'k':
            f.key_prefix = optarg;
            break;
        case 'N':
            if (parse_duration(optarg, &f.newer_ms) != 0 || f.newer_ms == 0) return usage();
            break;
        case 'O':
            if (parse_duration(optarg, &f.older_ms) != 0 || f.older_ms == 0) return usage();
            break;
        case 'i':
            if (f.nids == DLQ_MAX_IDS || parse_id(optarg, &f.id_part[f.nids], &f.id_off[f.nids]))
                return usage();
            f.nids++;
            break;
        case 'l':
            if (wb_parse_i64(optarg, strlen(optarg), &f.limit) != 0 || f.limit == 0) return usage();
            break;
        case 'x':
            execute = 1;
            break;
        default:
            return usage();
        }
    }
    if (strcmp(sub, "show") == 0) {
        if (optind + 1 != argc || f.nids || parse_id(argv[optind], &f.id_part[0], &f.id_off[0]))
            return usage();
        f.nids = 1;
    } else if ((strcmp(sub, "list") != 0 && strcmp(sub, "redrive") != 0) || optind != argc) {
        return usage();
    }
    if (execute && strcmp(sub, "redrive") != 0) return usage();
    conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf) return 2;
    if (strcmp(sub, "list") == 0) {
        int64_t n = 0;
        rc = dlq_scan(conf, &f, list_visit, &n);
        if (rc == 0) fprintf(stderr, "%" PRId64 " dead letters\n", n);
    } else if (strcmp(sub, "show") == 0) {
        int found = 0;
        rc = dlq_scan(conf, &f, show_visit, &found);
        if (rc == 0 && !found) {
            fprintf(stderr, "wbctl: dlq: no dead letter %s\n", argv[optind]);
            rc = WBCTL_EXIT_NOT_FOUND;
        }
    } else {
        rc = cmd_redrive(conf, &f, execute);
    }
    wb_config_destroy(conf);
    return rc;
}
