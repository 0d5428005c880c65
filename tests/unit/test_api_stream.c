/* test_api_stream.c - the sentiment body in pieces (api/api_stream.c): the pieces concatenated
 * are api_sentiment_body()'s bytes for random results of every shape, no piece is longer than
 * api_result_json_bound(), and a result that cannot be written fails the stream for good. */
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

#include "api.h"

static uint64_t seed = 0x2545F4914F6CDD1Dull;
static uint64_t next_rand(void) { /* xorshift64 */
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* A random result with its storage. */
typedef struct {
    tok_seq_t seq;
    float probs[GRU_MAX_LABELS];
    float *gates, *traj;
    api_result_t r;
} rand_result_t;

static void rand_config(gru_config_t *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, next_rand() % 2 ? "sst2-en" : "m\"\xc3\xa9");
    c->hidden_size = 1 + (int)(next_rand() % 6);
    c->num_layers = 1 + (int)(next_rand() % 2);
    c->bidirectional = (int)(next_rand() % 2);
    c->num_labels = 2 + (int)(next_rand() % 2);
    for (int k = 0; k < c->num_labels; k++) snprintf(c->labels[k], sizeof c->labels[k], "l%d\xc3\xa9", k);
}

/* A random result of a model with config c (borrowed). */
static void rand_result(rand_result_t *x, const gru_config_t *c) {
    static const char *const texts[] = {"a", "the food was cold , but \"lovely\"", "\x01\x1f tab\there \\ /",
                                        "caf\xc3\xa9 \xe5\xa5\xbd \xf0\x9f\x98\x80", "one two three four five six"};
    tok_config_t tc = {TOK_KIND_WORD, 0, 1 + next_rand() % 10};
    tok_seq_init(&x->seq);
    const char *t = texts[next_rand() % (sizeof texts / sizeof *texts)];
    assert_int_equal(tok_encode(&tc, NULL, t, strlen(t), &x->seq), 0);
    for (size_t i = 0; i < x->seq.n; i++) x->seq.ids[i] = (int32_t)(next_rand() % 2000000000);
    gru_gates_mode_t mode = (gru_gates_mode_t)(next_rand() % 3);
    size_t ng = gru_gates_floats(c, mode, x->seq.n), nt = x->seq.n * (size_t)c->num_labels;
    x->gates = mode ? malloc((ng + 1) * sizeof(float)) : NULL;
    x->traj = next_rand() % 2 ? malloc((nt + 1) * sizeof(float)) : NULL;
    /* The longest numbers: negative, tiny, with 7 digits. */
    for (size_t i = 0; x->gates && i < ng; i++) x->gates[i] = -1.2345678e-38f * (float)(1 + next_rand() % 9);
    for (size_t i = 0; x->traj && i < nt; i++) x->traj[i] = (float)(next_rand() % 1000) / 997.0f;
    for (int k = 0; k < c->num_labels; k++) x->probs[k] = (float)(next_rand() % 1000) / 1000.0f;
    int offsets = (int)(next_rand() % 2);
    x->r = (api_result_t){c, &x->seq, x->probs, mode, x->gates, x->traj, offsets,
                          next_rand() % 2 ? "0123456789abcdef" : NULL}; /* the bound counts a version too */
}

static void rand_result_free(rand_result_t *x) {
    free(x->gates);
    free(x->traj);
    tok_seq_deinit(&x->seq);
}

/* Concatenates the stream's pieces (new malloc'ed string); checks each against the bound. */
static char *concat(const api_result_t *rs, size_t n, int single, size_t *total, int *pieces) {
    api_sentiment_stream_t st;
    api_sentiment_stream_init(&st, rs, n, single);
    char *all = NULL;
    size_t len = 0;
    const char *p;
    size_t pl;
    int rc;
    *pieces = 0;
    while ((rc = api_sentiment_stream_next(&st, &p, &pl)) == 1) {
        size_t bound = api_result_json_bound(&rs[*pieces]);
        if (pl > bound) fail_msg("piece %d: %zu bytes, bound %zu", *pieces, pl, bound);
        all = realloc(all, len + pl + 1);
        memcpy(all + len, p, pl);
        len += pl;
        all[len] = 0;
        (*pieces)++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(api_sentiment_stream_next(&st, &p, &pl), 0); /* stays at the end */
    api_sentiment_stream_deinit(&st);
    *total = len;
    return all;
}

static void test_api_stream_equals_body(void **state) {
    (void)state;
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 1 + next_rand() % 5;
        gru_config_t c;
        rand_config(&c);
        rand_result_t x[5];
        api_result_t rs[5];
        for (size_t i = 0; i < n; i++) {
            rand_result(&x[i], &c);
            rs[i] = x[i].r;
        }
        for (int single = 0; single < 2; single++) {
            size_t want_len, got_len;
            int pieces;
            char *want = api_sentiment_body(rs, n, single, &want_len);
            char *got = concat(rs, n, single, &got_len, &pieces);
            assert_non_null(want);
            assert_int_equal(got_len, want_len);
            assert_string_equal(got, want);
            assert_int_equal(pieces, single ? 1 : (int)n);
            free(want);
            free(got);
        }
        for (size_t i = 0; i < n; i++) rand_result_free(&x[i]);
    }
}

/* A NaN probability: neither writer can write it; the stream fails at that piece and stays
 * failed (the server then aborts the answer it has begun). */
static void test_api_stream_unwritable(void **state) {
    (void)state;
    gru_config_t c;
    rand_config(&c);
    rand_result_t x[2];
    rand_result(&x[0], &c);
    rand_result(&x[1], &c);
    api_result_t rs[2] = {x[0].r, x[1].r};
    x[1].probs[0] = NAN;
    api_sentiment_stream_t st;
    api_sentiment_stream_init(&st, rs, 2, 0);
    const char *p;
    size_t pl;
    assert_int_equal(api_sentiment_stream_next(&st, &p, &pl), 1);
    assert_int_equal(api_sentiment_stream_next(&st, &p, &pl), -EINVAL);
    assert_int_equal(api_sentiment_stream_next(&st, &p, &pl), -EINVAL);
    api_sentiment_stream_deinit(&st);
    assert_null(api_sentiment_body(rs, 2, 0, &pl)); /* the whole body fails the same way */
    rand_result_free(&x[0]);
    rand_result_free(&x[1]);
}

int main(void) {
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_stream_equals_body),
        cmocka_unit_test(test_api_stream_unwritable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
