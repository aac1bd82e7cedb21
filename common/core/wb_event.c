/* wb_event.c — the change-event codec: Kafka key/value/headers <-> wb_event_t (invariant 3).
 */
#include "wb_event.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_util.h"

/* Headers the decoder understands; anything else is ignored. */
enum { H_VERSION, H_ENTITY, H_TIME, H_OP, H_KIND, H__COUNT };
static const char *const hdr_names[H__COUNT] = {WB_HDR_VERSION, WB_HDR_ENTITY, WB_HDR_TIME_US,
                                                WB_HDR_OP, WB_HDR_KIND};

/* Room for a quoted, escaped excerpt of a bad value in an error message. */
#define QUOTE_MAX 72

static const char *quote(char *buf, size_t size, const void *p, size_t len)
{
    wb_escape(buf, size, p, len, WB_ESC_QUOTE | WB_ESC_HIGH);
    return buf;
}

static int bytes_eq(const void *p, size_t len, const char *s)
{
    size_t n = strlen(s);

    return len == n && (n == 0 || memcmp(p, s, n) == 0);
}

/* Returns NULL if key is acceptable, else what is wrong with it. */
static const char *key_problem(const void *key, size_t keylen, char *buf, size_t size)
{
    if (!key) return "null key";
    if (keylen == 0) return "empty key";
    if (keylen > WB_EVENT_KEY_MAX) {
        snprintf(buf, size, "key longer than %d bytes (%zu)", WB_EVENT_KEY_MAX, keylen);
        return buf;
    }
    return NULL;
}

/* Returns NULL if the entity name is acceptable, else what is wrong with it. */
static const char *entity_problem(const char *p, size_t len, char *buf, size_t size)
{
    size_t i;

    if (!p || len == 0) return "empty";
    if (len > WB_EVENT_ENTITY_MAX) {
        snprintf(buf, size, "longer than %d bytes (%zu)", WB_EVENT_ENTITY_MAX, len);
        return buf;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            char q[8]; /* one escaped byte: at most "\\xHH" */

            snprintf(buf, size, "invalid character '%s' at offset %zu (allowed: A-Z a-z 0-9 _)",
                     quote(q, sizeof(q), &c, 1), i);
            return buf;
        }
    }
    return NULL;
}

wb_err_t wb_event_validate(const wb_event_t *ev, char *errstr, size_t errstr_size)
{
    char why[128];
    const char *problem;

    if (!ev) {
        wb_set_err(errstr, errstr_size, "event is NULL");
        return WB_ERR_INVALID_ARG;
    }
    if ((problem = key_problem(ev->key, ev->keylen, why, sizeof(why)))) {
        wb_set_err(errstr, errstr_size, "%s", problem);
        return WB_ERR_INVALID_ARG;
    }
    if ((problem = entity_problem(ev->entity, ev->entitylen, why, sizeof(why)))) {
        wb_set_err(errstr, errstr_size, "entity: %s", problem);
        return WB_ERR_INVALID_ARG;
    }
    if (!ev->value && ev->valuelen) {
        wb_set_err(errstr, errstr_size, "value is NULL but valuelen is %zu", ev->valuelen);
        return WB_ERR_INVALID_ARG;
    }
    if (ev->time_us < 0) {
        wb_set_err(errstr, errstr_size, "time_us is negative (%" PRId64 ")", ev->time_us);
        return WB_ERR_INVALID_ARG;
    }
    switch (ev->kind) {
    case WB_EVENT_CHANGE:
        if (ev->version < 1) {
            wb_set_err(errstr, errstr_size, "version must be > 0 (got %" PRId64 ")", ev->version);
            return WB_ERR_INVALID_ARG;
        }
        if (ev->version > WB_EVENT_VERSION_MAX) {
            wb_set_err(errstr, errstr_size,
                       "version out of range (max %" PRId64 ", got %" PRId64 ")",
                       WB_EVENT_VERSION_MAX, ev->version);
            return WB_ERR_INVALID_ARG;
        }
        if (ev->is_delete && ev->value) {
            wb_set_err(errstr, errstr_size, "a delete must have a NULL value");
            return WB_ERR_INVALID_ARG;
        }
        if (!ev->is_delete && !ev->value) {
            wb_set_err(errstr, errstr_size,
                       "a put needs a non-NULL value (an empty value is a non-NULL pointer "
                       "with valuelen 0)");
            return WB_ERR_INVALID_ARG;
        }
        return WB_OK;
    case WB_EVENT_REFRESH:
        if (ev->version < 0 || ev->version > WB_EVENT_VERSION_MAX) {
            wb_set_err(errstr, errstr_size,
                       "version out of range (0..%" PRId64 ", got %" PRId64 ")",
                       WB_EVENT_VERSION_MAX, ev->version);
            return WB_ERR_INVALID_ARG;
        }
        if (ev->is_delete || ev->valuelen) {
            wb_set_err(errstr, errstr_size, "a refresh request carries no value and no delete");
            return WB_ERR_INVALID_ARG;
        }
        return WB_OK;
    }
    wb_set_err(errstr, errstr_size, "unknown event kind %d", (int)ev->kind);
    return WB_ERR_INVALID_ARG;
}

