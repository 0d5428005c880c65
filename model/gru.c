/* gru.c - GRU classifier: config and weight loading, and the batched forward pass.
 *
 * Forward pass design (see gru.h for the math):
 * - The texts of a batch are sorted by length, longest first, and laid out the way PyTorch's
 *   PackedSequence is: step t holds the batch_sizes[t] texts longer than t, as rows
 *   offs[t] .. offs[t] + batch_sizes[t] - 1 of every (N, *) activation matrix, N = total
 *   tokens. The texts still running at any step are a prefix of the sorted order, so each step
 *   updates a contiguous block of the hidden state and no padding ever enters the math.
 * - Per layer and direction, the input projection of every token is one sgemm,
 *   (N, In) x (In, 3H) (or, for layer 0, a row of the per-vocabulary table). Per step, the
 *   recurrent projection over the running texts, (b, H) x (H, 3H), runs on W_hh packed at load
 *   time (mm.h: no per-call re-packing, and each row's result independent of the batch); where
 *   that kernel is unavailable, one sgemm, or an sgemv when b == 1 (5-6x faster there). The
 *   gate nonlinearities run in a fused element-wise kernel.
 * - The backward direction walks step s over position len - 1 - s of each text, which keeps
 *   the same running prefix; its rows are addressed per text instead of as one block.
 * - Gates are written only in GRU_GATES_SUMMARY / _FULL mode; the plain path skips the branch.
 * - A text may start from given states and hand back every layer's state after each token
 *   (gru_forward_batch_states): explain.c resumes edited texts from a shared prefix so.
 */
#include "util.h"
#include "gru.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <jansson.h>

#include "mm.h"
#include "wts.h"

/* ------------------------------------------------------------------------------------------ */
/* Model */

typedef struct {
    const float *w_ih; /* (3H, In) */
    const float *w_hh; /* (3H, H) */
    const float *b_ih; /* (3H) */
    const float *b_hh; /* (3H) */
} gru_dir_weights_t;

struct gru_model {
    gru_config_t cfg;
    tok_vocab_t *vocab;
    wts_file_t *wts;
    const float *embedding;                          /* (V, E) */
    gru_dir_weights_t layers[GRU_MAX_LAYERS][2];     /* [layer][direction] */
    const float *fc_w;                               /* (C, D*H) */
    const float *fc_b;                               /* (C) */
    float *owned;                                    /* weights of a random model, or NULL */
    char version[GRU_VERSION_HEX + 1];               /* content hash (sha256.h); "" when random */
    /* Layer 0's input projection of every vocabulary entry, embedding[v] W_ih^T + b_ih, per
     * direction: (V, 3H). A token's projection is then a row lookup, not a matrix product.
     * NULL when the table would exceed the load options' budget (then it is computed per batch). */
    float *proj0[2];
    mm_packed_t *whh[GRU_MAX_LAYERS][2]; /* W_hh packed for mm_mul(), or NULL: use BLAS */
    mm_packed_t *wih[GRU_MAX_LAYERS][2]; /* W_ih packed where no table replaces it, or NULL */
};

/* Largest weight magnitude accepted (a trained GRU's are below 100). With every weight within it
 * and every state in (-1, 1), no sum in the forward pass can overflow to inf or NaN, whatever
 * the text. */
#define GRU_MAX_ABS_WEIGHT 1e6f


const gru_config_t *gru_model_config(const gru_model_t *m) { return &m->cfg; }
const tok_vocab_t *gru_model_vocab(const gru_model_t *m) { return m->vocab; }
const char *gru_model_version(const gru_model_t *m) { return m->version; }

void gru_model_free(gru_model_t *m) {
    if (!m) return;
    tok_vocab_free(m->vocab);
    wts_close(m->wts);
    free(m->owned);
    free(m->proj0[0]);
    free(m->proj0[1]);
    for (int l = 0; l < GRU_MAX_LAYERS; l++)
        for (int d = 0; d < 2; d++) mm_packed_free(m->whh[l][d]), mm_packed_free(m->wih[l][d]);
    free(m);
}

static const char *const POOLING_NAMES[] = {"last", "max", "mean"}; /* by gru_pooling_t */

const char *gru_pooling_name(gru_pooling_t p) {
    return (unsigned)p < sizeof POOLING_NAMES / sizeof *POOLING_NAMES ? POOLING_NAMES[p] : "?";
}

int gru_pooling_parse(const char *s, gru_pooling_t *out) {
    for (size_t i = 0; s && i < sizeof POOLING_NAMES / sizeof *POOLING_NAMES; i++)
        if (strcmp(s, POOLING_NAMES[i]) == 0) {
            *out = (gru_pooling_t)i;
            return 0;
        }
    return -EINVAL;
}

const char *gru_gates_mode_name(gru_gates_mode_t mode) {
    switch (mode) {
    case GRU_GATES_NONE: return "none";
    case GRU_GATES_SUMMARY: return "summary";
    case GRU_GATES_FULL: return "full";
    }
    return "?";
}

int gru_gates_mode_parse(const char *s, gru_gates_mode_t *out) {
    if (!s) return -EINVAL;
    if (strcmp(s, "none") == 0) *out = GRU_GATES_NONE;
    else if (strcmp(s, "summary") == 0) *out = GRU_GATES_SUMMARY;
    else if (strcmp(s, "full") == 0) *out = GRU_GATES_FULL;
    else return -EINVAL;
    return 0;
}

