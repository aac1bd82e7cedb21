/* main.c — wb-flusher: Kafka change events → coalesced, version-guarded upserts in PostgreSQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flusher.h"
#include "wb_cli.h"
#include "wb_config.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: wb-flusher [-c FILE] [run]\n"
        "       wb-flusher [-c FILE] replay (--from-time T | --from-beginning |\n"
        "                                    --from-offsets P:O[,P:O...]) [--to-time T]\n"
        "                                   [--entity NAME] [--group-id G]\n"
        "\n"
        "run (default): consumes change events from Kafka in a consumer group, keeps\n"
        "the newest version per key, upserts them into PostgreSQL with a version\n"
        "guard, then commits offsets. Serves /metrics /healthz /readyz on\n"
        "flusher.http_listen. SIGTERM finishes the batch and exits; a second exits now.\n"
        "replay: re-applies the log from a time or offsets (`replay --help`).\n"
        "\n"
        "  -c, --config FILE   config file (default: $WBCACHE_CONFIG, else config/wbcache.yaml)\n"
        "  -h, --help          this help\n"
        "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
    wb_cli_t cli = {"wb-flusher", usage, NULL, 0};
    int rc = wb_cli_parse(&cli, argc, argv);

    if (rc >= 0) return rc;
    const char *cmd = cli.argi < argc ? argv[cli.argi] : "run";
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "replay") != 0) {
        fprintf(stderr, "wb-flusher: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "run") == 0 && cli.argi + 1 < argc) {
        fprintf(stderr, "wb-flusher: run takes no arguments\n");
        return 2;
    }
    wb_config_t *conf =
        wb_cli_bootstrap(&cli, strcmp(cmd, "run") == 0 ? "wb-flusher" : "wb-flusher replay");
    if (!conf) return 2;
    if (strcmp(cmd, "run") == 0)
        rc = fl_run(conf);
    else
        rc = fl_replay(conf, argc - cli.argi, argv + cli.argi);
    wb_config_destroy(conf);
    return rc;
}
