/* check.c — the fault drills' checker: compares the acknowledged history with PostgreSQL and
 * Redis, and the small tools the drills need (strand, poison, snapshots, dead-letter marks).
 *
 * A Jepsen-style checker: `wbctl load --truth` records the highest version
 * every key was acknowledged with; after faults and a drained pipeline,
 * `check verify` says whether each of those writes is in PostgreSQL
 * (nothing lost) and whether the cache holds nothing older than PostgreSQL
 * (nothing stale). See tests/faults/README.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wb_cli.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: check [-c FILE] COMMAND [OPTIONS]\n"
            "\n"
            "  verify --entity NAME --truth FILE [--truth FILE...] [--ordered] [--strict] "
            "[--allow-dirty]\n"
            "         [--dlq-since MARKS] [--dlq-expect FILE]\n"
            "      compare the truth files (wbctl load --truth) with PostgreSQL and Redis;\n"
            "      prints acknowledged, matching, newer, lost, stale, diverged, ahead, dirty,\n"
            "      backwards, dead-lettered, dlq-mismatch; exit 1 unless all is well\n"
            "  snapshot --entity NAME --id-prefix P --out FILE [--before FILE]\n"
            "      write key/version of PostgreSQL's rows whose key starts with P; with\n"
            "      --before, count rows whose version went down (exit 1 if any)\n"
            "  strand --entity NAME --id-prefix P --count N --truth FILE\n"
            "      run the put script only (a producer that died before Kafka); writes\n"
            "      the versions as a truth file\n"
            "  dlq-mark --out FILE\n"
            "      record the dead-letter topic's end offsets (for verify --dlq-since)\n"
            "  poison --count N --tag T --out FILE [--over-ms MS] [--entity NAME]\n"
            "      produce N malformed change events straight to the topic, spread over\n"
            "      MS; writes their keys and kinds (for verify --dlq-expect)\n"
            "\n"
            "  -c, --config FILE   config file (default: $WBCACHE_CONFIG, else "
            "config/wbcache.yaml)\n");
    return out == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {{"config", required_argument, NULL, 'c'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    static const struct {
        const char *name;
        int (*fn)(const wb_config_t *, int, char **);
    } cmds[] = {{"verify", ck_cmd_verify},
                {"snapshot", ck_cmd_snapshot},
                {"strand", ck_cmd_strand},
                {"dlq-mark", ck_cmd_dlq_mark},
                {"poison", ck_cmd_poison}};
    const char *config_path = NULL, *cmd;
    wb_config_t *conf;
    int c, rc = -1;

    /* "+": stop at the subcommand, whose options are parsed by it. */
    while ((c = getopt_long(argc, argv, "+c:h", lopts, NULL)) != -1) {
        if (c == 'c')
            config_path = optarg;
        else if (c == 'h')
            return usage(stdout);
        else
            return usage(stderr);
    }
    if (optind >= argc) return usage(stderr);
    cmd = argv[optind];
    conf = wb_cli_load_config("check", config_path);
    if (!conf) return 2;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[optind], cmds[i].name) != 0) continue;
        {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;

            optind = 0; /* glibc: re-initialise getopt for sub_argv (parsed from [1]) */
            rc = cmds[i].fn(conf, sub_argc, sub_argv);
        }
        break;
    }
    if (rc < 0) {
        fprintf(stderr, "check: unknown command \"%s\"\n", cmd);
        rc = usage(stderr);
    }
    wb_config_destroy(conf);
    return rc;
}