size_t gru_gates_floats(const gru_config_t *cfg, gru_gates_mode_t mode, size_t len) {
    size_t ld = (size_t)cfg->num_layers * (size_t)(1 + cfg->bidirectional);
    switch (mode) {
    case GRU_GATES_SUMMARY: return ld * 2 * len;
    case GRU_GATES_FULL: return ld * 4 * len * (size_t)cfg->hidden_size;
    default: return 0;
    }
}

static int precompute_proj0(gru_model_t *m, int max_mb);
static int pack_weights(gru_model_t *m, int packed);

/* Counts the parameters of the shape in c. */
static size_t count_params(const gru_config_t *c) {
    const size_t V = (size_t)c->vocab_size, E = (size_t)c->embedding_dim, H = (size_t)c->hidden_size;
    const size_t D = 1 + (size_t)c->bidirectional, C = (size_t)c->num_labels;
    size_t n = V * E + C * D * H + C;
    for (int l = 0; l < c->num_layers; l++) n += D * (3 * H * (l == 0 ? E : D * H) + 3 * H * H + 6 * H);
    return n;
}

/* An integer config key in [lo, hi]. */
static int cfg_int(json_t *root, const char *key, int lo, int hi, int *out, const char *path,
                   char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (!v) return gru__errorf(err, errlen, -EINVAL, "%s: missing key \"%s\"", path, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return gru__errorf(err, errlen, -EINVAL, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* The optional "languages": a list of at most GRU_MAX_LANGUAGES unique ISO 639 codes (2 or 3
 * lower-case ASCII letters). Absent or null: none declared. */
static int cfg_languages(json_t *root, gru_config_t *cfg, const char *path, char *err, size_t errlen) {
    json_t *langs = json_object_get(root, "languages");
    cfg->num_languages = 0;
    if (!langs || json_is_null(langs)) return 0;
    if (!json_is_array(langs) || json_array_size(langs) > GRU_MAX_LANGUAGES)
        return gru__errorf(err, errlen, -EINVAL, "%s: \"languages\" must be a list of at most %d language codes",
                           path, GRU_MAX_LANGUAGES);
    for (size_t i = 0; i < json_array_size(langs); i++) {
        const char *s = json_string_value(json_array_get(langs, i));
        size_t n = s ? strlen(s) : 0;
        int ok = n >= 2 && n <= 3;
        for (size_t k = 0; ok && k < n; k++) ok = s[k] >= 'a' && s[k] <= 'z';
        if (!ok)
            return gru__errorf(err, errlen, -EINVAL,
                               "%s: languages[%zu] must be an ISO 639 code of 2 or 3 lower-case letters, such as \"en\"",
                               path, i);
        for (int j = 0; j < cfg->num_languages; j++)
            if (strcmp(cfg->languages[j], s) == 0)
                return gru__errorf(err, errlen, -EINVAL, "%s: language \"%s\" appears twice in \"languages\"", path, s);
        memcpy(cfg->languages[cfg->num_languages++], s, n + 1);
    }
    return 0;
}

static int config_load(gru_config_t *cfg, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return gru__errorf(err, errlen, -EINVAL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    int rc = -EINVAL;
    if (!json_is_object(root)) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: not a JSON object", path);
        goto out;
    }
    const char *type = json_string_value(json_object_get(root, "model_type"));
    if (!type || strcmp(type, "gru_classifier") != 0) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: \"model_type\" must be \"gru_classifier\"", path);
        goto out;
    }
    if ((rc = cfg_int(root, "vocab_size", 2, INT32_MAX, &cfg->vocab_size, path, err, errlen)) < 0 ||
        (rc = cfg_int(root, "embedding_dim", 1, 1 << 16, &cfg->embedding_dim, path, err, errlen)) < 0 ||
        (rc = cfg_int(root, "hidden_size", 1, GRU_MAX_HIDDEN, &cfg->hidden_size, path, err, errlen)) < 0 ||
        (rc = cfg_int(root, "num_layers", 1, GRU_MAX_LAYERS, &cfg->num_layers, path, err, errlen)) < 0)
        goto out;
    rc = -EINVAL;
    json_t *bi = json_object_get(root, "bidirectional");
    if (bi && !json_is_boolean(bi)) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: \"bidirectional\" must be true or false", path);
        goto out;
    }
    cfg->bidirectional = json_is_true(bi);
    json_t *pool = json_object_get(root, "pooling");
    if (gru_pooling_parse(pool ? json_string_value(pool) : "last", &cfg->pooling) < 0) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: \"pooling\" must be \"last\", \"max\" or \"mean\"", path);
        goto out;
    }
    json_t *labels = json_object_get(root, "labels");
    if (!json_is_array(labels) || json_array_size(labels) < 2 || json_array_size(labels) > GRU_MAX_LABELS) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: \"labels\" must be a list of 2 to %d strings", path,
                  GRU_MAX_LABELS);
        goto out;
    }
    cfg->num_labels = (int)json_array_size(labels);
    for (int i = 0; i < cfg->num_labels; i++) {
        const char *s = json_string_value(json_array_get(labels, (size_t)i));
        if (!s || !*s || strlen(s) >= GRU_MAX_LABEL_LEN) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s: labels[%d] must be a non-empty string under %d bytes",
                      path, i, GRU_MAX_LABEL_LEN);
            goto out;
        }
        strcpy(cfg->labels[i], s);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->labels[j], s) == 0) {
                rc = gru__errorf(err, errlen, -EINVAL, "%s: label \"%s\" appears twice", path, s);
                goto out;
            }
    }
    json_t *tk = json_object_get(root, "tokenizer");
    if (!json_is_object(tk)) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: missing object \"tokenizer\"", path);
        goto out;
    }
    const char *kind = json_string_value(json_object_get(tk, "kind"));
    if (kind && strcmp(kind, "word") == 0) cfg->tokenizer.kind = TOK_KIND_WORD;
    else if (kind && strcmp(kind, "char") == 0) cfg->tokenizer.kind = TOK_KIND_CHAR;
    else {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: tokenizer.kind must be \"word\" or \"char\"", path);
        goto out;
    }
    json_t *lc = json_object_get(tk, "lowercase");
    if (lc && !json_is_boolean(lc)) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s: tokenizer.lowercase must be true or false", path);
        goto out;
    }
    cfg->tokenizer.lowercase = lc ? json_is_true(lc) : 1;
    int max_tokens;
    if ((rc = cfg_int(tk, "max_tokens", 1, 1 << 20, &max_tokens, path, err, errlen)) < 0) {
        gru__errorf(err, errlen, rc, "%s: tokenizer.max_tokens must be an integer in [1, %d]", path, 1 << 20);
        goto out;
    }
    cfg->tokenizer.max_tokens = (size_t)max_tokens;
    rc = cfg_languages(root, cfg, path, err, errlen);
