/* test_parity.c - the C engine against PyTorch reference outputs (cmocka).
 *
 * tests/data/ref/<case>/ holds a model directory and expected.bin, written by
 * tools/gen_reference.py (format documented there; the values are nn.GRU's, checked by that
 * script, computed in float64 and rounded once to float32). No torch is needed here.
 *
 * For every case directory (found at run time, one cmocka test each):
 *   parity/<case>  every text (a) alone, as a batch of 1, and (b) all texts in one batch, each in
 *                  GRU_GATES_FULL, GRU_GATES_SUMMARY and GRU_GATES_NONE, with the trajectory
 *                  (unidirectional models): every probability, trajectory value and gate value
 *                  within PARITY_TOL of the reference; summary means against the mean over units
 *                  of the reference r and z. Texts without reference gates pass gates = NULL.
 *   batch64/<case> 64 texts of random lengths 1..300 (fixed seed): each text's probabilities
 *                  alone and inside the batch agree within BATCH_TOL.
 * The maximum absolute error per case is printed; the first value out of tolerance in each
 * category is printed with its case, batch kind, mode, text, position and both values.
 */
#include <dirent.h>
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

#include "gru.h"
#include "../../tools/tool_options.h"

/* The engine under test: the default one, or another path chosen by tests/parity.cmake through
 * GRU_PROJ_TABLE_MAX_MB / GRU_PACKED (set in main). */
static gru_load_options_t g_opt;

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "expected.bin is little-endian; this test reads it on little-endian hosts only"
#endif

#define REF_DIR GRU_TEST_DATA "/ref"
#define PARITY_TOL 1e-5
#define BATCH_TOL 1e-6
#define MAX_CASES 64

/* ---------------------------------------------------------------------------------------------
 * expected.bin
 */

typedef struct {
    uint32_t len, flags; /* flags bit 0: gates present */
    int32_t *ids;        /* (len) */
    float *probs;        /* (C) */
    float *traj;         /* (len, C) when D == 1, else NULL */
    float *gates;        /* (L, D, 4, len, H) when flags & 1, else NULL */
} ref_seq_t;

typedef struct {
    char name[256];
    char dir[4096];
    uint32_t V, E, H, L, D, C, n;
    ref_seq_t *seq;
} ref_case_t;

typedef struct {
    const unsigned char *p;
    size_t len, off;
    int bad;
} reader_t;

