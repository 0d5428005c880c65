/* mm.c - packed-weight matrix product for the GRU step (see mm.h).
 *
 * Layout: W (N, K) becomes N / 24 panels; panel p holds, for k = k0[p] .. k1[p] - 1, the 24
 * weights W[24p + 0 .. 24p + 23][k] contiguously (24 floats = 3 AVX registers). The micro-kernel
 * computes a block of up to 4 rows of x by one panel: 12 accumulators, per k three loads of the
 * panel and one broadcast per row, 12 FMAs for 4 rows. A panel (24 K floats: 24 KiB at K = 256)
 * stays in L1 while every row block of x streams past it.
 *
 * [k0, k1) is the span of columns where the panel's 24 rows have a nonzero weight: the columns
 * outside it add exact zeros, so they are neither stored nor multiplied. A dense W keeps every
 * column. A block-diagonal W keeps about one block per panel: an ensemble folded into one GRU
 * (tools/fold.py) has K members' units each reading only their own state, and its recurrent
 * product then costs about what the K members' products cost, not K times more. */
#include "mm.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MM_NR 24 /* output columns per panel */
#define MM_MR 4  /* rows of x per micro-kernel call */

struct mm_packed {
    int N, K;
    int *k0, *k1;   /* (N / MM_NR) each: the panel's span of nonzero columns */
    size_t *offset; /* (N / MM_NR): where the panel starts in panels, in floats */
    float *panels;  /* panel p: (k1[p] - k0[p], MM_NR), 32-byte aligned */
};

void mm_packed_free(mm_packed_t *p) {
    if (!p) return;
    free(p->panels);
    free(p->offset);
    free(p->k1);
    free(p->k0);
    free(p);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define MM_TARGET __attribute__((target("avx2,fma")))

/* out rows [0, mr) x panel columns [0, 24) = x rows . panel over kn columns; x's rows are K
 * floats apart; mr is a constant after inlining. */
MM_TARGET static inline __attribute__((always_inline)) void mm_block(const float *restrict x, int K, int kn,
                                                                     const float *restrict panel,
                                                                     float *restrict out, int N, int mr) {
    __m256 acc[MM_MR][3];
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();
    for (int k = 0; k < kn; k++) {
        const float *b = panel + (size_t)k * MM_NR;
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), b2 = _mm256_load_ps(b + 16);
        for (int i = 0; i < mr; i++) {
            __m256 a = _mm256_broadcast_ss(x + (size_t)i * K + k);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(a, b2, acc[i][2]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *o = out + (size_t)i * N;
        _mm256_storeu_ps(o, acc[i][0]);
        _mm256_storeu_ps(o + 8, acc[i][1]);
        _mm256_storeu_ps(o + 16, acc[i][2]);
    }
}

MM_TARGET static void mm_mul_avx2(const mm_packed_t *p, const float *x, int M, float *out) {
    const int N = p->N, K = p->K;
    for (int c = 0; c < N; c += MM_NR) {
        const int q = c / MM_NR, kn = p->k1[q] - p->k0[q];
        const float *panel = p->panels + p->offset[q], *xs = x + p->k0[q];
        float *o = out + c;
        int i = 0;
        for (; i + MM_MR <= M; i += MM_MR) mm_block(xs + (size_t)i * K, K, kn, panel, o + (size_t)i * N, N, MM_MR);
        switch (M - i) {
        case 3: mm_block(xs + (size_t)i * K, K, kn, panel, o + (size_t)i * N, N, 3); break;
        case 2: mm_block(xs + (size_t)i * K, K, kn, panel, o + (size_t)i * N, N, 2); break;
        case 1: mm_block(xs + (size_t)i * K, K, kn, panel, o + (size_t)i * N, N, 1); break;
        default: break;
        }
    }
}

static int mm_cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int mm_cpu_ok(void) { return 0; }
#endif

int mm_pack(mm_packed_t **out, const float *w, int N, int K) {
    *out = NULL;
    if (!w || N <= 0 || K <= 0) return -EINVAL;
    if (N % MM_NR != 0 || !mm_cpu_ok()) return -ENOTSUP;
    const int P = N / MM_NR;
    mm_packed_t *p = calloc(1, sizeof *p);
    if (!p || !(p->k0 = malloc((size_t)P * sizeof *p->k0)) || !(p->k1 = malloc((size_t)P * sizeof *p->k1)) ||
        !(p->offset = malloc((size_t)P * sizeof *p->offset))) {
        mm_packed_free(p);
        return -ENOMEM;
    }
    p->N = N, p->K = K;
    size_t floats = 0;
    for (int q = 0; q < P; q++) {
        int k0 = K, k1 = 0; /* the span of nonzero columns; empty (0, 0) for an all-zero panel */
        for (int j = 0; j < MM_NR; j++) {
            const float *row = w + (size_t)(q * MM_NR + j) * K;
            for (int k = 0; k < K; k++)
                if (row[k] != 0.0f) {
                    k0 = k < k0 ? k : k0;
                    k1 = k + 1 > k1 ? k + 1 : k1;
                }
        }
        if (k1 == 0) k0 = 0;
        p->k0[q] = k0, p->k1[q] = k1, p->offset[q] = floats;
        floats += (size_t)(k1 - k0) * MM_NR;
    }
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    bytes = (bytes + 31) & ~(size_t)31; /* aligned_alloc wants a multiple of the alignment */
    if (!(p->panels = aligned_alloc(32, bytes))) {
        mm_packed_free(p);
        return -ENOMEM;
    }
    for (int q = 0; q < P; q++)
        for (int k = p->k0[q]; k < p->k1[q]; k++)
            for (int j = 0; j < MM_NR; j++)
                p->panels[p->offset[q] + (size_t)(k - p->k0[q]) * MM_NR + j] = w[(size_t)(q * MM_NR + j) * K + k];
    *out = p;
    return 0;
}

void mm_mul(const mm_packed_t *p, const float *x, int M, float *out) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    mm_mul_avx2(p, x, M, out); /* M == 0: no rows, nothing written */
#else
    (void)p, (void)x, (void)M, (void)out; /* mm_pack never succeeds here */
#endif
}
