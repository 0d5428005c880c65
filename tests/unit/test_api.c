/* test_api.c - the HTTP API's schema (api/): request parsing and validation for both request
 * kinds, the error table, error and response bodies, allocation failures, the OpenAPI
 * document and the model card reader. */
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

#include "api.h"
#include "api_internal.h"

static const api_limits_t limits = {8};

/* Parses body as kind; returns the error kind (API_ERR_NONE on success). */
static api_err_t parse(api_request_t *r, api_request_kind_t kind, const char *body, size_t len) {
    api_error_t err = {API_ERR_NONE, ""};
    int rc = api_request_parse(r, kind, body, len, &limits, &err);
    if (rc == 0) return API_ERR_NONE;
    assert_int_equal(rc, -1);
    assert_true(err.kind != API_ERR_NONE);
    assert_true(err.message[0] != 0);
    /* The body of every error is valid JSON of the one shape. */
    size_t n;
    char *b = api_error_body(&err, &n);
    assert_non_null(b);
    json_t *j = json_loads(b, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), api_err_code(err.kind));
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);
    free(b);
    return err.kind;
}

/* ------------------------------------------------------------------------------------------ */
/* POST /v1/sentiment */

static void test_api_sentiment_single(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    const char *body = "{\"text\": \"It's NOT good!!\"}";
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, body, strlen(body)), API_ERR_NONE);
    assert_int_equal(r.n_texts, 1);
    assert_int_equal(r.single, 1);
    assert_int_equal(r.text_lens[0], 15);
    assert_memory_equal(r.texts[0], "It's NOT good!!", 15);
    assert_null(r.model);
    assert_int_equal(r.gates, GRU_GATES_SUMMARY);
    assert_int_equal(r.trajectory, 0);
    assert_int_equal(r.truncate, 1);
    api_request_deinit(&r);
}

static void test_api_sentiment_batch(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    const char body[] = "{\"texts\": [\"a\", \"b\\u0000c\", \"\\u00e9t\\u00e9\"], \"model\": \"waimai-zh\", \"gates\": \"full\","
                        " \"trajectory\": true, \"truncate\": false}";
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, body, sizeof body - 1), API_ERR_NONE);
    assert_int_equal(r.n_texts, 3);
    assert_int_equal(r.single, 0);
    assert_int_equal(r.text_lens[1], 3); /* the NUL is kept */
    assert_memory_equal(r.texts[1], "b\0c", 3);
    assert_string_equal(r.texts[2], "\xc3\xa9t\xc3\xa9");
    assert_string_equal(r.model, "waimai-zh");
    assert_int_equal(r.gates, GRU_GATES_FULL);
    assert_int_equal(r.trajectory, 1);
    assert_int_equal(r.truncate, 0);
    /* Reuse the same struct: the old texts are gone, new ones parsed. */
    const char body2[] = "{\"text\": \"x\", \"gates\": false, \"model\": null}";
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, body2, sizeof body2 - 1), API_ERR_NONE);
    assert_int_equal(r.n_texts, 1);
    assert_int_equal(r.gates, GRU_GATES_NONE);
    assert_null(r.model);
    const char body3[] = "{\"text\": \"x\", \"gates\": true}";
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, body3, sizeof body3 - 1), API_ERR_NONE);
    assert_int_equal(r.gates, GRU_GATES_SUMMARY);
    api_request_deinit(&r);
    api_request_deinit(&r); /* twice is fine */
}

/* Data-driven: every way a sentiment body can be wrong, and the error kind it gets. */
static const struct {
    const char *body;
    api_err_t kind;
} sentiment_cases[] = {
    {"", API_ERR_INVALID_JSON},
    {"{", API_ERR_INVALID_JSON},
    {"{\"text\": \"a\"} x", API_ERR_INVALID_JSON},
    {"{\"text\": \"a\", \"text\": \"b\"}", API_ERR_INVALID_JSON},
    {"{'text': 'a'}", API_ERR_INVALID_JSON},
    {"[\"a\"]", API_ERR_INVALID_TYPE},
    {"\"a\"", API_ERR_INVALID_TYPE},
    {"null", API_ERR_INVALID_TYPE},
    {"{\"text\": 1}", API_ERR_INVALID_TYPE},
    {"{\"text\": [\"a\"]}", API_ERR_INVALID_TYPE},
    {"{\"texts\": \"a\"}", API_ERR_INVALID_TYPE},
    {"{\"texts\": [\"a\", null]}", API_ERR_INVALID_TYPE},
    {"{\"text\": \"a\", \"model\": 3}", API_ERR_INVALID_TYPE},
    {"{\"text\": \"a\", \"gates\": 2}", API_ERR_INVALID_TYPE},
    {"{\"text\": \"a\", \"trajectory\": 1}", API_ERR_INVALID_TYPE},
    {"{\"text\": \"a\", \"truncate\": \"no\"}", API_ERR_INVALID_TYPE},
    {"{\"text\": \"a\", \"model\": \"\"}", API_ERR_MODEL_NOT_FOUND},
    {"{}", API_ERR_MISSING_TEXT},
    {"{\"text\": null}", API_ERR_MISSING_TEXT},
    {"{\"gates\": \"none\"}", API_ERR_MISSING_TEXT},
    {"{\"text\": \"\"}", API_ERR_EMPTY_TEXT},
    {"{\"texts\": [\"a\", \"\"]}", API_ERR_EMPTY_TEXT},
    {"{\"texts\": []}", API_ERR_EMPTY_LIST},
    {"{\"texts\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}", API_ERR_TOO_MANY_TEXTS},
    {"{\"text\": \"a\", \"texts\": [\"b\"]}", API_ERR_INVALID_REQUEST},
    {"{\"text\": \"a\", \"gates\": \"most\"}", API_ERR_INVALID_REQUEST},
    {"{\"text\": \"a\", \"gates\": \"\"}", API_ERR_INVALID_REQUEST},
    {"{\"text\": \"a\", \"colour\": \"red\"}", API_ERR_INVALID_REQUEST},
    {"{\"text\": \"caf\xc3\"}", API_ERR_INVALID_UTF8},
    {"{\"text\": \"\xff\"}", API_ERR_INVALID_UTF8},
    {"{\"text\": \"\\ud800\"}", API_ERR_INVALID_UTF8},
    {"{\"text\": \"\\udc00x\"}", API_ERR_INVALID_UTF8},
    {"{\"te\xc3\x28xt\": \"a\"}", API_ERR_INVALID_UTF8},
};