/* Appends a header, formatting a number into scratch if num >= 0. */
static int put_hdr(wb_header_t *hdrs, size_t nmax, size_t *n, const char *name, const void *value,
                   size_t len, int64_t num, char *scratch, size_t scratch_size, size_t *used)
{
    if (*n >= nmax) return -1;
    if (num >= 0) {
        int w;

        if (!scratch || *used >= scratch_size) return -1;
        w = snprintf(scratch + *used, scratch_size - *used, "%" PRId64, num);
        if (w < 0 || (size_t)w >= scratch_size - *used) return -1;
        value = scratch + *used;
        len = (size_t)w;
        *used += (size_t)w + 1;
    }
    hdrs[*n].name = name;
    hdrs[*n].value = value;
    hdrs[*n].len = len;
    (*n)++;
    return 0;
}

wb_err_t wb_event_encode_headers(const wb_event_t *ev, wb_header_t *hdrs, size_t nhdrs_max,
                                 size_t *nhdrs, char *scratch, size_t scratch_size)
{
    size_t n = 0, used = 0;
    int rc = 0;

    if (!hdrs || !nhdrs || wb_event_validate(ev, NULL, 0) != WB_OK) return WB_ERR_INVALID_ARG;
    if (ev->kind == WB_EVENT_CHANGE) {
        const char *op = ev->is_delete ? "del" : "put";

        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_VERSION, NULL, 0, ev->version, scratch,
                      scratch_size, &used);
        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_ENTITY, ev->entity, ev->entitylen, -1, NULL, 0,
                      &used);
        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_TIME_US, NULL, 0, ev->time_us, scratch,
                      scratch_size, &used);
        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_OP, op, 3, -1, NULL, 0, &used);
    } else {
        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_KIND, "refresh", 7, -1, NULL, 0, &used);
        rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_ENTITY, ev->entity, ev->entitylen, -1, NULL, 0,
                      &used);
        /* Optional for a refresh: 0 means "not known" and is not sent. */
        if (ev->version > 0)
            rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_VERSION, NULL, 0, ev->version, scratch,
                          scratch_size, &used);
        if (ev->time_us > 0)
            rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_TIME_US, NULL, 0, ev->time_us, scratch,
                          scratch_size, &used);
    }
    if (rc) return WB_ERR_INVALID_ARG;
    *nhdrs = n;
    return WB_OK;
}

/* Parses a numeric header; positive demands > 0, else >= 0; above max is
 * out of range. */
