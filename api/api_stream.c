/* api_stream.c - the POST /v1/sentiment body in pieces, one result each (see api.h).
 *
 * Piece i is: the batch prefix ({"model":...,"results":[) before result 0, "," before the
 * others, the result object (the one writer, api__write_result), and the suffix (]}) after the
 * last. api_sentiment_body is these pieces put together.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* The longest number api__fmt_real writes ("-1.234567e-45"), with a separator and room. */
#define REAL_MAX 16

void api_sentiment_stream_init(api_sentiment_stream_t *st, const api_result_t *results, size_t n, int single) {
    memset(st, 0, sizeof *st);
    st->results = results;
    st->n = single && n > 1 ? 1 : n;
    st->single = single;
}

void api_sentiment_stream_deinit(api_sentiment_stream_t *st) {
    free(st->buf);
    st->buf = NULL;
    st->len = st->cap = 0;
}

/* The top-level "model" of a batch: the name of the one model of every result, or "auto" when
 * the results come from several models (texts routed by language). Borrowed. */
static const char *batch_model(const api_result_t *results, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (strcmp(results[i].cfg->name, results[0].cfg->name) != 0) return "auto";
    return results[0].cfg->name;
}

int api_sentiment_stream_next(api_sentiment_stream_t *st, const char **piece, size_t *len) {
    if (st->next > st->n) return -EINVAL; /* failed before */
    if (st->next == st->n) return 0;
    const api_result_t *r = &st->results[st->next];
    api__buf_t b = {st->buf, 0, st->cap, 0};
    if (st->next == 0 && !st->single) {
        const char *model = batch_model(st->results, st->n);
        api__buf_put(&b, "{\"model\":", 9);
        api__buf_string(&b, model, strlen(model));
        const char *v = st->results[0].model_version; /* only when one model answered them all */
        if (v && v[0] && model == st->results[0].cfg->name) {
            api__buf_put(&b, ",\"model_version\":", sizeof ",\"model_version\":" - 1);
            api__buf_string(&b, v, strlen(v));
        }
        api__buf_put(&b, ",\"results\":[", 12);
    } else if (st->next > 0) {
        api__buf_put(&b, ",", 1);
    }
    api__write_result(&b, r);
    if (!st->single && st->next + 1 == st->n) api__buf_put(&b, "]}", 2);
    int rc = b.failed ? -EINVAL : 0; /* out of memory, or what JSON cannot hold (a NaN) */
    st->buf = b.buf;
    st->cap = b.cap;
    if (rc < 0) {
        st->next = st->n + 1;
        return rc;
    }
    st->len = b.len;
    st->next++;
    *piece = st->buf;
    *len = st->len;
    return 1;
}

/* Worst case of a JSON string of n bytes: every byte a \u00XX escape, and the quotes. */
static size_t string_bound(size_t n) { return 6 * n + 2; }

size_t api_result_json_bound(const api_result_t *r) {
    const gru_config_t *c = r->cfg;
    const tok_seq_t *s = r->tokens;
    const size_t T = s->n, C = (size_t)c->num_labels;
    /* keys, flags, counts, the batch prefix/suffix (its model may be "auto") */
    size_t b = 320 + 2 * string_bound(strlen(c->name));
    if (r->model_version) b += 2 * (20 + string_bound(strlen(r->model_version))); /* result and batch */
    size_t longest_label = 0;
    for (size_t k = 0; k < C; k++) {
        size_t l = strlen(c->labels[k]);
        if (l > longest_label) longest_label = l;
        b += string_bound(l) + 1 + REAL_MAX;
    }
    b += string_bound(longest_label) + REAL_MAX;  /* label, score */
    for (size_t i = 0; i < T; i++) b += string_bound(strlen(tok_seq_token(s, i))) + 1;
    b += T * 12 + 32;                            /* token ids, num_tokens_total */
    if (r->gates_mode != GRU_GATES_NONE && r->gates) {
        const size_t layers = (size_t)c->num_layers * (1 + (size_t)c->bidirectional);
        b += layers * (64 + 4 * (16 + 3 * (T + 1)));   /* per layer: keys and brackets */
        b += gru_gates_floats(c, r->gates_mode, T) * REAL_MAX;
    }
    if (r->trajectory) b += 32 + T * (3 + C * REAL_MAX);
    if (r->offsets) b += 16 + T * (4 + 2 * 20);  /* [[start,end],...] */
    return b;
}