static const void *rd_bytes(reader_t *r, size_t n) {
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return NULL;
    }
    const void *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t rd_u32(reader_t *r) {
    const unsigned char *p = rd_bytes(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

/* A malloc'ed copy of n 4-byte values (aligned), or NULL after a short read. */
static void *rd_array(reader_t *r, size_t n) {
    if (n > SIZE_MAX / 4) {
        r->bad = 1;
        return NULL;
    }
    const void *p = rd_bytes(r, n * 4);
    if (!p) return NULL;
    void *q = malloc(n ? n * 4 : 1);
    assert_non_null(q);
    memcpy(q, p, n * 4);
    return q;
}

static void ref_case_free(ref_case_t *rc) {
    if (!rc) return;
    for (uint32_t i = 0; rc->seq && i < rc->n; i++) {
        free(rc->seq[i].ids);
        free(rc->seq[i].probs);
        free(rc->seq[i].traj);
        free(rc->seq[i].gates);
    }
    free(rc->seq);
    free(rc);
}

/* Reads <dir>/expected.bin; fails the test on a malformed file. */
static ref_case_t *ref_case_load(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/expected.bin", dir);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(sz > 0);
    unsigned char *buf = malloc((size_t)sz);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);

    ref_case_t *rc = calloc(1, sizeof *rc);
    assert_non_null(rc);
    snprintf(rc->name, sizeof rc->name, "%s", name);
    snprintf(rc->dir, sizeof rc->dir, "%s", dir);
    reader_t r = {buf, (size_t)sz, 0, 0};
    const void *magic = rd_bytes(&r, 8);
    if (!magic || memcmp(magic, "GRUREF1\0", 8) != 0) fail_msg("%s: bad magic", path);
    rc->V = rd_u32(&r), rc->E = rd_u32(&r), rc->H = rd_u32(&r), rc->L = rd_u32(&r);
    rc->D = rd_u32(&r), rc->C = rd_u32(&r), rc->n = rd_u32(&r);
    if (r.bad || rc->D < 1 || rc->D > 2 || rc->C < 1 || rc->C > GRU_MAX_LABELS || rc->n > 100000)
        fail_msg("%s: bad header", path);
    rc->seq = calloc(rc->n ? rc->n : 1, sizeof *rc->seq);
    assert_non_null(rc->seq);
    for (uint32_t i = 0; i < rc->n && !r.bad; i++) {
        ref_seq_t *s = &rc->seq[i];
        s->len = rd_u32(&r);
        s->flags = rd_u32(&r);
        if (s->len > 100000) r.bad = 1;
        s->ids = rd_array(&r, s->len);
        s->probs = rd_array(&r, rc->C);
        if (rc->D == 1 && s->len) s->traj = rd_array(&r, (size_t)s->len * rc->C);
        if (s->flags & 1) s->gates = rd_array(&r, (size_t)rc->L * rc->D * 4 * s->len * rc->H);
    }
    const void *end = rd_bytes(&r, 8);
    if (r.bad || !end || memcmp(end, "GRUEND1\0", 8) != 0 || r.off != r.len)
        fail_msg("%s: truncated or malformed (at byte %zu of %zu)", path, r.off, r.len);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Error bookkeeping
 */

enum { ST_PROBS, ST_TRAJ, ST_GATES, ST_SUMMARY, ST_N };
static const char *const st_name[ST_N] = {"probs", "trajectory", "gates", "summary"};

typedef struct {
    double max[ST_N];
    long checked[ST_N];
    long bad[ST_N];
    char first_bad[ST_N][512];
} stats_t;

/* Records one comparison; NaN (a value never written) counts as out of tolerance. */
static void cmp(stats_t *st, int kind, double expected, double got, double tol, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void cmp(stats_t *st, int kind, double expected, double got, double tol, const char *fmt, ...) {
    double d = fabs(expected - got);
    st->checked[kind]++;
    if (d > st->max[kind] || isnan(d)) st->max[kind] = isnan(d) ? INFINITY : d;
    if (!(d <= tol)) {
        if (st->bad[kind]++ == 0) {
            char where[384];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(where, sizeof where, fmt, ap);
            va_end(ap);
            snprintf(st->first_bad[kind], sizeof st->first_bad[kind], "%s: expected %.9g, got %.9g (|diff| %.3g)",
                     where, expected, got, d);
        }
    }
}

static const char *const gate_kind[4] = {"r", "z", "n", "h"};

/* ---------------------------------------------------------------------------------------------
 * Parity
 */

/* Runs the texts idx[0..k) of rc as one batch in mode and compares everything to the reference. */
static void run_and_compare(gru_ctx_t *ctx, const gru_config_t *cfg, const ref_case_t *rc, const uint32_t *idx,
                            size_t k, gru_gates_mode_t mode, const char *batch_kind, stats_t *st) {
    const size_t C = rc->C, H = rc->H, LD = (size_t)rc->L * rc->D;
    gru_input_t *in = calloc(k, sizeof *in);
    gru_output_t *out = calloc(k, sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t b = 0; b < k; b++) {
        const ref_seq_t *s = &rc->seq[idx[b]];
        in[b] = (gru_input_t){s->ids, s->len};
        out[b].probs = malloc(C * sizeof(float));
        assert_non_null(out[b].probs);
        for (size_t c = 0; c < C; c++) out[b].probs[c] = NAN;
        if (rc->D == 1 && s->len) {
            out[b].trajectory = malloc(s->len * C * sizeof(float));
            assert_non_null(out[b].trajectory);
            for (size_t i = 0; i < s->len * C; i++) out[b].trajectory[i] = NAN;
        }
        size_t ng = gru_gates_floats(cfg, mode, s->len);
        if (s->gates && ng) {
            out[b].gates = malloc(ng * sizeof(float));
            assert_non_null(out[b].gates);
            for (size_t i = 0; i < ng; i++) out[b].gates[i] = NAN;
        }
    }
    int rcode = gru_forward_batch(ctx, in, out, k, mode);
    if (rcode != 0) fail_msg("%s: %s batch of %zu, mode %s: gru_forward_batch returned %d", rc->name, batch_kind, k,
                             gru_gates_mode_name(mode), rcode);

    const char *mname = gru_gates_mode_name(mode);
    for (size_t b = 0; b < k; b++) {
        const uint32_t ti = idx[b];
        const ref_seq_t *s = &rc->seq[ti];
        const size_t T = s->len;
        for (size_t c = 0; c < C; c++)
            cmp(st, ST_PROBS, s->probs[c], out[b].probs[c], PARITY_TOL, "%s %s/%s text %u (len %zu) probs[%zu]",
                rc->name, batch_kind, mname, ti, T, c);
        if (out[b].trajectory)
            for (size_t t = 0; t < T; t++)
                for (size_t c = 0; c < C; c++)
                    cmp(st, ST_TRAJ, s->traj[t * C + c], out[b].trajectory[t * C + c], PARITY_TOL,
                        "%s %s/%s text %u (len %zu) trajectory[t=%zu][%zu]", rc->name, batch_kind, mname, ti, T, t,
                        c);
        if (!out[b].gates) continue;
        for (size_t ld = 0; ld < LD; ld++) {
            for (size_t t = 0; t < T; t++) {
                if (mode == GRU_GATES_FULL) {
                    for (size_t g = 0; g < 4; g++)
                        for (size_t j = 0; j < H; j++) {
                            size_t o = ((ld * 4 + g) * T + t) * H + j;
                            cmp(st, ST_GATES, s->gates[o], out[b].gates[o], PARITY_TOL,
                                "%s %s/%s text %u (len %zu) layer %zu dir %zu gate %s t=%zu unit %zu", rc->name,
                                batch_kind, mname, ti, T, ld / rc->D, ld % rc->D, gate_kind[g], t, j);
                        }
                } else {
                    for (size_t g = 0; g < 2; g++) {
                        double mean = 0.0;
                        for (size_t j = 0; j < H; j++) mean += s->gates[((ld * 4 + g) * T + t) * H + j];
                        mean /= (double)H;
                        cmp(st, ST_SUMMARY, mean, out[b].gates[(ld * 2 + g) * T + t], PARITY_TOL,
                            "%s %s/%s text %u (len %zu) layer %zu dir %zu mean %s t=%zu", rc->name, batch_kind, mname,
                            ti, T, ld / rc->D, ld % rc->D, gate_kind[g], t);
                    }
                }
            }
        }
    }
    for (size_t b = 0; b < k; b++) {
        free(out[b].probs);
        free(out[b].trajectory);
        free(out[b].gates);
    }
    free(in);
    free(out);
}

static void test_parity_case(void **state) {
    const char *dir = *state;
    const char *name = strrchr(dir, '/') + 1;
    ref_case_t *rc = ref_case_load(dir, name);

    gru_model_t *m;
    char err[512] = "";
    int r = gru_model_load(&m, rc->dir, &g_opt, err, sizeof err);
    if (r < 0) fail_msg("%s: gru_model_load: %d %s", rc->name, r, err);
    const gru_config_t *cfg = gru_model_config(m);
    assert_int_equal(cfg->vocab_size, rc->V);
    assert_int_equal(cfg->embedding_dim, rc->E);
    assert_int_equal(cfg->hidden_size, rc->H);
    assert_int_equal(cfg->num_layers, rc->L);
    assert_int_equal(1 + cfg->bidirectional, rc->D);
    assert_int_equal(cfg->num_labels, rc->C);
    assert_string_equal(cfg->name, rc->name);

    gru_ctx_t *ctx;
    assert_int_equal(gru_ctx_new(&ctx, m), 0);
    uint32_t *all = malloc((rc->n ? rc->n : 1) * sizeof *all);
    assert_non_null(all);
    for (uint32_t i = 0; i < rc->n; i++) all[i] = i;

    stats_t st;
    memset(&st, 0, sizeof st);
    const gru_gates_mode_t modes[3] = {GRU_GATES_FULL, GRU_GATES_SUMMARY, GRU_GATES_NONE};
    for (int mi = 0; mi < 3; mi++) {
        for (uint32_t i = 0; i < rc->n; i++) run_and_compare(ctx, cfg, rc, &all[i], 1, modes[mi], "alone", &st);
        run_and_compare(ctx, cfg, rc, all, rc->n, modes[mi], "batch", &st);
    }
    /* The batch in reverse order too (a different packed layout). */
    for (uint32_t i = 0; i < rc->n / 2; i++) {
        uint32_t t = all[i];
        all[i] = all[rc->n - 1 - i];
        all[rc->n - 1 - i] = t;
    }
    run_and_compare(ctx, cfg, rc, all, rc->n, GRU_GATES_FULL, "reversed-batch", &st);

    size_t tokens = 0;
    for (uint32_t i = 0; i < rc->n; i++) tokens += rc->seq[i].len;
    char traj[32] = "n/a (bidir)";
    if (rc->D == 1) snprintf(traj, sizeof traj, "%.2e", st.max[ST_TRAJ]);
    printf("parity %-16s texts %3u tokens %5zu  max |err|: probs %.2e  trajectory %s  gates %.2e  summary %.2e\n",
           rc->name, rc->n, tokens, st.max[ST_PROBS], traj, st.max[ST_GATES], st.max[ST_SUMMARY]);
    long bad = 0;
    for (int kind = 0; kind < ST_N; kind++) {
        if (st.bad[kind])
            printf("  MISMATCH %s: %ld of %ld values over %g; first: %s\n", st_name[kind], st.bad[kind],
                   st.checked[kind], PARITY_TOL, st.first_bad[kind]);
        bad += st.bad[kind];
    }
    assert_true(st.checked[ST_PROBS] > 0 && st.checked[ST_GATES] > 0 && st.checked[ST_SUMMARY] > 0);
    if (rc->D == 1) assert_true(st.checked[ST_TRAJ] > 0);
    free(all);
    gru_ctx_free(ctx);
    gru_model_free(m);
    ref_case_free(rc);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Batch invariance
 */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void test_batch64_case(void **state) {
    const char *dir = *state;
    const char *name = strrchr(dir, '/') + 1;
    enum { NB = 64, MAXLEN = 300 };
    gru_model_t *m;
    char err[512] = "";
    int r = gru_model_load(&m, dir, &g_opt, err, sizeof err);
    if (r < 0) fail_msg("%s: gru_model_load: %d %s", name, r, err);
    const gru_config_t *cfg = gru_model_config(m);
    const size_t C = (size_t)cfg->num_labels;
    gru_ctx_t *ctx;
    assert_int_equal(gru_ctx_new(&ctx, m), 0);

    uint64_t seed = 20240611;
    gru_input_t in[NB];
    gru_output_t out[NB], one[NB];
    float *probs_batch = malloc(NB * C * sizeof(float)), *probs_alone = malloc(NB * C * sizeof(float));
    assert_non_null(probs_batch);
    assert_non_null(probs_alone);
    for (int i = 0; i < NB; i++) {
        size_t len = 1 + (size_t)(rng_next(&seed) % MAXLEN);
        if (i == 0) len = MAXLEN; /* always one of the longest and one of the shortest */
        if (i == 1) len = 1;
        int32_t *ids = malloc(len * sizeof *ids);
        assert_non_null(ids);
        for (size_t t = 0; t < len; t++) ids[t] = 1 + (int32_t)(rng_next(&seed) % (uint64_t)(cfg->vocab_size - 1));
        in[i] = (gru_input_t){ids, len};
        out[i] = (gru_output_t){probs_batch + (size_t)i * C, NULL, NULL};
        one[i] = (gru_output_t){probs_alone + (size_t)i * C, NULL, NULL};
    }
    assert_int_equal(gru_forward_batch(ctx, in, out, NB, GRU_GATES_NONE), 0);
    for (int i = 0; i < NB; i++) assert_int_equal(gru_forward_batch(ctx, &in[i], &one[i], 1, GRU_GATES_NONE), 0);

    stats_t st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < NB; i++)
        for (size_t c = 0; c < C; c++)
            cmp(&st, ST_PROBS, probs_alone[(size_t)i * C + c], probs_batch[(size_t)i * C + c], BATCH_TOL,
                "%s batch64 text %d (len %zu) probs[%zu] (expected = alone, got = in the batch)", name, i, in[i].len,
                c);
    printf("batch64 %-16s max |alone - batched| %.2e\n", name, st.max[ST_PROBS]);
    if (st.bad[ST_PROBS]) printf("  MISMATCH: %ld values over %g; first: %s\n", st.bad[ST_PROBS], BATCH_TOL,
                                 st.first_bad[ST_PROBS]);
    for (int i = 0; i < NB; i++) free((void *)in[i].ids);
    free(probs_batch);
    free(probs_alone);
    gru_ctx_free(ctx);
    gru_model_free(m);
    assert_int_equal(st.bad[ST_PROBS], 0);
}

/* ---------------------------------------------------------------------------------------------
 * Case discovery
 */

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    static char *dirs[MAX_CASES];
    int n = 0;
    setvbuf(stdout, NULL, _IONBF, 0); /* our lines in order with cmocka's */
    g_opt = tool_load_options();
    DIR *d = opendir(REF_DIR);
    if (!d) {
        fprintf(stderr, "test_parity: %s: %s (run tools/gen_reference.py)\n", REF_DIR, strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_CASES) {
        if (e->d_name[0] == '.') continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/expected.bin", REF_DIR, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fclose(f);
        size_t sz = strlen(REF_DIR) + 1 + strlen(e->d_name) + 1;
        dirs[n] = malloc(sz);
        snprintf(dirs[n], sz, "%s/%s", REF_DIR, e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "test_parity: no reference cases in %s (run tools/gen_reference.py)\n", REF_DIR);
        return 1;
    }
    qsort(dirs, (size_t)n, sizeof *dirs, str_cmp);
    static struct CMUnitTest tests[2 * MAX_CASES];
    static char names[2 * MAX_CASES][300];
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(dirs[i], '/') + 1;
        snprintf(names[i], sizeof names[i], "parity/%s", base);
        snprintf(names[n + i], sizeof names[n + i], "batch64/%s", base);
        tests[i] = (struct CMUnitTest){names[i], test_parity_case, NULL, NULL, dirs[i]};
        tests[n + i] = (struct CMUnitTest){names[n + i], test_batch64_case, NULL, NULL, dirs[i]};
    }
    int rc = _cmocka_run_group_tests("parity", tests, (size_t)(2 * n), NULL, NULL);
    for (int i = 0; i < n; i++) free(dirs[i]);
    return rc;
}