out:
    json_decref(root);
    return rc;
}

/* Whether name is one of the tensors a model of config c has (exact names, as PyTorch writes). */
static int is_expected_tensor(const gru_config_t *c, const char *name) {
    if (!strcmp(name, "embedding.weight") || !strcmp(name, "fc.weight") || !strcmp(name, "fc.bias")) return 1;
    static const char *const kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (int l = 0; l < c->num_layers; l++)
        for (int d = 0; d < 1 + c->bidirectional; d++)
            for (int k = 0; k < 4; k++) {
                char want[64];
                snprintf(want, sizeof want, "gru.%s_l%d%s", kinds[k], l, d ? "_reverse" : "");
                if (!strcmp(name, want)) return 1;
            }
    return 0;
}

/* Looks up a tensor and checks its shape (dims ends with -1). */
static int want_tensor(const gru_model_t *m, const float **out, const char *path, const char *name,
                       char *err, size_t errlen, int ndim, int64_t d0, int64_t d1) {
    const wts_tensor_t *t = wts_find(m->wts, name);
    if (!t) return gru__errorf(err, errlen, -EPROTO, "%s: missing tensor %s", path, name);
    int ok = t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
    if (!ok) {
        if (ndim == 1)
            return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: shape mismatch, config needs [%lld]", path,
                        name, (long long)d0);
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: shape mismatch, config needs [%lld, %lld]",
                    path, name, (long long)d0, (long long)d1);
    }
    for (size_t i = 0; i < t->count; i++) {
        if (fabsf(t->data[i]) <= GRU_MAX_ABS_WEIGHT) continue; /* false for NaN too */
        if (!isfinite(t->data[i]))
            return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: value %zu is not finite", path, name, i);
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: value %zu is %g, beyond +-%g", path, name, i,
                           (double)t->data[i], (double)GRU_MAX_ABS_WEIGHT);
    }
    *out = t->data;
    return 0;
}

/* Builds what the load options ask for on top of the weights: the projection table and the
 * packed W_hh. Returns 0, or -ENOMEM. */
static int build_engine(gru_model_t *m, const gru_load_options_t *opt) {
    const gru_load_options_t def = GRU_LOAD_OPTIONS_DEFAULT;
    if (!opt) opt = &def;
    int rc = precompute_proj0(m, opt->proj_table_max_mb);
    return rc < 0 ? rc : pack_weights(m, opt->packed);
}