static wb_err_t parse_num(const wb_header_t *h, int positive, int64_t max, int64_t *out,
                          char *errstr, size_t errstr_size)
{
    char q[QUOTE_MAX];
    int rc = wb_parse_i64(h->value, h->len, out);

    if (rc == 0 && *out > max) rc = WB_PARSE_RANGE;
    if (rc == WB_PARSE_ZEROPAD) {
        wb_set_err(errstr, errstr_size, "header %s: leading zero: \"%s\"", h->name,
                   quote(q, sizeof(q), h->value, h->len));
        return WB_ERR_DECODE;
    }
    if (rc == WB_PARSE_RANGE) {
        wb_set_err(errstr, errstr_size, "header %s: out of range (max %" PRId64 "): \"%s\"",
                   h->name, max, quote(q, sizeof(q), h->value, h->len));
        return WB_ERR_DECODE;
    }
    if (rc != 0 || (positive && *out == 0)) {
        wb_set_err(errstr, errstr_size, "header %s: not a %sdecimal integer: \"%s\"", h->name,
                   positive ? "positive " : "non-negative ", quote(q, sizeof(q), h->value, h->len));
        return WB_ERR_DECODE;
    }
    return WB_OK;
}

static wb_err_t decode(const void *key, size_t keylen, const void *value, size_t valuelen,
                       const wb_header_t *hdrs, size_t nhdrs, wb_event_kind_t want, wb_event_t *ev,
                       char *errstr, size_t errstr_size)
{
    const wb_header_t *found[H__COUNT] = {NULL};
    wb_event_kind_t kind = WB_EVENT_CHANGE;
    char why[128], q[QUOTE_MAX];
    const char *problem;
    size_t i;
    int j;

    if (!ev) {
        wb_set_err(errstr, errstr_size, "ev is NULL");
        return WB_ERR_INVALID_ARG;
    }
    memset(ev, 0, sizeof(*ev));
    if ((!value && valuelen) || (!hdrs && nhdrs) || (!key && keylen)) {
        wb_set_err(errstr, errstr_size, "NULL pointer with a non-zero length");
        return WB_ERR_INVALID_ARG;
    }
    if ((problem = key_problem(key, keylen, why, sizeof(why)))) {
        wb_set_err(errstr, errstr_size, "%s", problem);
        return WB_ERR_DECODE;
    }

    for (i = 0; i < nhdrs; i++) {
        if (!hdrs[i].name) continue;
        for (j = 0; j < H__COUNT; j++)
            if (!strcmp(hdrs[i].name, hdr_names[j])) break;
        if (j == H__COUNT) continue;
        if (found[j]) {
            wb_set_err(errstr, errstr_size, "duplicate header %s", hdr_names[j]);
            return WB_ERR_DECODE;
        }
        if (!hdrs[i].value) {
            wb_set_err(errstr, errstr_size, "header %s is null", hdr_names[j]);
            return WB_ERR_DECODE;
        }
        found[j] = &hdrs[i];
    }

    if (found[H_KIND]) {
        const wb_header_t *h = found[H_KIND];

        if (bytes_eq(h->value, h->len, "refresh")) {
            kind = WB_EVENT_REFRESH;
        } else if (!bytes_eq(h->value, h->len, "change")) {
            wb_set_err(errstr, errstr_size,
                       "header wb-kind: expected \"change\" or \"refresh\", got \"%s\"",
                       quote(q, sizeof(q), h->value, h->len));
            return WB_ERR_DECODE;
        }
    }
    if (kind != want) {
        if (want == WB_EVENT_CHANGE)
            wb_set_err(errstr, errstr_size,
                       "header wb-kind is \"refresh\": a refresh request, not a change event");
        else if (found[H_KIND])
            wb_set_err(errstr, errstr_size,
                       "header wb-kind is \"change\": a change event, not a refresh request");
        else
            wb_set_err(errstr, errstr_size, "missing header wb-kind");
        return WB_ERR_DECODE;
    }

    if (kind == WB_EVENT_CHANGE) {
        for (j = 0; j < H__COUNT; j++) {
            if (j != H_KIND && !found[j]) {
                wb_set_err(errstr, errstr_size, "missing header %s", hdr_names[j]);
                return WB_ERR_DECODE;
            }
        }
    } else if (!found[H_ENTITY]) {
        wb_set_err(errstr, errstr_size, "missing header wb-entity");
        return WB_ERR_DECODE;
    }

    if (found[H_VERSION] &&
        parse_num(found[H_VERSION], 1, WB_EVENT_VERSION_MAX, &ev->version, errstr, errstr_size))
        goto fail;
    if ((problem =
             entity_problem(found[H_ENTITY]->value, found[H_ENTITY]->len, why, sizeof(why)))) {
        wb_set_err(errstr, errstr_size, "header wb-entity: %s", problem);
        goto fail;
    }
    if (found[H_TIME] && parse_num(found[H_TIME], 0, INT64_MAX, &ev->time_us, errstr, errstr_size))
        goto fail;

    if (kind == WB_EVENT_CHANGE) {
        const wb_header_t *op = found[H_OP];

        if (bytes_eq(op->value, op->len, "del")) {
            if (value) {
                wb_set_err(errstr, errstr_size,
                           "header wb-op is \"del\" but the message has a value (%zu bytes)",
                           valuelen);
                goto fail;
            }
            ev->is_delete = 1;
        } else if (bytes_eq(op->value, op->len, "put")) {
            if (!value) {
                wb_set_err(errstr, errstr_size,
                           "header wb-op is \"put\" but the message value is null (a tombstone)");
                goto fail;
            }
            ev->value = value;
            ev->valuelen = valuelen;
        } else {
            wb_set_err(errstr, errstr_size, "header wb-op: expected \"put\" or \"del\", got \"%s\"",
                       quote(q, sizeof(q), op->value, op->len));
            goto fail;
        }
    } else if (valuelen > 0) {
        wb_set_err(errstr, errstr_size, "a refresh request has a value (%zu bytes)", valuelen);
        goto fail;
    }

    ev->key = key;
    ev->keylen = keylen;
    ev->entity = found[H_ENTITY]->value;
    ev->entitylen = found[H_ENTITY]->len;
    ev->kind = kind;
    return WB_OK;

fail:
    memset(ev, 0, sizeof(*ev));
    return WB_ERR_DECODE;
}

