/* wb_metrics.c — metric registry and Prometheus text exposition (format 0.0.4).
 *
 * Hot-path updates touch only C11 atomics; the registry mutex guards the
 * family and child lists, which only registration, child lookup and render
 * walk. Children are never freed before the registry, so a pointer handed out
 * stays valid without reference counting.
 */
#include "wb_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum wb_mtype_e { WB_MT_COUNTER, WB_MT_GAUGE, WB_MT_HISTOGRAM } wb_mtype_t;

struct wb_counter_s {
    _Atomic uint64_t value;
};

/* A double kept as its bit pattern: C11 has no portable atomic double. */
struct wb_gauge_s {
    _Atomic uint64_t bits;
};

struct wb_histogram_s {
    const double *bounds; /* the family's; nbounds upper bounds, +Inf implicit */
    size_t nbounds;
    _Atomic uint64_t sum_bits;
    /* nbounds + 1 per-bucket (not cumulative) counts, the last one for +Inf;
     * render cumulates them, so _count always equals the +Inf bucket. */
    _Atomic uint64_t *counts;
};

typedef struct wb_child_s {
    struct wb_child_s *next;
    char *values[WB_METRICS_MAX_LABELS];
    char *labels; /* escaped name="value" pairs joined by ',' ("" without labels) */
    union {
        wb_counter_t counter;
        wb_gauge_t gauge;
        wb_histogram_t histogram;
    } u;
} wb_child_t;

