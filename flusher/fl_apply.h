/* fl_apply.h — the flusher's PostgreSQL step: one transaction, poison rounds, bisection. */
#ifndef FL_APPLY_H
#define FL_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fl_batch.h"
#include "wb_config.h"

/* Working arrays of the PostgreSQL step, grown to the largest batch seen. */
typedef struct fl_scratch_s {
    struct fl_coalesce_item_s *ci;
    size_t *pend, *win, *cand;
    struct wb_row_s *rows;
    size_t cap;
} fl_scratch_t;

/* The applier: the PostgreSQL connection and the scratch arrays. Used by
 * one thread at a time (the writer while it runs, the polling thread while
 * the writer is idle). */
typedef struct fl_apply_s {
    const wb_config_t *conf; /* borrowed */
    PGconn *pg;
    /* A statement failed in a way that says the tables changed (a relation
     * or column missing, a type that no longer fits): the next attempt
     * creates or verifies them again first, on the same connection. */
    int schema_stale;
    fl_scratch_t scratch;
    /* The batch's ranges go into the database's applied offsets
     * (fl_pgoffsets) as written_by (borrowed; NULL: not recorded, as for a
     * replay of one entity). offsets_guard 1: a range the database
     * contradicts fails the batch (b->rewind); 0: it is only not recorded. */
    const char *offsets_by;
    int offsets_guard;
} fl_apply_t;

/* What a failed upsert of nrows rows calls for. */
typedef enum fl_verdict_e {
    FL_VERDICT_OUTAGE = 0, /* not the rows' fault: the whole batch is retried later */
    FL_VERDICT_SPLIT = 1,  /* bisect: the halves are tried on their own */
    FL_VERDICT_POISON = 2  /* the one row is poison (dead-lettered) */
} fl_verdict_t;

/* Zeroes ap and keeps conf (borrowed). Connects nothing. */
void fl_apply_init(fl_apply_t *ap, const wb_config_t *conf);
/* Closes the connection and frees the scratch arrays. */
void fl_apply_fini(fl_apply_t *ap);

/* Connects PostgreSQL if it is not, and creates or verifies the tables (the
 * entities' and the applied offsets') once per connection and again after a
 * statement found them changed (ap->schema_stale). WB_ERR_CONFIG means the
 * schema is wrong: fatal at start, an outage (retried, logged as an ERROR)
 * while running. */
wb_err_t fl_apply_pg_ensure(fl_apply_t *ap, char *errstr, size_t errstr_size);

/* The PostgreSQL step of b (decoded: b->redecode 0): one transaction, one
 * statement per table (more only when bisecting around poison); each key's
 * newest GOOD event is written under the version guard. Rows PostgreSQL
 * rejects on their own become poison and a key whose newest event is
 * poison gets its next-newest in another round. A row is poison only if
 * the table still has its layout (wb_table_verify) and accepts a bare
 * tombstone of the row's key: a table changed under the flusher (a column
 * type, a constraint that refuses every row) is an outage, never a reason
 * to dead-letter. The same transaction records b's ranges as the
 * database's applied offsets (offsets_by). On success b->pg_done is set,
 * items are settled and b's figures filled. Otherwise WB_ERR_PG (an outage;
 * with b->rewind set when instead the database is behind a range:
 * offsets_guard) or WB_ERR_CONFIG, and b is to be decoded again
 * (b->redecode). */
wb_err_t fl_apply_batch(fl_apply_t *ap, fl_batch_t *b, char *errstr, size_t errstr_size);

/* The decision after an upsert of nrows rows failed with err (WB_ERR_TOO_LARGE,
 * WB_ERR_NOMEM: the statement could not be built; else the server's
 * sqlstate, NULL or "" if none) while the connection was (connected 1) or
 * was not usable. Only the rows' own content (data exceptions, integrity
 * violations, program limits) or the statement's size (a statement timeout,
 * the server out of memory) is the rows' fault; a size error of one row
 * that is not simply too large is an outage. Pure. */
fl_verdict_t fl_apply_verdict(wb_err_t err, int connected, const char *sqlstate, size_t nrows);

/* Settles one round: of the winners win[0..nwin) (indices into b->items),
 * the applied ones become DONE and are appended to b->winners (counting
 * *sent, and *deletes for deletes); the poison ones are kept at the front
 * of win. Then keeps in pend[] only the GOOD events of pend[0..npend) whose
 * key's winner was poison: they get another round. Returns how many. Pure. */
size_t fl_apply_settle_round(fl_batch_t *b, size_t *win, size_t nwin, size_t *pend, size_t npend,
                             uint64_t *sent, uint64_t *deletes);

#endif /* FL_APPLY_H */
