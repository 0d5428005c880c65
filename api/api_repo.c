/* api_repo.c - the bodies of the model-repository routes (KServe / Triton repository
 * extension): POST /v2/repository/index and POST /v2/repository/models/{name}/load|unload. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

static char *dump_repo(json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, API_DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s && len) *len = strlen(s);
    return s;
}

/* {"name", ["version_key": version], "state", ["reason"]} (new), or NULL. */
static json_t *repo_model_json(const api_repo_model_t *m, const char *version_key) {
    json_t *o = json_pack("{s:s, s:s}", "name", m->name, "state", m->state);
    if (!o) return NULL;
    if ((m->version && m->version[0] && json_object_set_new(o, version_key, json_string(m->version)) < 0) ||
        (m->reason && m->reason[0] && json_object_set_new(o, "reason", json_string(m->reason)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *api_repo_index_body(const api_repo_model_t *models, size_t n, size_t *len) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, repo_model_json(&models[i], "version")) < 0) {
            json_decref(arr);
            return NULL;
        }
    return dump_repo(arr, len);
}

char *api_repo_model_body(const api_repo_model_t *model, size_t *len) {
    return dump_repo(repo_model_json(model, "model_version"), len);
}

int api_repo_index_parse(const char *body, size_t len, int *ready_only, api_error_t *err) {
    *ready_only = 0;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    if (i == len) return 0; /* no body: every model */
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return api_error_set(err, API_ERR_INVALID_JSON, "invalid JSON: %s", jerr.text);
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        rc = api_error_set(err, API_ERR_INVALID_TYPE, "the body must be an object, e.g. {\"ready\": true}");
    } else {
        json_object_foreach(root, key, v) {
            if (strcmp(key, "ready") != 0) {
                rc = api_error_set(err, API_ERR_INVALID_REQUEST, "unknown key \"%.60s\" (only \"ready\")", key);
                break;
            }
            if (!json_is_boolean(v)) {
                rc = api_error_set(err, API_ERR_INVALID_TYPE, "\"ready\" must be true or false");
                break;
            }
            *ready_only = json_is_true(v);
        }
    }
    json_decref(root);
    return rc;
}
