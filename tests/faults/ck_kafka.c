/* ck_kafka.c — the Kafka side of the checker: dead-letter marks and contents, the poison storm. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_util.h"

#define TIMEOUT_MS   10000
#define READ_MS      30000 /* give up reading the dead letters after this */
#define MAX_PARTS    1024
#define SHOW_MAX     10
#define POISON_KINDS 5

/* ------------------------------------------------------------ helpers */

static rd_kafka_t *consumer_new(const wb_config_t *conf)
{
    char errstr[512];
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;

    /* A group id is required by the consumer type; this one never
     * subscribes or commits, so it joins nothing. */
    if (wb_kafka_conf_new(conf, "faults-check", 0, &kc, errstr, sizeof(errstr)) != WB_OK ||
        wb_kafka_consumer_new(kc, "wb-faults-check", &rk, errstr, sizeof(errstr)) != WB_OK) {
        if (kc && !rk) rd_kafka_conf_destroy(kc);
        fprintf(stderr, "check: %s\n", errstr);
        return NULL;
    }
    return rk;
}

/* Low and high watermarks of every partition of topic; returns the count
 * of partitions, or -1. */
static int watermarks(rd_kafka_t *rk, const char *topic, int64_t *lo, int64_t *hi)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    int n = -1;

    if (!rkt) return -1;
    err = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "check: kafka: metadata of %s: %s\n", topic,
                rd_kafka_err2str(err                  ? err
                                 : md->topic_cnt == 1 ? md->topics[0].err
                                                      : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        goto done;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;

        if (p < 0 || p >= MAX_PARTS) continue;
        err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo[p], &hi[p], TIMEOUT_MS);
        if (err) {
            fprintf(stderr, "check: kafka: watermarks of %s[%d]: %s\n", topic, p,
                    rd_kafka_err2str(err));
            goto done;
        }
        if (p + 1 > n) n = p + 1;
    }
    if (n < 0) n = 0;

done:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* ------------------------------------------------------------ dlq-mark */

int ck_cmd_dlq_mark(const wb_config_t *conf, int argc, char **argv)
{
    static int64_t lo[MAX_PARTS], hi[MAX_PARTS];
    const char *out = argc == 3 && strcmp(argv[1], "--out") == 0 ? argv[2] : NULL;
    rd_kafka_t *rk;
    FILE *f;
    int n, rc = 1;

    if (!out) {
        fprintf(stderr, "check: dlq-mark: needs --out FILE\n");
        return 2;
    }
    if (!(rk = consumer_new(conf))) return 1;
    n = watermarks(rk, conf->kafka.topic_dead_letter, lo, hi);
    if (n >= 0 && (f = fopen(out, "w"))) {
        for (int p = 0; p < n; p++)
            fprintf(f, "%d\t%" PRId64 "\n", p, hi[p]);
        rc = fclose(f) == 0 ? 0 : 1;
    } else if (n >= 0) {
        perror(out);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------ dead letters */

typedef struct name_s {
    char *key;
    int seen;
    UT_hash_handle hh;
} name_t;

static void names_free(name_t **table)
{
    name_t *x, *tmp;

    HASH_ITER(hh, *table, x, tmp)
    {
        HASH_DEL(*table, x);
        free(x->key);
        free(x);
    }
}

static int expect_load(const char *path, name_t **table)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = -1;

    if (!f) {
        perror(path);
        return -1;
    }
    while ((len = getline(&line, &cap, f)) != -1) {
        char *tab = strchr(line, '\t');
        name_t *x;

        if (tab)
            *tab = '\0';
        else if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (!line[0]) continue;
        if (!(x = calloc(1, sizeof(*x))) || !(x->key = strdup(line))) {
            free(x);
            goto done;
        }
        HASH_ADD_KEYPTR(hh, *table, x->key, strlen(x->key), x);
    }
    rc = 0;

done:
    free(line);
    fclose(f);
    return rc;
}

/* Reads [from[p], to[p]) of every partition and matches the messages
 * against *expect. */
static int read_dead_letters(const wb_config_t *conf, rd_kafka_t *rk, int n, const int64_t *from,
                             const int64_t *to, name_t **expect, uint64_t *bad)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    int64_t left = 0, deadline = wb_time_mono_ms() + READ_MS;
    int64_t done_to[MAX_PARTS];
    int rc = -1;

    for (int p = 0; p < n; p++) {
        done_to[p] = from[p];
        if (to[p] <= from[p]) continue;
        rd_kafka_topic_partition_list_add(parts, conf->kafka.topic_dead_letter, p)->offset =
            from[p];
        left += to[p] - from[p];
    }
    if (left == 0) {
        rc = 0;
        goto done;
    }
    if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "check: kafka: cannot assign the dead-letter partitions\n");
        goto done;
    }
    while (left > 0 && wb_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        rd_kafka_headers_t *hdrs = NULL;
        const void *reason = NULL;
        size_t reason_len = 0;
        char key[WB_EVENT_KEY_MAX + 1];
        name_t *x;

        if (!m) continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "check: kafka: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->partition < 0 || m->partition >= n || m->offset < done_to[m->partition] ||
            m->offset >= to[m->partition]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        done_to[m->partition] = m->offset + 1;
        left--;
        snprintf(key, sizeof(key), "%.*s", m->key ? (int)m->key_len : 0,
                 m->key ? (const char *)m->key : "");
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_header_get_last(hdrs, WB_HDR_DLQ_REASON, &reason, &reason_len);
        HASH_FIND_STR(*expect, key, x);
        if (!x) {
            if (++*bad <= SHOW_MAX)
                fprintf(stderr,
                        "check: dead letter not expected: key \"%s\" (%s[%d]@%" PRId64
                        "), reason: %.*s\n",
                        key, conf->kafka.topic_dead_letter, m->partition, m->offset,
                        reason ? (int)reason_len : 4, reason ? (const char *)reason : "none");
        } else if (x->seen++) {
            if (++*bad <= SHOW_MAX) fprintf(stderr, "check: dead letter twice: key \"%s\"\n", key);
        }
        if (!reason || reason_len == 0) {
            if (++*bad <= SHOW_MAX)
                fprintf(stderr, "check: dead letter without a %s header: key \"%s\"\n",
                        WB_HDR_DLQ_REASON, key);
        }
        rd_kafka_message_destroy(m);
    }
    if (left > 0) {
        fprintf(stderr, "check: kafka: %" PRId64 " dead letters not read within %d ms\n", left,
                READ_MS);
        goto done;
    }
    rc = 0;