static void test_api_sentiment_errors(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    for (size_t i = 0; i < sizeof sentiment_cases / sizeof *sentiment_cases; i++) {
        api_err_t got = parse(&r, API_REQ_SENTIMENT, sentiment_cases[i].body, strlen(sentiment_cases[i].body));
        if (got != sentiment_cases[i].kind)
            fail_msg("case %zu %s: got %s, want %s", i, sentiment_cases[i].body, api_err_code(got),
                     api_err_code(sentiment_cases[i].kind));
        assert_int_equal(r.n_texts, 0); /* nothing is left after a failure */
    }
    /* NULL body and a body with a NUL byte in the middle. */
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, NULL, 0), API_ERR_INVALID_JSON);
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, "{\"text\":\0\"a\"}", 13), API_ERR_INVALID_JSON);
    api_request_deinit(&r);
}

/* Deep nesting is refused without a stack overflow. */
static void test_api_deep_nesting(void **state) {
    (void)state;
    size_t depth = 100000;
    char *body = malloc(2 * depth + 16);
    assert_non_null(body);
    size_t k = 0;
    k += (size_t)sprintf(body, "{\"text\":");
    for (size_t i = 0; i < depth; i++) body[k++] = '[';
    for (size_t i = 0; i < depth; i++) body[k++] = ']';
    body[k++] = '}';
    api_request_t r;
    api_request_init(&r);
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, body, k), API_ERR_INVALID_JSON);
    free(body);
}

/* ------------------------------------------------------------------------------------------ */
/* KServe v2 infer */

static void test_api_kserve(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    const char body[] = "{\"id\": \"r1\", \"parameters\": {\"x\": 1}, \"inputs\": [{\"name\": \"text\", \"shape\": [2, 1],"
                        " \"datatype\": \"BYTES\", \"data\": [[\"good\"], [\"bad\"]]}],"
                        " \"outputs\": [{\"name\": \"probabilities\"}, {\"name\": \"label\"}]}";
    assert_int_equal(parse(&r, API_REQ_KSERVE_INFER, body, sizeof body - 1), API_ERR_NONE);
    assert_int_equal(r.kind, API_REQ_KSERVE_INFER);
    assert_string_equal(r.id, "r1");
    assert_int_equal(r.n_texts, 2);
    assert_string_equal(r.texts[0], "good");
    assert_string_equal(r.texts[1], "bad");
    assert_int_equal(r.gates, GRU_GATES_NONE);
    assert_int_equal(r.n_outputs, 2);
    assert_int_equal(r.output_order[0], API_OUTPUT_PROBABILITIES);
    assert_int_equal(r.output_order[1], API_OUTPUT_LABEL);
    /* Defaults: both outputs, label first; a flat [N] tensor. */
    const char body2[] = "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"x\"]}]}";
    assert_int_equal(parse(&r, API_REQ_KSERVE_INFER, body2, sizeof body2 - 1), API_ERR_NONE);
    assert_null(r.id);
    assert_int_equal(r.outputs, API_OUTPUT_LABEL | API_OUTPUT_PROBABILITIES);
    assert_int_equal(r.output_order[0], API_OUTPUT_LABEL);
    assert_int_equal(r.single, 0);
    /* The flat form of a [2, 2] tensor, and the nested one. */
    const char body3[] = "{\"inputs\": [{\"name\": \"t\", \"shape\": [2, 2], \"datatype\": \"BYTES\", \"data\": "
                         "[\"a\", \"b\", \"c\", \"d\"]}]}";
    assert_int_equal(parse(&r, API_REQ_KSERVE_INFER, body3, sizeof body3 - 1), API_ERR_NONE);
    const char body4[] = "{\"inputs\": [{\"name\": \"t\", \"shape\": [2, 2], \"datatype\": \"BYTES\", \"data\": "
                         "[[\"a\", \"b\"], [\"c\", \"d\"]]}]}";
    assert_int_equal(parse(&r, API_REQ_KSERVE_INFER, body4, sizeof body4 - 1), API_ERR_NONE);
    assert_string_equal(r.texts[3], "d");
    api_request_deinit(&r);
}

