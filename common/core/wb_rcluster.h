/* wb_rcluster.h — one Redis deployment, standalone or Redis Cluster, behind one interface:
 * slot routing (CRC16 with hash tags), the slot map from CLUSTER SLOTS, per-node connections,
 * MOVED / ASK / TRYAGAIN / CLUSTERDOWN, pipelines split per node and reassembled in order.
 *
 * A standalone server is a deployment of one node owning all 16384 slots, so every caller
 * (wb_entry, wb_scripts, the pools) runs one code path; the mode is detected when connecting
 * (CLUSTER SLOTS answers "cluster support disabled" on a standalone server). What is stored
 * is wb_entry.h's; connecting one node (timeouts, AUTH, SELECT, the eviction check) is
 * wb_redis.h's.
 */
#ifndef WB_RCLUSTER_H
#define WB_RCLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "wb_config.h"
#include "wbcache.h"

/* Hash slots of Redis Cluster. */
#define WB_RC_SLOTS 16384

/* Most redirects and retries one command gets (also bounded by redis.timeout_ms). */
#define WB_RC_MAX_TRIES 16

typedef struct wb_rc_s wb_rc_t;

/* One command of a pipeline: routed by slot (wb_rc_slot of its first key;
 * < 0: any node, e.g. TIME). argv/argvlen are borrowed for the call. */
typedef struct wb_rc_cmd_s {
    int slot;
    int argc;
    const char **argv;
    const size_t *argvlen;
} wb_rc_cmd_t;

/* One slot range of a CLUSTER SLOTS reply and its master. */
typedef struct wb_rc_range_s {
    int lo, hi;
    char host[256];
    int port;
} wb_rc_range_t;

/* What one handle met since the last wb_rc_take_counts: redirects and
 * retries of wb_rc_pipeline (every try, also those of a call that failed). */
typedef struct wb_rc_counts_s {
    uint64_t moved;   /* MOVED replies: the slot has a new master */
    uint64_t ask;     /* ASK replies: the key is in a slot being migrated */
    uint64_t retries; /* pauses for TRYAGAIN, CLUSTERDOWN, a master unreachable or unknown */
} wb_rc_counts_t;

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the cluster spec's
 * key hash: "123456789" -> 0x31C3. */
uint16_t wb_rc_crc16(const void *buf, size_t len);

/* The hash slot of key: CRC16 of its hash tag (the bytes between the first
 * '{' and the first '}' after it, if there is at least one) or of the whole
 * key, modulo 16384. */
int wb_rc_slot(const char *key, size_t keylen);

/* Parses a CLUSTER SLOTS reply (pure; for tests): the ranges with their
 * master; a master whose host is "" is default_host (the node asked). On
 * WB_OK *out (malloc'ed, free()) holds *n ranges. WB_ERR_REDIS for another
 * shape, WB_ERR_NOMEM. */
wb_err_t wb_rc_parse_slots(const redisReply *r, const char *default_host, wb_rc_range_t **out,
                           size_t *n, char *errstr, size_t errstr_size);

/* Connects to the deployment at conf->redis.host:port, or, if that one
 * cannot be connected, at the first of conf->redis.seed_nodes that can
 * (conf borrowed; it must outlive *out): that node is connected as
 * wb_redis_connect does; if
 * it runs cluster mode the slot map is read, and the other masters are
 * connected on first use (each through wb_redis_connect_node, so each is
 * checked the same way). On WB_OK *out is a new handle (wb_rc_free); used
 * by one thread at a time. */
wb_err_t wb_rc_connect(const wb_config_t *conf, wb_rc_t **out, char *errstr, size_t errstr_size);

/* Closes every connection and frees rc; NULL is fine. */
void wb_rc_free(wb_rc_t *rc);

/* 1 if the deployment is a Redis Cluster, 0 standalone. */
int wb_rc_is_cluster(const wb_rc_t *rc);

/* The connection of a node that failed (its ctx->err is set), or NULL if
 * none did: a handle with a failed node should be dropped or wb_rc_reset. */
const redisContext *wb_rc_failed(const wb_rc_t *rc);

