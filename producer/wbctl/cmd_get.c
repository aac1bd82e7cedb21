/* cmd_get.c — `wbctl get ENTITY ID`: one read-through get; the value goes to stdout. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] get [--verbose] ENTITY ID\n"
                    "  Prints the value and a newline (exit 3 if not found; control bytes\n"
                    "  escaped as \\xHH when stdout is a terminal). --verbose also\n"
                    "  prints \"version V, hit|loaded\" to stderr.\n");
    return 2;
}

int wbctl_cmd_get(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    wb_value_t value = {0};
    wb_client_t *client;
    int c, status, verbose = 0;
    wb_err_t err;

    while ((c = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
        if (c == 'v') {
            verbose = 1;
            continue;
        }
        return usage();
    }
    if (argc - optind != 2) return usage();
    client = wbctl_client_open(opts, NULL, &status);
    if (!client) return status;
    err = wb_get(client, argv[optind], argv[optind + 1], &value);
    if (err == WB_OK) {
        /* A value is any bytes: on a terminal, shown without its controls. */
        wbctl_write_shown(stdout, value.data, value.len, isatty(STDOUT_FILENO));
        fputc('\n', stdout);
        if (verbose)
            fprintf(stderr, "version %" PRId64 ", %s\n", value.version,
                    value.hit ? "hit" : "loaded");
        status = 0;
    } else {
        status = wbctl_fail("get", err);
    }
    wb_value_free(&value);
    wb_client_close(client);
    return status;
}
