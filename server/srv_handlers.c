/* srv_handlers.c - the routes answered from memory: health and readiness (own and KServe's),
 * the model list and metadata, /metrics, the OpenAPI document, the web page, and the OPTIONS
 * preflight. One function per row of srv_routes.def (inference: srv_infer.c).
 *
 * DESIGN
 * Everything here runs on an HTTP thread within one access-handler call and never blocks: the
 * bodies about models were built with the model set the request took at its first call
 * (srv_models.c; a reload builds the next set), the others are a few bytes encoded by api_. Each handler returns an srv_outcome_t; a failure sets *err and the one error wrapper
 * in srv_http.c answers it.
 */
#include <string.h>

#include "page.h"
#include "srv.h"

srv_outcome_t srv_require_ready(srv_request_t *r, api_error_t *err) {
    /* r->set is NULL for a request that arrived before the first set was published. */
    if (atomic_load_explicit(&r->s->ready, memory_order_acquire) && r->set) return SRV_CONTINUE;
    return SRV_FAIL(err, API_ERR_NOT_READY, "the models are still loading");
}

/* Ready and not draining: SRV_CONTINUE, else SRV_FAILED (503). */
static srv_outcome_t require_serving(srv_request_t *r, api_error_t *err) {
    if (atomic_load(&r->s->draining)) return SRV_FAIL(err, API_ERR_DRAINING, "the server is shutting down");
    return srv_require_ready(r, err);
}

const srv_model_t *srv_path_model(srv_request_t *r, api_error_t *err) {
    if (srv_require_ready(r, err) != SRV_CONTINUE) return NULL;
    const srv_model_t *m = srv_modelset_find(r->set, r->model_name);
    if (m) return m;
    api_error_set(err, API_ERR_MODEL_NOT_FOUND, "no model called \"%s\" (GET /v1/models lists them)", r->model_name);
    return NULL;
}

/* A static body (not freed). */
static srv_outcome_t respond_static(srv_request_t *r, const char *body, size_t len) {
    return srv_respond(r, 200, "application/json", (char *)body, len, 0, NULL, 0);
}

srv_outcome_t srv_h_healthz(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_status_body("status", "ok", &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_readyz(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = require_serving(r, err);
    if (o != SRV_CONTINUE) return o;
    size_t len = 0;
    char *body = api_status_body("status", "ready", &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_v2_live(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_flag_body(NULL, "live", 1, &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_v2_ready(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = require_serving(r, err);
    if (o != SRV_CONTINUE) return o;
    size_t len = 0;
    char *body = api_flag_body(NULL, "ready", 1, &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_v2_server(srv_request_t *r, api_error_t *err) {
    size_t len = 0;
    char *body = api_kserve_server_body(SRV_VERSION, &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_openapi(srv_request_t *r, api_error_t *err) {
    (void)err;
    return respond_static(r, api_openapi_json, strlen(api_openapi_json));
}

/* GET / and /index.html: the embedded page (page.h), public like the health routes. */
srv_outcome_t srv_h_page(srv_request_t *r, api_error_t *err) {
    (void)err;
    size_t len;
    const unsigned char *page = srv_page_get(&len);
    int fresh = srv_page_not_modified(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH));
    const srv_header_t extra[] = {{"Content-Security-Policy", srv_page_csp()},
                                  {MHD_HTTP_HEADER_CACHE_CONTROL, SRV_PAGE_CACHE_CONTROL},
                                  {MHD_HTTP_HEADER_ETAG, srv_page_etag()},
                                  {"X-Content-Type-Options", "nosniff"},
                                  {"Referrer-Policy", "no-referrer"}};
    return srv_respond(r, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, SRV_PAGE_CONTENT_TYPE,
                       fresh ? (char *)"" : (char *)page, fresh ? 0 : len, 0, extra, sizeof extra / sizeof *extra);
}

srv_outcome_t srv_h_models(srv_request_t *r, api_error_t *err) {
    srv_outcome_t o = srv_require_ready(r, err);
    if (o != SRV_CONTINUE) return o;
    return respond_static(r, r->set->models_body, r->set->models_body_len);
}

srv_outcome_t srv_h_v2_model(srv_request_t *r, api_error_t *err) {
    const srv_model_t *m = srv_path_model(r, err);
    if (!m) return SRV_FAILED;
    return respond_static(r, m->meta_body, m->meta_len);
}

srv_outcome_t srv_h_v2_model_ready(srv_request_t *r, api_error_t *err) {
    const srv_model_t *m = srv_path_model(r, err);
    if (!m) return SRV_FAILED;
    if (atomic_load(&r->s->draining)) return SRV_FAIL(err, API_ERR_DRAINING, "the server is shutting down");
    size_t len = 0;
    char *body = api_flag_body(m->name, "ready", 1, &len);
    return srv_respond_json(r, 200, body, len, err);
}

srv_outcome_t srv_h_metrics(srv_request_t *r, api_error_t *err) {
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
                              ready && r->set ? r->set->n : 0,
                              r->set ? r->set->metric_names : NULL,
                              r->set ? r->set->metric_infos : NULL,
                              s->budget.limit,
                              srv_budget_used(&s->budget),
                              srv_budget_peak(&s->budget),
                              srv_budget_refused(&s->budget),
                              atomic_load_explicit(&s->conns_refused, memory_order_relaxed)};
    size_t len;
    char *body = srv_metrics_render(&s->metrics, &g, &len);
    if (!body) return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory while rendering metrics");
    return srv_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, 1, NULL, 0);
}

/* A CORS preflight (or a plain OPTIONS) on any route. */
srv_outcome_t srv_h_preflight(srv_request_t *r, api_error_t *err) {
    (void)err;
    const char *allow = srv_route_allow(r->route->methods);
    srv_header_t extra[4] = {{MHD_HTTP_HEADER_ALLOW, allow}};
    size_t n = 1;
    if (r->s->cfg.cors_origin[0]) {
        extra[n++] = (srv_header_t){"Access-Control-Allow-Methods", allow};
        extra[n++] = (srv_header_t){"Access-Control-Allow-Headers", "Authorization, Content-Type"};
        extra[n++] = (srv_header_t){"Access-Control-Max-Age", "600"};
    }
    return srv_respond(r, 204, "text/plain", (char *)"", 0, 0, extra, n);
}
