/* api_stream.c - the POST /v1/sentiment body in pieces, one result each (see api_stream.h).
 *
 * Piece i is: the batch prefix ({"model":...,"results":[) before result 0, "," before the
 * others, the result object, and the suffix (]}) after the last. Each result object comes
 * from the fast writer (api__write_result); when it declines, from jansson, exactly as
 * api_sentiment_body falls back, so the concatenation is the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "api_stream.h"

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

/* Appends r's result object to b by jansson (the fallback). Returns 0 or a negative errno. */
static int put_result_jansson(api__buf_t *b, const api_result_t *r) {
    json_t *j = api_result_to_json(r);
    if (!j) return -EINVAL; /* also a NaN: jansson has no value for it */
    char *s = json_dumps(j, API_DUMP_FLAGS);
    json_decref(j);
    if (!s) return -ENOMEM;
    api__buf_put(b, s, strlen(s));
    free(s);
    return b->failed ? -ENOMEM : 0;
}

int api_sentiment_stream_next(api_sentiment_stream_t *st, const char **piece, size_t *len) {
    if (st->next > st->n) return -EINVAL; /* failed before */
    if (st->next == st->n) return 0;
    const api_result_t *r = &st->results[st->next];
    api__buf_t b = {st->buf, 0, st->cap, 0};
    if (st->next == 0 && !st->single) {
        api__buf_put(&b, "{\"model\":", 9);
        api__buf_string(&b, r->cfg->name, strlen(r->cfg->name));
        api__buf_put(&b, ",\"results\":[", 12);
    } else if (st->next > 0) {
        api__buf_put(&b, ",", 1);
    }
    size_t mark = b.len;
    int rc = b.failed ? -ENOMEM : 0;
    if (rc == 0) {
        api__write_result(&b, r);
        if (b.failed) { /* declined (or out of memory): jansson writes the same object */
            b.failed = 0;
            b.len = mark;
            rc = put_result_jansson(&b, r);
        }
    }
    if (rc == 0 && !st->single && st->next + 1 == st->n) api__buf_put(&b, "]}", 2);
    if (rc == 0 && b.failed) rc = -ENOMEM;
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
    size_t b = 256 + 2 * string_bound(strlen(c->name)); /* keys, flags, the batch prefix/suffix */
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
    return b;
}
