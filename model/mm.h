/* mm.h - the recurrent matrix product of a GRU step, out = x W^T, with W packed once at load
 * time (internal to model/; not part of the library's API).
 *
 * Why: per step the recurrent product is (b, H) x (H, 3H) with small b (the texts still
 * running). OpenBLAS's sgemm re-packs all of W_hh on every call, which at these shapes costs
 * as much as the arithmetic. Packing W once into column panels and running an AVX2+FMA
 * micro-kernel over them does only the arithmetic. Each output element is one dot product
 * summed in index order, whatever the batch: a text's result does not depend on which other
 * texts share its batch. A panel skips its leading and trailing columns of zeros (their terms are
 * exact zeros for finite x), so a block-diagonal W costs its blocks.
 *
 * Available on x86-64 CPUs with AVX2 and FMA, for N a multiple of 24 (3H with H a multiple of
 * 8); elsewhere mm_pack() returns -ENOTSUP and the caller keeps using BLAS. */
#ifndef GRU_MM_H
#define GRU_MM_H

typedef struct mm_packed mm_packed_t;

/* Packs w (N, K), row-major, into *out (owned by the caller; free with mm_packed_free).
 * Returns 0, -ENOTSUP (no kernel for this CPU or shape), -EINVAL or -ENOMEM. */
int mm_pack(mm_packed_t **out, const float *w, int N, int K);
void mm_packed_free(mm_packed_t *p);

/* out (M, N) = x (M, K) W^T, rows of x and out contiguous (row strides K and N). */
void mm_mul(const mm_packed_t *p, const float *x, int M, float *out);

#endif /* GRU_MM_H */
