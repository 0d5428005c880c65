/* api_response.c - the JSON bodies of the routes: sentiment results, KServe v2 inference and
 * metadata, the model list, small status objects; and the model card reader.
 *
 * Every body but the sentiment results is built with jansson (json_*_set_new on fresh values)
 * and dumped with API_DUMP_FLAGS; the sentiment results are written directly (api_write.c) in
 * the same format. The caller gets malloc'ed bytes, which it hands to MHD to free.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_internal.h"
#include "lang.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

/* Dumps j (stolen: decref'ed here) to new bytes; NULL if j is NULL or out of memory. */
static char *dump(json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, API_DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s && len) *len = strlen(s);
    return s;
}

/* n NUL-terminated strings, stride bytes apart from first, as a JSON array (new), or NULL. */
static json_t *strings_json(const char *first, size_t stride, int n) {
    json_t *a = json_array();
    for (int k = 0; a && k < n; k++)
        if (json_array_append_new(a, json_string(first + (size_t)k * stride)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The labels of a model as a JSON array (new), or NULL. */
static json_t *labels_json(const gru_config_t *c) {
    return strings_json(c->labels[0], sizeof c->labels[0], c->num_labels);
}

/* A number, or null when x is NaN (new). */
static json_t *real_or_null(double x) { return isnan(x) ? json_null() : json_real(x); }

/* ------------------------------------------------------------------------------------------ */
/* POST /v1/sentiment */

/* The body is its stream's pieces (api_stream.c) put together; one result is its one piece,
 * handed over without a copy (the hot path). */
char *api_sentiment_body(const api_result_t *results, size_t n, int single, size_t *len) {
    if (n == 0) return NULL;
    api_sentiment_stream_t st;
    api_sentiment_stream_init(&st, results, n, single);
    api__buf_t b = {NULL, 0, 0, 0};
    const char *piece;
    size_t plen;
    int rc;
    while ((rc = api_sentiment_stream_next(&st, &piece, &plen)) == 1) {
        if (!b.buf && st.next == st.n) { /* the only piece: take the stream's buffer */
            b = (api__buf_t){st.buf, plen, st.cap, 0};
            st.buf = NULL;
            continue;
        }
        api__buf_put(&b, piece, plen);
    }
    api_sentiment_stream_deinit(&st);
    if (rc < 0 || b.failed) {
        free(b.buf);
        return NULL;
    }
    if (len) *len = b.len;
    return b.buf;
}

/* ------------------------------------------------------------------------------------------ */
/* KServe v2 */

/* A model's version for KServe's fields: KServe's "1" for a model without one. */
static const char *kserve_version(const char *version) { return version && version[0] ? version : "1"; }

char *api_kserve_infer_body(const api_request_t *req, const gru_config_t *cfg, const char *version,
                            const float *probs, size_t n, size_t *len) {
    const size_t C = (size_t)cfg->num_labels;
    json_t *o = json_pack("{s:s, s:s}", "model_name", cfg->name, "model_version", kserve_version(version));
    json_t *outs = json_array();
    if (!o || !outs) {
        json_decref(outs);
        goto oom;
    }
    if (json_object_set_new(o, "outputs", outs) < 0) goto oom; /* outs was freed */
    if (req->id && json_object_set_new(o, "id", json_stringn(req->id, strlen(req->id))) < 0) goto oom;
    for (size_t k = 0; k < req->n_outputs; k++) {
        json_t *t, *data = json_array();
        if (req->output_order[k] == API_OUTPUT_LABEL) {
            t = json_pack("{s:s, s:s, s:[I]}", "name", "label", "datatype", "BYTES", "shape", (json_int_t)n);
            for (size_t i = 0; data && i < n; i++) {
                size_t best = 0;
                for (size_t c = 1; c < C; c++)
                    if (probs[i * C + c] > probs[i * C + best]) best = c;
                if (json_array_append_new(data, json_string(cfg->labels[best])) < 0) {
                    json_decref(data);
                    data = NULL;
                }
            }
        } else {
            t = json_pack("{s:s, s:s, s:[I, I], s:{s:o}}", "name", "probabilities", "datatype", "FP32", "shape",
                          (json_int_t)n, (json_int_t)C, "parameters", "labels", labels_json(cfg));
            for (size_t i = 0; data && i < n * C; i++)
                if (json_array_append_new(data, json_real((double)probs[i])) < 0) {
                    json_decref(data);
                    data = NULL;
                }
        }
        if (!t || !data) {
            json_decref(t);
            json_decref(data);
            goto oom;
        }
        if (json_object_set_new(t, "data", data) < 0) { /* data was freed */
            json_decref(t);
            goto oom;
        }
        if (json_array_append_new(outs, t) < 0) goto oom; /* t was freed */
    }
    return dump(o, len);
oom:
    json_decref(o);
    return NULL;
}

char *api_kserve_model_body(const api_model_info_t *m, size_t *len) {
    const gru_config_t *c = m->cfg;
    return dump(json_pack("{s:s, s:[s], s:s, s:[{s:s, s:s, s:[i]}], s:[{s:s, s:s, s:[i]}, {s:s, s:s, s:[i, i]}],"
                          " s:{s:o, s:s}}",
                          "name", c->name, "versions", kserve_version(m->version), "platform", "gru-sentiment", "inputs", "name", "text",
                          "datatype", "BYTES", "shape", -1, "outputs", "name", "label", "datatype", "BYTES", "shape",
                          -1, "name", "probabilities", "datatype", "FP32", "shape", -1, c->num_labels, "parameters",
                          "labels", labels_json(c), "tokenizer", c->tokenizer.kind == TOK_KIND_CHAR ? "char" : "word"),
                len);
}

char *api_kserve_server_body(const char *version, size_t *len) {
    return dump(json_pack("{s:s, s:s, s:[]}", "name", "gru-serve", "version", version, "extensions"), len);
}

/* ------------------------------------------------------------------------------------------ */
/* GET /v1/models and small bodies */

/* The declared languages of c as a JSON array (new), or NULL. */
static json_t *languages_json(const gru_config_t *c) {
    return strings_json(c->languages[0], sizeof c->languages[0], c->num_languages);
}

char *api_models_body(const api_model_info_t *models, size_t n, size_t *len) {
    json_t *o = json_object(), *arr = json_array(), *defaults = json_object();
    const gru_config_t **cfgs = malloc((n ? n : 1) * sizeof *cfgs);
    if (!o || !arr || !defaults || !cfgs) {
        json_decref(arr);
        json_decref(defaults);
        goto oom;
    }
    if (json_object_set_new(o, "models", arr) < 0) { /* arr was freed */
        json_decref(defaults);
        goto oom;
    }
    if (json_object_set_new(o, "language_defaults", defaults) < 0) goto oom; /* defaults was freed */
    for (size_t i = 0; i < n; i++) cfgs[i] = models[i].cfg;
    for (size_t i = 0; i < n; i++) {
        const gru_config_t *c = models[i].cfg;
        /* The model that answers a language when a request names none: the routing rule itself. */
        for (int k = 0; k < c->num_languages; k++)
            if (lang_model_for(c->languages[k], cfgs, n) == i &&
                json_object_set_new(defaults, c->languages[k], json_string(c->name)) < 0)
                goto oom;
        if (models[i].is_default && json_object_set_new(o, "default", json_string(c->name)) < 0) goto oom;
        json_t *m = json_pack(
            "{s:s, s:b, s:o, s:{s:s, s:b, s:I}, s:I, s:I, s:I, s:I, s:b, s:I, s:o, s:o}", "name", c->name, "default",
            models[i].is_default, "labels", labels_json(c), "tokenizer", "kind",
            c->tokenizer.kind == TOK_KIND_CHAR ? "char" : "word", "lowercase", c->tokenizer.lowercase, "max_tokens",
            (json_int_t)c->tokenizer.max_tokens, "vocab_size", (json_int_t)c->vocab_size, "embedding_dim",
            (json_int_t)c->embedding_dim, "hidden_size", (json_int_t)c->hidden_size, "num_layers",
            (json_int_t)c->num_layers, "bidirectional", c->bidirectional, "num_parameters", (json_int_t)c->num_params,
            "accuracy", real_or_null(models[i].accuracy), "macro_f1", real_or_null(models[i].macro_f1));
        if (!m || json_array_append_new(arr, m) < 0) goto oom;
        if (models[i].version && models[i].version[0] &&
            json_object_set_new(m, "version", json_string(models[i].version)) < 0)
            goto oom;
        if (json_object_set_new(m, "languages", languages_json(c)) < 0) goto oom;
        if (json_object_set_new(m, "pooling", json_string(gru_pooling_name(c->pooling))) < 0) goto oom;
    }
    free(cfgs);
    return dump(o, len);
oom:
    free(cfgs);
    json_decref(o);
    return NULL;
}

char *api_status_body(const char *key, const char *value, size_t *len) {
    return dump(json_pack("{s:s}", key, value), len);
}

char *api_flag_body(const char *name, const char *key, int flag, size_t *len) {
    if (name) return dump(json_pack("{s:s, s:b}", "name", name, key, flag), len);
    return dump(json_pack("{s:b}", key, flag), len);
}

/* ------------------------------------------------------------------------------------------ */
/* Model cards */

/* The first number in s (a fraction, or a percentage turned into one), or NaN. */
static double number_in(const char *s) {
    while (*s && !isdigit((unsigned char)*s)) {
        if (*s == '\n') return NAN;
        s++;
    }
    if (!*s) return NAN;
    char *end;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end == '%' || x > 1.0) x /= 100.0;
    return x >= 0.0 && x <= 1.0 ? x : NAN;
}

/* Cell index of the first table cell of line that contains word (lower-case), or -1. */
static int cell_with(const char *line, const char *word) {
    if (line[0] != '|') return -1;
    int cell = -1;
    for (const char *p = line; *p && *p != '\n'; p++) {
        if (*p == '|') {
            cell++;
            const char *e = p + 1;
            while (*e && *e != '|' && *e != '\n') e++;
            for (const char *q = p + 1; q + strlen(word) <= e; q++)
                if (strncmp(q, word, strlen(word)) == 0) return cell;
        }
    }
    return -1;
}

/* The text of cell k of a table line, or NULL. */
static const char *cell_at(const char *line, int k) {
    int cell = -1;
    for (const char *p = line; *p && *p != '\n'; p++)
        if (*p == '|' && ++cell == k) return p + 1;
    return NULL;
}

/* Finds a metric in a lower-cased model card: "<word> ... <number>" on a line (a line that
 * mentions "dev" wins), or a table whose header has a <word> column (the "dev" row wins). */
static double card_metric(const char *text, const char *word) {
    double best = NAN;
    int best_dev = 0;
    for (const char *line = text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
        const char *eol = strchr(line, '\n');
        size_t n = eol ? (size_t)(eol - line) : strlen(line);
        int col = cell_with(line, word);
        if (col >= 0) {
            const char *row = eol ? eol + 1 : NULL;
            for (; row && *row == '|'; row = strchr(row, '\n') ? strchr(row, '\n') + 1 : NULL) {
                const char *c = cell_at(row, col);
                if (!c) continue;
                double x = number_in(c);
                const char *re = strchr(row, '\n');
                int dev = 0;
                for (const char *q = row; q + 3 <= (re ? re : row + strlen(row)); q++)
                    if (!strncmp(q, "dev", 3)) dev = 1;
                if (!isnan(x) && (isnan(best) || (dev && !best_dev))) best = x, best_dev = dev;
            }
            continue;
        }
        const char *w = NULL;
        for (const char *q = line; q + strlen(word) <= line + n; q++)
            if (!strncmp(q, word, strlen(word))) {
                w = q;
                break;
            }
        if (!w) continue;
        char buf[256];
        size_t k = (size_t)(line + n - w) < sizeof buf - 1 ? (size_t)(line + n - w) : sizeof buf - 1;
        memcpy(buf, w, k);
        buf[k] = 0;
        double x = number_in(buf + strlen(word));
        int dev = 0;
        for (const char *q = line; q + 3 <= line + n; q++)
            if (!strncmp(q, "dev", 3)) dev = 1;
        if (!isnan(x) && (isnan(best) || (dev && !best_dev))) best = x, best_dev = dev;
    }
    return best;
}

/* A metric from config.json: "metrics": {key} or a top-level "dev_<key>". */
static double config_metric(json_t *root, const char *key) {
    char dev[64];
    snprintf(dev, sizeof dev, "dev_%s", key);
    json_t *m = json_object_get(root, "metrics");
    json_t *v = json_object_get(m, key);
    if (!json_is_number(v)) v = json_object_get(m, dev);
    if (!json_is_number(v)) v = json_object_get(root, dev);
    if (!json_is_number(v)) return NAN;
    double x = json_number_value(v);
    if (x > 1.0) x /= 100.0;
    return x >= 0.0 && x <= 1.0 ? x : NAN;
}

void api_model_card_read(const char *dir, double *accuracy, double *macro_f1) {
    *accuracy = *macro_f1 = NAN;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    if (root) {
        *accuracy = config_metric(root, "accuracy");
        *macro_f1 = config_metric(root, "macro_f1");
        json_decref(root);
    }
    if (!isnan(*accuracy) && !isnan(*macro_f1)) return;
    snprintf(path, sizeof path, "%s/README.md", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *text = malloc(1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (!text) return;
    text[n] = 0;
    for (size_t i = 0; i < n; i++) text[i] = (char)tolower((unsigned char)text[i]);
    if (isnan(*accuracy)) *accuracy = card_metric(text, "accuracy");
    if (isnan(*macro_f1)) *macro_f1 = card_metric(text, "macro-f1");
    if (isnan(*macro_f1)) *macro_f1 = card_metric(text, "macro f1");
    if (isnan(*macro_f1)) *macro_f1 = card_metric(text, "macro_f1");
    free(text);
}
