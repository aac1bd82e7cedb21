/* cmd_put.c — `wbctl put ENTITY ID [VALUE|-] [--ack cache|log]`: one write-behind put. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] put ENTITY ID [VALUE|-] [--ack cache|log]\n"
                    "  VALUE omitted or \"-\": read from stdin. Prints the version.\n");
    return 2;
}

int wbctl_cmd_put(const wbctl_opts_t *opts, int argc, char **argv)
{
    static const struct option lopts[] = {{"ack", required_argument, NULL, 'a'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    wb_ack_t ack = WB_ACK_DEFAULT;
    wb_client_t *client = NULL;
    char *value = NULL;
    size_t len = 0;
    int64_t version = 0;
    int c, status;
    wb_err_t err;

    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        if (c == 'a' && wbctl_parse_ack(optarg, &ack) == 0) continue;
        return usage();
    }
    if (argc - optind < 2 || argc - optind > 3) return usage();
    if (wbctl_read_value(argc - optind == 3 ? argv[optind + 2] : NULL, &value, &len) != 0) return 1;
    client = wbctl_client_open(opts, NULL, &status);
    if (!client) {
        free(value);
        return status;
    }
    err = wb_put(client, argv[optind], argv[optind + 1], value, len, ack, &version);
    if (err == WB_OK) {
        printf("%" PRId64 "\n", version);
        status = 0;
    } else {
        status = wbctl_fail("put", err);
    }
    wb_client_close(client);
    free(value);
    return status;
}
