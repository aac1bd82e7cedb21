/* test_services.h — what the integration tests do with the real Redis, Kafka and PostgreSQL.
 *
 * The services are the ones `deploy/local/services exec` names in the WB_*
 * variables; without them the defaults of WB_BASE_PORT 26370 apply. */
#ifndef WB_TEST_SERVICES_H
#define WB_TEST_SERVICES_H

#include <stdarg.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "wb_rcluster.h"

/* The DSN of the local deploy's PostgreSQL when WB_PG_DSN is not set. */
#define WB_TEST_PG_DSN "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache password=wbcache"

/* The environment variable name when it is set and not empty, else def. */
const char *wb_test_env(const char *name, const char *def);

/* Runs sql on pg; the result (caller PQclear), or NULL after printing the
 * error to stderr. */
PGresult *wb_test_pg_query(PGconn *pg, const char *sql);

/* Deletes every key matching the SCAN pattern on every master (the keys of
 * one test run: dirty entries have no TTL and would stay forever). Cache
 * keys start with their shard tag: match them with "*<run prefix>*". */
void wb_test_redis_del_matching(wb_rc_t *rc, const char *pattern);

/* A redisCommand-style command through rc (wb_rcluster.h), routed by its
 * first key (argv[1]; keyless commands such as TIME, PING, SCRIPT, INFO,
 * CONFIG to any master), so a test runs the same on a standalone Redis and
 * on a Redis Cluster. The reply (caller frees), or NULL after printing the
 * error to stderr. */
redisReply *wb_test_redis(wb_rc_t *rc, const char *fmt, ...);
redisReply *wb_test_redisv(wb_rc_t *rc, const char *fmt, va_list ap);

/* Runs command (no arguments, e.g. "SCRIPT FLUSH") on every master. */
void wb_test_redis_each(wb_rc_t *rc, const char *command);

/* The cache key "{N}" + body, N its shard among nshards (the layout of
 * wb_entry.h, as wb_key_build makes it), into buf; returns buf. */
const char *wb_test_key(char *buf, size_t size, int nshards, const char *body);

/* The last header name of message m into out (NUL-terminated; "" when
 * absent). */
void wb_test_kafka_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size);

/* Assigns rk every partition of topic, from the beginning. Returns 0, or -1
 * when the topic's metadata cannot be read within 10 s. */
int wb_test_kafka_assign_all(rd_kafka_t *rk, const char *topic);

/* Runs `deploy/local/services CMD SERVICE` (its output to stderr); returns
 * its exit status as system() does. */
int wb_test_services(const char *cmd, const char *service);

#endif /* WB_TEST_SERVICES_H */
