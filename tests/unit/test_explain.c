/* test_explain.c - leave-one-out and what-if edits (model/explain.h) against the plain forward pass.
 *
 * For random models of every shape the format allows (unidirectional and bidirectional, 1 to 3
 * layers; H = 16 runs the packed kernel, H = 12 the BLAS path), every variant's probabilities
 * and trajectory from gru_explain_run must equal gru_forward_batch on the variant's token
 * sequence alone within EXPLAIN_TOL, and the text's own result the plain pass's, on each of the
 * engine's three paths (default; layer 0 without the projection table; the recurrent product
 * through BLAS instead of the packed kernel). gru_forward_batch_states' states are checked against the full gates' h; gru_edit_apply
 * against hand-made cases and its errors.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "explain.h"
#include "gru.h"

#define EXPLAIN_TOL 1e-5

typedef struct {
    int layers, bidirectional, hidden;
    gru_pooling_t pooling;
} shape_t;

/* Pooling heads (max, mean) read every position, so their variants run in full like a
 * bidirectional model's. */
static const shape_t SHAPES[] = {
    {1, 0, 16, GRU_POOL_LAST}, {2, 0, 16, GRU_POOL_LAST}, {3, 0, 16, GRU_POOL_LAST}, {1, 1, 16, GRU_POOL_LAST},
    {2, 1, 16, GRU_POOL_LAST}, {3, 1, 16, GRU_POOL_LAST}, {1, 0, 12, GRU_POOL_LAST}, {2, 1, 12, GRU_POOL_LAST},
    {1, 0, 16, GRU_POOL_MAX},  {2, 0, 12, GRU_POOL_MEAN}, {1, 1, 16, GRU_POOL_MEAN},
};
static int full_run(const shape_t *sh) { return sh->bidirectional || sh->pooling != GRU_POOL_LAST; }
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* The engine's paths: the default build, no layer-0 table, BLAS instead of the packed kernel. */
static const gru_load_options_t PATHS[] = {{GRU_PROJ_TABLE_DEFAULT_MB, 1}, {0, 1}, {GRU_PROJ_TABLE_DEFAULT_MB, 0}};
#define N_PATHS (sizeof PATHS / sizeof PATHS[0])
static const char *const PATH_NAMES[N_PATHS] = {"default", "no table", "blas"};

static gru_model_t *random_model(const shape_t *sh, uint64_t seed, const gru_load_options_t *opt) {
    gru_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = 50;
    cfg.embedding_dim = 8;
    cfg.hidden_size = sh->hidden;
    cfg.num_layers = sh->layers;
    cfg.bidirectional = sh->bidirectional;
    cfg.pooling = sh->pooling;
    cfg.num_labels = 3;
    gru_model_t *m = NULL;
    assert_int_equal(gru_model_new_random(&m, &cfg, seed, opt), 0);
    return m;
}

/* The largest |difference| between the plain pass on each variant alone and what
 * gru_explain_run gave (probs, and the trajectory for unidirectional models). */
static double check_variants(gru_ctx_t *ctx, const gru_input_t *text, const gru_input_t *var, size_t n,
                             size_t *tokens_run) {
    const gru_config_t *c = gru_model_config(gru_ctx_model(ctx));
    const size_t C = (size_t)c->num_labels;
    float probs[16], plain_probs[16];
    float *plain_traj = malloc((text->len + 1) * C * sizeof(float));
    float *text_traj = malloc((text->len + 1) * C * sizeof(float));
    gru_output_t *vout = calloc(n + 1, sizeof *vout);
    float **traj = calloc(n + 1, sizeof *traj);
    float *vprobs = malloc((n + 1) * C * sizeof(float));
    assert_true(plain_traj && text_traj && vout && traj && vprobs);
    for (size_t i = 0; i < n; i++) {
        traj[i] = malloc((var[i].len + 1) * C * sizeof(float));
        assert_non_null(traj[i]);
        for (size_t k = 0; k < var[i].len * C; k++) traj[i][k] = NAN;
        vout[i] = (gru_output_t){vprobs + i * C, NULL, traj[i]};
    }
    gru_output_t out = {probs, NULL, text_traj};
    gru_explain_stats_t st;
    assert_int_equal(gru_explain_run(ctx, text, &out, GRU_GATES_SUMMARY, var, vout, n, &st), 0);
    assert_int_equal(st.variants, n);
    *tokens_run = st.tokens;

    double worst = 0.0;
    gru_output_t po = {plain_probs, NULL, plain_traj};
    assert_int_equal(gru_forward_batch(ctx, text, &po, 1, GRU_GATES_NONE), 0);
    for (size_t k = 0; k < C; k++) worst = fmax(worst, fabs(plain_probs[k] - probs[k]));
    for (size_t i = 0; i < n; i++) {
        float *pt = malloc((var[i].len + 1) * C * sizeof(float));
        assert_non_null(pt);
        gru_output_t o = {plain_probs, NULL, pt};
        assert_int_equal(gru_forward_batch(ctx, &var[i], &o, 1, GRU_GATES_NONE), 0);
        for (size_t k = 0; k < C; k++) {
            double d = fabs(plain_probs[k] - vprobs[i * C + k]);
            if (!(d <= worst)) worst = d; /* NaN propagates */
        }
        if (!c->bidirectional)
            for (size_t k = 0; k < var[i].len * C; k++) {
                double d = fabs(pt[k] - traj[i][k]);
                if (!(d <= worst)) worst = d;
            }
        free(pt);
        free(traj[i]);
    }
    free(plain_traj);
    free(text_traj);
    free(vout);
    free(traj);
    free(vprobs);
    return worst;
}

