/* cmd_del.c — `wbctl del ENTITY ID [--ack cache|log|replica]`: one write-behind delete. */
#include <getopt.h>
#include <stdio.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] del ENTITY ID [--ack cache|log|replica]\n"
                    "  Prints the version of the delete.\n");
    return 2;
}

int wbctl_cmd_del(const wbctl_opts_t *opts, int argc, char **argv)
{
    wb_ack_t ack = WB_ACK_DEFAULT;
    wb_client_t *client;
    int64_t version = 0;
    int status;
    wb_err_t err;

    if (wbctl_parse_ack_opts(argc, argv, &ack) != 0) return usage();
    if (argc - optind != 2) return usage();
    client = wbctl_client_open(opts, NULL, &status);
    if (!client) return status;
    err = wb_del(client, argv[optind], argv[optind + 1], ack, &version);
    status = wbctl_print_version("del", err, version);
    wb_client_close(client);
    return status;
}
