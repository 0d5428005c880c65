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
 * - Non-finite weights are rejected.
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
    const char *dtypes[] = {"F16", "BF16", "F64", "I32", "f32", ""};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        json_t *h = hdr_copy();
        json_object_set_new(tensor_of(h, "fc.bias"), "dtype", json_string(dtypes[i]));
        write_st(h, g_data, g_data_len, NULL, 0);
        json_decref(h);
        char what[64];
        snprintf(what, sizeof what, "dtype \"%s\"", dtypes[i]);
        expect_reject(what, ST, "fc.bias");
    }
    /* F16 with data_offsets matching 2 bytes per element. */
    json_t *h = hdr_copy();
    size_t b, e;
    get_offsets("gru.bias_hh_l0", &b, &e);
    json_object_set_new(tensor_of(h, "gru.bias_hh_l0"), "dtype", json_string("F16"));
    set_offsets(h, "gru.bias_hh_l0", (json_int_t)b, (json_int_t)(b + (e - b) / 2));
    write_st(h, g_data, g_data_len, NULL, 0);
    json_decref(h);
    expect_reject("dtype F16 with F16-sized offsets", ST, "gru.bias_hh_l0");
    h = hdr_copy();
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
        cmocka_unit_test_setup(test_vocab, test_setup),
        cmocka_unit_test_setup(test_config, test_setup),
        cmocka_unit_test_setup(test_config_languages, test_setup),
        cmocka_unit_test_setup(test_config_vs_tensors, test_setup),
    };
    return cmocka_run_group_tests_name("loader", tests, group_setup, group_teardown);
}