static const struct {
    const char *body;
    api_err_t kind;
} kserve_cases[] = {
    {"{}", API_ERR_MISSING_TEXT},
    {"{\"inputs\": {}}", API_ERR_INVALID_TYPE},
    {"{\"inputs\": []}", API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [1]}", API_ERR_INVALID_TYPE},
    {"{\"inputs\": [{\"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"a\"]}]}", API_ERR_INVALID_TYPE},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"FP32\", \"data\": [\"a\"]}]}", API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [2], \"datatype\": \"BYTES\", \"data\": [\"a\"]}]}", API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [], \"datatype\": \"BYTES\", \"data\": [\"a\"]}]}", API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [-1], \"datatype\": \"BYTES\", \"data\": [\"a\"]}]}", API_ERR_INVALID_TYPE},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", \"data\": [1]}]}", API_ERR_INVALID_TYPE},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"\"]}]}", API_ERR_EMPTY_TEXT},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [0], \"datatype\": \"BYTES\", \"data\": []}]}", API_ERR_EMPTY_LIST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [9], \"datatype\": \"BYTES\", \"data\": [\"1\",\"2\",\"3\",\"4\",\"5\","
     "\"6\",\"7\",\"8\",\"9\"]}]}",
     API_ERR_TOO_MANY_TEXTS},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [99999999999, 99999999999, 99999999999], \"datatype\": \"BYTES\","
     " \"data\": [\"a\"]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"id\": 7, \"inputs\": []}", API_ERR_INVALID_TYPE},
    {"{\"parameters\": [], \"inputs\": []}", API_ERR_INVALID_TYPE},
    {"{\"outputs\": [{\"name\": \"logits\"}], \"inputs\": []}", API_ERR_INVALID_REQUEST},
    {"{\"outputs\": [\"label\"], \"inputs\": []}", API_ERR_INVALID_TYPE},
    {"{\"outputs\": {}, \"inputs\": []}", API_ERR_INVALID_TYPE},
    /* Issue 15 §6: no C-string cut of "id" or "datatype"; data nested as the shape, or flat. */
    {"{\"id\": \"a\\u0000b\", \"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"a\"]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\\u0000x\", \"data\": [\"a\"]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [2, 2], \"datatype\": \"BYTES\", \"data\": [[\"a\", \"b\", \"c\"], [\"d\"]]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [2, 1], \"datatype\": \"BYTES\", \"data\": [[\"a\"], \"b\"]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [2], \"datatype\": \"BYTES\", \"data\": [[\"a\", \"b\"]]}]}",
     API_ERR_INVALID_REQUEST},
    {"{\"inputs\": [{\"name\": \"t\", \"shape\": [1, 2], \"datatype\": \"BYTES\", \"data\": [[[\"a\"], [\"b\"]]]}]}",
     API_ERR_INVALID_REQUEST},
};

