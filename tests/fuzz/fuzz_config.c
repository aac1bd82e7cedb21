/* fuzz_config.c — libFuzzer target for the YAML config loader.
 *
 * Any input must load or be refused without crashing or leaking, the error
 * text must be terminated within its buffer, and an accepted config must
 * survive print -> load -> print unchanged (secrets print as **** both
 * times, so the comparison still holds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_config.h"

static char *print_to_string(const wb_config_t *conf)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    if (!fp) abort();
    wb_config_print(conf, fp);
    if (fclose(fp) != 0) abort();
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512];
    wb_config_t *conf = NULL, *again = NULL;
    char *first, *second;
    wb_err_t err;

    memset(errstr, 'x', sizeof(errstr));
    err = wb_config_load_string("fuzz", (const char *)data, size, &conf, errstr, sizeof(errstr));
    if (err != WB_OK) {
        if (conf || !memchr(errstr, '\0', sizeof(errstr))) abort();
        return 0;
    }
    /* Exercise the lookups on whatever entities were accepted. */
    if (conf->nentities == 0 || !wb_config_entity(conf, conf->entities[0].name) ||
        !wb_config_entity_by_key(conf, conf->entities[0].prefix, strlen(conf->entities[0].prefix)))
        abort();

    first = print_to_string(conf);
    err = wb_config_load_string(conf->path, first, strlen(first), &again, errstr, sizeof(errstr));
    if (err != WB_OK) {
        fprintf(stderr, "printed config does not load:\n%s\n---\n%s\n", errstr, first);
        abort();
    }
    second = print_to_string(again);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "print/load/print differs:\n%s\n---\n%s\n", first, second);
        abort();
    }
    free(first);
    free(second);
    wb_config_destroy(again);
    wb_config_destroy(conf);
    return 0;
}
