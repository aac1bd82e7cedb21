/* cmd_get.c — `wbctl get ENTITY ID...`: read-through gets; the values go to stdout. One id is
 * one wb_get; several are one wb_get_many. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wbctl.h"

static int usage(void)
{
    fprintf(stderr, "usage: wbctl [-c FILE] get [--verbose] ENTITY ID...\n"
                    "  One ID: prints the value and a newline (exit 3 if not found).\n"
                    "  Several IDs (read with one wb_get_many): one line per ID, in order:\n"
                    "  \"ID<TAB>VALUE\" when found, \"ID\" alone when not (the reason on\n"
                    "  stderr); exit 0 if every ID was found, 3 if some were not found and\n"
                    "  no other error happened, else 1. Control bytes are escaped as \\xHH\n"
                    "  when stdout is a terminal. --verbose also prints \"version V,\n"
                    "  hit|loaded\" (several IDs: \"ID: version V, hit|loaded\") to stderr.\n");
    return 2;
}

/* Prints the answers of a wb_get_many; returns the exit status. */
static int print_many(char **ids, size_t n, const wb_get_many_t *got, int verbose)
{
    int tty = isatty(STDOUT_FILENO), status = 0;

    for (size_t i = 0; i < n; i++) {
        const wb_value_t *v = &got->values[i];

        /* A valid id has no control bytes; an invalid one is escaped. */
        wbctl_write_shown(stdout, ids[i], strlen(ids[i]), 1);
        if (got->errs[i] != WB_OK) {
            fputc('\n', stdout);
            fprintf(stderr, "wbctl: get %s: %s\n", ids[i], wb_err2str(got->errs[i]));
            if (got->errs[i] != WB_ERR_NOT_FOUND)
                status = 1;
            else if (status == 0)
                status = WBCTL_EXIT_NOT_FOUND;
            continue;
        }
        fputc('\t', stdout);
        wbctl_write_shown(stdout, v->data, v->len, tty);
        fputc('\n', stdout);
        if (verbose)
            fprintf(stderr, "%s: version %" PRId64 ", %s\n", ids[i], v->version,
                    v->hit ? "hit" : "loaded");
    }
    return status;
}

static int get_many(wb_client_t *client, const char *entity, char **ids, size_t n, int verbose)
{
    wb_value_t *values = calloc(n, sizeof(*values));
    wb_err_t *errs = calloc(n, sizeof(*errs));
    wb_get_many_t got = {.size = sizeof(got), .values = values, .errs = errs};
    wb_err_t err;
    int status;

    if (!values || !errs) {
        free(values);
        free(errs);
        return wbctl_fail("get", WB_ERR_NOMEM);
    }
    err = wb_get_many(client, entity, (const char *const *)ids, n, &got);
    if (err == WB_ERR_UNKNOWN_ENTITY)
        status = wbctl_fail("get", err);
    else
        status = print_many(ids, n, &got, verbose);
    for (size_t i = 0; i < n; i++)
        wb_value_free(&values[i]);
    free(values);
    free(errs);
    return status;
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
    if (argc - optind < 2) return usage();
    client = wbctl_client_open(opts, NULL, &status);
    if (!client) return status;
    if (argc - optind > 2) {
        status =
            get_many(client, argv[optind], argv + optind + 1, (size_t)(argc - optind - 1), verbose);
        wb_client_close(client);
        return status;
    }
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