static void test_api_kserve_errors(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    for (size_t i = 0; i < sizeof kserve_cases / sizeof *kserve_cases; i++) {
        api_err_t got = parse(&r, API_REQ_KSERVE_INFER, kserve_cases[i].body, strlen(kserve_cases[i].body));
        if (got != kserve_cases[i].kind)
            fail_msg("case %zu %s: got %s, want %s", i, kserve_cases[i].body, api_err_code(got),
                     api_err_code(kserve_cases[i].kind));
    }
    api_request_deinit(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors */

static void test_api_error_table(void **state) {
    (void)state;
    static const int want[API_ERR__COUNT] = {
        [API_ERR_NONE] = 200, [API_ERR_INVALID_JSON] = 400, [API_ERR_INVALID_TYPE] = 400,
        [API_ERR_BAD_REQUEST] = 400, [API_ERR_UNAUTHORIZED] = 401, [API_ERR_NOT_FOUND] = 404, [API_ERR_MODEL_NOT_FOUND] = 404,
        [API_ERR_METHOD_NOT_ALLOWED] = 405, [API_ERR_BODY_TOO_LARGE] = 413, [API_ERR_RESULT_TOO_LARGE] = 413,
        [API_ERR_UNSUPPORTED_MEDIA_TYPE] = 415, [API_ERR_INVALID_REQUEST] = 422, [API_ERR_MISSING_TEXT] = 422,
        [API_ERR_EMPTY_TEXT] = 422, [API_ERR_EMPTY_LIST] = 422, [API_ERR_TOO_MANY_TEXTS] = 422,
        [API_ERR_TEXT_TOO_LONG] = 422, [API_ERR_INVALID_UTF8] = 422, [API_ERR_QUEUE_FULL] = 429,
        [API_ERR_INTERNAL] = 500, [API_ERR_NOT_IMPLEMENTED] = 501, [API_ERR_NOT_READY] = 503,
        [API_ERR_DRAINING] = 503, [API_ERR_OUT_OF_MEMORY] = 503, [API_ERR_OVER_CAPACITY] = 503,
        [API_ERR_TIMEOUT] = 504, [API_ERR_MODEL_LOAD_FAILED] = 400, [API_ERR_LAST_MODEL] = 409,
    };
    for (int k = 0; k < API_ERR__COUNT; k++) {
        assert_int_equal(api_status_from_err((api_err_t)k), want[k]);
        const char *code = api_err_code((api_err_t)k);
        assert_non_null(code);
        for (int j = 0; j < k; j++) assert_string_not_equal(code, api_err_code((api_err_t)j)); /* unique */
    }
    assert_int_equal(api_status_from_err(API_ERR__COUNT), 500);
    assert_int_equal(api_status_from_err((api_err_t)-1), 500);
    assert_int_equal(api_err_from_errno(-EAGAIN), API_ERR_QUEUE_FULL);
    assert_int_equal(api_err_from_errno(-ETIMEDOUT), API_ERR_TIMEOUT);
    assert_int_equal(api_err_from_errno(-ECANCELED), API_ERR_DRAINING);
    assert_int_equal(api_err_from_errno(-ENOMEM), API_ERR_OUT_OF_MEMORY);
    assert_int_equal(api_err_from_errno(-E2BIG), API_ERR_BODY_TOO_LARGE);
    assert_int_equal(api_err_from_errno(-EILSEQ), API_ERR_INVALID_UTF8);
    assert_int_equal(api_err_from_errno(-EINVAL), API_ERR_INVALID_REQUEST);
    assert_int_equal(api_err_from_errno(-EIO), API_ERR_INTERNAL);
    assert_int_equal(api_err_from_errno(0), API_ERR_NONE);
}

static void test_api_error_body(void **state) {
    (void)state;
    api_error_t e;
    assert_int_equal(api_error_set(&e, API_ERR_QUEUE_FULL, "full (%d texts)", 12), -1);
    size_t n;
    char *b = api_error_body(&e, &n);
    assert_string_equal(b, "{\"error\":{\"code\":\"queue_full\",\"message\":\"full (12 texts)\"}}");
    assert_int_equal(n, strlen(b));
    free(b);
    /* A message that is not UTF-8 still gives a body (with the code as message). */
    api_error_set(&e, API_ERR_NOT_FOUND, "no route %s", "/\xff");
    b = api_error_body(&e, &n);
    assert_string_equal(b, "{\"error\":{\"code\":\"not_found\",\"message\":\"not_found\"}}");
    free(b);
    assert_int_equal(api_error_set(NULL, API_ERR_INTERNAL, "x"), -1);
    b = api_error_body(NULL, &n);
    assert_non_null(strstr(b, "internal_error"));
    free(b);
}

/* ------------------------------------------------------------------------------------------ */
/* Response bodies */

static gru_config_t test_config(void) {
    gru_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "m");
    c.vocab_size = 10, c.embedding_dim = 4, c.hidden_size = 2, c.num_layers = 1, c.num_labels = 3;
    snprintf(c.labels[0], sizeof c.labels[0], "neg");
    snprintf(c.labels[1], sizeof c.labels[1], "neu");
    snprintf(c.labels[2], sizeof c.labels[2], "pos");
    c.tokenizer = (tok_config_t){TOK_KIND_WORD, 1, 16};
    c.num_params = 99;
    return c;
}

static void test_api_kserve_body(void **state) {
    (void)state;
    gru_config_t c = test_config();
    api_request_t r;
    api_request_init(&r);
    const char body[] = "{\"id\": \"q\", \"inputs\": [{\"name\": \"t\", \"shape\": [2], \"datatype\": \"BYTES\","
                        " \"data\": [\"a\", \"b\"]}], \"outputs\": [{\"name\": \"label\"}]}";
    assert_int_equal(parse(&r, API_REQ_KSERVE_INFER, body, sizeof body - 1), API_ERR_NONE);
    const float probs[6] = {0.1f, 0.7f, 0.2f, 0.5f, 0.2f, 0.3f};
    size_t n;
    char *b = api_kserve_infer_body(&r, &c, NULL, probs, 2, &n);
    assert_string_equal(b, "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":[{\"name\":\"label\",\"datatype\":"
                           "\"BYTES\",\"shape\":[2],\"data\":[\"neu\",\"neg\"]}],\"id\":\"q\"}");
    free(b);
    api_request_deinit(&r);
}

static void test_api_models_body(void **state) {
    (void)state;
    gru_config_t c = test_config();
    api_model_info_t m = {&c, 1, 0.874, NAN, "00112233aabbccdd"};
    size_t n;
    char *b = api_models_body(&m, 1, &n);
    json_t *j = json_loads(b, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "default")), "m");
    json_t *m0 = json_array_get(json_object_get(j, "models"), 0);
    assert_true(fabs(json_real_value(json_object_get(m0, "accuracy")) - 0.874) < 1e-9);
    assert_true(json_is_null(json_object_get(m0, "macro_f1")));
    assert_int_equal(json_integer_value(json_object_get(m0, "num_parameters")), 99);
    assert_string_equal(json_string_value(json_object_get(m0, "pooling")), "last");
    assert_int_equal(json_array_size(json_object_get(m0, "labels")), 3);
    assert_string_equal(json_string_value(json_object_get(m0, "version")), "00112233aabbccdd");
    assert_int_equal(json_array_size(json_object_get(m0, "languages")), 0); /* none declared */
    assert_int_equal(json_object_size(json_object_get(j, "language_defaults")), 0);
    json_decref(j);
    free(b);
    /* A pooled model says which pool (the name table the config parser reads too). */
    for (int p = GRU_POOL_MAX; p <= GRU_POOL_MEAN; p++) {
        c.pooling = (gru_pooling_t)p;
        gru_pooling_t back;
        assert_non_null(b = api_models_body(&m, 1, &n));
        assert_non_null(j = json_loads(b, 0, NULL));
        const char *name = json_string_value(json_object_get(json_array_get(json_object_get(j, "models"), 0), "pooling"));
        assert_string_equal(name, p == GRU_POOL_MAX ? "max" : "mean");
        assert_int_equal(gru_pooling_parse(name, &back), 0);
        assert_int_equal(back, p);
        json_decref(j);
        free(b);
    }
    c.pooling = GRU_POOL_LAST;
    /* Languages: each model lists its own; each language's default is its first model. */
    gru_config_t cs[3] = {test_config(), test_config(), test_config()};
    static const char *const names[3] = {"zh-1", "en-1", "en-zh-2"};
    static const char *const langs[3][2] = {{"zh", NULL}, {"en", NULL}, {"en", "zh"}};
    api_model_info_t ms[3];
    for (int i = 0; i < 3; i++) {
        snprintf(cs[i].name, sizeof cs[i].name, "%s", names[i]);
        for (int k = 0; k < 2 && langs[i][k]; k++)
            snprintf(cs[i].languages[cs[i].num_languages++], sizeof cs[i].languages[0], "%s", langs[i][k]);
        ms[i] = (api_model_info_t){&cs[i], i == 0, NAN, NAN, NULL};
    }
    b = api_models_body(ms, 3, &n);
    j = json_loads(b, 0, NULL);
    assert_non_null(j);
    json_t *want = json_pack("{s:s, s:s}", "zh", "zh-1", "en", "en-1");
    assert_true(json_equal(json_object_get(j, "language_defaults"), want));
    json_decref(want);
    want = json_pack("[s, s]", "en", "zh");
    assert_true(json_equal(json_object_get(json_array_get(json_object_get(j, "models"), 2), "languages"), want));
    json_decref(want);
    json_decref(j);
    free(b);
    b = api_kserve_model_body(&m, &n);
    j = json_loads(b, 0, NULL);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "versions"), 0)), "00112233aabbccdd");
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(json_array_get(json_object_get(j, "outputs"), 1), "shape"), 1)),
                     3);
    json_decref(j);
    free(b);
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation failures (jansson's allocator fails the Nth call, for every N) */

static int alloc_budget = -1;

static void *failing_malloc(size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return malloc(n);
}

static void test_api_alloc_failures(void **state) {
    (void)state;
    json_set_alloc_funcs(failing_malloc, free);
    const char body[] = "{\"texts\": [\"a\", \"b\", \"c\"], \"model\": \"m\", \"gates\": \"full\"}";
    const char kbody[] = "{\"id\": \"x\", \"inputs\": [{\"name\": \"t\", \"shape\": [2], \"datatype\": \"BYTES\","
                         " \"data\": [\"a\", \"b\"]}]}";
    gru_config_t c = test_config();
    c.num_languages = 2;
    snprintf(c.languages[0], sizeof c.languages[0], "en");
    snprintf(c.languages[1], sizeof c.languages[1], "fr");
    const float probs[6] = {0.1f, 0.7f, 0.2f, 0.5f, 0.2f, 0.3f};
    int ok = 0;
    for (int n = 0; n < 10000 && ok < 3; n++) {
        api_request_t r;
        api_request_init(&r);
        api_error_t err;
        alloc_budget = n;
        int rc = api_request_parse(&r, API_REQ_SENTIMENT, body, sizeof body - 1, &limits, &err);
        alloc_budget = -1;
        /* A clean failure (jansson reports some allocation failures in its lexer as syntax
         * errors, so the kind may be invalid_json), or the right answer. */
        if (rc == 0) {
            assert_int_equal(r.n_texts, 3);
            assert_string_equal(r.texts[2], "c");
            assert_string_equal(r.model, "m");
        } else {
            assert_true(err.kind == API_ERR_OUT_OF_MEMORY || err.kind == API_ERR_INVALID_JSON);
        }
        api_request_deinit(&r);
        alloc_budget = n;
        rc = api_request_parse(&r, API_REQ_KSERVE_INFER, kbody, sizeof kbody - 1, &limits, &err);
        alloc_budget = -1;
        assert_true(rc == 0 || err.kind == API_ERR_OUT_OF_MEMORY || err.kind == API_ERR_INVALID_JSON);
        size_t len;
        char *b = NULL;
        if (rc == 0) {
            alloc_budget = n;
            b = api_kserve_infer_body(&r, &c, NULL, probs, 2, &len);
            alloc_budget = -1;
            if (b) {
                ok++;
                assert_non_null(strstr(b, "\"probabilities\""));
                assert_non_null(strstr(b, "\"id\":\"x\""));
            }
        }
        alloc_budget = -1;
        free(b);
        api_request_deinit(&r);
        alloc_budget = n;
        api_model_info_t m = {&c, 1, 0.5, 0.5, "00112233aabbccdd"};
        b = api_models_body(&m, 1, &len);
        alloc_budget = -1;
        if (b) { /* complete, or nothing */
            json_t *j = json_loads(b, 0, NULL);
            assert_int_equal(json_array_size(json_object_get(j, "models")), 1);
            assert_string_equal(json_string_value(json_object_get(j, "default")), "m");
            assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "models"), 0), "languages")), 2);
            assert_string_equal(json_string_value(json_object_get(json_object_get(j, "language_defaults"), "fr")), "m");
            json_decref(j);
        }
        free(b);
        api_error_t e = {API_ERR_TIMEOUT, "late"};
        alloc_budget = n;
        b = api_error_body(&e, &len);
        alloc_budget = -1;
        if (b) assert_string_equal(b, "{\"error\":{\"code\":\"timeout\",\"message\":\"late\"}}");
        free(b);
    }
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(ok, 3);
}

