/* fl_apply.c — the flusher's PostgreSQL step: one transaction, poison rounds, bisection. */
#include "fl_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_coalesce.h"
#include "fl_pgoffsets.h"
#include "wb_log.h"
#include "wb_pg.h"
#include "wb_table.h"
#include "wb_utf8.h"
#include "wb_util.h"

/* Rows whose parameters would come near PostgreSQL's 1 GiB limit on one
 * protocol message are split before sending: a Bind message above it is
 * a protocol violation (08P01) that also ends the connection. */
#define FL_STMT_MAX_BYTES (((size_t)1 << 30) - ((size_t)1 << 20))
/* A table's rows of a batch go in statements of about this many parameter
 * bytes: the arrays and libpq's send buffer (which keeps the size of the
 * largest message it ever sent) stay a few MiB, not the whole batch's
 * size, and the statements per batch stay few (50,000 rows of 200 bytes
 * take 11; a statement's round trip is well under 1% of its time). */
#define FL_STMT_BYTES ((size_t)1 << 20)

void fl_apply_init(fl_apply_t *ap, const wb_config_t *conf)
{
    memset(ap, 0, sizeof(*ap));
    ap->conf = conf;
}

void fl_apply_fini(fl_apply_t *ap)
{
    if (ap->pg) PQfinish(ap->pg);
    free(ap->scratch.ci);
    free(ap->scratch.pend);
    free(ap->scratch.win);
    free(ap->scratch.rows);
    free(ap->scratch.cand);
    memset(ap, 0, sizeof(*ap));
}

/* Whether a failed statement says the rows themselves are bad (poison).
 * Only the event's own content may: data exceptions (invalid JSON, bad
 * UTF-8, NUL in text), integrity violations (a CHECK the operator added),
 * program limits (a document nested too deep). Everything else, including
 * errors wb_pg_sqlstate_is_transient calls non-transient such as a syntax
 * error, is retried as an outage: dead-lettering a batch for a server or
 * schema problem would skip data. */
static int is_content_error(int connected, const char *sqlstate)
{
    if (!connected || !sqlstate || wb_pg_sqlstate_is_transient(sqlstate)) return 0;
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 ||
           strncmp(sqlstate, "54", 2) == 0;
}

wb_err_t fl_apply_pg_ensure(fl_apply_t *ap, char *errstr, size_t errstr_size)
{
    wb_err_t err;

    if (ap->pg && PQstatus(ap->pg) == CONNECTION_OK &&
        PQtransactionStatus(ap->pg) == PQTRANS_IDLE) {
        if (!ap->schema_stale) return WB_OK;
    } else {
        if (ap->pg) {
            PQfinish(ap->pg);
            ap->pg = NULL;
        }
        err = wb_pg_connect(ap->conf, &ap->pg, errstr, errstr_size);
        if (err != WB_OK) return err == WB_ERR_CONFIG ? WB_ERR_CONFIG : WB_ERR_PG;
    }
    /* On every new connection (a restored database may lack the tables),
     * and after a statement found a table changed (dropped and recreated,
     * altered): created again (postgres.schema: create) and verified. */
    err = wb_table_ensure(ap->pg, ap->conf, errstr, errstr_size);
    if (err == WB_OK) err = fl_pgoffsets_ensure(ap->pg, ap->conf, errstr, errstr_size);
    if (err == WB_OK) {
        ap->schema_stale = 0;
    } else if (ap->schema_stale) {
        WB_ERROR("tables changed under the flusher, nothing written until they fit again: %s",
                 errstr ? errstr : "");
    } else {
        PQfinish(ap->pg);
        ap->pg = NULL;
    }
    return err;
}

/* Whether a failure on a healthy connection says the table is not what
 * the statement was built for: class 42 (a relation or column missing, a
 * type mismatch, no unique index for ON CONFLICT). */
static int is_schema_error(int connected, const char *sqlstate)
{
    return connected && sqlstate && strncmp(sqlstate, "42", 2) == 0;
}

typedef struct apply_ctx_s {
    fl_apply_t *ap;
    fl_batch_t *b;
    const wb_entity_t *ent;
    const size_t *idx; /* message indices of the rows */
    wb_row_t *rows;
    size_t applied;
    char *errstr;
    size_t errstr_size;
    int verified; /* the table passed wb_table_verify in this statement's bisection */
} apply_ctx_t;

static wb_err_t exec_cmd(PGconn *pg, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(pg, sql);
    wb_err_t err = WB_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
        wb_set_err(errstr, errstr_size, "postgresql: %s: %.*s", sql, (int)strcspn(msg, "\n"), msg);
        err = WB_ERR_PG;
    }
    PQclear(res);
    return err;
}

