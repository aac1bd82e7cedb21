/* main.c — wb-refresher: refresh-ahead reloads from PostgreSQL and the dirty sweeper. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_cli.h"
#include "wb_config.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wb-refresher [-c FILE] [run]\n"
            "\n"
            "Reloads hot keys from PostgreSQL before they expire (refresh-ahead) and\n"
            "re-publishes cache entries that stayed dirty too long (sweeper).\n"
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
            printf("wb-refresher %s\n", WB_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    wb_config_t *conf = wb_cli_load_config("wb-refresher", config_path);
    if (!conf)
        return 2;
    fprintf(stderr, "wb-refresher: not implemented yet (config %s is valid)\n", conf->path);
    wb_config_destroy(conf);
    return 1;
}
