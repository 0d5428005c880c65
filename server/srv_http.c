/* srv_http.c - the libmicrohttpd front end: per-request state, the route table, every route's
 * handler, and the one error wrapper.
 *
 * DESIGN (threads: see srv.c for the whole picture)
 * MHD runs `http-threads` internal epoll threads with MHD_ALLOW_SUSPEND_RESUME. Everything in
 * this file runs on those threads, except on_job_done (the loop thread), which only marks the
 * request done and resumes its connection.
 *
 * A request's life (on_request is MHD's access handler, called several times per request):
 *   1. First call: allocate srv_request_t into *req_cls; match the route; decide all that
 *      needs no body: unknown path 404, wrong method 405 (+ Allow), preflight OPTIONS, missing
 *      API key 401, wrong Content-Type 415, a Content-Length over the cap 413. An error for a
 *      request that announces a body is answered now (MHD then closes the connection rather
 *      than read the body); everything else is answered at the last call, which keeps the
 *      connection alive (an answer queued at the first call always closes it).
 *   2. Body calls: append to r->body up to body-max-bytes; past it, drop the body and answer
 *      413 on the last call (MHD does not queue a response while upload data is arriving).
 *   3. Last call: parse (api_request_parse), tokenize each text (tok_encode), try-allocate the
 *      result buffers, reserve queue room (429 / 503 at once when refused), suspend the
 *      connection, then bq_submit - in that order, so the resume can never come before the
 *      suspend. The handler returns; the HTTP thread moves on.
 *   4. on_job_done (loop thread): state QUEUED -> DONE, MHD_resume_connection: exactly once
 *      per job, because bq calls done exactly once.
 *   5. Resumed call: encode the results (api_*_body) and queue the response.
 *   6. on_completed (MHD_OPTION_NOTIFY_COMPLETED): access log, metrics, free everything. This
 *      is the only place a request is freed.
 * Every failure goes through run() -> respond_error(): one status mapping, one body shape.
 *
 * Connections (on_connection, srv_http_sweep): each must deliver every whole request within
 * --connection-timeout-s; the loop thread's sweep shuts down the sockets of those that do not,
 * and of clients gone in the middle of a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "page.h"
#include "srv.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000 /* Linux: the peer shut down its writing half */
#endif

/* ------------------------------------------------------------------------------------------ */
/* Types */

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_OPTIONS = 8 };

typedef enum { REQ_NEW, REQ_READING, REQ_DISCARDING, REQ_QUEUED, REQ_DONE, REQ_ANSWERED } req_state_t;

typedef struct srv_request srv_request_t;
typedef int (*route_fn)(srv_request_t *r, api_error_t *err);

typedef struct {
    srv_route_id_t id;
    unsigned methods;
    int auth;       /* needs the API key (when one is set) */
    int body;       /* takes a JSON body */
    route_fn fn;
} route_t;

/* One open connection (MHD's socket context), in s->conns. The list is changed under
 * s->conns_lock, by the HTTP threads only at connect and close; the sweep reads it under the
 * lock, so fd is still open whenever the sweep sees the entry (MHD reports the close before
 * closing the socket). */
typedef struct srv_conn {
    struct srv_conn *prev, *next;
    int fd;
    _Atomic uint64_t since_ns; /* when the wait for the next whole request began */
    atomic_int busy;           /* a whole request arrived and is not answered yet */
    int cut;                   /* shut down by the sweep (under the lock) */
} srv_conn_t;

struct srv_request {
    srv_t *s;
    struct MHD_Connection *conn;
    srv_conn_t *sock;       /* the connection's state, or NULL */
    const route_t *route;
    req_state_t state;
    unsigned method;
    char method_name[16];
    char path[160];
    char model_name[128];   /* KServe routes: the {name} in the path */
    uint64_t t_start_ns;
    int status;             /* the status answered (0: none yet) */
    route_fn final;         /* what answers at the last call; NULL: the deferred error */
    api_error_t deferred;   /* an error found before or while the body was arriving */

    char *body;
    size_t body_len, body_cap;

