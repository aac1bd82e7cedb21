/* test_pg.c — wb_pg against the real PostgreSQL: connect, quoting, secrets, error classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "wb_config.h"
#include "wb_pg.h"
#include "wb_table.h"

static wb_config_t *conf;
static PGconn *conn;
static char errstr[1024];

static const char *config_path(void)
{
    const char *p = getenv("WB_CONFIG");

    return p && p[0] ? p : WB_SOURCE_DIR "/config/wbcache.yaml";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    if (wb_config_load(config_path(), &conf, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "config %s: %s\n", config_path(), errstr);
        return -1;
    }
    if (wb_pg_connect(conf, &conn, errstr, sizeof(errstr)) != WB_OK) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    PQfinish(conn);
    wb_config_destroy(conf);
    return 0;
}

/* One text value of a one-row query. */
static char *scalar(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    char *v;

    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void test_connect_select(void **state)
{
    char *v = scalar(conn, "select 1");
    char buf[32];

    assert_string_equal(v, "1");
    free(v);
    /* The session carries the configured statement timeout. */
    v = scalar(conn, "select current_setting('statement_timeout')");
    snprintf(buf, sizeof(buf), "%ds", conf->postgres.statement_timeout_ms / 1000);
    if (conf->postgres.statement_timeout_ms % 1000 == 0) assert_string_equal(v, buf);
    free(v);
    v = scalar(conn, "select current_setting('application_name')");
    assert_string_equal(v, "wbcache");
    free(v);
    assert_int_equal(wb_pg_exec_ok(conn, "select 1; select 2", errstr, sizeof(errstr)), WB_OK);
}

/* A table name from config with quotes, a semicolon and spaces becomes one
 * identifier, used as such in real DDL and DML. */
static void test_quote_ident_real_table(void **state)
{
    char name[96], qualified[128], quoted[WB_PG_QUOTED_MAX], sql[512];
    const char *params[1];
    PGresult *res;

    snprintf(name, sizeof(name), "wbtest \"odd\"; DROP TABLE x; -- %ld", (long)getpid());
    snprintf(qualified, sizeof(qualified), "public.%s", name);
    assert_int_equal(wb_pg_quote_ident(qualified, quoted, sizeof(quoted)), WB_OK);

    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", quoted);
    assert_int_equal(wb_pg_exec_ok(conn, sql, errstr, sizeof(errstr)), WB_OK);
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY, v text)", quoted);
    assert_int_equal(wb_pg_exec_ok(conn, sql, errstr, sizeof(errstr)), WB_OK);
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1, 'one')", quoted);
    assert_int_equal(wb_pg_exec_ok(conn, sql, errstr, sizeof(errstr)), WB_OK);

    params[0] = name;
    res = PQexecParams(conn,
                       "select count(*) from pg_class c join pg_namespace n on n.oid = "
                       "c.relnamespace where n.nspname = 'public' and c.relname = $1",
                       1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);

    snprintf(sql, sizeof(sql), "DROP TABLE %s", quoted);
    assert_int_equal(wb_pg_exec_ok(conn, sql, errstr, sizeof(errstr)), WB_OK);
}

static wb_err_t connect_with(const char *dsn, const char *password, PGconn **out)
{
    char *saved_dsn = conf->postgres.dsn, *saved_pw = conf->postgres.password;
    wb_err_t err;

    conf->postgres.dsn = (char *)dsn;
    conf->postgres.password = (char *)password;
    err = wb_pg_connect(conf, out, errstr, sizeof(errstr));
    conf->postgres.dsn = saved_dsn;
    conf->postgres.password = saved_pw;
    return err;
}

static void test_wrong_password_not_shown(void **state)
{
    char pw[64], dsn[512];
    PGconn *c = (PGconn *)1;

    snprintf(pw, sizeof(pw), "WrongPw%ldXyz", (long)getpid());
    assert_int_equal(connect_with(conf->postgres.dsn, pw, &c), WB_ERR_PG);
    assert_null(c);
    assert_non_null(strstr(errstr, "password authentication failed"));
    assert_null(strstr(errstr, pw));

    /* The same with the wrong password inside the DSN (the later keyword wins). */
    snprintf(dsn, sizeof(dsn), "%s password=%s", conf->postgres.dsn, pw);
    assert_int_equal(connect_with(dsn, NULL, &c), WB_ERR_PG);
    assert_non_null(strstr(errstr, "password authentication failed"));
    assert_null(strstr(errstr, pw));

    /* A malformed DSN holding a password: a config error that quotes none of it. */
    assert_int_equal(connect_with("host=127.0.0.1 password=hunter2 oops", NULL, &c), WB_ERR_CONFIG);
    assert_null(strstr(errstr, "hunter2"));
    assert_non_null(strstr(errstr, "postgres.dsn"));
}

