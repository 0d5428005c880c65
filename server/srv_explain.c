/* srv_explain.c - POST /v1/explain and POST /v1/tokenize.
 *
 * DESIGN (threads: see srv.c; the steps are srv_infer.c's, with one difference)
 * /v1/explain, on the request's last call (HTTP thread): parse, pick the model, tokenize (as
 * /v1/sentiment), then bound every text by --explain-max-tokens (422, or cut with "truncate":
 * true), resolve the target label and the edits (indices checked, replacements tokenized by the
 * model's tokenizer), lay out one arena per request (bounded by --max-result-mb: 413) with every
 * text's variants - the N leave-one-out sequences, then the edited ones - and their outputs,
 * and queue one item per text. The job carries a run callback (bq_job_t.run): a worker runs each
 * item alone through explain_run, which is gru_explain_run (model/explain.h): the text and all
 * its variants in two batched passes with prefix reuse. The answer (srv_explain_answer, HTTP
 * thread, after the resume) encodes the results and counts the work in the explain metrics.
 * Between the submit and done the queue owns the items; a worker touches only its item's
 * srv_explain_text_t and the arena slices it points to.
 * /v1/tokenize answers at once from the HTTP thread: no model run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "srv.h"

/* One text's explanation work: what the worker reads and writes. */
typedef struct {
    int target;               /* the label explained (index in the text's model) */
    gru_input_t text;         /* the text's ids (borrowed from r->seqs) */
    gru_gates_mode_t mode;
    gru_output_t out;         /* probs, gates, trajectory (NULL for bidirectional models) */
    gru_input_t *var;         /* (n_var): n leave-one-out, then the edits */
    gru_output_t *vout;       /* (n_var) */
    float *vprobs;            /* (n_var, C): the variants' probabilities, vout[k].probs */
    size_t n_var;
    const float **traj_ptrs;  /* (n_var) the variants' trajectories, or NULL */
    size_t *var_lens;         /* (n_var) */
    gru_explain_stats_t stats;
    uint64_t ns;              /* worker time */
} srv_explain_text_t;

struct srv_explain {
    srv_explain_text_t *texts; /* (r->n) */
    tok_seq_t *repl;           /* (n_repl) the replacement texts' tokens */
    size_t n_repl;
    gru_edit_op_t *ops;        /* (n_ops) scratch of every edit's operations */
    size_t n_ops;
    float *arena;
    int32_t *ids;              /* the variants' token ids */
    gru_input_t *var;
    gru_output_t *vout;
    const float **traj_ptrs;
    size_t *var_lens;
};

void srv_explain_release(srv_request_t *r) {
    struct srv_explain *x = r->explain;
    if (!x) return;
    for (size_t i = 0; i < x->n_repl; i++) tok_seq_deinit(&x->repl[i]);
    free(x->repl);
    free(x->ops);
    free(x->arena);
    free(x->ids);
    free(x->var);
    free(x->vout);
    free(x->traj_ptrs);
    free(x->var_lens);
    free(x->texts);
    free(x);
    r->explain = NULL;
}

/* Worker thread: one text and its variants. */
static int explain_run(gru_ctx_t *ctx, bq_item_t *item) {
    srv_explain_text_t *t = item->data;
    uint64_t t0 = srv_now_ns();
    int rc = gru_explain_run(ctx, &t->text, &t->out, t->mode, t->var, t->vout, t->n_var, &t->stats);
    t->ns = srv_now_ns() - t0;
    return rc;
}

/* Cuts every text to --explain-max-tokens ("truncate": true) or fails with 422. */
static srv_outcome_t bound_tokens(srv_request_t *r, api_error_t *err) {
    const size_t max = (size_t)r->s->cfg.explain_max_tokens;
    for (size_t i = 0; i < r->n; i++) {
        tok_seq_t *seq = &r->seqs[i];
        if (seq->n <= max) continue;
        if (!r->req.truncate)
            return SRV_FAIL(err, API_ERR_TEXT_TOO_LONG,
                            "text #%zu has %zu tokens; /v1/explain takes at most %zu (its cost grows with the "
                            "square of the length; send \"truncate\": true to explain the first %zu)",
                            i, seq->n, max, max);
        r->tokens -= seq->n - max;
        seq->n = max; /* the first max tokens stay valid: the server owns seq */
        seq->truncated = 1;
    }
    return SRV_CONTINUE;
}

