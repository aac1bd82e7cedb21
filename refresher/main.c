/* main.c — wb-refresher: refresh-ahead reloads from PostgreSQL and the dirty sweeper. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "wb_cli.h"
#include "wb_config.h"

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
    wb_cli_t cli = {"wb-refresher", usage, NULL, 0};
    int rc = wb_cli_parse(&cli, argc, argv);

    if (rc >= 0) return rc;
    if (cli.argi < argc && strcmp(argv[cli.argi], "run") != 0) {
        fprintf(stderr, "wb-refresher: unknown command \"%s\"\n", argv[cli.argi]);
        usage(stderr);
        return 2;
    }
    if (cli.argi + 1 < argc) {
        fprintf(stderr, "wb-refresher: run takes no arguments\n");
        return 2;
    }
    wb_config_t *conf = wb_cli_bootstrap(&cli, "wb-refresher");
    if (!conf) return 2;
    rc = rf_run(conf);
    wb_config_destroy(conf);
    return rc;
}
