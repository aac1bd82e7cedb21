/* test_sha1.c — SHA-1 against the FIPS 180 test vectors, across the padding boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wb_sha1.h"

static void check(const char *msg, size_t len, const char *want)
{
    char got[WB_SHA1_HEX_SIZE];

    wb_sha1_hex(msg, len, got);
    assert_string_equal(got, want);
}

/* FIPS 180-2 appendix A (one block) and B (two blocks: 56 bytes leave no
 * room for the length in the first). */
static void test_fips_vectors(void **state)
{
    static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    (void)state;
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check(NULL, 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

/* FIPS 180-2 appendix C: one million times "a" (many full blocks). */
static void test_million_a(void **state)
{
    char *m = malloc(1000000);

    (void)state;
    assert_non_null(m);
    memset(m, 'a', 1000000);
    check(m, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(m);
}

/* The NIST "long message" vector of 896 bits (FIPS 180-4 examples). */
static void test_896_bits(void **state)
{
    static const char msg[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                              "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

    (void)state;
    check(msg, strlen(msg), "a49b2446a02c645bf419f995b67091253a04a259");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_896_bits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
