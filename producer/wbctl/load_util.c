/* load_util.c — the pure parts of `wbctl load`: option parsing, key sampling, values, latency
 * histogram. */
#include "load_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_rand.h"
#include "wb_util.h"

int wbl_parse_mix(const char *s, wbl_mix_t *mix, char *err, size_t err_size)
{
    int seen[4] = {0, 0, 0, 0}, *slot[4] = {&mix->put, &mix->get, &mix->del, &mix->through};
    static const char *const names[4] = {"put", "get", "del", "through"};
    const char *p = s;

    memset(mix, 0, sizeof(*mix));
    if (!s || !*s) {
        wb_set_err(err, err_size, "--mix: empty");
        return -1;
    }
    while (*p) {
        const char *eq = strchr(p, '=');
        char *end;
        long v;
        int i;

        for (i = 0; i < 4; i++)
            if (eq && (size_t)(eq - p) == strlen(names[i]) &&
                !strncmp(p, names[i], strlen(names[i])))
                break;
        if (i == 4) {
            wb_set_err(err, err_size, "--mix: expected put=N, get=N, del=N or through=N at \"%s\"",
                       p);
            return -1;
        }
        if (seen[i]++) {
            wb_set_err(err, err_size, "--mix: %s given twice", names[i]);
            return -1;
        }
        errno = 0;
        v = strtol(eq + 1, &end, 10);
        if (errno || end == eq + 1 || v < 0 || v > 100 || (*end && *end != ',')) {
            wb_set_err(err, err_size, "--mix: %s needs a percentage 0..100", names[i]);
            return -1;
        }
        *slot[i] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (mix->put + mix->get + mix->del + mix->through != 100) {
        wb_set_err(err, err_size, "--mix: percentages add up to %d, not 100",
                   mix->put + mix->get + mix->del + mix->through);
        return -1;
    }
    return 0;
}

wbl_op_t wbl_mix_pick(const wbl_mix_t *mix, unsigned r)
{
    if (r < (unsigned)mix->put) return WBL_PUT;
    if (r < (unsigned)(mix->put + mix->get)) return WBL_GET;
    if (r < (unsigned)(mix->put + mix->get + mix->del)) return WBL_DEL;
    return WBL_THROUGH;
}

int wbl_parse_dist(const char *s, wbl_dist_t *dist, char *err, size_t err_size)
{
    char *end;

    memset(dist, 0, sizeof(*dist));
    if (s && strcmp(s, "uniform") == 0) return 0;
    if (s && strncmp(s, "zipf:", 5) == 0) {
        errno = 0;
        dist->s = strtod(s + 5, &end);
        if (!errno && end != s + 5 && !*end && dist->s > 0 && dist->s <= 10) {
            dist->zipf = 1;
            return 0;
        }
    }
    wb_set_err(err, err_size, "--dist: expected uniform or zipf:S with 0 < S <= 10, got \"%s\"",
               s ? s : "");
    return -1;
}

int wbl_parse_count(const char *s, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    uint64_t mult = 1;
    char *end;

    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno) return -1;
    if (*end == 'k' || *end == 'K')
        mult = 1000, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1000000, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1000000000, end++;
    if (*end || v == 0 || v > max / mult) return -1;
    *out = (uint64_t)v * mult;
    return 0;
}

struct wbl_zipf_s {
    double *cdf;
    uint64_t n;
};

wbl_zipf_t *wbl_zipf_new(uint64_t n, double s)
{
    wbl_zipf_t *z;
    double sum = 0;

    if (n == 0 || !(z = calloc(1, sizeof(*z)))) return NULL;
    z->cdf = malloc(n * sizeof(double));
    if (!z->cdf) {
        free(z);
        return NULL;
    }
    z->n = n;
    for (uint64_t k = 0; k < n; k++) {
        sum += 1.0 / pow((double)(k + 1), s);
        z->cdf[k] = sum;
    }
    for (uint64_t k = 0; k < n; k++)
        z->cdf[k] /= sum;
    z->cdf[n - 1] = 1.0; /* no rounding gap at the top */
    return z;
}

uint64_t wbl_zipf_sample(const wbl_zipf_t *z, double u)
{
    uint64_t lo = 0, hi = z->n - 1;

    /* First rank whose cumulative probability exceeds u. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;

        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void wbl_zipf_destroy(wbl_zipf_t *z)
{
    if (!z) return;
    free(z->cdf);
    free(z);
}

size_t wbl_value(char *buf, size_t size, wb_value_type_t vt, uint64_t k, uint64_t seq)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t st = k * 0x9E3779B97F4A7C15ULL ^ seq;
    size_t n, i;

    if (vt == WB_VT_BYTEA) {
        for (i = 0; i < size; i++)
            buf[i] = (char)(wb_rand_next(&st) & 0xff);
        return size;
    }
    if (vt == WB_VT_TEXT) {
        for (i = 0; i < size; i++)
            buf[i] = alnum[wb_rand_next(&st) % 36];
        return size;
    }
    /* jsonb, canonical: keys of equal length in byte order, ", " and ": ". */
    n = (size_t)snprintf(buf, 64, "{\"k\": %llu, \"p\": \"", (unsigned long long)k);
    {
        char tail[40];
        size_t tl =
            (size_t)snprintf(tail, sizeof(tail), "\", \"s\": %llu}", (unsigned long long)seq);
        size_t pad = size > n + tl ? size - n - tl : 0;

        for (i = 0; i < pad; i++)
            buf[n++] = alnum[wb_rand_next(&st) % 36];
        memcpy(buf + n, tail, tl);
        n += tl;
    }
    return n;
}

void wbl_hex(char *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * len] = '\0';
}

static size_t hist_index(uint64_t ns)
{
    int e;

    if (ns < 64) return (size_t)ns;
    e = 63 - __builtin_clzll(ns);
    if (e > 50) return WBL_HIST_BUCKETS - 1;
    return 64 + (size_t)(e - 6) * 32 + (size_t)((ns >> (e - 5)) & 31);
}

/* Middle of bucket i. */
static uint64_t hist_value(size_t i)
{
    size_t e, sub;

    if (i < 64) return i;
    e = 6 + (i - 64) / 32;
    sub = (i - 64) % 32;
    return ((32 + (uint64_t)sub) << (e - 5)) + ((uint64_t)1 << (e - 5)) / 2;
}

void wbl_hist_add(wbl_hist_t *h, uint64_t ns)
{
    h->counts[hist_index(ns)]++;
    h->n++;
    if (ns > h->max) h->max = ns;
}

void wbl_hist_merge(wbl_hist_t *dst, const wbl_hist_t *src)
{
    for (size_t i = 0; i < WBL_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t wbl_hist_quantile(const wbl_hist_t *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->n == 0) return 0;
    rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1) rank = 1;
    if (rank >= h->n) return h->max; /* the largest sample is known exactly */
    for (size_t i = 0; i < WBL_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);

            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