wb_err_t wb_event_decode(const void *key, size_t keylen, const void *value, size_t valuelen,
                         const wb_header_t *hdrs, size_t nhdrs, wb_event_t *ev, char *errstr,
                         size_t errstr_size)
{
    return decode(key, keylen, value, valuelen, hdrs, nhdrs, WB_EVENT_CHANGE, ev, errstr,
                  errstr_size);
}

wb_err_t wb_event_decode_refresh(const void *key, size_t keylen, const void *value, size_t valuelen,
                                 const wb_header_t *hdrs, size_t nhdrs, wb_event_t *ev,
                                 char *errstr, size_t errstr_size)
{
    return decode(key, keylen, value, valuelen, hdrs, nhdrs, WB_EVENT_REFRESH, ev, errstr,
                  errstr_size);
}

wb_err_t wb_event_encode_dlq_headers(const char *reason, const char *topic, int32_t partition,
                                     int64_t offset, wb_header_t *hdrs, size_t nhdrs_max,
                                     size_t *nhdrs, char *scratch, size_t scratch_size)
{
    size_t n = 0, used = 0;
    int rc = 0;

    if (!reason || !topic || partition < 0 || offset < 0 || !hdrs || !nhdrs)
        return WB_ERR_INVALID_ARG;
    rc |=
        put_hdr(hdrs, nhdrs_max, &n, WB_HDR_DLQ_REASON, reason, strlen(reason), -1, NULL, 0, &used);
    rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_DLQ_TOPIC, topic, strlen(topic), -1, NULL, 0, &used);
    rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_DLQ_PARTITION, NULL, 0, partition, scratch,
                  scratch_size, &used);
    rc |= put_hdr(hdrs, nhdrs_max, &n, WB_HDR_DLQ_OFFSET, NULL, 0, offset, scratch, scratch_size,
                  &used);
    if (rc) return WB_ERR_INVALID_ARG;
    *nhdrs = n;
    return WB_OK;
}

const char *wb_event_entity_cstr(const wb_event_t *ev, char *buf, size_t size)
{
    if (!ev || !buf || !ev->entity || ev->entitylen >= size) return NULL;
    memcpy(buf, ev->entity, ev->entitylen);
    buf[ev->entitylen] = '\0';
    return buf;
}

/* ---- librdkafka adapters ---- */