struct wb_metric_family_s {
    struct wb_metric_family_s *next;
    wb_metrics_t *reg;
    wb_mtype_t type;
    char *name;
    char *help;
    size_t nlabels;
    char *label_names[WB_METRICS_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    wb_child_t *children;
    wb_child_t **children_tail;
};

struct wb_metrics_s {
    pthread_mutex_t lock;        /* families, their children, the collect hook */
    pthread_mutex_t render_lock; /* one render (and collect hook) at a time */
    wb_metric_family_t *families;
    wb_metric_family_t **families_tail;
    wb_metrics_collect_cb *collect_cb;
    void *collect_opaque;
};

static uint64_t dbl2bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits2dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* CAS loop: there is no atomic floating-point add in C11. */
static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    uint64_t next;
    do {
        next = dbl2bits(bits2dbl(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(bits, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void wb_counter_add(wb_counter_t *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void wb_gauge_set(wb_gauge_t *g, double v)
{
    if (g) atomic_store_explicit(&g->bits, dbl2bits(v), memory_order_relaxed);
}

void wb_gauge_add(wb_gauge_t *g, double delta)
{
    if (g) atomic_add_double(&g->bits, delta);
}

void wb_histogram_observe(wb_histogram_t *h, double v)
{
    size_t lo = 0, hi;

    if (!h || isnan(v)) return;
    /* Binary search for the first bound >= v ("le" semantics). */
    hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t wb_counter_value(const wb_counter_t *c)
{
    return c ? atomic_load_explicit(&((wb_counter_t *)c)->value, memory_order_relaxed) : 0;
}

double wb_gauge_value(const wb_gauge_t *g)
{
    return g ? bits2dbl(atomic_load_explicit(&((wb_gauge_t *)g)->bits, memory_order_relaxed)) : 0.0;
}

wb_metrics_t *wb_metrics_new(void)
{
    wb_metrics_t *reg = calloc(1, sizeof(*reg));

    if (!reg) return NULL;
    pthread_mutex_init(&reg->lock, NULL);
    pthread_mutex_init(&reg->render_lock, NULL);
    reg->families_tail = &reg->families;
    return reg;
}

static void child_free(wb_child_t *child, wb_mtype_t type)
{
    size_t i;

    if (!child) return;
    for (i = 0; i < WB_METRICS_MAX_LABELS; i++)
        free(child->values[i]);
    free(child->labels);
    if (type == WB_MT_HISTOGRAM) free(child->u.histogram.counts);
    free(child);
}

static void family_free(wb_metric_family_t *fam)
{
    wb_child_t *child, *next;
    size_t i;

    if (!fam) return;
    for (child = fam->children; child; child = next) {
        next = child->next;
        child_free(child, fam->type);
    }
    for (i = 0; i < WB_METRICS_MAX_LABELS; i++)
        free(fam->label_names[i]);
    free(fam->name);
    free(fam->help);
    free(fam->bounds);
    free(fam);
}

void wb_metrics_destroy(wb_metrics_t *reg)
{
    wb_metric_family_t *fam, *next;

    if (!reg) return;
    for (fam = reg->families; fam; fam = next) {
        next = fam->next;
        family_free(fam);
    }
    pthread_mutex_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->render_lock);
    free(reg);
}

void wb_metrics_set_collect_cb(wb_metrics_t *reg, wb_metrics_collect_cb *cb, void *opaque)
{
    if (!reg) return;
    pthread_mutex_lock(&reg->lock);
    reg->collect_cb = cb;
    reg->collect_opaque = opaque;
    pthread_mutex_unlock(&reg->lock);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; labels drop the ':'. */
static int name_valid(const char *s, int allow_colon)
{
    size_t i;

    if (!s || !*s) return 0;
    for (i = 0; s[i]; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                 (allow_colon && ch == ':') || (i > 0 && ch >= '0' && ch <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static void escape_into(char *dst, const char *src, int quote)
{
    for (; *src; src++) {
        if (*src == '\\') {
            *dst++ = '\\';
            *dst++ = '\\';
        } else if (*src == '\n') {
            *dst++ = '\\';
            *dst++ = 'n';
        } else if (quote && *src == '"') {
            *dst++ = '\\';
            *dst++ = '"';
        } else {
            *dst++ = *src;
        }
    }
    *dst = '\0';
}

/* Builds the escaped label pairs of a child once, so render only copies them. */
static char *labels_build(const wb_metric_family_t *fam, char *const *values)
{
    size_t need = 1, i;
    char *out, *p;

    for (i = 0; i < fam->nlabels; i++)
        need += strlen(fam->label_names[i]) + 2 * strlen(values[i]) + 4; /* ="",  */
    out = malloc(need);
    if (!out) return NULL;
    p = out;
    *p = '\0';
    for (i = 0; i < fam->nlabels; i++) {
        if (i > 0) *p++ = ',';
        p += sprintf(p, "%s=\"", fam->label_names[i]);
        escape_into(p, values[i], 1);
        p += strlen(p);
        *p++ = '"';
        *p = '\0';
    }
    return out;
}

/* Creates and appends a child; the caller holds reg->lock. */
static wb_child_t *child_create(wb_metric_family_t *fam, char *const *values)
{
    wb_child_t *child = calloc(1, sizeof(*child));
    size_t i;

    if (!child) return NULL;
    for (i = 0; i < fam->nlabels; i++) {
        child->values[i] = strdup(values[i]);
        if (!child->values[i]) goto fail;
    }
    child->labels = labels_build(fam, child->values);
    if (!child->labels) goto fail;
    switch (fam->type) {
    case WB_MT_COUNTER:
        atomic_init(&child->u.counter.value, 0);
        break;
    case WB_MT_GAUGE:
        atomic_init(&child->u.gauge.bits, dbl2bits(0.0));
        break;
    case WB_MT_HISTOGRAM:
        child->u.histogram.bounds = fam->bounds;
        child->u.histogram.nbounds = fam->nbounds;
        atomic_init(&child->u.histogram.sum_bits, dbl2bits(0.0));
        child->u.histogram.counts = calloc(fam->nbounds + 1, sizeof(_Atomic uint64_t));
        if (!child->u.histogram.counts) goto fail;
        for (i = 0; i <= fam->nbounds; i++)
            atomic_init(&child->u.histogram.counts[i], 0);
        break;
    }
    *fam->children_tail = child;
    fam->children_tail = &child->next;
    return child;

fail:
    child_free(child, fam->type);
    return NULL;
}

static wb_metric_family_t *family_register(wb_metrics_t *reg, wb_mtype_t type, const char *name,
                                           const char *help, const double *buckets, size_t nbuckets,
                                           va_list ap)
{
    wb_metric_family_t *fam = NULL, *it;
    const char *label;
    size_t i, j;

    if (!reg || !name_valid(name, 1)) return NULL;
    if (type == WB_MT_HISTOGRAM && nbuckets > 0 && !buckets) return NULL;

    fam = calloc(1, sizeof(*fam));
    if (!fam) return NULL;
    fam->reg = reg;
    fam->type = type;
    fam->children_tail = &fam->children;
    fam->name = strdup(name);
    fam->help = strdup(help ? help : "");
    if (!fam->name || !fam->help) goto fail;

    while ((label = va_arg(ap, const char *)) != NULL) {
        if (fam->nlabels == WB_METRICS_MAX_LABELS) goto fail;
        /* "__" is reserved for Prometheus itself; "le" is the bucket label. */
        if (!name_valid(label, 0) || strncmp(label, "__", 2) == 0) goto fail;
        if (type == WB_MT_HISTOGRAM && strcmp(label, "le") == 0) goto fail;
        for (j = 0; j < fam->nlabels; j++)
            if (strcmp(fam->label_names[j], label) == 0) goto fail;
        fam->label_names[fam->nlabels] = strdup(label);
        if (!fam->label_names[fam->nlabels]) goto fail;
        fam->nlabels++;
    }

    if (type == WB_MT_HISTOGRAM) {
        /* +Inf is always rendered, so a caller's trailing +Inf is redundant. */
        if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0) nbuckets--;
        for (i = 0; i < nbuckets; i++) {
            if (isnan(buckets[i]) || (isinf(buckets[i]) && buckets[i] > 0)) goto fail;
            if (i > 0 && !(buckets[i] > buckets[i - 1])) goto fail;
        }
        if (nbuckets > 0) {
            fam->bounds = malloc(nbuckets * sizeof(double));
            if (!fam->bounds) goto fail;
            memcpy(fam->bounds, buckets, nbuckets * sizeof(double));
        }
        fam->nbounds = nbuckets;
    }

    pthread_mutex_lock(&reg->lock);
    for (it = reg->families; it; it = it->next) {
        if (strcmp(it->name, name) == 0) {
            pthread_mutex_unlock(&reg->lock);
            goto fail;
        }
    }
    /* An unlabelled metric exists from the start, so it renders as 0 before
     * the first event instead of being absent. */
    if (fam->nlabels == 0 && !child_create(fam, NULL)) {
        pthread_mutex_unlock(&reg->lock);
        goto fail;
    }
    *reg->families_tail = fam;
    reg->families_tail = &fam->next;
    pthread_mutex_unlock(&reg->lock);
    return fam;

fail:
    family_free(fam);
    return NULL;
}

wb_metric_family_t *wb_metrics_counter(wb_metrics_t *reg, const char *name, const char *help, ...)
{
    wb_metric_family_t *fam;
    va_list ap;

    va_start(ap, help);
    fam = family_register(reg, WB_MT_COUNTER, name, help, NULL, 0, ap);
    va_end(ap);
    return fam;
}

wb_metric_family_t *wb_metrics_gauge(wb_metrics_t *reg, const char *name, const char *help, ...)
{
    wb_metric_family_t *fam;
    va_list ap;

    va_start(ap, help);
    fam = family_register(reg, WB_MT_GAUGE, name, help, NULL, 0, ap);
    va_end(ap);
    return fam;
}

wb_metric_family_t *wb_metrics_histogram(wb_metrics_t *reg, const char *name, const char *help,
                                         const double *buckets, size_t nbuckets, ...)
{
    wb_metric_family_t *fam;
    va_list ap;

    va_start(ap, nbuckets);
    fam = family_register(reg, WB_MT_HISTOGRAM, name, help, buckets, nbuckets, ap);
    va_end(ap);
    return fam;
}

static wb_child_t *child_get(wb_metric_family_t *fam, wb_mtype_t type, va_list ap)
{
    char *values[WB_METRICS_MAX_LABELS + 1];
    const char *v;
    size_t n = 0, i;
    wb_child_t *child;

    if (!fam || fam->type != type) return NULL;
    while ((v = va_arg(ap, const char *)) != NULL) {
        if (n == WB_METRICS_MAX_LABELS) return NULL;
        values[n++] = (char *)v;
    }
    if (n != fam->nlabels) return NULL;

    pthread_mutex_lock(&fam->reg->lock);
    for (child = fam->children; child; child = child->next) {
        for (i = 0; i < n; i++)
            if (strcmp(child->values[i], values[i]) != 0) break;
        if (i == n) break;
    }
    if (!child) child = child_create(fam, values);
    pthread_mutex_unlock(&fam->reg->lock);
    return child;
}

wb_counter_t *wb_metrics_counter_with(wb_metric_family_t *fam, ...)
{
    wb_child_t *child;
    va_list ap;

    va_start(ap, fam);
    child = child_get(fam, WB_MT_COUNTER, ap);
    va_end(ap);
    return child ? &child->u.counter : NULL;
}

wb_gauge_t *wb_metrics_gauge_with(wb_metric_family_t *fam, ...)
{
    wb_child_t *child;
    va_list ap;

    va_start(ap, fam);
    child = child_get(fam, WB_MT_GAUGE, ap);
    va_end(ap);
    return child ? &child->u.gauge : NULL;
}

wb_histogram_t *wb_metrics_histogram_with(wb_metric_family_t *fam, ...)
{
    wb_child_t *child;
    va_list ap;

    va_start(ap, fam);
    child = child_get(fam, WB_MT_HISTOGRAM, ap);
    va_end(ap);
    return child ? &child->u.histogram : NULL;
}

/* Growable output buffer; after the first allocation failure every append is
 * a no-op and render reports WB_ERR_NOMEM once at the end. */
typedef struct wb_sbuf_s {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} wb_sbuf_t;

static int sbuf_reserve(wb_sbuf_t *sb, size_t extra)
{
    size_t cap;
    char *p;

    if (sb->oom) return -1;
    if (sb->len + extra + 1 <= sb->cap) return 0;
    cap = sb->cap ? sb->cap : 4096;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    p = realloc(sb->p, cap);
    if (!p) {
        sb->oom = 1;
        return -1;
    }
    sb->p = p;
    sb->cap = cap;
    return 0;
}

static void sbuf_put(wb_sbuf_t *sb, const char *s)
{
    size_t n = strlen(s);

    if (sbuf_reserve(sb, n) != 0) return;
    memcpy(sb->p + sb->len, s, n + 1);
    sb->len += n;
}

static void sbuf_printf(wb_sbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_printf(wb_sbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sbuf_reserve(sb, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

/* Shortest text that reads back as the same double, in the spellings
 * Prometheus parses (+Inf, -Inf, NaN). Assumes the "C" numeric locale, which
 * the daemons never change. */
static void fmt_double(char *buf, size_t size, double v)
{
    int prec;

    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers (lag, depths, byte counts) read best without an
     * exponent; %g would print 10 as "1e+01" at its shortest precision. */
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* name{labels[,extra]} — braces only when there is a label at all. */
static void put_series(wb_sbuf_t *sb, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    sbuf_put(sb, name);
    sbuf_put(sb, suffix);
    if (!*labels && !extra) return;
    sbuf_put(sb, "{");
    sbuf_put(sb, labels);
    if (extra) {
        if (*labels) sbuf_put(sb, ",");
        sbuf_put(sb, extra);
    }
    sbuf_put(sb, "}");
}

static void render_histogram(wb_sbuf_t *sb, const wb_metric_family_t *fam, wb_child_t *child)
{
    wb_histogram_t *h = &child->u.histogram;
    char num[64], le[80];
    uint64_t cum = 0;
    size_t i;

    for (i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            fmt_double(num, sizeof num, h->bounds[i]);
        else
            snprintf(num, sizeof num, "+Inf");
        snprintf(le, sizeof le, "le=\"%s\"", num);
        put_series(sb, fam->name, "_bucket", child->labels, le);
        sbuf_printf(sb, " %" PRIu64 "\n", cum);
    }
    fmt_double(num, sizeof num, bits2dbl(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    put_series(sb, fam->name, "_sum", child->labels, NULL);
    sbuf_printf(sb, " %s\n", num);
    put_series(sb, fam->name, "_count", child->labels, NULL);
    sbuf_printf(sb, " %" PRIu64 "\n", cum);
}

static void render_family(wb_sbuf_t *sb, const wb_metric_family_t *fam)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    wb_child_t *child;
    char *help;
    char num[64];

    if (!fam->children) return;
    help = malloc(2 * strlen(fam->help) + 1);
    if (!help) {
        sb->oom = 1;
        return;
    }
    escape_into(help, fam->help, 0);
    sbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", fam->name, help, fam->name,
                type_names[fam->type]);
    free(help);

    for (child = fam->children; child; child = child->next) {
        switch (fam->type) {
        case WB_MT_COUNTER:
            put_series(sb, fam->name, "", child->labels, NULL);
            sbuf_printf(sb, " %" PRIu64 "\n", wb_counter_value(&child->u.counter));
            break;
        case WB_MT_GAUGE:
            fmt_double(num, sizeof num, wb_gauge_value(&child->u.gauge));
            put_series(sb, fam->name, "", child->labels, NULL);
            sbuf_printf(sb, " %s\n", num);
            break;
        case WB_MT_HISTOGRAM:
            render_histogram(sb, fam, child);
            break;
        }
    }
}

wb_err_t wb_metrics_render(wb_metrics_t *reg, char **out, size_t *len)
{
    wb_sbuf_t sb = {0};
    wb_metrics_collect_cb *cb;
    const wb_metric_family_t *fam;
    void *opaque;

    if (out) *out = NULL;
    if (len) *len = 0;
    if (!reg || !out || !len) return WB_ERR_INVALID_ARG;

    pthread_mutex_lock(&reg->render_lock);
    pthread_mutex_lock(&reg->lock);
    cb = reg->collect_cb;
    opaque = reg->collect_opaque;
    pthread_mutex_unlock(&reg->lock);
    /* Outside reg->lock: the hook may look children up or register. */
    if (cb) cb(reg, opaque);

    sbuf_reserve(&sb, 0); /* an empty registry still yields "" */
    pthread_mutex_lock(&reg->lock);
    for (fam = reg->families; fam; fam = fam->next)
        render_family(&sb, fam);
    pthread_mutex_unlock(&reg->lock);
    pthread_mutex_unlock(&reg->render_lock);

    if (sb.oom) {
        free(sb.p);
        return WB_ERR_NOMEM;
    }
    sb.p[sb.len] = '\0';
    *out = sb.p;
    *len = sb.len;
    return WB_OK;
}
