/* gru_bench.c - engine throughput: tokens/s and microseconds per batched forward pass.
 *
 * For hidden 128 and 256 (embedding 128, vocab 20000, 1 layer, 2 labels, random weights),
 * batch 1, 8, 32, 128 and lengths 16 and 64, without gates and with summary gates, it times
 * gru_forward_batch and, when Debian's torch is importable, the same classifier in PyTorch
 * (bench/torch_gru.py) in the same run, and prints the ratio. It also measures the machine's
 * sgemm peak (OpenBLAS, 512x512x512) so the GFLOP/s column can be read as a share of it.
 *
 * FLOP columns: "eff GF/s" counts what a textbook GRU does per token, 6H(E+H) (input and
 * recurrent matrix products), as torch and the peers' figures do; "GF/s" and "%peak" count
 * only the arithmetic the engine really performs, 6H*H per token, because layer 0's input
 * projection is a lookup in a per-vocabulary table built at load time.
 *
 *     OPENBLAS_NUM_THREADS=1 gru-bench --threads 1        # single-thread comparison
 *     gru-bench --no-torch --quick
 *
 * --explain prints the cost of an exact leave-one-out explanation instead (bench_explain).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "explain.h"
#include "gru.h"
#include "tool_options.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension, not in cblas.h everywhere */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *arg);

/* Median seconds per call over samples of >= 20 ms each, for at least min_time seconds. */
static double median_time(bench_fn fn, void *arg, double min_time) {
    for (int i = 0; i < 3; i++) fn(arg);
    double t0 = now_s();
    fn(arg);
    double one = now_s() - t0;
    long reps = one > 0 ? (long)(0.02 / one) : 1000;
    if (reps < 1) reps = 1;
    double samples[256];
    int ns = 0;
    double end = now_s() + min_time;
    while (ns < 256 && (now_s() < end || ns < 5)) {
        double s = now_s();
        for (long r = 0; r < reps; r++) fn(arg);
        samples[ns++] = (now_s() - s) / (double)reps;
    }
    qsort(samples, (size_t)ns, sizeof *samples, cmp_double);
    return samples[ns / 2];
}

typedef struct {
    gru_ctx_t *ctx;
    gru_input_t *in;
    gru_output_t *out;
    size_t n;
    gru_gates_mode_t mode;
} fwd_arg_t;

static void run_forward(void *p) {
    fwd_arg_t *a = p;
    if (gru_forward_batch(a->ctx, a->in, a->out, a->n, a->mode) < 0) abort();
}

typedef struct {
    float *a, *b, *c;
    int n;
} sgemm_arg_t;

static void run_sgemm(void *p) {
    sgemm_arg_t *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, s->n, s->n, 1.0f, s->a, s->n, s->b, s->n, 0.0f,
                s->c, s->n);
}

/* ---- --explain: leave-one-out cost ---- */

typedef struct {
    gru_ctx_t *ctx;
    gru_input_t *text, *variants;
    gru_output_t *text_out, *var_out;
    size_t n;
} explain_arg_t;

static void run_explain(void *p) {
    explain_arg_t *a = p;
    if (gru_explain_run(a->ctx, a->text, a->text_out, GRU_GATES_NONE, a->variants, a->var_out, a->n, NULL) < 0)
        abort();
}

/* N independent forward passes, one per edited text (how a client without the engine's help
 * would explain). */
static void run_naive(void *p) {
    fwd_arg_t *a = p;
    for (size_t i = 0; i < a->n; i++)
        if (gru_forward_batch(a->ctx, &a->in[i], &a->out[i], 1, a->mode) < 0) abort();
}

/* For texts of N = 8, 16, 32, 64 tokens at H = 128 (E = 128, V = 20000, 1 layer, random
 * weights): microseconds for one plain forward pass, for the whole leave-one-out explanation
 * with prefix reuse (gru_explain_run: the text plus its N variants), for the N variants in
 * full in one batch (what bidirectional models do), and for N independent forward passes. */