/* The edits of text 0 as engine operations (x->ops), with each edited length in lens. */
static srv_outcome_t resolve_edits(srv_request_t *r, struct srv_explain *x, size_t *lens, api_error_t *err) {
    const api_request_t *q = &r->req;
    const tok_seq_t *seq = &r->seqs[0];
    for (size_t e = 0; e < q->n_edits; e++) x->n_ops += q->edits[e].n_subs;
    if (x->n_ops && (!(x->ops = calloc(x->n_ops, sizeof *x->ops)) || !(x->repl = calloc(x->n_ops, sizeof *x->repl))))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the edits");
    const srv_model_t *m = srv_item_model(r, 0);
    tok_config_t tc = m->cfg->tokenizer;
    tc.max_tokens = (size_t)r->s->cfg.explain_max_tokens;
    gru_edit_op_t *op = x->ops;
    for (size_t e = 0; e < q->n_edits; e++) {
        const api_edit_t *ed = &q->edits[e];
        gru_edit_op_t *first = op;
        for (size_t k = 0; k < ed->n_subs; k++, op++) {
            const api_edit_sub_t *sub = &ed->subs[k];
            if (sub->index >= seq->n)
                return SRV_FAIL(err, API_ERR_INVALID_REQUEST, "edits[%zu] names token %zu; the text has %zu tokens", e,
                                sub->index, seq->n);
            *op = (gru_edit_op_t){sub->index, NULL, 0};
            if (!sub->text) continue;
            tok_seq_t *rs = &x->repl[x->n_repl++];
            tok_seq_init(rs);
            int rc = tok_encode(&tc, m->vocab, sub->text, sub->text_len, rs);
            if (rc == -EILSEQ)
                return SRV_FAIL(err, API_ERR_INVALID_UTF8, "edits[%zu]: the replacement of token %zu is not valid UTF-8",
                                e, sub->index);
            if (rc < 0) return SRV_FAIL(err, api_err_from_errno(rc), "edits[%zu]: cannot tokenize a replacement", e);
            if (rs->truncated)
                return SRV_FAIL(err, API_ERR_TEXT_TOO_LONG, "edits[%zu]: a replacement has over %zu tokens", e,
                                tc.max_tokens);
            op->ids = rs->ids;
            op->n_ids = rs->n;
        }
        int rc = gru_edit_apply(seq->ids, seq->n, first, (size_t)(op - first), NULL, 0, &lens[e]);
        if (rc < 0) return SRV_FAIL(err, API_ERR_INVALID_REQUEST, "edits[%zu] cannot be applied", e);
    }
    return SRV_CONTINUE;
}

/* Lays out every text's variants and outputs; fills r->items. */
static srv_outcome_t layout(srv_request_t *r, struct srv_explain *x, const size_t *edit_lens, api_error_t *err) {
    const size_t n_edits = r->req.n_edits;
    size_t floats = 0, ids = 0, vars = 0;
    for (size_t i = 0; i < r->n; i++) {
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        const size_t C = (size_t)c->num_labels;
        const int traj = r->req.trajectory && !c->bidirectional;
        size_t N = r->seqs[i].n, var_tokens = N * (N - 1);
        for (size_t e = 0; i == 0 && e < n_edits; e++) var_tokens += edit_lens[e];
        vars += N + (i == 0 ? n_edits : 0);
        ids += var_tokens;
        floats += C + gru_gates_floats(c, r->req.gates, N) + (traj ? N * C : 0);
        floats += (N + (i == 0 ? n_edits : 0)) * C + (traj ? var_tokens * C : 0);
    }
    /* The variants' token ids count too: N^2 of them per text. */
    const int max_mb = r->s->cfg.max_result_mb;
    if (floats + ids > (size_t)max_mb * (1u << 20) / sizeof(float))
        return SRV_FAIL(err, API_ERR_RESULT_TOO_LARGE,
                        "the explanation would need %zu MiB (limit %d MiB): send fewer or shorter texts, or no "
                        "\"trajectory\"",
                        (floats + ids) * sizeof(float) >> 20, max_mb);
    if (!(x->texts = calloc(r->n, sizeof *x->texts)) || !(x->arena = malloc((floats + 1) * sizeof(float))) ||
        !(x->ids = malloc((ids + 1) * sizeof *x->ids)) || !(x->var = calloc(vars, sizeof *x->var)) ||
        !(x->vout = calloc(vars, sizeof *x->vout)) || !(x->traj_ptrs = calloc(vars, sizeof *x->traj_ptrs)) ||
        !(x->var_lens = calloc(vars, sizeof *x->var_lens)))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the explanation");
    float *p = x->arena;
    int32_t *id = x->ids;
    size_t v = 0;
    for (size_t i = 0; i < r->n; i++) {
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        const size_t C = (size_t)c->num_labels;
        const int traj = r->req.trajectory && !c->bidirectional;
        const tok_seq_t *seq = &r->seqs[i];
        const size_t N = seq->n;
        srv_explain_text_t *t = &x->texts[i];
        t->text = (gru_input_t){seq->ids, N};
        t->mode = r->req.gates;
        t->out.probs = p, p += C;
        if (t->mode != GRU_GATES_NONE) t->out.gates = p, p += gru_gates_floats(c, t->mode, N);
        if (traj) t->out.trajectory = p, p += N * C;
        t->var = x->var + v, t->vout = x->vout + v, t->traj_ptrs = x->traj_ptrs + v, t->var_lens = x->var_lens + v;
        t->n_var = N + (i == 0 ? n_edits : 0);
        gru_explain_loo_variants(seq->ids, N, id, t->var);
        id += N * (N - 1);
        const gru_edit_op_t *op = x->ops;
        for (size_t e = 0; i == 0 && e < n_edits; e++) {
            size_t len, k = r->req.edits[e].n_subs;
            gru_edit_apply(seq->ids, N, op, k, id, edit_lens[e], &len); /* checked in resolve_edits */
            t->var[N + e] = (gru_input_t){id, len};
            id += len;
            op += k;
        }
        t->vprobs = p; /* (n_var, C) */
        for (size_t k = 0; k < t->n_var; k++) {
            t->var_lens[k] = t->var[k].len;
            t->vout[k].probs = p, p += C;
        }
        for (size_t k = 0; traj && k < t->n_var; k++)
            t->vout[k].trajectory = p, t->traj_ptrs[k] = p, p += t->var[k].len * C;
        v += t->n_var;
        bq_item_t *it = &r->items[i]; /* its model was set by srv_infer_tokenize */
        it->ids = seq->ids;
        it->len = N;
        it->probs = t->out.probs;
        it->gates = it->trajectory = NULL;
        it->data = t;
    }
    return SRV_CONTINUE;
}

