/* srv_reload.c - hot reload: SIGHUP (every model of the repository, and the API key file) and
 * the repository routes (load or unload one model), without a failed request.
 *
 * DESIGN
 * Requests (srv_reload_req_t) queue in arrival order under r->lock. The loop thread starts one
 * reload thread when there is work and none runs; that thread takes requests until none is left,
 * then marks itself finished and wakes the loop (uv_async), which joins it, calls each finished
 * request's done, and frees the models that lost their last reference (srv_models_collect).
 * The reload thread is the only writer of the served set, so each request reads the current
 * set, builds the next one, and publishes it (srv_models_publish) without racing anyone.
 *
 * Off the serving path: loading, checking (the loader validates everything; the warm-up batch
 * must give finite probabilities) and warming (each worker context runs one batch) happen on
 * the reload thread; the loop, the HTTP threads and the workers never wait for it. A model that
 * did not change (same directory; each file the same inode, size and modification time: nothing
 * is read) is kept as it is; a changed one is loaded again (its version may come out the same,
 * e.g. after a copy of the same bytes; it then serves on, the same version); a model that
 * fails to load leaves the old one serving, with the reason logged; the set never becomes empty,
 * so /readyz never drops. Requests queued or running keep the set they started with (srv_models.c),
 * and a replaced model's memory goes when its last request ends.
 *
 * Shutdown: srv_reload_close (loop thread) waits for the running reload thread, then fails the
 * requests that never started with "draining".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

struct srv_reload {
    srv_t *s;
    uv_async_t async;            /* loop: a request arrived, or the thread finished one */
    uv_mutex_t lock;             /* guards the fields below */
    srv_reload_req_t *pending;   /* not started, oldest first */
    srv_reload_req_t *finished;  /* done() not called yet, newest first */
    int running;                 /* a thread was started and not joined */
    int thread_exited;           /* it took the last request and is about to return */
    int closed;
    uv_thread_t thread;
    uv_signal_t sig_hup;         /* loop */
};

/* ------------------------------------------------------------------------------------------ */
/* The work (reload thread) */

/* Appends a name to a comma-separated list in out (cap bytes). */
static void list_add(char *out, size_t cap, const char *name) {
    size_t k = strlen(out);
    if (k + 1 < cap) snprintf(out + k, cap - k, "%s%.127s", k ? ", " : "", name);
}

/* Publishes the models[0..n) as the new set (the caller keeps its own references). */
static int publish(srv_t *s, srv_model_t *const *models, size_t n, api_error_t *err) {
    srv_modelset_t *set;
    if (srv_modelset_new(s, models, n, &set) < 0) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory");
    srv_models_publish(s, set);
    return 0;
}

