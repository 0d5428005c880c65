/* srv_repo.c - the model-repository routes (the KServe / Triton repository extension), on only
 * with --admin-key (404 otherwise; srv_http.c checks the key):
 *   POST /v2/repository/index                  the repository's models: READY (served, with its
 *                                              version) or UNAVAILABLE
 *   POST /v2/repository/models/{name}/load     load the model (new, or changed on disk)
 *   POST /v2/repository/models/{name}/unload   stop serving it
 *
 * DESIGN
 * index answers at once from the repository listing and the current set (an HTTP thread reads a
 * directory: a few system calls). load and unload are reload requests (srv_reload.c): the
 * handler suspends the connection and hands the request to the reload thread, whose done (loop
 * thread) resumes it; the resumed call answers (srv_repo_answer). So a load blocks no thread but
 * the reload thread, and has exactly the semantics of a SIGHUP for one model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

srv_outcome_t srv_h_repo_index(srv_request_t *r, api_error_t *err) {
    int ready_only;
    int rc = api_repo_index_parse(r->body, r->body_len, &ready_only, err);
    if (rc < 0) return SRV_FAILED;
    srv_repo_entry_t repo[SRV_MAX_MODELS];
    size_t n_repo;
    char why[512];
    if (srv_repo_list(r->s, repo, &n_repo, why, sizeof why) < 0) n_repo = 0; /* then: what is served */
    const srv_modelset_t *set = r->set;
    api_repo_model_t out[2 * SRV_MAX_MODELS];
    size_t n = 0;
    for (size_t i = 0; i < n_repo; i++) {
        const srv_model_t *m = srv_modelset_find(set, repo[i].name);
        if (ready_only && !m) continue;
        out[n++] = (api_repo_model_t){repo[i].name, m ? m->version : NULL, m ? "READY" : "UNAVAILABLE",
                                      m ? NULL : "not loaded"};
    }
    for (size_t i = 0; set && i < set->n; i++) { /* served, no longer in the repository */
        int listed = 0;
        for (size_t k = 0; k < n_repo && !listed; k++) listed = !strcmp(repo[k].name, set->models[i]->name);
        if (!listed)
            out[n++] = (api_repo_model_t){set->models[i]->name, set->models[i]->version, "READY",
                                          "no longer in the repository (served until the next reload)"};
    }
    size_t len = 0;
    char *body = api_repo_index_body(out, n, &len);
    srv_repo_free(repo, n_repo);
    return srv_respond_json(r, 200, body, len, err);
}

/* Loop thread: the reload thread is done with the request. */
static void on_reload_done(srv_reload_req_t *req) {
    srv_request_t *r = req->data;
    SRV_ASSERT(r->state == REQ_QUEUED);
    r->state = REQ_DONE;
    MHD_resume_connection(r->conn);
}

/* The resumed call: the outcome of the load or unload. */
static srv_outcome_t repo_answer(srv_request_t *r, api_error_t *err) {
    const srv_reload_req_t *req = r->reload;
    if (req->err.kind != API_ERR_NONE) {
        *err = req->err;
        return SRV_FAILED;
    }
    int load = req->kind == SRV_RELOAD_LOAD;
    api_repo_model_t m = {req->name, load ? req->version : NULL, load ? "READY" : "UNAVAILABLE", NULL};
    size_t len = 0;
    char *body = api_repo_model_body(&m, &len);
    return srv_respond_json(r, 200, body, len, err);
}

static srv_outcome_t repo_request(srv_request_t *r, srv_reload_kind_t kind, api_error_t *err) {
    if (!(r->reload = calloc(1, sizeof *r->reload)))
        return SRV_FAIL(err, API_ERR_OUT_OF_MEMORY, "out of memory for the request");
    r->reload->kind = kind;
    memcpy(r->reload->name, r->model_name, sizeof r->reload->name);
    r->reload->done = on_reload_done;
    r->reload->data = r;
    r->resumed = repo_answer;
    /* Suspend first: done (loop thread) must find the connection suspended. */
    r->state = REQ_QUEUED;
    MHD_suspend_connection(r->conn);
    srv_reload_request(r->s, r->reload);
    return SRV_SUSPENDED;
}

srv_outcome_t srv_h_repo_load(srv_request_t *r, api_error_t *err) { return repo_request(r, SRV_RELOAD_LOAD, err); }
srv_outcome_t srv_h_repo_unload(srv_request_t *r, api_error_t *err) {
    return repo_request(r, SRV_RELOAD_UNLOAD, err);
}