static void test_closed_port_fast(void **state)
{
    PGconn *c = NULL;
    int64_t t0 = now_ms();

    assert_int_equal(connect_with("host=127.0.0.1 port=1 dbname=x user=y", NULL, &c), WB_ERR_PG);
    assert_null(c);
    assert_non_null(strstr(errstr, "port 1"));
    assert_true(now_ms() - t0 < 3000);
}

static void test_sqlstate_on_real_errors(void **state)
{
    PGresult *res;

    assert_int_equal(wb_pg_exec_ok(conn,
                                   "CREATE TEMP TABLE wbtest_uniq (id int PRIMARY KEY);"
                                   "INSERT INTO wbtest_uniq VALUES (1)",
                                   errstr, sizeof(errstr)),
                     WB_OK);

    res = PQexec(conn, "INSERT INTO wbtest_uniq VALUES (1)");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505");
    assert_false(wb_pg_result_is_transient(conn, res));
    PQclear(res);
    assert_int_equal(
        wb_pg_exec_ok(conn, "INSERT INTO wbtest_uniq VALUES (1)", errstr, sizeof(errstr)),
        WB_ERR_PG);
    assert_non_null(strstr(errstr, "23505"));

    res = PQexec(conn, "SELEC 1");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42601");
    assert_false(wb_pg_result_is_transient(conn, res));
    PQclear(res);

    /* A missing table is the operator's to fix, not the event's fault. */
    res = PQexec(conn, "SELECT * FROM wbtest_no_such_table_at_all");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P01");
    assert_true(wb_pg_result_is_transient(conn, res));
    PQclear(res);
}

static void test_statement_timeout(void **state)
{
    int saved = conf->postgres.statement_timeout_ms;
    PGconn *c = NULL;
    PGresult *res;
    int64_t t0;
    wb_err_t err;

    conf->postgres.statement_timeout_ms = 300;
    err = wb_pg_connect(conf, &c, errstr, sizeof(errstr));
    conf->postgres.statement_timeout_ms = saved;
    assert_int_equal(err, WB_OK);

    t0 = now_ms();
    assert_int_equal(wb_pg_exec_ok(c, "select pg_sleep(5)", errstr, sizeof(errstr)),
                     WB_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 3000);
    res = PQexec(c, "select pg_sleep(5)");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
    assert_true(wb_pg_result_is_transient(c, res));
    PQclear(res);
    PQfinish(c);
}

/* The server drops the session (restart, failover, idle kill): transient,
 * and wb_pg_reset brings it back with the session settings. */
static void test_terminated_session_is_transient(void **state)
{
    PGconn *victim = NULL;
    PGresult *res;
    char sql[128], *v;

    assert_int_equal(wb_pg_connect(conf, &victim, errstr, sizeof(errstr)), WB_OK);
    snprintf(sql, sizeof(sql), "select pg_terminate_backend(%d)", PQbackendPID(victim));
    v = scalar(conn, sql);
    assert_string_equal(v, "t");
    free(v);
    usleep(100000);

    res = PQexec(victim, "select 1");
    assert_int_not_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_true(wb_pg_result_is_transient(victim, res));
    PQclear(res);

    assert_int_equal(wb_pg_reset(victim, conf, errstr, sizeof(errstr)), WB_OK);
    v = scalar(victim, "select 1");
    assert_string_equal(v, "1");
    free(v);
    v = scalar(victim, "select current_setting('statement_timeout') <> '0'");
    assert_string_equal(v, conf->postgres.statement_timeout_ms > 0 ? "t" : "f");
    free(v);
    PQfinish(victim);
}

static int sockopt(PGconn *c, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);

    assert_int_equal(getsockopt(PQsocket(c), level, name, &v, &len), 0);
    return v;
}

/* A peer that vanishes without a RST must not hang a query for the
 * kernel's defaults (hours of keepalive silence, ~15 min of retransmits):
 * the socket carries short keepalives and a user timeout, and a DSN that
 * sets its own keeps it. */
