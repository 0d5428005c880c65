/* api_result.c - encodes an engine result as the JSON result object (see api.h). */
#include <stdint.h>

#include "api.h"

/* A JSON array of n floats (new reference), or NULL. */
static json_t *real_array(const float *v, size_t n, size_t stride) {
    json_t *a = json_array();
    if (!a) return NULL;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_real((double)v[i * stride])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Appends the gates entries of every layer and direction to arr. Returns 0 or -1. */
static int gates_to_json(json_t *arr, const api_result_t *r) {
    static const char *const summary_keys[2] = {"reset", "update"};
    static const char *const full_keys[4] = {"reset", "update", "candidate", "hidden"};
    const gru_config_t *c = r->cfg;
    const size_t T = r->tokens->n, H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
    const int full = r->gates_mode == GRU_GATES_FULL;
    const size_t K = full ? 4 : 2;
    for (size_t l = 0; l < (size_t)c->num_layers; l++)
        for (size_t d = 0; d < D; d++) {
            json_t *e = json_pack("{s:i, s:s}", "layer", (int)l, "direction", d ? "backward" : "forward");
            if (!e || json_array_append_new(arr, e) < 0) return -1;
            size_t ld = l * D + d;
            for (size_t k = 0; k < K; k++) {
                json_t *v;
                if (!full) {
                    v = real_array(r->gates + (ld * 2 + k) * T, T, 1);
                } else {
                    v = json_array();
                    for (size_t t = 0; v && t < T; t++) {
                        json_t *row = real_array(r->gates + ((ld * 4 + k) * T + t) * H, H, 1);
                        if (!row || json_array_append_new(v, row) < 0) {
                            json_decref(v);
                            v = NULL;
                        }
                    }
                }
                if (!v || json_object_set_new(e, full ? full_keys[k] : summary_keys[k], v) < 0) return -1;
            }
        }
    return 0;
}

json_t *api_result_to_json(const api_result_t *r) {
    const gru_config_t *c = r->cfg;
    const tok_seq_t *s = r->tokens;
    const int C = c->num_labels;
    int best = 0;
    for (int k = 1; k < C; k++)
        if (r->probs[k] > r->probs[best]) best = k;
    json_t *o = json_object(), *probs = json_object(), *tokens = json_array(), *ids = json_array();
    if (!o || !probs || !tokens || !ids) goto oom;
    for (int k = 0; k < C; k++)
        if (json_object_set_new(probs, c->labels[k], json_real((double)r->probs[k])) < 0) goto oom;
    for (size_t i = 0; i < s->n; i++)
        if (json_array_append_new(tokens, json_string(tok_seq_token(s, i))) < 0 ||
            json_array_append_new(ids, json_integer(s->ids[i])) < 0)
            goto oom;
    if (json_object_set_new(o, "model", json_string(c->name)) < 0 ||
        (r->model_version && r->model_version[0] &&
         json_object_set_new(o, "model_version", json_string(r->model_version)) < 0) ||
        json_object_set_new(o, "label", json_string(c->labels[best])) < 0 ||
        json_object_set_new(o, "score", json_real((double)r->probs[best])) < 0)
        goto oom;
    json_object_set_new(o, "probabilities", probs);
    probs = NULL;
    json_object_set_new(o, "tokens", tokens);
    tokens = NULL;
    json_object_set_new(o, "token_ids", ids);
    ids = NULL;
    if (json_object_set_new(o, "truncated", json_boolean(s->truncated)) < 0) goto oom;
    if (s->truncated && json_object_set_new(o, "num_tokens_total", json_integer((json_int_t)s->n_total)) < 0)
        goto oom;
    if (r->gates_mode != GRU_GATES_NONE && r->gates) {
        json_t *g = json_array();
        if (!g || json_object_set_new(o, "gates", g) < 0 || gates_to_json(g, r) < 0) goto oom;
    }
    if (r->trajectory) {
        json_t *tr = json_array();
        if (!tr || json_object_set_new(o, "trajectory", tr) < 0) goto oom;
        for (size_t t = 0; t < s->n; t++)
            if (json_array_append_new(tr, real_array(r->trajectory + t * (size_t)C, (size_t)C, 1)) < 0) goto oom;
    }
    return o;
oom:
    json_decref(o);
    json_decref(probs);
    json_decref(tokens);
    json_decref(ids);
    return NULL;
}

json_t *api_error_to_json(const char *code, const char *message) {
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
}
