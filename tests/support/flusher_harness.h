/* flusher_harness.h — the wb-flusher integration tests' harness (flusher_harness.c).
 *
 * Each test gets its own topics, consumer group, table and HTTP port, runs the
 * real wb-flusher binary as a child process and talks to the real services
 * named by the WB_* variables of `deploy/local/services exec`. The harness
 * aborts the test process on any setup error. */
#ifndef FLUSHER_HARNESS_H
#define FLUSHER_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "test_proc.h"
#include "test_services.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_pg.h"
#include "wb_redis.h"
#include "wb_util.h"

#define FH_BIN      WB_BINARY_DIR "/wb-flusher"
#define FH_SERVICES WB_SOURCE_DIR "/deploy/local/services"

typedef struct fh_s {
    char tag[96];
    char topic[128], dlq[128], group[128], table[96];
    char cfg[256], log[256];
    int http_port;
    pid_t pid;
    rd_kafka_t *producer;
    PGconn *pg;
    wb_config_t *conf;
    wb_rc_t *redis; /* routed by key: wb_test_redis */
} fh_t;

/* A key's row as the test sees it. */
typedef struct fh_row_s {
    int present;
    int deleted;
    int64_t version;
    char value[256];
} fh_row_t;

/* One dead-lettered message. */
typedef struct fh_dead_s {
    char key[128];
    char value[128];
    int value_null; /* a Kafka null value (a delete) */
    char reason[256];
    char topic[128];
    int64_t partition, offset;
    /* Every header as "name=value" (value "(null)" for a null header),
     * joined by ";", in the message's order. */
    char headers[1024];
} fh_dead_t;

/* wb_test_env under this harness's prefix. */
const char *fh_env(const char *name, const char *def);

/* Prints "harness: what" and aborts. */
void fh_die(const char *what);

/* Runs sql on the test's session: the result (caller PQclear) or NULL
 * after printing the error. */
PGresult *fh_sql(fh_t *fh, const char *sql);

/* (Re)connects the test's own PostgreSQL session (after an outage drill). */
void fh_pg_connect(fh_t *fh);

/* fh->table quoted for SQL (it may be "schema.table"), in buf. */
const char *fh_qtable(const fh_t *fh, char *buf, size_t size);

/* As fh_setup, with the entity's table (NULL: the tag; may be
 * "schema.table", the schema must exist) and the changes topic's partition
 * count. */
void fh_setup_ex(fh_t *fh, const char *name, const char *value_type, const char *flusher_extra,
                 const char *table, int partitions);

/* Writes the config (extra YAML lines go under flusher:), creates the
 * topics (3 partitions), connects. value_type: text | jsonb | bytea. */
void fh_setup(fh_t *fh, const char *name, const char *value_type, const char *flusher_extra);

/* Starts wb-flusher with args after "-c cfg" (NULL-terminated; none = run).
 * Returns its pid (-1 when fork failed). */
pid_t fh_spawn(fh_t *fh, const char *const *args);

/* Starts wb-flusher into fh->pid. */
void fh_start(fh_t *fh);

/* Waits for pid up to timeout_ms; returns the exit status (or -1 on timeout,
 * -2 killed by a signal); *elapsed_ms (may be NULL) = time waited. */
int fh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms);

/* Runs wb-flusher to completion (replay); returns its exit status. */
int fh_run(fh_t *fh, const char *const *args, int timeout_ms);

/* SIGTERM; returns the exit status (SIGKILL and -1 after timeout_ms). */
int fh_stop(fh_t *fh, int timeout_ms, int64_t *elapsed_ms);

/* HTTP status of GET path on the flusher's port, or -1. */
int fh_http_status(fh_t *fh, const char *path);

/* Waits until GET path answers want (or timeout); returns the last status. */
int fh_wait_http(fh_t *fh, const char *path, int want, int timeout_ms);

/* Produces one change event (value NULL = delete) straight to the topic. */
void fh_produce_raw(fh_t *fh, const char *key, const char *value, size_t vlen, int64_t version,
                    const char *entity);

/* fh_produce_raw of a text value (NULL = delete) of entity "item". */
void fh_produce(fh_t *fh, const char *key, const char *value, int64_t version);

/* Waits until every produced event is acknowledged; aborts after 30 s. */
void fh_flush(fh_t *fh);

/* Ground truth: the highest version per key. */
void fh_truth_apply(fh_row_t *t, const char *value, int64_t version);

/* Number of keys k in [0, nkeys) whose row ("item" ids are "<k>") differs
 * from truth[k]; prints the first few differences. */
int fh_diff(fh_t *fh, const fh_row_t *truth, int nkeys, int verbose);

/* Waits until PostgreSQL equals truth; returns the remaining differences. */
int fh_wait_truth(fh_t *fh, const fh_row_t *truth, int nkeys, int timeout_ms);

/* Rows of the table matching where ("" or NULL: all); -1 on error. */
long fh_count(fh_t *fh, const char *where);

/* Reads the whole dead-letter topic (1 partition) into out[max]; returns n. */
int fh_read_dlq(fh_t *fh, fh_dead_t *out, int max);

/* Stops the flusher, drops the table and the topics. */
void fh_teardown(fh_t *fh);

/* Prints the flusher's log (on failure). */
void fh_dump_log(fh_t *fh);

#endif /* FLUSHER_HARNESS_H */
