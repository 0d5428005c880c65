/* srv_http.c - a request's life in libmicrohttpd's access handler: per-request state, the
 * policy every route shares (method, API key, Content-Type, body size), the one error wrapper,
 * and the only place a request is freed.
 *
 * DESIGN (threads: see srv.c for the whole picture)
 * MHD runs `http-threads` internal epoll threads with MHD_ALLOW_SUSPEND_RESUME (srv_daemon.c).
 * Everything in this file runs on those threads.
 *
 * A request's life (srv_http_on_request is called several times per request):
 *   1. First call: allocate srv_request_t into *req_cls; match the route (srv_route.c, the table
 *      in srv_routes.def); decide all that needs no body: unknown path 404, wrong method 405
 *      (+ Allow), preflight OPTIONS, missing API key 401, wrong Content-Type 415, a
 *      Content-Length over the cap 413. An error for a request that announces a body is
 *      answered now (MHD then closes the connection rather than read the body); everything
 *      else is answered at the last call, which keeps the connection alive (an answer queued at
 *      the first call always closes it).
 *   2. Body calls: append to r->body up to body-max-bytes; past it, drop the body and answer
 *      413 on the last call (MHD does not queue a response while upload data is arriving).
 *   3. Last call: the route's handler (srv_handlers.c; srv_infer.c for inference, which
 *      suspends the connection and hands the texts to the batch queue).
 *   4. Resumed call (inference): srv_infer_answer encodes the results.
 *   5. srv_http_on_completed (MHD_OPTION_NOTIFY_COMPLETED): access log, metrics, free
 *      everything. This is the only place a request is freed.
 * Every handler returns an srv_outcome_t; run() turns it into MHD's answer, and every failure
 * goes through respond_error(): one status mapping, one body shape.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv.h"
#include "srv_frame.h"

/* The handler of each route, bound from the table. */
static const srv_handler_fn handlers[SRV_ROUTE__COUNT] = {
#define SRV_ROUTE(id, pattern, methods, auth, body, handler) [SRV_ROUTE_##id] = handler,
#include "srv_routes.def"
#undef SRV_ROUTE
};

/* ------------------------------------------------------------------------------------------ */
/* Responses */

/* Copies s into out (cap bytes), cut if longer. */
static void copy_cut(char *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Adds the common headers (CORS, Connection: close when draining or the framing was unsound),
 * the content type and extra to resp, queues it and drops our reference. */
static srv_outcome_t queue_response(srv_request_t *r, unsigned status, struct MHD_Response *resp, const char *ctype,
                                    const srv_header_t *extra, size_t n_extra) {
    const cfg_t *c = &r->s->cfg;
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES;
    if (c->cors_origin[0]) {
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, c->cors_origin) == MHD_YES;
        ok &= MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                      "x-queue-time, x-inference-time, Retry-After, X-Request-Id, traceparent") ==
              MHD_YES;
        if (strcmp(c->cors_origin, "*") != 0) ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin") == MHD_YES;
    }
    if (r->close || atomic_load_explicit(&r->s->draining, memory_order_relaxed))
        ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    if (r->request_id[0]) ok &= MHD_add_response_header(resp, "X-Request-Id", r->request_id) == MHD_YES;
    if (r->traced) ok &= MHD_add_response_header(resp, "traceparent", r->traceparent) == MHD_YES;
    for (size_t i = 0; i < n_extra; i++) ok &= MHD_add_response_header(resp, extra[i].name, extra[i].value) == MHD_YES;
    if (ok) ok = MHD_queue_response(r->conn, status, resp) == MHD_YES;
    MHD_destroy_response(resp);
    if (!ok) return SRV_CLOSE;
    r->status = (int)status;
    r->state = REQ_ANSWERED;
    return SRV_ANSWERED;
}

srv_outcome_t srv_respond(srv_request_t *r, unsigned status, const char *ctype, char *body, size_t len, int must_free,
                          const srv_header_t *extra, size_t n_extra) {
    struct MHD_Response *resp =
        must_free ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
                  : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (must_free) free(body);
        return SRV_CLOSE;
    }
    return queue_response(r, status, resp, ctype, extra, n_extra);
}

srv_outcome_t srv_respond_stream(srv_request_t *r, unsigned status, const char *ctype, MHD_ContentReaderCallback reader,
                                 void *cls, const srv_header_t *extra, size_t n_extra) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SRV_STREAM_BLOCK, reader, cls, NULL);
    if (!resp) return SRV_CLOSE;
    return queue_response(r, status, resp, ctype, extra, n_extra);
}

