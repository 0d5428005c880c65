/* api_explain.c - the bodies of POST /v1/explain and POST /v1/tokenize (see api.h).
 *
 * Built with jansson: an explanation holds N^2 numbers at most for N bounded by the server's
 * explain limit, and these routes are not the hot path of the service.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* Dumps j (stolen) to new bytes; NULL if j is NULL or out of memory. */
static char *dump(json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, API_DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s && len) *len = strlen(s);
    return s;
}

/* {"model": name, "results": items} (items stolen), or the one item when single. name is NULL
 * when the items name different models: "auto". */
static char *wrap(const char *model, json_t *items, int single, size_t *len) {
    if (!items) return NULL;
    if (single) {
        json_t *one = json_incref(json_array_get(items, 0));
        json_decref(items);
        return dump(one, len);
    }
    return dump(json_pack("{s:s, s:o}", "model", model ? model : "auto", "results", items), len);
}

static json_t *reals(const float *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real((double)v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* (T, C) rows as [[...], ...] (new), or NULL. */
static json_t *trajectory(const float *tr, size_t T, size_t C) {
    json_t *a = json_array();
    for (size_t t = 0; a && t < T; t++)
        if (json_array_append_new(a, reals(tr + t * C, C)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int argmax(const float *p, int C) {
    int best = 0;
    for (int k = 1; k < C; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

/* {label: p, ...} (new), or NULL. */
static json_t *probabilities(const gru_config_t *c, const float *p) {
    json_t *o = json_object();
    for (int k = 0; o && k < c->num_labels; k++)
        if (json_object_set_new(o, c->labels[k], json_real((double)p[k])) < 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

/* The edit as the client wrote it (new), or NULL. */
static json_t *edit_json(const api_edit_t *e) {
    json_t *v;
    if (e->kind == API_EDIT_REMOVE_SPAN)
        return json_pack("{s:[I, I]}", "remove_span", (json_int_t)e->subs[0].index,
                         (json_int_t)e->subs[e->n_subs - 1].index);
    if (e->kind == API_EDIT_REMOVE) {
        v = json_array();
        for (size_t i = 0; v && i < e->n_subs; i++)
            if (json_array_append_new(v, json_integer((json_int_t)e->subs[i].index)) < 0) {
                json_decref(v);
                v = NULL;
            }
        return v ? json_pack("{s:o}", "remove", v) : NULL;
    }
    v = json_object();
    for (size_t i = 0; v && i < e->n_subs; i++) {
        char key[24];
        snprintf(key, sizeof key, "%zu", e->subs[i].index);
        if (json_object_set_new(v, key, json_stringn(e->subs[i].text, e->subs[i].text_len)) < 0) {
            json_decref(v);
            v = NULL;
        }
    }
    return v ? json_pack("{s:o}", "replace", v) : NULL;
}

/* order[0..n) = token indices sorted by |delta|, largest first, ties in text order (insertion
 * sort: n is bounded by the explain limit). */
static void rank_tokens(size_t *order, const float *delta, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && fabsf(delta[order[j - 1]]) < fabsf(delta[i])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* The /v1/sentiment result object of r as a document to extend (new), or NULL: from the one
 * writer of that object, so that both routes answer it in the same bytes. */
static json_t *result_json(const api_result_t *r) {
    size_t len;
    char *s = api_sentiment_body(r, 1, 1, &len);
    json_t *o = s ? json_loadb(s, len, 0, NULL) : NULL;
    free(s);
    return o;
}

/* [[start, end], ...]: each token's code point span in the text (new), or NULL. */
static json_t *offsets_json(const tok_seq_t *s) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->n; i++)
        if (json_array_append_new(a, json_pack("[I, I]", (json_int_t)s->offsets[2 * i], (json_int_t)s->offsets[2 * i + 1])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* One text's explanation object (new), or NULL. */
static json_t *explain_json(const api_explain_result_t *x) {
    const gru_config_t *c = x->base.cfg;
    const tok_seq_t *s = x->base.tokens;
    const size_t n = s->n, C = (size_t)c->num_labels, tg = (size_t)x->target;
    json_t *o = result_json(&x->base), *attr = json_array(), *rank = json_array(), *edits = NULL;
    float *delta = malloc((n + 1) * sizeof *delta);
    size_t *order = malloc((n + 1) * sizeof *order);
    if (!o || !attr || !rank || !delta || !order) goto oom;
    if (json_object_set_new(o, "target", json_string(c->labels[tg])) < 0) goto oom;
    for (size_t i = 0; i < n; i++) {
        const float *pw = x->p_without + i * C;
        delta[i] = x->base.probs[tg] - pw[tg];
        const char *tok = tok_seq_token(s, i);
        json_t *a = json_pack("{s:I, s:s, s:[I, I], s:f, s:f, s:s}", "index", (json_int_t)i, "token", tok, "offsets",
                              (json_int_t)s->offsets[2 * i], (json_int_t)s->offsets[2 * i + 1], "p_without",
                              (double)pw[tg], "delta", (double)delta[i], "label_without",
                              c->labels[argmax(pw, c->num_labels)]);
        if (!a || json_array_append_new(attr, a) < 0) goto oom;
        if (x->traj_without && json_object_set_new(a, "trajectory_without", trajectory(x->traj_without[i], n - 1, C)) < 0)
            goto oom;
    }
    rank_tokens(order, delta, n);
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(rank, json_integer((json_int_t)order[i])) < 0) goto oom;
    json_object_set_new(o, "attributions", attr);
    json_object_set_new(o, "ranking", rank);
    attr = rank = NULL;
    if (x->n_edits) {
        if (!(edits = json_array()) || json_object_set_new(o, "edits", edits) < 0) {
            edits = NULL;
            goto oom;
        }
        for (size_t e = 0; e < x->n_edits; e++) {
            const float *p = x->edit_probs + e * C;
            int best = argmax(p, c->num_labels);
            json_t *r = json_pack("{s:o, s:I, s:s, s:f, s:o}", "edit", edit_json(&x->edits[e]), "num_tokens",
                                  (json_int_t)x->edit_lens[e], "label", c->labels[best], "score", (double)p[best],
                                  "probabilities", probabilities(c, p));
            if (!r || json_array_append_new(edits, r) < 0) goto oom;
            if (x->edit_traj && json_object_set_new(r, "trajectory", trajectory(x->edit_traj[e], x->edit_lens[e], C)) < 0)
                goto oom;
        }
    }
    free(delta);
    free(order);
    return o;
oom:
    json_decref(o);
    json_decref(attr);
    json_decref(rank);
    free(delta);
    free(order);
    return NULL;
}

char *api_explain_body(const api_explain_result_t *results, size_t n, int single, size_t *len) {
    if (n == 0) return NULL;
    json_t *items = json_array();
    const char *model = results[0].base.cfg->name;
    for (size_t i = 0; items && i < n; i++) {
        if (model && strcmp(results[i].base.cfg->name, model)) model = NULL;
        if (json_array_append_new(items, explain_json(&results[i])) < 0) {
            json_decref(items);
            items = NULL;
        }
    }
    return wrap(model, items, single, len);
}

char *api_tokenize_body(const gru_config_t *const *cfgs, const tok_seq_t *seqs, size_t n, int single, size_t *len) {
    if (n == 0) return NULL;
    json_t *items = json_array();
    const char *model = cfgs[0]->name;
    for (size_t i = 0; items && i < n; i++) {
        const gru_config_t *cfg = cfgs[i];
        const tok_seq_t *s = &seqs[i];
        if (model && strcmp(cfg->name, model)) model = NULL;
        json_t *tokens = json_array(), *ids = json_array(), *unk = json_array();
        int ok = tokens && ids && unk;
        for (size_t t = 0; ok && t < s->n; t++)
            ok = json_array_append_new(tokens, json_string(tok_seq_token(s, t))) == 0 &&
                 json_array_append_new(ids, json_integer(s->ids[t])) == 0 &&
                 json_array_append_new(unk, json_boolean(s->ids[t] == TOK_ID_UNK)) == 0;
        json_t *o = json_pack("{s:s, s:o*, s:o*, s:o*, s:o*, s:b}", "model", cfg->name, "tokens", tokens, "token_ids",
                              ids, "offsets", offsets_json(s), "unknown", unk, "truncated", s->truncated);
        if (o && s->truncated && json_object_set_new(o, "num_tokens_total", json_integer((json_int_t)s->n_total)) < 0) {
            json_decref(o);
            o = NULL;
        }
        if (o && (!ok || json_object_size(o) < 6)) {
            json_decref(o);
            o = NULL;
        }
        if (!o || json_array_append_new(items, o) < 0) {
            json_decref(items);
            items = NULL;
        }
    }
    return wrap(model, items, single, len);
}