wb_err_t wb_event_add_rd_headers(rd_kafka_headers_t *rd_hdrs, const wb_header_t *hdrs, size_t n)
{
    size_t i;

    if (!rd_hdrs || (!hdrs && n)) return WB_ERR_INVALID_ARG;
    for (i = 0; i < n; i++) {
        /* A NULL value stays a Kafka null header (size 0). */
        if (rd_kafka_header_add(rd_hdrs, hdrs[i].name, -1, hdrs[i].value,
                                hdrs[i].value ? (ssize_t)hdrs[i].len : 0))
            return WB_ERR_KAFKA;
    }
    return WB_OK;
}

wb_err_t wb_event_to_rd_headers(const wb_event_t *ev, rd_kafka_headers_t **out)
{
    wb_header_t hdrs[WB_EVENT_NHDRS];
    char scratch[WB_EVENT_SCRATCH];
    rd_kafka_headers_t *rd_hdrs = NULL;
    size_t n;
    wb_err_t err;

    if (!out) return WB_ERR_INVALID_ARG;
    *out = NULL;
    err = wb_event_encode_headers(ev, hdrs, WB_EVENT_NHDRS, &n, scratch, sizeof(scratch));
    if (err) return err;
    rd_hdrs = rd_kafka_headers_new(n);
    if (!rd_hdrs) return WB_ERR_NOMEM;
    err = wb_event_add_rd_headers(rd_hdrs, hdrs, n);
    if (err) {
        rd_kafka_headers_destroy(rd_hdrs);
        return err;
    }
    *out = rd_hdrs;
    return WB_OK;
}

static wb_err_t from_message(const rd_kafka_message_t *msg, wb_event_kind_t want, wb_event_t *ev,
                             char *errstr, size_t errstr_size)
{
    wb_header_t stack[16], *hdrs = stack;
    rd_kafka_headers_t *rd_hdrs = NULL;
    rd_kafka_resp_err_t rerr;
    size_t n = 0, i;
    wb_err_t err;

    if (!msg || !ev) {
        wb_set_err(errstr, errstr_size, "msg or ev is NULL");
        return WB_ERR_INVALID_ARG;
    }
    memset(ev, 0, sizeof(*ev));
    if (msg->err) {
        wb_set_err(errstr, errstr_size, "message carries an error: %s",
                   rd_kafka_message_errstr(msg));
        return WB_ERR_KAFKA;
    }
    rerr = rd_kafka_message_headers(msg, &rd_hdrs);
    if (rerr == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = rd_kafka_header_cnt(rd_hdrs);
    } else if (rerr != RD_KAFKA_RESP_ERR__NOENT) {
        wb_set_err(errstr, errstr_size, "cannot parse message headers: %s", rd_kafka_err2str(rerr));
        return WB_ERR_KAFKA;
    }
    if (n > sizeof(stack) / sizeof(stack[0])) {
        hdrs = calloc(n, sizeof(*hdrs));
        if (!hdrs) {
            wb_set_err(errstr, errstr_size, "out of memory for %zu headers", n);
            return WB_ERR_NOMEM;
        }
    }
    for (i = 0; i < n; i++) {
        if (rd_kafka_header_get_all(rd_hdrs, i, &hdrs[i].name, &hdrs[i].value, &hdrs[i].len)) {
            n = i;
            break;
        }
        if (!hdrs[i].value) hdrs[i].len = 0;
    }
    /* librdkafka: payload NULL = Kafka null value; payload set, len 0 = "". */
    err = decode(msg->key, msg->key ? msg->key_len : 0, msg->payload, msg->payload ? msg->len : 0,
                 hdrs, n, want, ev, errstr, errstr_size);
    if (hdrs != stack) free(hdrs);
    return err;
}

wb_err_t wb_event_from_message(const rd_kafka_message_t *msg, wb_event_t *ev, char *errstr,
                               size_t errstr_size)
{
    return from_message(msg, WB_EVENT_CHANGE, ev, errstr, errstr_size);
}

wb_err_t wb_event_refresh_from_message(const rd_kafka_message_t *msg, wb_event_t *ev, char *errstr,
                                       size_t errstr_size)
{
    return from_message(msg, WB_EVENT_REFRESH, ev, errstr, errstr_size);
}
