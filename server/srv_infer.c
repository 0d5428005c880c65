/* srv_infer.c - the inference hand-off: POST /v1/sentiment and POST /v2/models/{name}/infer,
 * from a parsed body to a job in the batch queue, and from the finished job to the answer.
 *
 * DESIGN (threads: see srv.c for the whole picture)
 * On the request's last call (HTTP thread), in this order, each step failing with its own
 * error before anything is queued:
 *   1. parse the body (api_request_parse) and pick the model: the named one, or none (no
 *      "model", or "auto"): then each text goes to the model of its language (lang_route);
 *   2. pick each text's model and tokenize it with that model's tokenizer (tokenize: invalid
 *      UTF-8 422, no tokens 422, too long 422 unless "truncate");
 *   3. lay out the result buffers (layout): one arena per request, probabilities of every text
 *      first, then per text its gates and its trajectory (each in its own model's shape),
 *      bounded by --max-result-mb;
 *   4. reserve room in the queue (429 when full, 503 when draining), suspend the connection,
 *      then bq_submit - so the resume can never come before the suspend.
 * The queue calls on_job_done exactly once (bq's promise), on the worker that ran the job's last
 * text or on the loop thread (deadline, shutdown): it marks the request DONE and resumes the
 * connection; the resumed call (HTTP thread) encodes the answer (srv_infer_answer).
 * Between bq_submit and on_job_done the queue owns the job, its items and the arena.
 *
 * A request whose texts went to several models is still one job: each item names its model,
 * the queue batches items per model, and the job is admitted (bq_reserve of all its texts),
 * timed out and done as a whole, so the answer is complete or an error, never a part.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang.h"
#include "srv.h"

/* Writes v in decimal into out (24 bytes); no printf on the request path. */
static void u64_text(char *out, uint64_t v) {
    char tmp[24], *p = tmp + sizeof tmp;
    *--p = 0;
    do *--p = (char)('0' + v % 10);
    while (v /= 10);
    memcpy(out, p, (size_t)(tmp + sizeof tmp - p));
}

/* A worker or the loop thread: the queue is done with the job. */
static void on_job_done(bq_job_t *job) {
    srv_request_t *r = job->data;
    SRV_ASSERT(r->state == REQ_QUEUED);
    r->state = REQ_DONE;
    MHD_resume_connection(r->conn);
}

const srv_model_t *srv_item_model(const srv_request_t *r, size_t i) {
    for (size_t k = 0; k < r->set->n; k++) /* the model of the request's set whose contexts it names */
        if (r->set->models[k]->bqm == r->items[i].model) return r->set->models[k];
    SRV_ASSERT(!"an item's model is in its request's set");
    return NULL;
}

/* Step 2: each text's model (r->model, or the model of its language when r->routed) into
 * r->items[i].model, and its token ids (r->seqs), counting r->tokens. When every text went to
 * one model, r->model becomes it. */
srv_outcome_t srv_infer_tokenize(srv_request_t *r, api_error_t *err) {
    const size_t n = r->n;
    if (n == 1) {
        r->seqs = &r->seq1;
        r->items = &r->item1;
    } else {
        r->seqs = calloc(n, sizeof *r->seqs);
        r->items = calloc(n, sizeof *r->items);
        if (!r->seqs || !r->items) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for %zu texts", n);
    }
    for (size_t i = 0; i < n; i++) tok_seq_init(&r->seqs[i]);
    for (size_t i = 0; i < n; i++) {
        const srv_model_t *m =
            r->routed ? r->set->models[lang_route(r->req.texts[i], r->req.text_lens[i], r->set->cfgs, r->set->n)]
                      : r->model;
        r->items[i].model = m->bqm;
        const gru_config_t *c = m->cfg;
        tok_seq_t *seq = &r->seqs[i];
        int rc = tok_encode(&c->tokenizer, m->vocab, r->req.texts[i], r->req.text_lens[i], seq);
        const char *which = r->req.single ? "the text" : "a text";
        if (rc == -EILSEQ)
            return SRV_FAIL(err, API_ERR_INVALID_UTF8, "%s #%zu is not valid UTF-8 (byte %zu)", which, i,
                            seq->error_offset);
        if (rc < 0) return SRV_FAIL(err, api_err_from_errno(rc), "cannot tokenize text #%zu", i);
        if (seq->n == 0) return SRV_FAIL(err, API_ERR_EMPTY_TEXT, "text #%zu has no tokens", i);
        if (seq->truncated && !r->req.truncate)
            return SRV_FAIL(err, API_ERR_TEXT_TOO_LONG,
                            "text #%zu has %zu tokens; model %s takes %zu (send \"truncate\": true to cut it)", i,
                            seq->n_total, c->name, c->tokenizer.max_tokens);
        r->tokens += seq->n;
    }
    if (r->routed) {
        r->model = srv_item_model(r, 0);
        for (size_t i = 1; i < n && r->model; i++)
            if (srv_item_model(r, i) != r->model) r->model = NULL;
    }
    return SRV_CONTINUE;
}

