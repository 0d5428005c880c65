/* test_mm.c - model/mm.c, the packed recurrent product: every output is the dot product summed
 * in column order (checked bit for bit against fmaf in that order), for dense weights, for
 * block-diagonal ones (an ensemble folded into one GRU: panels skip the columns where they are
 * all zero), for an all-zero panel, and for every remainder of the 4-row blocks. Skips where the
 * CPU has no AVX2+FMA kernel (mm_pack says -ENOTSUP). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mm.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float rnd(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* out (M, N) = x W^T with x's columns in order, one fmaf each (the kernel's arithmetic). */
static void reference(const float *w, int N, int K, const float *x, int M, float *out) {
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(x[(size_t)i * K + k], w[(size_t)n * K + k], acc);
            out[(size_t)i * N + n] = acc;
        }
}

/* Packs w, multiplies M = 0 .. 9 random rows, and compares with reference(). Returns 0, or -1
 * when there is no kernel on this CPU. */
static int check(const float *w, int N, int K) {
    mm_packed_t *p = NULL;
    int rc = mm_pack(&p, w, N, K);
    if (rc == -ENOTSUP) return -1;
    assert_int_equal(rc, 0);
    float *x = malloc(sizeof(float) * 9 * (size_t)K);
    float *got = malloc(sizeof(float) * 9 * (size_t)N), *want = malloc(sizeof(float) * 9 * (size_t)N);
    assert_non_null(x);
    assert_non_null(got);
    assert_non_null(want);
    for (int M = 0; M <= 9; M++) {
        for (int i = 0; i < M * K; i++) x[i] = rnd();
        for (int i = 0; i < 9 * N; i++) got[i] = want[i] = NAN; /* rows past M stay untouched */
        mm_mul(p, x, M, got);
        reference(w, N, K, x, M, want);
        for (int i = 0; i < M * N; i++) assert_true(got[i] == want[i]);
        for (int i = M * N; i < 9 * N; i++) assert_true(isnan(got[i]));
    }
    free(want);
    free(got);
    free(x);
    mm_packed_free(p);
    return 0;
}

static void test_mm_dense(void **state) {
    (void)state;
    const int N = 3 * 32, K = 37;
    float *w = malloc(sizeof(float) * N * K);
    assert_non_null(w);
    for (int i = 0; i < N * K; i++) w[i] = rnd();
    int rc = check(w, N, K);
    free(w);
    if (rc < 0) skip(); /* no AVX2+FMA kernel on this CPU */
}

/* The recurrent weights of 3 GRUs of 40 units folded into one of 120: gate g's rows of member m
 * read only member m's 40 columns. Panels of 24 rows straddle the members' boundaries, so some
 * keep two blocks of columns and the rest one. */
static void test_mm_block_diagonal(void **state) {
    (void)state;
    const int Hm = 40, members = 3, H = Hm * members, N = 3 * H, K = H;
    float *w = calloc((size_t)N * K, sizeof(float));
    assert_non_null(w);
    for (int g = 0; g < 3; g++)
        for (int m = 0; m < members; m++)
            for (int j = 0; j < Hm; j++)
                for (int k = 0; k < Hm; k++) w[(size_t)(g * H + m * Hm + j) * K + m * Hm + k] = rnd();
    int rc = check(w, N, K);
    free(w);
    if (rc < 0) skip(); /* no AVX2+FMA kernel on this CPU */
}

/* Rows that are all zero (a whole panel, then part of one) and a negative zero. */
static void test_mm_zero_panels(void **state) {
    (void)state;
    const int N = 72, K = 19;
    float *w = calloc((size_t)N * K, sizeof(float));
    assert_non_null(w);
    for (int n = 24; n < 72; n++) /* panel 0 all zero; panel 1 from row 30; panel 2 one column */
        for (int k = 0; k < K; k++) {
            if (n < 48 && n >= 30) w[(size_t)n * K + k] = rnd();
            if (n >= 48 && k == K - 1) w[(size_t)n * K + k] = rnd();
        }
    w[(size_t)50 * K + 3] = -0.0f;
    int rc = check(w, N, K);
    free(w);
    if (rc < 0) skip(); /* no AVX2+FMA kernel on this CPU */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mm_dense),
        cmocka_unit_test(test_mm_block_diagonal),
        cmocka_unit_test(test_mm_zero_panels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
