/* wb_cli.c — the programs' bootstrap: common options, config, log level, stop signals. */
#include "wb_cli.h"

#include <getopt.h>
#include <string.h>

#include "wb_log.h"
#include "wb_loop.h"

int wb_cli_parse(wb_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->config_path = optarg;
            break;
        case 'h':
            cli->usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", cli->progname, WB_VERSION_STRING);
            return 0;
        default:
            cli->usage(stderr);
            return 2;
        }
    }
    cli->argi = optind;
    return -1;
}

wb_config_t *wb_cli_bootstrap(const wb_cli_t *cli, const char *logname)
{
    wb_config_t *conf = wb_cli_load_config(cli->progname, cli->config_path);

    if (!conf) return NULL;
    wb_log_init(logname);
    int level = wb_log_level_parse(conf->log.level);
    if (level >= 0) wb_log_set_level((wb_log_level_t)level);
    int format = wb_log_format_parse(conf->log.format);
    if (format >= 0) wb_log_set_format((wb_log_format_t)format);
    wb_loop_signals();
    return conf;
}

wb_config_t *wb_cli_load_config(const char *progname, const char *path)
{
    char errstr[4096];
    wb_config_t *conf = NULL;

    if (!path) path = wb_config_default_path();
    if (wb_config_load(path, &conf, errstr, sizeof(errstr)) != WB_OK) {
        /* The loader reports one error per line; keep them as lines. */
        char *save = NULL;
        for (char *line = strtok_r(errstr, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            fprintf(stderr, "%s: %s\n", progname, line);
        return NULL;
    }
    return conf;
}
