/* wbctl.c — operator tool: entry point and subcommand dispatch. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "wb_cli.h"
#include "wbctl.h"

typedef struct wbctl_cmd_s {
    const char *name;
    int (*run)(const wbctl_opts_t *opts, int argc, char **argv);
    const char *summary;
} wbctl_cmd_t;

static const wbctl_cmd_t wbctl_cmds[] = {
    {"config", wbctl_cmd_config,
     "config check|show|get KEY...|reference   validate the config, print it, print the\n"
     "                      values of dotted keys, or print the key tables as markdown"},
    {"put", wbctl_cmd_put, "put ENTITY ID [VALUE|-] [--ack cache|log]   write-behind put"},
    {"get", wbctl_cmd_get, "get ENTITY ID...    read-through get (exit 3: not found)"},
    {"del", wbctl_cmd_del, "del ENTITY ID [--ack cache|log]   write-behind delete"},
    {"put-through", wbctl_cmd_put_through, "put-through ENTITY ID [VALUE|-]   write-through put"},
    {"status", wbctl_cmd_status, "status              dirty entries, flusher lag, dead letters"},
    {"load", wbctl_cmd_load, "load [OPTIONS]      load generator (wbctl load --help)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: wbctl [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(wbctl_cmds) / sizeof(wbctl_cmds[0]); i++)
        fprintf(out, "  %s\n", wbctl_cmds[i].summary);
    fprintf(out, "\n  -c, --config FILE   config file (default: $WBCACHE_CONFIG, else "
                 "config/wbcache.yaml)\n"
                 "  -h, --help          this help\n"
                 "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
    wb_cli_t cli = {"wbctl", usage, NULL, 0};
    wbctl_opts_t o = {0};
    int rc = wb_cli_parse(&cli, argc, argv);

    if (rc >= 0) return rc;
    o.config_path = cli.config_path;
    if (cli.argi >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof(wbctl_cmds) / sizeof(wbctl_cmds[0]); i++) {
        if (strcmp(argv[cli.argi], wbctl_cmds[i].name) == 0) {
            char **sub = argv + cli.argi;
            /* Subcommands parse their own options from sub[1]. 0, not 1: glibc then
             * forgets the "+" (stop at the first operand) of the parse above, so a
             * subcommand accepts its options after its operands too. */
            optind = 0;
            return wbctl_cmds[i].run(&o, argc - (int)(sub - argv), sub);
        }
    }
    fprintf(stderr, "wbctl: unknown command \"%s\" (try wbctl --help)\n", argv[cli.argi]);
    return 2;
}