done:
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

int ck_dlq_check(const wb_config_t *conf, const char *mark_path, const char *expect_path,
                 int64_t *count, uint64_t *bad)
{
    static int64_t lo[MAX_PARTS], hi[MAX_PARTS], from[MAX_PARTS];
    rd_kafka_t *rk = consumer_new(conf);
    name_t *expect = NULL, *x, *tmp;
    int n, rc = -1;

    *count = 0;
    if (!rk) return -1;
    n = watermarks(rk, conf->kafka.topic_dead_letter, lo, hi);
    if (n < 0) goto done;
    for (int p = 0; p < n; p++)
        from[p] = lo[p];
    if (mark_path) {
        FILE *f = fopen(mark_path, "r");
        int p;
        int64_t off;

        if (!f) {
            perror(mark_path);
            goto done;
        }
        while (fscanf(f, "%d %" SCNd64, &p, &off) == 2)
            if (p >= 0 && p < n && off > from[p]) from[p] = off;
        fclose(f);
    }
    for (int p = 0; p < n; p++)
        *count += hi[p] > from[p] ? hi[p] - from[p] : 0;
    if (expect_path) {
        if (expect_load(expect_path, &expect) != 0) goto done;
        if (read_dead_letters(conf, rk, n, from, hi, &expect, bad) != 0) goto done;
        HASH_ITER(hh, expect, x, tmp)
        {
            if (x->seen) continue;
            if (++*bad <= SHOW_MAX)
                fprintf(stderr, "check: poison event never dead-lettered: key \"%s\"\n", x->key);
        }
    }
    rc = 0;

done:
    names_free(&expect);
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------ poison */

static const char *const poison_kinds[POISON_KINDS] = {
    "no-version",     /* wb-version header missing: undecodable */
    "bad-version",    /* wb-version not a number: undecodable */
    "unknown-entity", /* wb-entity names no configured entity */
    "wrong-prefix",   /* key lacks the entity's prefix */
    "rejected",       /* PostgreSQL refuses the value (jsonb: not JSON; text: not UTF-8) */
};

typedef struct dr_state_s {
    int64_t delivered, failed;
    unsigned char *ok; /* per event: delivered */
} dr_state_t;

/* Delivery reports, served by rd_kafka_poll/flush on the main thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_state_t *st = opaque;
    size_t idx = (size_t)(uintptr_t)m->_private;

    (void)rk;
    if (m->err) {
        st->failed++;
        fprintf(stderr, "check: poison: delivery failed: %s\n", rd_kafka_err2str(m->err));
        return;
    }
    st->delivered++;
    st->ok[idx] = 1;
}

/* The key of poison event i of the given kind: unique, and for the
 * wrong-prefix kind outside every entity's prefix. */
static void poison_key(const wb_entity_t *ent, const char *tag, int64_t i, int kind, char *key,
                       size_t keysize)
{
    snprintf(key, keysize, "%s%s-poison-%" PRId64, kind == 3 ? "zz-no-prefix:" : ent->prefix, tag,
             i);
}

/* Builds poison event i (kind i % POISON_KINDS) into key/value/headers. */
static int poison_event(const wb_entity_t *ent, const char *tag, int64_t i, char *key,
                        size_t keysize, const char **value, size_t *valuelen,
                        rd_kafka_headers_t *hdrs)
{
    static const char json[] = "{\"p\": \"poison\"}";
    static const char not_json[] = "{\"p\": poison";
    static const char not_utf8[] = "poison \xff\xfe";
    int kind = (int)(i % POISON_KINDS);
    char ver[32], now[32];

    /* The rejected kind needs a column that can refuse bytes. */
    if (kind == 4 && ent->value_type == WB_VT_BYTEA) kind = 0;
    snprintf(ver, sizeof(ver), "%" PRId64, wb_time_real_us());
    snprintf(now, sizeof(now), "%" PRId64, wb_time_real_us());
    poison_key(ent, tag, i, kind, key, keysize);
    *value = kind == 4 ? (ent->value_type == WB_VT_JSONB ? not_json : not_utf8) : json;
    *valuelen = strlen(*value);
    if (kind != 0)
        rd_kafka_header_add(hdrs, WB_HDR_VERSION, -1, kind == 1 ? "12x" : ver,
                            kind == 1 ? 3 : (ssize_t)strlen(ver));
    rd_kafka_header_add(hdrs, WB_HDR_ENTITY, -1, kind == 2 ? "no_such_entity" : ent->name, -1);
    rd_kafka_header_add(hdrs, WB_HDR_TIME_US, -1, now, -1);
    rd_kafka_header_add(hdrs, WB_HDR_OP, -1, "put", 3);
    return kind;
}

int ck_cmd_poison(const wb_config_t *conf, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"count", required_argument, NULL, 'n'},  {"tag", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},    {"over-ms", required_argument, NULL, 'w'},
        {"entity", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0}};
    const char *tag = NULL, *out = NULL, *entity = NULL;
    int64_t count = -1, over_ms = 0, t0;
    char errstr[512], key[512];
    const wb_entity_t *ent;
    rd_kafka_conf_t *kc = NULL;
    rd_kafka_t *rk = NULL;
    dr_state_t st = {0};
    int *kinds = NULL;
    FILE *f = NULL;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (c == 'n')
            wb_parse_i64(optarg, strlen(optarg), &count);
        else if (c == 't')
            tag = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'w')
            wb_parse_i64(optarg, strlen(optarg), &over_ms);
        else if (c == 'e')
            entity = optarg;
        else
            return 2;
    }
    if (count < 1 || !tag || strlen(tag) > 200 || !out || optind != argc) {
        fprintf(stderr, "check: poison: needs --count N >= 1, --tag T (short) and --out FILE\n");
        return 2;
    }
    ent = entity ? wb_config_entity(conf, entity) : conf->nentities ? &conf->entities[0] : NULL;
    if (!ent) {
        fprintf(stderr, "check: poison: unknown entity\n");
        return 2;
    }
    st.ok = calloc((size_t)count, 1);
    kinds = calloc((size_t)count, sizeof(*kinds));
    if (!st.ok || !kinds) goto done;
    if (wb_kafka_conf_new(conf, "faults-poison", 0, &kc, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_opaque(kc, &st);
    if (wb_kafka_producer_new(kc, 1, &rk, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "check: %s\n", errstr);
        goto done;
    }
    kc = NULL;
    t0 = wb_time_mono_ms();
    for (int64_t i = 0; i < count; i++) {
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
        const char *value;
        size_t valuelen;
        rd_kafka_resp_err_t err;

        /* Spread evenly over --over-ms, among the good events of the load. */
        while (over_ms > 0 && wb_time_mono_ms() - t0 < over_ms * i / count)
            rd_kafka_poll(rk, 5);
        kinds[i] = poison_event(ent, tag, i, key, sizeof(key), &value, &valuelen, hdrs);
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(conf->kafka.topic_changes), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)value, valuelen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
        if (err) {
            rd_kafka_headers_destroy(hdrs);
            fprintf(stderr, "check: poison: produce: %s\n", rd_kafka_err2str(err));
            goto done;
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "check: poison: not all events delivered within 30 s\n");
    if (!(f = fopen(out, "w"))) {
        perror(out);
        goto done;
    }
    for (int64_t i = 0; i < count; i++) {
        if (!st.ok[i]) continue;
        poison_key(ent, tag, i, kinds[i], key, sizeof(key));
        fprintf(f, "%s\t%s\n", key, poison_kinds[kinds[i]]);
    }
    if (fclose(f) != 0) {
        f = NULL;
        perror(out);
        goto done;
    }
    f = NULL;
    printf("poison         %" PRId64 " delivered, %" PRId64 " failed\n", st.delivered, st.failed);
    rc = st.failed == 0 && st.delivered == count ? 0 : 1;

done:
    if (f) fclose(f);
    if (kc) rd_kafka_conf_destroy(kc);
    if (rk) rd_kafka_destroy(rk);
    free(kinds);
    free(st.ok);
    return rc;
}
