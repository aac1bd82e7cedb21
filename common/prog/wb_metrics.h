/* wb_metrics.h — counters, gauges and histograms rendered in Prometheus text format 0.0.4. */
#ifndef WB_METRICS_H
#define WB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "wbcache.h"

/* Largest number of label names a family may have. */
#define WB_METRICS_MAX_LABELS 2

typedef struct wb_metrics_s wb_metrics_t;
typedef struct wb_metric_family_s wb_metric_family_t;
typedef struct wb_counter_s wb_counter_t;
typedef struct wb_gauge_s wb_gauge_t;
typedef struct wb_histogram_s wb_histogram_t;

/* Called by wb_metrics_render() just before it reads the values, so a daemon
 * can refresh gauges (consumer lag, queue depth) at scrape time. Runs on the
 * thread that renders (the HTTP thread of wb_http), never concurrently with
 * itself, and without any registry lock held: it may set values, create
 * children and even register families. */
typedef void(wb_metrics_collect_cb)(wb_metrics_t *reg, void *opaque);

/* Returns a new, empty registry, or NULL when out of memory. The caller owns
 * it and frees it with wb_metrics_destroy(). */
wb_metrics_t *wb_metrics_new(void);

/* Frees the registry, its families and every child handed out; all those
 * pointers become invalid. NULL is a no-op. Call it only after nothing
 * (the HTTP server included) uses the registry any more. */
void wb_metrics_destroy(wb_metrics_t *reg);

/* Registers a family. The variadic arguments are the label names followed by
 * NULL (at most WB_METRICS_MAX_LABELS), e.g.
 *   wb_metrics_counter(reg, "wb_events_total", "Events applied.", NULL);
 *   wb_metrics_gauge(reg, "wb_lag", "Consumer lag.", "partition", NULL);
 * A family without labels has one child, created now (and rendered as 0).
 * name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be unique in the registry;
 * label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", are
 * distinct, and a histogram may not use "le". name and help are copied.
 * Returns the family, owned by the registry (valid until destroy), or NULL on
 * an invalid name, too many labels, a duplicate, bad buckets or no memory.
 * Thread-safe (takes the registry mutex). */
wb_metric_family_t *wb_metrics_counter(wb_metrics_t *reg, const char *name, const char *help, ...)
    __attribute__((sentinel));
wb_metric_family_t *wb_metrics_gauge(wb_metrics_t *reg, const char *name, const char *help, ...)
    __attribute__((sentinel));

/* Like wb_metrics_counter() for a histogram with upper bounds buckets[0..nbuckets)
 * (copied; strictly increasing, not NaN; a trailing +Inf is dropped because
 * the +Inf bucket is always rendered). nbuckets 0 gives only the +Inf bucket. */
wb_metric_family_t *wb_metrics_histogram(wb_metrics_t *reg, const char *name, const char *help,
                                         const double *buckets, size_t nbuckets, ...)
    __attribute__((sentinel));

/* Return the child of fam for the given label values, followed by NULL — as
 * many values as the family has label names (none for an unlabelled family:
 * wb_metrics_counter_with(fam, NULL)). The child is created (at zero) on first
 * use. Values are copied and may hold any bytes of a C string (they are
 * escaped when rendered). Returns a pointer owned by the registry and valid
 * until wb_metrics_destroy(), or NULL when fam is NULL, of another type, the
 * value count is wrong, or memory ran out. Takes the registry mutex: look a
 * child up once and keep the pointer rather than calling this per event. */
wb_counter_t *wb_metrics_counter_with(wb_metric_family_t *fam, ...) __attribute__((sentinel));
wb_gauge_t *wb_metrics_gauge_with(wb_metric_family_t *fam, ...) __attribute__((sentinel));
wb_histogram_t *wb_metrics_histogram_with(wb_metric_family_t *fam, ...) __attribute__((sentinel));

/* Hot-path updates: lock-free (C11 atomics), callable from any thread.
 * A NULL handle is a no-op, so code may run with metrics switched off. */
void wb_counter_add(wb_counter_t *c, uint64_t n);
void wb_gauge_set(wb_gauge_t *g, double v);
void wb_gauge_add(wb_gauge_t *g, double delta);
/* Counts v in the first bucket whose bound is >= v (else +Inf) and adds it to
 * the sum. A NaN is ignored so it cannot poison the sum for good. */
void wb_histogram_observe(wb_histogram_t *h, double v);

/* Current values, for tests and for daemons that log them; 0 for NULL. */
uint64_t wb_counter_value(const wb_counter_t *c);
double wb_gauge_value(const wb_gauge_t *g);

/* Installs (or with cb NULL removes) the scrape-time hook; see
 * wb_metrics_collect_cb. Thread-safe. */
void wb_metrics_set_collect_cb(wb_metrics_t *reg, wb_metrics_collect_cb *cb, void *opaque);

/* Calls the collect hook, then writes every family (registration order) and
 * child (creation order) in Prometheus text exposition format 0.0.4 into a
 * new NUL-terminated buffer: *out (caller frees with free()) of *len bytes.
 * A labelled family with no child yet is omitted. Values written by other
 * threads during the render may or may not be included, but a histogram's
 * _count always equals its +Inf bucket. Returns WB_OK, WB_ERR_INVALID_ARG or
 * WB_ERR_NOMEM (then *out is NULL). Thread-safe; renders are serialized. */
wb_err_t wb_metrics_render(wb_metrics_t *reg, char **out, size_t *len);

#endif /* WB_METRICS_H */
