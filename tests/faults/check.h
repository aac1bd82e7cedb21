/* check.h — the fault-drill checker's subcommands and the key table they share. */
#ifndef WB_FAULTS_CHECK_H
#define WB_FAULTS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <uthash.h>

#include "wb_config.h"

/* One key of the ground truth, with what PostgreSQL and Redis hold for it. */
typedef struct ck_key_s {
    char *id;     /* PostgreSQL key = entity id (the cache key is prefix + id) */
    int64_t tver; /* highest acknowledged version over all truth files */
    int tdel;     /* that write was a delete */
    char *thex;   /* lowercase hex of the put's value ("" = empty); NULL for a delete */
    int pfound;   /* PostgreSQL has a row */
    int pdel;     /* ... soft-deleted */
    int64_t pver; /* ... at this version */
    char *phex;   /* ... with this value (hex; NULL when the value is NULL) */
    int cfound;   /* Redis has an entry with a value (field v) */
    int cdirty;   /* ... marked dirty (d = 1) */
    int64_t cver; /* ... at this version */
    int cdel;     /* ... as a tombstone */
    char *chex;   /* ... with this value (hex) */
    UT_hash_handle hh;
} ck_key_t;

/* Frees every key of *table and sets it to NULL. */
void ck_keys_free(ck_key_t **table);

/* Reads a `wbctl load --truth` file (ID TAB VERSION TAB put|del TAB HEX)
 * into *table, keeping the highest version per key. With ordered, the
 * files are taken as successive runs (each started after the previous one
 * ended): a key whose version here is not above the one an earlier file
 * gave it is counted in *backwards (and shown on stderr). Returns 0, or -1
 * with a message on stderr for an unreadable or malformed file. */
int ck_truth_load(const char *path, ck_key_t **table, int ordered, uint64_t *backwards);

/* Writes one truth line (the format above) for a put (hex != NULL) or a delete. */
void ck_truth_write_line(FILE *f, const char *id, int64_t version, const void *value, size_t len,
                         int is_delete);

/* Lowercase hex of len bytes into out (2 * len + 1 bytes). */
void ck_hex(char *out, const void *data, size_t len);

/* Subcommands: each parses its own options (argv[0] is the subcommand) and
 * returns the process exit status: 0 ok, 1 check failed / runtime error,
 * 2 usage error. */
int ck_cmd_verify(const wb_config_t *conf, int argc, char **argv);
int ck_cmd_snapshot(const wb_config_t *conf, int argc, char **argv);
int ck_cmd_strand(const wb_config_t *conf, int argc, char **argv);
int ck_cmd_dlq_mark(const wb_config_t *conf, int argc, char **argv);
int ck_cmd_poison(const wb_config_t *conf, int argc, char **argv);

/* Dead-letter topic: messages added since the marks in mark_path (a
 * dlq-mark file; NULL = all messages in the topic) into *count. With
 * expect_path (lines KEY TAB KIND), also reads those messages and checks
 * that they are exactly the expected keys, once each, every one with a
 * non-empty wb-dlq-reason header; mismatches go to *bad and stderr.
 * Returns 0, or -1 when Kafka could not be asked (message on stderr). */
int ck_dlq_check(const wb_config_t *conf, const char *mark_path, const char *expect_path,
                 int64_t *count, uint64_t *bad);

#endif /* WB_FAULTS_CHECK_H */