/* Step 3: the arena and each item's view of it, in its model's shape. */
static srv_outcome_t layout(srv_request_t *r, api_error_t *err) {
    const size_t n = r->n;
    const gru_gates_mode_t mode = r->req.gates;
    size_t floats = 0, n_probs = 0;
    for (size_t i = 0; i < n; i++) {
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        const size_t C = (size_t)c->num_labels;
        const int traj = r->req.trajectory && !c->bidirectional;
        n_probs += C;
        floats += C + gru_gates_floats(c, mode, r->seqs[i].n) + (traj ? r->seqs[i].n * C : 0);
    }
    const int max_mb = r->s->cfg.max_result_mb;
    if (floats > (size_t)max_mb * (1u << 20) / sizeof(float))
        return SRV_FAIL(err, API_ERR_RESULT_TOO_LARGE,
                        "the results would need %.2f MiB (limit %d MiB): ask for fewer texts or gates \"summary\"",
                        (double)(floats * sizeof(float)) / (1 << 20), max_mb);
    srv_outcome_t o = srv_reserve(r, floats * sizeof(float), API_ERR_RESULT_TOO_LARGE, "the results", err);
    if (o != SRV_CONTINUE) return o;
    if (!(r->arena = malloc(floats * sizeof(float))))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the results");
    /* The probabilities of every text first: (n, C) when the texts share a model (KServe). */
    float *p = r->arena, *probs = p;
    r->probs = p;
    p += n_probs;
    for (size_t i = 0; i < n; i++) {
        const gru_config_t *c = srv_item_model(r, i)->cfg;
        const size_t C = (size_t)c->num_labels;
        const int traj = r->req.trajectory && !c->bidirectional;
        bq_item_t *it = &r->items[i];
        it->ids = r->seqs[i].ids;
        it->len = r->seqs[i].n;
        it->probs = probs;
        probs += C;
        it->gates = NULL;
        it->trajectory = NULL;
        if (mode != GRU_GATES_NONE) {
            it->gates = p;
            p += gru_gates_floats(c, mode, it->len);
        }
        if (traj) {
            it->trajectory = p;
            p += it->len * C;
        }
    }
    return SRV_CONTINUE;
}

/* Step 3b: the answer's memory, reserved before any inference: a sentiment answer's result
 * views and the bound of its encoding (whole when small, else its largest piece: it is sent
 * as a stream of pieces). KServe answers are small (n x C numbers): counted once encoded. */
static srv_outcome_t reserve_answer(srv_request_t *r, api_error_t *err) {
    if (r->req.kind != API_REQ_SENTIMENT) return SRV_CONTINUE;
    if (!(r->results = calloc(r->n, sizeof *r->results)))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for %zu results", r->n);
    for (size_t i = 0; i < r->n; i++) {
        r->results[i] = (api_result_t){srv_item_model(r, i)->cfg, &r->seqs[i], r->items[i].probs, r->req.gates,
                                       r->items[i].gates, r->items[i].trajectory, r->req.offsets,
                                       srv_item_model(r, i)->version};
        size_t b = api_result_json_bound(&r->results[i]);
        r->answer_max += b;
        if (b > r->piece_max) r->piece_max = b;
    }
    r->streaming = r->answer_max > SRV_STREAM_MIN;
    size_t need = r->n * sizeof *r->results + (r->streaming ? r->piece_max : r->answer_max);
    return srv_reserve(r, need, API_ERR_RESULT_TOO_LARGE, "the answer", err);
}