/* Upper estimate of the parameter bytes of n rows (four arrays). */
static size_t row_bytes(const wb_row_t *row)
{
    return 8 + row->keylen + (row->deleted ? 0 : row->valuelen) + 12 + 5;
}

static size_t rows_bytes(const wb_row_t *rows, size_t n)
{
    size_t total = 4 * 20;

    for (size_t i = 0; i < n; i++)
        total += row_bytes(&rows[i]);
    return total;
}

/* Failures caused by the size of the statement, not by the database or
 * the rows: the parameters could not be built (an array over PostgreSQL's
 * 1 GiB limit, or out of memory: nothing was sent), the statement ran into
 * statement_timeout (57014) or the server ran out of memory (53200). A
 * smaller statement can succeed, so the range is split rather than
 * retried whole forever. */
static int is_size_error(wb_err_t err, int connected, const char *sqlstate)
{
    if (err == WB_ERR_TOO_LARGE || err == WB_ERR_NOMEM) return 1;
    if (!connected || !sqlstate) return 0;
    return strcmp(sqlstate, "57014") == 0 || strcmp(sqlstate, "53200") == 0;
}

fl_verdict_t fl_apply_verdict(wb_err_t err, int connected, const char *sqlstate, size_t nrows)
{
    int size_err = is_size_error(err, connected, sqlstate);

    if ((!size_err && !is_content_error(connected, sqlstate)) ||
        (size_err && nrows == 1 && err != WB_ERR_TOO_LARGE))
        return FL_VERDICT_OUTAGE;
    return nrows == 1 ? FL_VERDICT_POISON : FL_VERDICT_SPLIT;
}

/* Finds the rows of rows[lo, hi) the version guard refused because
 * PostgreSQL holds a newer version, and records that version in their
 * items: cleaning the cache against the refused event's own version would
 * mark an obsolete dirty value clean (say a write-through committed V' but
 * failed to set the cache, over a write-behind V still dirty: the cache
 * would serve V for a whole TTL). Cleaned against V', such an entry loses
 * its value and reloads. Runs in the upsert's transaction, which holds the
 * rows' locks (ON CONFLICT locks a row even when its WHERE refuses it), so
 * the versions read are the ones that stay. A row holding exactly the
 * event's version is NOT refused: that is the event's own write, already
 * committed (a write-through's event, a duplicate, a replay), and the
 * entry is cleaned at that version as for a written row. */
static wb_err_t find_refused(apply_ctx_t *a, size_t lo, size_t hi)
{
    wb_table_rows_t req = {a->ent, a->rows + lo, hi - lo};
    int64_t *stored = malloc((hi - lo) * sizeof(*stored));
    wb_err_t err;

    if (!stored) {
        wb_set_err(a->errstr, a->errstr_size, "finding the refused rows of %s: out of memory",
                   a->ent->table);
        return WB_ERR_PG;
    }
    err = wb_table_probe(a->ap->pg, &req, stored, a->errstr, a->errstr_size);
    for (size_t i = lo; err == WB_OK && i < hi; i++)
        if (stored[i - lo] > a->rows[i].version)
            a->b->items[a->idx[i]].stored_version = stored[i - lo];
    free(stored);
    return err == WB_OK ? WB_OK : WB_ERR_PG;
}

/* Before row i (the only row of a failed statement) is called poison for
 * its content: the table must still have its layout, and accept a bare
 * tombstone of the same key at the highest version (rolled back at once).
 * A table that refuses that too (a CHECK or trigger refusing everything)
 * or no longer verifies was changed under the flusher: every row would be
 * dead-lettered and lost, so it is an outage (WB_ERR_PG, reason in
 * errstr, schema re-checked before the next attempt). The transaction is
 * usable on entry and on return. */