/* ------------------------------------------------------------------------------------------ */
/* OpenAPI and model cards */

static void test_api_openapi(void **state) {
    (void)state;
    json_error_t e;
    json_t *j = json_loads(api_openapi_json, 0, &e);
    if (!j) fail_msg("api/openapi.json: %s (line %d)", e.text, e.line);
    json_t *paths = json_object_get(j, "paths");
    static const char *const want[] = {"/v1/sentiment", "/v1/models", "/healthz", "/readyz", "/metrics",
                                       "/openapi.json", "/v2", "/v2/health/live", "/v2/health/ready",
                                       "/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) assert_non_null(json_object_get(paths, want[i]));
    /* Every error code of the table is documented. */
    json_t *codes = NULL;
    assert_int_equal(json_unpack(j, "{s:{s:{s:{s:{s:{s:{s:{s:o}}}}}}}}", "components", "schemas", "Error", "properties",
                                 "error", "properties", "code", "enum", &codes),
                     0);
    for (int k = 1; k < API_ERR__COUNT; k++) {
        int found = 0;
        for (size_t i = 0; i < json_array_size(codes); i++)
            found |= !strcmp(json_string_value(json_array_get(codes, i)), api_err_code((api_err_t)k));
        if (!found) fail_msg("code %s is not in openapi.json", api_err_code((api_err_t)k));
    }
    json_decref(j);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_api_model_card(void **state) {
    (void)state;
    char dir[] = "/tmp/test_api_cardXXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/README.md", dir);
    double acc, f1;
    static const struct {
        const char *text;
        double acc, f1;
    } cards[] = {
        {"# m\n\n| split | accuracy | macro-F1 |\n|---|---|---|\n| train | 0.95 | 0.94 |\n| dev | 0.874 | 0.871 |\n", 0.874,
         0.871},
        {"Dev accuracy: 87.4%\nMacro-F1 (dev): 0.86\n", 0.874, 0.86},
        {"goal 85% accuracy\n- accuracy on dev: 0.91\n", 0.91, NAN},
        {"no numbers here\n", NAN, NAN},
    };
    for (size_t i = 0; i < sizeof cards / sizeof *cards; i++) {
        write_file(path, cards[i].text);
        api_model_card_read(dir, &acc, &f1);
        if (isnan(cards[i].acc) ? !isnan(acc) : fabs(acc - cards[i].acc) > 1e-9) fail_msg("card %zu: accuracy %g", i, acc);
        if (isnan(cards[i].f1) ? !isnan(f1) : fabs(f1 - cards[i].f1) > 1e-9) fail_msg("card %zu: macro-F1 %g", i, f1);
    }
    /* config.json metrics win over the card. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"metrics\": {\"accuracy\": 0.5, \"macro_f1\": 0.25}}");
    api_model_card_read(dir, &acc, &f1);
    assert_true(acc == 0.5 && f1 == 0.25);
    unlink(path);
    snprintf(path, sizeof path, "%s/README.md", dir);
    unlink(path);
    api_model_card_read(dir, &acc, &f1); /* nothing there */
    assert_true(isnan(acc) && isnan(f1));
    rmdir(dir);
}


/* ------------------------------------------------------------------------------------------ */
/* The fast writer against jansson, its reference */

/* jansson's text for the real v. */
static void jansson_real(double v, char *out, size_t cap) {
    json_t *j = json_real(v);
    char *s = json_dumps(j, API_DUMP_FLAGS | JSON_ENCODE_ANY);
    snprintf(out, cap, "%s", s ? s : "(null)");
    free(s);
    json_decref(j);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void check_real(double v) {
    char want[64], got[64];
    jansson_real(v, want, sizeof want);
    int n = api__fmt_real(got, v);
    if (n < 0 || (size_t)n != strlen(got) || strcmp(got, want) != 0)
        fail_msg("%.17g: got '%s' (%d), jansson '%s'", v, n < 0 ? "" : got, n, want);
}

static void test_api_fmt_real(void **state) {
    (void)state;
    static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1e-9, 9.99999999e-10, 1e9, 999999999.0,
                                   9999999.5, 1234567.5, 1234568.5, 0.00001, 0.0001, 0.000123456789, 1e-5, 1e7,
                                   12345678.0, 123456789.0, 3.4028234663852886e38, 1.1754943508222875e-38, 1e-45,
                                   5e-324, 0.9999999, 0.99999995, 0.999999949, 1e300, 2.5, 100.0, 1e6, 999999.95};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) check_real(fixed[i]);
    char tmp[40];
    assert_int_equal(api__fmt_real(tmp, NAN), -1);
    assert_int_equal(api__fmt_real(tmp, INFINITY), -1);
    /* Every float near each power of ten, where the exponent and the rounding change. */
    for (int k = -12; k <= 12; k++) {
        float x = (float)pow(10.0, k);
        for (int i = 0; i < 64; i++) {
            check_real((double)x);
            check_real(-(double)x);
            x = nextafterf(x, 0.0f);
        }
        x = (float)pow(10.0, k);
        for (int i = 0; i < 64; i++, x = nextafterf(x, INFINITY)) check_real((double)x);
    }
    /* Random floats (what the engine produces), over the whole range, and in [0, 1]. */
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = (uint32_t)rng();
        float f;
        memcpy(&f, &bits, sizeof f);
        if (isfinite(f)) check_real((double)f);
        check_real((double)((float)(rng() >> 40) / (float)(1u << 24)));
    }
    /* Random doubles too. */
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d)) check_real(d);
    }
}

