/* test_event.c — the change-event codec: round trips, every malformed input, librdkafka adapters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "wb_event.h"
#include "wb_util.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        (n), (v), sizeof(v) - 1                                                                    \
    }
#define H_NULL(n)                                                                                  \
    {                                                                                              \
        (n), NULL, 0                                                                               \
    }
#define VALID_HDRS                                                                                 \
    H("wb-version", "42"), H("wb-entity", "user"), H("wb-time-us", "1700000000000000")

static wb_event_t make_put(const char *key, const char *value, size_t valuelen)
{
    wb_event_t ev = {0};

    ev.key = key;
    ev.keylen = strlen(key);
    ev.value = value;
    ev.valuelen = valuelen;
    ev.version = 1764348001123456;
    ev.time_us = 1764348001123000;
    ev.entity = "user";
    ev.entitylen = 4;
    return ev;
}

static void assert_bytes_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    assert_int_equal(alen, blen);
    if (alen) assert_memory_equal(a, b, alen);
}

static void assert_events_equal(const wb_event_t *a, const wb_event_t *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_bytes_equal(a->key, a->keylen, b->key, b->keylen);
    assert_int_equal(a->is_delete, b->is_delete);
    assert_int_equal(a->value == NULL, b->value == NULL);
    assert_bytes_equal(a->value, a->valuelen, b->value, b->valuelen);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->time_us, b->time_us);
    assert_bytes_equal(a->entity, a->entitylen, b->entity, b->entitylen);
}

/* Returns the value of header name as a C string (test values are short). */
static const char *hdr_str(const wb_header_t *hdrs, size_t n, const char *name)
{
    static char buf[128];
    size_t i;

    for (i = 0; i < n; i++) {
        if (!strcmp(hdrs[i].name, name)) {
            assert_true(hdrs[i].len < sizeof(buf));
            memcpy(buf, hdrs[i].value, hdrs[i].len);
            buf[hdrs[i].len] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* Encodes ev, decodes the result and checks the decoded event equals ev. */
static void round_trip(const wb_event_t *ev)
{
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH], errstr[256] = "";
    wb_event_t out;
    size_t n = 0;

    assert_int_equal(
        wb_event_encode_headers(ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)), WB_OK);
    if (ev->kind == WB_EVENT_CHANGE)
        assert_int_equal(wb_event_decode(ev->key, ev->keylen, ev->value, ev->valuelen, hdrs, n,
                                         &out, errstr, sizeof(errstr)),
                         WB_OK);
    else
        assert_int_equal(wb_event_decode_refresh(ev->key, ev->keylen, ev->value, ev->valuelen, hdrs,
                                                 n, &out, errstr, sizeof(errstr)),
                         WB_OK);
    assert_string_equal(errstr, "");
    assert_events_equal(ev, &out);
}

static void test_put_round_trip(void **state)
{
    wb_event_t ev = make_put("user:42", "{\"name\":\"Ada\"}", 14);
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH];
    size_t n = 0;

    assert_int_equal(
        wb_event_encode_headers(&ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)), WB_OK);
    assert_int_equal(n, 4);
    assert_string_equal(hdr_str(hdrs, n, "wb-version"), "1764348001123456");
    assert_string_equal(hdr_str(hdrs, n, "wb-entity"), "user");
    assert_string_equal(hdr_str(hdrs, n, "wb-time-us"), "1764348001123000");
    assert_string_equal(hdr_str(hdrs, n, "wb-op"), "put");
    round_trip(&ev);
}

static void test_empty_put_round_trip(void **state)
{
    wb_event_t ev = make_put("user:42", "", 0);
    wb_event_t out;
    const wb_header_t hdrs[] = {VALID_HDRS, H("wb-op", "put")};
    char errstr[256];

    round_trip(&ev);
    /* An empty value is a put of "" — not a delete. */
    assert_int_equal(wb_event_decode("k", 1, "", 0, hdrs, 4, &out, errstr, sizeof(errstr)), WB_OK);
    assert_non_null(out.value);
    assert_int_equal(out.valuelen, 0);
    assert_false(out.is_delete);
}

