/* wb_cli.h — command-line plumbing shared by wbctl and the daemons. */
#ifndef WB_CLI_H
#define WB_CLI_H

#include <signal.h>

#include "wb_config.h"

/* Loads the config at path (NULL = wb_config_default_path()) and prints
 * every error to stderr prefixed by progname. Returns NULL on failure. */
wb_config_t *wb_cli_load_config(const char *progname, const char *path);

/* Installs SIGINT/SIGTERM handlers that count signals into a
 * sig_atomic_t: the first asks for a graceful stop, the second exits at
 * once with status 1. SIGPIPE is ignored. */
void wb_cli_install_signals(void);

/* Number of stop signals received so far (0 while running). */
int wb_cli_stop_requested(void);

#endif /* WB_CLI_H */
