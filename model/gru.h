/* gru.h - the GRU sentiment classifier: model loading and the batched forward pass.
 *
 * A model directory holds config.json, model.safetensors and vocab.txt (format: README.md,
 * "Model format"). The weights are the state_dict() of
 *     embedding = nn.Embedding(V, E, padding_idx=0)
 *     gru = nn.GRU(E, H, num_layers=L, batch_first=True, bidirectional=B)
 *     fc = nn.Linear(H * (2 if B else 1), C)
 * and the forward pass follows PyTorch nn.GRU exactly (gate order r, z, n):
 *     r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
 *     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
 *     n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
 *     h' = (1 - z) * n + z * h
 * The head is softmax(fc(h)). By default (config "pooling": "last") h is the last layer's
 * final state (bidirectional: forward final state, then backward final state); with "max" or
 * "mean" it is the element-wise max or mean of the last layer's outputs y_1..y_T (each y_t the
 * forward state after token t, then the backward state after reading it).
 *
 * Threads: a model is read-only after gru_model_load() and shared by all threads; each thread
 * that runs forward passes owns one gru_ctx_t (its scratch memory).
 *
 * Usage:
 *     gru_model_t *m; char err[512];
 *     gru_load_options_t opt = GRU_LOAD_OPTIONS_DEFAULT;   // or NULL for the same
 *     if (gru_model_load(&m, "models/sst2-en", &opt, err, sizeof err) < 0) { puts(err); ... }
 *     gru_ctx_t *ctx; gru_ctx_new(&ctx, m);
 *     gru_input_t in = { ids, n_ids };
 *     float probs[GRU_MAX_LABELS];
 *     gru_output_t out = { probs, NULL, NULL };
 *     gru_forward_batch(ctx, &in, &out, 1, GRU_GATES_NONE);
 *     gru_ctx_free(ctx); gru_model_free(m);
 */
#ifndef GRU_H
#define GRU_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"
#include "tok.h"

/* ---- constants ---- */
#define GRU_MAX_LABELS 16
#define GRU_MAX_LAYERS 8
#define GRU_MAX_HIDDEN 4096
#define GRU_MAX_LABEL_LEN 64
#define GRU_MAX_LANGUAGES 8
/* The default budget of a model's layer-0 projection table, shared by every program (gru-serve's
 * --proj-table-max-mb, gru-predict, gru-bench), so that all build the same engine. */
#define GRU_PROJ_TABLE_DEFAULT_MB 32

/* ---- types ---- */
typedef enum { GRU_GATES_NONE = 0, GRU_GATES_SUMMARY = 1, GRU_GATES_FULL = 2 } gru_gates_mode_t;

/* Gate kinds in a gates buffer (full mode has all four, summary mode the first two). */
enum { GRU_GATE_RESET = 0, GRU_GATE_UPDATE = 1, GRU_GATE_CANDIDATE = 2, GRU_GATE_HIDDEN = 3 };

/* What the head reads (config.json "pooling"). */
typedef enum { GRU_POOL_LAST = 0, GRU_POOL_MAX = 1, GRU_POOL_MEAN = 2 } gru_pooling_t;

/* The parsed config.json. Read-only; borrowed from the model. */
typedef struct {
    char name[128];            /* the model directory's base name, e.g. "sst2-en" */
    int vocab_size;            /* V */
    int embedding_dim;         /* E */
    int hidden_size;           /* H */
    int num_layers;            /* L */
    int bidirectional;         /* 0 or 1; directions D = 1 + bidirectional */
    int num_labels;            /* C */
    gru_pooling_t pooling;     /* the head's input; GRU_POOL_LAST when config.json has none */
    char labels[GRU_MAX_LABELS][GRU_MAX_LABEL_LEN];
    tok_config_t tokenizer;
    size_t num_params;         /* total float parameters */
    /* The languages the model reads, from config.json's optional "languages": ISO 639 codes of
     * 2 or 3 lower-case ASCII letters ("en", "zh"), unique, in the file's order. */
    char languages[GRU_MAX_LANGUAGES][4];
    int num_languages;         /* 0: not declared (unknown) */
} gru_config_t;

/* How a model is built at load time: speed against memory, never the results beyond float
 * rounding. The library reads no environment variable; programs fill this (see
 * GRU_LOAD_OPTIONS_DEFAULT) and may take the values from their flags or environment. */
typedef struct {
    /* Layer 0's input projection is precomputed for every vocabulary entry, (V, 3H) floats per
     * direction, when that takes at most this many MiB; 0 turns the table off (the projection
     * is then computed per batch). */
    int proj_table_max_mb;
    /* 1: pack every W_hh for the AVX2+FMA kernel (model/mm.h) where the CPU and shape allow;
     * 0: the recurrent product goes through BLAS (what a CPU without AVX2 runs). */
    int packed;
} gru_load_options_t;
#define GRU_LOAD_OPTIONS_DEFAULT ((gru_load_options_t){GRU_PROJ_TABLE_DEFAULT_MB, 1})

typedef struct gru_model gru_model_t; /* opaque; read-only after load */
typedef struct gru_ctx gru_ctx_t;     /* opaque; per-thread scratch memory */

/* One text to classify. ids are borrowed for the duration of the call; every id must be in
 * [0, V). len may be 0 (the head then sees the zero state, or the given initial state). */
typedef struct {
    const int32_t *ids; /* (len) */
    size_t len;
} gru_input_t;

