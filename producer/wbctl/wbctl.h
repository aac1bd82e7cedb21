/* wbctl.h — subcommands of the wbctl operator tool. */
#ifndef WBCTL_H
#define WBCTL_H

#include "wb_config.h"

/* Every subcommand gets its arguments after the command word (argv[0] is
 * the command word) and the parsed global options. Returns the process
 * exit status: 0 ok, 1 operation failed, 2 usage or config error. */
typedef struct wbctl_opts_s {
    const char *config_path; /* -c FILE, or NULL for the default */
} wbctl_opts_t;

int wbctl_cmd_config(const wbctl_opts_t *opts, int argc, char **argv);

#endif /* WBCTL_H */
