/* test_services.c — what the integration tests do with the real Redis, Kafka and PostgreSQL. */
#include "test_services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void wb_test_redis_del_matching(redisContext *redis, const char *pattern)
{
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(redis, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t k = 0; k < r->element[1]->elements; k++) {
            redisReply *d = redisCommand(redis, "DEL %b", r->element[1]->element[k]->str,
                                         r->element[1]->element[k]->len);
            if (d) freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
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