static wb_err_t check_table_fits(apply_ctx_t *a, size_t i, const char *why)
{
    PGconn *pg = a->ap->pg;
    const wb_row_t *row = &a->rows[i];
    char detail[512];
    wb_err_t err;

    if (!a->verified) {
        err = wb_table_verify(pg, a->ent, detail, sizeof(detail));
        if (err == WB_ERR_CONFIG) {
            a->ap->schema_stale = 1;
            WB_ERROR("not dead-lettering (%s): %s", why, detail);
            wb_set_err(a->errstr, a->errstr_size, "%s", detail);
            return WB_ERR_PG;
        }
        if (err != WB_OK) {
            wb_set_err(a->errstr, a->errstr_size, "%s", detail);
            return WB_ERR_PG;
        }
        a->verified = 1;
    }
    /* A key PostgreSQL cannot hold as text is the row's own fault: the
     * canary then uses a plain key. */
    int plain = !memchr(row->key, '\0', row->keylen) && wb_utf8_valid(row->key, row->keylen, NULL);
    /* A mapped entity's bigint or uuid key may be the row's fault too. */
    if (WB_ENTITY_MAPPED(a->ent) && a->ent->key_type != WB_KT_TEXT) plain = 0;
    const char *ck = wb_table_canary_key(a->ent);
    wb_row_t canary = {plain ? row->key : ck, plain ? row->keylen : strlen(ck), NULL, 0, 1,
                       WB_EVENT_VERSION_MAX};
    wb_table_rows_t req = {a->ent, &canary, 1};
    wb_table_result_t res = {0};
    if (exec_cmd(pg, "SAVEPOINT wb_canary", a->errstr, a->errstr_size) != WB_OK) return WB_ERR_PG;
    err = wb_table_upsert(pg, &req, &res, detail, sizeof(detail));
    if (exec_cmd(pg, "ROLLBACK TO SAVEPOINT wb_canary; RELEASE SAVEPOINT wb_canary", a->errstr,
                 a->errstr_size) != WB_OK)
        return WB_ERR_PG;
    if (err == WB_OK) return WB_OK;
    if (is_content_error(PQstatus(pg) == CONNECTION_OK, res.sqlstate)) {
        a->ap->schema_stale = 1;
        WB_ERROR("not dead-lettering (%s): table %s refuses even a bare tombstone (%s, SQLSTATE "
                 "%s): a constraint or trigger on it refuses every row",
                 why, a->ent->table, detail, res.sqlstate);
        wb_set_err(a->errstr, a->errstr_size,
                   "table %s refuses every row (SQLSTATE %s): %s; fix the table", a->ent->table,
                   res.sqlstate, detail);
        return WB_ERR_PG;
    }
    wb_set_err(a->errstr, a->errstr_size, "%s%s%s", detail, *res.sqlstate ? " SQLSTATE " : "",
               res.sqlstate);
    return WB_ERR_PG;
}

static wb_err_t apply_range(apply_ctx_t *a, size_t lo, size_t hi);

static wb_err_t apply_halves(apply_ctx_t *a, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2;
    wb_err_t err = apply_range(a, lo, mid);

    return err == WB_OK ? apply_range(a, mid, hi) : err;
}

/* Upserts rows[lo, hi) under a savepoint. On a content error, bisects to
 * find the rows PostgreSQL rejects on their own and marks them poison, so
 * every other row of the batch is still written (invariant 7). On a size
 * error (is_size_error) of more than one row, bisects too: smaller
 * statements get through; a single row too large for any statement is
 * poison. Returns WB_ERR_PG only for errors that are not the rows' fault
 * (an outage). */
static wb_err_t apply_range(apply_ctx_t *a, size_t lo, size_t hi)
{
    PGconn *pg = a->ap->pg;
    wb_table_rows_t req = {a->ent, a->rows + lo, hi - lo};
    wb_table_result_t res = {0};
    char *st = res.sqlstate, detail[512];
    int size_err, connected;
    fl_verdict_t verdict;
    wb_err_t err;

    if (hi - lo > 1 && rows_bytes(a->rows + lo, hi - lo) > FL_STMT_MAX_BYTES)
        return apply_halves(a, lo, hi);
    if (exec_cmd(pg, "SAVEPOINT wb_rows", a->errstr, a->errstr_size) != WB_OK) return WB_ERR_PG;
    err = wb_table_upsert(pg, &req, &res, detail, sizeof(detail));
    if (err == WB_OK) {
        a->applied += res.rows;
        if (res.rows < hi - lo && find_refused(a, lo, hi) != WB_OK) return WB_ERR_PG;
        return exec_cmd(pg, "RELEASE SAVEPOINT wb_rows", a->errstr, a->errstr_size);
    }
    connected = pg && PQstatus(pg) == CONNECTION_OK;
    size_err = is_size_error(err, connected, st);
    verdict = fl_apply_verdict(err, connected, st, hi - lo);
    if (verdict == FL_VERDICT_OUTAGE) {
        if (is_schema_error(connected, st)) a->ap->schema_stale = 1;
        wb_set_err(a->errstr, a->errstr_size, "%s%s%s", detail, *st ? " SQLSTATE " : "", st);
        return WB_ERR_PG;
    }
    if (exec_cmd(pg, "ROLLBACK TO SAVEPOINT wb_rows; RELEASE SAVEPOINT wb_rows", a->errstr,
                 a->errstr_size) != WB_OK)
        return WB_ERR_PG;
    if (verdict == FL_VERDICT_POISON) {
        fl_item_t *it = &a->b->items[a->idx[lo]];
        if (size_err) {
            fl_item_poison(it, "too large for one PostgreSQL statement: %s", detail);
        } else {
            if (check_table_fits(a, lo, detail) != WB_OK) return WB_ERR_PG;
            /* A mapped entity: which column refuses the value. */
            char col[WB_PG_IDENT_MAX + 1] = "";
            if (WB_ENTITY_MAPPED(a->ent) && !a->rows[lo].deleted &&
                wb_table_blame(pg, a->ent, &a->rows[lo], col, sizeof(col)) == WB_OK)
                fl_item_poison(it, "rejected by PostgreSQL (SQLSTATE %s) for column \"%s\": %s", st,
                               col, detail);
            else
                fl_item_poison(it, "rejected by PostgreSQL (SQLSTATE %s): %s", st, detail);
        }
        return WB_OK;
    }
    if (size_err)
        WB_WARN("upsert of %zu rows into %s failed (%s%s%s); splitting it", hi - lo, a->ent->table,
                detail, *st ? " SQLSTATE " : "", st);
    return apply_halves(a, lo, hi);
}