static void test_delete_round_trip(void **state)
{
    wb_event_t ev = make_put("user:42", NULL, 0);
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH];
    size_t n = 0;

    ev.is_delete = 1;
    assert_int_equal(
        wb_event_encode_headers(&ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)), WB_OK);
    assert_string_equal(hdr_str(hdrs, n, "wb-op"), "del");
    round_trip(&ev);
}

static void test_extreme_values_round_trip(void **state)
{
    char key[WB_EVENT_KEY_MAX];
    wb_event_t ev;

    memset(key, 0xff, sizeof(key)); /* keys are binary-safe */
    ev = make_put("x", "\0\1\2", 3);
    ev.key = key;
    ev.keylen = sizeof(key);
    ev.version = WB_EVENT_VERSION_MAX;
    ev.time_us = INT64_MAX;
    ev.entity = "A_very_long_entity_name_of_exactly_sixty_three_bytes_0123456789";
    ev.entitylen = 63;
    round_trip(&ev);
    ev.version = 1;
    ev.time_us = 0;
    round_trip(&ev);
}

/* Versions above 2^53 would compare wrongly in the Redis scripts (Lua
 * doubles) and pin a key above every real version: neither encoded nor
 * decoded. */
static void test_version_above_2p53_refused(void **state)
{
    const wb_header_t hdrs[] = {H("wb-version", "9007199254740993"), H("wb-entity", "e"),
                                H("wb-time-us", "1"), H("wb-op", "put")};
    const wb_header_t refresh[] = {H("wb-kind", "refresh"), H("wb-entity", "e"),
                                   H("wb-version", "9000000000000000000")};
    wb_header_t out[WB_EVENT_NHDRS];
    char errstr[256], scratch[WB_EVENT_SCRATCH];
    wb_event_t ev;
    size_t n;

    assert_int_equal(wb_event_decode("k", 1, "v", 1, hdrs, 4, &ev, errstr, sizeof(errstr)),
                     WB_ERR_DECODE);
    assert_string_equal(errstr, "header wb-version: out of range (max 9007199254740992): "
                                "\"9007199254740993\"");
    assert_int_equal(ev.version, 0);
    assert_int_equal(
        wb_event_decode_refresh("k", 1, NULL, 0, refresh, 3, &ev, errstr, sizeof(errstr)),
        WB_ERR_DECODE);
    assert_non_null(strstr(errstr, "out of range"));

    ev = make_put("k", "v", 1);
    ev.version = WB_EVENT_VERSION_MAX + 1;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr,
                        "version out of range (max 9007199254740992, got 9007199254740993)");
    assert_int_equal(
        wb_event_encode_headers(&ev, out, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)),
        WB_ERR_INVALID_ARG);
}

static void test_unknown_headers_ignored(void **state)
{
    const wb_header_t hdrs[] = {H("traceparent", "00-abc"), VALID_HDRS,
                                H("wb-future", "x"),        H_NULL("nullhdr"),
                                H("WB-VERSION", "oops"),    H("wb-op", "put")};
    wb_event_t ev;
    char errstr[256] = "";

    assert_int_equal(wb_event_decode("user:1", 6, "v", 1, hdrs, 8, &ev, errstr, sizeof(errstr)),
                     WB_OK);
    assert_int_equal(ev.version, 42);
    assert_int_equal(ev.time_us, 1700000000000000);
    assert_bytes_equal(ev.entity, ev.entitylen, "user", 4);
    assert_bytes_equal(ev.key, ev.keylen, "user:1", 6);
    assert_bytes_equal(ev.value, ev.valuelen, "v", 1);
    /* "wb-kind: change" is the explicit spelling of the default. */
    {
        const wb_header_t h2[] = {VALID_HDRS, H("wb-op", "put"), H("wb-kind", "change")};
        assert_int_equal(wb_event_decode("k", 1, "v", 1, h2, 5, &ev, errstr, sizeof(errstr)),
                         WB_OK);
    }
}