static int32_t *random_ids(size_t len, uint64_t *seed) {
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    assert_non_null(ids);
    for (size_t t = 0; t < len; t++) ids[t] = (int32_t)(rng_next(seed) % 50);
    return ids;
}

/* ---------------------------------------------------------------------------------------------
 * Leave-one-out
 */

/* Runs one(ctx, shape, N, seed) for every shape, engine path and length N in lens, and checks
 * the largest |explain - plain| it reports. */
typedef double (*case_fn)(gru_ctx_t *ctx, const shape_t *sh, size_t N, uint64_t *seed);
static void on_every_model(const char *what, uint64_t model_seed, const size_t *lens, size_t n_lens, case_fn one) {
    uint64_t seed = model_seed;
    for (size_t ps = 0; ps < N_SHAPES * N_PATHS; ps++) {
        const size_t s = ps % N_SHAPES, path = ps / N_SHAPES;
        gru_model_t *m = random_model(&SHAPES[s], model_seed + s, &PATHS[path]);
        gru_ctx_t *ctx;
        assert_int_equal(gru_ctx_new(&ctx, m), 0);
        double worst = 0.0;
        for (size_t li = 0; li < n_lens; li++) worst = fmax(worst, one(ctx, &SHAPES[s], lens[li], &seed));
        printf("%s L%d %s H%d pool %d %-8s: max |explain - plain| %.2e\n", what, SHAPES[s].layers,
               SHAPES[s].bidirectional ? "bi " : "uni", SHAPES[s].hidden, (int)SHAPES[s].pooling,
               PATH_NAMES[path], worst);
        assert_true(worst <= EXPLAIN_TOL);
        gru_ctx_free(ctx);
        gru_model_free(m);
    }
}

/* The N leave-one-out variants of a random text. */
static double loo_case(gru_ctx_t *ctx, const shape_t *sh, size_t N, uint64_t *seed) {
    int32_t *ids = random_ids(N, seed);
    int32_t *buf = malloc((N * (N ? N - 1 : 0) + 1) * sizeof *buf);
    gru_input_t *var = malloc((N + 1) * sizeof *var);
    assert_true(buf && var);
    gru_explain_loo_variants(ids, N, buf, var);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(var[i].len, N - 1);
        for (size_t t = 0; t + 1 < N; t++) assert_int_equal(var[i].ids[t], ids[t < i ? t : t + 1]);
    }
    gru_input_t text = {ids, N};
    size_t run = 0;
    double worst = check_variants(ctx, &text, var, N, &run);
    /* Prefix reuse: variant i runs the N - 1 - p tokens after its common prefix p with the text
     * (p = i, or more when token i repeats the next one); bidirectional or pooling variants run
     * all N - 1. */
    size_t expect = 0;
    for (size_t i = 0; i < N; i++) {
        size_t p = 0;
        while (p < N - 1 && var[i].ids[p] == ids[p]) p++;
        assert_true(p >= i);
        expect += full_run(sh) ? N - 1 : N - 1 - p;
    }
    assert_true(run <= (full_run(sh) ? N * (N ? N - 1 : 0) : N * (N ? N - 1 : 0) / 2));
    assert_int_equal(run, expect);
    free(ids);
    free(buf);
    free(var);
    return worst;
}

static void test_explain_loo_matches_plain(void **state) {
    (void)state;
    static const size_t LENS[] = {0, 1, 2, 5, 17, 40};
    on_every_model("loo", 100, LENS, sizeof LENS / sizeof LENS[0], loo_case);
}

/* ---------------------------------------------------------------------------------------------
 * Edits
 */