/* SIGHUP: the whole repository. Every model is kept, loaded or dropped; the outcome is logged. */
static void reload_all(srv_t *s, srv_reload_req_t *req) {
    uint64_t t0 = srv_now_ns();
    char err[1024];
    if (s->cfg.api_key_file[0] && srv_keys_reload(s, err, sizeof err) < 0)
        srv_log(CFG_LOG_ERROR, "reload: cannot read the API keys, keeping the ones in use: %s", err);
    srv_repo_entry_t repo[SRV_MAX_MODELS];
    size_t n_repo;
    if (srv_repo_list(s, repo, &n_repo, err, sizeof err) < 0) {
        srv_log(CFG_LOG_ERROR, "reload: %s; keeping the models served", err);
        api_error_set(&req->err, API_ERR_INTERNAL, "%s", err);
        return;
    }
    srv_modelset_t *cur = srv_models_get(s);
    srv_model_t *next[SRV_MAX_MODELS];
    size_t n = 0;
    char loaded[1024] = "", kept[1024] = "", failed[1024] = "", removed[1024] = "";
    for (size_t i = 0; i < n_repo; i++) {
        srv_model_t *old = srv_modelset_find(cur, repo[i].name), *m = NULL;
        if (old && srv_model_unchanged(old, &repo[i])) {
            next[n++] = srv_model_ref(old);
            list_add(kept, sizeof kept, old->name);
            continue;
        }
        if (srv_model_build(s, &repo[i], &m, err, sizeof err) == 0) {
            srv_log(CFG_LOG_INFO, "reload: model %s version %s%s%s", m->name, m->version,
                    old ? " replaces " : " added", old ? old->version : "");
            next[n++] = m;
            list_add(loaded, sizeof loaded, m->name);
            continue;
        }
        if (old) {
            srv_log(CFG_LOG_ERROR, "reload: cannot load model %s: %s; still serving version %s", repo[i].name, err,
                    old->version);
            next[n++] = srv_model_ref(old);
        } else {
            srv_log(CFG_LOG_ERROR, "reload: cannot load model %s: %s; not served", repo[i].name, err);
        }
        list_add(failed, sizeof failed, repo[i].name);
    }
    for (size_t i = 0; cur && i < cur->n; i++) {
        int found = 0;
        for (size_t k = 0; k < n_repo && !found; k++) found = !strcmp(repo[k].name, cur->models[i]->name);
        if (!found) list_add(removed, sizeof removed, cur->models[i]->name);
    }
    srv_repo_free(repo, n_repo);
    if (n == 0) {
        srv_log(CFG_LOG_ERROR, "reload: no model of the repository could be loaded; keeping the models served");
        api_error_set(&req->err, API_ERR_MODEL_LOAD_FAILED, "no model could be loaded");
    } else if (publish(s, next, n, &req->err) == 0) {
        srv_log(CFG_LOG_INFO, "reload done in %.1f ms: %zu model%s; loaded [%s], unchanged [%s], removed [%s], failed [%s]",
                (double)(srv_now_ns() - t0) / 1e6, n, n == 1 ? "" : "s", loaded, kept, removed, failed);
    }
    for (size_t i = 0; i < n; i++) srv_model_unref(s, next[i]);
    srv_modelset_unref(s, cur);
}

/* POST /v2/repository/models/{name}/load: that model, new or changed; the others as they are. */
static void reload_one(srv_t *s, srv_reload_req_t *req) {
    uint64_t t0 = srv_now_ns();
    char err[1024];
    srv_repo_entry_t repo[SRV_MAX_MODELS];
    size_t n_repo;
    if (srv_repo_list(s, repo, &n_repo, err, sizeof err) < 0) {
        api_error_set(&req->err, API_ERR_INTERNAL, "%s", err);
        return;
    }
    size_t at = 0;
    while (at < n_repo && strcmp(repo[at].name, req->name) != 0) at++;
    srv_modelset_t *cur = srv_models_get(s);
    srv_model_t *old = srv_modelset_find(cur, req->name), *m = NULL;
    if (at == n_repo) {
        api_error_set(&req->err, API_ERR_MODEL_NOT_FOUND, "no model called \"%.100s\" in the repository", req->name);
        goto out;
    }
    if (old && srv_model_unchanged(old, &repo[at])) {
        memcpy(req->version, old->version, sizeof req->version); /* already served as it is */
        goto out;
    }
    if (srv_model_build(s, &repo[at], &m, err, sizeof err) < 0) {
        srv_log(CFG_LOG_ERROR, "load: cannot load model %s: %s%s%s", req->name, err,
                old ? "; still serving version " : "", old ? old->version : "");
        api_error_set(&req->err, API_ERR_MODEL_LOAD_FAILED, "cannot load model %.100s: %.300s", req->name, err);
        goto out;
    }
    /* The new set: the repository's order, among the models served and this one. */
    srv_model_t *next[SRV_MAX_MODELS];
    size_t n = 0;
    for (size_t i = 0; i < n_repo; i++) {
        srv_model_t *x = i == at ? m : srv_modelset_find(cur, repo[i].name);
        if (x) next[n++] = x;
    }
    for (size_t i = 0; cur && i < cur->n; i++) { /* served, gone from the repository: stays till SIGHUP */
        int listed = 0;
        for (size_t k = 0; k < n_repo && !listed; k++) listed = !strcmp(repo[k].name, cur->models[i]->name);
        if (!listed && n < SRV_MAX_MODELS) next[n++] = cur->models[i];
    }
    if (publish(s, next, n, &req->err) == 0) {
        memcpy(req->version, m->version, sizeof req->version);
        srv_log(CFG_LOG_INFO, "load: model %s version %s%s%s in %.1f ms", m->name, m->version,
                old ? " replaces " : " added", old ? old->version : "", (double)(srv_now_ns() - t0) / 1e6);
    }
    srv_model_unref(s, m);
out:
    srv_repo_free(repo, n_repo);
    srv_modelset_unref(s, cur);
}

