/* wb_read.c — read-through (wb_get) and cache-aside (wb_get_or_load) with stampede protection.
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
 */
#include <errno.h>
#include <inttypes.h>
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

static int64_t fill_ttl(const read_t *r)
{
    const wb_config_t *conf = r->client->conf;

    if (r->negative) return conf->producer.negative_ttl_ms;
    return wb_ttl_fill(conf, r->ent, wb_rand());
}

/* ------------------------------------------------------ PostgreSQL read */

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
    if (row.value && !row.deleted) {
        *len = row.valuelen;
        *value = malloc(*len + 1);
        if (!*value) {
            wb_set_err(errstr, errstr_size, "postgres read: out of memory");
            err = WB_ERR_NOMEM;
            goto done;
        }
        memcpy(*value, row.value, *len);
        (*value)[*len] = '\0';
    }

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
    r->ttl_ms = fill_ttl(r);
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
    r->ttl_ms = fill_ttl(r);
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