int gru_model_load(gru_model_t **out, const char *dir, const gru_load_options_t *opt, char *err, size_t errlen) {
    *out = NULL;
    if (!dir) return gru__errorf(err, errlen, -EINVAL, "no model directory");
    gru_model_t *m = calloc(1, sizeof *m);
    if (!m) return gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", dir);
    gru_config_t *c = &m->cfg;
    int rc = config_load(c, dir, err, errlen);
    if (rc < 0) goto bad;

    /* The model's name is the directory's base name. */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    size_t b = dl;
    while (b > 0 && dir[b - 1] != '/') b--;
    snprintf(c->name, sizeof c->name, "%.*s", (int)(dl - b), dir + b);

    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if ((rc = tok_vocab_load(&m->vocab, path, err, errlen)) < 0) goto bad;
    if (tok_vocab_size(m->vocab) != (size_t)c->vocab_size) {
        rc = gru__errorf(err, errlen, -EPROTO, "%s: %zu tokens, but config.json says vocab_size %d", path,
                  tok_vocab_size(m->vocab), c->vocab_size);
        goto bad;
    }

    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = wts_open(&m->wts, path, err, errlen)) < 0) goto bad;
    const int V = c->vocab_size, E = c->embedding_dim, H = c->hidden_size, L = c->num_layers;
    const int D = 1 + c->bidirectional, C = c->num_labels;
    size_t expected = 3 + (size_t)L * (size_t)D * 4;
    if ((rc = want_tensor(m, &m->embedding, path, "embedding.weight", err, errlen, 2, V, E)) < 0) goto bad;
    for (int l = 0; l < L; l++) {
        for (int d = 0; d < D; d++) {
            gru_dir_weights_t *w = &m->layers[l][d];
            const char *sfx = d ? "_reverse" : "";
            int in = l == 0 ? E : D * H;
            char name[64];
            snprintf(name, sizeof name, "gru.weight_ih_l%d%s", l, sfx);
            if ((rc = want_tensor(m, &w->w_ih, path, name, err, errlen, 2, 3 * H, in)) < 0) goto bad;
            snprintf(name, sizeof name, "gru.weight_hh_l%d%s", l, sfx);
            if ((rc = want_tensor(m, &w->w_hh, path, name, err, errlen, 2, 3 * H, H)) < 0) goto bad;
            snprintf(name, sizeof name, "gru.bias_ih_l%d%s", l, sfx);
            if ((rc = want_tensor(m, &w->b_ih, path, name, err, errlen, 1, 3 * H, 0)) < 0) goto bad;
            snprintf(name, sizeof name, "gru.bias_hh_l%d%s", l, sfx);
            if ((rc = want_tensor(m, &w->b_hh, path, name, err, errlen, 1, 3 * H, 0)) < 0) goto bad;
        }
    }
    if ((rc = want_tensor(m, &m->fc_w, path, "fc.weight", err, errlen, 2, C, D * H)) < 0) goto bad;
    if ((rc = want_tensor(m, &m->fc_b, path, "fc.bias", err, errlen, 1, C, 0)) < 0) goto bad;
    if (wts_count(m->wts) != expected) {
        /* Every expected tensor is present, so some other one is not: name it. */
        for (size_t i = 0; i < wts_count(m->wts); i++) {
            const char *name = wts_at(m->wts, i)->name;
            if (!is_expected_tensor(c, name)) {
                rc = gru__errorf(err, errlen, -EPROTO,
                          "%s: unexpected tensor %s (config.json: num_layers %d, bidirectional %s)", path,
                          name, L, D == 2 ? "true" : "false");
                goto bad;
            }
        }
    }
    c->num_params = count_params(c);
    if ((rc = build_engine(m, opt)) < 0) {
        gru__errorf(err, errlen, rc, "%s: out of memory for the packed weights", dir);
        goto bad;
    }
    if (m->proj0[0]) wts_release(m->wts, wts_find(m->wts, "embedding.weight")); /* table replaces it */
    /* The version of the files as they are now, right after they were read and checked. */
    if ((rc = gru_model_dir_version(dir, m->version, err, errlen)) < 0) goto bad;
    *out = m;
    return 0;
bad:
    gru_model_free(m);
    return rc;
}

