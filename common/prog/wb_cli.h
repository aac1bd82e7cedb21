/* wb_cli.h — the programs' bootstrap: common options, config, log level, stop signals. */
#ifndef WB_CLI_H
#define WB_CLI_H

#include <stdio.h>

#include "wb_config.h"

/* One program's command line. */
typedef struct wb_cli_s {
    const char *progname;     /* as in messages and --version: "wb-flusher" */
    void (*usage)(FILE *out); /* the program's help */
    const char *config_path;  /* -c FILE (borrowed from argv), NULL: the default */
    int argi;                 /* index in argv of the first argument after the options */
} wb_cli_t;

/* Parses the options every program takes, up to the first argument that
 * is not one: -c/--config FILE, -h/--help (usage on stdout), -V/--version
 * ("progname VERSION"). Returns -1 to go on (cli->argi set), else the
 * exit status: 0 after help or version, 2 after a bad option (usage on
 * stderr). */
int wb_cli_parse(wb_cli_t *cli, int argc, char **argv);

/* A daemon's start: loads the config (wb_cli_load_config), starts the log
 * as logname at the config's log.level, installs the stop signals
 * (wb_loop_signals). Returns the config (the caller destroys it) or NULL
 * (errors printed; exit with status 2). */
wb_config_t *wb_cli_bootstrap(const wb_cli_t *cli, const char *logname);

/* Loads the config at path (NULL = wb_config_default_path()) and prints
 * every error to stderr prefixed by progname. Returns NULL on failure. */
wb_config_t *wb_cli_load_config(const char *progname, const char *path);

#endif /* WB_CLI_H */
