/* main.c — wb-flusher: Kafka change events → coalesced, version-guarded upserts in PostgreSQL. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flusher.h"
#include "wb_cli.h"
#include "wb_config.h"
#include "wb_log.h"

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
            printf("wb-flusher %s\n", WB_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : "run";
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "replay") != 0) {
        fprintf(stderr, "wb-flusher: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "run") == 0 && optind + 1 < argc) {
        fprintf(stderr, "wb-flusher: run takes no arguments\n");
        return 2;
    }
    wb_config_t *conf = wb_cli_load_config("wb-flusher", config_path);
    if (!conf) return 2;
    wb_log_init(strcmp(cmd, "run") == 0 ? "wb-flusher" : "wb-flusher replay");
    int level = wb_log_level_parse(conf->log.level);
    if (level >= 0) wb_log_set_level((wb_log_level_t)level);
    wb_cli_install_signals();
    if (strcmp(cmd, "run") == 0)
        rc = fl_run(conf);
    else
        rc = fl_replay(conf, argc - optind, argv + optind);
    wb_config_destroy(conf);
    return rc;
}