static int cmp_item_key(const fl_item_t *x, const fl_item_t *y)
{
    if (x->ent != y->ent) return x->ent < y->ent ? -1 : 1;
    if (x->ev.keylen != y->ev.keylen) return x->ev.keylen < y->ev.keylen ? -1 : 1;
    return memcmp(x->ev.key, y->ev.key, x->ev.keylen);
}

size_t fl_apply_settle_round(fl_batch_t *b, size_t *win, size_t nwin, size_t *pend, size_t npend,
                             uint64_t *sent, uint64_t *deletes)
{
    size_t nnext = 0, npois = 0;

    for (size_t j = 0; j < nwin; j++) {
        fl_item_t *it = &b->items[win[j]];
        if (it->state == FL_ITEM_POISON) {
            win[npois++] = win[j];
            continue;
        }
        it->state = FL_ITEM_DONE;
        b->winners[b->nwinners++] = win[j];
        (*sent)++;
        *deletes += it->ev.is_delete ? 1 : 0;
    }
    for (size_t j = 0; j < npend && npois > 0; j++) {
        fl_item_t *it = &b->items[pend[j]];
        if (it->state != FL_ITEM_GOOD) continue;
        for (size_t p = 0; p < npois; p++) {
            if (cmp_item_key(it, &b->items[win[p]]) == 0) {
                pend[nnext++] = pend[j];
                break;
            }
        }
    }
    return nnext;
}

/* The PostgreSQL step: one transaction, one statement per table and
 * FL_STMT_BYTES of rows (more only when bisecting around poison). */