/* Step 4: reserve, suspend, submit. */
srv_outcome_t srv_infer_enqueue(srv_request_t *r, bq_run_cb run, api_error_t *err) {
    srv_t *s = r->s;
    r->job = (bq_job_t){.gates = r->req.gates, .items = r->items, .n_items = r->n, .done = on_job_done, .run = run,
                        .data = r};
    int rc = bq_reserve(s->bq, r->n);
    if (rc == -EAGAIN)
        return SRV_FAIL(err, API_ERR_QUEUE_FULL, "the queue is full (%d texts); retry shortly", s->cfg.max_queue);
    if (rc == -ECANCELED) return SRV_FAIL(err, API_ERR_DRAINING, "the server is shutting down");
    if (rc < 0) return SRV_FAIL(err, API_ERR_INTERNAL, "cannot queue the request");
    /* Suspend before submitting: the resume (a worker) must find the connection suspended. */
    atomic_fetch_add(&s->answering, 1);
    r->submitted = 1;
    r->state = REQ_QUEUED;
    MHD_suspend_connection(r->conn);
    bq_submit(s->bq, &r->job);
    return SRV_SUSPENDED;
}

/* Steps 2-4 for r->model (or each text's language, when r->routed) and the parsed r->req. */
static srv_outcome_t submit(srv_request_t *r, api_error_t *err) {
    r->n = r->req.n_texts;
    srv_outcome_t o = srv_infer_tokenize(r, err);
    if (o == SRV_CONTINUE) o = layout(r, err);
    if (o == SRV_CONTINUE) o = reserve_answer(r, err);
    if (o == SRV_CONTINUE) o = srv_infer_enqueue(r, NULL, err);
    return o;
}

/* Step 1: parses the body of an inference route; the body's bytes are freed (the texts now
 * live in the parsed document). */
srv_outcome_t srv_infer_parse(srv_request_t *r, api_request_kind_t kind, api_error_t *err) {
    api_limits_t lim = {(size_t)r->s->cfg.max_texts};
    if (kind == API_REQ_EXPLAIN && r->s->cfg.explain_max_texts < r->s->cfg.max_texts)
        lim.max_texts = (size_t)r->s->cfg.explain_max_texts;
    int rc = api_request_parse(&r->req, kind, r->body, r->body_len, &lim, err);
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    return rc < 0 ? SRV_FAILED : SRV_CONTINUE;
}

srv_outcome_t srv_infer_model(srv_request_t *r, api_error_t *err) {
    r->model = NULL;
    r->routed = !r->req.model || !strcmp(r->req.model, SRV_MODEL_AUTO);
    if (!r->routed) {
        r->model = srv_modelset_find(r->set, r->req.model);
        if (!r->model) {
            char q[64];
            snprintf(q, sizeof q, "%.60s", r->req.model);
            return SRV_FAIL(err, API_ERR_MODEL_NOT_FOUND, "no model called \"%s\" (GET /v1/models lists them)", q);
        }
    }
    return SRV_CONTINUE;
}

srv_outcome_t srv_h_sentiment(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = srv_require_ready(r, err);
    if (o == SRV_CONTINUE) o = srv_infer_parse(r, API_REQ_SENTIMENT, err);
    if (o == SRV_CONTINUE) o = srv_infer_model(r, err);
    return o == SRV_CONTINUE ? submit(r, err) : o;
}

srv_outcome_t srv_h_v2_infer(srv_request_t *r, api_error_t *err) {
    if (!(r->model = srv_path_model(r, err))) return SRV_FAILED;
    srv_outcome_t o = srv_infer_parse(r, API_REQ_KSERVE_INFER, err);
    return o == SRV_CONTINUE ? submit(r, err) : o;
}