int gru_model_new_random(gru_model_t **out, const gru_config_t *cfg, uint64_t seed, const gru_load_options_t *opt) {
    *out = NULL;
    if (cfg->vocab_size < 2 || cfg->embedding_dim < 1 || cfg->hidden_size < 1 ||
        cfg->hidden_size > GRU_MAX_HIDDEN || cfg->num_layers < 1 || cfg->num_layers > GRU_MAX_LAYERS ||
        cfg->num_labels < 2 || cfg->num_labels > GRU_MAX_LABELS)
        return -EINVAL;
    gru_model_t *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cfg = *cfg;
    m->vocab = NULL;
    gru_config_t *c = &m->cfg;
    c->num_params = count_params(c);
    if (!(m->owned = malloc(c->num_params * sizeof(float)))) {
        free(m);
        return -ENOMEM;
    }
    const float scale = 1.0f / sqrtf((float)c->hidden_size);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < c->num_params; i++) { /* xorshift64* */
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        float u = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 24); /* [0, 1) */
        m->owned[i] = (2.0f * u - 1.0f) * scale;
    }
    const size_t E = (size_t)c->embedding_dim, H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
    float *p = m->owned;
    m->embedding = p, p += (size_t)c->vocab_size * E;
    for (int l = 0; l < c->num_layers; l++)
        for (size_t d = 0; d < D; d++) {
            gru_dir_weights_t *w = &m->layers[l][d];
            w->w_ih = p, p += 3 * H * (l == 0 ? E : D * H);
            w->w_hh = p, p += 3 * H * H;
            w->b_ih = p, p += 3 * H;
            w->b_hh = p, p += 3 * H;
        }
    m->fc_w = p, p += (size_t)c->num_labels * D * H;
    m->fc_b = p;
    if (build_engine(m, opt) < 0) {
        gru_model_free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

/* exp(x) for the gate nonlinearities: Cephes' expf polynomial (about 1 ulp on the clamped
 * range), written so that the compiler vectorizes the loops that call it. */
static inline float gru__expf(float x) {
    x = x > -87.0f ? x : -87.0f; /* written so that a NaN becomes -87 (no UB in the cast below) */
    x = x < 88.0f ? x : 88.0f;
    /* n = round(x / ln 2), by the 1.5 * 2^23 trick (no libm call, vectorizes). */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

static inline float gru__sigmoidf(float x) { return 1.0f / (1.0f + gru__expf(-x)); }
static inline float gru__tanhf(float x) { return 2.0f / (1.0f + gru__expf(-2.0f * x)) - 1.0f; }

/* Compile the element-wise kernel for AVX-512 and AVX2+FMA too, chosen at run time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(GRU_NO_CLONES)
#define GRU_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRU_KERNEL_CLONES
#endif

/* The GRU update of one text's H units (restrict parameters, so the loop vectorizes).
 *   x: (3H) input projection of the token with b_ih, g: (3H) recurrent projection without b_hh
 *   h: (H) state, updated in place; r, z, n: (H) gate values out */
GRU_KERNEL_CLONES
static void gru_cell_row(float *restrict h, float *restrict r, float *restrict z, float *restrict n,
                         const float *restrict x, const float *restrict g, const float *restrict b_hh, int H) {
    for (int j = 0; j < H; j++) {
        float rj = gru__sigmoidf(x[j] + g[j] + b_hh[j]);
        float zj = gru__sigmoidf(x[H + j] + g[H + j] + b_hh[H + j]);
        float nj = gru__tanhf(x[2 * H + j] + rj * (g[2 * H + j] + b_hh[2 * H + j]));
        h[j] = (1.0f - zj) * nj + zj * h[j];
        r[j] = rj;
        z[j] = zj;
        n[j] = nj;
    }
}

/* One GRU step for b running texts of one direction.
 *   gi[i]: (3H) input projection of text i's current token, with b_ih
 *   gh:    (b, 3H) recurrent projection h W_hh^T, without b_hh
 *   h:     (b, H) state, updated in place
 *   rzn:   (3, b, H) scratch that receives the r, z, n gate values */
static void gru_cell_forward(float *h, float *rzn, const float *const *gi, const float *gh, const float *b_hh,
                             int b, int H) {
    const size_t bH = (size_t)b * H;
    for (int i = 0; i < b; i++) {
        size_t o = (size_t)i * H;
        gru_cell_row(h + o, rzn + o, rzn + bH + o, rzn + 2 * bH + o, gi[i], gh + (size_t)i * 3 * H, b_hh, H);
    }
}

/* out (M, N) += bias (N) on every row. */
static void add_bias(float *out, const float *bias, size_t M, int N) {
    for (size_t i = 0; i < M; i++)
        for (int j = 0; j < N; j++) out[i * (size_t)N + j] += bias[j];
}

/* out = x W^T (+ bias) for x (M, K), W (N, K): out (M, N). */
static void matmul_forward(float *out, const float *x, const float *w, const float *bias, int M, int N, int K) {
    if (M == 0) return;
    if (M == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w, K, x, 1, 0.0f, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, out, N);
    }
    if (bias) add_bias(out, bias, (size_t)M, N);
}

/* Fills m->proj0 (see struct gru_model) when it fits in max_mb MiB. Returns 0, or -ENOMEM. */
static int precompute_proj0(gru_model_t *m, int max_mb) {
    const gru_config_t *c = &m->cfg;
    const size_t V = (size_t)c->vocab_size, H3 = 3 * (size_t)c->hidden_size;
    size_t cap = max_mb > 0 ? (size_t)max_mb << 20 : 0;
    if (V * H3 * sizeof(float) > cap || V > INT_MAX) return 0;
    for (int d = 0; d < 1 + c->bidirectional; d++) {
        const gru_dir_weights_t *w = &m->layers[0][d];
        if (!(m->proj0[d] = malloc(V * H3 * sizeof(float)))) return -ENOMEM;
        matmul_forward(m->proj0[d], m->embedding, w->w_ih, w->b_ih, (int)V, (int)H3, c->embedding_dim);
    }
    return 0;
}

/* Packs every W_hh for mm_mul() where the kernel exists (unless packed is 0); the mapped
 * original then leaves memory, as the embedding does for the table. Packs W_ih too where no
 * projection table replaces it (layers above 0, or layer 0 without the table), so that every
 * matrix product of a forward pass sums each output in one fixed order, whatever the batch.
 * Returns 0, or -ENOMEM. */
static int pack_weights(gru_model_t *m, int packed) {
    const int H = m->cfg.hidden_size;
    if (!packed) return 0;
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int d = 0; d < 1 + m->cfg.bidirectional; d++) {
            int rc = mm_pack(&m->whh[l][d], m->layers[l][d].w_hh, 3 * H, H);
            if (rc == -ENOMEM) return rc;
            if (rc == 0 && m->wts) {
                char name[64];
                snprintf(name, sizeof name, "gru.weight_hh_l%d%s", l, d ? "_reverse" : "");
                wts_release(m->wts, wts_find(m->wts, name));
            }
            if (l == 0 && m->proj0[d]) continue;
            int in = l == 0 ? m->cfg.embedding_dim : (1 + m->cfg.bidirectional) * H;
            if ((rc = mm_pack(&m->wih[l][d], m->layers[l][d].w_ih, 3 * H, in)) == -ENOMEM) return rc;
        }
    return 0;
}

