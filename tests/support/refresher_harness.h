/* refresher_harness.h — the wb-refresher integration tests' harness (refresher_harness.c).
 *
 * Each test gets a tag (pid, sequence, time) naming its own topics, consumer
 * groups, table, dirty index and key prefix, writes one config file per
 * child (they differ only in the HTTP ports), runs the real wb-refresher
 * (and, where a test needs it, the real wb-flusher) as child processes and
 * talks to the real services named by the WB_* variables of
 * `deploy/local/services exec`. Every child is killed in rh_teardown and,
 * should the test process die on an assertion or abort, by an atexit hook.
 *
 * The test's only entity: name "item", prefix "<tag>:i:", table <tag>,
 * text values. */
#ifndef REFRESHER_HARNESS_H
#define REFRESHER_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>

#include "test_proc.h"
#include "test_services.h"
#include "wb_config.h"
#include "wb_event.h"
#include "wb_kafka.h"
#include "wb_redis.h"
#include "wb_table.h"
#include "wb_util.h"
#include "wbcache.h"

#define RH_REFRESHER    WB_BINARY_DIR "/wb-refresher"
#define RH_FLUSHER      WB_BINARY_DIR "/wb-flusher"
#define RH_MAX_CHILDREN 4
#define RH_MAX_EVENTS   4096
#define RH_FLUSHER_SLOT 3

/* One change event read back from the changes topic. */
typedef struct rh_event_s {
    char key[160];
    char value[256];
    int is_delete;
    int64_t version, time_us;
    char entity[64];
} rh_event_t;

typedef struct rh_s {
    char tag[96];
    char changes[128], refresh[128], dlq[128];
    char rgroup[128], fgroup[128];
    char table[96], dirty[128], prefix[128];
    char cfg[RH_MAX_CHILDREN][256], log[RH_MAX_CHILDREN][256];
    int port[RH_MAX_CHILDREN];
    pid_t pid[RH_MAX_CHILDREN]; /* 0..2 refreshers, 3 the flusher */
    wb_config_t *conf;          /* the harness's copy of cfg[0] */
    rd_kafka_t *producer;       /* refresh requests, admin calls */
    rd_kafka_t *reader;         /* the changes topic, from the beginning */
    rh_event_t *events;
    int nevents;
    PGconn *pg;
    wb_rc_t *redis; /* routed by key: wb_test_redis */
} rh_t;

/* Every child the test process started and has not reaped; rh_kill_all
 * (at exit, or on rh_die) kills them. A test that starts a child of its own
 * adds it here. */
extern pid_t rh_all_children[64];
extern int rh_nall_children;

/* SIGKILLs and reaps every child in rh_all_children. */
void rh_kill_all(void);

/* Drops pid from rh_all_children (it was reaped). */
void rh_forget_child(pid_t pid);

/* wb_test_env under this harness's prefix. */
const char *rh_env(const char *name, const char *def);

/* Prints "harness: what: detail", kills the children and aborts. */
void rh_die(const char *what, const char *detail);

/* A TCP port nobody listens on right now; dies when there is none. */
int rh_free_port(void);

/* Runs sql on the test's session: the result (caller PQclear) or NULL
 * after printing the error. */
PGresult *rh_sql(rh_t *rh, const char *sql);

/* Sets up names, configs (every slot alike but for the port), topics, the
 * table, connections and the changes-topic reader. refresher_extra /
 * producer_extra / entity_extra are YAML lines added under refresher:,
 * producer: and the entity (indented accordingly); dsn NULL = the real one
 * (the harness itself always uses the real one). The configs' redis.user
 * is ${WB_TEST_REDIS_USER:-}: a test that sets it (and
 * WBCACHE_REDIS_PASSWORD) after rh_setup gets children and clients that
 * AUTH as that ACL user, while the harness stays the default user. */
void rh_setup_ex(rh_t *rh, const char *name, const char *refresher_extra,
                 const char *producer_extra, const char *entity_extra, const char *dsn);

void rh_setup(rh_t *rh, const char *name, const char *refresher_extra);

/* Starts child slot i: a refresher (slots 0..2) or the flusher (slot 3). */
void rh_start(rh_t *rh, int i);

/* Waits for pid up to timeout_ms; exit status, -1 timeout, -2 signalled. */
int rh_wait_pid(pid_t pid, int timeout_ms, int64_t *elapsed_ms);

/* SIGTERM to slot i; its exit status (SIGKILL and -1 after timeout_ms). */
int rh_stop(rh_t *rh, int i, int timeout_ms, int64_t *elapsed_ms);

/* Response to GET path on slot i's port into buf (NUL-terminated); HTTP
 * status or -1. */
int rh_http(const rh_t *rh, int i, const char *path, char *buf, size_t size);

/* Waits until GET path answers want (or timeout); returns the last status. */
int rh_wait_http(const rh_t *rh, int i, const char *path, int want, int timeout_ms);

/* Value of metric line `name` (exact, labels included) on slot i; -1 if
 * the process does not answer or has no such line. */
double rh_metric(const rh_t *rh, int i, const char *name);

/* Waits until metric >= want; returns its last value. */
double rh_wait_metric(const rh_t *rh, int i, const char *name, double want, int timeout_ms);

/* The cache key of id ("{N}" + prefix + id, wb_entry.h), in buf. */
const char *rh_key(const rh_t *rh, const char *id, char *buf, size_t size);

/* The dirty-index shard of key (from its tag), in buf. */
const char *rh_dirty_shard(const rh_t *rh, const char *key, char *buf, size_t size);

/* Upserts a row (value NULL = soft-deleted) exactly as given. */
void rh_row(rh_t *rh, const char *id, const char *value, int64_t version);

/* Reads a row: 1 found (value copied, "" when deleted), 0 absent. */
int rh_get_row(rh_t *rh, const char *id, char *value, size_t size, int64_t *version, int *deleted);

/* Publishes a refresh request for id, as the library's refresh-ahead
 * trigger does (key, wb-kind: refresh, wb-entity); rh_flush waits for it. */
void rh_request_refresh(rh_t *rh, const char *id);

/* Waits until every refresh request is acknowledged; dies after 30 s. */
void rh_flush(rh_t *rh);

/* Reads whatever arrived on the changes topic for up to ms into rh->events. */
void rh_read_changes(rh_t *rh, int ms);

/* Events read so far for key; *last (may be NULL) = the last of them. */
int rh_count_events(const rh_t *rh, const char *key, const rh_event_t **last);

/* Prints a child's log (on failure). */
void rh_dump_log(const rh_t *rh, int i);

/* Stops every child (SIGKILL if one hangs), drops the table, the topics
 * and the Redis keys of the test. */
void rh_teardown(rh_t *rh);

#endif /* REFRESHER_HARNESS_H */