/* Closes the failed connections (they reconnect on next use) and re-reads
 * the slot map on the next call: after a timeout, a restart or a failover. */
void wb_rc_reset(wb_rc_t *rc);

/* Runs n commands: split per node (each node's commands in call order, sent
 * to all nodes before any reply is read), replies reassembled so replies[i]
 * answers cmds[i] (owned: freeReplyObject). A MOVED reply updates the slot
 * map (re-read in full before the next try) and the command is re-sent to
 * the new master; ASK re-sends it once to the named node after ASKING;
 * TRYAGAIN and CLUSTERDOWN, a slot without a known master and (cluster
 * only) a master that cannot be connected are retried after a short pause
 * with the map read again, all within redis.timeout_ms and
 * WB_RC_MAX_TRIES. Then a master still unreachable fails the call
 * (WB_ERR_REDIS naming it); otherwise a command that still has no answer
 * gets the last error reply (TRYAGAIN, CLUSTERDOWN, or "CLUSTERDOWN wb:
 * slot N has no reachable master") as its reply. WB_OK when every command
 * has a reply (error replies included); on an I/O error WB_ERR_REDIS /
 * WB_ERR_TIMEOUT / WB_ERR_NOMEM naming the node, no replies are returned
 * (commands sent before it may have run, as on one connection), and the
 * failed connection is left for wb_rc_failed. A command is never re-sent
 * after an I/O error: it may have run. */
wb_err_t wb_rc_pipeline(wb_rc_t *rc, const wb_rc_cmd_t *cmds, size_t n, redisReply **replies,
                        char *errstr, size_t errstr_size);

/* Copies rc's counts into *out and zeroes them. */
void wb_rc_take_counts(wb_rc_t *rc, wb_rc_counts_t *out);

/* Forgets which nodes answered commands (see wb_rc_wait): call it before
 * the writes that a wb_rc_wait is to cover. */
void wb_rc_wait_begin(wb_rc_t *rc);

/* Redis WAIT on every node that answered a command (a reply that was not a
 * redirect) since wb_rc_wait_begin, on the connection that ran it, right
 * after it: one WAIT per node, however many commands it ran. WB_OK when each
 * of them reports at least numreplicas replicas that have all its writes so
 * far; WB_ERR_TIMEOUT when one reports fewer within timeout_ms (the writes
 * stay on the master: only their copy on a replica is unconfirmed);
 * WB_ERR_REDIS / WB_ERR_TIMEOUT on an I/O error or an error reply, naming the
 * node. A standalone server without replicas can never confirm (WB_ERR_TIMEOUT
 * after timeout_ms). */
wb_err_t wb_rc_wait(wb_rc_t *rc, int numreplicas, int timeout_ms, char *errstr, size_t errstr_size);

/* One command (a pipeline of one); *reply owned by the caller. */
wb_err_t wb_rc_command(wb_rc_t *rc, int slot, int argc, const char **argv, const size_t *argvlen,
                       redisReply **reply, char *errstr, size_t errstr_size);

/* Runs argv on every master, one after the other (SCRIPT LOAD); each reply is passed to check (may
 * be NULL), which returns WB_OK or an error with errstr. Stops at the first error. */
wb_err_t wb_rc_each_master(wb_rc_t *rc, int argc, const char **argv, const size_t *argvlen,
                           wb_err_t (*check)(const redisReply *r, void *arg, char *errstr,
                                             size_t errstr_size),
                           void *arg, char *errstr, size_t errstr_size);

/* The connection of the master that serves slot (connected if needed): for
 * commands that are not the entry module's (tests, tools). NULL with errstr
 * if it cannot be reached. */
redisContext *wb_rc_node(wb_rc_t *rc, int slot, char *errstr, size_t errstr_size);

/* The connection of the i-th master (connected if needed; a standalone
 * server is master 0), for commands on every node (SCAN in tests and
 * tools). NULL past the last master, or with errstr if it cannot be
 * reached. */
redisContext *wb_rc_master(wb_rc_t *rc, size_t i, char *errstr, size_t errstr_size);

#endif /* WB_RCLUSTER_H */
