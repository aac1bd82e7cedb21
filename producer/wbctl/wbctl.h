/* wbctl.h — subcommands of the wbctl operator tool. */
#ifndef WBCTL_H
#define WBCTL_H

#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "wb_config.h"

/* Every subcommand gets its arguments after the command word (argv[0] is
 * the command word) and the parsed global options. Returns the process
 * exit status: 0 ok, 1 operation failed, 2 usage or config error. */
typedef struct wbctl_opts_s {
    const char *config_path; /* -c FILE, or NULL for the default */
} wbctl_opts_t;

int wbctl_cmd_config(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_put(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_get(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_del(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_put_through(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_status(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_load(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_dlq(const wbctl_opts_t *opts, int argc, char **argv);
int wbctl_cmd_warm(const wbctl_opts_t *opts, int argc, char **argv);

/* ---- helpers shared by the client subcommands (wbctl_client.c) ---- */

/* Exit status of a failed operation: 3 for WB_ERR_NOT_FOUND, else 1. */
#define WBCTL_EXIT_NOT_FOUND 3

/* Loads the config (errors printed) and opens a client whose library log
 * lines at WARN and above go to stderr. *confp (may be NULL) borrows the
 * client's config (valid until wb_client_close). NULL on failure, after
 * printing why; *status then holds the exit status (2 config, 1 connect). */
wb_client_t *wbctl_client_open(const wbctl_opts_t *opts, const wb_config_t **confp, int *status);

/* As wbctl_client_open for a config already loaded; conf is the client's
 * on success and destroyed on failure. */
wb_client_t *wbctl_client_from_config(wb_config_t *conf, int *status);

/* Reads the value argument: arg itself, or all of in (stdin) when arg is
 * NULL or "-", reading no more than max + 1 bytes of it: a longer value is
 * refused with "larger than producer.max_value_bytes". *buf is malloc'ed
 * (caller frees). Returns 0, or -1 after printing the error. */
int wbctl_read_value(const char *arg, FILE *in, size_t max, char **buf, size_t *len);

/* Writes len bytes at data to out as they are, or, when tty is set (out is a
 * terminal: isatty), with every byte that could drive the terminal escaped:
 * control bytes other than newline and tab, DEL, the C1 controls
 * (U+0080..U+009F) and bytes that are not UTF-8 become \xHH (\r for CR).
 * Returns 0, or -1 on a write error. */
int wbctl_write_shown(FILE *out, const void *data, size_t len, int tty);

/* "cache" | "log" -> *ack. Returns 0, or -1 for anything else. */
int wbctl_parse_ack(const char *s, wb_ack_t *ack);

/* Prints "wbctl: what: <error>" to stderr and returns the exit status. */
int wbctl_fail(const char *what, wb_err_t err);

/* Parses the options of put and del (--ack cache|log|replica, --help), leaving
 * optind at the first operand. Returns 0, or -1 on --help or a bad option
 * (the caller prints its usage). */
int wbctl_parse_ack_opts(int argc, char **argv, wb_ack_t *ack);

/* Loads the config, wbctl_read_value(arg, stdin, producer.max_value_bytes)
 * into *value / *len, then opens the client. NULL on failure with *status
 * set (2 config, 1 when the value cannot be read or is too large) and
 * nothing left to free; else the caller frees *value. */
wb_client_t *wbctl_client_open_value(const wbctl_opts_t *opts, const char *arg, char **value,
                                     size_t *len, int *status);

/* Ends a write subcommand: on WB_OK prints version and returns 0, else
 * returns wbctl_fail(what, err). */
int wbctl_print_version(const char *what, wb_err_t err, int64_t version);

/* Partitions of topic (from metadata, waiting at most timeout_ms) into a
 * new list (caller destroys); NULL after printing "wbctl: what: ..." . */
rd_kafka_topic_partition_list_t *wbctl_topic_partitions(rd_kafka_t *rk, const char *topic,
                                                        const char *what, int timeout_ms);

#endif /* WBCTL_H */
