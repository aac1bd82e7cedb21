/* fl_purge.h — the flusher's tombstone purge. */
#ifndef FL_PURGE_H
#define FL_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "fl_apply.h"
#include "wb_config.h"
#include "wb_metrics.h"

typedef struct fl_purge_s {
    const wb_config_t *conf; /* borrowed */
    wb_counter_t *purged;    /* borrowed; may be NULL */
} fl_purge_t;

/* Sets up pu for conf and the purged-rows counter (both borrowed). */
void fl_purge_init(fl_purge_t *pu, const wb_config_t *conf, wb_counter_t *purged);
/* How often to purge: a quarter of flusher.tombstone_retention_ms, within
 * [1 s, 10 min]. */
int64_t fl_purge_interval_ms(const fl_purge_t *pu);
/* Deletes the tombstones older than flusher.tombstone_retention_ms in
 * every table, a bounded number per statement, on the applier's
 * connection (connected if need be; the writer must be idle). Nothing when
 * the retention is 0. Returns WB_OK or the error that stopped it, with
 * errstr set. */
wb_err_t fl_purge_run(fl_purge_t *pu, fl_apply_t *ap, char *errstr, size_t errstr_size);

#endif /* FL_PURGE_H */
