/* test_redis_acl.c — issue 15 item 5: Redis ACL users (redis.user, AUTH user
 * password) against the real services.
 *
 * The user gets only the commands wbcache sends (WB_TEST_ACL_COMMANDS, the
 * line deploy/README-k8s.md documents): the library, the real wb-flusher
 * and the real wb-refresher all run as that user, the password coming from
 * WBCACHE_REDIS_PASSWORD as in production. The harness itself stays the
 * default user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "refresher_harness.h"

#define READY_MS 20000
#define PASSWORD "acl-test-Secret-7f3a"

/* Every command wbcache sends, directly or from its scripts (Redis checks
 * commands called by a script against the caller's user too). Keep in step
 * with deploy/README-k8s.md. */
#define WB_TEST_ACL_COMMANDS                                                                       \
    "+ping +select +config|get +script|load +evalsha +eval +time +get +set +del +type +hmget "     \
    "+hset +hdel +persist +pexpire +pttl +zadd +zrem +zcard +zrange +zrangebyscore +exists "       \
    "+cluster|slots +asking"

typedef struct {
    rh_t rh;
    char user[64];
} acl_t;

/* ACL SETUSER user reset on >PASSWORD ~* resetchannels -@all <the commands>. */
static void create_user(acl_t *t)
{
    const char *argv[64];
    size_t argvlen[64];
    int n = 0;
    char cmds[] = WB_TEST_ACL_COMMANDS;

    snprintf(t->user, sizeof(t->user), "wbtest-%ld", (long)getpid());
    argv[n++] = "ACL";
    argv[n++] = "SETUSER";
    argv[n++] = t->user;
    argv[n++] = "reset";
    argv[n++] = "on";
    argv[n++] = ">" PASSWORD;
    argv[n++] = "~*";
    argv[n++] = "resetchannels";
    argv[n++] = "-@all";
    for (char *save = NULL, *tok = strtok_r(cmds, " ", &save); tok && n < 64;
         tok = strtok_r(NULL, " ", &save))
        argv[n++] = tok;
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *r = NULL;
    char errstr[256];
    assert_int_equal(wb_rc_command(t->rh.redis, -1, n, argv, argvlen, &r, errstr, sizeof(errstr)),
                     WB_OK);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("ACL SETUSER: %s", r->str);
    freeReplyObject(r);
}

static void start_ready(rh_t *rh, int slot)
{
    rh_start(rh, slot);
    if (rh_wait_http(rh, slot, "/readyz", 200, READY_MS) != 200) {
        rh_dump_log(rh, slot);
        fail_msg("child %d did not become ready", slot);
    }
}

static int wait_row(rh_t *rh, const char *id, const char *want, int ms)
{
    int64_t end = wb_time_mono_ms() + ms, ver = 0;
    char value[256];
    int deleted = 0;
    do {
        if (rh_get_row(rh, id, value, sizeof(value), &ver, &deleted) && !deleted &&
            strcmp(value, want) == 0)
            return 1;
        usleep(50000);
    } while (wb_time_mono_ms() < end);
    return 0;
}

/* 1 when key left the dirty index within ms (the flusher clean-marked it). */
static int wait_clean(rh_t *rh, const char *key, int ms)
{
    int64_t end = wb_time_mono_ms() + ms;
    char idx[256];
    rh_dirty_shard(rh, key, idx, sizeof(idx));
    do {
        redisReply *r = wb_test_redis(rh->redis, "ZSCORE %s %s", idx, key);
        int clean = r && r->type == REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (clean) return 1;
        usleep(50000);
    } while (wb_time_mono_ms() < end);
    return 0;
}

/* Entries of ACL LOG for user other than failed AUTHs: a command or key
 * the user was denied (wbcache tolerates a denied CONFIG GET, so a missing
 * permission could otherwise go unnoticed). */
static int acl_denials(rh_t *rh, const char *user)
{
    redisReply *r = wb_test_redis(rh->redis, "ACL LOG 128");
    int denials = 0;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *who = "", *reason = "", *object = "";
        for (size_t j = 0; j + 1 < e->elements; j += 2) {
            const char *name = e->element[j]->str, *val = e->element[j + 1]->str;
            if (!name || !val) continue;
            if (strcmp(name, "username") == 0) who = val;
            if (strcmp(name, "reason") == 0) reason = val;
            if (strcmp(name, "object") == 0) object = val;
        }
        if (strcmp(who, user) == 0 && strcmp(reason, "auth") != 0) {
            printf("ACL LOG: %s denied %s (%s)\n", who, object, reason);
            denials++;
        }
    }
    freeReplyObject(r);
    return denials;
}

/* The user with only WB_TEST_ACL_COMMANDS: put (ack: log), get, the
 * flusher applies the write to PostgreSQL and clean-marks the entry, the
 * refresher is ready (its sweeper reads the dirty index), a delete goes
 * through too, and Redis's ACL LOG shows no denied command or key. */
