/* test_loader.c - gru_model_load on valid and corrupt model directories (cmocka).
 *
 * The valid model is tests/data/ref/l1_h8_uni (tools/gen_reference.py), copied to a mkdtemp()
 * directory. Every corrupt file is generated here from the valid bytes (no binary fixtures):
 * the safetensors header is edited with jansson and written back (padded as gru_format.py pads
 * it), or the bytes are cut or patched. Each corrupt directory must be rejected with a negative
 * errno, *out == NULL, and a message that names the file (and the tensor, where one is at fault).
 * Every check in a test runs; each rejected load prints one "  ok <what>: <message>" line, each
 * wrong outcome a "  FAIL" line, and the test fails at its end when any check failed.
 *
 * Policy decisions checked here:
 * - An unknown extra tensor in model.safetensors is REJECTED (gru.h: nothing is returned unless
 *   everything checks), as is a tensor of a layer or direction the config does not have.
 * - "bidirectional" and "tokenizer.lowercase" may be absent from config.json (defaults false and
 *   true); every other key of README.md's "Model format" is required.
 * - Non-finite weights are rejected, whatever the stored dtype (an F16 or BF16 inf or NaN too).
 * - F16 and BF16 tensors (alone or mixed with F32 ones in one file) load as the F32 model of the
 *   same rounded values: the probabilities are equal bit for bit.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "gru.h"
#include "wts.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this test patches it as host floats"
#endif

#define SRC_MODEL GRU_TEST_DATA "/ref/l1_h8_uni"

/* ---------------------------------------------------------------------------------------------
 * Fixture: the valid files in memory, and a temporary model directory
 */

typedef struct {
    unsigned char *p;
    size_t len;
} blob_t;

static char g_tmp[256];     /* the mkdtemp() directory */
static char g_dir[320];     /* g_tmp/model: the model directory under test */
static blob_t g_cfg, g_vocab, g_st;
static json_t *g_cfg_json;  /* config.json, parsed */
static json_t *g_hdr;       /* the safetensors header, parsed */
static const unsigned char *g_data; /* the safetensors data section (inside g_st) */
static size_t g_data_len;
static int g_failures;      /* checks failed in the current test */

