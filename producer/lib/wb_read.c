/* wb_read.c — read-through (wb_get, wb_get_many) and cache-aside (wb_get_or_load) with
 * stampede protection.
 *
 * Every lookup is ONE round trip: the "get" script (wb_entry.h) returns the
 * entry on a hit (and says whether this reader should publish the
 * refresh-ahead request), or on a miss tries the stampede lock
 * "wb:lock:{key}" with a random owner token in the same script.
 *   - Lock won: load (the entity's table, or the caller's loader), fill the
 *     cache (read-through: the version-checked `fill` script, which never
 *     overwrites a newer or dirty entry — invariant 8; cache-aside:
 *     `fill_aside`, only if still absent), release the lock with a
 *     compare-and-delete, return what was loaded.
 *   - Lock taken by someone else: sleep briefly (2 ms doubling to 50 ms) and
 *     look again; each look either hits the winner's fill or takes a lock
 *     that was released (the winner failed) or expired (the winner died —
 *     so a dead holder blocks a key for at most producer.lock_ttl_ms). A
 *     reader gives up with WB_ERR_TIMEOUT after producer.lock_wait_ms.
 * Not found (no row, a soft-deleted row, or the loader said so) is cached
 * as a clean tombstone for producer.negative_ttl_ms; a cached tombstone is
 * a hit that answers WB_ERR_NOT_FOUND.
 *
 * wb_get_many does the same for many keys of one entity, in rounds: the
 * `get` of every pending key in one pipeline (wb_entry_get_many); the keys
 * whose lock it took are read with one wb_table_select, filled with one
 * wb_entry_fill_many and unlocked with one wb_entry_release_many; keys
 * locked by another loader are looked up again in the next round after the
 * same backoff, until producer.lock_wait_ms. Repeated ids share one key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wb_client_int.h"
#include "wb_key.h"
#include "wb_log.h"
#include "wb_entry.h"
#include "wb_rand.h"
#include "wb_table.h"
#include "wb_ttl.h"
#include "wb_util.h"

#define POLL_FIRST_US 2000
#define POLL_MAX_US   50000
#define MAX_RELOADS   3 /* a fill lost to a newer write is re-read, at most this often */

/* Internal result of one load: like wb_err_t plus "read the cache again". */
#define LOAD_RETRY ((wb_err_t)-100)

typedef struct read_s {
    wb_client_t *client;
    const wb_entity_t *ent;
    const char *id;
    char key[WB_KEY_MAX];
    size_t keylen;
    char rr_key[WB_KEY_SIDE_MAX];
    char lock_key[WB_KEY_SIDE_MAX];
    char token[33];
    wb_entry_get_req_t args;
    wb_entry_get_res_t got; /* result of the last lookup */
    /* fill arguments */
    const void *value;
    size_t len;
    int64_t version;
    int64_t ttl_ms;
    int negative;
    wb_entry_fill_t fill_result;
    int created;
    int last_try; /* serve what was loaded even if the fill lost to a newer write */
} read_t;

static wb_err_t get_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    read_t *r = arg;

    wb_entry_get_clear(&r->got);
    return wb_entry_get(rc, &r->args, &r->got, errstr, errstr_size);
}

static wb_err_t unlock_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    read_t *r = arg;

    return wb_entry_release(rc, r->lock_key, r->token, NULL, errstr, errstr_size);
}

static wb_err_t fill_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    read_t *r = arg;
    wb_entry_fill_req_t req = {.key = r->key,
                               .keylen = r->keylen,
                               .value = r->value,
                               .len = r->len,
                               .version = r->version,
                               .ttl_ms = r->ttl_ms,
                               .is_deleted = r->negative,
                               .entity = r->ent->name};
    wb_entry_fill_res_t res;
    wb_err_t err = wb_entry_fill(rc, &req, &res, errstr, errstr_size);

    if (err == WB_OK) r->fill_result = res.code;
    return err;
}

static wb_err_t fill_aside_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    read_t *r = arg;
    wb_entry_aside_req_t req = {.key = r->key,
                                .keylen = r->keylen,
                                .value = r->value,
                                .len = r->len,
                                .ttl_ms = r->ttl_ms,
                                .is_negative = r->negative,
                                .entity = r->ent->name};

    return wb_entry_fill_aside(rc, &req, &r->created, errstr, errstr_size);
}

/* TTL of a fill: the negative TTL for "not found", else the entity's
 * (jittered). */