/* One malformed input and the exact message it must produce. */
struct bad_case {
    const char *key;
    size_t keylen;
    const char *value; /* NULL = Kafka null value */
    size_t valuelen;
    wb_header_t hdrs[8];
    size_t nhdrs;
    const char *msg;
};

static void test_malformed_inputs(void **state)
{
    static char longkey[WB_EVENT_KEY_MAX + 1];
    const struct bad_case cases[] = {
        {"k", 1, "v", 1, {{0}}, 0, "missing header wb-version"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-time-us", "1"), H("wb-op", "put")},
         3,
         "missing header wb-entity"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-entity", "e"), H("wb-op", "put")},
         3,
         "missing header wb-time-us"},
        {"k", 1, "v", 1, {VALID_HDRS}, 3, "missing header wb-op"},
        {"", 0, "v", 1, {VALID_HDRS, H("wb-op", "put")}, 4, "empty key"},
        {NULL, 0, "v", 1, {VALID_HDRS, H("wb-op", "put")}, 4, "null key"},
        {longkey,
         sizeof(longkey),
         "v",
         1,
         {VALID_HDRS, H("wb-op", "put")},
         4,
         "key longer than 1024 bytes (1025)"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "12x"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"12x\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "0"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"0\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "-5"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"-5\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "+5"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"+5\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", " 5"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \" 5\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", ""), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "007"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: leading zero: \"007\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "9223372036854775808"), H("wb-entity", "e"), H("wb-time-us", "1"),
          H("wb-op", "put")},
         4,
         "header wb-version: out of range (max 9007199254740992): \"9223372036854775808\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1\"\\\x01\xff"), H("wb-entity", "e"), H("wb-time-us", "1"),
          H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: \"1\\\"\\\\\\x01\\xff\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxx"),
          H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version: not a positive decimal integer: "
         "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\""},
        {"k",
         1,
         "v",
         1,
         {H_NULL("wb-version"), H("wb-entity", "e"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-version is null"},
        {"k",
         1,
         "v",
         1,
         {VALID_HDRS, H("wb-op", "put"), H("wb-version", "43")},
         5,
         "duplicate header wb-version"},
        {"k",
         1,
         "v",
         1,
         {VALID_HDRS, H("wb-op", "put"), H("wb-op", "put")},
         5,
         "duplicate header wb-op"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-entity", "e"), H("wb-time-us", "soon"), H("wb-op", "put")},
         4,
         "header wb-time-us: not a non-negative decimal integer: \"soon\""},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-entity", ""), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-entity: empty"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"),
          H("wb-entity", "e123456789012345678901234567890123456789012345678901234567890123"),
          H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-entity: longer than 63 bytes (64)"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-entity", "us-er"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-entity: invalid character '-' at offset 2 (allowed: A-Z a-z 0-9 _)"},
        {"k",
         1,
         "v",
         1,
         {H("wb-version", "1"), H("wb-entity", "user\n"), H("wb-time-us", "1"), H("wb-op", "put")},
         4,
         "header wb-entity: invalid character '\\n' at offset 4 (allowed: A-Z a-z 0-9 _)"},
        {"k",
         1,
         "v",
         1,
         {VALID_HDRS, H("wb-op", "upsert")},
         4,
         "header wb-op: expected \"put\" or \"del\", got \"upsert\""},
        {"k",
         1,
         "hello",
         5,
         {VALID_HDRS, H("wb-op", "del")},
         4,
         "header wb-op is \"del\" but the message has a value (5 bytes)"},
        {"k",
         1,
         "",
         0,
         {VALID_HDRS, H("wb-op", "del")},
         4,
         "header wb-op is \"del\" but the message has a value (0 bytes)"},
        {"k",
         1,
         NULL,
         0,
         {VALID_HDRS, H("wb-op", "put")},
         4,
         "header wb-op is \"put\" but the message value is null (a tombstone)"},
        {"k",
         1,
         "v",
         1,
         {VALID_HDRS, H("wb-op", "put"), H("wb-kind", "bogus")},
         5,
         "header wb-kind: expected \"change\" or \"refresh\", got \"bogus\""},
        {"k",
         1,
         NULL,
         0,
         {H("wb-kind", "refresh"), H("wb-entity", "user")},
         2,
         "header wb-kind is \"refresh\": a refresh request, not a change event"},
    };
    size_t i;

    memset(longkey, 'k', sizeof(longkey));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        char errstr[256] = "";
        wb_event_t ev;

        memset(&ev, 0x5a, sizeof(ev));
        print_message("case %zu: %s\n", i, c->msg);
        assert_int_equal(wb_event_decode(c->key, c->keylen, c->value, c->valuelen, c->hdrs,
                                         c->nhdrs, &ev, errstr, sizeof(errstr)),
                         WB_ERR_DECODE);
        assert_string_equal(errstr, c->msg);
        /* Nothing half-decoded is left behind. */
        assert_null(ev.key);
        assert_int_equal(ev.version, 0);
    }
    /* The boundaries themselves are accepted. */
    {
        const wb_header_t hdrs[] = {H("wb-version", "9007199254740992"), H("wb-entity", "e"),
                                    H("wb-time-us", "9223372036854775807"), H("wb-op", "put")};
        wb_event_t ev;
        char errstr[256];

        assert_int_equal(wb_event_decode(longkey, WB_EVENT_KEY_MAX, "v", 1, hdrs, 4, &ev, errstr,
                                         sizeof(errstr)),
                         WB_OK);
        assert_int_equal(ev.version, WB_EVENT_VERSION_MAX);
        assert_int_equal(ev.time_us, INT64_MAX);
    }
}