static void softmax(float *p, const float *logits, int C) {
    float mx = logits[0];
    for (int c = 1; c < C; c++) mx = logits[c] > mx ? logits[c] : mx;
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += (p[c] = expf(logits[c] - mx));
    for (int c = 0; c < C; c++) p[c] /= sum;
}

/* probs (C) = softmax(fc(x)) for one feature row x (D*H): each logit is one dot product in a
 * fixed order (8 interleaved partial sums, then added pairwise), the same whatever the batch,
 * unlike a BLAS call whose blocking and kernel (gemv at one row, gemm at several) depend on the
 * number of rows. C is at most GRU_MAX_LABELS, so this is a few hundred multiply-adds. */
static void head_row(const gru_model_t *m, float *probs, const float *x) {
    const int C = m->cfg.num_labels, K = (1 + m->cfg.bidirectional) * m->cfg.hidden_size;
    float logits[GRU_MAX_LABELS];
    for (int c = 0; c < C; c++) {
        const float *w = m->fc_w + (size_t)c * K;
        float acc[8] = {0};
        int k = 0;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) acc[j] += w[k + j] * x[k + j];
        for (int j = 0; k < K; k++, j++) acc[j] += w[k] * x[k];
        logits[c] = m->fc_b[c] + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
    }
    softmax(probs, logits, C);
}

/* One step of pooling over positions: acc = y at t == 0, else acc = max(acc, y) or acc + y. */
static void pool_step(gru_pooling_t p, float *acc, const float *y, size_t k, size_t t) {
    if (t == 0) memcpy(acc, y, k * sizeof(float));
    else if (p == GRU_POOL_MAX)
        for (size_t j = 0; j < k; j++) acc[j] = y[j] > acc[j] ? y[j] : acc[j];
    else
        for (size_t j = 0; j < k; j++) acc[j] += y[j];
}

/* The mean from the sum of len rows (len > 0). */
static void pool_mean_finish(float *acc, size_t k, size_t len) {
    for (size_t j = 0; j < k; j++) acc[j] /= (float)len;
}

/* ------------------------------------------------------------------------------------------ */
/* Scratch memory */

typedef struct {
    size_t len; /* tokens */
    size_t idx; /* position in the caller's batch */
} gru_rank_t;

struct gru_ctx {
    const gru_model_t *model;
    size_t cap_n, cap_b, cap_t; /* tokens, texts, steps the buffers hold */
    float *x0;     /* (N, E) embedded tokens, packed */
    float *y[2];   /* (N, D*H) layer outputs, ping-pong */
    float *g;      /* (N, 3H) input projections of one direction */
    float *gh;     /* (B, 3H) recurrent projections of one step */
    float *h;      /* (D, B, H) states */
    float *gates;  /* (3, B, H) r, z, n of one step */
    float *feat;   /* (2*D*H) head input of one text, then room for a running mean */
    const float **gi; /* (B) row pointers */
    gru_rank_t *rank; /* (B) texts sorted by length, longest first */
    size_t *offs;     /* (T + 1) packed row offset of each step */
    int *bsz;         /* (T) running texts per step */
};

int gru_ctx_new(gru_ctx_t **out, const gru_model_t *m) {
    *out = calloc(1, sizeof **out);
    if (!*out) return -ENOMEM;
    (*out)->model = m;
    return 0;
}

const gru_model_t *gru_ctx_model(const gru_ctx_t *ctx) { return ctx->model; }

void gru_ctx_free(gru_ctx_t *ctx) {
    if (!ctx) return;
    free(ctx->x0);
    free(ctx->y[0]);
    free(ctx->y[1]);
    free(ctx->g);
    free(ctx->gh);
    free(ctx->h);
    free(ctx->gates);
    free(ctx->feat);
    free(ctx->gi);
    free(ctx->rank);
    free(ctx->offs);
    free(ctx->bsz);
    free(ctx);
}

static int grow(void **p, size_t count, size_t size) {
    if (count == 0) count = 1;
    if (count > SIZE_MAX / size) return -ENOMEM;
    void *q = realloc(*p, count * size);
    if (!q) return -ENOMEM;
    *p = q;
    return 0;
}

