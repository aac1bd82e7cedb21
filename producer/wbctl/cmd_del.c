/* cmd_del.c — `wbctl del ENTITY ID [--ack cache|log]`: one write-behind delete. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] del ENTITY ID [--ack cache|log]\n"
                    "  Prints the version of the delete.\n");
    return 2;
}

int wbctl_cmd_del(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option lopts[] = {{"ack", required_argument, NULL, 'a'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    wb_ack_t ack = WB_ACK_DEFAULT;
    wb_client_t *client;
    int64_t version = 0;
    int c, status;
    wb_err_t err;

    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        if (c == 'a' && wbctl_parse_ack(optarg, &ack) == 0) continue;
        return usage();
    }
    if (argc - optind != 2) return usage();
    client = wbctl_client_open(opts, NULL, &status);
    if (!client) return status;
    err = wb_del(client, argv[optind], argv[optind + 1], ack, &version);
    if (err == WB_OK) {
        printf("%" PRId64 "\n", version);
        status = 0;
    } else {
        status = wbctl_fail("del", err);
    }
    wb_client_close(client);
    return status;
}
