/* test_wbctl_client.c — wbctl's value input and output (issue 14): `put -`
 * reads a bounded amount of stdin, `get` and `status` show no control bytes
 * on a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wbctl.h"

/* A stream of n bytes 'a' (a file: fmemopen would need the bytes in memory). */
static FILE *stream_of(size_t n)
{
    FILE *f = tmpfile();
    char chunk[4096];

    assert_non_null(f);
    memset(chunk, 'a', sizeof(chunk));
    for (size_t left = n; left > 0;) {
        size_t k = left < sizeof(chunk) ? left : sizeof(chunk);

        assert_int_equal(fwrite(chunk, 1, k, f), k);
        left -= k;
    }
    rewind(f);
    return f;
}

static void test_read_value_bounded(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *in;

    (void)state;
    /* Exactly the limit: read whole. */
    in = stream_of(10000);
    assert_int_equal(wbctl_read_value("-", in, 10000, &buf, &len), 0);
    assert_int_equal(len, 10000);
    assert_int_equal(buf[9999], 'a');
    free(buf);
    fclose(in);
    /* One byte more: refused. */
    in = stream_of(10001);
    buf = NULL;
    assert_int_equal(wbctl_read_value(NULL, in, 10000, &buf, &len), -1);
    assert_null(buf);
    fclose(in);
    /* 8 MiB behind a 1000-byte limit: refused after reading 1001 bytes. */
    in = stream_of(8u << 20);
    assert_int_equal(wbctl_read_value("-", in, 1000, &buf, &len), -1);
    assert_int_equal(ftell(in), 1001);
    fclose(in);
    /* An argument is the value itself; stdin is not read. */
    assert_int_equal(wbctl_read_value("v", NULL, 0, &buf, &len), 0);
    assert_int_equal(len, 1);
    assert_string_equal(buf, "v");
    free(buf);
}

static void shown(const char *data, size_t len, int tty, const char *want)
{
    char out[512];
    FILE *f = fmemopen(out, sizeof(out), "w");

    assert_non_null(f);
    assert_int_equal(wbctl_write_shown(f, data, len, tty), 0);
    fputc('\0', f);
    fclose(f);
    assert_memory_equal(out, want, strlen(want) + 1);
}

static void test_write_shown_escapes_on_a_terminal(void **state)
{
    /* ESC [ 2 J (clear screen), CR, BEL, DEL, NUL, a raw C1 CSI byte, the
     * UTF-8 C1 CSI (U+009B), a stray continuation byte; kept: text,
     * newline, tab and real UTF-8 (é, U+00A0). */
    static const char v[] = "a\x1b[2Jb\rc\x07\x7f\x00"
                            "d\x9b\xc2\x9b\x80\n\t\xc3\xa9\xc2\xa0z";

    (void)state;
    shown(v, sizeof(v) - 1, 1,
          "a\\x1b[2Jb\\rc\\x07\\x7f\\x00d\\x9b\\xc2\\x9b\\x80\n\t\xc3\xa9\xc2\xa0z");
    /* Not a terminal (a pipe, a file): the bytes as they are. */
    shown("a\x1b[2Jb", 6, 0, "a\x1b[2Jb");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_value_bounded),
        cmocka_unit_test(test_write_shown_escapes_on_a_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
