/* fl_purge.c — the flusher's tombstone purge. */
#include "fl_purge.h"

#include <inttypes.h>
#include <string.h>

#include "wb_log.h"
#include "wb_table.h"

#define FL_PURGE_LIMIT 10000 /* tombstones per DELETE, so one purge never holds locks long */

void fl_purge_init(fl_purge_t *pu, const wb_config_t *conf, wb_counter_t *purged)
{
    pu->conf = conf;
    pu->purged = purged;
}

int64_t fl_purge_interval_ms(const fl_purge_t *pu)
{
    int64_t every = pu->conf->flusher.tombstone_retention_ms / 4;

    if (every < 1000) every = 1000;
    if (every > 600000) every = 600000;
    return every;
}

wb_err_t fl_purge_run(fl_purge_t *pu, fl_apply_t *ap, char *errstr, size_t errstr_size)
{
    const wb_config_t *conf = pu->conf;
    if (conf->flusher.tombstone_retention_ms <= 0) return WB_OK;
    wb_err_t err = fl_apply_pg_ensure(ap, errstr, errstr_size);
    if (err != WB_OK) return err;
    for (size_t i = 0; i < conf->nentities; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(conf->entities[j].table, conf->entities[i].table) == 0;
        if (seen) continue;
        for (int round = 0; round < 100; round++) {
            wb_table_purge_t req = {&conf->entities[i], conf->flusher.tombstone_retention_ms,
                                    FL_PURGE_LIMIT};
            wb_table_result_t res;
            err = wb_table_purge(ap->pg, &req, &res, errstr, errstr_size);
            if (err != WB_OK) return err;
            size_t purged = res.rows;
            wb_counter_add(pu->purged, purged);
            if (purged > 0)
                WB_INFO("purged %zu tombstones older than %" PRId64 " ms from \"%s\"", purged,
                        conf->flusher.tombstone_retention_ms, conf->entities[i].table);
            if (purged < FL_PURGE_LIMIT) break;
        }
    }
    return WB_OK;
}