    /* Inference. */
    api_request_t req;
    const srv_model_t *model;
    size_t n;               /* texts */
    size_t tokens;
    tok_seq_t seq1, *seqs;  /* (n): &seq1 when n == 1 */
    bq_item_t item1, *items;
    float *arena;           /* probs (n, C), then gates, then trajectories */
    float *probs;
    bq_job_t job;
    int submitted;          /* handed to the queue (counted in s->answering) */
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers (no printf on the request path) */

/* Copies s into out (cap bytes), cut if longer. */
static void copy_cut(char *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Writes v in decimal into out (24 bytes). */
static void u64_text(char *out, uint64_t v) {
    char tmp[24], *p = tmp + sizeof tmp;
    *--p = 0;
    do *--p = (char)('0' + v % 10);
    while (v /= 10);
    memcpy(out, p, (size_t)(tmp + sizeof tmp - p));
}

/* ------------------------------------------------------------------------------------------ */
/* Responses */

typedef struct {
    const char *name, *value;
} hdr_t;

/* Queues a response with the common headers. body is freed with free() when must_free (also
 * on failure). Returns 0, or -1 when MHD refused (the handler then returns MHD_NO). */
static int respond(srv_request_t *r, unsigned status, const char *ctype, char *body, size_t len, int must_free,
                   const hdr_t *extra, size_t n_extra) {
    struct MHD_Response *resp =
        must_free ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
                  : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (must_free) free(body);
        return -1;
    }
    const cfg_t *c = &r->s->cfg;
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES;
    if (c->cors_origin[0]) {
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, c->cors_origin) == MHD_YES;
        ok &= MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                      "x-queue-time, x-inference-time, Retry-After") == MHD_YES;
        if (strcmp(c->cors_origin, "*") != 0) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin") == MHD_YES;
    }
    if (atomic_load_explicit(&r->s->draining, memory_order_relaxed))
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    for (size_t i = 0; i < n_extra; i++) ok &= MHD_add_response_header(resp, extra[i].name, extra[i].value) == MHD_YES;
    if (ok) ok = MHD_queue_response(r->conn, status, resp) == MHD_YES;
    MHD_destroy_response(resp);
    if (!ok) return -1;
    r->status = (int)status;
    r->state = REQ_ANSWERED;
    return 0;
}

static int respond_json(srv_request_t *r, unsigned status, char *body, size_t len, api_error_t *err) {
    if (!body) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    return respond(r, status, "application/json", body, len, 1, NULL, 0) < 0 ? -2 : 0;
}

static const char *allow_header(unsigned methods) {
    if (methods & M_POST) return "POST, OPTIONS";
    return "GET, HEAD, OPTIONS";
}

