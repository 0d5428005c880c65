/* test_api_explain.c - POST /v1/explain and /v1/tokenize in api/: parsing (target, the three
 * edit forms, their errors), and the bodies (attributions, ranking, edits, offsets, unknown).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

static const api_limits_t limits = {8};

static api_err_t parse(api_request_t *r, api_request_kind_t kind, const char *body) {
    api_error_t err = {API_ERR_NONE, ""};
    int rc = api_request_parse(r, kind, body, strlen(body), &limits, &err);
    if (rc == 0) return API_ERR_NONE;
    assert_true(err.kind != API_ERR_NONE && err.message[0]);
    return err.kind;
}

static void test_api_explain_parse(void **state) {
    (void)state;
    api_request_t r;
    api_request_init(&r);
    const char *body = "{\"text\": \"not good\", \"target\": \"negative\", \"edits\": [{\"remove\": [3, 1]},"
                       " {\"replace\": {\"2\": \"great\", \"0\": \"\"}}, {\"remove_span\": [4, 6]}]}";
    assert_int_equal(parse(&r, API_REQ_EXPLAIN, body), API_ERR_NONE);
    assert_string_equal(r.target, "negative");
    assert_int_equal(r.truncate, 0); /* explain: off unless asked */
    assert_int_equal(r.offsets, 1);
    assert_int_equal(r.n_edits, 3);
    assert_int_equal(r.edits[0].kind, API_EDIT_REMOVE);
    assert_int_equal(r.edits[0].n_subs, 2);
    assert_int_equal(r.edits[0].subs[0].index, 1); /* sorted */
    assert_int_equal(r.edits[0].subs[1].index, 3);
    assert_null(r.edits[0].subs[0].text);
    assert_int_equal(r.edits[1].kind, API_EDIT_REPLACE);
    assert_int_equal(r.edits[1].subs[0].index, 0);
    assert_int_equal(r.edits[1].subs[0].text_len, 0);
    assert_int_equal(r.edits[1].subs[1].index, 2);
    assert_string_equal(r.edits[1].subs[1].text, "great");
    assert_int_equal(r.edits[2].kind, API_EDIT_REMOVE_SPAN);
    assert_int_equal(r.edits[2].n_subs, 3);
    assert_int_equal(r.edits[2].subs[2].index, 6);
    api_request_deinit(&r);

    /* Sentiment takes "offsets" but not explain's keys; tokenize takes neither. */
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, "{\"text\": \"a\", \"offsets\": true}"), API_ERR_NONE);
    assert_int_equal(r.offsets, 1);
    api_request_deinit(&r);
    assert_int_equal(parse(&r, API_REQ_SENTIMENT, "{\"text\": \"a\", \"target\": \"x\"}"), API_ERR_INVALID_REQUEST);
    assert_int_equal(parse(&r, API_REQ_TOKENIZE, "{\"texts\": [\"a\", \"b\"], \"model\": \"m\"}"), API_ERR_NONE);
    assert_int_equal(r.n_texts, 2);
    api_request_deinit(&r);
    assert_int_equal(parse(&r, API_REQ_TOKENIZE, "{\"text\": \"a\", \"gates\": \"full\"}"), API_ERR_INVALID_REQUEST);
}

static void test_api_explain_parse_errors(void **state) {
    (void)state;
    static const struct {
        const char *body;
        api_err_t want;
    } cases[] = {
        {"{\"text\": \"a\", \"target\": 3}", API_ERR_INVALID_TYPE},
        {"{\"text\": \"a\", \"edits\": {}}", API_ERR_INVALID_TYPE},
        {"{\"texts\": [\"a\"], \"edits\": [{\"remove\": [0]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove\": []}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove\": [-1]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove\": [1.5]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove\": [2, 2]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove\": [1], \"replace\": {\"1\": \"x\"}}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"replace\": {\"x\": \"y\"}}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"replace\": {\"1\": 2}}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"replace\": {}}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove_span\": [3, 1]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove_span\": [0]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"remove_span\": [0, 99999999999]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [{\"insert\": [0]}]}", API_ERR_INVALID_REQUEST},
        {"{\"text\": \"a\", \"edits\": [7]}", API_ERR_INVALID_REQUEST},
    };
    api_request_t r;
    api_request_init(&r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_err_t got = parse(&r, API_REQ_EXPLAIN, cases[i].body);
        if (got != cases[i].want) fail_msg("%s: got %s, want %s", cases[i].body, api_err_code(got), api_err_code(cases[i].want));
    }
    /* Too many edits. */
    char body[4096] = "{\"text\": \"a\", \"edits\": [";
    for (int i = 0; i <= API_MAX_EDITS; i++) strcat(body, i ? ", {\"remove\": [0]}" : "{\"remove\": [0]}");
    strcat(body, "]}");
    assert_int_equal(parse(&r, API_REQ_EXPLAIN, body), API_ERR_INVALID_REQUEST);
    api_request_deinit(&r);
}