srv_outcome_t srv_h_explain(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = srv_require_ready(r, err);
    if (o == SRV_CONTINUE) o = srv_infer_parse(r, API_REQ_EXPLAIN, err);
    if (o == SRV_CONTINUE) o = srv_infer_model(r, err);
    if (o != SRV_CONTINUE) return o;
    if (!(r->explain = calloc(1, sizeof *r->explain)))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the explanation");
    struct srv_explain *x = r->explain;
    r->n = r->req.n_texts;
    o = srv_infer_tokenize(r, err);
    if (o == SRV_CONTINUE) o = bound_tokens(r, err);
    size_t lens[API_MAX_EDITS];
    if (o == SRV_CONTINUE) o = resolve_edits(r, x, lens, err);
    if (o == SRV_CONTINUE) o = layout(r, x, lens, err);
    for (size_t i = 0; o == SRV_CONTINUE && i < r->n; i++) { /* the target, in each text's model */
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        int *tg = &x->texts[i].target;
        *tg = -1;
        for (int k = 0; r->req.target && k < c->num_labels && *tg < 0; k++)
            if (strcmp(c->labels[k], r->req.target) == 0) *tg = k;
        if (r->req.target && *tg < 0) {
            char q[64];
            snprintf(q, sizeof q, "%.60s", r->req.target);
            return SRV_FAIL(err, API_ERR_INVALID_REQUEST, "\"target\" \"%s\" is not a label of model %s", q, c->name);
        }
    }
    return o == SRV_CONTINUE ? srv_infer_enqueue(r, explain_run, err) : o;
}

static int argmax(const float *p, int C) {
    int best = 0;
    for (int k = 1; k < C; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

srv_outcome_t srv_explain_answer(srv_request_t *r, api_error_t *err) {
    struct srv_explain *x = r->explain;
    api_explain_result_t one, *res = r->n == 1 ? &one : calloc(r->n, sizeof *res);
    if (!res) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    for (size_t i = 0; i < r->n; i++) {
        const srv_explain_text_t *t = &x->texts[i];
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        const size_t N = t->text.len, C = (size_t)c->num_labels;
        const float *vprobs = t->vprobs;
        res[i] = (api_explain_result_t){
            .base = {c, &r->seqs[i], t->out.probs, t->mode, t->out.gates, t->out.trajectory, 1,
                     srv_item_model(r, i)->version},
            .target = t->target >= 0 ? t->target : argmax(t->out.probs, c->num_labels),
            .p_without = vprobs,
            .traj_without = t->out.trajectory ? t->traj_ptrs : NULL,
            .edits = i == 0 ? r->req.edits : NULL,
            .n_edits = i == 0 ? r->req.n_edits : 0,
            .edit_probs = vprobs + N * C,
            .edit_traj = t->out.trajectory ? t->traj_ptrs + N : NULL,
            .edit_lens = t->var_lens + N,
        };
        srv_metrics_explain(&r->s->metrics, (size_t)srv_item_model(r, i)->slot, t->stats.variants, t->stats.tokens,
                            (double)t->ns / 1e9);
    }
    size_t len;
    char *body = api_explain_body(res, r->n, r->req.single, &len);
    if (res != &one) free(res);
    if (!body) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    return srv_infer_respond(r, body, len);
}

srv_outcome_t srv_h_tokenize(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = srv_require_ready(r, err);
    if (o == SRV_CONTINUE) o = srv_infer_parse(r, API_REQ_TOKENIZE, err);
    if (o == SRV_CONTINUE) o = srv_infer_model(r, err);
    if (o != SRV_CONTINUE) return o;
    r->n = r->req.n_texts;
    if ((o = srv_infer_tokenize(r, err)) != SRV_CONTINUE) return o;
    const gru_config_t *one, **cfgs = r->n == 1 ? &one : calloc(r->n, sizeof *cfgs);
    if (!cfgs) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    for (size_t i = 0; i < r->n; i++) cfgs[i] = srv_item_model(r, i)->cfg;
    size_t len;
    char *body = api_tokenize_body(cfgs, r->seqs, r->n, r->req.single, &len);
    if (cfgs != &one) free(cfgs);
    if (!body) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    return srv_respond(r, 200, "application/json", body, len, 1, NULL, 0);
}