/* The one error wrapper: any failure of any route ends here. */
static int respond_error(srv_request_t *r, const api_error_t *e) {
    static const char fallback[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
    size_t len = 0;
    char *body = api_error_body(e, &len);
    hdr_t extra[2];
    size_t n = 0;
    switch (e->kind) {
    case API_ERR_METHOD_NOT_ALLOWED: extra[n++] = (hdr_t){MHD_HTTP_HEADER_ALLOW, allow_header(r->route->methods)}; break;
    case API_ERR_QUEUE_FULL: extra[n++] = (hdr_t){MHD_HTTP_HEADER_RETRY_AFTER, "1"}; break;
    case API_ERR_UNAUTHORIZED: extra[n++] = (hdr_t){MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer"}; break;
    case API_ERR_NOT_READY:
    case API_ERR_DRAINING:
    case API_ERR_OUT_OF_MEMORY: extra[n++] = (hdr_t){MHD_HTTP_HEADER_RETRY_AFTER, "1"}; break;
    default: break;
    }
    unsigned status = (unsigned)api_status_from_err(e->kind);
    if (!body) return respond(r, status, "application/json", (char *)fallback, sizeof fallback - 1, 0, extra, n);
    return respond(r, status, "application/json", body, len, 1, extra, n);
}

/* Runs a route and turns its failure into the error response. Returns MHD_YES or MHD_NO. */
static enum MHD_Result run(srv_request_t *r, route_fn fn) {
    api_error_t err = {API_ERR_INTERNAL, ""};
    int rc = fn(r, &err);
    if (rc == 0) return MHD_YES;
    if (rc == -2) return MHD_NO; /* MHD refused a response: close the connection */
    return respond_error(r, &err) == 0 ? MHD_YES : MHD_NO;
}

/* ------------------------------------------------------------------------------------------ */
/* Small routes */

static int require_ready(srv_request_t *r, api_error_t *err) {
    if (atomic_load_explicit(&r->s->ready, memory_order_acquire)) return 0;
    return api_error_set(err, API_ERR_NOT_READY, "the models are still loading");
}

static int r_healthz(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_status_body("status", "ok", &len);
    return respond_json(r, 200, body, len, err);
}

static int r_readyz(srv_request_t *r, api_error_t *err) {
    if (atomic_load(&r->s->draining)) return api_error_set(err, API_ERR_DRAINING, "the server is shutting down");
    if (require_ready(r, err) < 0) return -1;
    size_t len = 0;
    char *body = api_status_body("status", "ready", &len);
    return respond_json(r, 200, body, len, err);
}

static int r_v2_live(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_flag_body(NULL, "live", 1, &len);
    return respond_json(r, 200, body, len, err);
}

static int r_v2_ready(srv_request_t *r, api_error_t *err) {
    if (atomic_load(&r->s->draining)) return api_error_set(err, API_ERR_DRAINING, "the server is shutting down");
    if (require_ready(r, err) < 0) return -1;
    size_t len = 0;
    char *body = api_flag_body(NULL, "ready", 1, &len);
    return respond_json(r, 200, body, len, err);
}

static int r_v2_server(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_kserve_server_body(SRV_VERSION, &len);
    return respond_json(r, 200, body, len, err);
}

static int r_openapi(srv_request_t *r, api_error_t *err) {
    (void)err;
    return respond(r, 200, "application/json", (char *)api_openapi_json, strlen(api_openapi_json), 0, NULL, 0) < 0
               ? -2
               : 0;
}

/* GET / and /index.html: the embedded page (page.h), public like the health routes. */
static int r_page(srv_request_t *r, api_error_t *err) {
    (void)err;
    size_t len;
    const unsigned char *page = srv_page_get(&len);
    int fresh = srv_page_not_modified(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH));
    const hdr_t extra[] = {{"Content-Security-Policy", srv_page_csp()},
                           {MHD_HTTP_HEADER_CACHE_CONTROL, SRV_PAGE_CACHE_CONTROL},
                           {MHD_HTTP_HEADER_ETAG, srv_page_etag()},
                           {"X-Content-Type-Options", "nosniff"},
                           {"Referrer-Policy", "no-referrer"}};
    return respond(r, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, SRV_PAGE_CONTENT_TYPE, fresh ? (char *)"" : (char *)page,
                   fresh ? 0 : len, 0, extra, sizeof extra / sizeof *extra) < 0
               ? -2
               : 0;
}

static int r_models(srv_request_t *r, api_error_t *err) {
    if (require_ready(r, err) < 0) return -1;
    return respond(r, 200, "application/json", r->s->models_body, r->s->models_body_len, 0, NULL, 0) < 0 ? -2 : 0;
}

/* The model named in a KServe path, or NULL with err set. */
static const srv_model_t *path_model(srv_request_t *r, api_error_t *err) {
    if (require_ready(r, err) < 0) return NULL;
    for (size_t i = 0; i < r->s->n_models; i++)
        if (strcmp(r->s->models[i].name, r->model_name) == 0) return &r->s->models[i];
    api_error_set(err, API_ERR_MODEL_NOT_FOUND, "no model called \"%s\" (GET /v1/models lists them)", r->model_name);
    return NULL;
}

static int r_v2_model(srv_request_t *r, api_error_t *err) {
    const srv_model_t *m = path_model(r, err);
    if (!m) return -1;
    return respond(r, 200, "application/json", m->meta_body, m->meta_len, 0, NULL, 0) < 0 ? -2 : 0;
}

static int r_v2_model_ready(srv_request_t *r, api_error_t *err) {
    const srv_model_t *m = path_model(r, err);
    if (!m) return -1;
    if (atomic_load(&r->s->draining)) return api_error_set(err, API_ERR_DRAINING, "the server is shutting down");
    size_t len = 0;
    char *body = api_flag_body(m->name, "ready", 1, &len);
    return respond_json(r, 200, body, len, err);
}

static int r_metrics(srv_request_t *r, api_error_t *err) {
    srv_t *s = r->s;
    bq_stats_t st = {0, 0, s->workers};
    int ready = atomic_load_explicit(&s->ready, memory_order_acquire);
    if (ready) bq_stats(s->bq, &st);
    srv_metrics_gauges_t g = {st.depth,
                              st.busy,
                              st.workers,
                              atomic_load(&s->inflight),
                              ready,
                              atomic_load(&s->draining),
                              ready ? s->n_models : 0,
                              s->metric_names,
                              s->metric_info};
    size_t len;
    char *body = srv_metrics_render(&s->metrics, &g, &len);
    if (!body) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory while rendering metrics");
    return respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, 1, NULL, 0) < 0 ? -2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Inference: POST /v1/sentiment and POST /v2/models/{name}/infer */

static void on_job_done(bq_job_t *job);

/* Tokenizes the parsed texts, allocates the result buffers, and hands the job to the queue. */
static int submit(srv_request_t *r, api_error_t *err) {
    srv_t *s = r->s;
    const srv_model_t *m = r->model;
    const gru_config_t *c = m->cfg;
    const size_t n = r->req.n_texts, C = (size_t)c->num_labels;
    r->n = n;
    if (n == 1) {
        r->seqs = &r->seq1;
        r->items = &r->item1;
    } else {
        r->seqs = calloc(n, sizeof *r->seqs);
        r->items = calloc(n, sizeof *r->items);
        if (!r->seqs || !r->items) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory for %zu texts", n);
    }
    for (size_t i = 0; i < n; i++) tok_seq_init(&r->seqs[i]);
    gru_gates_mode_t mode = r->req.gates;
    int traj = r->req.trajectory && !c->bidirectional;
    size_t floats = n * C;
    for (size_t i = 0; i < n; i++) {
        tok_seq_t *seq = &r->seqs[i];
        int rc = tok_encode(&c->tokenizer, m->vocab, r->req.texts[i], r->req.text_lens[i], seq);
        const char *which = r->req.single ? "the text" : "a text";
        if (rc == -EILSEQ)
            return api_error_set(err, API_ERR_INVALID_UTF8, "%s #%zu is not valid UTF-8 (byte %zu)", which, i,
                                 seq->error_offset);
        if (rc < 0) return api_error_set(err, api_err_from_errno(rc), "cannot tokenize text #%zu", i);
        if (seq->n == 0) return api_error_set(err, API_ERR_EMPTY_TEXT, "text #%zu has no tokens", i);
        if (seq->truncated && !r->req.truncate)
            return api_error_set(err, API_ERR_TEXT_TOO_LONG,
                                 "text #%zu has %zu tokens; model %s takes %zu (send \"truncate\": true to cut it)", i,
                                 seq->n_total, c->name, c->tokenizer.max_tokens);
        r->tokens += seq->n;
        floats += gru_gates_floats(c, mode, seq->n) + (traj ? seq->n * C : 0);
    }
    if (floats > (size_t)s->cfg.max_result_mb * (1u << 20) / sizeof(float))
        return api_error_set(err, API_ERR_RESULT_TOO_LARGE,
                             "the results would need %zu MiB (limit %d MiB): ask for fewer texts or gates \"summary\"",
                             floats * sizeof(float) >> 20, s->cfg.max_result_mb);
    if (!(r->arena = malloc(floats * sizeof(float))))
        return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory for the results");
    float *p = r->arena;
    r->probs = p;
    p += n * C;
    for (size_t i = 0; i < n; i++) {
        bq_item_t *it = &r->items[i];
        it->ids = r->seqs[i].ids;
        it->len = r->seqs[i].n;
        it->probs = r->probs + i * C;
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
    r->job = (bq_job_t){.model = (size_t)(m - s->models), .gates = mode, .items = r->items, .n_items = n,
                        .done = on_job_done, .data = r};
    int rc = bq_reserve(s->bq, n);
    if (rc == -EAGAIN)
        return api_error_set(err, API_ERR_QUEUE_FULL, "the queue is full (%d texts); retry shortly", s->cfg.max_queue);
    if (rc == -ECANCELED) return api_error_set(err, API_ERR_DRAINING, "the server is shutting down");
    if (rc < 0) return api_error_set(err, API_ERR_INTERNAL, "cannot queue the request");
    /* Suspend before submitting: the resume (loop thread) must find the connection suspended. */
    atomic_fetch_add(&s->answering, 1);
    r->submitted = 1;
    r->state = REQ_QUEUED;
    MHD_suspend_connection(r->conn);
    bq_submit(s->bq, &r->job);
    return 0;
}

/* Parses the body of an inference route. Returns 0 or -1 with err set. */
static int parse_body(srv_request_t *r, api_request_kind_t kind, api_error_t *err) {
    api_limits_t lim = {(size_t)r->s->cfg.max_texts};
    int rc = api_request_parse(&r->req, kind, r->body, r->body_len, &lim, err);
    free(r->body); /* the texts now live in the parsed document */
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    return rc;
}

static int r_sentiment(srv_request_t *r, api_error_t *err) {
    if (require_ready(r, err) < 0 || parse_body(r, API_REQ_SENTIMENT, err) < 0) return -1;
    r->model = &r->s->models[0];
    if (r->req.model) {
        r->model = NULL;
        for (size_t i = 0; i < r->s->n_models && !r->model; i++)
            if (strcmp(r->s->models[i].name, r->req.model) == 0) r->model = &r->s->models[i];
        if (!r->model) {
            char q[64];
            snprintf(q, sizeof q, "%.60s", r->req.model);
            return api_error_set(err, API_ERR_MODEL_NOT_FOUND, "no model called \"%s\" (GET /v1/models lists them)",
                                 q);
        }
    }
    return submit(r, err);
}

static int r_v2_infer(srv_request_t *r, api_error_t *err) {
    if (!(r->model = path_model(r, err)) || parse_body(r, API_REQ_KSERVE_INFER, err) < 0) return -1;
    return submit(r, err);
}

/* Loop thread: the queue is done with the job. */
static void on_job_done(bq_job_t *job) {
    srv_request_t *r = job->data;
    SRV_ASSERT(r->state == REQ_QUEUED);
    r->state = REQ_DONE;
    MHD_resume_connection(r->conn);
}

/* Resumed: answer with the results (or the queue's error). */
static int r_answer(srv_request_t *r, api_error_t *err) {
    const bq_job_t *job = &r->job;
    if (job->status == -ETIMEDOUT)
        return api_error_set(err, API_ERR_TIMEOUT, "no worker took the request within %d ms", r->s->cfg.timeout_ms);
    if (job->status == -ECANCELED) return api_error_set(err, API_ERR_DRAINING, "the server is shutting down");
    if (job->status < 0) return api_error_set(err, api_err_from_errno(job->status), "inference failed");
    const gru_config_t *c = r->model->cfg;
    size_t len;
    char *body;
    if (r->req.kind == API_REQ_KSERVE_INFER) {
        body = api_kserve_infer_body(&r->req, c, r->probs, r->n, &len);
    } else {
        api_result_t one, *res = r->n == 1 ? &one : calloc(r->n, sizeof *res);
        if (!res) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
        for (size_t i = 0; i < r->n; i++)
            res[i] = (api_result_t){c, &r->seqs[i], r->items[i].probs, r->req.gates, r->items[i].gates,
                                    r->items[i].trajectory};
        body = api_sentiment_body(res, r->n, r->req.single, &len);
        if (res != &one) free(res);
    }
    if (!body) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    char qt[24], it[24];
    u64_text(qt, (job->t_start_ns - job->t_submit_ns) / 1000);
    u64_text(it, (job->t_end_ns - job->t_start_ns) / 1000);
    hdr_t extra[2] = {{"x-queue-time", qt}, {"x-inference-time", it}};
    return respond(r, 200, "application/json", body, len, 1, extra, 2) < 0 ? -2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Routing */

static const route_t routes[] = {
    {SRV_ROUTE_SENTIMENT, M_POST, 1, 1, r_sentiment},
    {SRV_ROUTE_MODELS, M_GET | M_HEAD, 1, 0, r_models},
    {SRV_ROUTE_HEALTHZ, M_GET | M_HEAD, 0, 0, r_healthz},
    {SRV_ROUTE_READYZ, M_GET | M_HEAD, 0, 0, r_readyz},
    {SRV_ROUTE_METRICS, M_GET | M_HEAD, 1, 0, r_metrics},
    {SRV_ROUTE_OPENAPI, M_GET | M_HEAD, 1, 0, r_openapi},
    {SRV_ROUTE_V2_SERVER, M_GET | M_HEAD, 1, 0, r_v2_server},
    {SRV_ROUTE_V2_LIVE, M_GET | M_HEAD, 0, 0, r_v2_live},
    {SRV_ROUTE_V2_READY, M_GET | M_HEAD, 0, 0, r_v2_ready},
    {SRV_ROUTE_V2_MODEL, M_GET | M_HEAD, 1, 0, r_v2_model},
    {SRV_ROUTE_V2_MODEL_READY, M_GET | M_HEAD, 1, 0, r_v2_model_ready},
    {SRV_ROUTE_V2_INFER, M_POST, 1, 1, r_v2_infer},
    {SRV_ROUTE_PAGE, M_GET | M_HEAD, 0, 0, r_page},
};
static const route_t route_not_found = {SRV_ROUTE_OTHER, M_GET | M_HEAD | M_POST, 0, 0, NULL};

static const route_t *route_by_id(srv_route_id_t id) {
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (routes[i].id == id) return &routes[i];
    return &route_not_found;
}

/* Matches url (without the query) to a route; KServe model paths store the name in r. */
static const route_t *route_match(srv_request_t *r, const char *url) {
    static const struct {
        const char *path;
        srv_route_id_t id;
    } exact[] = {
        {"/v1/sentiment", SRV_ROUTE_SENTIMENT}, {"/v1/models", SRV_ROUTE_MODELS},
        {"/healthz", SRV_ROUTE_HEALTHZ},        {"/readyz", SRV_ROUTE_READYZ},
        {"/metrics", SRV_ROUTE_METRICS},        {"/openapi.json", SRV_ROUTE_OPENAPI},
        {"/v2", SRV_ROUTE_V2_SERVER},           {"/v2/health/live", SRV_ROUTE_V2_LIVE},
        {"/v2/health/ready", SRV_ROUTE_V2_READY},  {"/", SRV_ROUTE_PAGE},
        {"/index.html", SRV_ROUTE_PAGE},
    };
    size_t ulen = strcspn(url, "?");
    while (ulen > 1 && url[ulen - 1] == '/') ulen--; /* "/v1/models/" is "/v1/models" */
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strlen(exact[i].path) == ulen && memcmp(exact[i].path, url, ulen) == 0) return route_by_id(exact[i].id);
    /* /v2/models/{name}[/versions/{v}][/ready | /infer] */
    static const char prefix[] = "/v2/models/";
    if (ulen <= sizeof prefix - 1 || strncmp(url, prefix, sizeof prefix - 1) != 0) return &route_not_found;
    const char *name = url + sizeof prefix - 1, *end = url + ulen;
    const char *slash = memchr(name, '/', (size_t)(end - name));
    size_t nlen = (size_t)((slash ? slash : end) - name);
    if (nlen == 0 || nlen >= sizeof r->model_name) return &route_not_found;
    memcpy(r->model_name, name, nlen);
    r->model_name[nlen] = 0;
    const char *rest = slash ? slash : end;
    if (!strncmp(rest, "/versions/", 10)) { /* one version, "1" */
        const char *v = rest + 10, *vend = memchr(v, '/', (size_t)(end - v));
        if (!vend) vend = end;
        if (vend - v != 1 || *v != '1') return &route_not_found;
        rest = vend;
    }
    size_t rlen = (size_t)(end - rest);
    if (rlen == 0) return route_by_id(SRV_ROUTE_V2_MODEL);
    if (rlen == 6 && !memcmp(rest, "/ready", 6)) return route_by_id(SRV_ROUTE_V2_MODEL_READY);
    if (rlen == 6 && !memcmp(rest, "/infer", 6)) return route_by_id(SRV_ROUTE_V2_INFER);
    return &route_not_found;
}

static unsigned method_bit(const char *m) {
    if (!strcmp(m, "GET")) return M_GET;
    if (!strcmp(m, "HEAD")) return M_HEAD;
    if (!strcmp(m, "POST")) return M_POST;
    if (!strcmp(m, "OPTIONS")) return M_OPTIONS;
    return 0;
}

/* Constant-time check of "Authorization: Bearer <key>". */
static int authorized(srv_request_t *r) {
    const char *key = r->s->cfg.api_key;
    if (!key[0]) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t hl = strlen(h), kl = strlen(key);
    unsigned char diff = hl != kl;
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(key[i] ^ (i < hl ? h[i] : 0));
    return diff == 0;
}

/* Accepts JSON, and no Content-Type or curl's default for -d (documented in api/README.md). */
static int content_type_ok(srv_request_t *r) {
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return 1;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, "; ");
    return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
           (n == 33 && !strncasecmp(ct, "application/x-www-form-urlencoded", 33));
}

/* Answers a CORS preflight (or a plain OPTIONS). */
static int r_preflight(srv_request_t *r, api_error_t *err) {
    (void)err;
    hdr_t extra[4] = {{MHD_HTTP_HEADER_ALLOW, allow_header(r->route->methods)}};
    size_t n = 1;
    if (r->s->cfg.cors_origin[0]) {
        extra[n++] = (hdr_t){"Access-Control-Allow-Methods", allow_header(r->route->methods)};
        extra[n++] = (hdr_t){"Access-Control-Allow-Headers", "Authorization, Content-Type"};
        extra[n++] = (hdr_t){"Access-Control-Max-Age", "600"};
    }
    return respond(r, 204, "text/plain", (char *)"", 0, 0, extra, n) < 0 ? -2 : 0;
}

/* 1 when the request announces a body (Content-Length > 0, or chunked). */
static int announces_body(srv_request_t *r) {
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) return strtoull(cl, NULL, 10) > 0;
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* The first call of a request: everything decided before any body byte. Returns 0 with
 * r->state READING (an inference body follows) or DISCARDING (r->final runs at the last call),
 * or -1 with err set. */
static int first_call(srv_request_t *r, api_error_t *err) {
    const route_t *rt = r->route;
    r->state = REQ_DISCARDING;
    if (rt == &route_not_found) {
        char q[64];
        snprintf(q, sizeof q, "%.60s", r->path);
        return api_error_set(err, API_ERR_NOT_FOUND, "no route %s %s (GET /openapi.json lists them)", r->method_name,
                             q);
    }
    if (r->method == M_OPTIONS) {
        r->final = r_preflight;
        return 0;
    }
    if (!(rt->methods & r->method))
        return api_error_set(err, API_ERR_METHOD_NOT_ALLOWED, "%s does not take %s (allowed: %s)",
                             srv_route_name(rt->id), r->method_name, allow_header(rt->methods));
    if (rt->auth && !authorized(r))
        return api_error_set(err, API_ERR_UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY)");
    if (!rt->body) {
        r->final = rt->fn;
        return 0;
    }
    if (!content_type_ok(r))
        return api_error_set(err, API_ERR_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (v > (unsigned long long)r->s->cfg.body_max_bytes)
            return api_error_set(err, API_ERR_BODY_TOO_LARGE, "the body is %llu bytes; the limit is %d", v,
                                 r->s->cfg.body_max_bytes);
        if (v > 0 && end != cl && !(r->body = malloc((size_t)v + 1)))
            return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory for the body");
        if (r->body) r->body_cap = (size_t)v + 1;
    }
    r->final = rt->fn;
    r->state = REQ_READING;
    return 0;
}

/* Appends a body chunk (or drops it past the cap). */
static void body_append(srv_request_t *r, const char *data, size_t n) {
    if (r->state == REQ_DISCARDING) return;
    size_t max = (size_t)r->s->cfg.body_max_bytes;
    if (r->body_len + n > max) {
        api_error_set(&r->deferred, API_ERR_BODY_TOO_LARGE, "the body is over the limit of %zu bytes", max);
        r->final = NULL;
        goto discard;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + n + 1) cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            api_error_set(&r->deferred, API_ERR_OUT_OF_MEMORY, "out of memory for the body");
            r->final = NULL;
            goto discard;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return;
discard:
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    r->state = REQ_DISCARDING;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_cls) {
    (void)version;
    srv_t *s = cls;
    srv_request_t *r = *req_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *req_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        atomic_fetch_add_explicit(&s->arrivals, 1, memory_order_relaxed);
        r->s = s;
        r->conn = conn;
        r->t_start_ns = srv_now_ns();
        r->method = method_bit(method);
        copy_cut(r->method_name, sizeof r->method_name, method);
        copy_cut(r->path, sizeof r->path, url);
        api_request_init(&r->req);
        r->route = route_match(r, url);
        if (!r->method && r->route != &route_not_found) r->method = 0x100; /* unknown: 405 */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->sock = ci ? ci->socket_context : NULL;
        if (first_call(r, &r->deferred) < 0) {
            /* Refuse a body before it is sent (MHD then closes the connection); otherwise
             * answer at the last call, which keeps the connection alive. */
            if (announces_body(r)) {
                if (r->sock) atomic_store(&r->sock->busy, 1);
                return respond_error(r, &r->deferred) == 0 ? MHD_YES : MHD_NO;
            }
            r->final = NULL;
        }
        return MHD_YES;
    }
    switch (r->state) {
    case REQ_READING:
    case REQ_DISCARDING:
        if (*upload_size) {
            body_append(r, upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (r->sock) atomic_store(&r->sock->busy, 1); /* whole: no deadline while we answer */
        if (!r->final) return respond_error(r, &r->deferred) == 0 ? MHD_YES : MHD_NO;
        return run(r, r->final);
    case REQ_DONE: return run(r, r_answer);
    case REQ_ANSWERED:
        *upload_size = 0; /* a body after an early answer: MHD drops it with the connection */
        return MHD_YES;
    default: return MHD_NO; /* not reached: a queued request is suspended */
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    srv_t *s = cls;
    srv_request_t *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    if (r->sock) { /* the wait for the next request starts now */
        atomic_store(&r->sock->since_ns, srv_now_ns());
        atomic_store(&r->sock->busy, 0);
    }
    SRV_ASSERT(r->state != REQ_QUEUED); /* a suspended request is never completed */
    uint64_t now = srv_now_ns();
    double secs = (double)(now - r->t_start_ns) / 1e9;
    srv_metrics_request(&s->metrics, r->route->id, r->status, secs);
    if (srv_log_enabled(CFG_LOG_INFO)) {
        int ran = r->job.t_start_ns != 0;
        srv_access_t a = {r->method_name,
                          r->path,
                          r->status,
                          secs * 1e3,
                          r->n,
                          r->tokens,
                          r->job.batch_max,
                          ran ? (double)(r->job.t_start_ns - r->job.t_submit_ns) / 1e6 : -1,
                          ran ? (double)(r->job.t_end_ns - r->job.t_start_ns) / 1e6 : -1,
                          r->model ? r->model->name : NULL};
        srv_log_access(&a);
    }
    for (size_t i = 0; r->seqs && i < r->n; i++) tok_seq_deinit(&r->seqs[i]);
    if (r->seqs != &r->seq1) free(r->seqs);
    if (r->items != &r->item1) free(r->items);
    free(r->arena);
    free(r->body);
    api_request_deinit(&r->req);
    if (r->submitted) atomic_fetch_sub(&s->answering, 1);
    free(r);
    atomic_fetch_sub(&s->inflight, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Connections and the whole-request deadline */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    srv_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        srv_conn_t *c = ci ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c) return; /* untracked: MHD's idle timeout still applies */
        c->fd = ci->connect_fd;
        atomic_init(&c->since_ns, srv_now_ns());
        atomic_init(&c->busy, 0);
        uv_mutex_lock(&s->conns_lock);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        uv_mutex_unlock(&s->conns_lock);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn_t *c = *socket_context;
        *socket_context = NULL;
        if (!c) return;
        uv_mutex_lock(&s->conns_lock);
        if (c->prev) c->prev->next = c->next;
        else s->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        uv_mutex_unlock(&s->conns_lock);
        free(c);
    }
}

void srv_http_sweep(srv_t *s) {
    const uint64_t now = srv_now_ns(), limit = (uint64_t)s->cfg.connection_timeout_s * 1000000000u;
    int late = 0, gone = 0;
    uv_mutex_lock(&s->conns_lock);
    for (srv_conn_t *c = s->conns; c; c = c->next) {
        if (c->cut || atomic_load(&c->busy)) continue;
        uint64_t since = atomic_load(&c->since_ns); /* may be later than now: set meanwhile */
        int is_late = limit && since < now && now - since >= limit;
        /* A client that closed in the middle of a request can never finish it; libmicrohttpd
         * 0.9.75 with epoll misses a FIN that arrives together with a partial body (the socket
         * sits in CLOSE_WAIT until the timeout). Looking does not consume anything. */
        struct pollfd p = {c->fd, POLLRDHUP, 0};
        int is_gone = !is_late && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
        if (!is_late && !is_gone) continue;
        shutdown(c->fd, SHUT_RDWR); /* MHD sees the end of the stream and closes it */
        c->cut = 1;
        late += is_late;
        gone += is_gone;
    }
    uv_mutex_unlock(&s->conns_lock);
    if (late || gone)
        srv_log(CFG_LOG_DEBUG, "closed %d connections with no whole request in %d s, %d closed by the client", late,
                s->cfg.connection_timeout_s, gone);
}

/* ------------------------------------------------------------------------------------------ */
/* Daemon */

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    srv_log(CFG_LOG_WARN, "libmicrohttpd: %s", msg);
}

int srv_http_start(srv_t *s, char *err, size_t errlen) {
    const cfg_t *c = &s->cfg;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* TURBO: try reads and writes before asking epoll (they mostly succeed under load). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)c->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--host '%s' is not an IP address", c->host);
        return -1;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first, to catch every message */
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, c->connection_timeout_s, NULL},
        /* Per-connection memory for headers and I/O buffers; MHD zeroes it for every request,
         * so half its default is a measurable saving. Headers over ~14 KiB get 431. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONNECTION_MEMORY, NULL},
        {c->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, c->http_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %d (in use, or not an address of this machine?)", c->host,
                 c->port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (unsigned)c->port;
    s->listen_fd = -1;
    return 0;
}

void srv_http_quiesce(srv_t *s) {
    if (!s->daemon || s->listen_fd >= 0) return;
    int fd = s->listen_fd = MHD_quiesce_daemon(s->daemon);
    if (fd < 0) return;
    /* Connections the kernel already completed are in the backlog: they would be reset by the
     * shutdown below, after their clients may have sent a request. Hand them to MHD (which
     * closes the socket if it cannot take it); they are served like the open ones. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (int n = 0; n < 4096; n++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int c = accept(fd, (struct sockaddr *)&ss, &len);
        if (c < 0) break;
        fcntl(c, F_SETFD, FD_CLOEXEC);
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
        MHD_add_connection(s->daemon, c, (struct sockaddr *)&ss, len);
    }
    /* Then stop the kernel from accepting into the backlog; the fd itself is closed after
     * MHD_stop_daemon (MHD's threads may still hold it until then). */
    shutdown(fd, SHUT_RDWR);
}

void srv_http_stop(srv_t *s) {
    if (!s->daemon) return;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
}