static int bench_explain(double min_time) {
    gru_config_t cfg = {.vocab_size = 20000, .embedding_dim = 128, .hidden_size = 128, .num_layers = 1,
                        .bidirectional = 0, .num_labels = 2};
    gru_model_t *m;
    gru_ctx_t *ctx;
    const gru_load_options_t load = tool_load_options();
    if (gru_model_new_random(&m, &cfg, 1, &load) < 0 || gru_ctx_new(&ctx, m) < 0) return 2;
    printf("gru-bench --explain: leave-one-out of one text, H=128 E=128 V=20000 L=1, random weights, 1 thread\n");
    printf("%4s %10s %12s %9s %14s %10s %14s %14s\n", "N", "plain us", "explain us", "x plain", "full batch us",
           "naive us", "naive/explain", "steps run/full");
    static const size_t Ns[] = {8, 16, 32, 64};
    for (size_t k = 0; k < sizeof Ns / sizeof Ns[0]; k++) {
        const size_t N = Ns[k];
        int32_t *ids = malloc(N * sizeof *ids), *buf = malloc(N * (N - 1) * sizeof *buf);
        gru_input_t *var = malloc(N * sizeof *var);
        gru_output_t *vout = malloc(N * sizeof *vout);
        float *probs = malloc((N + 1) * 2 * sizeof *probs);
        if (!ids || !buf || !var || !vout || !probs) return 2;
        for (size_t i = 0; i < N; i++) ids[i] = 2 + (int32_t)((unsigned)i * 2654435761u % 19998u);
        gru_explain_loo_variants(ids, N, buf, var);
        for (size_t i = 0; i < N; i++) vout[i] = (gru_output_t){probs + 2 * (i + 1), NULL, NULL};
        gru_input_t text = {ids, N};
        gru_output_t text_out = {probs, NULL, NULL};
        fwd_arg_t plain = {ctx, &text, &text_out, 1, GRU_GATES_NONE};
        fwd_arg_t full = {ctx, var, vout, N, GRU_GATES_NONE};
        explain_arg_t ex = {ctx, &text, var, &text_out, vout, N};
        gru_explain_stats_t st;
        if (gru_explain_run(ctx, &text, &text_out, GRU_GATES_NONE, var, vout, N, &st) < 0) return 2;
        double t_plain = median_time(run_forward, &plain, min_time) * 1e6;
        double t_explain = median_time(run_explain, &ex, min_time) * 1e6;
        double t_full = median_time(run_forward, &full, min_time) * 1e6 + t_plain;
        double t_naive = median_time(run_naive, &full, min_time) * 1e6 + t_plain;
        printf("%4zu %10.1f %12.1f %8.1fx %14.1f %10.1f %13.1fx %8zu/%zu\n", N, t_plain, t_explain, t_explain / t_plain,
               t_full, t_naive, t_naive / t_explain, st.tokens, st.tokens_full);
        free(ids), free(buf), free(var), free(vout), free(probs);
    }
    gru_ctx_free(ctx);
    gru_model_free(m);
    return 0;
}

#define MAX_ROWS 64

typedef struct {
    int H, B, T;
    gru_gates_mode_t mode;
    double us, torch_us;
} row_t;

