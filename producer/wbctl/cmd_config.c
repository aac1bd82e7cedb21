/* cmd_config.c — `wbctl config check|show`. */
#include <stdio.h>
#include <string.h>

#include "wb_cli.h"
#include "wbctl.h"

int wbctl_cmd_config(const wbctl_opts_t *opts, int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "show") != 0)) {
        fprintf(stderr, "usage: wbctl [-c FILE] config check|show\n");
        return 2;
    }
    wb_config_t *conf = wb_cli_load_config("wbctl", opts->config_path);
    if (!conf)
        return 2;
    if (strcmp(argv[1], "check") == 0)
        printf("%s: ok (%zu entities)\n", conf->path, conf->nentities);
    else
        wb_config_print(conf, stdout);
    wb_config_destroy(conf);
    return 0;
}