static gru_config_t config(void) {
    gru_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "m");
    c.hidden_size = 4;
    c.num_layers = 1;
    c.num_labels = 2;
    snprintf(c.labels[0], sizeof c.labels[0], "negative");
    snprintf(c.labels[1], sizeof c.labels[1], "positive");
    return c;
}

/* The word tokens of text, at most max of them, into seq (initialized here). */
static void encode(tok_seq_t *seq, const char *text, size_t max) {
    tok_config_t tc = {TOK_KIND_WORD, 1, max};
    tok_seq_init(seq);
    assert_int_equal(tok_encode(&tc, NULL, text, strlen(text), seq), 0);
}

static void test_api_explain_body(void **state) {
    (void)state;
    gru_config_t c = config();
    tok_seq_t seq;
    encode(&seq, "so LOVELY !", 16);
    assert_int_equal(seq.n, 3);
    const float probs[2] = {0.43f, 0.57f};
    const float without[6] = {0.40f, 0.60f, 0.79f, 0.21f, 0.47f, 0.53f}; /* deltas -0.03, 0.36, 0.04 */
    const float t0[4] = {0.5f, 0.5f, 0.4f, 0.6f}, t1[4] = {0.5f, 0.5f, 0.8f, 0.2f}, t2[4] = {0.5f, 0.5f, 0.3f, 0.7f};
    const float *tw[3] = {t0, t1, t2};
    api_edit_sub_t subs[1] = {{1, "awful", 5}};
    api_edit_t edit = {API_EDIT_REPLACE, subs, 1};
    const float eprobs[2] = {0.9f, 0.1f};
    const size_t elens[1] = {3};
    api_explain_result_t x = {{&c, &seq, probs, GRU_GATES_NONE, NULL, NULL, 1, NULL}, 1, without, tw, &edit, 1, eprobs,
                              NULL, elens};
    size_t len;
    char *body = api_explain_body(&x, 1, 1, &len);
    assert_non_null(body);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "label")), "positive");
    assert_string_equal(json_string_value(json_object_get(j, "target")), "positive");
    json_t *attr = json_object_get(j, "attributions");
    assert_int_equal(json_array_size(attr), 3);
    json_t *a1 = json_array_get(attr, 1);
    assert_string_equal(json_string_value(json_object_get(a1, "token")), "lovely");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(a1, "offsets"), 0)), 3);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(a1, "offsets"), 1)), 9);
    assert_true(fabs(json_real_value(json_object_get(a1, "p_without")) - 0.21) < 1e-6);
    assert_true(fabs(json_real_value(json_object_get(a1, "delta")) - 0.36) < 1e-6);
    assert_string_equal(json_string_value(json_object_get(a1, "label_without")), "negative");
    assert_int_equal(json_array_size(json_object_get(a1, "trajectory_without")), 2);
    json_t *rank = json_object_get(j, "ranking");
    assert_int_equal(json_integer_value(json_array_get(rank, 0)), 1);
    assert_int_equal(json_integer_value(json_array_get(rank, 1)), 2);
    assert_int_equal(json_integer_value(json_array_get(rank, 2)), 0);
    json_t *e = json_array_get(json_object_get(j, "edits"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(e, "edit"), "replace"), "1")),
                        "awful");
    assert_string_equal(json_string_value(json_object_get(e, "label")), "negative");
    assert_int_equal(json_integer_value(json_object_get(e, "num_tokens")), 3);
    assert_null(json_object_get(e, "trajectory"));
    assert_int_equal(json_array_size(json_object_get(j, "offsets")), 3);
    json_decref(j);
    free(body);

    /* Several texts: {"model", "results"}. */
    api_explain_result_t two[2] = {x, x};
    body = api_explain_body(two, 2, 0, &len);
    j = json_loads(body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "results")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m");
    json_decref(j);
    free(body);
    tok_seq_deinit(&seq);
}

static void test_api_tokenize_body(void **state) {
    (void)state;
    gru_config_t c = config();
    tok_seq_t seq;
    encode(&seq, "Don't go", 2);
    seq.ids[0] = 5; /* the second stays <unk> */
    size_t len;
    const gru_config_t *cfgs[1] = {&c};
    char *body = api_tokenize_body(cfgs, &seq, 1, 1, &len);
    assert_non_null(body);
    assert_string_equal(body, "{\"model\":\"m\",\"tokens\":[\"do\",\"n't\"],\"token_ids\":[5,1],\"offsets\":[[0,2],[2,5]],"
                              "\"unknown\":[false,true],\"truncated\":true,\"num_tokens_total\":3}");
    assert_int_equal(len, strlen(body));
    free(body);
    tok_seq_deinit(&seq);
}

int main(void) {
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_explain_parse),
        cmocka_unit_test(test_api_explain_parse_errors),
        cmocka_unit_test(test_api_explain_body),
        cmocka_unit_test(test_api_tokenize_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
