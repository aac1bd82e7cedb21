/* test_services.h — what the integration tests do with the real Redis, Kafka and PostgreSQL.
 *
 * The services are the ones `deploy/local/services exec` names in the WB_*
 * variables; without them the defaults of WB_BASE_PORT 26370 apply. */
#ifndef WB_TEST_SERVICES_H
#define WB_TEST_SERVICES_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

/* The DSN of the local deploy's PostgreSQL when WB_PG_DSN is not set. */
#define WB_TEST_PG_DSN "host=127.0.0.1 port=26371 dbname=wbcache user=wbcache password=wbcache"

/* The environment variable name when it is set and not empty, else def. */
const char *wb_test_env(const char *name, const char *def);

/* Runs sql on pg; the result (caller PQclear), or NULL after printing the
 * error to stderr. */
PGresult *wb_test_pg_query(PGconn *pg, const char *sql);

/* Deletes every key matching the SCAN pattern (the keys of one test run:
 * dirty entries have no TTL and would stay forever). */
void wb_test_redis_del_matching(redisContext *redis, const char *pattern);

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