/* Builds random edits of ids (removals, replacements by 0..2 ids, spans) plus the corner
 * cases (the text itself, a prefix, an extension, the empty sequence). */
static size_t make_edits(const int32_t *ids, size_t N, uint64_t *seed, int32_t **bufs, gru_input_t *var) {
    size_t n = 0;
    static const int32_t repl[3] = {7, 8, 9};
    for (int k = 0; k < 12 && N > 0; k++) {
        gru_edit_op_t ops[64];
        size_t n_ops = 0;
        int kind = k % 3;
        if (kind == 2) { /* a span */
            size_t a = rng_next(seed) % N, b = a + rng_next(seed) % (N - a);
            for (size_t t = a; t <= b && n_ops < 64; t++) ops[n_ops++] = (gru_edit_op_t){t, NULL, 0};
        } else {
            for (size_t t = 0; t < N && n_ops < 64; t++)
                if (rng_next(seed) % 4 == 0)
                    ops[n_ops++] = (gru_edit_op_t){t, kind ? repl : NULL, kind ? rng_next(seed) % 3 : 0};
        }
        size_t len;
        assert_int_equal(gru_edit_apply(ids, N, ops, n_ops, NULL, 0, &len), 0);
        bufs[n] = malloc((len + 1) * sizeof(int32_t));
        assert_non_null(bufs[n]);
        size_t len2;
        assert_int_equal(gru_edit_apply(ids, N, ops, n_ops, bufs[n], len, &len2), 0);
        assert_int_equal(len, len2);
        var[n] = (gru_input_t){bufs[n], len};
        n++;
    }
    bufs[n] = malloc((N + 3) * sizeof(int32_t));
    assert_non_null(bufs[n]);
    if (N) memcpy(bufs[n], ids, N * sizeof(int32_t));
    bufs[n][N] = 3, bufs[n][N + 1] = 4;
    var[n] = (gru_input_t){bufs[n], N}, n++;                /* the text itself */
    var[n] = (gru_input_t){bufs[n - 1], N + 2}, bufs[n] = NULL, n++; /* extended */
    var[n] = (gru_input_t){bufs[n - 2], N / 2}, bufs[n] = NULL, n++; /* a prefix */
    var[n] = (gru_input_t){NULL, 0}, bufs[n] = NULL, n++;            /* empty */
    return n;
}

/* Random edits of a random text, and the corner cases. */
static double edits_case(gru_ctx_t *ctx, const shape_t *sh, size_t N, uint64_t *seed) {
    (void)sh;
    int32_t *ids = random_ids(N, seed);
    int32_t *bufs[20];
    gru_input_t var[20];
    size_t n = make_edits(ids, N, seed, bufs, var);
    gru_input_t text = {ids, N};
    size_t run = 0;
    double worst = check_variants(ctx, &text, var, n, &run);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(ids);
    return worst;
}

static void test_explain_edits_match_plain(void **state) {
    (void)state;
    static const size_t LENS[] = {0, 1, 6, 23};
    on_every_model("edits", 200, LENS, sizeof LENS / sizeof LENS[0], edits_case);
}

/* ---------------------------------------------------------------------------------------------
 * States and h0
 */

/* gru_output_t.states equals the full gates' h for every layer, direction and token. */
static void test_forward_states_layout(void **state) {
    (void)state;
    uint64_t seed = 5;
    for (size_t s = 0; s < N_SHAPES; s++) {
        gru_model_t *m = random_model(&SHAPES[s], 300 + s, NULL);
        const gru_config_t *c = gru_model_config(m);
        const size_t N = 9, L = (size_t)c->num_layers, D = 1 + (size_t)c->bidirectional, H = (size_t)c->hidden_size;
        gru_ctx_t *ctx;
        assert_int_equal(gru_ctx_new(&ctx, m), 0);
        int32_t *ids = random_ids(N, &seed);
        float probs[16], *states = malloc(N * L * D * H * sizeof(float));
        float *gates = malloc(gru_gates_floats(c, GRU_GATES_FULL, N) * sizeof(float));
        assert_true(states && gates);
        gru_input_t in = {ids, N};
        gru_output_t out = {probs, gates, NULL};
        assert_int_equal(gru_forward_batch_states(ctx, &in, &out, 1, GRU_GATES_FULL, NULL, &states), 0);
        for (size_t l = 0; l < L; l++)
            for (size_t d = 0; d < D; d++)
                for (size_t t = 0; t < N; t++)
                    for (size_t j = 0; j < H; j++)
                        assert_float_equal(states[((t * L + l) * D + d) * H + j],
                                           gates[(((l * D + d) * 4 + GRU_GATE_HIDDEN) * N + t) * H + j], 0.0);
        /* Resuming every direction from the states after the last token with no tokens reads
         * those states in the head: for a unidirectional model, the text's own probabilities. */
        if (D == 1 && c->pooling != GRU_POOL_LAST) { /* a pool needs the whole text: refused */
            float p2[16];
            gru_input_t rest = {NULL, 0};
            gru_output_t o2 = {p2, NULL, NULL};
            const float *h0 = states + (N - 1) * L * H;
            assert_int_equal(gru_forward_batch_states(ctx, &rest, &o2, 1, GRU_GATES_NONE, &h0, NULL), -EINVAL);
        } else if (D == 1) {
            float p2[16];
            gru_input_t rest = {NULL, 0};
            gru_output_t o2 = {p2, NULL, NULL};
            const float *h0 = states + (N - 1) * L * H;
            assert_int_equal(gru_forward_batch_states(ctx, &rest, &o2, 1, GRU_GATES_NONE, &h0, NULL), 0);
            for (int k = 0; k < c->num_labels; k++) assert_float_equal(p2[k], probs[k], 1e-6);
        }
        free(ids);
        free(states);
        free(gates);
        gru_ctx_free(ctx);
        gru_model_free(m);
    }
}

