/* wb_pg.c — PostgreSQL connection setup, identifier quoting and error classification. */
#include "wb_pg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wb_util.h"

/* Replaces every occurrence of secret in the NUL-terminated buf (in
 * place, bounded by buf_size) with "****" — as a whole word only, so a
 * short password does not mangle words that merely contain it. */
static void redact(char *buf, size_t buf_size, const char *secret)
{
    size_t slen, mlen = 4;
    char *p;

    if (!buf || !secret || !secret[0]) return;
    slen = strlen(secret);
    p = buf;
    while ((p = strstr(p, secret)) != NULL) {
        size_t tail = strlen(p + slen) + 1;

        if ((p > buf && isalnum((unsigned char)p[-1])) || isalnum((unsigned char)p[slen])) {
            p++;
            continue;
        }
        if ((size_t)(p - buf) + mlen >= buf_size) {
            *p = '\0'; /* no room even for the mask: cut the secret off */
            break;
        }
        if ((size_t)(p - buf) + mlen + tail > buf_size)
            tail = buf_size - (size_t)(p - buf) - mlen; /* truncate the end */
        memmove(p + mlen, p + slen, tail);
        memcpy(p, "****", mlen);
        buf[buf_size - 1] = '\0';
        p += mlen;
    }
}

/* The password inside the DSN, if any (malloc'ed; NULL if none or the
 * DSN does not parse). */
static char *dsn_password(const char *dsn)
{
    PQconninfoOption *opts, *o;
    char *pw = NULL;

    if (!dsn || !dsn[0]) return NULL;
    opts = PQconninfoParse(dsn, NULL);
    if (!opts) return NULL;
    for (o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0]) pw = strdup(o->val);
    PQconninfoFree(opts);
    return pw;
}

static void chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* errstr = prefix + libpq's message with both possible passwords hidden. */
static void set_conn_err(char *errstr, size_t errstr_size, const char *prefix, const char *msg,
                         const wb_config_t *conf)
{
    char *pw;

    if (!errstr || errstr_size == 0) return;
    wb_set_err(errstr, errstr_size, "%s: %s", prefix, msg && msg[0] ? msg : "unknown error");
    chomp(errstr);
    redact(errstr, errstr_size, conf->postgres.password);
    pw = dsn_password(conf->postgres.dsn);
    redact(errstr, errstr_size, pw);
    free(pw);
}

/* libpq prints NOTICEs to stderr by default; a library must not print.
 * (Routed to wb_log once the daemons want them.) */
static void notice_quiet(void *arg, const char *message)
{
}

/* SET the session settings wbcache relies on. */
static wb_err_t session_setup(PGconn *conn, const wb_config_t *conf, char *errstr,
                              size_t errstr_size)
{
    char sql[64];

    if (conf->postgres.statement_timeout_ms <= 0) return WB_OK;
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", conf->postgres.statement_timeout_ms);
    return wb_pg_exec_ok(conn, sql, errstr, errstr_size);
}

/* A DSN that looks like it carries a password: libpq's parse error could
 * quote a piece of it, so that message is not shown. */
static int dsn_may_hold_secret(const char *dsn)
{
    const char *scheme = strstr(dsn, "://"), *at;

    if (strcasestr(dsn, "password")) return 1;
    if (scheme && (at = strchr(scheme + 3, '@')) != NULL)
        return memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) != NULL;
    return 0;
}

/* 1 if the parsed DSN gives keyword a value (an explicit setting wins). */
static int dsn_sets(const PQconninfoOption *parsed, const char *keyword)
{
    for (const PQconninfoOption *o = parsed; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0) return o->val && o->val[0];
    return 0;
}

