/* cmd_put_through.c — `wbctl put-through ENTITY ID [VALUE|-]`: one write-through put. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] put-through ENTITY ID [VALUE|-]\n"
                    "  PostgreSQL first, then the cache. VALUE omitted or \"-\": read from\n"
                    "  stdin. Prints the version.\n");
    return 2;
}

int wbctl_cmd_put_through(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option lopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    wb_client_t *client = NULL;
    char *value = NULL;
    size_t len = 0;
    int64_t version = 0;
    int status;
    wb_err_t err;

    if (getopt_long(argc, argv, "h", lopts, NULL) != -1) return usage();
    if (argc - optind < 2 || argc - optind > 3) return usage();
    client = wbctl_client_open_value(opts, argc - optind == 3 ? argv[optind + 2] : NULL, &value,
                                     &len, &status);
    if (!client) return status;
    err = wb_put_through(client, argv[optind], argv[optind + 1], value, len, &version);
    status = wbctl_print_version("put-through", err, version);
    wb_client_close(client);
    free(value);
    return status;
}