static int64_t fill_ttl(const wb_client_t *client, const wb_entity_t *ent, int negative)
{
    const wb_config_t *conf = client->conf;

    if (negative) return conf->producer.negative_ttl_ms;
    return wb_ttl_fill(conf, ent, wb_rand());
}

/* ------------------------------------------------------ PostgreSQL read */

/* The value of a decoded row as *value (malloc'ed + NUL, owned) and *len;
 * NULL for a soft-deleted row or a NULL value. */
static wb_err_t row_value(const wb_row_t *row, char **value, size_t *len, char *errstr,
                          size_t errstr_size)
{
    *value = NULL;
    *len = 0;
    if (!row->value || row->deleted) return WB_OK;
    *value = malloc(row->valuelen + 1);
    if (!*value) {
        wb_set_err(errstr, errstr_size, "postgres read: out of memory");
        return WB_ERR_NOMEM;
    }
    memcpy(*value, row->value, row->valuelen);
    (*value)[row->valuelen] = '\0';
    *len = row->valuelen;
    return WB_OK;
}

/* Reads id's row (wb_table_select_one). On WB_OK: *found 0 (no row), or the
 * row with *value malloc'ed + NUL (NULL for a soft-deleted row or a NULL
 * value). */
static wb_err_t pg_select(PGconn *conn, const wb_entity_t *ent, const char *id, int *found,
                          char **value, size_t *len, int64_t *version, int *deleted, char *errstr,
                          size_t errstr_size)
{
    PGresult *res = NULL;
    wb_row_t row;
    wb_err_t err;

    *found = 0;
    *value = NULL;
    *len = 0;
    err = wb_table_select_one(conn, ent, id, &res, errstr, errstr_size);
    if (err != WB_OK || PQntuples(res) == 0) goto done;
    err = wb_table_row_decode(res, 0, ent, &row, errstr, errstr_size);
    if (err != WB_OK) goto done;
    *found = 1;
    *version = row.version;
    *deleted = row.deleted;
    err = row_value(&row, value, len, errstr, errstr_size);

done:
    PQclear(res);
    return err;
}

typedef struct pg_read_s {
    const wb_entity_t *ent;
    const char *id;
    int *found;
    char **value;
    size_t *len;
    int64_t *version;
    int *deleted;
} pg_read_t;

static wb_err_t pg_read_op(PGconn *conn, void *arg, char *errstr, size_t errstr_size)
{
    pg_read_t *r = arg;
    return pg_select(conn, r->ent, r->id, r->found, r->value, r->len, r->version, r->deleted,
                     errstr, errstr_size);
}

/* Reads the row, retrying once on a fresh connection when a pooled one
 * turned out dead (PostgreSQL restarted while it was idle). */
static wb_err_t pg_read(wb_client_t *client, const wb_entity_t *ent, const char *id, int *found,
                        char **value, size_t *len, int64_t *version, int *deleted, char *errstr,
                        size_t errstr_size)
{
    pg_read_t r = {ent, id, found, value, len, version, deleted};
    return wb_client_pg(client, pg_read_op, &r, errstr, errstr_size);
}

/* ------------------------------------------------------ loading */

/* The lock holder's work for read-through. */
static wb_err_t load_table(read_t *r, wb_value_t *out)
{
    char errstr[WB_ERRSTR_MAX];
    char *value = NULL;
    size_t len = 0;
    int64_t version = 0;
    int found = 0, deleted = 0;
    wb_err_t err;

    err = pg_read(r->client, r->ent, r->id, &found, &value, &len, &version, &deleted, errstr,
                  sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s: read-through: %s", r->key, errstr);
        return err == WB_ERR_TIMEOUT || err == WB_ERR_NOMEM ? err : WB_ERR_PG;
    }
    atomic_fetch_add(&r->client->stats.loads, 1);
    r->negative = !found || deleted;
    r->value = value;
    r->len = len;
    r->version = found ? version : 0;
    r->ttl_ms = fill_ttl(r->client, r->ent, r->negative);
    if (!r->negative || r->ttl_ms > 0) {
        err = wb_client_redis(r->client, fill_op, r, errstr, sizeof(errstr));
        if (err != WB_OK) {
            /* The row is good; only the cache missed out. */
            WB_WARN("%s: fill after read-through: %s", r->key, errstr);
            r->fill_result = WB_ENTRY_FILL_CREATED;
        }
    } else {
        r->fill_result = WB_ENTRY_FILL_CREATED;
    }
    if (r->negative) {
        free(value);
        return WB_ERR_NOT_FOUND;
    }
    if (!r->last_try && (r->fill_result == WB_ENTRY_FILL_SKIPPED_NEWER ||
                         r->fill_result == WB_ENTRY_FILL_SKIPPED_DIRTY)) {
        /* A newer write reached the cache while we read: serve that. */
        free(value);
        return LOAD_RETRY;
    }
    out->data = value;
    out->len = len;
    out->version = version;
    out->hit = 0;
    return WB_OK;
}