wb_err_t wb_pg_connect(const wb_config_t *conf, PGconn **out, char *errstr, size_t errstr_size)
{
    const char *keys[12], *vals[12];
    char timeout[16], user_timeout[16];
    PQconninfoOption *parsed = NULL;
    PGconn *conn = NULL;
    wb_err_t err;
    int n = 0;

    if (out) *out = NULL;
    if (!conf || !out) {
        wb_set_err(errstr, errstr_size, "postgres connect: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (conf->postgres.dsn && conf->postgres.dsn[0]) {
        char *perr = NULL;

        parsed = PQconninfoParse(conf->postgres.dsn, &perr);
        if (!parsed) {
            if (perr && !dsn_may_hold_secret(conf->postgres.dsn)) {
                wb_set_err(errstr, errstr_size, "postgres.dsn: %s", perr);
                chomp(errstr);
            } else {
                wb_set_err(errstr, errstr_size,
                           "postgres.dsn: not a valid connection string or URI (detail hidden: "
                           "it may contain the password)");
            }
            PQfreemem(perr);
            return WB_ERR_CONFIG;
        }
        /* expand_dbname: this first "dbname" is the whole DSN; the
         * parameters after it override what the DSN says. */
        keys[n] = "dbname", vals[n++] = conf->postgres.dsn;
    }
    if (conf->postgres.password && conf->postgres.password[0])
        keys[n] = "password", vals[n++] = conf->postgres.password;
    if (conf->postgres.connect_timeout_ms > 0) {
        /* libpq counts whole seconds (and turns 1 into 2). */
        snprintf(timeout, sizeof(timeout), "%d", (conf->postgres.connect_timeout_ms + 999) / 1000);
        keys[n] = "connect_timeout", vals[n++] = timeout;
    }
    /* A peer that vanished without a RST (network partition, a host that
     * died) would leave a query waiting for the kernel's default of ~2 h of
     * keepalive silence or ~15 min of retransmits. Keepalives notice a dead
     * idle peer in 10 + 3 * 5 s; tcp_user_timeout closes a connection whose
     * sent data stays unacknowledged (at least 5 s, so a retransmit or two
     * on a busy link is no failure). What the DSN sets explicitly wins. */
    if (!dsn_sets(parsed, "keepalives")) keys[n] = "keepalives", vals[n++] = "1";
    if (!dsn_sets(parsed, "keepalives_idle")) keys[n] = "keepalives_idle", vals[n++] = "10";
    if (!dsn_sets(parsed, "keepalives_interval")) keys[n] = "keepalives_interval", vals[n++] = "5";
    if (!dsn_sets(parsed, "keepalives_count")) keys[n] = "keepalives_count", vals[n++] = "3";
    if (!dsn_sets(parsed, "tcp_user_timeout")) {
        int ms =
            conf->postgres.connect_timeout_ms > 5000 ? conf->postgres.connect_timeout_ms : 5000;

        snprintf(user_timeout, sizeof(user_timeout), "%d", ms);
        keys[n] = "tcp_user_timeout", vals[n++] = user_timeout;
    }
    PQconninfoFree(parsed);
    keys[n] = "fallback_application_name", vals[n++] = "wbcache";
    keys[n] = NULL, vals[n] = NULL;

    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        wb_set_err(errstr, errstr_size, "postgres connect: out of memory");
        return WB_ERR_NOMEM;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(conn);

        set_conn_err(errstr, errstr_size, "postgres connect", msg, conf);
        err = strstr(msg, "timeout expired") ? WB_ERR_TIMEOUT : WB_ERR_PG;
        goto fail;
    }
    PQsetNoticeProcessor(conn, notice_quiet, NULL);
    err = session_setup(conn, conf, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    *out = conn;
    return WB_OK;

fail:
    PQfinish(conn);
    return err;
}

wb_err_t wb_pg_reset(PGconn *conn, const wb_config_t *conf, char *errstr, size_t errstr_size)
{
    if (!conn || !conf) {
        wb_set_err(errstr, errstr_size, "postgres reset: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(conn);

        set_conn_err(errstr, errstr_size, "postgres reconnect", msg, conf);
        return strstr(msg, "timeout expired") ? WB_ERR_TIMEOUT : WB_ERR_PG;
    }
    return session_setup(conn, conf, errstr, errstr_size);
}

wb_err_t wb_pg_result_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                            size_t errstr_size)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (!what) what = "postgres";
    if (primary)
        wb_set_err(errstr, errstr_size, "%s: %s (SQLSTATE %s)", what, primary, state ? state : "?");
    else if (res && PQresultErrorMessage(res)[0])
        wb_set_err(errstr, errstr_size, "%s: %s", what, PQresultErrorMessage(res));
    else if (res && PQresultStatus(res) != PGRES_FATAL_ERROR)
        wb_set_err(errstr, errstr_size, "%s: unexpected result %s", what,
                   PQresStatus(PQresultStatus(res)));
    else
        wb_set_err(errstr, errstr_size, "%s: %s", what,
                   conn && PQerrorMessage(conn)[0] ? PQerrorMessage(conn) : "no result");
    if (errstr && errstr_size) chomp(errstr);
    if (state && strcmp(state, "57014") == 0) return WB_ERR_TIMEOUT;
    return WB_ERR_PG;
}

wb_err_t wb_pg_exec_ok(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *res;
    wb_err_t err = WB_OK;

    if (!conn || !sql) {
        wb_set_err(errstr, errstr_size, "postgres exec: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    res = PQexec(conn, sql);
    if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK))
        err = wb_pg_result_error(conn, res, "postgres exec", errstr, errstr_size);
    PQclear(res);
    return err;
}

wb_err_t wb_pg_quote_ident(const char *name, char *out, size_t out_size)
{
    const char *p = name;
    size_t o = 0;

    if (!out || out_size == 0) return WB_ERR_INVALID_ARG;
    out[0] = '\0';
    if (!name || !name[0]) return WB_ERR_INVALID_ARG;
    for (;;) {
        const char *end = strchr(p, '.');
        size_t len = end ? (size_t)(end - p) : strlen(p), need, i;

        if (len == 0 || len > WB_PG_IDENT_MAX) goto invalid;
        /* this part: 2 quotes + bytes + one more per '"', then '.' or NUL */
        need = len + 3;
        for (i = 0; i < len; i++)
            need += p[i] == '"';
        if (o + need > out_size) goto invalid;
        out[o++] = '"';
        for (i = 0; i < len; i++) {
            if (p[i] == '"') out[o++] = '"';
            out[o++] = p[i];
        }
        out[o++] = '"';
        if (!end) break;
        out[o++] = '.';
        p = end + 1;
    }
    out[o] = '\0';
    return WB_OK;

invalid:
    out[0] = '\0';
    return WB_ERR_INVALID_ARG;
}

int wb_pg_sqlstate_is_transient(const char *sqlstate)
{
    static const char *const classes[] = {"08", "53", "57", "40", "58", "28"};
    static const char *const codes[] = {"55P03", "55006", "25006", "42P01",
                                        "42501", "3D000", "3F000"};
    size_t i;

    if (!sqlstate || strlen(sqlstate) != 5) return 1;
    for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (strncmp(sqlstate, classes[i], 2) == 0) return 1;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(sqlstate, codes[i]) == 0) return 1;
    return 0;
}

int wb_pg_result_is_transient(const PGconn *conn, const PGresult *res)
{
    if (!conn || PQstatus(conn) == CONNECTION_BAD || !res) return 1;
    return wb_pg_sqlstate_is_transient(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}
