/* srv_models.c - the served models: which directories (--model NAME=DIR..., or every model
 * directory under --models-dir), loading them with the engine settings of the configuration,
 * and what the routes and /metrics serve about them, built once at startup.
 *
 * DESIGN
 * Main thread, before the daemon's threads may read the models (srv.c publishes them with
 * `ready`). After that everything here is read-only and shared by all threads; it is freed
 * after the daemon has stopped.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "srv.h"

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds "NAME=DIR" or "DIR" to s->models (not loaded yet). Returns 0 or -1 after logging. */
static int model_add(srv_t *s, const char *spec) {
    if (s->n_models == SRV_MAX_MODELS) {
        srv_log(CFG_LOG_ERROR, "too many models (at most %d)", SRV_MAX_MODELS);
        return -1;
    }
    srv_model_t *m = &s->models[s->n_models];
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
        srv_log(CFG_LOG_ERROR, "%s: a model cannot be called \"" SRV_MODEL_AUTO "\" (a request's \"model\": \""
                SRV_MODEL_AUTO "\" picks a model by the text's language); use NAME=DIR", spec);
        return -1;
    }
    for (size_t i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, m->name)) {
            srv_log(CFG_LOG_ERROR, "two models are called \"%s\" (use NAME=DIR)", m->name);
            return -1;
        }
    if (!(m->dir = strdup(dir))) return -1;
    s->n_models++;
    return 0;
}

int srv_models_resolve(srv_t *s) {
    for (size_t i = 0; i < s->cfg.n_model; i++)
        if (model_add(s, s->cfg.model[i]) < 0) return -1;
    if (s->cfg.n_model) return 0;
    DIR *d = opendir(s->cfg.models_dir);
    if (!d) {
        srv_log(CFG_LOG_ERROR, "no --model given and cannot read --models-dir %s: %s", s->cfg.models_dir,
                strerror(errno));
        return -1;
    }
    char *names[SRV_MAX_MODELS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < SRV_MAX_MODELS) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/config.json", s->cfg.models_dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char spec[4096 + 160];
        snprintf(spec, sizeof spec, "%s=%s/%s", names[i], s->cfg.models_dir, names[i]);
        if (rc == 0 && model_add(s, spec) < 0) rc = -1;
        free(names[i]);
    }
    if (rc == 0 && s->n_models == 0) {
        srv_log(CFG_LOG_ERROR, "no models: --models-dir %s holds no model directory (config.json); use --model DIR",
                s->cfg.models_dir);
        return -1;
    }
    return rc;
}

/* What is served about model i, once it is loaded: its config under the served name, the
 * KServe metadata body, the metric labels. Returns 0 or -1 (out of memory). */
static int model_describe(srv_t *s, size_t i) {
    srv_model_t *m = &s->models[i];
    m->cfg_named = *gru_model_config(m->model);
    /* Both are char[128]; memcpy, since gcc -O0 -Wrestrict misreads snprintf here. */
    _Static_assert(sizeof m->cfg_named.name == sizeof m->name, "name buffers differ");
    memcpy(m->cfg_named.name, m->name, sizeof m->name);
    m->cfg = &m->cfg_named;
    m->vocab = gru_model_vocab(m->model);
    s->model_ptrs[i] = m->model;
    m->info.cfg = m->cfg;
    m->info.is_default = i == 0;
    api_model_card_read(m->dir, &m->info.accuracy, &m->info.macro_f1);
    if (!(m->meta_body = api_kserve_model_body(&m->info, &m->meta_len))) return -1;
    srv_metrics_model_info(m->metric_info, sizeof m->metric_info, m->cfg, i == 0);
    srv_metrics_label_escape(m->metric_name, sizeof m->metric_name, m->name);
    s->metric_names[i] = m->metric_name;
    s->metric_info[i] = m->metric_info;
    char acc[32] = "unknown";
    if (!isnan(m->info.accuracy)) snprintf(acc, sizeof acc, "%.4g", m->info.accuracy);
    srv_log(CFG_LOG_INFO, "model %s: %s, V=%d E=%d, %s, dev accuracy %s", m->name, m->dir, m->cfg->vocab_size,
            m->cfg->embedding_dim, m->metric_info, acc);
    return 0;
}

int srv_models_load(srv_t *s) {
    const gru_load_options_t opt = {.proj_table_max_mb = s->cfg.proj_table_max_mb, .packed = 1};
    for (size_t i = 0; i < s->n_models; i++) {
        srv_model_t *m = &s->models[i];
        char err[1024];
        if (gru_model_load(&m->model, m->dir, &opt, err, sizeof err) < 0) {
            srv_log(CFG_LOG_ERROR, "cannot load model %s: %s", m->name, err);
            if (!s->cfg.skip_bad_models) return -1;
            /* --skip-bad-models: drop it; the models after it (not loaded yet, so without
             * pointers into themselves) move down one place. */
            srv_log(CFG_LOG_WARN, "starting without model %s (--skip-bad-models)", m->name);
            free(m->dir);
            memmove(m, m + 1, (s->n_models - i - 1) * sizeof *m);
            s->n_models--;
            i--;
            continue;
        }
        if (model_describe(s, i) < 0) return -1;
    }
    if (s->n_models == 0) {
        srv_log(CFG_LOG_ERROR, "no model could be loaded");
        return -1;
    }
    api_model_info_t infos[SRV_MAX_MODELS];
    for (size_t i = 0; i < s->n_models; i++) {
        infos[i] = s->models[i].info;
        s->cfgs[i] = s->models[i].cfg;
    }
    if (!(s->models_body = api_models_body(infos, s->n_models, &s->models_body_len))) return -1;
    return 0;
}

void srv_models_free(srv_t *s) {
    for (size_t i = 0; i < s->n_models; i++) {
        gru_model_free(s->models[i].model);
        free(s->models[i].dir);
        free(s->models[i].meta_body);
    }
    free(s->models_body);
}
