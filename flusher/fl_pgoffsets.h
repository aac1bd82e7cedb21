/* fl_pgoffsets.h — the flusher's own bookkeeping in PostgreSQL: where the log is applied up to. */
#ifndef FL_PGOFFSETS_H
#define FL_PGOFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fl_batch.h"
#include "wb_config.h"

/* The table, in the connection's search_path (public by default):
 * wb_offsets(topic text, partition int, next_offset bigint, written_by
 * text, updated_at timestamptz, primary key (topic, partition)).
 * next_offset N means: every event of the partition below N is applied in
 * this database. It belongs to the database, not to a consumer group:
 * whoever applies the log (the daemon's group, a replay) moves it;
 * written_by names the last one. */
#define FL_PGOFFSETS_TABLE "wb_offsets"

/* What to do with a partition, given where the consumer would start (pos:
 * the group's committed offset or replay's start; -1 = unknown, the
 * earliest available), what the database records (recorded; -1 = nothing)
 * and the partition's earliest offset (lo; -1 = unknown). */
typedef enum fl_start_e {
    FL_START_KEEP = 0,   /* start at pos: the database is not behind it */
    FL_START_REWIND = 1, /* start at the recorded offset, below pos */
    FL_START_GONE = 2    /* the database needs offsets the topic no longer holds */
} fl_start_t;

/* Creates the table (postgres.schema create; under an advisory lock, so
 * replicas may race) and verifies its columns. WB_ERR_CONFIG: it is
 * missing (verify) or has another layout; WB_ERR_PG: the server failed. */
wb_err_t fl_pgoffsets_ensure(PGconn *pg, const wb_config_t *conf, char *errstr, size_t errstr_size);

/* In the caller's open transaction: records ranges[i].next as partition
 * ranges[i].partition's next offset, by written_by, for every range the
 * database does not contradict: it records nothing for the partition, or
 * an offset at or above ranges[i].from (it never moves back). A range the
 * database contradicts (it records an offset below from: it lacks the
 * events between) is left alone and gets ranges[i].recorded set to that
 * offset (-1 for the others); *nrefused counts them. WB_ERR_PG on failure
 * (the caller rolls back). */
wb_err_t fl_pgoffsets_record(PGconn *pg, const char *written_by, fl_range_t *ranges, size_t n,
                             size_t *nrefused, char *errstr, size_t errstr_size);

/* Reads what the database records for topic's partitions parts[0..n):
 * out[i] = next offset, or -1 when nothing is recorded. */
wb_err_t fl_pgoffsets_read(PGconn *pg, const char *topic, const int32_t *parts, size_t n,
                           int64_t *out, char *errstr, size_t errstr_size);

/* The decision for one partition (see fl_start_t); *start is where to
 * start (pos, or recorded for a rewind; for GONE the offset needed, i.e.
 * recorded). GONE whenever the recorded offset is below lo (the database
 * needs what the topic lost, wherever the consumer stands); else a rewind
 * when it is below a known pos. Pure. */
fl_start_t fl_pgoffsets_decide(int64_t pos, int64_t recorded, int64_t lo, int64_t *start);

#endif /* FL_PGOFFSETS_H */