/* POST /v2/repository/models/{name}/unload. */
static void unload_one(srv_t *s, srv_reload_req_t *req) {
    srv_modelset_t *cur = srv_models_get(s);
    srv_model_t *old = srv_modelset_find(cur, req->name);
    if (!old) {
        api_error_set(&req->err, API_ERR_MODEL_NOT_FOUND, "no model called \"%.100s\" is loaded", req->name);
    } else if (cur->n == 1) {
        api_error_set(&req->err, API_ERR_LAST_MODEL,
                      "%.100s is the only model served: unloading it would leave the server not ready", req->name);
    } else {
        srv_model_t *next[SRV_MAX_MODELS];
        size_t n = 0;
        for (size_t i = 0; i < cur->n; i++)
            if (cur->models[i] != old) next[n++] = cur->models[i];
        if (publish(s, next, n, &req->err) == 0)
            srv_log(CFG_LOG_INFO, "unload: model %s version %s is no longer served", old->name, old->version);
    }
    srv_modelset_unref(s, cur);
}

static void reload_thread(void *arg) {
    srv_t *s = arg;
    struct srv_reload *r = s->reload;
    for (;;) {
        uv_mutex_lock(&r->lock);
        srv_reload_req_t *req = r->pending;
        if (req) r->pending = req->next;
        else r->thread_exited = 1;
        uv_mutex_unlock(&r->lock);
        if (!req) break;
        req->err.kind = API_ERR_NONE;
        req->err.message[0] = 0;
        switch (req->kind) {
        case SRV_RELOAD_ALL: reload_all(s, req); break;
        case SRV_RELOAD_LOAD: reload_one(s, req); break;
        case SRV_RELOAD_UNLOAD: unload_one(s, req); break;
        }
        uv_mutex_lock(&r->lock);
        req->next = r->finished;
        r->finished = req;
        uv_mutex_unlock(&r->lock);
        uv_async_send(&r->async);
    }
    uv_async_send(&r->async);
}

/* ------------------------------------------------------------------------------------------ */
/* The loop side */

static srv_reload_req_t *reversed(srv_reload_req_t *list) {
    srv_reload_req_t *out = NULL;
    while (list) {
        srv_reload_req_t *next = list->next;
        list->next = out;
        out = list;
        list = next;
    }
    return out;
}

/* Calls done for each request of a list, in its order (done may free the request). */
static void finish(srv_reload_req_t *list) {
    while (list) {
        srv_reload_req_t *next = list->next;
        list->done(list);
        list = next;
    }
}

static void on_async(uv_async_t *h) {
    srv_t *s = h->data;
    struct srv_reload *r = s->reload;
    SRV_ASSERT_LOOP_THREAD(s);
    uv_mutex_lock(&r->lock);
    srv_reload_req_t *done = r->finished;
    r->finished = NULL;
    int join = r->running && r->thread_exited;
    uv_mutex_unlock(&r->lock);
    if (join) {
        uv_thread_join(&r->thread);
        r->running = 0;
        r->thread_exited = 0;
    }
    finish(reversed(done)); /* finished is newest first */
    srv_models_collect(s);
    uv_mutex_lock(&r->lock);
    int start = !r->running && !r->closed && r->pending;
    if (start) r->running = 1;
    uv_mutex_unlock(&r->lock);
    if (start && uv_thread_create(&r->thread, reload_thread, s) != 0) {
        srv_log(CFG_LOG_ERROR, "reload: cannot start a thread; the reload requests fail");
        uv_mutex_lock(&r->lock);
        srv_reload_req_t *failed = r->pending;
        r->pending = NULL;
        r->running = 0;
        uv_mutex_unlock(&r->lock);
        for (srv_reload_req_t *q = failed; q; q = q->next) api_error_set(&q->err, API_ERR_INTERNAL, "no thread");
        finish(failed); /* pending is oldest first */
    }
}

static void free_req(srv_reload_req_t *req) { free(req); }

