/* main.c — wb-refresher: refresh-ahead reloads from PostgreSQL and the dirty sweeper. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "wb_cli.h"
#include "wb_config.h"
#include "wb_log.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: wb-refresher [-c FILE] [run]\n"
        "\n"
        "Reloads hot keys from PostgreSQL before they expire (refresh-ahead) and\n"
        "re-publishes cache entries that stayed dirty too long (sweeper).\n"
        "\n"
        "run (default): consumes refresh requests (kafka.topics.refresh) in the consumer\n"
        "group refresher.group_id, collapses repeats, reloads the keys from PostgreSQL in\n"
        "batches and applies them with the version-checked fill script (a newer or dirty\n"
        "entry is never overwritten), then commits offsets. Every\n"
        "refresher.sweep_interval_ms the replica holding the sweeper lease re-publishes\n"
        "entries dirty for longer than refresher.sweep_after_ms, with their version.\n"
        "Serves /metrics /healthz /readyz on refresher.http_listen. SIGTERM finishes the\n"
        "batch and exits; a second signal exits at once.\n"
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
    int c, rc;

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
    if (optind < argc && strcmp(argv[optind], "run") != 0) {
        fprintf(stderr, "wb-refresher: unknown command \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "wb-refresher: run takes no arguments\n");
        return 2;
    }
    wb_config_t *conf = wb_cli_load_config("wb-refresher", config_path);
    if (!conf) return 2;
    wb_log_init("wb-refresher");
    int level = wb_log_level_parse(conf->log.level);
    if (level >= 0) wb_log_set_level((wb_log_level_t)level);
    wb_cli_install_signals();
    rc = rf_run(conf);
    wb_config_destroy(conf);
    return rc;
}