int main(int argc, char **argv) {
    static const struct option opts[] = {{"threads", required_argument, NULL, 'j'},
                                         {"no-torch", no_argument, NULL, 'n'},
                                         {"quick", no_argument, NULL, 'q'},
                                         {"explain", no_argument, NULL, 'x'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int threads = 1, use_torch = 1, explain = 0, opt;
    double min_time = 0.5;
    while ((opt = getopt_long(argc, argv, "j:nqxh", opts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            threads = atoi(optarg);
            if (threads < 1 || threads > 64) {
                fprintf(stderr, "gru-bench: --threads must be 1..64\n");
                return 2;
            }
            break;
        case 'n': use_torch = 0; break;
        case 'q': min_time = 0.15; break;
        case 'x': explain = 1; break;
        case 'h':
            printf("usage: gru-bench [--threads N] [--no-torch] [--quick] [--explain]\n");
            return 0;
        default: return 2;
        }
    }
    openblas_set_num_threads(threads);
    if (explain) return bench_explain(min_time);

    /* The machine's sgemm ceiling. */
    sgemm_arg_t sg = {malloc(512 * 512 * sizeof(float)), malloc(512 * 512 * sizeof(float)),
                      malloc(512 * 512 * sizeof(float)), 512};
    if (!sg.a || !sg.b || !sg.c) return 2;
    for (int i = 0; i < 512 * 512; i++) sg.a[i] = sg.b[i] = (float)(i % 7) * 0.1f;
    double peak = 2.0 * 512 * 512 * 512 / median_time(run_sgemm, &sg, min_time) / 1e9;
    free(sg.a), free(sg.b), free(sg.c);

    const gru_load_options_t load = tool_load_options();
    static const int Hs[] = {128, 256}, Bs[] = {1, 8, 32, 128}, Ts[] = {16, 64};
    row_t rows[MAX_ROWS];
    int nrows = 0;
    for (size_t hi = 0; hi < 2; hi++) {
        gru_config_t cfg = {.vocab_size = 20000, .embedding_dim = 128, .hidden_size = Hs[hi], .num_layers = 1,
                            .bidirectional = 0, .num_labels = 2};
        gru_model_t *m;
        gru_ctx_t *ctx;
        if (gru_model_new_random(&m, &cfg, 1, &load) < 0 || gru_ctx_new(&ctx, m) < 0) return 2;
        for (size_t bi = 0; bi < 4; bi++)
            for (size_t ti = 0; ti < 2; ti++)
                for (int g = 0; g < 2; g++) {
                    int B = Bs[bi], T = Ts[ti];
                    gru_gates_mode_t mode = g ? GRU_GATES_SUMMARY : GRU_GATES_NONE;
                    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
                    gru_input_t *in = calloc((size_t)B, sizeof *in);
                    gru_output_t *out = calloc((size_t)B, sizeof *out);
                    float *probs = calloc((size_t)B * 2, sizeof *probs);
                    float *gates = calloc((size_t)B * gru_gates_floats(&cfg, GRU_GATES_SUMMARY, (size_t)T), sizeof *gates);
                    if (!ids || !in || !out || !probs || !gates) return 2;
                    for (int i = 0; i < B * T; i++) ids[i] = 2 + (int32_t)((unsigned)i * 2654435761u % 19998u);
                    for (int b = 0; b < B; b++) {
                        in[b] = (gru_input_t){ids + (size_t)b * T, (size_t)T};
                        out[b].probs = probs + 2 * b;
                        out[b].gates = g ? gates + (size_t)b * gru_gates_floats(&cfg, mode, (size_t)T) : NULL;
                    }
                    fwd_arg_t a = {ctx, in, out, (size_t)B, mode};
                    rows[nrows++] = (row_t){Hs[hi], B, T, mode, median_time(run_forward, &a, min_time) * 1e6, 0};
                    free(ids), free(in), free(out), free(probs), free(gates);
                }
        gru_ctx_free(ctx);
        gru_model_free(m);
    }

    /* PyTorch on the same shapes, same thread count, in the same run. */
    int have_torch = 0;
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0) {
        char cmd[8192];
        int off = snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench/torch_gru.py --threads %d --min-time %.2f",
                           threads, threads, GRU_SOURCE_DIR, threads, min_time);
        for (int i = 0; i < nrows; i++)
            off += snprintf(cmd + off, sizeof cmd - (size_t)off, " %d:%d:%d:%s", rows[i].H, rows[i].B, rows[i].T,
                            gru_gates_mode_name(rows[i].mode));
        FILE *p = popen(cmd, "r");
        if (p) {
            int H, B, T;
            char gates[16];
            double us;
            while (fscanf(p, "%d %d %d %15s %lf", &H, &B, &T, gates, &us) == 5)
                for (int i = 0; i < nrows; i++)
                    if (rows[i].H == H && rows[i].B == B && rows[i].T == T &&
                        !strcmp(gru_gates_mode_name(rows[i].mode), gates)) {
                        rows[i].torch_us = us;
                        have_torch = 1;
                    }
            pclose(p);
        }
    }

    printf("gru-bench: %d thread(s); sgemm peak %.1f GFLOP/s (512^3); model E=128 V=20000 L=1, random weights\n",
           threads, peak);
    printf("%5s %5s %4s %-8s %10s %10s %9s %7s %6s", "H", "batch", "T", "gates", "us/batch", "tokens/s", "eff GF/s",
           "GF/s", "%peak");
    if (have_torch) printf(" %10s %11s %7s", "torch us", "torch tok/s", "x torch");
    printf("\n");
    for (int i = 0; i < nrows; i++) {
        row_t *r = &rows[i];
        double tokens = (double)r->B * r->T;
        double eff = tokens * 6.0 * r->H * (128 + r->H) / (r->us * 1e-6) / 1e9;
        double done = tokens * 6.0 * r->H * r->H / (r->us * 1e-6) / 1e9;
        printf("%5d %5d %4d %-8s %10.1f %10.0f %9.1f %7.1f %5.0f%%", r->H, r->B, r->T, gru_gates_mode_name(r->mode),
               r->us, tokens / (r->us * 1e-6), eff, done, 100.0 * done / peak);
        if (have_torch && r->torch_us > 0)
            printf(" %10.1f %11.0f %6.2fx", r->torch_us, tokens / (r->torch_us * 1e-6), r->torch_us / r->us);
        printf("\n");
    }
    return 0;
}
