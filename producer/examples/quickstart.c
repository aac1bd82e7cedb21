/* quickstart.c — the five caching patterns in one page (built with the project, so it compiles). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wbcache.h>

/* Cache-aside loader: called on a miss, at most once per key at a time across processes. */
static wb_err_t load_profile(void *opaque, const char *entity, const char *id, void **value,
                             size_t *len)
{
    (void)opaque;
    (void)entity;
    char *v = malloc(64);
    if (!v) return WB_ERR_NOMEM;
    *len = (size_t)snprintf(v, 64, "{\"id\":\"%s\",\"source\":\"loader\"}", id);
    *value = v; /* the library takes ownership */
    return WB_OK;
}

int main(int argc, char **argv)
{
    char errstr[512];
    wb_client_t *client = NULL;
    wb_value_t value = {0};
    int64_t version = 0;
    wb_err_t err;

    /* NULL path: $WBCACHE_CONFIG, else config/wbcache.yaml. */
    err = wb_client_open(argc > 1 ? argv[1] : NULL, NULL, NULL, &client, errstr, sizeof(errstr));
    if (err != WB_OK) {
        fprintf(stderr, "open: %s: %s\n", wb_err2str(err), errstr);
        return 1;
    }

    /* Write-behind: Redis now (dirty, pinned), Kafka event, PostgreSQL via wb-flusher. */
    const char *doc = "{\"name\":\"ada\"}";
    err = wb_put(client, "user", "42", doc, strlen(doc), WB_ACK_LOG, &version);
    printf("put user 42: %s (version %lld)\n", wb_err2str(err), (long long)version);

    /* Read-through: hit, or load the row from PostgreSQL (version-checked fill). */
    err = wb_get(client, "user", "42", &value);
    if (err == WB_OK)
        printf("get user 42: %.*s (version %lld, %s)\n", (int)value.len, (char *)value.data,
               (long long)value.version, value.hit ? "hit" : "loaded");
    wb_value_free(&value);

    /* Write-through: PostgreSQL committed first, then the cache. */
    err = wb_put_through(client, "user", "43", doc, strlen(doc), &version);
    printf("put-through user 43: %s (version %lld)\n", wb_err2str(err), (long long)version);

    /* Cache-aside: the caller's loader fills a miss. */
    err = wb_get_or_load(client, "user", "44", load_profile, NULL, &value);
    printf("get-or-load user 44: %s\n", wb_err2str(err));
    wb_value_free(&value);

    /* Bulk read-through: each id its own value and error, in one lookup round trip. */
    {
        const char *ids[3] = {"42", "43", "no-such-user"};
        wb_value_t values[3];
        wb_err_t errs[3];
        wb_get_many_t many = {.size = sizeof(many), .values = values, .errs = errs};

        wb_get_many(client, "user", ids, 3, &many);
        for (int i = 0; i < 3; i++) {
            printf("get-many user %s: %s\n", ids[i], wb_err2str(errs[i]));
            wb_value_free(&values[i]);
        }
    }

    /* Refresh-ahead needs no call: a hit late in its TTL asks wb-refresher to reload. */
    wb_client_close(client);
    return 0;
}
