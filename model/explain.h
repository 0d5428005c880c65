/* explain.h - exact leave-one-out attributions and what-if edits, on the batched forward pass.
 *
 * A variant of a text is any token sequence: the text without token i (leave-one-out), with a
 * span removed, with tokens replaced. gru_explain_run() classifies the text and all its
 * variants in two batched passes and returns, for each variant, exactly what gru_forward_batch
 * would on that sequence (label probabilities, trajectory).
 *
 * Why it is cheap for unidirectional models: a variant that shares its first p tokens with the
 * text shares the states of every layer after them, so only its remaining tokens are run,
 * starting from those states (gru_forward_batch_states). The N leave-one-out variants of an N-token text
 * then cost N(N-1)/2 token steps instead of N(N-1), all in one batch. Bidirectional models read
 * every token with both directions, and a pooling head reads every position, so their variants
 * run in full (still one batch).
 *
 * Threads: as gru_forward_batch (one ctx per thread; the model is shared read-only).
 *
 * Usage (leave-one-out):
 *     gru_input_t text = { ids, n };
 *     gru_input_t *var = malloc(n * sizeof *var);
 *     int32_t *buf = malloc(n * (n - 1) * sizeof *buf);
 *     gru_explain_loo_variants(ids, n, buf, var);
 *     float probs[C], without[n * C];
 *     gru_output_t out = { probs }, vout[n];
 *     for (i = 0; i < n; i++) vout[i] = (gru_output_t){ without + i * C };
 *     gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, var, vout, n, NULL);
 *     // delta of token i for label c: probs[c] - without[i * C + c]
 */
#ifndef GRU_EXPLAIN_H
#define GRU_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "gru.h"

/* ---- types ---- */

/* One substitution in a token sequence: the token at index is replaced by ids[0..n_ids)
 * (n_ids == 0: the token is removed). ids are borrowed. */
typedef struct {
    size_t index;
    const int32_t *ids;
    size_t n_ids;
} gru_edit_op_t;

/* Work done by one gru_explain_run, for metrics and benchmarks. */
typedef struct {
    size_t variants;     /* variants classified */
    size_t tokens;       /* tokens run through the model for them (prefix reuse skips some) */
    size_t tokens_full;  /* tokens the variants hold: what running each in full would cost */
} gru_explain_stats_t;

/* ---- prototypes ---- */

/* Applies ops, sorted by strictly increasing index < len, to ids[0..len). Writes the edited
 * sequence to out (when out is not NULL; room for cap ids) and its length to *out_len.
 * Returns 0; -EINVAL for an index out of range or not increasing; -E2BIG when out is not NULL
 * and the result exceeds cap (*out_len still says how long it is). */
int gru_edit_apply(const int32_t *ids, size_t len, const gru_edit_op_t *ops, size_t n_ops, int32_t *out,
                   size_t cap, size_t *out_len);

/* The len leave-one-out variants of ids: variants[i] is ids without token i, stored in
 * buf + i * (len - 1). buf holds len * (len - 1) ids (may be NULL when len <= 1); variants
 * holds len entries. The variants borrow buf. */
void gru_explain_loo_variants(const int32_t *ids, size_t len, int32_t *buf, gru_input_t *variants);

/* Classifies text (text_out as gru_forward_batch's, in gates mode mode) and the n variants:
 * var_out[i].probs (C) and, when not NULL, var_out[i].trajectory (variants[i].len * C;
 * unidirectional models) get exactly what gru_forward_batch gives for variants[i] alone (up to
 * float rounding, < 1e-6). var_out[i].gates must be NULL. stats (may be NULL) receives the work done.
 * Returns 0; -EINVAL for bad arguments or an id out of range; -ENOMEM. On error the outputs
 * are unspecified. */
int gru_explain_run(gru_ctx_t *ctx, const gru_input_t *text, gru_output_t *text_out, gru_gates_mode_t mode,
                    const gru_input_t *variants, gru_output_t *var_out, size_t n, gru_explain_stats_t *stats);

#endif /* GRU_EXPLAIN_H */