/* The lock holder's work for cache-aside. */
static wb_err_t load_caller(read_t *r, wb_loader_fn loader, void *opaque, wb_value_t *out)
{
    char errstr[WB_ERRSTR_MAX];
    void *value = NULL;
    size_t len = 0;
    wb_err_t err;

    err = loader(opaque, r->ent->name, r->id, &value, &len);
    atomic_fetch_add(&r->client->stats.loads, 1);
    if (err != WB_OK && err != WB_ERR_NOT_FOUND) {
        free(value);
        WB_DEBUG("%s: loader failed: %s", r->key, wb_err2str(err));
        return WB_ERR_LOADER;
    }
    if (err == WB_OK) {
        /* Ours now; NUL-terminate for the caller's convenience. */
        char *v = realloc(value, len + 1);

        if (!v) {
            free(value);
            return WB_ERR_NOMEM;
        }
        v[len] = '\0';
        value = v;
    } else {
        free(value);
        value = NULL;
        len = 0;
    }
    r->negative = err == WB_ERR_NOT_FOUND;
    r->value = value;
    r->len = len;
    r->ttl_ms = fill_ttl(r->client, r->ent, r->negative);
    r->created = 1;
    if (!r->negative || r->ttl_ms > 0) {
        wb_err_t ferr = wb_client_redis(r->client, fill_aside_op, r, errstr, sizeof(errstr));

        if (ferr != WB_OK) {
            WB_WARN("%s: fill after load: %s", r->key, errstr);
            r->created = 1;
        }
    }
    if (r->negative) return WB_ERR_NOT_FOUND;
    if (!r->created && !r->last_try) {
        /* Someone wrote the key meanwhile; theirs is newer than a load. */
        free(value);
        return LOAD_RETRY;
    }
    out->data = value;
    out->len = len;
    out->version = 0;
    out->hit = 0;
    return WB_OK;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};

    if (us <= 0) return;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static wb_err_t read_key(wb_client_t *client, const char *entity, const char *id,
                         wb_loader_fn loader, void *opaque, wb_value_t *out)
{
    char errstr[WB_ERRSTR_MAX];
    read_t *r = NULL;
    wb_log_scope_t *prev_log;
    const wb_config_t *conf;
    int64_t deadline_us, left_us, wait_us = POLL_FIRST_US;
    int counted = 0, reloads = 0;
    wb_err_t err;

    if (out) memset(out, 0, sizeof(*out));
    if (!client || !out) return WB_ERR_INVALID_ARG;
    conf = client->conf;
    r = calloc(1, sizeof(*r)); /* ~4 KiB of keys: off the caller's stack */
    if (!r) return WB_ERR_NOMEM;
    /* The caller's loader runs in this scope too; if it calls another
     * handle, that call enters and leaves its own. */
    prev_log = wb_log_scope_enter(&client->log);
    r->client = client;
    r->id = id;
    err = wb_client_key(client, entity, id, &r->ent, r->key, &r->keylen);
    if (err != WB_OK) goto done;
    wb_key_side("rr", r->key, r->rr_key);
    wb_key_side("lock", r->key, r->lock_key);
    snprintf(r->token, sizeof(r->token), "%016" PRIx64 "%016" PRIx64, wb_rand(), wb_rand());
    r->args.key = r->key;
    r->args.keylen = r->keylen;
    r->args.rr_key = r->rr_key;
    r->args.lock_key = r->lock_key;
    r->args.refresh_ahead = r->ent->refresh_ahead;
    r->args.ttl_ms = r->ent->ttl_ms;
    r->args.dedupe_ms = conf->producer.refresh_dedupe_ms;
    r->args.lock_token = r->token;
    r->args.lock_ttl_ms = conf->producer.lock_ttl_ms;
    deadline_us = wb_time_mono_us() + (int64_t)conf->producer.lock_wait_ms * 1000;

    for (;;) {
        err = wb_client_redis(client, get_op, r, errstr, sizeof(errstr));
        if (err != WB_OK) {
            WB_WARN("%s: %s", r->key, errstr);
            goto done;
        }
        if (r->got.hit) {
            if (!counted) atomic_fetch_add(&client->stats.hits, 1);
            if (r->got.refresh)
                wb_client_request_refresh(client, r->ent, r->key, r->keylen, r->got.version);
            if (r->got.deleted) {
                err = WB_ERR_NOT_FOUND;
                goto done;
            }
            out->data = r->got.value;
            out->len = r->got.len;
            out->version = r->got.version;
            out->hit = 1;
            r->got.value = NULL;
            err = WB_OK;
            goto done;
        }
        if (!counted) {
            atomic_fetch_add(&client->stats.misses, 1);
            counted = 1;
        }
        if (r->got.locked) {
            err = loader ? load_caller(r, loader, opaque, out) : load_table(r, out);
            if (wb_client_redis(client, unlock_op, r, errstr, sizeof(errstr)) != WB_OK)
                WB_DEBUG("%s: lock release failed (it expires): %s", r->key, errstr);
            if (err != LOAD_RETRY) goto done;
            r->last_try = ++reloads >= MAX_RELOADS - 1;
            continue;
        }
        if (wb_time_mono_us() >= deadline_us) {
            WB_DEBUG("%s: gave up waiting for the loader holding the lock", r->key);
            err = WB_ERR_TIMEOUT;
            goto done;
        }
        left_us = deadline_us - wb_time_mono_us();
        sleep_us(wait_us < left_us ? wait_us : left_us + 1);
        wait_us = wait_us * 2 < POLL_MAX_US ? wait_us * 2 : POLL_MAX_US;
    }

done:
    wb_entry_get_clear(&r->got);
    free(r);
    wb_log_scope_leave(prev_log);
    return err;
}

