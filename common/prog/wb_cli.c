/* wb_cli.c — command-line plumbing shared by wbctl and the daemons. */
#include "wb_cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t wb_cli_stops;

wb_config_t *wb_cli_load_config(const char *progname, const char *path)
{
    char errstr[4096];
    wb_config_t *conf = NULL;

    if (!path)
        path = wb_config_default_path();
    if (wb_config_load(path, &conf, errstr, sizeof(errstr)) != WB_OK) {
        /* The loader reports one error per line; keep them as lines. */
        char *save = NULL;
        for (char *line = strtok_r(errstr, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            fprintf(stderr, "%s: %s\n", progname, line);
        return NULL;
    }
    return conf;
}

static void wb_cli_on_signal(int sig)
{
    (void)sig;
    if (++wb_cli_stops >= 2)
        _exit(1); /* second signal: the operator wants out now */
}

void wb_cli_install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wb_cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

int wb_cli_stop_requested(void)
{
    return (int)wb_cli_stops;
}