void srv_reload_request(srv_t *s, srv_reload_req_t *req) {
    struct srv_reload *r = s->reload;
    req->next = NULL;
    api_error_set(&req->err, API_ERR_NONE, "%s", "");
    uv_mutex_lock(&r->lock);
    int closed = r->closed, dup = 0;
    if (!closed && req->kind == SRV_RELOAD_ALL && req->done == free_req)
        for (srv_reload_req_t *q = r->pending; q && !dup; q = q->next) dup = q->kind == SRV_RELOAD_ALL;
    if (!closed && !dup) {
        srv_reload_req_t **tail = &r->pending;
        while (*tail) tail = &(*tail)->next;
        *tail = req;
    }
    uv_mutex_unlock(&r->lock);
    if (dup) free(req); /* a SIGHUP while one waits: that one reads everything anyway */
    else if (!closed) uv_async_send(&r->async);
    else srv_log(CFG_LOG_WARN, "reload request ignored: shutting down");
    if (closed) {
        api_error_set(&req->err, API_ERR_DRAINING, "the server is shutting down");
        req->done(req);
    }
}

/* SIGHUP (loop thread). */
static void on_hup(uv_signal_t *h, int signum) {
    srv_t *s = h->data;
    (void)signum;
    srv_reload_req_t *req = calloc(1, sizeof *req);
    if (!req) {
        srv_log(CFG_LOG_ERROR, "SIGHUP: out of memory; no reload");
        return;
    }
    srv_log(CFG_LOG_INFO, "SIGHUP: reloading the models%s", s->cfg.api_key_file[0] ? " and the API keys" : "");
    req->kind = SRV_RELOAD_ALL;
    req->done = free_req;
    srv_reload_request(s, req);
}

int srv_reload_init(srv_t *s) {
    struct srv_reload *r = calloc(1, sizeof *r);
    if (!r || uv_mutex_init(&r->lock) < 0) {
        free(r);
        return -1;
    }
    r->s = s;
    s->reload = r;
    if (uv_async_init(&s->loop, &r->async, on_async) < 0) return -1;
    r->async.data = s;
    uv_signal_init(&s->loop, &r->sig_hup);
    r->sig_hup.data = s;
    uv_signal_start(&r->sig_hup, on_hup, SIGHUP);
    return 0;
}

void srv_reload_close(srv_t *s) {
    struct srv_reload *r = s->reload;
    if (!r || r->closed) return;
    uv_mutex_lock(&r->lock);
    r->closed = 1;
    srv_reload_req_t *never = r->pending;
    r->pending = NULL;
    int running = r->running;
    uv_mutex_unlock(&r->lock);
    if (running) { /* at most one reload's time: its requests still get their answer */
        uv_thread_join(&r->thread);
        r->running = 0;
    }
    for (srv_reload_req_t *q = never; q; q = q->next)
        api_error_set(&q->err, API_ERR_DRAINING, "the server is shutting down");
    uv_mutex_lock(&r->lock);
    srv_reload_req_t *done = r->finished;
    r->finished = NULL;
    uv_mutex_unlock(&r->lock);
    finish(reversed(done));
    finish(never);
    uv_close((uv_handle_t *)&r->async, NULL);
    uv_close((uv_handle_t *)&r->sig_hup, NULL);
}

void srv_reload_free(srv_t *s) {
    struct srv_reload *r = s->reload;
    if (!r) return;
    uv_mutex_destroy(&r->lock);
    free(r);
    s->reload = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* API keys */

int srv_keys_reload(srv_t *s, char *err, size_t errlen) {
    srv_keys_t *k;
    if (srv_keys_load(&k, s->cfg.api_key_file, err, errlen) < 0) return -1;
    for (size_t i = 0; i < srv_keys_count(k); i++)
        if (srv_metrics_key_slot(&s->metrics, srv_keys_name(k, i)) < 0) {
            srv_log(CFG_LOG_WARN, "API key %s: more than %d key names over the server's life; not counted in /metrics",
                    srv_keys_name(k, i), SRV_METRICS_MAX_KEYS);
            break;
        }
    uv_mutex_lock(&s->models_lock);
    srv_keys_t *old = s->keys;
    s->keys = k;
    uv_mutex_unlock(&s->models_lock);
    srv_keys_unref(old);
    srv_log(CFG_LOG_INFO, "API keys: %zu from %s", srv_keys_count(k), s->cfg.api_key_file);
    return 0;
}
