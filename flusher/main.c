/* main.c — wb-flusher: Kafka change events → coalesced, version-guarded upserts in PostgreSQL. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_cli.h"
#include "wb_config.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wb-flusher [-c FILE] [run]\n"
            "\n"
            "Consumes change events from Kafka, keeps the newest version per key,\n"
            "upserts them into PostgreSQL with a version guard, then commits offsets.\n"
            "\n"
            "  -c, --config FILE   config file (default: $WBCACHE_CONFIG, else config/wbcache.yaml)\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int c;

    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("wb-flusher %s\n", WB_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    wb_config_t *conf = wb_cli_load_config("wb-flusher", config_path);
    if (!conf)
        return 2;
    fprintf(stderr, "wb-flusher: not implemented yet (config %s is valid)\n", conf->path);
    wb_config_destroy(conf);
    return 1;
}
