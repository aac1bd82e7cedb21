/* test_services.c — what the integration tests do with the real Redis, Kafka and PostgreSQL. */
#include "test_services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wb_entry.h"

const char *wb_test_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

PGresult *wb_test_pg_query(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "harness: %s: %s\n", sql, PQerrorMessage(pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

void wb_test_redis_del_matching(wb_rc_t *rc, const char *pattern)
{
    redisContext *node;

    for (size_t i = 0; (node = wb_rc_master(rc, i, NULL, 0)) != NULL; i++) {
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(node, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                if (r) freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t k = 0; k < r->element[1]->elements; k++) {
                redisReply *d = redisCommand(node, "DEL %b", r->element[1]->element[k]->str,
                                             r->element[1]->element[k]->len);
                if (d) freeReplyObject(d);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
}

/* Commands without a key: sent to any master. */
static int keyless(const char *name, size_t len)
{
    static const char *const names[] = {"TIME",   "PING",    "SCRIPT", "INFO",  "CONFIG",
                                        "DBSIZE", "CLUSTER", "DEBUG",  "CLIENT"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0) return 1;
    return 0;
}

redisReply *wb_test_redisv(wb_rc_t *rc, const char *fmt, va_list ap)
{
    char *resp = NULL, *p, errstr[256];
    const char *argv[64];
    size_t argvlen[64];
    redisReply *r = NULL;
    int argc, len, slot;

    if ((len = redisvFormatCommand(&resp, fmt, ap)) < 0) return NULL;
    /* "*N\r\n" then N times "$len\r\n<bytes>\r\n" */
    argc = (int)strtol(resp + 1, &p, 10);
    if (argc < 1 || argc > 64) {
        free(resp);
        return NULL;
    }
    p += 2;
    for (int i = 0; i < argc; i++) {
        argvlen[i] = (size_t)strtol(p + 1, &p, 10);
        argv[i] = p + 2;
        p += 2 + argvlen[i] + 2;
    }
    slot = argc >= 2 && !keyless(argv[0], argvlen[0]) ? wb_rc_slot(argv[1], argvlen[1]) : -1;
    if (wb_rc_command(rc, slot, argc, argv, argvlen, &r, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "harness: redis %.*s: %s\n", (int)argvlen[0], argv[0], errstr);
        r = NULL;
    }
    free(resp);
    return r;
}

redisReply *wb_test_redis(wb_rc_t *rc, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = wb_test_redisv(rc, fmt, ap);
    va_end(ap);
    return r;
}

void wb_test_redis_each(wb_rc_t *rc, const char *command)
{
    redisContext *node;

    for (size_t i = 0; (node = wb_rc_master(rc, i, NULL, 0)) != NULL; i++) {
        redisReply *r = redisCommand(node, command);
        if (r) freeReplyObject(r);
    }
}

const char *wb_test_key(char *buf, size_t size, int nshards, const char *body)
{
    snprintf(buf, size, "{%d}%s", wb_entry_shard_of(body, strlen(body), nshards), body);
    return buf;
}

void wb_test_kafka_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, name, &v, &len) == 0 &&
        v)
        snprintf(out, size, "%.*s", (int)len, (const char *)v);
}

int wb_test_kafka_assign_all(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) {
        rd_kafka_topic_destroy(rkt);
        return -1;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return 0;
}

int wb_test_services(const char *cmd, const char *service)
{
    char line[512];

    snprintf(line, sizeof(line), "%s/deploy/local/services %s %s >&2", WB_SOURCE_DIR, cmd, service);
    return system(line);
}