static void test_api_write_string(void **state) {
    (void)state;
    static const char alphabet[][5] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\r", "\b", "\f", "\x01", "\x1f",
                                       "\x7f", "\xc3\xa9", "\xe5\xa5\xbd", "\xf0\x9f\x98\x80", "'"};
    for (int i = 0; i < 20000; i++) {
        char s[64] = "";
        size_t n = 0, len = 1 + rng() % 12;
        for (size_t k = 0; k < len; k++) {
            const char *a = alphabet[rng() % (sizeof alphabet / sizeof *alphabet)];
            memcpy(s + n, a, strlen(a));
            n += strlen(a);
        }
        s[n] = 0;
        json_t *j = json_string(s);
        char *want = json_dumps(j, API_DUMP_FLAGS | JSON_ENCODE_ANY);
        api__buf_t b = {NULL, 0, 0, 0};
        api__buf_string(&b, s, n);
        assert_false(b.failed);
        assert_string_equal(b.buf, want);
        free(want);
        free(b.buf);
        json_decref(j);
    }
    /* Invalid UTF-8 is declined, as jansson declines it. */
    static const char *const bad[] = {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe5\xa5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        api__buf_t b = {NULL, 0, 0, 0};
        api__buf_string(&b, bad[i], strlen(bad[i]));
        assert_true(b.failed);
        assert_null(json_string(bad[i]));
        free(b.buf);
    }
}

/* A number written for v (a float) parses back to v within the 7 significant digits. */
static void check_num(const json_t *j, float v, const char *what) {
    if (!json_is_number(j)) fail_msg("%s: not a number", what);
    double x = json_number_value(j), d = fabs(x - (double)v), tol = 5e-7 * fabs((double)v) + 1e-45;
    if (d > tol) fail_msg("%s: %.9g written for %.9g", what, x, (double)v);
}