/* Where the results of one text go: caller-owned buffers.
 * probs      (C) floats, required.
 * gates      NULL, or gru_gates_floats(cfg, mode, len) floats. Layout, with D directions and
 *            K = 4 kinds (full) or 2 (summary), per-token arrays in text order for both
 *            directions:
 *              full:    gates[(((l * D + d) * 4 + k) * len + t) * H + j]
 *              summary: gates[((l * D + d) * 2 + k) * len + t]   (mean over the H units)
 * trajectory NULL, or len * C floats: the head on each prefix t, softmax(fc(h_t)), or with
 *            pooling the max or mean of y_1..y_t (unidirectional models only; ignored for
 *            bidirectional ones). Its last point equals probs bit for bit. */
typedef struct {
    float *probs;
    float *gates;
    float *trajectory;
} gru_output_t;

/* ---- prototypes ---- */

/* Loads and validates a model directory. Nothing is returned unless everything checks: the
 * config, every tensor's dtype, shape, and byte range, and the vocabulary size. opt (borrowed
 * for the call; NULL: GRU_LOAD_OPTIONS_DEFAULT) says how the engine is built.
 * Returns 0 and a new model in *out (free with gru_model_free), or a negative errno with a
 * message in err that names the file and, where it applies, the tensor. */
int gru_model_load(gru_model_t **out, const char *dir, const gru_load_options_t *opt, char *err, size_t errlen);
void gru_model_free(gru_model_t *m); /* accepts NULL */

/* A model with random weights (uniform in +-1/sqrt(H), as PyTorch initializes nn.GRU) for
 * benchmarks and tests. cfg supplies the shape (vocab_size, embedding_dim, hidden_size,
 * num_layers, bidirectional, num_labels); it has no vocabulary (gru_model_vocab is NULL). opt
 * as for gru_model_load.
 * Returns 0 and *out, -EINVAL for a bad shape, or -ENOMEM. */
int gru_model_new_random(gru_model_t **out, const gru_config_t *cfg, uint64_t seed, const gru_load_options_t *opt);

const gru_config_t *gru_model_config(const gru_model_t *m); /* borrowed */
const tok_vocab_t *gru_model_vocab(const gru_model_t *m);   /* borrowed */
/* The model's version: GRU_VERSION_HEX lower-case hex digits of the SHA-256 of its files
 * (sha256.h: gru_model_dir_version), computed by gru_model_load right after the files were
 * read; "" for a random model. Borrowed. */
const char *gru_model_version(const gru_model_t *m);

/* Floats needed by a gates buffer for one text of len tokens (0 for GRU_GATES_NONE). */
size_t gru_gates_floats(const gru_config_t *cfg, gru_gates_mode_t mode, size_t len);

/* Scratch memory for forward passes on one thread at a time. It grows to the largest batch
 * seen. Returns 0 or -ENOMEM. */
int gru_ctx_new(gru_ctx_t **out, const gru_model_t *m);
void gru_ctx_free(gru_ctx_t *ctx); /* accepts NULL */
const gru_model_t *gru_ctx_model(const gru_ctx_t *ctx); /* borrowed: the model ctx was made for */

/* Runs n texts through the model in one batched pass and writes out[i] for each in[i].
 * A text's results do not depend on the other texts in the batch, bit for bit, wherever the
 * packed kernel runs (x86-64 with AVX2+FMA, packed load option): every matrix product and the
 * head sum each output in one fixed order whatever the batch size. On the BLAS path (other
 * CPUs, or packed 0) they may differ in float rounding (< 1e-6). Gates are computed only when
 * mode is not GRU_GATES_NONE and written for the texts whose out[i].gates is not NULL.
 * Returns 0; -EINVAL for bad arguments (ctx made for another model, id out of range: nothing
 * is written); -ENOMEM when scratch memory cannot grow. */
int gru_forward_batch(gru_ctx_t *ctx, const gru_input_t *in, gru_output_t *out, size_t n,
                      gru_gates_mode_t mode);

/* gru_forward_batch, with text i starting from given states and/or handing back its states.
 * h0 is NULL, or n pointers: h0[i] is NULL (every layer starts from the zero state) or text i's
 * initial state of every layer and direction, (L, D, H) floats, as nn.GRU's h_0 argument: the
 * forward direction of layer l starts from h0[i][(l * D + 0) * H ..], the backward one (which
 * reads the text from its end) from h0[i][(l * D + 1) * H ..].
 * states is NULL, or n pointers: states[i] is NULL or receives every layer's state after each
 * token, in[i].len * L * D * H floats,
 *     states[i][((t * L + l) * D + d) * H + j]
 * (backward direction: the state after reading tokens len-1 .. t). Row t of it, (L, D, H), is
 * an h0 for the tokens after t: for a unidirectional model, running tokens t+1.. from it gives
 * the results of the whole text (model/explain.h builds on this), when the head reads the last
 * state: with pooling ("max", "mean") the pool needs every position, so every h0[i] must be
 * NULL (-EINVAL otherwise). h0 and states are borrowed for the call. Returns as gru_forward_batch. */
int gru_forward_batch_states(gru_ctx_t *ctx, const gru_input_t *in, gru_output_t *out, size_t n,
                             gru_gates_mode_t mode, const float *const *h0, float *const *states);

/* Name of a gates mode ("none", "summary", "full"), and the reverse (-EINVAL if unknown). */
const char *gru_gates_mode_name(gru_gates_mode_t mode);
int gru_gates_mode_parse(const char *s, gru_gates_mode_t *out);

/* Name of a pooling ("last", "max", "mean": config.json's "pooling"), and the reverse
 * (-EINVAL if unknown or NULL). */
const char *gru_pooling_name(gru_pooling_t p);
int gru_pooling_parse(const char *s, gru_pooling_t *out);

#endif /* GRU_H */
