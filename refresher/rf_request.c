/* rf_request.c — a refresh request decoded and checked before it reaches PostgreSQL (pure). */
#include "rf_request.h"

#include <string.h>

#include "wb_entry.h"
#include "wb_utf8.h"
#include "wb_util.h"

wb_err_t rf_request_check(const wb_config_t *conf, const wb_event_t *ev, rf_request_t *req,
                          char *errstr, size_t errstr_size)
{
    char name[WB_EVENT_ENTITY_MAX + 1];
    const wb_entity_t *ent;
    size_t tag, off, bad = 0;
    int shard = 0;

    memset(req, 0, sizeof(*req));
    if (!wb_event_entity_cstr(ev, name, sizeof(name)) || !(ent = wb_config_entity(conf, name))) {
        wb_set_err(errstr, errstr_size, "unknown entity \"%.*s\"",
                   (int)(ev->entitylen > 64 ? 64 : ev->entitylen), ev->entity ? ev->entity : "");
        return WB_ERR_INVALID_ARG;
    }
    /* The key is "{N}" (its shard's tag, wb_entry.h) + prefix + id: the
     * prefix is checked after the tag, and the tag must be the key's own
     * shard (another one would fill a key no reader looks up). */
    tag = wb_entry_key_tag(ev->key, ev->keylen, &shard);
    off = wb_entity_id_offset(ent, ev->key, ev->keylen);
    if (off == 0) {
        wb_set_err(errstr, errstr_size, "key does not start with the prefix \"%s\" of entity %s",
                   ent->prefix, ent->name);
        return WB_ERR_INVALID_ARG;
    }
    if (tag > 0 &&
        shard != wb_entry_shard_of(ev->key + tag, ev->keylen - tag, conf->redis.dirty_shards)) {
        wb_set_err(errstr, errstr_size, "key's shard tag {%d} is not its shard (%d shards)", shard,
                   conf->redis.dirty_shards);
        return WB_ERR_INVALID_ARG;
    }
    if (ev->keylen > WB_EVENT_KEY_MAX) {
        wb_set_err(errstr, errstr_size, "key of %zu bytes (at most %d)", ev->keylen,
                   WB_EVENT_KEY_MAX);
        return WB_ERR_INVALID_ARG;
    }
    if (memchr(ev->key + off, '\0', ev->keylen - off)) {
        wb_set_err(errstr, errstr_size, "the id holds a NUL byte");
        return WB_ERR_INVALID_ARG;
    }
    if (!wb_utf8_valid(ev->key + off, ev->keylen - off, &bad)) {
        wb_set_err(errstr, errstr_size, "the id is not UTF-8 (byte %zu)", bad);
        return WB_ERR_INVALID_ARG;
    }
    req->ent = ent;
    req->key = ev->key;
    req->keylen = ev->keylen;
    return WB_OK;
}

wb_err_t rf_request_decode(const wb_config_t *conf, const void *key, size_t keylen,
                           const void *value, size_t valuelen, const wb_header_t *hdrs,
                           size_t nhdrs, rf_request_t *req, char *errstr, size_t errstr_size)
{
    wb_event_t ev;
    wb_err_t err = wb_event_decode_refresh(key, keylen, value, valuelen, hdrs, nhdrs, &ev, errstr,
                                           errstr_size);

    if (err != WB_OK) {
        memset(req, 0, sizeof(*req));
        return err;
    }
    return rf_request_check(conf, &ev, req, errstr, errstr_size);
}

wb_err_t rf_request_from_message(const wb_config_t *conf, const rd_kafka_message_t *msg,
                                 rf_request_t *req, char *errstr, size_t errstr_size)
{
    wb_event_t ev;
    wb_err_t err = wb_event_refresh_from_message(msg, &ev, errstr, errstr_size);

    if (err != WB_OK) {
        memset(req, 0, sizeof(*req));
        return err;
    }
    return rf_request_check(conf, &ev, req, errstr, errstr_size);
}