wb_err_t wb_get(wb_client_t *client, const char *entity, const char *id, wb_value_t *out)
{
    return read_key(client, entity, id, NULL, NULL, out);
}

wb_err_t wb_get_or_load(wb_client_t *client, const char *entity, const char *id,
                        wb_loader_fn loader, void *loader_opaque, wb_value_t *out)
{
    if (!loader) {
        if (out) memset(out, 0, sizeof(*out));
        return WB_ERR_INVALID_ARG;
    }
    return read_key(client, entity, id, loader, loader_opaque, out);
}

/* ------------------------------------------------------ bulk reads */

/* One distinct key of a wb_get_many call. */
typedef struct mkey_s {
    const char *id; /* the caller's (the first slot naming it) */
    size_t idlen;
    char *key; /* one allocation: key, rr_key, lock_key */
    size_t keylen;
    char *rr_key;
    char *lock_key;
    int done;     /* err (and value on WB_OK) is final */
    int hit;      /* answered from the cache */
    int counted;  /* counted as a hit or a miss */
    int reloads;  /* loads whose fill lost to a newer write */
    int waiting;  /* this round: another loader holds its lock */
    wb_err_t err; /* once done */
    wb_value_t value;
    /* this round's load (the keys whose lock this call took) */
    int found, deleted;
    char *row; /* malloc'ed + NUL; NULL for a tombstone */
    size_t rowlen;
    int64_t version;
    wb_entry_fill_t fill;
} mkey_t;

/* A wb_get_many call: its distinct keys and the arrays of one round. */
typedef struct bulk_s {
    wb_client_t *client;
    const wb_entity_t *ent;
    char token[33]; /* lock owner token of every lock this call takes */
    mkey_t *keys;   /* distinct keys, sorted by key (so by id) */
    size_t nkeys;
    mkey_t **batch; /* this round's lookups (then its loads, a sorted subset) */
    size_t nbatch;
    wb_entry_get_req_t *req;
    wb_entry_get_res_t *res;
    wb_entry_fill_req_t *freq;
    wb_entry_fill_res_t *fres;
    mkey_t **fkeys; /* fkeys[j] answers freq[j] */
    size_t nfill;
    wb_entry_key_t *locks;
    size_t hits, loaded;
} bulk_t;

static void mkey_done(mkey_t *k, wb_err_t err)
{
    k->done = 1;
    k->err = err;
}