wb_err_t fl_apply_batch(fl_apply_t *ap, fl_batch_t *b, char *errstr, size_t errstr_size)
{
    const wb_config_t *conf = ap->conf;
    fl_scratch_t *sc = &ap->scratch;
    fl_coalesce_item_t *ci;
    size_t *pend, *win;
    wb_row_t *rows;
    size_t npend = 0;
    uint64_t upserted = 0, sent = 0, deletes = 0, coalesced = 0;
    wb_err_t err = WB_ERR_NOMEM;

    fl_batch_reset_counts(b);
    b->rewind = 0;
    if (sc->cap < b->n) {
        /* Grow-only: a steady flusher allocates nothing per batch. */
        size_t cap = b->cap;
        fl_coalesce_item_t *nci = realloc(sc->ci, cap * sizeof(*nci));
        if (nci) sc->ci = nci;
        size_t *np = nci ? realloc(sc->pend, cap * sizeof(*np)) : NULL;
        if (np) sc->pend = np;
        size_t *nw = np ? realloc(sc->win, cap * sizeof(*nw)) : NULL;
        if (nw) sc->win = nw;
        wb_row_t *nr = nw ? realloc(sc->rows, cap * sizeof(*nr)) : NULL;
        if (nr) sc->rows = nr;
        size_t *nc = nr ? realloc(sc->cand, cap * sizeof(*nc)) : NULL;
        if (nc) sc->cand = nc;
        if (!nc) {
            wb_set_err(errstr, errstr_size, "out of memory for a batch of %zu events", b->n);
            goto out;
        }
        sc->cap = cap;
    }
    ci = sc->ci;
    pend = sc->pend;
    win = sc->win;
    rows = sc->rows;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == FL_ITEM_GOOD) pend[npend++] = i;
    /* Round 1 sorts only each key's newest event, known from arrival. */
    size_t ncand = 0;
    if (b->dedup_ok) ncand = fl_batch_newest(b, sc->cand);
    int round = 0;

    err = fl_apply_pg_ensure(ap, errstr, errstr_size);
    if (err != WB_OK) goto out;
    if ((err = exec_cmd(ap->pg, "BEGIN", errstr, errstr_size)) != WB_OK) goto out;

    /* Rounds: normally one. A key whose newest event was poison gets its
     * next-newest event in the following round, so the result does not
     * depend on where batch boundaries fell (replay gives the same state). */
    while (npend > 0) {
        const size_t *src = pend;
        size_t nsrc = npend;
        if (round++ == 0 && b->dedup_ok) {
            src = sc->cand;
            nsrc = ncand;
        }
        for (size_t j = 0; j < nsrc; j++) {
            const fl_item_t *it = &b->items[src[j]];
            size_t plen = it->idoff;
            ci[j] = (fl_coalesce_item_t){(uint32_t)(it->ent - conf->entities), it->ev.key + plen,
                                         it->ev.keylen - plen, it->ev.version};
        }
        size_t nwin = fl_coalesce(ci, nsrc, win);
        coalesced += npend - nwin;
        for (size_t j = 0; j < nwin; j++) {
            size_t mi = src[win[j]];
            const fl_item_t *it = &b->items[mi];
            win[j] = mi; /* from now on: message indices */
            size_t plen = it->idoff;
            rows[j] = (wb_row_t){it->ev.key + plen, it->ev.keylen - plen, it->ev.value,
                                 it->ev.valuelen,   it->ev.is_delete,     it->ev.version};
        }
        /* Statements per entity (winners come grouped by entity) of up to
         * FL_STMT_BYTES each. */
        for (size_t lo = 0; lo < nwin;) {
            size_t hi = lo + 1, bytes = row_bytes(&rows[lo]);
            while (hi < nwin && b->items[win[hi]].ent == b->items[win[lo]].ent &&
                   (bytes += row_bytes(&rows[hi])) <= FL_STMT_BYTES)
                hi++;
            apply_ctx_t a = {ap, b, b->items[win[lo]].ent, win, rows, 0, errstr, errstr_size, 0};
            err = apply_range(&a, lo, hi);
            if (err != WB_OK) goto rollback;
            upserted += a.applied;
            lo = hi;
        }
        /* Settle this round; collect events of keys whose winner was poison. */
        size_t nnext = fl_apply_settle_round(b, win, nwin, pend, npend, &sent, &deletes);
        coalesced -= nnext; /* they were counted as coalesced away, but get another chance */
        npend = nnext;
    }
    /* Where the log is applied up to, in the same transaction (invariant 5). */
    if (ap->offsets_by && b->ranges_ok) {
        size_t nrefused = 0;
        err = fl_pgoffsets_record(ap->pg, ap->offsets_by, b->ranges, b->nranges, &nrefused, errstr,
                                  errstr_size);
        if (err != WB_OK) goto rollback;
        if (nrefused > 0 && ap->offsets_guard) {
            /* Committing would record offsets past events the database
             * never got (it was restored, or failed over): the caller
             * rewinds those partitions first. */
            b->rewind = 1;
            wb_set_err(errstr, errstr_size,
                       "PostgreSQL is behind the consumer on %zu partition(s): rewinding",
                       nrefused);
            err = WB_ERR_PG;
            goto rollback;
        }
    }
    if ((err = exec_cmd(ap->pg, "COMMIT", errstr, errstr_size)) != WB_OK) goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].state == FL_ITEM_GOOD)
            b->items[i].state = FL_ITEM_DONE; /* coalesced away: the newer version is written */
        b->skipped += b->items[i].state == FL_ITEM_SKIP;
    }
    b->upserted = upserted;
    b->stale = sent - upserted;
    b->deletes = deletes;
    b->coalesced = coalesced;
    b->pg_done = 1;
    err = WB_OK;
    goto out;
rollback:
    if (ap->pg && PQstatus(ap->pg) == CONNECTION_OK) exec_cmd(ap->pg, "ROLLBACK", NULL, 0);
out:
    if (err != WB_OK && err != WB_ERR_CONFIG) err = WB_ERR_PG;
    if (err != WB_OK) {
        b->redecode = 1;
        fl_batch_reset_counts(b);
    }
    return err;
}

/* Sends the batch's poison messages to the dead-letter topic and waits for
 * the broker's acknowledgement (their offsets are committed right after). */