static int ctx_reserve(gru_ctx_t *ctx, size_t N, size_t B, size_t T) {
    const gru_config_t *c = &ctx->model->cfg;
    size_t E = (size_t)c->embedding_dim, H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
    if (N > ctx->cap_n) {
        /* With the layer-0 table, x0 is unused and g serves layers above 0 only. */
        int table = ctx->model->proj0[0] != NULL;
        if ((!table && grow((void **)&ctx->x0, N * E, sizeof(float))) ||
            grow((void **)&ctx->y[0], N * D * H, sizeof(float)) ||
            (c->num_layers > 1 && grow((void **)&ctx->y[1], N * D * H, sizeof(float))) ||
            ((!table || c->num_layers > 1) && grow((void **)&ctx->g, N * 3 * H, sizeof(float))))
            return -ENOMEM;
        ctx->cap_n = N;
    }
    if (B > ctx->cap_b) {
        if (grow((void **)&ctx->gh, B * 3 * H, sizeof(float)) || grow((void **)&ctx->h, D * B * H, sizeof(float)) ||
            grow((void **)&ctx->gates, 3 * B * H, sizeof(float)) ||
            grow((void **)&ctx->feat, 2 * D * H, sizeof(float)) || grow((void **)&ctx->gi, B, sizeof(float *)) ||
            grow((void **)&ctx->rank, B, sizeof(gru_rank_t)))
            return -ENOMEM;
        ctx->cap_b = B;
    }
    if (T + 1 > ctx->cap_t) {
        if (grow((void **)&ctx->offs, T + 1, sizeof(size_t)) || grow((void **)&ctx->bsz, T + 1, sizeof(int)))
            return -ENOMEM;
        ctx->cap_t = T + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Forward */

/* Longest first; ties keep batch order, so the layout is deterministic. */
static int rank_cmp(const void *a, const void *b) {
    const gru_rank_t *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Writes one step's gates for the running texts that asked for them. t_of(i) is the text
 * position of rank i at this step. */
static void record_gates(const gru_ctx_t *ctx, gru_output_t *out, gru_gates_mode_t mode, int l, int d,
                         int b, size_t s, const float *h) {
    const gru_config_t *c = &ctx->model->cfg;
    const size_t H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
    const float *r = ctx->gates, *z = r + (size_t)b * H, *n = z + (size_t)b * H;
    for (int i = 0; i < b; i++) {
        const gru_rank_t *rk = &ctx->rank[i];
        float *gbuf = out[rk->idx].gates;
        if (!gbuf) continue;
        size_t T = rk->len, t = d ? T - 1 - s : s;
        size_t ld = (size_t)l * D + (size_t)d;
        if (mode == GRU_GATES_SUMMARY) {
            float sr = 0.0f, sz = 0.0f;
            for (size_t j = 0; j < H; j++) {
                sr += r[i * H + j];
                sz += z[i * H + j];
            }
            gbuf[(ld * 2 + GRU_GATE_RESET) * T + t] = sr / (float)H;
            gbuf[(ld * 2 + GRU_GATE_UPDATE) * T + t] = sz / (float)H;
        } else {
            memcpy(gbuf + ((ld * 4 + GRU_GATE_RESET) * T + t) * H, r + i * H, H * sizeof(float));
            memcpy(gbuf + ((ld * 4 + GRU_GATE_UPDATE) * T + t) * H, z + i * H, H * sizeof(float));
            memcpy(gbuf + ((ld * 4 + GRU_GATE_CANDIDATE) * T + t) * H, n + i * H, H * sizeof(float));
            memcpy(gbuf + ((ld * 4 + GRU_GATE_HIDDEN) * T + t) * H, h + i * H, H * sizeof(float));
        }
    }
}

int gru_forward_batch(gru_ctx_t *ctx, const gru_input_t *in, gru_output_t *out, size_t n,
                      gru_gates_mode_t mode) {
    return gru_forward_batch_states(ctx, in, out, n, mode, NULL, NULL);
}

int gru_forward_batch_states(gru_ctx_t *ctx, const gru_input_t *in, gru_output_t *out, size_t n,
                             gru_gates_mode_t mode, const float *const *h0s, float *const *states) {
    if (!ctx || (n && (!in || !out))) return -EINVAL;
    const gru_model_t *m = ctx->model;
    const gru_config_t *c = &m->cfg;
    const int E = c->embedding_dim, H = c->hidden_size, L = c->num_layers, C = c->num_labels;
    const int D = 1 + c->bidirectional, DH = D * H;
    if (n == 0) return 0;
    if (n > INT_MAX) return -EINVAL;

    /* Validate everything before writing anything. */
    size_t N = 0, T = 0;
    int want_traj = 0;
    for (size_t k = 0; k < n; k++) {
        if (!out[k].probs || (in[k].len && !in[k].ids)) return -EINVAL;
        if (h0s && h0s[k] && c->pooling != GRU_POOL_LAST) return -EINVAL; /* a pool needs the whole text */
        if (in[k].len > (size_t)INT_MAX || N > SIZE_MAX / 2) return -EINVAL;
        for (size_t t = 0; t < in[k].len; t++)
            if (in[k].ids[t] < 0 || in[k].ids[t] >= c->vocab_size) return -EINVAL;
        N += in[k].len;
        T = in[k].len > T ? in[k].len : T;
        want_traj |= out[k].trajectory != NULL;
    }
    want_traj &= !c->bidirectional;
    if (ctx_reserve(ctx, N, n, T) < 0) return -ENOMEM;

    /* Packed layout: ranks sorted by length, bsz[t] running texts at step t, offs[t] rows. */
    for (size_t k = 0; k < n; k++) ctx->rank[k] = (gru_rank_t){in[k].len, k};
    qsort(ctx->rank, n, sizeof *ctx->rank, rank_cmp);
    size_t running = n;
    ctx->offs[0] = 0;
    for (size_t t = 0; t < T; t++) {
        while (running > 0 && ctx->rank[running - 1].len <= t) running--;
        ctx->bsz[t] = (int)running;
        ctx->offs[t + 1] = ctx->offs[t] + running;
    }

    /* Embedding lookup, (N, E), unless layer 0 reads its projections from the table. */
    if (!m->proj0[0])
        for (size_t t = 0; t < T; t++)
            for (int i = 0; i < ctx->bsz[t]; i++) {
                int32_t id = in[ctx->rank[i].idx].ids[t];
                memcpy(ctx->x0 + (ctx->offs[t] + (size_t)i) * E, m->embedding + (size_t)id * E,
                       (size_t)E * sizeof(float));
            }

    const float *x = ctx->x0;
    int in_dim = E;
    float *y = NULL;
    int record = mode != GRU_GATES_NONE;
    for (int l = 0; l < L; l++) {
        y = ctx->y[l & 1]; /* (N, D*H) */
        for (int d = 0; d < D; d++) {
            const gru_dir_weights_t *w = &m->layers[l][d];
            float *h = ctx->h + (size_t)d * n * H; /* (B, H), rank order */
            for (size_t i = 0; i < n; i++) {
                const float *h0 = h0s ? h0s[ctx->rank[i].idx] : NULL; /* (L, D, H) */
                if (h0) memcpy(h + i * H, h0 + ((size_t)l * D + d) * H, (size_t)H * sizeof(float));
                else memset(h + i * H, 0, (size_t)H * sizeof(float));
            }
            /* Input projections: rows of the table, or (N, In) x (In, 3H) for all tokens at once. */
            const float *table = l == 0 ? m->proj0[d] : NULL;
            if (!table && m->wih[l][d]) { /* (N, 3H) */
                mm_mul(m->wih[l][d], x, (int)N, ctx->g);
                add_bias(ctx->g, w->b_ih, N, 3 * H);
            } else if (!table) {
                matmul_forward(ctx->g, x, w->w_ih, w->b_ih, (int)N, 3 * H, in_dim);
            }
            for (size_t s = 0; s < T; s++) {
                int b = ctx->bsz[s];
                for (int i = 0; i < b; i++) {
                    size_t t = d ? ctx->rank[i].len - 1 - s : s;
                    ctx->gi[i] = table ? table + (size_t)in[ctx->rank[i].idx].ids[t] * 3 * H
                                       : ctx->g + (ctx->offs[t] + (size_t)i) * 3 * H;
                }
                if (m->whh[l][d]) /* (b, 3H) */
                    mm_mul(m->whh[l][d], h, b, ctx->gh);
                else
                    matmul_forward(ctx->gh, h, w->w_hh, NULL, b, 3 * H, H);
                gru_cell_forward(h, ctx->gates, ctx->gi, ctx->gh, w->b_hh, b, H);
                for (int i = 0; i < b; i++) {
                    size_t t = d ? ctx->rank[i].len - 1 - s : s;
                    memcpy(y + (ctx->offs[t] + (size_t)i) * DH + (size_t)d * H, h + (size_t)i * H,
                           (size_t)H * sizeof(float));
                    float *st = states ? states[ctx->rank[i].idx] : NULL; /* (len, L, D, H) */
                    if (st)
                        memcpy(st + ((t * L + (size_t)l) * D + (size_t)d) * H, h + (size_t)i * H,
                               (size_t)H * sizeof(float));
                }
                if (record) record_gates(ctx, out, mode, l, d, b, s, h);
            }
        }
        x = y;
        in_dim = DH;
    }

    /* Head: softmax(fc(feature)) one text at a time (head_row), so that a text's probabilities
     * do not depend on its batch. The feature is the last layer's final states [h_fwd, h_bwd],
     * or the max or mean of its outputs y_t over the text's positions, pooled in position order
     * (the same arithmetic whatever the batch). A pooled unidirectional text's trajectory is the
     * head on that running pool, in the same pass: its last point is the feature, so it equals
     * probs bit for bit. */
    for (size_t i = 0; i < n; i++) {
        float *feat = ctx->feat, *mean = ctx->feat + DH; /* (D*H) each */
        const size_t len = ctx->rank[i].len;
        if (c->pooling == GRU_POOL_LAST || len == 0) {
            for (int d = 0; d < D; d++)
                memcpy(feat + (size_t)d * H, ctx->h + ((size_t)d * n + i) * H, (size_t)H * sizeof(float));
        } else {
            float *tr = want_traj ? out[ctx->rank[i].idx].trajectory : NULL; /* want_traj: D == 1 */
            for (size_t t = 0; t < len; t++) {
                pool_step(c->pooling, feat, y + (ctx->offs[t] + i) * (size_t)DH, (size_t)DH, t);
                if (tr && c->pooling == GRU_POOL_MAX) head_row(m, tr + t * C, feat);
                if (tr && c->pooling == GRU_POOL_MEAN) {
                    memcpy(mean, feat, (size_t)DH * sizeof(float));
                    pool_mean_finish(mean, (size_t)DH, t + 1);
                    head_row(m, tr + t * C, mean);
                }
            }
            if (c->pooling == GRU_POOL_MEAN) pool_mean_finish(feat, (size_t)DH, len);
        }
        head_row(m, out[ctx->rank[i].idx].probs, feat);
    }

    /* Trajectory of the last-state head: the head on every prefix state h_t of the last layer
     * (unidirectional: its last point is the final state, so it equals probs bit for bit). */
    if (want_traj && c->pooling == GRU_POOL_LAST)
        for (size_t t = 0; t < T; t++)
            for (int i = 0; i < ctx->bsz[t]; i++) {
                float *tr = out[ctx->rank[i].idx].trajectory;
                if (tr) head_row(m, tr + t * C, y + (ctx->offs[t] + (size_t)i) * H);
            }
    return 0;
}
