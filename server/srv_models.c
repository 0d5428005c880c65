/* srv_models.c - the served models: the repository (which directories: --model NAME=DIR..., or
 * every model directory under --models-dir), loading one model with the engine settings of the
 * configuration, and the model sets that are served, with their lifetime.
 *
 * DESIGN
 * A model (srv_model_t) is built whole by srv_model_build on whatever thread loads it (main at
 * startup, the reload thread later): the engine loads and checks the files, the queue's worker
 * contexts are made and warmed with one batch each, and the bodies and labels about it are
 * encoded. Then it never changes. A model set (srv_modelset_t) is the list served at one moment,
 * with the bodies about the list; it holds one reference on each of its models, so consecutive
 * sets share the models a reload did not change.
 *
 * s->set is the current set, read and replaced under s->models_lock: a request takes it with a
 * reference at its first call (srv_models_get) and drops it at its end, so requests that are
 * queued or running when a reload swaps the set (srv_models_publish) finish on the models they
 * started with. The last reference to a model puts it on s->graveyard; the loop thread frees
 * what is there (srv_models_collect, at every sweep and after each reload) - the batch queue's
 * loop-side code may still hold a pointer to a model's contexts for an instant after the done
 * callback of its last job, and it never runs concurrently with the collect.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "srv.h"

/* ------------------------------------------------------------------------------------------ */
/* The repository */

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds "NAME=DIR" or "DIR" to e[*n]. Returns 0, or -1 with err set. */
static int repo_add(srv_repo_entry_t *e, size_t *n, const char *spec, char *err, size_t errlen) {
    if (*n == SRV_MAX_MODELS) {
        snprintf(err, errlen, "too many models (at most %d)", SRV_MAX_MODELS);
        return -1;
    }
    srv_repo_entry_t *m = &e[*n];
    const char *eq = strchr(spec, '='), *dir = eq ? eq + 1 : spec;
    if (eq) {
        snprintf(m->name, sizeof m->name, "%.*s", (int)(eq - spec), spec);
    } else {
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/') dl--;
        size_t b = dl;
        while (b > 0 && dir[b - 1] != '/') b--;
        snprintf(m->name, sizeof m->name, "%.*s", (int)(dl - b), dir + b);
    }
    if (!strcmp(m->name, SRV_MODEL_AUTO)) {
        snprintf(err, errlen, "%.200s: a model cannot be called \"" SRV_MODEL_AUTO "\" (a request's \"model\": \""
                 SRV_MODEL_AUTO "\" picks a model by the text's language); use NAME=DIR", spec);
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(e[i].name, m->name)) {
            snprintf(err, errlen, "two models are called \"%s\" (use NAME=DIR)", m->name);
            return -1;
        }
    if (!(m->dir = strdup(dir))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    (*n)++;
    return 0;
}

void srv_repo_free(srv_repo_entry_t *e, size_t n) {
    for (size_t i = 0; e && i < n; i++) free(e[i].dir);
}

int srv_repo_list(const srv_t *s, srv_repo_entry_t e[SRV_MAX_MODELS], size_t *n, char *err, size_t errlen) {
    *n = 0;
    for (size_t i = 0; i < s->cfg.n_model; i++)
        if (repo_add(e, n, s->cfg.model[i], err, errlen) < 0) goto fail;
    if (s->cfg.n_model) return 0;
    DIR *d = opendir(s->cfg.models_dir);
    if (!d) {
        snprintf(err, errlen, "no --model given and cannot read --models-dir %s: %s", s->cfg.models_dir,
                 strerror(errno));
        return -1;
    }
    char *names[SRV_MAX_MODELS];
    size_t k = 0;
    struct dirent *de;
    while ((de = readdir(d)) && k < SRV_MAX_MODELS) {
        char path[4096];
        struct stat st;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/config.json", s->cfg.models_dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (names[k] = strdup(de->d_name))) k++;
    }
    closedir(d);
    qsort(names, k, sizeof *names, name_cmp);
    int rc = 0;
    for (size_t i = 0; i < k; i++) {
        char spec[4096 + 160];
        snprintf(spec, sizeof spec, "%s=%s/%s", names[i], s->cfg.models_dir, names[i]);
        if (rc == 0 && repo_add(e, n, spec, err, errlen) < 0) rc = -1;
        free(names[i]);
    }
    if (rc == 0 && *n == 0) {
        snprintf(err, errlen, "no models: --models-dir %s holds no model directory (config.json); use --model DIR",
                 s->cfg.models_dir);
        return -1;
    }
    if (rc == 0) return 0;
fail:
    srv_repo_free(e, *n);
    *n = 0;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* One model */

static void model_free(srv_model_t *m) {
    if (!m) return;
    bq_model_free(m->bqm);
    gru_model_free(m->model);
    free(m->dir);
    free(m->meta_body);
    free(m);
}

/* The stamps of dir's three files (zeros for a file that cannot be read). */
static void stamps(const char *dir, uint64_t out[3][4]) {
    static const char *const files[] = {"config.json", "vocab.txt", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (stat(path, &st) < 0) memset(&st, 0, sizeof st);
        out[i][0] = (uint64_t)st.st_dev;
        out[i][1] = (uint64_t)st.st_ino;
        out[i][2] = (uint64_t)st.st_size;
        out[i][3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    }
}

int srv_model_unchanged(const srv_model_t *m, const srv_repo_entry_t *e) {
    uint64_t now[3][4];
    if (strcmp(m->dir, e->dir) != 0) return 0;
    stamps(e->dir, now);
    return memcmp(now, m->stamp, sizeof now) == 0;
}

int srv_model_build(srv_t *s, const srv_repo_entry_t *e, srv_model_t **out, char *err, size_t errlen) {
    *out = NULL;
    uint64_t t0 = srv_now_ns();
    srv_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(e->dir))) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&m->refs, 1);
    memcpy(m->name, e->name, sizeof m->name);
    stamps(m->dir, m->stamp); /* before reading: a file replaced meanwhile is seen as changed next time */
    const gru_load_options_t opt = {.proj_table_max_mb = s->cfg.proj_table_max_mb, .packed = 1};
    int rc = gru_model_load(&m->model, m->dir, &opt, err, errlen);
    if (rc < 0) goto fail;
    snprintf(m->version, sizeof m->version, "%s", gru_model_version(m->model));
    if ((m->slot = srv_metrics_model_slot(&s->metrics, m->name)) < 0) {
        snprintf(err, errlen, "more than %d model names over the server's life (metrics slots)", SRV_MAX_MODELS);
        rc = -E2BIG;
        goto fail;
    }
    /* The worker contexts, warmed with one batch each: the model answers (finite
     * probabilities) before it may serve, and the first requests do not pay for the scratch. */
    if ((rc = bq_model_new(&m->bqm, m->model, s->workers, (size_t)m->slot)) < 0 ||
        (s->cfg.warmup && (rc = bq_model_warm(m->bqm, (size_t)s->cfg.max_batch, (size_t)s->cfg.max_batch_tokens)) < 0)) {
        snprintf(err, errlen, "%s: %s", m->dir,
                 rc == -ERANGE ? "the model answers with non-finite probabilities" : strerror(-rc));
        goto fail;
    }
    /* What is served about it: its config under the served name, the KServe metadata. */
    m->cfg_named = *gru_model_config(m->model);
    /* Both are char[128]; memcpy, since gcc -O0 -Wrestrict misreads snprintf here. */
    _Static_assert(sizeof m->cfg_named.name == sizeof m->name, "name buffers differ");
    memcpy(m->cfg_named.name, m->name, sizeof m->name);
    m->cfg = &m->cfg_named;
    m->vocab = gru_model_vocab(m->model);
    m->info.cfg = m->cfg;
    m->info.version = m->version;
    api_model_card_read(m->dir, &m->info.accuracy, &m->info.macro_f1);
    if (!(m->meta_body = api_kserve_model_body(&m->info, &m->meta_len))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    srv_metrics_label_escape(m->metric_name, sizeof m->metric_name, m->name);
    m->load_ms = (double)(srv_now_ns() - t0) / 1e6;
    char acc[32] = "unknown";
    if (!isnan(m->info.accuracy)) snprintf(acc, sizeof acc, "%.4g", m->info.accuracy);
    srv_log(CFG_LOG_INFO, "model %s: %s, version %s, V=%d E=%d H=%d L=%d%s, dev accuracy %s, loaded in %.1f ms",
            m->name, m->dir, m->version, m->cfg->vocab_size, m->cfg->embedding_dim, m->cfg->hidden_size,
            m->cfg->num_layers, m->cfg->bidirectional ? " bidirectional" : "", acc, m->load_ms);
    *out = m;
    return 0;
fail:
    model_free(m);
    return rc < 0 ? rc : -EINVAL;
}

srv_model_t *srv_model_ref(srv_model_t *m) {
    if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void srv_model_unref(srv_t *s, srv_model_t *m) {
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    uv_mutex_lock(&s->models_lock);
    m->next_dead = s->graveyard;
    s->graveyard = m;
    uv_mutex_unlock(&s->models_lock);
}

void srv_models_collect(srv_t *s) {
    uv_mutex_lock(&s->models_lock);
    srv_model_t *dead = s->graveyard;
    s->graveyard = NULL;
    uv_mutex_unlock(&s->models_lock);
    while (dead) {
        srv_model_t *next = dead->next_dead;
        srv_log(CFG_LOG_DEBUG, "model %s version %s freed", dead->name, dead->version);
        model_free(dead);
        dead = next;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Model sets */

int srv_modelset_new(srv_t *s, srv_model_t *const *models, size_t n, srv_modelset_t **out) {
    *out = NULL;
    if (n == 0 || n > SRV_MAX_MODELS) return -EINVAL;
    srv_modelset_t *set = calloc(1, sizeof *set);
    if (!set) return -ENOMEM;
    atomic_init(&set->refs, 1);
    api_model_info_t infos[SRV_MAX_MODELS];
    for (size_t i = 0; i < n; i++) {
        srv_model_t *m = set->models[i] = srv_model_ref(models[i]);
        set->n++;
        infos[i] = m->info;
        infos[i].is_default = i == 0;
        srv_metrics_model_info(set->metric_info[i], sizeof set->metric_info[i], m->cfg, m->version, i == 0);
        set->metric_names[i] = m->metric_name;
        set->cfgs[i] = m->cfg;
        set->metric_infos[i] = set->metric_info[i];
    }
    if (!(set->models_body = api_models_body(infos, n, &set->models_body_len))) {
        srv_modelset_unref(s, set);
        return -ENOMEM;
    }
    *out = set;
    return 0;
}

void srv_modelset_unref(srv_t *s, srv_modelset_t *set) {
    if (!set || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < set->n; i++) srv_model_unref(s, set->models[i]);
    free(set->models_body);
    free(set);
}

srv_modelset_t *srv_models_get(srv_t *s) {
    uv_mutex_lock(&s->models_lock);
    srv_modelset_t *set = s->set;
    if (set) atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    uv_mutex_unlock(&s->models_lock);
    return set;
}

void srv_models_publish(srv_t *s, srv_modelset_t *set) {
    uv_mutex_lock(&s->models_lock);
    srv_modelset_t *old = s->set;
    s->set = set;
    uv_mutex_unlock(&s->models_lock);
    srv_modelset_unref(s, old);
}

srv_model_t *srv_modelset_find(const srv_modelset_t *set, const char *name) {
    for (size_t i = 0; set && i < set->n; i++)
        if (strcmp(set->models[i]->name, name) == 0) return set->models[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Startup and exit */

int srv_models_start(srv_t *s) {
    srv_repo_entry_t repo[SRV_MAX_MODELS];
    size_t n_repo = 0, n = 0;
    char err[1024];
    if (srv_repo_list(s, repo, &n_repo, err, sizeof err) < 0) {
        srv_log(CFG_LOG_ERROR, "%s", err);
        return -1;
    }
    srv_model_t *models[SRV_MAX_MODELS];
    int rc = 0;
    for (size_t i = 0; i < n_repo && rc == 0; i++) {
        if (srv_model_build(s, &repo[i], &models[n], err, sizeof err) == 0) {
            n++;
            continue;
        }
        srv_log(CFG_LOG_ERROR, "cannot load model %s: %s", repo[i].name, err);
        if (!s->cfg.skip_bad_models) rc = -1;
        else srv_log(CFG_LOG_WARN, "starting without model %s (--skip-bad-models)", repo[i].name);
    }
    srv_repo_free(repo, n_repo);
    if (rc == 0 && n == 0) {
        srv_log(CFG_LOG_ERROR, "no model could be loaded");
        rc = -1;
    }
    srv_modelset_t *set = NULL;
    if (rc == 0 && srv_modelset_new(s, models, n, &set) < 0) {
        srv_log(CFG_LOG_ERROR, "out of memory for the model list");
        rc = -1;
    }
    for (size_t i = 0; i < n; i++) srv_model_unref(s, models[i]); /* the set holds them now */
    if (set) srv_models_publish(s, set);
    return rc;
}

void srv_models_free(srv_t *s) {
    srv_models_publish(s, NULL);
    srv_models_collect(s);
}
