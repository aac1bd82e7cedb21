/* rf_util.c — pure helpers of wb-refresher: key -> entity, lease key. */
#include "rf_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_prefix(const wb_entity_t *ent, const char *key, size_t keylen)
{
    return wb_entity_id_offset(ent, key, keylen) > 0;
}

const wb_entity_t *rf_entity_for_key(const wb_config_t *conf, const char *hint, size_t hintlen,
                                     const char *key, size_t keylen)
{
    char name[WB_EVENT_ENTITY_MAX + 1];
    const wb_entity_t *ent;

    if (!conf || !key) return NULL;
    if (hint && hintlen > 0 && hintlen < sizeof(name)) {
        memcpy(name, hint, hintlen);
        name[hintlen] = '\0';
        ent = wb_config_entity(conf, name);
        if (ent && has_prefix(ent, key, keylen)) return ent;
    }
    ent = wb_config_entity_by_key(conf, key, keylen);
    return ent && has_prefix(ent, key, keylen) ? ent : NULL;
}

int rf_lease_key(const char *dirty_index, char *out, size_t size)
{
    static const char suffix[] = ":sweeper";
    const char *idx = dirty_index && *dirty_index ? dirty_index : "wb:dirty";
    size_t n = strlen(idx);

    if (n + sizeof(suffix) > size) return -1;
    memcpy(out, idx, n);
    memcpy(out + n, suffix, sizeof(suffix));
    return 0;
}