static void test_decode_invalid_args(void **state)
{
    const wb_header_t hdrs[] = {VALID_HDRS, H("wb-op", "put")};
    char errstr[256];
    wb_event_t ev;

    assert_int_equal(wb_event_decode("k", 1, "v", 1, hdrs, 4, NULL, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_decode("k", 1, NULL, 3, hdrs, 4, &ev, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_decode("k", 1, "v", 1, NULL, 4, &ev, errstr, sizeof(errstr)),
                     WB_ERR_INVALID_ARG);
    /* errstr is optional, and a tiny one is truncated, not overrun. */
    assert_int_equal(wb_event_decode("k", 1, "v", 1, hdrs, 0, &ev, NULL, 0), WB_ERR_DECODE);
    assert_int_equal(wb_event_decode("k", 1, "v", 1, hdrs, 0, &ev, errstr, 8), WB_ERR_DECODE);
    assert_string_equal(errstr, "missing");
}

static void test_encode_rejects_invalid_events(void **state)
{
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH], errstr[256];
    wb_event_t ev;
    size_t n;

    ev = make_put("k", "v", 1);
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_OK);

    ev.version = 0;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "version must be > 0 (got 0)");
    assert_int_equal(wb_event_encode_headers(&ev, hdrs, 4, &n, scratch, sizeof(scratch)),
                     WB_ERR_INVALID_ARG);

    ev = make_put("k", NULL, 0);
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "a put needs a non-NULL value (an empty value is a non-NULL "
                                "pointer with valuelen 0)");

    ev = make_put("k", "v", 1);
    ev.is_delete = 1;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "a delete must have a NULL value");

    ev = make_put("k", "v", 1);
    ev.entity = "bad name";
    ev.entitylen = 8;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr,
                        "entity: invalid character ' ' at offset 3 (allowed: A-Z a-z 0-9 _)");

    ev = make_put("k", "v", 1);
    ev.keylen = 0;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "empty key");

    ev = make_put("k", "v", 1);
    ev.time_us = -1;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "time_us is negative (-1)");

    ev = make_put("k", "v", 1);
    ev.kind = (wb_event_kind_t)7;
    assert_int_equal(wb_event_validate(&ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
    assert_string_equal(errstr, "unknown event kind 7");

    /* Arrays too small are refused, not overrun. */
    ev = make_put("k", "v", 1);
    assert_int_equal(wb_event_encode_headers(&ev, hdrs, 3, &n, scratch, sizeof(scratch)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_encode_headers(&ev, hdrs, 4, &n, scratch, 20), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_encode_headers(&ev, hdrs, 4, &n, NULL, 0), WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_encode_headers(NULL, hdrs, 4, &n, scratch, sizeof(scratch)),
                     WB_ERR_INVALID_ARG);
}

static void test_refresh_request(void **state)
{
    wb_event_t ev = {0}, out;
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH], errstr[256];
    size_t n;

    ev.kind = WB_EVENT_REFRESH;
    ev.key = "user:7";
    ev.keylen = 6;
    ev.entity = "user";
    ev.entitylen = 4;
    assert_int_equal(
        wb_event_encode_headers(&ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)), WB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(hdr_str(hdrs, n, "wb-kind"), "refresh");
    assert_string_equal(hdr_str(hdrs, n, "wb-entity"), "user");
    round_trip(&ev);
    ev.version = 99;
    ev.time_us = 1234;
    round_trip(&ev);

    /* An empty (non-null) value is accepted too and reads as no value. */
    assert_int_equal(
        wb_event_decode_refresh("user:7", 6, "", 0, hdrs, n, &out, errstr, sizeof(errstr)), WB_OK);
    assert_null(out.value);
    assert_int_equal(out.kind, WB_EVENT_REFRESH);

    assert_int_equal(
        wb_event_decode_refresh("user:7", 6, "x", 1, hdrs, n, &out, errstr, sizeof(errstr)),
        WB_ERR_DECODE);
    assert_string_equal(errstr, "a refresh request has a value (1 bytes)");
    {
        const wb_header_t h[] = {H("wb-kind", "refresh")};
        assert_int_equal(
            wb_event_decode_refresh("k", 1, NULL, 0, h, 1, &out, errstr, sizeof(errstr)),
            WB_ERR_DECODE);
        assert_string_equal(errstr, "missing header wb-entity");
    }
    {
        const wb_header_t h[] = {VALID_HDRS, H("wb-op", "put")};
        assert_int_equal(
            wb_event_decode_refresh("k", 1, "v", 1, h, 4, &out, errstr, sizeof(errstr)),
            WB_ERR_DECODE);
        assert_string_equal(errstr, "missing header wb-kind");
    }
    {
        const wb_header_t h[] = {VALID_HDRS, H("wb-op", "put"), H("wb-kind", "change")};
        assert_int_equal(
            wb_event_decode_refresh("k", 1, "v", 1, h, 5, &out, errstr, sizeof(errstr)),
            WB_ERR_DECODE);
        assert_string_equal(errstr,
                            "header wb-kind is \"change\": a change event, not a refresh request");
    }
}

static void test_dlq_headers(void **state)
{
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH];
    size_t n = 0;

    assert_int_equal(wb_event_encode_dlq_headers("missing header wb-version", "wb.changes", 5,
                                                 INT64_MAX, hdrs, WB_EVENT_NHDRS, &n, scratch,
                                                 sizeof(scratch)),
                     WB_OK);
    assert_int_equal(n, 4);
    assert_string_equal(hdr_str(hdrs, n, "wb-dlq-reason"), "missing header wb-version");
    assert_string_equal(hdr_str(hdrs, n, "wb-dlq-topic"), "wb.changes");
    assert_string_equal(hdr_str(hdrs, n, "wb-dlq-partition"), "5");
    assert_string_equal(hdr_str(hdrs, n, "wb-dlq-offset"), "9223372036854775807");
    assert_int_equal(wb_event_encode_dlq_headers("r", "t", -1, 0, hdrs, WB_EVENT_NHDRS, &n, scratch,
                                                 sizeof(scratch)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(wb_event_encode_dlq_headers(NULL, "t", 0, 0, hdrs, WB_EVENT_NHDRS, &n, scratch,
                                                 sizeof(scratch)),
                     WB_ERR_INVALID_ARG);
    assert_int_equal(
        wb_event_encode_dlq_headers("r", "t", 0, 0, hdrs, 3, &n, scratch, sizeof(scratch)),
        WB_ERR_INVALID_ARG);
}

static void test_entity_cstr(void **state)
{
    wb_event_t ev = make_put("k", "v", 1);
    char buf[WB_EVENT_ENTITY_MAX + 1];

    ev.entity = "userXXXX"; /* borrowed, not NUL-terminated after 4 bytes */
    assert_string_equal(wb_event_entity_cstr(&ev, buf, sizeof(buf)), "user");
    assert_null(wb_event_entity_cstr(&ev, buf, 4));
}

/* Converts an rd_kafka header list into wb_header_t (borrowing). */
static size_t rd_to_hdrs(const rd_kafka_headers_t *rd, wb_header_t *hdrs, size_t max)
{
    size_t i;

    for (i = 0; i < max; i++)
        if (rd_kafka_header_get_all(rd, i, &hdrs[i].name, &hdrs[i].value, &hdrs[i].len)) break;
    return i;
}

static void test_rd_headers_adapter(void **state)
{
    wb_event_t ev = make_put("user:42", "payload", 7), out;
    rd_kafka_headers_t *rd = NULL;
    wb_header_t hdrs[8];
    char errstr[256];
    size_t n;

    assert_int_equal(wb_event_to_rd_headers(&ev, &rd), WB_OK);
    assert_non_null(rd);
    assert_int_equal(rd_kafka_header_cnt(rd), 4);
    n = rd_to_hdrs(rd, hdrs, 8);
    assert_int_equal(wb_event_decode(ev.key, ev.keylen, ev.value, ev.valuelen, hdrs, n, &out,
                                     errstr, sizeof(errstr)),
                     WB_OK);
    assert_events_equal(&ev, &out);
    rd_kafka_headers_destroy(rd);

    /* Invalid events allocate nothing. */
    ev.version = -1;
    rd = (rd_kafka_headers_t *)&ev;
    assert_int_equal(wb_event_to_rd_headers(&ev, &rd), WB_ERR_INVALID_ARG);
    assert_null(rd);

    /* DLQ headers appended to a copy of the original list; null stays null. */
    {
        wb_header_t dlq[WB_EVENT_NHDRS + 1];
        char scratch[WB_EVENT_SCRATCH];
        const void *v;
        size_t len;

        rd = rd_kafka_headers_new(8);
        assert_int_equal(wb_event_encode_dlq_headers("bad", "wb.changes", 0, 17, dlq,
                                                     WB_EVENT_NHDRS, &n, scratch, sizeof(scratch)),
                         WB_OK);
        dlq[n].name = "nullhdr";
        dlq[n].value = NULL;
        dlq[n].len = 0;
        assert_int_equal(wb_event_add_rd_headers(rd, dlq, n + 1), WB_OK);
        assert_int_equal(rd_kafka_header_get_last(rd, "wb-dlq-offset", &v, &len), 0);
        assert_int_equal(len, 2);
        assert_memory_equal(v, "17", 2);
        assert_int_equal(rd_kafka_header_get_last(rd, "nullhdr", &v, &len), 0);
        assert_null(v);
        rd_kafka_headers_destroy(rd);
    }
}

/* Real librdkafka messages through the in-process mock cluster (no broker):
 * proves what the consumer hands us for null vs empty values and headers. */
static rd_kafka_t *mk_client(rd_kafka_type_t type, const char *bootstraps)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    if (bootstraps) {
        assert_int_equal(
            rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr)),
            RD_KAFKA_CONF_OK);
    } else {
        assert_int_equal(
            rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof(errstr)),
            RD_KAFKA_CONF_OK);
    }
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "group.id", "test_event", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    }
    rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    return rk;
}