srv_outcome_t srv_reserve(srv_request_t *r, size_t bytes, api_err_t too_large, const char *what, api_error_t *err) {
    srv_t *s = r->s;
    int rc = srv_budget_reserve(&s->budget, bytes);
    if (rc == 0) {
        r->reserved += bytes;
        return SRV_CONTINUE;
    }
    if (rc == -E2BIG)
        return SRV_FAIL(err, too_large, "%s would need %.2f MiB, more than the server's whole memory budget "
                        "(--max-memory-mb %d)", what, (double)bytes / (1 << 20), s->cfg.max_memory_mb);
    return SRV_FAIL(err, API_ERR_OVER_CAPACITY, "the server's memory budget (--max-memory-mb %d) is in use by other "
                    "requests; retry shortly", s->cfg.max_memory_mb);
}

srv_outcome_t srv_respond_json(srv_request_t *r, unsigned status, char *body, size_t len, api_error_t *err) {
    if (!body) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while encoding the response");
    return srv_respond(r, status, "application/json", body, len, 1, NULL, 0);
}

/* The one error wrapper: any failure of any route ends here. */
static srv_outcome_t respond_error(srv_request_t *r, const api_error_t *e) {
    static const char fallback[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
    size_t len = 0;
    char *body = api_error_body(e, &len);
    srv_header_t extra[2];
    size_t n = 0;
    switch (e->kind) {
    case API_ERR_METHOD_NOT_ALLOWED:
        extra[n++] = (srv_header_t){MHD_HTTP_HEADER_ALLOW, srv_route_allow(r->route->methods)};
        break;
    case API_ERR_QUEUE_FULL: extra[n++] = (srv_header_t){MHD_HTTP_HEADER_RETRY_AFTER, "1"}; break;
    case API_ERR_UNAUTHORIZED: extra[n++] = (srv_header_t){MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer"}; break;
    case API_ERR_NOT_READY:
    case API_ERR_DRAINING:
    case API_ERR_OVER_CAPACITY:
    case API_ERR_OUT_OF_MEMORY: extra[n++] = (srv_header_t){MHD_HTTP_HEADER_RETRY_AFTER, "1"}; break;
    default: break;
    }
    unsigned status = (unsigned)api_status_from_err(e->kind);
    if (!body) return srv_respond(r, status, "application/json", (char *)fallback, sizeof fallback - 1, 0, extra, n);
    return srv_respond(r, status, "application/json", body, len, 1, extra, n);
}

/* MHD's answer for an outcome: SRV_FAILED is answered by respond_error first. */
static enum MHD_Result finish(srv_request_t *r, srv_outcome_t o, const api_error_t *err) {
    if (o == SRV_FAILED) o = respond_error(r, err);
    return o == SRV_CLOSE ? MHD_NO : MHD_YES;
}

/* Runs a handler and answers its failure. */
static enum MHD_Result run(srv_request_t *r, srv_handler_fn fn) {
    api_error_t err = {API_ERR_INTERNAL, ""};
    return finish(r, fn(r, &err), &err);
}

/* ------------------------------------------------------------------------------------------ */
/* Policy: what is decided before the body */

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer(srv_request_t *r) {
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ') h++;
    return h;
}

/* The API key check (constant time, srv_keys.c): --api-key (its name: "api-key") or any key of
 * --api-key-file (its name from the file); the name goes to r->key_name and the key's metric.
 * Open (1) when neither is set. */
static int authorized(srv_request_t *r) {
    srv_t *s = r->s;
    const char *key = s->cfg.api_key;
    if (!key[0] && !s->cfg.api_key_file[0]) return 1;
    const char *h = bearer(r);
    if (!h) return 0;
    size_t hl = strlen(h);
    if (key[0] && srv_key_equal(h, hl, key, strlen(key))) {
        memcpy(r->key_name, "api-key", sizeof "api-key");
        srv_metrics_key_request(&s->metrics, s->api_key_slot);
        return 1;
    }
    uv_mutex_lock(&s->models_lock); /* the key set may be replaced by a reload */
    const char *name = srv_keys_match(s->keys, h, hl);
    if (name) copy_cut(r->key_name, sizeof r->key_name, name);
    uv_mutex_unlock(&s->models_lock);
    if (!name) return 0;
    srv_metrics_key_request(&s->metrics, srv_metrics_key_slot(&s->metrics, r->key_name));
    return 1;
}

/* The admin key (--admin-key) of the repository routes. */
static int admin_authorized(srv_request_t *r) {
    const char *h = bearer(r), *key = r->s->cfg.admin_key;
    return h && srv_key_equal(h, strlen(h), key, strlen(key));
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

/* 1 when the request announces a body (Content-Length > 0, or chunked). */
static int announces_body(srv_request_t *r) {
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) return strtoull(cl, NULL, 10) > 0;
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* The first call of a request: everything decided before any body byte. Returns SRV_CONTINUE
 * with r->state READING (a body follows) or DISCARDING (r->final runs at the last call), or
 * SRV_FAILED with err set. */
static srv_outcome_t first_call(srv_request_t *r, api_error_t *err) {
    const srv_route_t *rt = r->route;
    r->state = REQ_DISCARDING;
    if (rt->id == SRV_ROUTE_OTHER) {
        char q[64];
        snprintf(q, sizeof q, "%.60s", r->path);
        return SRV_FAIL(err, API_ERR_NOT_FOUND, "no route %s %s (GET /openapi.json lists them)", r->method_name, q);
    }
    if (rt->auth == 2 && !r->s->cfg.admin_key[0]) /* the repository routes are off: no such route */
        return SRV_FAIL(err, API_ERR_NOT_FOUND, "no route %s %s (the repository routes need --admin-key)",
                        r->method_name, rt->pattern);
    if (r->method == SRV_M_OPTIONS) {
        r->final = srv_h_preflight;
        return SRV_CONTINUE;
    }
    if (!(rt->methods & r->method))
        return SRV_FAIL(err, API_ERR_METHOD_NOT_ALLOWED, "%s does not take %s (allowed: %s)", rt->pattern,
                        r->method_name, srv_route_allow(rt->methods));
    if (rt->auth == 2 && !admin_authorized(r))
        return SRV_FAIL(err, API_ERR_UNAUTHORIZED, "missing or wrong admin key (Authorization: Bearer KEY)");
    if (rt->auth == 1 && !authorized(r))
        return SRV_FAIL(err, API_ERR_UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY)");
    r->final = handlers[rt->id];
    if (!rt->body) return SRV_CONTINUE;
    if (!content_type_ok(r))
        return SRV_FAIL(err, API_ERR_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (v > (unsigned long long)r->s->cfg.body_max_bytes)
            return SRV_FAIL(err, API_ERR_BODY_TOO_LARGE, "the body is %llu bytes; the limit is %d", v,
                            r->s->cfg.body_max_bytes);
        if (v > 0 && end != cl) {
            srv_outcome_t o = srv_reserve(r, SRV_BODY_FACTOR * ((size_t)v + 1), API_ERR_BODY_TOO_LARGE, "the body", err);
            if (o != SRV_CONTINUE) return o;
            r->body_reserved = (size_t)v + 1;
            if (!(r->body = malloc((size_t)v + 1)))
                return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the body");
        }
        if (r->body) r->body_cap = (size_t)v + 1;
    }
    r->state = REQ_READING;
    return SRV_CONTINUE;
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
        /* The body's reservation follows its capacity (chunked: it grows as it arrives). */
        if (cap > r->body_reserved) {
            if (srv_reserve(r, SRV_BODY_FACTOR * (cap - r->body_reserved), API_ERR_BODY_TOO_LARGE, "the body",
                            &r->deferred) != SRV_CONTINUE) {
                r->final = NULL;
                goto discard;
            }
            r->body_reserved = cap;
        }
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

/* ------------------------------------------------------------------------------------------ */
/* The access handler and the completion callback */

void *srv_http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    srv_request_t *r = calloc(1, sizeof *r);
    if (!r) return NULL; /* the access handler then allocates it, and routes on MHD's path */
    r->s = cls;
    r->conn = conn;
    r->state = REQ_NEW;
    r->t_start_ns = srv_now_ns();
    copy_cut(r->path, sizeof r->path, uri);
    r->path_rc = srv_path_normalize(uri, r->route_path, sizeof r->route_path, &r->path_why);
    return r;
}

static enum MHD_Result frame_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                    const char *value, size_t value_size) {
    (void)kind;
    srv_frame_header(cls, key, key_size, value, value_size);
    return MHD_YES;
}

/* The framing of the request's head (srv_frame.h): SRV_CONTINUE, or SRV_FAILED (400
 * bad_request or 501 not_implemented) with r->close set. */
static srv_outcome_t check_framing(srv_request_t *r, const char *version, api_error_t *err) {
    srv_frame_t f;
    srv_frame_init(&f, version);
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, frame_header, &f);
    const char *why;
    int status = srv_frame_verdict(&f, &why);
    if (status == 0) return SRV_CONTINUE;
    r->close = 1; /* whatever follows the head cannot be trusted to be a body or a request */
    return SRV_FAIL(err, status == 501 ? API_ERR_NOT_IMPLEMENTED : API_ERR_BAD_REQUEST, "unsound HTTP framing: %s",
                    why);
}

/* The first call: a new request (r from srv_http_on_uri, or NULL). */
static enum MHD_Result on_new(srv_t *s, srv_request_t *r, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, void **req_cls) {
    if (!r) { /* srv_http_on_uri could not allocate: try again, routing on MHD's (decoded) url */
        if (!(r = srv_http_on_uri(s, url, conn))) return MHD_NO;
        *req_cls = r;
    }
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add_explicit(&s->arrivals, 1, memory_order_relaxed);
    r->state = REQ_DISCARDING;
    r->method = srv_method_bit(method);
    copy_cut(r->method_name, sizeof r->method_name, method);
    api_request_init(&r->req);
    /* An unroutable path (too long) matches nothing: 404 from first_call. */
    r->route = srv_route_match(r->path_rc == 0 ? r->route_path : "", r->model_name, sizeof r->model_name);
    r->set = srv_models_get(s);
    srv_request_id_take(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id"), r->request_id);
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    if (tp && srv_traceparent_parse(tp, strlen(tp), &r->trace) == 0) {
        r->traced = 1;
        srv_traceparent_format(&r->trace, r->traceparent);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->sock = ci ? ci->socket_context : NULL;
    if (check_framing(r, version, &r->deferred) == SRV_FAILED) {
        if (r->sock) atomic_store(&r->sock->busy, 1);
        return finish(r, SRV_FAILED, &r->deferred); /* now, and close: nothing after the head is read */
    }
    srv_outcome_t o = SRV_CONTINUE;
    if (r->path_rc == -EINVAL) o = SRV_FAIL(&r->deferred, API_ERR_BAD_REQUEST, "%s", r->path_why);
    if (o == SRV_CONTINUE) o = first_call(r, &r->deferred);
    if (o == SRV_FAILED) {
        /* Refuse a body before it is sent (MHD then closes the connection); otherwise answer at
         * the last call, which keeps the connection alive. */
        if (announces_body(r)) {
            if (r->sock) atomic_store(&r->sock->busy, 1);
            return finish(r, SRV_FAILED, &r->deferred);
        }
        r->final = NULL;
    }
    return MHD_YES;
}

enum MHD_Result srv_http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload, size_t *upload_size, void **req_cls) {
    srv_request_t *r = *req_cls;
    if (!r || r->state == REQ_NEW) return on_new(cls, r, conn, url, method, version, req_cls);
    switch (r->state) {
    case REQ_READING:
    case REQ_DISCARDING:
        if (*upload_size) {
            body_append(r, upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (r->sock) atomic_store(&r->sock->busy, 1); /* whole: no deadline while we answer */
        if (!r->final) return finish(r, SRV_FAILED, &r->deferred);
        return run(r, r->final);
    case REQ_DONE: return run(r, r->resumed ? r->resumed : srv_infer_answer);
    case REQ_ANSWERED:
        *upload_size = 0; /* a body after an early answer: MHD drops it with the connection */
        return MHD_YES;
    default: return MHD_NO; /* not reached: a queued request is suspended */
    }
}

void srv_http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                           enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    srv_t *s = cls;
    srv_request_t *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    if (r->state == REQ_NEW) { /* libmicrohttpd answered it itself (a malformed head): never ours */
        free(r);
        return;
    }
    uint64_t now = srv_now_ns();
    if (r->sock) { /* the wait for the next request starts now */
        atomic_store(&r->sock->since_ns, now);
        atomic_store(&r->sock->busy, 0);
    }
    SRV_ASSERT(r->state != REQ_QUEUED); /* a suspended request is never completed */
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
                          r->model ? r->model->name : r->routed ? SRV_MODEL_AUTO : NULL,
                          r->model ? r->model->version : NULL,
                          r->request_id,
                          r->traced ? &r->trace : NULL,
                          r->key_name[0] ? r->key_name : NULL};
        srv_log_access(&a);
    }
    srv_infer_release(r);
    srv_modelset_unref(s, r->set); /* r->model pointed into it */
    free(r->reload);
    free(r->body);
    srv_budget_release(&s->budget, r->reserved);
    free(r);
    atomic_fetch_sub(&s->inflight, 1);
}