static void acl_user_with_the_minimal_commands_runs_everything(void **state)
{
    acl_t *t = *state;
    rh_t *rh = &t->rh;
    wb_client_t *c = NULL;
    wb_value_t v = {0};
    char errstr[512], key[256];

    rh_setup(rh, "acl", "  sweep_interval_ms: 200\n  sweep_after_ms: 1000\n");
    create_user(t);
    setenv("WB_TEST_REDIS_USER", t->user, 1);
    setenv("WBCACHE_REDIS_PASSWORD", PASSWORD, 1);
    start_ready(rh, RH_FLUSHER_SLOT);
    start_ready(rh, 0);
    if (wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr, sizeof(errstr)) != WB_OK)
        fail_msg("wb_client_open as %s: %s", t->user, errstr);

    assert_int_equal(wb_put(c, "item", "a1", "v-acl", 5, WB_ACK_LOG, NULL), WB_OK);
    assert_int_equal(wb_get(c, "item", "a1", &v), WB_OK);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.data, "v-acl", 5);
    wb_value_free(&v);
    assert_true(wait_row(rh, "a1", "v-acl", 15000));
    rh_key(rh, "a1", key, sizeof(key));
    assert_true(wait_clean(rh, key, 15000));
    assert_int_equal(wb_del(c, "item", "a1", WB_ACK_LOG, NULL), WB_OK);
    assert_int_equal(wb_get(c, "item", "a1", &v), WB_ERR_NOT_FOUND);
    wb_client_close(c);

    /* Really that user: the default user's password-less connection is not
     * what the children used (CLIENT LIST names the user of each). */
    redisReply *r = wb_test_redis(rh->redis, "CLIENT LIST");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char want[96];
    snprintf(want, sizeof(want), "user=%s ", t->user);
    assert_non_null(strstr(r->str, want));
    freeReplyObject(r);
    /* And it was never denied anything: the list is complete. */
    assert_int_equal(acl_denials(rh, t->user), 0);
}

/* 1 when the file at path has a line containing what. */
static int log_has(const char *path, const char *what)
{
    char line[2048];
    int found = 0;
    FILE *f = fopen(path, "r");

    if (!f) return 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* A wrong password: a clear error naming the user and the server, never
 * the password (neither the wrong one nor the right one), from the
 * library's open, wbctl and the refresher (log, not ready). */
static void wrong_password_is_a_clear_error(void **state)
{
    acl_t *t = *state;
    rh_t *rh = &t->rh;
    wb_client_t *c = NULL;
    char errstr[512] = "";
    const char *wrong = "not-the-Password-91c2";

    rh_setup(rh, "aclbad", NULL);
    create_user(t);
    setenv("WB_TEST_REDIS_USER", t->user, 1);
    setenv("WBCACHE_REDIS_PASSWORD", wrong, 1);
    wb_err_t err = wb_client_open(rh->cfg[0], NULL, NULL, &c, errstr, sizeof(errstr));
    assert_int_not_equal(err, WB_OK);
    assert_null(c);
    printf("wb_client_open: %s\n", errstr);
    char want[128];
    snprintf(want, sizeof(want), "AUTH as user '%s'", t->user);
    assert_non_null(strstr(errstr, want));
    assert_non_null(strstr(errstr, "WRONGPASS"));
    assert_non_null(strstr(errstr, rh_env("WB_REDIS_PORT", "26370")));
    assert_null(strstr(errstr, wrong));
    assert_null(strstr(errstr, PASSWORD));

    /* wbctl says the same, without the password. */
    char cmd[600], out[4096] = "";
    snprintf(cmd, sizeof(cmd), "%s/wbctl -c '%s' status 2>&1", WB_BINARY_DIR, rh->cfg[0]);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_not_equal(pclose(p), 0);
    printf("wbctl status: %s", out);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "WRONGPASS"));
    assert_null(strstr(out, wrong));
    assert_null(strstr(out, PASSWORD));

    /* The refresher stays not ready and logs why, without the password. */
    rh_start(rh, 0);
    int logged = 0;
    for (int64_t end = wb_time_mono_ms() + 15000; !logged && wb_time_mono_ms() < end;) {
        usleep(100000);
        logged = log_has(rh->log[0], "WRONGPASS") && log_has(rh->log[0], want);
    }
    if (!logged) rh_dump_log(rh, 0);
    assert_true(logged);
    assert_int_not_equal(rh_http(rh, 0, "/readyz", out, sizeof(out)), 200);
    printf("refresher /readyz: %s\n", out);
    assert_false(log_has(rh->log[0], wrong));
    assert_false(log_has(rh->log[0], PASSWORD));
}

static int setup(void **state)
{
    acl_t *t = calloc(1, sizeof(*t));
    *state = t;
    return t ? 0 : -1;
}

static int teardown(void **state)
{
    acl_t *t = *state;
    unsetenv("WB_TEST_REDIS_USER");
    unsetenv("WBCACHE_REDIS_PASSWORD");
    if (t->user[0] && t->rh.redis)
        freeReplyObject(wb_test_redis(t->rh.redis, "ACL DELUSER %s", t->user));
    if (t->rh.conf) rh_teardown(&t->rh);
    free(t);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acl_user_with_the_minimal_commands_runs_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wrong_password_is_a_clear_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