static blob_t read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    blob_t b = {malloc(n > 0 ? (size_t)n : 1), (size_t)n};
    assert_non_null(b.p);
    assert_int_equal(fread(b.p, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

static void path_of(char *out, size_t n, const char *file) { snprintf(out, n, "%s/%s", g_dir, file); }

static void write_bytes(const char *file, const void *p, size_t len) {
    char path[512];
    path_of(path, sizeof path, file);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_str(const char *file, const char *s) { write_bytes(file, s, strlen(s)); }

/* Puts the three valid files back. */
static void restore(void) {
    write_bytes("config.json", g_cfg.p, g_cfg.len);
    write_bytes("vocab.txt", g_vocab.p, g_vocab.len);
    write_bytes("model.safetensors", g_st.p, g_st.len);
}

static int group_setup(void **state) {
    g_cfg = read_file(SRC_MODEL "/config.json");
    g_vocab = read_file(SRC_MODEL "/vocab.txt");
    g_st = read_file(SRC_MODEL "/model.safetensors");
    json_error_t jerr;
    g_cfg_json = json_loadb((const char *)g_cfg.p, g_cfg.len, 0, &jerr);
    assert_non_null(g_cfg_json);
    assert_true(g_st.len >= 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | g_st.p[i];
    assert_true(hlen <= g_st.len - 8);
    g_hdr = json_loadb((const char *)g_st.p + 8, (size_t)hlen, 0, &jerr);
    assert_non_null(g_hdr);
    g_data = g_st.p + 8 + hlen;
    g_data_len = g_st.len - 8 - (size_t)hlen;

    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/gru_test_loader_XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_tmp)) fail_msg("mkdtemp %s: %s", g_tmp, strerror(errno));
    snprintf(g_dir, sizeof g_dir, "%s/model", g_tmp);
    assert_int_equal(mkdir(g_dir, 0700), 0);
    restore();
    return 0;
}

static int group_teardown(void **state) {
    const char *files[] = {"config.json", "vocab.txt", "model.safetensors"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        path_of(path, sizeof path, files[i]);
        if (unlink(path) < 0) rmdir(path);
    }
    rmdir(g_dir);
    rmdir(g_tmp);
    json_decref(g_cfg_json);
    json_decref(g_hdr);
    free(g_cfg.p);
    free(g_vocab.p);
    free(g_st.p);
    return 0;
}

static int test_setup(void **state) {
    g_failures = 0;
    restore();
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Checks
 */

/* Loads g_dir (or dir) and expects a rejection whose message contains need1 and need2 (either may
 * be NULL). Records a failure instead of stopping, so that every case of a test runs. */
static void expect_reject_dir(const char *dir, const char *what, const char *need1, const char *need2) {
    gru_model_t *m = (gru_model_t *)(uintptr_t)1;
    char err[1024];
    memset(err, 0, sizeof err);
    int rc = gru_model_load(&m, dir, NULL, err, sizeof err);
    if (rc >= 0) {
        printf("  FAIL %s: loaded (rc %d), expected a rejection\n", what, rc);
        gru_model_free(m);
        g_failures++;
        return;
    }
    if (m != NULL) {
        printf("  FAIL %s: rc %d but *out is not NULL\n", what, rc);
        g_failures++;
    }
    if ((need1 && !strstr(err, need1)) || (need2 && !strstr(err, need2))) {
        printf("  FAIL %s: rc %d, message \"%s\" does not name %s%s%s\n", what, rc, err, need1 ? need1 : "",
               need2 ? " and " : "", need2 ? need2 : "");
        g_failures++;
        return;
    }
    printf("  ok   %s: rc %d: %s\n", what, rc, err);
}

static void expect_reject(const char *what, const char *need1, const char *need2) {
    expect_reject_dir(g_dir, what, need1, need2);
}

/* Loads g_dir and expects success. */
static void expect_load(const char *what) {
    gru_model_t *m = NULL;
    char err[1024] = "";
    int rc = gru_model_load(&m, g_dir, NULL, err, sizeof err);
    if (rc < 0 || !m) {
        printf("  FAIL %s: rejected (rc %d): %s\n", what, rc, err);
        g_failures++;
    } else {
        printf("  ok   %s: loads\n", what);
    }
    gru_model_free(m);
}

#define ST "model.safetensors"

/* ---------------------------------------------------------------------------------------------
 * safetensors writers
 */

/* Writes model.safetensors with header h (padded with spaces so the data starts at a multiple
 * of 64, as gru_format.py does), then data[0..data_len), then extra[0..extra_len). */
static void write_st(const json_t *h, const void *data, size_t data_len, const void *extra, size_t extra_len) {
    char *js = json_dumps(h, JSON_COMPACT);
    assert_non_null(js);
    size_t hl = strlen(js), pad = (64 - (8 + hl) % 64) % 64;
    size_t total = 8 + hl + pad + data_len + extra_len;
    unsigned char *buf = malloc(total);
    assert_non_null(buf);
    uint64_t n = hl + pad;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, js, hl);
    memset(buf + 8 + hl, ' ', pad);
    if (data_len) memcpy(buf + 8 + hl + pad, data, data_len);
    if (extra_len) memcpy(buf + 8 + hl + pad + data_len, extra, extra_len);
    write_bytes(ST, buf, total);
    free(buf);
    free(js);
}

/* Writes model.safetensors with the header text hdr (as is, no padding) and the valid data. */
static void write_st_header_text(const void *hdr, size_t hl) {
    size_t total = 8 + hl + g_data_len;
    unsigned char *buf = malloc(total);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memcpy(buf + 8 + hl, g_data, g_data_len);
    write_bytes(ST, buf, total);
    free(buf);
}

static json_t *hdr_copy(void) { return json_deep_copy(g_hdr); }

static json_t *tensor_of(json_t *h, const char *name) {
    json_t *t = json_object_get(h, name);
    if (!t) fail_msg("the valid model has no tensor %s", name);
    return t;
}

static void set_offsets(json_t *h, const char *name, json_int_t b, json_int_t e) {
    json_object_set_new(tensor_of(h, name), "data_offsets", json_pack("[II]", b, e));
}

static void get_offsets(const char *name, size_t *b, size_t *e) {
    json_t *o = json_object_get(tensor_of(g_hdr, name), "data_offsets");
    *b = (size_t)json_integer_value(json_array_get(o, 0));
    *e = (size_t)json_integer_value(json_array_get(o, 1));
}

static const char *const k_tensors[] = {"embedding.weight",  "gru.weight_ih_l0", "gru.weight_hh_l0",
                                        "gru.bias_ih_l0",    "gru.bias_hh_l0",   "fc.weight",
                                        "fc.bias"};
#define N_TENSORS (sizeof k_tensors / sizeof *k_tensors)

/* ---------------------------------------------------------------------------------------------
 * Tests: valid model
 */

static void test_valid_model(void **state) {
    for (int round = 0; round < 2; round++) {
        gru_model_t *m = NULL;
        char err[512] = "";
        int rc = gru_model_load(&m, round ? SRC_MODEL "/" : g_dir, NULL, err, sizeof err);
        if (rc < 0) fail_msg("valid model rejected: %d %s", rc, err);
        const gru_config_t *c = gru_model_config(m);
        assert_string_equal(c->name, round ? "l1_h8_uni" : "model");
        assert_int_equal(c->vocab_size, 50);
        assert_int_equal(c->embedding_dim, 8);
        assert_int_equal(c->hidden_size, 8);
        assert_int_equal(c->num_layers, 1);
        assert_int_equal(c->bidirectional, 0);
        assert_int_equal(c->num_labels, 2);
        assert_string_equal(c->labels[0], "negative");
        assert_string_equal(c->labels[1], "positive");
        assert_int_equal(c->tokenizer.kind, TOK_KIND_WORD);
        assert_int_equal(c->tokenizer.lowercase, 1);
        assert_int_equal(c->tokenizer.max_tokens, 512);
        /* V*E + 3H*E + 3H*H + 6H + C*H + C */
        assert_int_equal(c->num_params, 50 * 8 + 24 * 8 + 24 * 8 + 48 + 2 * 8 + 2);
        const tok_vocab_t *v = gru_model_vocab(m);
        assert_non_null(v);
        assert_int_equal(tok_vocab_size(v), 50);
        assert_string_equal(tok_vocab_token(v, 0), "<pad>");
        assert_string_equal(tok_vocab_token(v, 49), "t49");

        gru_ctx_t *ctx;
        assert_int_equal(gru_ctx_new(&ctx, m), 0);
        int32_t ids[3] = {5, 7, 49};
        float probs[GRU_MAX_LABELS];
        gru_input_t in = {ids, 3};
        gru_output_t out = {probs, NULL, NULL};
        assert_int_equal(gru_forward_batch(ctx, &in, &out, 1, GRU_GATES_NONE), 0);
        assert_true(fabsf(probs[0] + probs[1] - 1.0f) < 1e-6f);
        int32_t bad = 50; /* out of range: -EINVAL */
        gru_input_t in_bad = {&bad, 1};
        assert_int_equal(gru_forward_batch(ctx, &in_bad, &out, 1, GRU_GATES_NONE), -EINVAL);
        gru_ctx_free(ctx);
        gru_model_free(m);
    }
    gru_model_free(NULL);
    gru_ctx_free(NULL);

    /* The rewrite helpers themselves produce loadable files (so rejections below are real). */
    json_t *h = hdr_copy();
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_load("header rewritten unchanged");
    char *js = json_dumps(g_cfg_json, JSON_INDENT(2));
    write_str("config.json", js);
    free(js);
    expect_load("config.json rewritten unchanged");
    /* Optional keys. */
    json_t *c = json_deep_copy(g_cfg_json);
    json_object_del(c, "bidirectional");
    json_object_del(json_object_get(c, "tokenizer"), "lowercase");
    json_object_set_new(c, "some_extra_key", json_string("allowed"));
    js = json_dumps(c, 0);
    write_str("config.json", js);
    free(js);
    json_decref(c);
    expect_load("config.json without bidirectional / tokenizer.lowercase, with an extra key");
    assert_int_equal(g_failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: missing files
 */

static void test_missing_files(void **state) {
    const char *files[] = {"config.json", "vocab.txt", ST};
    for (size_t i = 0; i < 3; i++) {
        restore();
        char path[512], what[128];
        path_of(path, sizeof path, files[i]);
        assert_int_equal(unlink(path), 0);
        snprintf(what, sizeof what, "missing %s", files[i]);
        expect_reject(what, files[i], NULL);
    }
    restore();
    char path[512];
    path_of(path, sizeof path, ST);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_reject(ST " is a directory", ST, NULL);
    assert_int_equal(rmdir(path), 0);
    restore();
    char nodir[400];
    snprintf(nodir, sizeof nodir, "%s/no_such_model", g_tmp);
    expect_reject_dir(nodir, "no such directory", "no_such_model", "config.json");
    path_of(path, sizeof path, "config.json");
    expect_reject_dir(path, "a file, not a directory", "config.json", NULL);
    assert_int_equal(g_failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: safetensors framing
 */

static void test_st_truncated(void **state) {
    const size_t hl = g_st.len - g_data_len - 8;
    const size_t cuts[] = {0, 4, 7, 8, 8 + hl / 2, 8 + hl, 8 + hl + g_data_len / 2, g_st.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char what[128];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[i], g_st.len);
        write_bytes(ST, g_st.p, cuts[i]);
        expect_reject(what, ST, NULL);
    }
    /* One byte short: the message names the tensor that ends last. */
    const char *last = NULL;
    size_t last_end = 0;
    for (size_t i = 0; i < N_TENSORS; i++) {
        size_t b, e;
        get_offsets(k_tensors[i], &b, &e);
        if (e > last_end) last_end = e, last = k_tensors[i];
    }
    write_bytes(ST, g_st.p, g_st.len - 1);
    expect_reject("one byte short, names the last tensor", ST, last);
    assert_int_equal(g_failures, 0);
}

static void test_st_header_length(void **state) {
    unsigned char *buf = malloc(g_st.len);
    assert_non_null(buf);
    const uint64_t lens[] = {g_st.len - 8 + 1, g_st.len, (uint64_t)1 << 40, UINT64_MAX, 0};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        memcpy(buf, g_st.p, g_st.len);
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)(lens[i] >> (8 * k));
        write_bytes(ST, buf, g_st.len);
        char what[128];
        snprintf(what, sizeof what, "header length %llu in a %zu-byte file", (unsigned long long)lens[i], g_st.len);
        expect_reject(what, ST, NULL);
    }
    free(buf);
    assert_int_equal(g_failures, 0);
}

static void test_st_header_garbage(void **state) {
    const char *texts[] = {
        "this is not JSON at all!",
        "{\"fc.bias\": {\"dtype\": \"F32\"",               /* cut short */
        "[1, 2, 3]                                ",       /* not an object */
        "\"a string\"",
        "{\"fc.bias\": \"F32\"}",                          /* entry not an object */
        "{\"a\": 1, \"a\": 2}",                            /* duplicate key */
        "\xff\xfe\x00\x01garbage\x80\x81",                 /* binary */
    };
    const size_t lens[] = {0, 0, 0, 0, 0, 0, 13}; /* 0: strlen; the binary one has NULs */
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char what[160];
        snprintf(what, sizeof what, "header garbage #%zu", i);
        write_st_header_text(texts[i], lens[i] ? lens[i] : strlen(texts[i]));
        expect_reject(what, ST, NULL);
    }
    /* Random bytes in the place of the valid header (same length). */
    unsigned char *buf = malloc(g_st.len);
    assert_non_null(buf);
    memcpy(buf, g_st.p, g_st.len);
    uint32_t s = 12345;
    for (size_t k = 8; k < g_st.len - g_data_len; k++) buf[k] = (unsigned char)((s = s * 1103515245u + 12345u) >> 16);
    write_bytes(ST, buf, g_st.len);
    free(buf);
    expect_reject("header replaced by random bytes", ST, NULL);
    assert_int_equal(g_failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: tensor entries
 */

static void test_st_dtype(void **state) {
    const char *dtypes[] = {"F64", "I8", "I32", "U16", "F8_E4M3", "f32", "f16", "bf16", "F16 ", ""};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        json_t *h = hdr_copy();
        json_object_set_new(tensor_of(h, "fc.bias"), "dtype", json_string(dtypes[i]));
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        char what[64], msg[128];
        snprintf(what, sizeof what, "dtype \"%s\"", dtypes[i]);
        snprintf(msg, sizeof msg, "tensor fc.bias: dtype %s, expected F32, F16 or BF16", dtypes[i]);
        expect_reject(what, ST, msg);
    }
    /* F16 / BF16 with a byte length that is not 2 per element: F32-sized (the valid offsets),
     * one element short, one byte long or short. fc.bias holds 2 values, gru.bias_hh_l0 24. */
    const char *half[] = {"F16", "BF16"};
    for (size_t i = 0; i < 2; i++) {
        struct {
            const char *tensor;
            long delta; /* bytes added to the 2-per-element length */
        } cases[] = {{"fc.bias", 4}, {"fc.bias", -2}, {"fc.bias", 1}, {"gru.bias_hh_l0", -1},
                     {"gru.bias_hh_l0", 48}, {"gru.bias_hh_l0", -48}};
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            size_t b, e;
            get_offsets(cases[k].tensor, &b, &e);
            json_t *h = hdr_copy();
            json_object_set_new(tensor_of(h, cases[k].tensor), "dtype", json_string(half[i]));
            set_offsets(h, cases[k].tensor, (json_int_t)b, (json_int_t)(b + (e - b) / 2) + cases[k].delta);
            write_st(h, g_data, g_data_len, NULL, 0);
            json_decref(h);
            char what[96], msg[160];
            snprintf(what, sizeof what, "%s %s with %zu%+ld bytes", half[i], cases[k].tensor, (e - b) / 2,
                     cases[k].delta);
            snprintf(msg, sizeof msg, "tensor %s: %ld bytes for a shape of %zu %s values, expected %zu",
                     cases[k].tensor, (long)((e - b) / 2) + cases[k].delta, (e - b) / 4, half[i], (e - b) / 2);
            expect_reject(what, ST, msg);
        }
    }
    json_t *h = hdr_copy();
    json_object_del(tensor_of(h, "fc.weight"), "dtype");
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_reject("dtype missing", ST, "fc.weight");
    h = hdr_copy();
    json_object_set_new(tensor_of(h, "fc.weight"), "dtype", json_integer(32));
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_reject("dtype not a string", ST, "fc.weight");
    assert_int_equal(g_failures, 0);
}

static void test_st_shape(void **state) {
    struct {
        const char *tensor, *shape_json, *what;
    } cases[] = {
        {"embedding.weight", "[8, 50]", "embedding transposed (same count)"},
        {"gru.weight_hh_l0", "[8, 24]", "weight_hh transposed"},
        {"gru.weight_ih_l0", "[24, 4, 2]", "weight_ih with 3 dims (same count)"},
        {"fc.bias", "[2, 1]", "fc.bias 2-D"},
        {"fc.bias", "[1, 2]", "fc.bias 2-D (1, 2)"},
        {"gru.bias_ih_l0", "[24, 1, 1, 1, 1]", "5 dims"},
        {"fc.bias", "[-2]", "negative dim"},
        {"fc.bias", "[2.0]", "float dim"},
        {"fc.bias", "\"2\"", "shape not a list"},
        {"fc.bias", "[\"2\"]", "dim not an integer"},
        {"fc.weight", "[]", "scalar shape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *h = hdr_copy();
        json_error_t jerr;
        json_t *shape = json_loads(cases[i].shape_json, JSON_DECODE_ANY, &jerr);
        assert_non_null(shape);
        json_object_set_new(tensor_of(h, cases[i].tensor), "shape", shape);
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        expect_reject(cases[i].what, ST, cases[i].tensor);
    }
    json_t *h = hdr_copy();
    json_object_del(tensor_of(h, "fc.bias"), "shape");
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_reject("shape missing", ST, "fc.bias");
    assert_int_equal(g_failures, 0);
}

static void test_st_offsets(void **state) {
    size_t b, e;
    get_offsets("fc.bias", &b, &e);
    assert_int_equal(e - b, 8);
    const json_int_t D = (json_int_t)g_data_len;
    struct {
        json_int_t b, e;
        const char *what;
    } cases[] = {
        {D, D + 8, "data_offsets past the end"},
        {D - 4, D + 4, "data_offsets straddling the end"},
        {(json_int_t)b, INT64_MAX, "end = INT64_MAX"},
        {(json_int_t)b, (json_int_t)b + 4, "4 bytes for 2 floats"},
        {(json_int_t)b, (json_int_t)b + 12, "12 bytes for 2 floats"},
        {(json_int_t)b, (json_int_t)b, "0 bytes for 2 floats"},
        {(json_int_t)e, (json_int_t)b, "end before begin"},
        {-8, 0, "negative begin"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *h = hdr_copy();
        set_offsets(h, "fc.bias", cases[i].b, cases[i].e);
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        expect_reject(cases[i].what, ST, "fc.bias");
    }
    const char *bad_forms[] = {"[0]", "[0, 8, 16]", "\"0-8\"", "[0.0, 8.0]", "null"};
    for (size_t i = 0; i < sizeof bad_forms / sizeof *bad_forms; i++) {
        json_t *h = hdr_copy();
        json_error_t jerr;
        json_object_set_new(tensor_of(h, "fc.bias"), "data_offsets", json_loads(bad_forms[i], JSON_DECODE_ANY, &jerr));
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        char what[64];
        snprintf(what, sizeof what, "data_offsets %s", bad_forms[i]);
        expect_reject(what, ST, "fc.bias");
    }
    assert_int_equal(g_failures, 0);
}

static void test_st_overlap(void **state) {
    size_t wb, we, hb, he;
    get_offsets("fc.weight", &wb, &we);
    get_offsets("gru.weight_hh_l0", &hb, &he);
    struct {
        json_int_t b;
        const char *what;
    } cases[] = {
        {(json_int_t)wb, "fc.bias on the start of fc.weight"},
        {(json_int_t)wb + 4, "fc.bias inside fc.weight, misaligned"},
        {(json_int_t)we - 4, "fc.bias over the end of fc.weight"},
        {(json_int_t)hb + 64, "fc.bias inside gru.weight_hh_l0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *h = hdr_copy();
        set_offsets(h, "fc.bias", cases[i].b, cases[i].b + 8);
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        expect_reject(cases[i].what, ST, "fc.bias");
    }
    /* Two tensors on exactly the same bytes. */
    size_t ib, ie;
    get_offsets("gru.bias_ih_l0", &ib, &ie);
    json_t *h = hdr_copy();
    set_offsets(h, "gru.bias_hh_l0", (json_int_t)ib, (json_int_t)ie);
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_reject("bias_hh_l0 == bias_ih_l0 bytes", "gru.bias_ih_l0", "gru.bias_hh_l0");
    assert_int_equal(g_failures, 0);
}

static void test_st_missing_tensor(void **state) {
    for (size_t i = 0; i < N_TENSORS; i++) {
        json_t *h = hdr_copy();
        assert_int_equal(json_object_del(h, k_tensors[i]), 0);
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        char what[96];
        snprintf(what, sizeof what, "missing tensor %s", k_tensors[i]);
        expect_reject(what, ST, k_tensors[i]);
    }
    assert_int_equal(g_failures, 0);
}

/* Adds tensor name (count floats, appended after the data) to the header; expects a rejection. */
static void extra_tensor(const char *name, const char *shape_json, size_t count, const char *what) {
    json_t *h = hdr_copy();
    json_error_t jerr;
    json_t *shape = json_loads(shape_json, JSON_DECODE_ANY, &jerr);
    assert_non_null(shape);
    json_object_set_new(h, name,
                        json_pack("{s:s, s:o, s:[II]}", "dtype", "F32", "shape", shape, "data_offsets",
                                  (json_int_t)g_data_len, (json_int_t)(g_data_len + 4 * count)));
    float *extra = calloc(count ? count : 1, sizeof(float));
    assert_non_null(extra);
    write_st(h, g_data, g_data_len, extra, 4 * count);
    free(extra);
    json_decref(h);
    expect_reject(what, ST, name);
}

static void test_st_extra_tensor(void **state) {
    extra_tensor("extra.weight", "[2]", 2, "unknown tensor extra.weight");
    extra_tensor("extra.empty", "[0]", 0, "unknown empty tensor");
    extra_tensor("gru.weight_ih_l1", "[24, 8]", 192, "tensor of a layer the config lacks");
    extra_tensor("gru.weight_ih_l0_reverse", "[24, 8]", 192, "reverse tensor in a unidirectional model");
    extra_tensor("gru.bias_hh_l0_reverse", "[24]", 24, "reverse bias in a unidirectional model");
    extra_tensor("gru.weight_hi_l0", "[24, 8]", 192, "gru.weight_hi_l0 (not a GRU tensor name)");
    extra_tensor("gru.weight_ih_l00", "[24, 8]", 192, "gru.weight_ih_l00 (not a GRU tensor name)");
    extra_tensor("gru.weight_ih_l+0", "[24, 8]", 192, "gru.weight_ih_l+0 (not a GRU tensor name)");
    extra_tensor("gru.foo_hh_l0", "[24, 8]", 192, "gru.foo_hh_l0 (not a GRU tensor name)");
    extra_tensor("embedding.weight2", "[2]", 2, "embedding.weight2");
    assert_int_equal(g_failures, 0);
}

static void test_st_nonfinite(void **state) {
    /* Non-finite values, and finite ones so large that the forward pass could overflow to NaN
     * (a fuzzer found one: a NaN state reached the cast in gru__expf). */
    const float vals[] = {NAN, INFINITY, -INFINITY, 2e6f, -1e30f};
    const char *names[] = {"fc.bias", "gru.weight_hh_l0", "embedding.weight", "gru.weight_ih_l0", "fc.weight"};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        unsigned char *buf = malloc(g_st.len);
        assert_non_null(buf);
        memcpy(buf, g_st.p, g_st.len);
        size_t b, e;
        get_offsets(names[i], &b, &e);
        memcpy(buf + (g_st.len - g_data_len) + e - 4, &vals[i], 4); /* the tensor's last value */
        write_bytes(ST, buf, g_st.len);
        free(buf);
        char what[96];
        snprintf(what, sizeof what, "%g in %s", (double)vals[i], names[i]);
        expect_reject(what, ST, names[i]);
    }
    assert_int_equal(g_failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: F16 and BF16 tensors
 *
 * The rounding and decoding here are arithmetic (frexp / ldexp / nearbyint), independent of
 * wts.c's bit manipulation.
 */

/* The value of the binary16 h (not a NaN). */
static double f16_value(uint16_t h) {
    unsigned exp = h >> 10 & 0x1fu, frac = h & 0x3ffu;
    double v = exp == 0x1f ? INFINITY : exp ? ldexp(1024.0 + frac, (int)exp - 25) : ldexp(frac, -24);
    return h & 0x8000u ? -v : v;
}

/* The binary16 nearest to x (ties to even; |x| must round to at most 65504), its value in *v. */
static uint16_t f16_round(float x, float *v) {
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    const double a = fabs((double)x);
    int e;
    frexp(a, &e);                   /* a in [2^(e-1), 2^e) */
    int E = a == 0 ? -14 : e - 1;
    if (E < -14) E = -14;           /* subnormals: the quantum of the first binade, 2^-24 */
    const double q = ldexp(1.0, E - 10);
    const double r = nearbyint(a / q) * q; /* a / q is exact; the default mode rounds ties to even */
    assert_true(r <= 65504.0);
    *v = (float)(sign ? -r : r);
    if (r < ldexp(1.0, -14)) return (uint16_t)(sign | (uint16_t)(r / ldexp(1.0, -24))); /* 0, subnormal */
    frexp(r, &e);
    E = e - 1;
    return (uint16_t)(sign | (unsigned)(E + 15) << 10 | (unsigned)(ldexp(r, -E) * 1024.0 - 1024.0));
}

/* The bfloat16 nearest to the finite x (ties to even), its value in *v. */
static uint16_t bf16_round(float x, float *v) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + (u >> 16 & 1u);
    u &= 0xffff0000u;
    memcpy(v, &u, 4);
    return (uint16_t)(u >> 16);
}

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Writes model.safetensors with the valid model's tensor k_tensors[i] stored as dtypes[i] ("F32",
 * "F16" or "BF16"), its values rounded to that dtype; with ref, the F32 file of the same rounded
 * values instead. pack 0: each tensor 64-byte aligned (as gru_format.py writes); pack 1: back to
 * back from byte 2 of the data (every F32 tensor misaligned). poke (tensor name or NULL): its last
 * element's 16 stored bits are poke_bits instead. Returns how many values the rounding changed. */
static size_t write_rounded(const char *const *dtypes, int ref, int pack, const char *poke, uint16_t poke_bits) {
    json_t *h = json_object();
    buf_t data = {0};
    size_t changed = 0;
    if (pack) buf_put(&data, "\0\0", 2);
    for (size_t i = 0; i < N_TENSORS; i++) {
        size_t b, e;
        get_offsets(k_tensors[i], &b, &e);
        const size_t n = (e - b) / 4;
        const int half = !strcmp(dtypes[i], "F16"), bf = !strcmp(dtypes[i], "BF16");
        while (!pack && data.len % 64) buf_put(&data, "", 1);
        const size_t begin = data.len;
        for (size_t k = 0; k < n; k++) {
            float x, v = 0;
            memcpy(&x, g_data + b + 4 * k, 4);
            uint16_t s = half ? f16_round(x, &v) : bf ? bf16_round(x, &v) : 0;
            if (!half && !bf) v = x;
            if (poke && !strcmp(poke, k_tensors[i]) && k == n - 1) s = poke_bits;
            changed += bits_of(v) != bits_of(x);
            if (ref || (!half && !bf)) buf_put(&data, &v, 4);
            else buf_put(&data, (unsigned char[2]){(unsigned char)s, (unsigned char)(s >> 8)}, 2);
        }
        json_t *shape = json_object_get(tensor_of(g_hdr, k_tensors[i]), "shape");
        json_object_set_new(h, k_tensors[i],
                            json_pack("{s:s, s:O, s:[II]}", "dtype", ref ? "F32" : dtypes[i], "shape", shape,
                                      "data_offsets", (json_int_t)begin, (json_int_t)data.len));
    }
    write_st(h, data.p, data.len, NULL, 0);
    json_decref(h);
    free(data.p);
    return changed;
}

#define N_TEXTS 5
#define TEXT_MAX 40

/* Loads g_dir and runs the texts in one batch: probabilities and trajectories into out. */
static void run_texts(float out[N_TEXTS][TEXT_MAX + 1][2], const char *what) {
    static int32_t ids[N_TEXTS][TEXT_MAX];
    static const size_t lens[N_TEXTS] = {0, 1, 3, 17, TEXT_MAX};
    for (size_t i = 0; i < N_TEXTS; i++)
        for (size_t t = 0; t < lens[i]; t++) ids[i][t] = (int32_t)((7 * t + 13 * i + 2) % 50);
    gru_model_t *m = NULL;
    char err[1024] = "";
    if (gru_model_load(&m, g_dir, NULL, err, sizeof err) < 0) fail_msg("%s: rejected: %s", what, err);
    gru_ctx_t *ctx;
    assert_int_equal(gru_ctx_new(&ctx, m), 0);
    gru_input_t in[N_TEXTS];
    gru_output_t o[N_TEXTS];
    memset(out, 0, sizeof(float) * N_TEXTS * (TEXT_MAX + 1) * 2);
    for (size_t i = 0; i < N_TEXTS; i++) {
        in[i] = (gru_input_t){ids[i], lens[i]};
        o[i] = (gru_output_t){out[i][0], NULL, lens[i] ? out[i][1] : NULL};
    }
    assert_int_equal(gru_forward_batch(ctx, in, o, N_TEXTS, GRU_GATES_NONE), 0);
    gru_ctx_free(ctx);
    gru_model_free(m);
}

static void test_st_half_model(void **state) {
    static const char *const all_f16[N_TENSORS] = {"F16", "F16", "F16", "F16", "F16", "F16", "F16"};
    static const char *const all_bf16[N_TENSORS] = {"BF16", "BF16", "BF16", "BF16", "BF16", "BF16", "BF16"};
    static const char *const mixed[N_TENSORS] = {"F16", "F32", "BF16", "F32", "F16", "BF16", "F32"};
    static const char *const mixed2[N_TENSORS] = {"F32", "BF16", "F16", "F16", "F32", "F32", "BF16"};
    struct {
        const char *const *dtypes;
        int pack;
        const char *what;
    } cases[] = {
        {all_f16, 0, "all F16"},
        {all_bf16, 0, "all BF16"},
        {all_f16, 1, "all F16, packed from byte 2"},
        {mixed, 0, "F16 / F32 / BF16 mixed, aligned F32"},
        {mixed, 1, "F16 / F32 / BF16 mixed, misaligned F32"},
        {mixed2, 0, "F32 / BF16 / F16 mixed"},
    };
    static float got[N_TEXTS][TEXT_MAX + 1][2], want[N_TEXTS][TEXT_MAX + 1][2], orig[N_TEXTS][TEXT_MAX + 1][2];
    run_texts(orig, "the valid F32 model");
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t changed = write_rounded(cases[c].dtypes, 0, cases[c].pack, NULL, 0);
        run_texts(got, cases[c].what);
        assert_int_equal(write_rounded(cases[c].dtypes, 1, 0, NULL, 0), changed);
        run_texts(want, cases[c].what);
        /* The rounding is real (most weights change; so do the probabilities), and the 16-bit
         * file gives exactly what the F32 file of its values gives. */
        assert_true(changed > 200);
        int same = memcmp(got, want, sizeof got) == 0;
        float dmax = 0, dorig = 0;
        for (size_t i = 0; i < N_TEXTS; i++)
            for (size_t t = 0; t <= TEXT_MAX; t++)
                for (size_t k = 0; k < 2; k++) {
                    dmax = fmaxf(dmax, fabsf(got[i][t][k] - want[i][t][k]));
                    dorig = fmaxf(dorig, fabsf(got[i][t][k] - orig[i][t][k]));
                }
        printf("  %s %s: %zu of 1066 weights rounded, probabilities %s the rounded F32 model's (max diff %g), "
               "max diff %g from the original\n",
               same ? "ok  " : "FAIL", cases[c].what, changed, same ? "equal to" : "NOT equal to", (double)dmax,
               (double)dorig);
        g_failures += !same;
        assert_true(dorig > 0);
        assert_true(dorig < 0.05f);
    }
    /* Non-finite and huge values are rejected as in F32 files (model/gru.c checks the floats). */
    struct {
        const char *const *dtypes;
        const char *tensor;
        uint16_t bits;
        const char *what, *msg;
    } bad[] = {
        {all_f16, "fc.bias", 0x7c00, "F16 +inf", "not finite"},
        {all_f16, "gru.weight_hh_l0", 0xfc00, "F16 -inf", "not finite"},
        {all_f16, "embedding.weight", 0x7e00, "F16 NaN", "not finite"},
        {mixed, "fc.weight", 0xff81, "BF16 -NaN (signalling) in a mixed file", "not finite"},
        {mixed, "gru.bias_hh_l0", 0x7c01, "F16 NaN (signalling) in a mixed file", "not finite"},
        {all_bf16, "gru.bias_ih_l0", 0x7f80, "BF16 +inf", "not finite"},
        {all_bf16, "gru.weight_ih_l0", 0x7f7f, "BF16 3.39e38", "beyond"},
        {all_bf16, "fc.bias", 0xc9f5, "BF16 -2.0e6", "beyond"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_rounded(bad[i].dtypes, 0, 0, bad[i].tensor, bad[i].bits);
        char msg[160];
        snprintf(msg, sizeof msg, "tensor %s: value", bad[i].tensor);
        expect_reject(bad[i].what, msg, bad[i].msg);
    }
    /* The 16-bit poke writes land where they should: a finite one loads. */
    write_rounded(all_f16, 0, 0, "fc.bias", 0x7bff); /* 65504 */
    expect_load("F16 65504 in fc.bias");
    assert_int_equal(g_failures, 0);
}

/* Every F16 and BF16 value through wts_open_buffer and wts_open, bit for bit. */
static void check_specials(const wts_file_t *f, const unsigned char *buf, size_t data_off, int f32_in_place) {
    const wts_tensor_t *t16 = wts_find(f, "all_f16"), *tb = wts_find(f, "all_bf16"), *odd = wts_find(f, "odd_f16"),
                       *t32 = wts_find(f, "f32");
    assert_non_null(t16);
    assert_non_null(tb);
    assert_non_null(odd);
    assert_non_null(t32);
    assert_int_equal(t16->dtype, WTS_F16);
    assert_int_equal(tb->dtype, WTS_BF16);
    assert_int_equal(t32->dtype, WTS_F32);
    assert_string_equal(wts_dtype_name(t16->dtype), "F16");
    assert_string_equal(wts_dtype_name(tb->dtype), "BF16");
    assert_string_equal(wts_dtype_name(t32->dtype), "F32");
    assert_int_equal(t16->count, 65536);
    assert_int_equal(tb->count, 65536);
    size_t bad16 = 0, badb = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const unsigned exp = h >> 10 & 0x1fu, frac = h & 0x3ffu;
        uint32_t want;
        if (exp == 0x1f && frac) /* NaN: sign and payload kept (top of the F32 fraction), still a NaN */
            want = (h & 0x8000u) << 16 | 0x7f800000u | frac << 13;
        else
            want = bits_of((float)f16_value((uint16_t)h));
        if (bits_of(t16->data[h]) != want || (exp == 0x1f && frac && !isnan(t16->data[h]))) {
            if (bad16++ < 5) printf("  FAIL F16 0x%04x -> 0x%08x, want 0x%08x\n", h, bits_of(t16->data[h]), want);
        }
        if (bits_of(tb->data[h]) != h << 16) {
            if (badb++ < 5) printf("  FAIL BF16 0x%04x -> 0x%08x, want 0x%08x\n", h, bits_of(tb->data[h]), h << 16);
        }
    }
    assert_int_equal(bad16, 0);
    assert_int_equal(badb, 0);
    /* The named values, as literals. */
    const struct {
        uint16_t h;
        float v;
    } named[] = {
        {0x0000, 0.0f},          {0x0001, 0x1p-24f},     {0x8001, -0x1p-24f},  {0x0200, 0x1p-15f},
        {0x03ff, 0x1.ff8p-15f},  {0x0400, 0x1p-14f},     {0x3c00, 1.0f},       {0xc000, -2.0f},
        {0x3555, 0.333251953125f}, {0x7bff, 65504.0f},   {0xfbff, -65504.0f},  {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        assert_int_equal(bits_of(t16->data[named[i].h]), bits_of(named[i].v));
    assert_true(t16->data[0x8000] == 0.0f && signbit(t16->data[0x8000]));
    assert_true(isnan(t16->data[0x7e00]) && isnan(t16->data[0x7c01]) && isnan(t16->data[0xfe00]));
    assert_true(isnan(tb->data[0x7fc0]) && isinf(tb->data[0xff80]) && tb->data[0x3f80] == 1.0f);
    assert_int_equal(bits_of(tb->data[0x7f7f]), 0x7f7f0000u); /* largest finite BF16 */
    assert_int_equal(bits_of(tb->data[0x0001]), 0x00010000u); /* an F32 subnormal */
    /* A tensor at an odd offset converts the same. */
    assert_int_equal(odd->count, 3);
    assert_true(odd->data[0] == 0x1p-24f && odd->data[1] == 65504.0f && odd->data[2] == 0.0f &&
                signbit(odd->data[2]));
    const wts_tensor_t *empty = wts_find(f, "empty_bf16");
    assert_non_null(empty);
    assert_int_equal(empty->count, 0);
    assert_non_null(empty->data);
    /* The F32 tensor: used in place when aligned, else copied; the same values. */
    assert_true(t32->data[0] == 1.5f && t32->data[1] == 0.0f && signbit(t32->data[1]));
    if (buf) {
        int in_place = (const void *)t32->data == (const void *)(buf + data_off + 262152);
        assert_int_equal(in_place, f32_in_place);
    }
}

static void test_wts_half_values(void **state) {
    for (int misaligned = 0; misaligned < 2; misaligned++) {
        const size_t f32_at = 262152 + (size_t)misaligned * 2;
        char hdr[512];
        int hl = snprintf(hdr, sizeof hdr,
                          "{\"all_f16\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]},"
                          "\"all_bf16\":{\"dtype\":\"BF16\",\"shape\":[65536],\"data_offsets\":[131072,262144]},"
                          "\"odd_f16\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[262145,262151]},"
                          "\"empty_bf16\":{\"dtype\":\"BF16\",\"shape\":[0,4],\"data_offsets\":[262151,262151]},"
                          "\"f32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%zu,%zu]}}",
                          f32_at, f32_at + 8);
        while (hl % 8) hdr[hl++] = ' '; /* the data starts 8-byte aligned in the buffer */
        const size_t data_off = 8 + (size_t)hl, len = data_off + f32_at + 8;
        unsigned char *buf = calloc(1, len);
        assert_non_null(buf);
        for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
        memcpy(buf + 8, hdr, (size_t)hl);
        unsigned char *d = buf + data_off;
        for (uint32_t h = 0; h < 65536; h++) {
            d[2 * h] = d[131072 + 2 * h] = (unsigned char)h;
            d[2 * h + 1] = d[131072 + 2 * h + 1] = (unsigned char)(h >> 8);
        }
        const unsigned char odd[6] = {0x01, 0x00, 0xff, 0x7b, 0x00, 0x80};
        memcpy(d + 262145, odd, 6);
        const float f32[2] = {1.5f, -0.0f};
        memcpy(d + f32_at, f32, 8);

        wts_file_t *f = NULL;
        char err[512] = "";
        if (wts_open_buffer(&f, buf, len, "specials.safetensors", err, sizeof err) < 0) fail_msg("%s", err);
        check_specials(f, buf, data_off, !misaligned);
        wts_close(f);

        /* The same file through mmap; releasing every tensor's pages loses nothing (converted and
         * copied data stays, mapped F32 data reads back from the file). */
        char path[512];
        snprintf(path, sizeof path, "%s/specials.safetensors", g_tmp);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(buf, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
        if (wts_open(&f, path, err, sizeof err) < 0) fail_msg("%s", err);
        check_specials(f, NULL, 0, 0);
        for (size_t i = 0; i < wts_count(f); i++) wts_release(f, wts_at(f, i));
        check_specials(f, NULL, 0, 0);
        wts_close(f);
        assert_int_equal(unlink(path), 0);

        /* dtype names in the message, through the buffer API. */
        char *bad = malloc(len);
        assert_non_null(bad);
        memcpy(bad, buf, len);
        char *dt = strstr(bad + 8, "\"BF16\"");
        assert_non_null(dt);
        memcpy(dt, "\"I16\" ", 6);
        assert_int_equal(wts_open_buffer(&f, bad, len, "specials.safetensors", err, sizeof err), -EPROTO);
        assert_null(f);
        assert_non_null(strstr(err, "specials.safetensors: tensor all_bf16: dtype I16, expected F32, F16 or BF16"));
        free(bad);
        free(buf);
    }
    /* A file of one empty F16 tensor: its data is not NULL either. */
    static const char one[] = "{\"e\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    unsigned char b1[8 + sizeof one - 1];
    for (int i = 0; i < 8; i++) b1[i] = (unsigned char)((uint64_t)(sizeof one - 1) >> (8 * i));
    memcpy(b1 + 8, one, sizeof one - 1);
    wts_file_t *f = NULL;
    char err[512] = "";
    if (wts_open_buffer(&f, b1, sizeof b1, "empty.safetensors", err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(wts_count(f), 1);
    assert_int_equal(wts_at(f, 0)->dtype, WTS_F16);
    assert_non_null(wts_at(f, 0)->data);
    wts_close(f);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: vocab.txt
 */

static void test_vocab(void **state) {
    char *v = malloc(g_vocab.len + 64);
    assert_non_null(v);
    /* One line fewer. */
    memcpy(v, g_vocab.p, g_vocab.len);
    size_t n = g_vocab.len - 1;
    while (n > 0 && v[n - 1] != '\n') n--;
    write_bytes("vocab.txt", v, n);
    expect_reject("vocab.txt one line short", "vocab.txt", NULL);
    /* One line more. */
    memcpy(v + g_vocab.len, "t50\n", 4);
    write_bytes("vocab.txt", v, g_vocab.len + 4);
    expect_reject("vocab.txt one line extra", "vocab.txt", NULL);
    /* Same count but broken lines. */
    write_bytes("vocab.txt", v, g_vocab.len - 1);
    expect_reject("vocab.txt without final newline", "vocab.txt", NULL);
    write_bytes("vocab.txt", "", 0);
    expect_reject("vocab.txt empty", "vocab.txt", NULL);
    memcpy(v, g_vocab.p, g_vocab.len);
    char *t3 = strstr(v, "\nt3\n");
    assert_non_null(t3);
    memcpy(t3 + 1, "t2", 2); /* duplicate of t2 */
    write_bytes("vocab.txt", v, g_vocab.len);
    expect_reject("vocab.txt duplicate token", "vocab.txt", NULL);
    memcpy(v, g_vocab.p, g_vocab.len);
    memcpy(v, "<pod>", 5);
    write_bytes("vocab.txt", v, g_vocab.len);
    expect_reject("vocab.txt line 0 not <pad>", "vocab.txt", NULL);
    free(v);
    /* config.json's vocab_size off by one against a valid vocab.txt. */
    restore();
    json_t *c = json_deep_copy(g_cfg_json);
    json_object_set_new(c, "vocab_size", json_integer(49));
    char *js = json_dumps(c, 0);
    write_str("config.json", js);
    free(js);
    json_decref(c);
    expect_reject("config vocab_size 49, vocab.txt 50 lines", "vocab.txt", NULL);
    assert_int_equal(g_failures, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Tests: config.json
 */

/* Writes config.json = the valid config with edit applied (a JSON object merged in; a key set to
 * the JSON "DELETE" string is removed; "tokenizer" is merged one level deep the same way). */
static void write_config_edit(const char *edit_json) {
    json_error_t jerr;
    json_t *edit = json_loads(edit_json, 0, &jerr);
    if (!edit) fail_msg("bad edit %s: %s", edit_json, jerr.text);
    json_t *c = json_deep_copy(g_cfg_json);
    const char *key;
    json_t *val;
    json_object_foreach(edit, key, val) {
        if (json_is_string(val) && !strcmp(json_string_value(val), "DELETE")) {
            json_object_del(c, key);
        } else if (!strcmp(key, "tokenizer") && json_is_object(val) && json_object_get(val, "MERGE")) {
            json_t *tk = json_object_get(c, "tokenizer");
            const char *k2;
            json_t *v2;
            json_object_foreach(val, k2, v2) {
                if (!strcmp(k2, "MERGE")) continue;
                if (json_is_string(v2) && !strcmp(json_string_value(v2), "DELETE")) json_object_del(tk, k2);
                else json_object_set(tk, k2, v2);
            }
        } else {
            json_object_set(c, key, val);
        }
    }
    char *js = json_dumps(c, JSON_INDENT(2));
    write_str("config.json", js);
    free(js);
    json_decref(c);
    json_decref(edit);
}

static void test_config(void **state) {
    const char *raw[] = {"", "{", "[1, 2]", "\"gru\"", "{\"model_type\": \"gru_classifier\", \"model_type\": \"x\"}",
                         "\xff\xfe{}"};
    for (size_t i = 0; i < sizeof raw / sizeof *raw; i++) {
        char what[96];
        snprintf(what, sizeof what, "config.json not a valid object #%zu", i);
        write_str("config.json", raw[i]);
        expect_reject(what, "config.json", NULL);
    }
    struct {
        const char *edit, *what;
    } cases[] = {
        {"{\"model_type\": \"DELETE\"}", "model_type missing"},
        {"{\"model_type\": \"lstm_classifier\"}", "model_type wrong"},
        {"{\"vocab_size\": \"DELETE\"}", "vocab_size missing"},
        {"{\"embedding_dim\": \"DELETE\"}", "embedding_dim missing"},
        {"{\"hidden_size\": \"DELETE\"}", "hidden_size missing"},
        {"{\"num_layers\": \"DELETE\"}", "num_layers missing"},
        {"{\"labels\": \"DELETE\"}", "labels missing"},
        {"{\"tokenizer\": \"DELETE\"}", "tokenizer missing"},
        {"{\"vocab_size\": \"50\"}", "vocab_size a string"},
        {"{\"hidden_size\": 8.0}", "hidden_size a float"},
        {"{\"hidden_size\": 0}", "hidden_size 0"},
        {"{\"hidden_size\": -8}", "hidden_size negative"},
        {"{\"hidden_size\": 4097}", "hidden_size over GRU_MAX_HIDDEN"},
        {"{\"embedding_dim\": 0}", "embedding_dim 0"},
        {"{\"num_layers\": true}", "num_layers a boolean"},
        {"{\"num_layers\": 0}", "num_layers 0"},
        {"{\"num_layers\": 9}", "num_layers over GRU_MAX_LAYERS"},
        {"{\"vocab_size\": 1}", "vocab_size 1"},
        {"{\"bidirectional\": \"false\"}", "bidirectional a string"},
        {"{\"bidirectional\": 0}", "bidirectional an integer"},
        {"{\"labels\": \"negative,positive\"}", "labels a string"},
        {"{\"labels\": [\"negative\", 1]}", "a label not a string"},
        {"{\"labels\": [\"negative\", \"\"]}", "an empty label"},
        {"{\"labels\": [\"x\", \"x\"]}", "duplicate labels"},
        {"{\"labels\": [\"negative\"]}", "one label"},
        {"{\"labels\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}",
         "17 labels"},
        {"{\"tokenizer\": \"word\"}", "tokenizer a string"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"kind\": \"bpe\"}}", "tokenizer kind bpe"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"kind\": \"WORD\"}}", "tokenizer kind WORD"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"kind\": 0}}", "tokenizer kind an integer"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"kind\": \"DELETE\"}}", "tokenizer kind missing"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"lowercase\": \"yes\"}}", "tokenizer lowercase a string"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"max_tokens\": \"DELETE\"}}", "tokenizer max_tokens missing"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"max_tokens\": 0}}", "tokenizer max_tokens 0"},
        {"{\"tokenizer\": {\"MERGE\": 1, \"max_tokens\": \"512\"}}", "tokenizer max_tokens a string"},
        {"{\"pooling\": \"MAX\"}", "pooling MAX"},
        {"{\"pooling\": \"attention\"}", "pooling attention"},
        {"{\"pooling\": 1}", "pooling an integer"},
        {"{\"pooling\": null}", "pooling null"},
        {"{\"languages\": \"en\"}", "languages a string"},
        {"{\"languages\": {\"en\": 1}}", "languages an object"},
        {"{\"languages\": [\"en\", 1]}", "a language not a string"},
        {"{\"languages\": [\"\"]}", "an empty language"},
        {"{\"languages\": [\"e\"]}", "a one-letter language"},
        {"{\"languages\": [\"engl\"]}", "a four-letter language"},
        {"{\"languages\": [\"EN\"]}", "an upper-case language"},
        {"{\"languages\": [\"zh-Hans\"]}", "a language with a script"},
        {"{\"languages\": [\"en\", \"zh\", \"en\"]}", "a language twice"},
        {"{\"languages\": [\"aa\",\"bb\",\"cc\",\"dd\",\"ee\",\"ff\",\"gg\",\"hh\",\"ii\"]}", "9 languages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_config_edit(cases[i].edit);
        expect_reject(cases[i].what, "config.json", NULL);
    }
    assert_int_equal(g_failures, 0);
}

/* "languages" is optional: absent, null or [] declares none; else the codes in order. */
static void test_config_languages(void **state) {
    static const struct {
        const char *edit;
        int n;
        const char *first, *last;
    } cases[] = {
        {"{\"languages\": \"DELETE\"}", 0, NULL, NULL},
        {"{\"languages\": null}", 0, NULL, NULL},
        {"{\"languages\": []}", 0, NULL, NULL},
        {"{\"languages\": [\"en\"]}", 1, "en", "en"},
        {"{\"languages\": [\"zh\", \"yue\"]}", 2, "zh", "yue"},
        {"{\"languages\": [\"aa\",\"bb\",\"cc\",\"dd\",\"ee\",\"ff\",\"gg\",\"hhh\"]}", 8, "aa", "hhh"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_config_edit(cases[i].edit);
        gru_model_t *m = NULL;
        char err[1024] = "";
        int rc = gru_model_load(&m, g_dir, NULL, err, sizeof err);
        if (rc < 0) fail_msg("%s rejected: %s", cases[i].edit, err);
        const gru_config_t *c = gru_model_config(m);
        assert_int_equal(c->num_languages, cases[i].n);
        if (cases[i].n) {
            assert_string_equal(c->languages[0], cases[i].first);
            assert_string_equal(c->languages[cases[i].n - 1], cases[i].last);
        }
        gru_model_free(m);
    }
}

/* A config that parses but does not match the tensors: the message names the tensor. */
static void test_config_vs_tensors(void **state) {
    struct {
        const char *edit, *tensor, *what;
    } cases[] = {
        {"{\"labels\": [\"negative\", \"neutral\", \"positive\"]}", "fc.weight", "3 labels, fc.weight has 2 rows"},
        {"{\"hidden_size\": 16}", "gru.weight_ih_l0", "hidden_size 16 for H=8 tensors"},
        {"{\"embedding_dim\": 4}", "embedding.weight", "embedding_dim 4 for E=8 tensors"},
        {"{\"num_layers\": 2}", "gru.weight_ih_l1", "num_layers 2 for a 1-layer model"},
        {"{\"bidirectional\": true}", "_reverse", "bidirectional true for a unidirectional model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_config_edit(cases[i].edit);
        expect_reject(cases[i].what, ST, cases[i].tensor);
    }
    /* 3 labels and a matching fc.weight but fc.bias with 2 values. */
    write_config_edit("{\"labels\": [\"negative\", \"neutral\", \"positive\"]}");
    json_t *h = hdr_copy();
    json_object_set_new(tensor_of(h, "fc.weight"), "shape", json_pack("[ii]", 3, 8));
    /* place the 3x8 fc.weight after the data (zeros) */
    float extra[24] = {0};
    set_offsets(h, "fc.weight", (json_int_t)g_data_len, (json_int_t)g_data_len + 96);
    write_st(h, g_data, g_data_len, extra, sizeof extra);
    json_decref(h);
    expect_reject("3 labels, fc.weight 3x8, fc.bias 2", ST, "fc.bias");
    assert_int_equal(g_failures, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_valid_model, test_setup),
        cmocka_unit_test_setup(test_missing_files, test_setup),
        cmocka_unit_test_setup(test_st_truncated, test_setup),
        cmocka_unit_test_setup(test_st_header_length, test_setup),
        cmocka_unit_test_setup(test_st_header_garbage, test_setup),
        cmocka_unit_test_setup(test_st_dtype, test_setup),
        cmocka_unit_test_setup(test_st_shape, test_setup),
        cmocka_unit_test_setup(test_st_offsets, test_setup),
        cmocka_unit_test_setup(test_st_overlap, test_setup),
        cmocka_unit_test_setup(test_st_missing_tensor, test_setup),
        cmocka_unit_test_setup(test_st_extra_tensor, test_setup),
        cmocka_unit_test_setup(test_st_nonfinite, test_setup),
        cmocka_unit_test_setup(test_st_half_model, test_setup),
        cmocka_unit_test_setup(test_wts_half_values, test_setup),
        cmocka_unit_test_setup(test_vocab, test_setup),
        cmocka_unit_test_setup(test_config, test_setup),
        cmocka_unit_test_setup(test_config_languages, test_setup),
        cmocka_unit_test_setup(test_config_vs_tensors, test_setup),
    };
    return cmocka_run_group_tests_name("loader", tests, group_setup, group_teardown);
}