static void test_explain_bad_args(void **state) {
    (void)state;
    gru_model_t *m = random_model(&SHAPES[0], 1, NULL);
    gru_ctx_t *ctx;
    assert_int_equal(gru_ctx_new(&ctx, m), 0);
    int32_t ids[3] = {4, 5, 6}, bad[2] = {4, 50};
    float probs[16], vp[16], g[64];
    gru_input_t text = {ids, 3};
    gru_output_t out = {probs, NULL, NULL};
    gru_input_t v = {bad, 2};
    gru_output_t vo = {vp, NULL, NULL};
    assert_int_equal(gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, &v, &vo, 1, NULL), -EINVAL); /* id 50 */
    v = (gru_input_t){NULL, 2};
    assert_int_equal(gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, &v, &vo, 1, NULL), -EINVAL); /* no ids */
    v = (gru_input_t){ids, 2};
    vo.gates = g;
    assert_int_equal(gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, &v, &vo, 1, NULL), -EINVAL); /* gates */
    vo.gates = NULL;
    assert_int_equal(gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, NULL, NULL, 1, NULL), -EINVAL);
    assert_int_equal(gru_explain_run(ctx, &text, &out, GRU_GATES_NONE, &v, &vo, 1, NULL), 0);
    gru_ctx_free(ctx);
    gru_model_free(m);
}

/* ---------------------------------------------------------------------------------------------
 * gru_edit_apply
 */

static void test_edit_apply(void **state) {
    (void)state;
    const int32_t ids[5] = {10, 11, 12, 13, 14}, two[2] = {20, 21};
    int32_t out[8];
    size_t len;
    gru_edit_op_t ops[3] = {{0, NULL, 0}, {2, two, 2}, {4, two, 1}};
    assert_int_equal(gru_edit_apply(ids, 5, ops, 3, out, 8, &len), 0);
    const int32_t want[] = {11, 20, 21, 13, 20};
    assert_int_equal(len, 5);
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(gru_edit_apply(ids, 5, ops, 0, out, 8, &len), 0); /* no ops: the text */
    assert_int_equal(len, 5);
    assert_memory_equal(out, ids, sizeof ids);
    assert_int_equal(gru_edit_apply(ids, 5, ops, 3, out, 4, &len), -E2BIG);
    assert_int_equal(len, 5);
    gru_edit_op_t unsorted[2] = {{2, NULL, 0}, {1, NULL, 0}};
    assert_int_equal(gru_edit_apply(ids, 5, unsorted, 2, out, 8, &len), -EINVAL);
    gru_edit_op_t twice[2] = {{1, NULL, 0}, {1, NULL, 0}};
    assert_int_equal(gru_edit_apply(ids, 5, twice, 2, out, 8, &len), -EINVAL);
    gru_edit_op_t past[1] = {{5, NULL, 0}};
    assert_int_equal(gru_edit_apply(ids, 5, past, 1, out, 8, &len), -EINVAL);
    gru_edit_op_t null_ids[1] = {{1, NULL, 2}};
    assert_int_equal(gru_edit_apply(ids, 5, null_ids, 1, out, 8, &len), -EINVAL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_loo_matches_plain),
        cmocka_unit_test(test_explain_edits_match_plain),
        cmocka_unit_test(test_forward_states_layout),
        cmocka_unit_test(test_explain_bad_args),
        cmocka_unit_test(test_edit_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