/* libmicrohttpd's content reader of a streamed answer (HTTP thread, when the socket has room):
 * copies out the current piece, encoding the next one when it is used up. One piece is one
 * result: the encoding work per call is bounded, and so is the memory (the piece buffer is
 * reused; its bound is in the request's reservation). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    srv_request_t *r = cls;
    if (r->piece_off == r->piece_len) {
        int rc = api_sentiment_stream_next(&r->stream, &r->piece, &r->piece_len);
        r->piece_off = 0;
        if (rc == 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (rc < 0) { /* the head is gone: all we can do is cut the answer short */
            srv_log(CFG_LOG_ERROR, "cannot encode result %zu of a streamed answer (%s): answer cut",
                    r->stream.next, rc == -ENOMEM ? "out of memory" : "not representable in JSON");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = r->piece_len - r->piece_off;
    if (n > max) n = max;
    memcpy(buf, r->piece + r->piece_off, n);
    r->piece_off += n;
    return (ssize_t)n;
}

srv_outcome_t srv_infer_answer(srv_request_t *r, api_error_t *err) {
    const bq_job_t *job = &r->job;
    if (job->status == -ETIMEDOUT)
        return SRV_FAIL(err, API_ERR_TIMEOUT, "no worker took the request within %d ms", r->s->cfg.timeout_ms);
    if (job->status == -ECANCELED) return SRV_FAIL(err, API_ERR_DRAINING, "the server is shutting down");
    if (job->status < 0) return SRV_FAIL(err, api_err_from_errno(job->status), "inference failed");
    if (r->req.kind == API_REQ_EXPLAIN) return srv_explain_answer(r, err);
    size_t len;
    char *body;
    if (r->req.kind == API_REQ_KSERVE_INFER) {
        body = api_kserve_infer_body(&r->req, r->model->cfg, r->model->version, r->probs, r->n, &len);
        if (body) { /* small and bounded by --max-texts: counted as it is */
            srv_budget_force(&r->s->budget, len);
            r->reserved += len;
        }
    } else if (r->streaming) {
        /* The first piece now, so that an encoding failure is still an error answer. */
        api_sentiment_stream_init(&r->stream, r->results, r->n, r->req.single);
        int rc = api_sentiment_stream_next(&r->stream, &r->piece, &r->piece_len);
        if (rc < 0) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
        r->piece_off = 0;
        return srv_infer_respond(r, NULL, 0);
    } else {
        body = api_sentiment_body(r->results, r->n, r->req.single, &len);
    }
    if (!body) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    return srv_infer_respond(r, body, len);
}

/* The answer with the queue and inference times: body (malloc'ed, taken), or with body NULL the
 * stream r->stream already started. */
srv_outcome_t srv_infer_respond(srv_request_t *r, char *body, size_t len) {
    const bq_job_t *job = &r->job;
    char qt[24], it[24];
    u64_text(qt, (job->t_start_ns - job->t_submit_ns) / 1000);
    u64_text(it, (job->t_end_ns - job->t_start_ns) / 1000);
    srv_header_t extra[2] = {{"x-queue-time", qt}, {"x-inference-time", it}};
    if (!body) return srv_respond_stream(r, 200, "application/json", stream_read, r, extra, 2);
    return srv_respond(r, 200, "application/json", body, len, 1, extra, 2);
}

void srv_infer_release(srv_request_t *r) {
    srv_explain_release(r);
    for (size_t i = 0; r->seqs && i < r->n; i++) tok_seq_deinit(&r->seqs[i]);
    if (r->seqs != &r->seq1) free(r->seqs);
    if (r->items != &r->item1) free(r->items);
    free(r->arena);
    free(r->results);
    api_sentiment_stream_deinit(&r->stream);
    api_request_deinit(&r->req);
    if (r->submitted) atomic_fetch_sub(&r->s->answering, 1);
}