static void test_keepalives_on_the_socket(void **state)
{
    int want_ut =
        conf->postgres.connect_timeout_ms > 5000 ? conf->postgres.connect_timeout_ms : 5000;
    char *saved = conf->postgres.dsn, dsn[1024];
    PGconn *c = NULL;

    if (PQstatus(conn) != CONNECTION_OK || !PQhost(conn) || PQhost(conn)[0] == '/') skip();
    assert_int_equal(sockopt(conn, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(sockopt(conn, IPPROTO_TCP, TCP_KEEPIDLE), 10);
    assert_int_equal(sockopt(conn, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    assert_int_equal(sockopt(conn, IPPROTO_TCP, TCP_KEEPCNT), 3);
    assert_int_equal(sockopt(conn, IPPROTO_TCP, TCP_USER_TIMEOUT), want_ut);

    if (!saved || strstr(saved, "://")) return; /* a URI: no key=value to append */
    snprintf(dsn, sizeof(dsn), "%s keepalives_idle=30 tcp_user_timeout=7000", saved);
    conf->postgres.dsn = dsn;
    wb_err_t err = wb_pg_connect(conf, &c, errstr, sizeof(errstr));
    conf->postgres.dsn = saved;
    assert_int_equal(err, WB_OK);
    assert_int_equal(sockopt(c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    assert_int_equal(sockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT), 7000);
    assert_int_equal(sockopt(c, IPPROTO_TCP, TCP_KEEPCNT), 3);
    PQfinish(c);
}

typedef struct purge_arg_s {
    wb_entity_t ent;
    size_t purged;
    wb_err_t err;
} purge_arg_t;

static void *purge_main(void *arg)
{
    purge_arg_t *p = arg;
    wb_table_purge_t req = {&p->ent, 60000, 100};
    wb_table_result_t res = {0};
    PGconn *c = NULL;
    char e[256];

    p->err = wb_pg_connect(conf, &c, e, sizeof(e));
    if (p->err == WB_OK) p->err = wb_table_purge(c, &req, &res, e, sizeof(e));
    p->purged = res.rows;
    PQfinish(c);
    return NULL;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* The purge picked an old tombstone while a flusher re-deleted the key
 * (newer version, fresh updated_at). Under READ COMMITTED the DELETE waits
 * for that transaction, then re-checks only its own WHERE against the new
 * row: the fresh tombstone must survive, or an older upsert arriving late
 * could bring the row back (invariant 4). */
static void test_purge_spares_a_fresh_tombstone(void **state)
{
    purge_arg_t arg;
    pthread_t th;
    char table[64], sql[512], *v;

    snprintf(table, sizeof(table), "wb_test_purge_%d", (int)getpid());
    memset(&arg, 0, sizeof(arg));
    arg.ent.name = "item";
    arg.ent.prefix = "item:";
    arg.ent.table = table;
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (key text PRIMARY KEY, value text, "
             "version bigint NOT NULL, deleted boolean NOT NULL, updated_at timestamptz NOT NULL); "
             "INSERT INTO %s VALUES ('k', NULL, 5, true, now() - interval '1 hour'), "
             "('old', NULL, 3, true, now() - interval '1 hour')",
             table, table, table);
    exec_ok(conn, sql);

    /* The flusher's transaction: re-deletes k, not committed yet. */
    exec_ok(conn, "BEGIN");
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET version = 9, deleted = true, updated_at = now() WHERE key = 'k'",
             table);
    exec_ok(conn, sql);
    assert_int_equal(pthread_create(&th, NULL, purge_main, &arg), 0);
    usleep(500000); /* the purge blocks on k's row lock */
    exec_ok(conn, "COMMIT");
    pthread_join(th, NULL);

    assert_int_equal(arg.err, WB_OK);
    assert_int_equal(arg.purged, 1); /* only "old" */
    snprintf(sql, sizeof(sql), "SELECT string_agg(key || ':' || version, ',' ORDER BY key) FROM %s",
             table);
    v = scalar(conn, sql);
    assert_string_equal(v, "k:9");
    free(v);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec_ok(conn, sql);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_select),
        cmocka_unit_test(test_quote_ident_real_table),
        cmocka_unit_test(test_wrong_password_not_shown),
        cmocka_unit_test(test_closed_port_fast),
        cmocka_unit_test(test_sqlstate_on_real_errors),
        cmocka_unit_test(test_statement_timeout),
        cmocka_unit_test(test_terminated_session_is_transient),
        cmocka_unit_test(test_keepalives_on_the_socket),
        cmocka_unit_test(test_purge_spares_a_fresh_tombstone),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
