/* fuzz_refresh.c — libFuzzer target for the refresher's request decoder (rf_request_decode).
 *
 * Input framing, as fuzz_event.c (so its seeds fit; lengths big-endian u16,
 * cut to what is left): record key, record value, then up to MAX_HDRS
 * headers of (name, record value). A record is u16 length + bytes; length
 * 0xffff means NULL (Kafka null). A header name is one tag byte: < 0xf0
 * picks KNOWN[tag % NKNOWN], else a record follows holding a literal name.
 * Three entities (prefixes may not overlap: the loader refuses that, and a
 * key of one entity may look like another's). A request the decoder accepts must
 * be one the refresher can serve: a configured entity, the key inside its
 * prefix, an id of UTF-8 without NUL; otherwise an abort.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_request.h"
#include "wb_entry.h"
#include "wb_utf8.h"

#define MAX_HDRS 8

static const char *const KNOWN[] = {WB_HDR_VERSION, WB_HDR_ENTITY, WB_HDR_TIME_US, WB_HDR_OP,
                                    WB_HDR_KIND,    "wb-other",    "traceparent"};
#define NKNOWN (sizeof(KNOWN) / sizeof(KNOWN[0]))

static const char YAML[] = "entities:\n"
                           "  - {name: user, prefix: \"user:\", table: users, value_type: text}\n"
                           "  - {name: vip, prefix: \"vip:\", table: vips, value_type: jsonb}\n"
                           "  - {name: blob, prefix: \"b:\", table: blobs, value_type: bytea}\n";

struct reader {
    const uint8_t *p;
    size_t left;
};

/* Returns 0 at end of input. *out is NULL for a null record. */
static int take(struct reader *r, const uint8_t **out, size_t *len)
{
    size_t n;

    if (r->left < 2) return 0;
    n = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    r->left -= 2;
    if (n == 0xffff) {
        *out = NULL;
        *len = 0;
        return 1;
    }
    if (n > r->left) n = r->left;
    *out = r->p;
    *len = n;
    r->p += n;
    r->left -= n;
    return 1;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_refresh: accepted a request that cannot be served: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wb_config_t *conf;
    struct reader r = {data, size};
    const uint8_t *key = NULL, *value = NULL, *v;
    size_t keylen = 0, valuelen = 0, n = 0, len;
    char names[MAX_HDRS][64], errstr[256];
    wb_header_t hdrs[MAX_HDRS];
    rf_request_t req;

    if (!conf &&
        wb_config_load_string("fuzz", YAML, strlen(YAML), &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "fuzz_refresh: config: %s\n", errstr);
        abort();
    }
    if (!take(&r, &key, &keylen) || !take(&r, &value, &valuelen)) return 0;
    while (n < MAX_HDRS && r.left > 0) {
        uint8_t tag = *r.p++;

        r.left--;
        if (tag < 0xf0) {
            hdrs[n].name = KNOWN[tag % NKNOWN];
        } else {
            if (!take(&r, &v, &len)) break;
            len = v ? len : 0;
            if (len >= sizeof(names[n])) len = sizeof(names[n]) - 1;
            if (len) memcpy(names[n], v, len);
            names[n][len] = '\0';
            hdrs[n].name = names[n];
        }
        if (!take(&r, &v, &len)) break;
        hdrs[n].value = v;
        hdrs[n].len = len;
        n++;
    }

    if (rf_request_decode(conf, key, keylen, value, valuelen, hdrs, n, &req, errstr,
                          sizeof(errstr)) != WB_OK) {
        check(strlen(errstr) > 0, "error without a message");
        check(req.ent == NULL, "error with an entity");
        return 0;
    }
    check(req.ent != NULL, "no entity");
    check(req.key == (const char *)key && req.keylen == keylen, "key not the message's");
    /* The key may carry its shard's hash tag ({N}) before the prefix. */
    size_t tag = wb_entry_key_tag((const char *)key, keylen, NULL);
    size_t plen = tag + strlen(req.ent->prefix);
    check(keylen > plen && memcmp(key + tag, req.ent->prefix, plen - tag) == 0,
          "key outside the prefix");
    check(keylen <= WB_EVENT_KEY_MAX, "key too long");
    check(!memchr(key + plen, '\0', keylen - plen), "NUL in the id");
    check(wb_utf8_valid(key + plen, keylen - plen, NULL), "id not UTF-8");
    return 0;
}