static void produce(rd_kafka_t *p, const char *key, const void *value, size_t len,
                    rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t err;

    err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("wb.changes"), RD_KAFKA_V_PARTITION(0),
                            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_END);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void test_from_message_via_mock_cluster(void **state)
{
    rd_kafka_t *p, *c;
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_topic_partition_list_t *parts;
    wb_event_t put = make_put("user:1", "hello", 5), empty = make_put("user:2", "", 0),
               del = make_put("user:3", NULL, 0), refresh = {0};
    const wb_event_t *want[] = {&put, &empty, &del, NULL, &refresh};
    rd_kafka_headers_t *h;
    int64_t deadline;
    int got = 0;

    del.is_delete = 1;
    refresh.kind = WB_EVENT_REFRESH;
    refresh.key = "user:4";
    refresh.keylen = 6;
    refresh.entity = "user";
    refresh.entitylen = 4;

    p = mk_client(RD_KAFKA_PRODUCER, NULL);
    mc = rd_kafka_handle_mock_cluster(p);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "wb.changes", 1, 1), 0);

    assert_int_equal(wb_event_to_rd_headers(&put, &h), WB_OK);
    produce(p, put.key, put.value, put.valuelen, h);
    /* An empty put: librdkafka keeps a non-NULL zero-length value non-null. */
    assert_int_equal(wb_event_to_rd_headers(&empty, &h), WB_OK);
    produce(p, empty.key, "", 0, h);
    assert_int_equal(wb_event_to_rd_headers(&del, &h), WB_OK);
    produce(p, del.key, NULL, 0, h);
    produce(p, "user:poison", "x", 1, NULL); /* no headers at all */
    assert_int_equal(wb_event_to_rd_headers(&refresh, &h), WB_OK);
    produce(p, refresh.key, NULL, 0, h);
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

    c = mk_client(RD_KAFKA_CONSUMER, rd_kafka_mock_cluster_bootstraps(mc));
    rd_kafka_poll_set_consumer(c);
    parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, "wb.changes", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    deadline = wb_time_mono_ms() + 20000;
    while (got < 5 && wb_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        char errstr[256] = "";
        wb_event_t ev;

        if (!m) continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (got == 1) {
            assert_non_null(m->payload); /* the documented empty-value behaviour */
            assert_int_equal(m->len, 0);
        }
        if (got == 2) assert_null(m->payload); /* the tombstone */
        if (want[got] && want[got]->kind == WB_EVENT_CHANGE) {
            assert_int_equal(wb_event_from_message(m, &ev, errstr, sizeof(errstr)), WB_OK);
            assert_events_equal(want[got], &ev);
        } else if (want[got]) {
            assert_int_equal(wb_event_refresh_from_message(m, &ev, errstr, sizeof(errstr)), WB_OK);
            assert_events_equal(want[got], &ev);
            assert_int_equal(wb_event_from_message(m, &ev, errstr, sizeof(errstr)), WB_ERR_DECODE);
        } else {
            assert_int_equal(wb_event_from_message(m, &ev, errstr, sizeof(errstr)), WB_ERR_DECODE);
            assert_string_equal(errstr, "missing header wb-version");
        }
        rd_kafka_message_destroy(m);
        got++;
    }
    assert_int_equal(got, 5);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
}

