/* fuzz_event.c — libFuzzer target for the change-event codec (wb_event_decode and friends).
 *
 * Input framing (all lengths big-endian u16, cut to what is left):
 *   record key, record value, then up to MAX_HDRS headers of (name, record value).
 *   A record is u16 length + bytes; length 0xffff means NULL (Kafka null).
 *   A header name is one tag byte: < 0xf0 picks KNOWN[tag % NKNOWN], else a
 *   record follows holding a literal name (cut at the first NUL).
 * Every decoded event must re-encode and decode to the same event; a
 * mismatch aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_event.h"

#define MAX_HDRS 8

static const char *const KNOWN[] = {WB_HDR_VERSION, WB_HDR_ENTITY, WB_HDR_TIME_US, WB_HDR_OP,
                                    WB_HDR_KIND,    "wb-other",    "traceparent"};
#define NKNOWN (sizeof(KNOWN) / sizeof(KNOWN[0]))

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
        fprintf(stderr, "fuzz_event: round trip mismatch: %s\n", what);
        abort();
    }
}

static int bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_same(const wb_event_t *a, const wb_event_t *b)
{
    check(a->kind == b->kind, "kind");
    check(bytes_eq(a->key, a->keylen, b->key, b->keylen), "key");
    check((a->value == NULL) == (b->value == NULL), "value nullness");
    check(bytes_eq(a->value, a->valuelen, b->value, b->valuelen), "value");
    check(a->is_delete == b->is_delete, "is_delete");
    check(a->version == b->version, "version");
    check(a->time_us == b->time_us, "time_us");
    check(bytes_eq(a->entity, a->entitylen, b->entity, b->entitylen), "entity");
}

static wb_err_t decode_kind(wb_event_kind_t kind, const void *key, size_t keylen, const void *value,
                            size_t valuelen, const wb_header_t *hdrs, size_t n, wb_event_t *ev,
                            char *errstr, size_t size)
{
    if (kind == WB_EVENT_CHANGE)
        return wb_event_decode(key, keylen, value, valuelen, hdrs, n, ev, errstr, size);
    return wb_event_decode_refresh(key, keylen, value, valuelen, hdrs, n, ev, errstr, size);
}

/* ev decoded fine: it must be valid and survive encode -> decode, both the
 * pure way and through a librdkafka header list. */
static void round_trip(const wb_event_t *ev)
{
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH], errstr[256];
    rd_kafka_headers_t *rd = NULL;
    wb_event_t again;
    size_t n = 0, i;

    check(wb_event_validate(ev, errstr, sizeof(errstr)) == WB_OK, "decoded event is invalid");
    check(wb_event_encode_headers(ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)) == WB_OK,
          "encode failed");
    check(decode_kind(ev->kind, ev->key, ev->keylen, ev->value, ev->valuelen, hdrs, n, &again,
                      errstr, sizeof(errstr)) == WB_OK,
          "re-decode failed");
    check_same(ev, &again);

    check(wb_event_to_rd_headers(ev, &rd) == WB_OK, "to_rd_headers failed");
    for (i = 0; i < WB_EVENT_NHDRS; i++)
        if (rd_kafka_header_get_all(rd, i, &hdrs[i].name, &hdrs[i].value, &hdrs[i].len)) break;
    check(decode_kind(ev->kind, ev->key, ev->keylen, ev->value, ev->valuelen, hdrs, i, &again,
                      errstr, sizeof(errstr)) == WB_OK,
          "re-decode from rd headers failed");
    check_same(ev, &again);
    rd_kafka_headers_destroy(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = {data, size};
    const uint8_t *key = NULL, *value = NULL, *v;
    size_t keylen = 0, valuelen = 0, n = 0, len;
    char names[MAX_HDRS][64];
    wb_header_t hdrs[MAX_HDRS];
    char errstr[256];
    wb_event_t ev;

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

    if (wb_event_decode(key, keylen, value, valuelen, hdrs, n, &ev, errstr, sizeof(errstr)) ==
        WB_OK) {
        check(ev.kind == WB_EVENT_CHANGE, "decode returned a refresh");
        round_trip(&ev);
    } else {
        check(strlen(errstr) > 0, "error without a message");
    }
    if (wb_event_decode_refresh(key, keylen, value, valuelen, hdrs, n, &ev, errstr,
                                sizeof(errstr)) == WB_OK) {
        check(ev.kind == WB_EVENT_REFRESH, "decode_refresh returned a change");
        round_trip(&ev);
    } else {
        check(strlen(errstr) > 0, "error without a message");
    }
    return 0;
}
