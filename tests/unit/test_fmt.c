/* test_fmt.c -- unit tests of the number formatting (gm_fmt.h): every result is compared with what glibc's
 * snprintf writes for the same conversion ("%.<P>g", "%" PRIu64, "%" PRId64), the oracle, on random bit
 * patterns, the float32 values a sample table prints, ties, powers of ten and their neighbours, and the
 * values printf formats its own way (zero, infinities, NaN, subnormals). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gm_fmt.h"
#include "gm_rng.h"

/* Fails unless gm_fmt_g writes what snprintf writes for "%.<prec>g" of 'v'. */
static void check_g(double v, int prec) {
    char got[GM_FMT_G_LEN + 8], want[64];
    memset(got, 'x', sizeof got);
    size_t n = gm_fmt_g(got, v, prec);
    snprintf(want, sizeof want, "%.*g", prec, v);
    if (n != strlen(want) || strcmp(got, want) != 0)
        fail_msg("%%.%dg of %a: gm_fmt_g wrote '%s' (%zu), snprintf '%s'", prec, v, got, n, want);
}

/* Returns a double made of 64 random bits (any sign, exponent, NaN or infinity). */
static double random_bits(gm_rng_t *r) {
    uint64_t u = gm_rng_next(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Random bit patterns as doubles at every precision, and as float32 at 9 (what sample tables print). */
static void test_g_random_bits(void **state) {
    (void)state;
    gm_rng_t r;
    gm_rng_seed(&r, 1, 2, 3);
    for (int i = 0; i < 50000; i++) {
        double d = random_bits(&r);
        check_g(d, 17);
        check_g(d, 1 + (int)gm_rng_below(&r, 17));
        uint32_t w = (uint32_t)gm_rng_next(&r);
        float f;
        memcpy(&f, &w, sizeof f);
        check_g(f, 9);
    }
}

/* What a sample table holds: projected and geographic coordinates at 17 digits, covariates and targets as
 * float32 at 9, over the magnitudes they take. */
static void test_g_table_values(void **state) {
    (void)state;
    gm_rng_t r;
    gm_rng_seed(&r, 4, 5, 6);
    for (int i = 0; i < 50000; i++) {
        check_g(-2e6 + 1.2e7 * gm_rng_uniform(&r), 17);
        check_g(-180 + 360 * gm_rng_uniform(&r), 17);
        double scale = ldexp(1, (int)gm_rng_below(&r, 80) - 40);
        check_g((float)(scale * (gm_rng_uniform(&r) - 0.3)), 9);
        check_g((float)(int)gm_rng_below(&r, 20000) - 9999.0f, 9);
    }
}

/* Ties (exact halves) and the values next to them, which printf rounds half to even; powers of ten and
 * their neighbours, where the exponent and the style (fixed or exponent) change; 9.99... rounded up. */
static void test_g_ties_and_powers(void **state) {
    (void)state;
    for (int p = 1; p <= 17; p++) {
        for (int k = 1; k < 4000; k++) {
            check_g(k, p);
            check_g(k * 0.5, p);
            check_g(-k / 8.0, p);
            check_g(k / 1024.0, p);
            check_g(k * 1e15 + 0.5, p);
        }
        for (int x = -320; x <= 308; x++) {
            double t = pow(10, x);
            check_g(t, p);
            check_g(nextafter(t, 0), p);
            check_g(nextafter(t, INFINITY), p);
            check_g(9.5 * t, p);
            check_g(9.95 * t, p);
            check_g(0.5 * t, p);
            check_g(-5 * t, p);
        }
    }
    /* float32 ties at 9 digits: 1234567.125 has ten, the tenth a 5; 0.5 + k / 2^24 */
    check_g(1234567.125f, 9);
    check_g(1234567.375f, 9);
    for (int k = 0; k < 20000; k++) check_g((float)(0.5 + k * 0x1p-24), 9);
}

/* Zero, negative zero, infinities, NaN, the extremes and subnormals: printf's own text. */
static void test_g_special(void **state) {
    (void)state;
    const double v[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, DBL_MIN, DBL_MAX, -DBL_MAX, DBL_TRUE_MIN,
                        FLT_MIN, FLT_MAX, FLT_TRUE_MIN, 1e-5, 1e-4, 9.99999999e-5, 123456789, 999999999.5, 1e16};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (int p = 1; p <= 17; p++) check_g(v[i], p);
}

/* Integers: every boundary of the digit count, and random values. */
static void test_integers(void **state) {
    (void)state;
    gm_rng_t r;
    gm_rng_seed(&r, 7, 8, 9);
    uint64_t u[200];
    size_t n = 0;
    u[n++] = 0;
    u[n++] = UINT64_MAX;
    for (uint64_t p = 1; p <= UINT64_MAX / 10; p *= 10) {
        u[n++] = p;
        u[n++] = p - 1;
    }
    while (n < 200) u[n++] = gm_rng_next(&r) >> gm_rng_below(&r, 64);
    for (size_t i = 0; i < n; i++) {
        char got[24], want[24];
        size_t len = gm_fmt_u64(got, u[i]);
        snprintf(want, sizeof want, "%" PRIu64, u[i]);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(got, want, len);
        const int64_t s[] = {(int64_t)u[i], -(int64_t)(u[i] >> 1), INT64_MIN, INT64_MAX, -1};
        for (size_t k = 0; k < 5; k++) {
            len = gm_fmt_i64(got, s[k]);
            snprintf(want, sizeof want, "%" PRId64, s[k]);
            assert_int_equal(len, strlen(want));
            assert_memory_equal(got, want, len);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g_random_bits),
        cmocka_unit_test(test_g_table_values),
        cmocka_unit_test(test_g_ties_and_powers),
        cmocka_unit_test(test_g_special),
        cmocka_unit_test(test_integers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
