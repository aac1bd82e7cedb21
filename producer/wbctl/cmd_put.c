/* cmd_put.c — `wbctl put ENTITY ID [VALUE|-] [--ack cache|log|replica]`: one write-behind put. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] put ENTITY ID [VALUE|-] [--ack cache|log|replica]\n"
                    "  VALUE omitted or \"-\": read from stdin. Prints the version.\n");
    return 2;
}

int wbctl_cmd_put(const wbctl_opts_t *opts, int argc, char **argv)
{
    wb_ack_t ack = WB_ACK_DEFAULT;
    wb_client_t *client = NULL;
    char *value = NULL;
    size_t len = 0;
    int64_t version = 0;
    int status;
    wb_err_t err;

    if (wbctl_parse_ack_opts(argc, argv, &ack) != 0) return usage();
    if (argc - optind < 2 || argc - optind > 3) return usage();
    client = wbctl_client_open_value(opts, argc - optind == 3 ? argv[optind + 2] : NULL, &value,
                                     &len, &status);
    if (!client) return status;
    err = wb_put(client, argv[optind], argv[optind + 1], value, len, ack, &version);
    status = wbctl_print_version("put", err, version);
    wb_client_close(client);
    free(value);
    return status;
}