static wb_err_t bulk_get_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    bulk_t *b = arg;

    for (size_t j = 0; j < b->nbatch; j++)
        wb_entry_get_clear(&b->res[j]);
    return wb_entry_get_many(rc, b->req, b->nbatch, b->res, errstr, errstr_size);
}

static wb_err_t bulk_fill_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    bulk_t *b = arg;

    return wb_entry_fill_many(rc, b->freq, b->nfill, b->fres, errstr, errstr_size);
}

static wb_err_t bulk_release_op(wb_rc_t *rc, void *arg, char *errstr, size_t errstr_size)
{
    bulk_t *b = arg;

    for (size_t j = 0; j < b->nbatch; j++) {
        b->locks[j].key = b->batch[j]->lock_key;
        b->locks[j].keylen = strlen(b->batch[j]->lock_key);
    }
    return wb_entry_release_many(rc, b->locks, b->nbatch, b->token, errstr, errstr_size);
}

static int id_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

static void bulk_forget_rows(bulk_t *b)
{
    for (size_t j = 0; j < b->nbatch; j++) {
        free(b->batch[j]->row);
        b->batch[j]->row = NULL;
        b->batch[j]->found = 0;
    }
}

/* Reads the rows of b->batch (sorted by id) with one wb_table_select. */
static wb_err_t bulk_select_op(PGconn *conn, void *arg, char *errstr, size_t errstr_size)
{
    bulk_t *b = arg;
    const char **ids = calloc(b->nbatch, sizeof(*ids));
    size_t *idlens = calloc(b->nbatch, sizeof(*idlens));
    wb_table_keys_t req = {b->ent, ids, idlens, b->nbatch};
    PGresult *res = NULL;
    wb_err_t err = WB_ERR_NOMEM;

    bulk_forget_rows(b); /* a retry on a fresh connection starts over */
    if (!ids || !idlens) {
        wb_set_err(errstr, errstr_size, "postgres read: out of memory");
        goto done;
    }
    for (size_t j = 0; j < b->nbatch; j++) {
        ids[j] = b->batch[j]->id;
        idlens[j] = b->batch[j]->idlen;
    }
    if ((err = wb_table_select(conn, &req, &res, errstr, errstr_size)) != WB_OK) goto done;
    for (int t = 0; t < PQntuples(res); t++) {
        wb_row_t row;
        size_t lo = 0, hi = b->nbatch;
        mkey_t *k = NULL;

        if ((err = wb_table_row_decode(res, t, b->ent, &row, errstr, errstr_size)) != WB_OK)
            goto done;
        while (lo < hi) { /* batch is sorted by id */
            size_t mid = lo + (hi - lo) / 2;
            int c = id_cmp(row.key, row.keylen, b->batch[mid]->id, b->batch[mid]->idlen);

            if (c == 0) {
                k = b->batch[mid];
                break;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (!k || k->found) continue;
        k->found = 1;
        k->deleted = row.deleted;
        k->version = row.version;
        if ((err = row_value(&row, &k->row, &k->rowlen, errstr, errstr_size)) != WB_OK) goto done;
    }
    err = WB_OK;

done:
    if (err != WB_OK) bulk_forget_rows(b);
    PQclear(res);
    free(ids);
    free(idlens);
    return err;
}

/* The lock holder's work for the keys of b->batch: one query, one fill
 * pipeline, one release pipeline. Each key ends done, or (its fill lost to
 * a newer write) stays pending to be read again. */
static void bulk_load(bulk_t *b)
{
    char errstr[WB_ERRSTR_MAX];
    wb_err_t err;

    err = wb_client_pg(b->client, bulk_select_op, b, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s: read-through of %zu keys: %s", b->ent->name, b->nbatch, errstr);
        err = err == WB_ERR_TIMEOUT || err == WB_ERR_NOMEM ? err : WB_ERR_PG;
        for (size_t j = 0; j < b->nbatch; j++)
            mkey_done(b->batch[j], err);
        goto release;
    }
    atomic_fetch_add(&b->client->stats.loads, b->nbatch);
    b->loaded += b->nbatch;
    b->nfill = 0;
    for (size_t j = 0; j < b->nbatch; j++) {
        mkey_t *k = b->batch[j];
        int negative = !k->found || k->deleted;
        int64_t ttl = fill_ttl(b->client, b->ent, negative);

        k->fill = WB_ENTRY_FILL_CREATED; /* also when not filled or the fill failed */
        if (negative && ttl <= 0) continue;
        b->freq[b->nfill] = (wb_entry_fill_req_t){.key = k->key,
                                                  .keylen = k->keylen,
                                                  .value = k->row,
                                                  .len = k->rowlen,
                                                  .version = k->found ? k->version : 0,
                                                  .ttl_ms = ttl,
                                                  .is_deleted = negative,
                                                  .entity = b->ent->name};
        b->fkeys[b->nfill++] = k;
    }
    if (b->nfill > 0) {
        err = wb_client_redis(b->client, bulk_fill_op, b, errstr, sizeof(errstr));
        for (size_t j = 0; j < b->nfill; j++) {
            if (err != WB_OK || b->fres[j].err != WB_OK)
                /* The row is good; only the cache missed out. */
                WB_WARN("%s: fill after read-through: %s", b->fkeys[j]->key,
                        err != WB_OK ? errstr : b->fres[j].error);
            else
                b->fkeys[j]->fill = b->fres[j].code;
        }
    }
    for (size_t j = 0; j < b->nbatch; j++) {
        mkey_t *k = b->batch[j];
        int last_try = k->reloads >= MAX_RELOADS - 1;

        if (!k->found || k->deleted) {
            mkey_done(k, WB_ERR_NOT_FOUND);
        } else if (!last_try && (k->fill == WB_ENTRY_FILL_SKIPPED_NEWER ||
                                 k->fill == WB_ENTRY_FILL_SKIPPED_DIRTY)) {
            k->reloads++; /* a newer write reached the cache while we read: serve that */
            continue;
        } else {
            k->value.data = k->row;
            k->value.len = k->rowlen;
            k->value.version = k->version;
            k->value.hit = 0;
            k->row = NULL;
            mkey_done(k, WB_OK);
        }
    }
    bulk_forget_rows(b);

release:
    if (wb_client_redis(b->client, bulk_release_op, b, errstr, sizeof(errstr)) != WB_OK)
        WB_DEBUG("%s: lock release failed (they expire): %s", b->ent->name, errstr);
}

/* One round: the lookups of every pending key in one pipeline, then the
 * load of those whose lock this call took. Returns the number of keys
 * left waiting for another loader. */
static size_t bulk_round(bulk_t *b)
{
    const wb_config_t *conf = b->client->conf;
    char errstr[WB_ERRSTR_MAX];
    size_t nload = 0, waiting = 0;
    wb_err_t err;

    b->nbatch = 0;
    for (size_t k = 0; k < b->nkeys; k++) {
        mkey_t *key = &b->keys[k];

        if (key->done) continue;
        b->req[b->nbatch] = (wb_entry_get_req_t){.key = key->key,
                                                 .keylen = key->keylen,
                                                 .rr_key = key->rr_key,
                                                 .lock_key = key->lock_key,
                                                 .refresh_ahead = b->ent->refresh_ahead,
                                                 .ttl_ms = b->ent->ttl_ms,
                                                 .dedupe_ms = conf->producer.refresh_dedupe_ms,
                                                 .lock_token = b->token,
                                                 .lock_ttl_ms = conf->producer.lock_ttl_ms};
        b->batch[b->nbatch++] = key;
    }
    err = wb_client_redis(b->client, bulk_get_op, b, errstr, sizeof(errstr));
    if (err != WB_OK) {
        WB_WARN("%s: lookup of %zu keys: %s", b->ent->name, b->nbatch, errstr);
        for (size_t j = 0; j < b->nbatch; j++)
            mkey_done(b->batch[j], err);
        return 0;
    }
    for (size_t j = 0; j < b->nbatch; j++) {
        wb_entry_get_res_t *got = &b->res[j];
        mkey_t *k = b->batch[j];

        k->waiting = 0;
        if (got->err != WB_OK) {
            WB_WARN("%s: %s", k->key, got->error);
            mkey_done(k, WB_ERR_REDIS);
        } else if (got->hit) {
            if (!k->counted) atomic_fetch_add(&b->client->stats.hits, 1);
            if (got->refresh)
                wb_client_request_refresh(b->client, b->ent, k->key, k->keylen, got->version);
            k->hit = 1;
            if (got->deleted) {
                mkey_done(k, WB_ERR_NOT_FOUND);
            } else {
                k->value.data = got->value;
                k->value.len = got->len;
                k->value.version = got->version;
                k->value.hit = 1;
                got->value = NULL;
                mkey_done(k, WB_OK);
            }
        } else {
            if (!k->counted) atomic_fetch_add(&b->client->stats.misses, 1);
            if (got->locked) {
                b->batch[nload++] = k; /* still sorted: nload <= j */
            } else {
                k->waiting = 1;
                waiting++;
            }
        }
        k->counted = 1;
        wb_entry_get_clear(got);
    }
    b->nbatch = nload;
    if (nload > 0) bulk_load(b);
    return waiting;
}

/* An id of the call, for sorting: i is its slot. */
typedef struct mslot_s {
    const char *id;
    size_t idlen;
    size_t i;
} mslot_t;

static int mslot_cmp(const void *a, const void *b)
{
    const mslot_t *x = a, *y = b;

    return id_cmp(x->id, x->idlen, y->id, y->idlen);
}

/* Builds b->keys, one per distinct valid id, sorted by id (and so by key:
 * they share the entity's prefix), and slot[i] = the key answering ids[i]
 * (SIZE_MAX: none, errs[i] says why). */
static wb_err_t bulk_keys(bulk_t *b, const char *entity, const char *const *ids, size_t n,
                          wb_err_t *errs, size_t *slot)
{
    char key[WB_KEY_MAX], rr[WB_KEY_SIDE_MAX], lock[WB_KEY_SIDE_MAX];
    mslot_t *sorted = calloc(n, sizeof(*sorted));
    size_t nsorted = 0;

    if (!sorted) return WB_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const wb_entity_t *ent;
        size_t keylen;

        slot[i] = SIZE_MAX;
        errs[i] = wb_client_key(b->client, entity, ids[i], &ent, key, &keylen);
        /* The id's length: the key is the shard tag, the prefix, then the id. */
        if (errs[i] == WB_OK)
            sorted[nsorted++] =
                (mslot_t){ids[i], keylen - wb_entity_id_offset(ent, key, keylen), i};
    }
    qsort(sorted, nsorted, sizeof(*sorted), mslot_cmp);
    for (size_t s = 0; s < nsorted; s++) {
        const wb_entity_t *ent;
        mkey_t *k;
        size_t keylen, rrlen, locklen;

        if (b->nkeys > 0 && mslot_cmp(&sorted[s - 1], &sorted[s]) == 0) {
            slot[sorted[s].i] = b->nkeys - 1; /* the same id again */
            continue;
        }
        k = &b->keys[b->nkeys];
        wb_client_key(b->client, entity, sorted[s].id, &ent, key, &keylen);
        rrlen = wb_key_side("rr", key, rr);
        locklen = wb_key_side("lock", key, lock);
        if (!(k->key = malloc(keylen + rrlen + locklen + 3))) {
            free(sorted);
            return WB_ERR_NOMEM;
        }
        k->rr_key = k->key + keylen + 1;
        k->lock_key = k->rr_key + rrlen + 1;
        memcpy(k->key, key, keylen + 1);
        memcpy(k->rr_key, rr, rrlen + 1);
        memcpy(k->lock_key, lock, locklen + 1);
        k->keylen = keylen;
        k->id = sorted[s].id;
        k->idlen = sorted[s].idlen;
        slot[sorted[s].i] = b->nkeys++;
    }
    free(sorted);
    return WB_OK;
}

static void bulk_free(bulk_t *b)
{
    for (size_t k = 0; b->keys && k < b->nkeys; k++) {
        free(b->keys[k].key);
        free(b->keys[k].row);
        wb_value_free(&b->keys[k].value);
    }
    for (size_t j = 0; b->res && j < b->nkeys; j++)
        wb_entry_get_clear(&b->res[j]);
    free(b->keys);
    free(b->batch);
    free(b->req);
    free(b->res);
    free(b->freq);
    free(b->fres);
    free(b->fkeys);
    free(b->locks);
}

/* Room for n keys (every array of a round has at most n entries). */
static wb_err_t bulk_alloc(bulk_t *b, size_t n)
{
    b->keys = calloc(n, sizeof(*b->keys));
    b->batch = calloc(n, sizeof(*b->batch));
    b->req = calloc(n, sizeof(*b->req));
    b->res = calloc(n, sizeof(*b->res));
    b->freq = calloc(n, sizeof(*b->freq));
    b->fres = calloc(n, sizeof(*b->fres));
    b->fkeys = calloc(n, sizeof(*b->fkeys));
    b->locks = calloc(n, sizeof(*b->locks));
    if (b->keys && b->batch && b->req && b->res && b->freq && b->fres && b->fkeys && b->locks)
        return WB_OK;
    return WB_ERR_NOMEM;
}

wb_err_t wb_get_many(wb_client_t *client, const char *entity, const char *const *ids, size_t n,
                     wb_get_many_t *out)
{
    size_t need = offsetof(wb_get_many_t, errs) + sizeof(out->errs);
    bulk_t b;
    size_t *slot = NULL, *first = NULL;
    wb_log_scope_t *prev_log;
    int64_t deadline_us, left_us, wait_us = POLL_FIRST_US;
    wb_err_t err = WB_OK;

    if (!out || out->size < need || !out->values || !out->errs) return WB_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        memset(&out->values[i], 0, sizeof(out->values[i]));
        out->errs[i] = WB_ERR_INVALID_ARG;
    }
    if (!client || !ids || n == 0) return WB_ERR_INVALID_ARG;
    memset(&b, 0, sizeof(b));
    b.client = client;
    if (!entity || !(b.ent = wb_config_entity(client->conf, entity))) {
        for (size_t i = 0; i < n; i++)
            out->errs[i] = WB_ERR_UNKNOWN_ENTITY;
        return WB_ERR_UNKNOWN_ENTITY;
    }
    prev_log = wb_log_scope_enter(&client->log);
    snprintf(b.token, sizeof(b.token), "%016" PRIx64 "%016" PRIx64, wb_rand(), wb_rand());
    slot = calloc(n, sizeof(*slot));
    first = calloc(n, sizeof(*first));
    if (!slot || !first || bulk_alloc(&b, n) != WB_OK ||
        bulk_keys(&b, entity, ids, n, out->errs, slot) != WB_OK) {
        for (size_t i = 0; i < n; i++)
            out->errs[i] = WB_ERR_NOMEM;
        goto done;
    }

    deadline_us = wb_time_mono_us() + (int64_t)client->conf->producer.lock_wait_ms * 1000;
    for (;;) {
        size_t pending = 0, waiting;

        for (size_t k = 0; k < b.nkeys; k++)
            pending += !b.keys[k].done;
        if (pending == 0) break;
        if ((waiting = bulk_round(&b)) == 0) continue; /* only reloads: read them again now */
        if (wb_time_mono_us() >= deadline_us) {
            WB_DEBUG("%s: gave up waiting for the loaders of %zu keys", b.ent->name, waiting);
            for (size_t k = 0; k < b.nkeys; k++)
                if (b.keys[k].waiting && !b.keys[k].done) mkey_done(&b.keys[k], WB_ERR_TIMEOUT);
            continue;
        }
        left_us = deadline_us - wb_time_mono_us();
        sleep_us(wait_us < left_us ? wait_us : left_us + 1);
        wait_us = wait_us * 2 < POLL_MAX_US ? wait_us * 2 : POLL_MAX_US;
    }

    /* Answers in id order: a key's first slot takes its value, a repeated
     * id gets a copy of it. */
    for (size_t k = 0; k < b.nkeys; k++)
        first[k] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        mkey_t *k;

        if (slot[i] == SIZE_MAX) continue;
        k = &b.keys[slot[i]];
        out->errs[i] = k->err;
        if (k->hit) b.hits++;
        if (k->err != WB_OK) continue;
        if (first[slot[i]] == SIZE_MAX) {
            first[slot[i]] = i;
            out->values[i] = k->value;
            memset(&k->value, 0, sizeof(k->value));
            continue;
        }
        out->values[i] = out->values[first[slot[i]]];
        if (!(out->values[i].data = malloc(out->values[i].len + 1))) {
            memset(&out->values[i], 0, sizeof(out->values[i]));
            out->errs[i] = WB_ERR_NOMEM;
            continue;
        }
        memcpy(out->values[i].data, out->values[first[slot[i]]].data, out->values[i].len + 1);
    }

done:
    for (size_t i = 0; i < n; i++)
        if (err == WB_OK && out->errs[i] != WB_OK && out->errs[i] != WB_ERR_NOT_FOUND)
            err = out->errs[i];
    if (out->size >= offsetof(wb_get_many_t, hits) + sizeof(out->hits)) out->hits = b.hits;
    if (out->size >= offsetof(wb_get_many_t, loaded) + sizeof(out->loaded)) out->loaded = b.loaded;
    bulk_free(&b);
    free(slot);
    free(first);
    wb_log_scope_leave(prev_log);
    return err;
}