static void test_from_message_error_message(void **state)
{
    rd_kafka_message_t m;
    wb_event_t ev;
    char errstr[256];

    memset(&m, 0, sizeof(m));
    m.err = RD_KAFKA_RESP_ERR__PARTITION_EOF;
    assert_int_equal(wb_event_from_message(&m, &ev, errstr, sizeof(errstr)), WB_ERR_KAFKA);
    assert_non_null(strstr(errstr, "message carries an error"));
    assert_int_equal(wb_event_from_message(NULL, &ev, errstr, sizeof(errstr)), WB_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_round_trip),
        cmocka_unit_test(test_empty_put_round_trip),
        cmocka_unit_test(test_delete_round_trip),
        cmocka_unit_test(test_extreme_values_round_trip),
        cmocka_unit_test(test_version_above_2p53_refused),
        cmocka_unit_test(test_unknown_headers_ignored),
        cmocka_unit_test(test_malformed_inputs),
        cmocka_unit_test(test_decode_invalid_args),
        cmocka_unit_test(test_encode_rejects_invalid_events),
        cmocka_unit_test(test_refresh_request),
        cmocka_unit_test(test_dlq_headers),
        cmocka_unit_test(test_entity_cstr),
        cmocka_unit_test(test_rd_headers_adapter),
        cmocka_unit_test(test_from_message_error_message),
        cmocka_unit_test(test_from_message_via_mock_cluster),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
