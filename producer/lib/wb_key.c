/* wb_key.c — cache keys (entity prefix + id) and the library's per-key side keys. */
#include "wb_key.h"

#include <stdio.h>
#include <string.h>

#include "wb_event.h"
#include "wb_util.h"

/* Length of the valid UTF-8 sequence starting at p (at most n bytes), or 0
 * when it is malformed, overlong, a surrogate or above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len, i;
    unsigned cp;

    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

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
        step = utf8_seq(p + i, n - i);
        if (step == 0) {
            wb_set_err(errstr, errstr_size, "id is not valid UTF-8 at offset %zu", i);
            return WB_ERR_INVALID_ARG;
        }
    }
    return WB_OK;
}

wb_err_t wb_key_build(const wb_entity_t *ent, const char *id, char *buf, size_t *lenp, char *errstr,
                      size_t errstr_size)
{
    size_t plen, ilen;
    wb_err_t err;

    if ((err = wb_key_check_id(id, errstr, errstr_size)) != WB_OK) return err;
    plen = strlen(ent->prefix);
    ilen = strlen(id);
    if (plen + ilen > WB_EVENT_KEY_MAX) {
        wb_set_err(errstr, errstr_size, "key is %zu bytes, at most %d allowed", plen + ilen,
                   WB_EVENT_KEY_MAX);
        return WB_ERR_INVALID_ARG;
    }
    memcpy(buf, ent->prefix, plen);
    memcpy(buf + plen, id, ilen + 1);
    if (lenp) *lenp = plen + ilen;
    return WB_OK;
}

size_t wb_key_side(const char *kind, const char *key, char *buf)
{
    int n = snprintf(buf, WB_KEY_SIDE_MAX, "wb:%s:{%s}", kind, key);

    return n < 0 ? 0 : (size_t)n < WB_KEY_SIDE_MAX ? (size_t)n : WB_KEY_SIDE_MAX - 1;
}