static void check_nums(const json_t *a, const float *v, size_t n, const char *what) {
    if (!json_is_array(a) || json_array_size(a) != n) fail_msg("%s: not an array of %zu", what, n);
    for (size_t i = 0; i < n; i++) check_num(json_array_get(a, i), v[i], what);
}

/* The object written for r holds r's values, key for key, in the documented order; unknown: how
 * many of r's token ids are TOK_ID_UNK. */
static void check_result(const json_t *o, const api_result_t *r, size_t unknown) {
    const gru_config_t *c = r->cfg;
    const tok_seq_t *s = r->tokens;
    const size_t T = s->n, H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
    int best = 0;
    for (int k = 1; k < c->num_labels; k++)
        if (r->probs[k] > r->probs[best]) best = k;
    const char *order[13];
    size_t nk = 0;
    order[nk++] = "model";
    if (r->model_version) order[nk++] = "model_version";
    order[nk++] = "label", order[nk++] = "score", order[nk++] = "probabilities";
    order[nk++] = "tokens", order[nk++] = "token_ids", order[nk++] = "unknown_tokens", order[nk++] = "truncated";
    if (s->truncated) order[nk++] = "num_tokens_total";
    if (r->offsets) order[nk++] = "offsets";
    if (r->gates_mode != GRU_GATES_NONE && r->gates) order[nk++] = "gates";
    if (r->trajectory) order[nk++] = "trajectory";
    assert_int_equal(json_object_size(o), nk);
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) assert_string_equal(key, order[i++]);
    assert_string_equal(json_string_value(json_object_get(o, "model")), c->name);
    if (r->model_version)
        assert_string_equal(json_string_value(json_object_get(o, "model_version")), r->model_version);
    assert_string_equal(json_string_value(json_object_get(o, "label")), c->labels[best]);
    check_num(json_object_get(o, "score"), r->probs[best], "score");
    const json_t *p = json_object_get(o, "probabilities");
    assert_int_equal(json_object_size(p), c->num_labels);
    for (int k = 0; k < c->num_labels; k++) check_num(json_object_get(p, c->labels[k]), r->probs[k], "probability");
    const json_t *toks = json_object_get(o, "tokens"), *ids = json_object_get(o, "token_ids");
    assert_int_equal(json_array_size(toks), T);
    assert_int_equal(json_array_size(ids), T);
    for (size_t t = 0; t < T; t++) {
        assert_string_equal(json_string_value(json_array_get(toks, t)), tok_seq_token(s, t));
        assert_int_equal(json_integer_value(json_array_get(ids, t)), s->ids[t]);
    }
    assert_int_equal(json_integer_value(json_object_get(o, "unknown_tokens")), unknown);
    assert_int_equal(json_is_true(json_object_get(o, "truncated")), s->truncated);
    if (s->truncated) assert_int_equal(json_integer_value(json_object_get(o, "num_tokens_total")), s->n_total);
    const json_t *offs = json_object_get(o, "offsets");
    if (offs) {
        assert_int_equal(json_array_size(offs), T);
        for (size_t t = 0; t < T; t++)
            for (size_t k = 0; k < 2; k++)
                assert_int_equal(json_integer_value(json_array_get(json_array_get(offs, t), k)), s->offsets[2 * t + k]);
    }
    const json_t *g = json_object_get(o, "gates");
    if (g) {
        const int full = r->gates_mode == GRU_GATES_FULL;
        static const char *const keys[4] = {"reset", "update", "candidate", "hidden"};
        assert_int_equal(json_array_size(g), (size_t)c->num_layers * D);
        for (size_t ld = 0; ld < (size_t)c->num_layers * D; ld++) {
            const json_t *e = json_array_get(g, ld);
            assert_int_equal(json_integer_value(json_object_get(e, "layer")), ld / D);
            assert_string_equal(json_string_value(json_object_get(e, "direction")), ld % D ? "backward" : "forward");
            assert_int_equal(json_object_size(e), 2 + (full ? 4u : 2u));
            for (size_t k = 0; k < (full ? 4u : 2u); k++) {
                const json_t *a = json_object_get(e, keys[k]);
                if (!full) {
                    check_nums(a, r->gates + (ld * 2 + k) * T, T, keys[k]);
                } else {
                    assert_int_equal(json_array_size(a), T);
                    for (size_t t = 0; t < T; t++)
                        check_nums(json_array_get(a, t), r->gates + ((ld * 4 + k) * T + t) * H, H, keys[k]);
                }
            }
        }
    }
    const json_t *tr = json_object_get(o, "trajectory");
    if (tr) {
        assert_int_equal(json_array_size(tr), T);
        for (size_t t = 0; t < T; t++)
            check_nums(json_array_get(tr, t), r->trajectory + t * (size_t)c->num_labels, (size_t)c->num_labels,
                       "trajectory");
    }
}

/* Random results of every shape: the one writer's object holds the values given, and it is in
 * jansson's own format (loading and dumping it again gives the same bytes). */
