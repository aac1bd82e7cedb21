/* rf_util.c — pure helpers of wb-refresher: text[] query parameter, TTL jitter, key -> entity. */
#include "rf_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_rand.h"

#define RF_OID_TEXT     25
#define RF_ARRAY_LIMIT  ((size_t)1 << 30) /* MaxAllocSize: largest datum the server takes */
#define RF_ARRAY_HEADER 20

static char *put_be32(char *p, uint32_t v)
{
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
    return p + 4;
}

char *rf_text_array(const char *const *strs, const size_t *lens, size_t n, int *len)
{
    size_t total = RF_ARRAY_HEADER;
    char *buf, *w;

    for (size_t i = 0; i < n; i++) {
        if (lens[i] > RF_ARRAY_LIMIT) return NULL;
        total += 4 + lens[i];
        if (total > RF_ARRAY_LIMIT) return NULL;
    }
    if (!(buf = malloc(total))) return NULL;
    /* array_recv: ndim, has-nulls, element type, (size, lower bound) per
     * dimension, then length + bytes per element. */
    w = put_be32(buf, 1);
    w = put_be32(w, 0);
    w = put_be32(w, RF_OID_TEXT);
    w = put_be32(w, (uint32_t)n);
    w = put_be32(w, 1);
    for (size_t i = 0; i < n; i++) {
        w = put_be32(w, (uint32_t)lens[i]);
        if (lens[i]) memcpy(w, strs[i], lens[i]);
        w += lens[i];
    }
    *len = (int)total;
    return buf;
}

int64_t rf_jitter_ttl(int64_t ttl_ms, int pct, uint64_t *rng)
{
    if (ttl_ms <= 0 || pct <= 0) return ttl_ms;
    if (pct > 50) pct = 50;
    int64_t span = ttl_ms * pct / 100; /* +-span */
    if (span <= 0) return ttl_ms;
    int64_t off = (int64_t)(wb_rand_next(rng) % (uint64_t)(2 * span + 1)) - span;
    int64_t ttl = ttl_ms + off;
    return ttl < 1 ? 1 : ttl;
}

static int has_prefix(const wb_entity_t *ent, const char *key, size_t keylen)
{
    size_t plen = strlen(ent->prefix);
    return keylen > plen && memcmp(key, ent->prefix, plen) == 0;
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
