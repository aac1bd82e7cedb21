/* wb_key.c — cache keys (entity prefix + id) and the library's per-key side keys. */
#include "wb_key.h"

#include <stdio.h>
#include <string.h>

#include "wb_entry.h"
#include "wb_event.h"
#include "wb_utf8.h"
#include "wb_util.h"

wb_err_t wb_key_check_id(const char *id, char *errstr, size_t errstr_size)
{
    const unsigned char *p = (const unsigned char *)id;
    size_t n, i, step;

    if (!id || !*id) {
        wb_set_err(errstr, errstr_size, "id is empty");
        return WB_ERR_INVALID_ARG;
    }
    n = strlen(id);
    for (i = 0; i < n; i += step) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            wb_set_err(errstr, errstr_size, "id has a control byte 0x%02x at offset %zu", p[i], i);
            return WB_ERR_INVALID_ARG;
        }
        if (p[i] == '{' || p[i] == '}') {
            wb_set_err(errstr, errstr_size, "id has a brace at offset %zu", i);
            return WB_ERR_INVALID_ARG;
        }
        step = wb_utf8_seq(p + i, n - i);
        if (step == 0) {
            wb_set_err(errstr, errstr_size, "id is not valid UTF-8 at offset %zu", i);
            return WB_ERR_INVALID_ARG;
        }
    }
    return WB_OK;
}

wb_err_t wb_key_build(const wb_entity_t *ent, int nshards, const char *id, char *buf, size_t *lenp,
                      char *errstr, size_t errstr_size)
{
    char tag[16];
    size_t plen, ilen, tlen;
    wb_err_t err;

    if ((err = wb_key_check_id(id, errstr, errstr_size)) != WB_OK) return err;
    plen = strlen(ent->prefix);
    ilen = strlen(id);
    if (plen + ilen <= WB_EVENT_KEY_MAX) {
        /* The shard of prefix + id, hashed in place in buf. */
        memcpy(buf, ent->prefix, plen);
        memcpy(buf + plen, id, ilen);
        tlen = (size_t)snprintf(tag, sizeof(tag), "{%d}",
                                wb_entry_shard_of(buf, plen + ilen, nshards));
    } else {
        tlen = 0;
    }
    if (plen + ilen + tlen > WB_EVENT_KEY_MAX) {
        wb_set_err(errstr, errstr_size, "key is %zu bytes, at most %d allowed", plen + ilen + tlen,
                   WB_EVENT_KEY_MAX);
        return WB_ERR_INVALID_ARG;
    }
    memmove(buf + tlen, buf, plen + ilen);
    memcpy(buf, tag, tlen);
    buf[tlen + plen + ilen] = '\0';
    if (lenp) *lenp = tlen + plen + ilen;
    return WB_OK;
}

size_t wb_key_side(const char *kind, const char *key, char *buf)
{
    size_t tag = wb_entry_key_tag(key, strlen(key), NULL);
    int n = snprintf(buf, WB_KEY_SIDE_MAX, "%.*swb:%s:%s", (int)tag, key, kind, key + tag);

    return n < 0 ? 0 : (size_t)n < WB_KEY_SIDE_MAX ? (size_t)n : WB_KEY_SIDE_MAX - 1;
}