static void test_api_write_result(void **state) {
    (void)state;
    static const char *const texts[] = {"It's NOT good!!", "the food was cold , but the staff were \"lovely\"",
                                        "caf\xc3\xa9 \xe5\xa5\xbd\xe5\x90\x83 \xf0\x9f\x98\x80 ok", "a\\b / c",
                                        "x", "one two three four five six seven eight nine ten eleven"};
    float buf[4 * 2 * 2 * 64 * 8 + 64], probs[GRU_MAX_LABELS], traj[64 * 3];
    for (int iter = 0; iter < 3000; iter++) {
        gru_config_t c = test_config();
        c.num_layers = 1 + (int)(rng() % 2);
        c.bidirectional = (int)(rng() % 2);
        c.hidden_size = 1 + (int)(rng() % 8);
        c.num_labels = 2 + (int)(rng() % 2);
        if (rng() % 3 == 0) snprintf(c.labels[1], sizeof c.labels[1], "n\xc3\xa9u\"tral");
        tok_config_t tc = {TOK_KIND_WORD, (int)(rng() % 2), 1 + rng() % 12};
        tok_seq_t seq;
        tok_seq_init(&seq);
        const char *t = texts[rng() % (sizeof texts / sizeof *texts)];
        assert_int_equal(tok_encode(&tc, NULL, t, strlen(t), &seq), 0);
        size_t unknown = 0;
        for (size_t i = 0; i < seq.n; i++) {
            seq.ids[i] = rng() % 4 ? (int32_t)(rng() % 100000) : TOK_ID_UNK;
            unknown += seq.ids[i] == TOK_ID_UNK;
        }
        gru_gates_mode_t mode = (gru_gates_mode_t)(rng() % 3);
        size_t ng = gru_gates_floats(&c, mode, seq.n);
        assert_true(ng <= sizeof buf / sizeof *buf);
        for (size_t i = 0; i < ng; i++) buf[i] = (float)((double)(rng() >> 11) / 9007199254740992.0) * (rng() % 2 ? 1 : -1);
        float sum = 0;
        for (int k = 0; k < c.num_labels; k++) sum += probs[k] = (float)(rng() % 1000000) / 1e6f + 1e-7f;
        for (int k = 0; k < c.num_labels; k++) probs[k] /= sum;
        for (size_t i = 0; i < seq.n * (size_t)c.num_labels; i++) traj[i] = (float)(rng() % 1000) / 1000.0f;
        const float *tr = rng() % 2 ? traj : NULL;
        int offsets = (int)(rng() % 2);
        api_result_t r = {&c, &seq, probs, mode, mode ? buf : NULL, tr, offsets, rng() % 2 ? "00112233aabbccdd" : NULL};
        size_t n;
        char *got = api_sentiment_body(&r, 1, 1, &n);
        assert_non_null(got);
        assert_int_equal(n, strlen(got));
        json_error_t je;
        json_t *doc = json_loads(got, 0, &je);
        if (!doc) fail_msg("not JSON: %s: %s", je.text, got);
        check_result(doc, &r, unknown);
        char *again = json_dumps(doc, API_DUMP_FLAGS);
        assert_string_equal(again, got);
        free(again);
        json_decref(doc);
        /* The batch form: {"model", "results": [...]} holds the same bytes per result. */
        api_result_t two[2] = {r, r};
        size_t n2;
        char *both = api_sentiment_body(two, 2, 0, &n2);
        assert_non_null(both);
        json_t *name = json_string(c.name);
        char *qname = json_dumps(name, JSON_ENCODE_ANY);
        size_t cap = 2 * n + strlen(qname) + 64;
        char *want = malloc(cap);
        assert_non_null(want);
        snprintf(want, cap, "{\"model\":%s%s%s%s,\"results\":[%s,%s]}", qname,
                 r.model_version ? ",\"model_version\":\"" : "", r.model_version ? r.model_version : "",
                 r.model_version ? "\"" : "", got, got);
        assert_string_equal(both, want);
        assert_int_equal(n2, strlen(want));
        /* Results of two models (texts routed by language): the batch's model is "auto", and
         * each result keeps its own. */
        gru_config_t c2 = c;
        snprintf(c2.name, sizeof c2.name, "other");
        two[1].cfg = &c2;
        char *mixed = api_sentiment_body(two, 2, 0, &n2);
        assert_non_null(mixed);
        doc = json_loads(mixed, 0, NULL);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "model")), "auto");
        assert_null(json_object_get(doc, "model_version")); /* several models: each result has its own */
        const json_t *res = json_object_get(doc, "results");
        assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "model")), c.name);
        assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "model")), "other");
        json_decref(doc);
        free(mixed);
        free(want);
        free(qname);
        json_decref(name);
        free(both);
        free(got);
        tok_seq_deinit(&seq);
    }
    /* What jansson refuses, the writer refuses: a non-finite number. */
    gru_config_t c = test_config();
    tok_seq_t seq;
    tok_seq_init(&seq);
    tok_config_t tc = {TOK_KIND_WORD, 0, 8};
    assert_int_equal(tok_encode(&tc, NULL, "a b", 3, &seq), 0);
    float bad[GRU_MAX_LABELS] = {NAN, 0.5f};
    api_result_t r = {&c, &seq, bad, GRU_GATES_NONE, NULL, NULL, 0, NULL};
    size_t n;
    assert_null(api_sentiment_body(&r, 1, 1, &n));
    tok_seq_deinit(&seq);
}

int main(void) {
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_sentiment_single), cmocka_unit_test(test_api_sentiment_batch),
        cmocka_unit_test(test_api_sentiment_errors), cmocka_unit_test(test_api_deep_nesting),
        cmocka_unit_test(test_api_kserve),           cmocka_unit_test(test_api_kserve_errors),
        cmocka_unit_test(test_api_error_table),      cmocka_unit_test(test_api_error_body),
        cmocka_unit_test(test_api_kserve_body),      cmocka_unit_test(test_api_models_body),
        cmocka_unit_test(test_api_alloc_failures),   cmocka_unit_test(test_api_openapi),
        cmocka_unit_test(test_api_model_card),       cmocka_unit_test(test_api_fmt_real),
        cmocka_unit_test(test_api_write_string),     cmocka_unit_test(test_api_write_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
