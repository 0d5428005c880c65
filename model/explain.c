/* explain.c - leave-one-out and what-if edits with prefix reuse (see explain.h).
 *
 * Plan of gru_explain_run:
 * 1. The text itself, alone, in the caller's gates mode; for a unidirectional model also with
 *    every layer's state after each token, (N, L, H), and its trajectory, (N, C).
 * 2. Every variant in one batch. Unidirectional: variant i shares its first p_i tokens with the
 *    text (the longest common prefix); it runs only tokens p_i.. from the states after token
 *    p_i - 1 (row p_i - 1 of step 1's states is exactly the (L, D, H) h0 that
 *    gru_forward_batch_states takes), and the first p_i rows of its trajectory are the text's. Bidirectional, or a
 *    head that pools over positions (config "pooling"): in full.
 * A variant equal to a prefix of the text runs no token at all: its head reads the shared state.
 */
#include "explain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gru_edit_apply(const int32_t *ids, size_t len, const gru_edit_op_t *ops, size_t n_ops, int32_t *out,
                   size_t cap, size_t *out_len) {
    if ((len && !ids) || (n_ops && !ops) || !out_len) return -EINVAL;
    size_t n = len;
    for (size_t k = 0; k < n_ops; k++) {
        if (ops[k].index >= len || (k && ops[k].index <= ops[k - 1].index) || (ops[k].n_ids && !ops[k].ids))
            return -EINVAL;
        n += ops[k].n_ids;
        n -= 1;
    }
    *out_len = n;
    if (!out) return 0;
    if (n > cap) return -E2BIG;
    size_t o = 0, k = 0;
    for (size_t t = 0; t < len; t++) {
        if (k < n_ops && ops[k].index == t) {
            if (ops[k].n_ids) memcpy(out + o, ops[k].ids, ops[k].n_ids * sizeof *out);
            o += ops[k].n_ids;
            k++;
        } else {
            out[o++] = ids[t];
        }
    }
    return 0;
}

void gru_explain_loo_variants(const int32_t *ids, size_t len, int32_t *buf, gru_input_t *variants) {
    for (size_t i = 0; i < len; i++) {
        int32_t *v = buf ? buf + i * (len - 1) : NULL;
        if (v) {
            if (i) memcpy(v, ids, i * sizeof *v);
            if (len - 1 - i) memcpy(v + i, ids + i + 1, (len - 1 - i) * sizeof *v);
        }
        variants[i] = (gru_input_t){v, len - 1};
    }
}

/* Length of the longest common prefix of a[0..na) and b[0..nb). */
static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = na < nb ? na : nb, p = 0;
    while (p < n && a[p] == b[p]) p++;
    return p;
}

int gru_explain_run(gru_ctx_t *ctx, const gru_input_t *text, gru_output_t *text_out, gru_gates_mode_t mode,
                    const gru_input_t *variants, gru_output_t *var_out, size_t n, gru_explain_stats_t *stats) {
    if (!ctx || !text || !text_out || (n && (!variants || !var_out))) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (var_out[i].gates || (variants[i].len && !variants[i].ids)) return -EINVAL;
    const gru_config_t *c = gru_model_config(gru_ctx_model(ctx));
    const size_t N = text->len, C = (size_t)c->num_labels;
    const size_t LH = (size_t)c->num_layers * (size_t)c->hidden_size; /* one token's states, D = 1 */
    const int reuse = !c->bidirectional && c->pooling == GRU_POOL_LAST && N > 0;

    float *states = NULL, *traj = NULL;
    gru_input_t *sub_in = NULL;
    gru_output_t *sub_out = NULL;
    const float **sub_h0 = NULL;
    int rc = -ENOMEM;
    if (reuse) {
        if (N > SIZE_MAX / sizeof(float) / LH || !(states = malloc(N * LH * sizeof(float)))) goto done;
        if (!text_out->trajectory && !(traj = malloc(N * C * sizeof(float)))) goto done;
    }
    if (n && (!(sub_in = malloc(n * sizeof *sub_in)) || !(sub_out = malloc(n * sizeof *sub_out)) ||
              !(sub_h0 = malloc(n * sizeof *sub_h0))))
        goto done;

    /* 1. The text, with its states (N, L, H) and trajectory (N, C). */
    gru_output_t o = *text_out;
    if (reuse && !o.trajectory) o.trajectory = traj;
    if ((rc = gru_forward_batch_states(ctx, text, &o, 1, mode, NULL, &states)) < 0) goto done;
    const float *text_traj = reuse ? o.trajectory : NULL;

    /* 2. The variants, each from the end of its shared prefix. */
    size_t run = 0, full = 0;
    for (size_t i = 0; i < n; i++) {
        const gru_input_t *v = &variants[i];
        size_t p = reuse ? common_prefix(v->ids, v->len, text->ids, N) : 0;
        float *tr = var_out[i].trajectory;
        sub_in[i] = (gru_input_t){v->ids ? v->ids + p : NULL, v->len - p};
        sub_h0[i] = p ? states + (p - 1) * LH : NULL; /* (L, 1, H) */
        sub_out[i] = (gru_output_t){var_out[i].probs, NULL, tr ? tr + p * C : NULL};
        if (tr && p) memcpy(tr, text_traj, p * C * sizeof *tr);
        run += v->len - p;
        full += v->len;
    }
    if ((rc = gru_forward_batch_states(ctx, sub_in, sub_out, n, GRU_GATES_NONE, sub_h0, NULL)) < 0) goto done;
    if (stats) *stats = (gru_explain_stats_t){n, run, full};
done:
    free(states);
    free(traj);
    free(sub_in);
    free(sub_out);
    free(sub_h0);
    return rc;
}
