/* api_request.c - request bodies → api_request_t: parsing and validation.
 *
 * The request kinds share one plain C struct: POST /v1/sentiment, /v1/explain and /v1/tokenize
 * (one parser, with per-kind keys) and the KServe v2 infer call.
 * The texts are not copied: they point into the parsed jansson document, which the request
 * keeps (as an opaque pointer) until api_request_deinit(). No json_t leaves this file.
 *
 * Status rules (api_error.c has the mapping): bytes that are not JSON, or JSON of the wrong
 * type at a field, are 400; well-typed JSON that asks for something invalid is 422; invalid
 * UTF-8 (raw bytes, or an escaped lone surrogate) is 422 invalid_utf8.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* Longest piece of client-supplied text quoted back in an error message. */
#define QUOTE_MAX 48
/* Deepest nesting of a KServe "data" array (shape [N, 1, 1] and the like). */
#define KSERVE_MAX_DEPTH 4

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

/* Copies at most QUOTE_MAX bytes of s[0..n) into out (size > QUOTE_MAX + 4), cut on a UTF-8
 * boundary and with NUL bytes shown as spaces, so the error message stays valid UTF-8. */
static const char *quote(char *out, const char *s, size_t n) {
    size_t k = n > QUOTE_MAX ? QUOTE_MAX : n;
    if (k < n)
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--; /* don't split a character */
    for (size_t i = 0; i < k; i++) out[i] = s[i] ? s[i] : ' ';
    if (k < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

/* Name of a JSON value's type, for messages. */
static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* An optional boolean field: absent or null leaves *out alone. */
static int get_bool(json_t *root, const char *key, int *out, api_error_t *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"%s\" must be true or false, not %s", key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* Parses the document; maps jansson's error to ours. Returns the root (new) or NULL. */
static json_t *load(const char *body, size_t len, api_error_t *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (root) return root;
    enum json_error_code code = json_error_code(&jerr);
    if (code == json_error_invalid_utf8 || strncmp(jerr.text, "invalid Unicode", 15) == 0)
        api_error_set(err, API_ERR_INVALID_UTF8, "the body is not valid UTF-8 (byte %d)", jerr.position);
    else if (code == json_error_out_of_memory || jerr.text[0] == 0) /* jansson's lexer could not allocate */
        api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory while parsing the body");
    else
        api_error_set(err, API_ERR_INVALID_JSON, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                      jerr.column);
    return NULL;
}

/* Makes room for n texts in r (one inline, more allocated). Returns 0 or -1 with err set. */
static int alloc_texts(api_request_t *r, size_t n, api_error_t *err) {
    r->n_texts = n;
    if (n == 1) {
        r->texts = &r->_text1;
        r->text_lens = &r->_len1;
        return 0;
    }
    r->_texts = calloc(n, sizeof *r->_texts);
    r->_lens = calloc(n, sizeof *r->_lens);
    if (!r->_texts || !r->_lens) return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory for %zu texts", n);
    r->texts = r->_texts;
    r->text_lens = r->_lens;
    return 0;
}

/* Stores text i (a JSON string) in r. */
static void set_text(api_request_t *r, size_t i, json_t *s) {
    if (r->n_texts == 1) {
        r->_text1 = json_string_value(s);
        r->_len1 = json_string_length(s);
    } else {
        r->_texts[i] = json_string_value(s);
        r->_lens[i] = json_string_length(s);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* POST /v1/explain: edits */

/* A token index: a non-negative JSON integer, or (keys of "replace") its decimal string. */
static int edit_index(json_t *v, const char *key, size_t key_len, size_t *out) {
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
        *out = (size_t)json_integer_value(v);
        return 0;
    }
    if (key_len == 0 || key_len > 9) return -1;
    size_t x = 0;
    for (size_t i = 0; i < key_len; i++) {
        if (key[i] < '0' || key[i] > '9') return -1;
        x = x * 10 + (size_t)(key[i] - '0');
    }
    *out = x;
    return 0;
}

static int sub_cmp(const void *a, const void *b) {
    const api_edit_sub_t *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

#define EDIT_FORM                                                                                  \
    "edits[%zu] must be {\"remove\": [i, ...]}, {\"replace\": {\"i\": \"text\"}} or {\"remove_span\": [a, b]} " \
    "with token indices i, a <= b"

/* "edits": [{"remove": [i, ...]} | {"replace": {"i": "text", ...}} | {"remove_span": [a, b]}]. */
static int parse_edits(api_request_t *r, json_t *edits, api_error_t *err) {
    if (!json_is_array(edits))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"edits\" must be an array, not %s", type_name(edits));
    size_t n = json_array_size(edits), subs = 0;
    if (n > API_MAX_EDITS)
        return api_error_set(err, API_ERR_INVALID_REQUEST, "\"edits\" holds %zu edits; the limit is %d", n,
                             API_MAX_EDITS);
    for (size_t e = 0; e < n; e++) { /* shapes, and the room they need */
        json_t *o = json_array_get(edits, e), *v;
        if (!json_is_object(o) || json_object_size(o) != 1) return api_error_set(err, API_ERR_INVALID_REQUEST, EDIT_FORM, e);
        size_t k = 0;
        if ((v = json_object_get(o, "remove")) && json_is_array(v)) k = json_array_size(v);
        else if ((v = json_object_get(o, "replace")) && json_is_object(v)) k = json_object_size(v);
        else if ((v = json_object_get(o, "remove_span")) && json_is_array(v) && json_array_size(v) == 2) {
            size_t a, b;
            if (edit_index(json_array_get(v, 0), NULL, 0, &a) < 0 || edit_index(json_array_get(v, 1), NULL, 0, &b) < 0 ||
                a > b)
                return api_error_set(err, API_ERR_INVALID_REQUEST, EDIT_FORM, e);
            k = b - a + 1;
        } else
            return api_error_set(err, API_ERR_INVALID_REQUEST, EDIT_FORM, e);
        if (k == 0 || k > API_MAX_EDIT_INDICES)
            return api_error_set(err, API_ERR_INVALID_REQUEST, "edits[%zu] names %zu tokens (1 to %d)", e, k,
                                 API_MAX_EDIT_INDICES);
        subs += k;
    }
    if (n && (!(r->_edits = calloc(n, sizeof *r->_edits)) || !(r->_subs = calloc(subs, sizeof *r->_subs))))
        return api_error_set(err, API_ERR_OUT_OF_MEMORY, "out of memory for the edits");
    api_edit_sub_t *sub = r->_subs;
    for (size_t e = 0; e < n; e++) {
        json_t *o = json_array_get(edits, e), *v;
        api_edit_t *ed = &r->_edits[e];
        api_edit_sub_t *first = sub;
        ed->subs = first;
        if ((v = json_object_get(o, "remove"))) {
            ed->kind = API_EDIT_REMOVE;
            for (size_t i = 0; i < json_array_size(v); i++, sub++)
                if (edit_index(json_array_get(v, i), NULL, 0, &sub->index) < 0)
                    return api_error_set(err, API_ERR_INVALID_REQUEST, EDIT_FORM, e);
        } else if ((v = json_object_get(o, "replace"))) {
            ed->kind = API_EDIT_REPLACE;
            const char *key;
            size_t key_len;
            json_t *t;
            json_object_keylen_foreach(v, key, key_len, t) {
                if (edit_index(NULL, key, key_len, &sub->index) < 0 || !json_is_string(t))
                    return api_error_set(err, API_ERR_INVALID_REQUEST, EDIT_FORM, e);
                sub->text = json_string_value(t);
                sub->text_len = json_string_length(t);
                sub++;
            }
        } else {
            ed->kind = API_EDIT_REMOVE_SPAN;
            size_t a = 0, b = 0;
            edit_index(json_array_get(json_object_get(o, "remove_span"), 0), NULL, 0, &a);
            edit_index(json_array_get(json_object_get(o, "remove_span"), 1), NULL, 0, &b);
            for (size_t i = a; i <= b; i++, sub++) sub->index = i;
        }
        ed->n_subs = (size_t)(sub - first);
        qsort(first, ed->n_subs, sizeof *first, sub_cmp);
        for (size_t i = 1; i < ed->n_subs; i++)
            if (ed->subs[i].index == ed->subs[i - 1].index)
                return api_error_set(err, API_ERR_INVALID_REQUEST, "edits[%zu] names token %zu twice", e,
                                     ed->subs[i].index);
    }
    r->edits = r->_edits;
    r->n_edits = n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* POST /v1/sentiment, /v1/explain, /v1/tokenize */

/* The keys each kind takes, as the error message lists them. */
static const char *const KNOWN_KEYS[] = {
    [API_REQ_SENTIMENT] = "text, texts, model, gates, trajectory, truncate, offsets",
    [API_REQ_EXPLAIN] = "text, texts, model, gates, trajectory, truncate, target, edits",
    [API_REQ_TOKENIZE] = "text, texts, model",
};

/* Is key[0..key_len) one of the comma-separated words of list? */
static int in_list(const char *list, const char *key, size_t key_len) {
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == key_len && memcmp(p, key, n) == 0) return 1;
        p += n;
        while (*p == ',' || *p == ' ') p++;
    }
    return 0;
}

static int parse_sentiment(api_request_t *r, json_t *root, const api_limits_t *lim, api_error_t *err) {
    const char *known = KNOWN_KEYS[r->kind];
    char q[QUOTE_MAX + 8];
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(root, key, key_len, v) {
        if (!in_list(known, key, key_len))
            return api_error_set(err, API_ERR_INVALID_REQUEST, "unknown field \"%s\" (known: %s)",
                                 quote(q, key, key_len), known);
    }
    json_t *text = json_object_get(root, "text"), *texts = json_object_get(root, "texts");
    if (json_is_null(text)) text = NULL;
    if (json_is_null(texts)) texts = NULL;
    if (text && !json_is_string(text))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"text\" must be a string, not %s", type_name(text));
    if (texts && !json_is_array(texts))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"texts\" must be an array of strings, not %s",
                             type_name(texts));
    for (size_t i = 0; texts && i < json_array_size(texts); i++)
        if (!json_is_string(json_array_get(texts, i)))
            return api_error_set(err, API_ERR_INVALID_TYPE, "texts[%zu] must be a string, not %s", i,
                                 type_name(json_array_get(texts, i)));
    v = json_object_get(root, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return api_error_set(err, API_ERR_INVALID_TYPE, "\"model\" must be a string, not %s", type_name(v));
        if (json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
            return api_error_set(err, API_ERR_MODEL_NOT_FOUND, "\"model\" must name a loaded model (GET /v1/models)");
        r->model = json_string_value(v);
    }
    v = json_object_get(root, "gates");
    if (v && !json_is_null(v)) {
        if (json_is_boolean(v)) {
            r->gates = json_is_true(v) ? GRU_GATES_SUMMARY : GRU_GATES_NONE;
        } else if (!json_is_string(v)) {
            return api_error_set(err, API_ERR_INVALID_TYPE, "\"gates\" must be \"none\", \"summary\" or \"full\", not %s",
                                 type_name(v));
        } else if (strlen(json_string_value(v)) != json_string_length(v) ||
                   gru_gates_mode_parse(json_string_value(v), &r->gates) < 0) {
            return api_error_set(err, API_ERR_INVALID_REQUEST,
                                 "\"gates\" must be \"none\", \"summary\" or \"full\", not \"%s\"",
                                 quote(q, json_string_value(v), json_string_length(v)));
        }
    }
    if (get_bool(root, "trajectory", &r->trajectory, err) < 0 || get_bool(root, "truncate", &r->truncate, err) < 0 ||
        get_bool(root, "offsets", &r->offsets, err) < 0)
        return -1;
    v = json_object_get(root, "target");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return api_error_set(err, API_ERR_INVALID_TYPE, "\"target\" must be a label name, not %s", type_name(v));
        r->target = json_string_value(v);
    }
    v = json_object_get(root, "edits");
    if (v && !json_is_null(v)) {
        if (texts) return api_error_set(err, API_ERR_INVALID_REQUEST, "\"edits\" go with \"text\", not \"texts\"");
        if (parse_edits(r, v, err) < 0) return -1;
    }

    if (text && texts) return api_error_set(err, API_ERR_INVALID_REQUEST, "give \"text\" or \"texts\", not both");
    if (!text && !texts)
        return api_error_set(err, API_ERR_MISSING_TEXT, "the body needs \"text\": \"...\" or \"texts\": [\"...\", ...]");
    if (text) {
        if (json_string_length(text) == 0) return api_error_set(err, API_ERR_EMPTY_TEXT, "\"text\" is empty");
        r->single = 1;
        if (alloc_texts(r, 1, err) < 0) return -1;
        set_text(r, 0, text);
        return 0;
    }
    size_t n = json_array_size(texts);
    if (n == 0) return api_error_set(err, API_ERR_EMPTY_LIST, "\"texts\" is empty");
    if (lim && n > lim->max_texts)
        return api_error_set(err, API_ERR_TOO_MANY_TEXTS, "\"texts\" holds %zu texts; the limit is %zu", n,
                             lim->max_texts);
    for (size_t i = 0; i < n; i++)
        if (json_string_length(json_array_get(texts, i)) == 0)
            return api_error_set(err, API_ERR_EMPTY_TEXT, "texts[%zu] is empty", i);
    if (alloc_texts(r, n, err) < 0) return -1;
    for (size_t i = 0; i < n; i++) set_text(r, i, json_array_get(texts, i));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* POST /v2/models/{name}/infer (KServe Open Inference Protocol v2, JSON) */

/* Counts the strings of a (possibly nested) BYTES data array. Returns 0 or -1 with err set. */
static int count_data(json_t *a, int depth, size_t *n, api_error_t *err) {
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        if (json_is_string(e)) {
            (*n)++;
        } else if (json_is_array(e) && depth < KSERVE_MAX_DEPTH) {
            if (count_data(e, depth + 1, n, err) < 0) return -1;
        } else {
            return api_error_set(err, API_ERR_INVALID_TYPE,
                                 "inputs[0].data must hold strings (BYTES elements), not %s", type_name(e));
        }
    }
    return 0;
}

/* 1 when a nested data array has exactly the shape dims[0..ndim) at every level (arrays of
 * dims[k] arrays, strings at the last level), 0 when it is ragged or mixes strings and arrays.
 * A flat array of strings is the other accepted form (checked by the caller). */
static int data_has_shape(json_t *a, const size_t *dims, size_t ndim) {
    if (ndim == 0 || json_array_size(a) != dims[0]) return 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        if (ndim == 1 ? !json_is_string(e) : (!json_is_array(e) || !data_has_shape(e, dims + 1, ndim - 1))) return 0;
    }
    return 1;
}

/* Stores the strings of a data array in r, in row-major order. */
static void fill_data(api_request_t *r, json_t *a, size_t *i) {
    for (size_t k = 0; k < json_array_size(a); k++) {
        json_t *e = json_array_get(a, k);
        if (json_is_string(e)) set_text(r, (*i)++, e);
        else fill_data(r, e, i);
    }
}

static int parse_outputs(api_request_t *r, json_t *outs, api_error_t *err) {
    char q[QUOTE_MAX + 8];
    if (!outs || json_is_null(outs)) {
        r->outputs = API_OUTPUT_LABEL | API_OUTPUT_PROBABILITIES;
        r->output_order[0] = API_OUTPUT_LABEL;
        r->output_order[1] = API_OUTPUT_PROBABILITIES;
        r->n_outputs = 2;
        return 0;
    }
    if (!json_is_array(outs))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"outputs\" must be an array, not %s", type_name(outs));
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i), *name = json_object_get(o, "name");
        if (!json_is_object(o) || !json_is_string(name))
            return api_error_set(err, API_ERR_INVALID_TYPE, "outputs[%zu] must be an object with a string \"name\"", i);
        const char *s = json_string_value(name);
        unsigned bit = strcmp(s, "label") == 0           ? API_OUTPUT_LABEL
                       : strcmp(s, "probabilities") == 0 ? API_OUTPUT_PROBABILITIES
                                                         : 0;
        if (!bit || strlen(s) != json_string_length(name))
            return api_error_set(err, API_ERR_INVALID_REQUEST,
                                 "outputs[%zu]: unknown output \"%s\" (this model has \"label\" and \"probabilities\")", i,
                                 quote(q, s, json_string_length(name)));
        if (r->outputs & bit) continue;
        r->outputs |= bit;
        r->output_order[r->n_outputs++] = (unsigned char)bit;
    }
    if (r->n_outputs == 0) return parse_outputs(r, NULL, err); /* "outputs": [] means all */
    return 0;
}

static int parse_kserve(api_request_t *r, json_t *root, const api_limits_t *lim, api_error_t *err) {
    char q[QUOTE_MAX + 8];
    json_t *id = json_object_get(root, "id"), *params = json_object_get(root, "parameters");
    if (id && !json_is_null(id)) {
        if (!json_is_string(id))
            return api_error_set(err, API_ERR_INVALID_TYPE, "\"id\" must be a string, not %s", type_name(id));
        if (strlen(json_string_value(id)) != json_string_length(id)) /* echoed as a C string: no cut */
            return api_error_set(err, API_ERR_INVALID_REQUEST, "\"id\" must not contain a NUL character (\\u0000)");
        r->id = json_string_value(id);
    }
    if (params && !json_is_null(params) && !json_is_object(params))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"parameters\" must be an object, not %s", type_name(params));
    if (parse_outputs(r, json_object_get(root, "outputs"), err) < 0) return -1;

    json_t *inputs = json_object_get(root, "inputs");
    if (!inputs || json_is_null(inputs))
        return api_error_set(err, API_ERR_MISSING_TEXT, "the body needs \"inputs\": [{\"name\", \"shape\", "
                                                        "\"datatype\": \"BYTES\", \"data\"}]");
    if (!json_is_array(inputs))
        return api_error_set(err, API_ERR_INVALID_TYPE, "\"inputs\" must be an array, not %s", type_name(inputs));
    if (json_array_size(inputs) != 1)
        return api_error_set(err, API_ERR_INVALID_REQUEST, "\"inputs\" must hold exactly one tensor (of texts), not %zu",
                             json_array_size(inputs));
    json_t *in = json_array_get(inputs, 0);
    if (!json_is_object(in))
        return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0] must be an object, not %s", type_name(in));
    json_t *name = json_object_get(in, "name"), *dtype = json_object_get(in, "datatype");
    json_t *shape = json_object_get(in, "shape"), *data = json_object_get(in, "data");
    if (!json_is_string(name)) return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0].name must be a string");
    if (!json_is_string(dtype)) return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0].datatype must be a string");
    if (!json_is_array(shape)) return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0].shape must be an array");
    if (!json_is_array(data)) return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0].data must be an array");
    if (json_string_length(dtype) != 5 || strcmp(json_string_value(dtype), "BYTES") != 0)
        return api_error_set(err, API_ERR_INVALID_REQUEST, "inputs[0].datatype must be \"BYTES\" (texts), not \"%s\"",
                             quote(q, json_string_value(dtype), json_string_length(dtype)));
    size_t elems = 1, dims[KSERVE_MAX_DEPTH];
    const size_t ndim = json_array_size(shape);
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return api_error_set(err, API_ERR_INVALID_TYPE, "inputs[0].shape must hold non-negative integers");
        json_int_t dv = json_integer_value(d);
        if (dv > (json_int_t)(SIZE_MAX / 2) || (dv && elems > SIZE_MAX / 2 / (size_t)dv))
            return api_error_set(err, API_ERR_INVALID_REQUEST, "inputs[0].shape is too large");
        elems *= (size_t)dv;
        if (i < KSERVE_MAX_DEPTH) dims[i] = (size_t)dv;
    }
    size_t n = 0;
    if (count_data(data, 1, &n, err) < 0) return -1;
    if (json_array_size(shape) == 0 || elems != n)
        return api_error_set(err, API_ERR_INVALID_REQUEST, "inputs[0].shape holds %zu elements but data holds %zu",
                             json_array_size(shape) ? elems : 0, n);
    if (n == 0) return api_error_set(err, API_ERR_EMPTY_LIST, "inputs[0].data is empty");
    int flat = 1;
    for (size_t i = 0; i < json_array_size(data) && flat; i++) flat = json_is_string(json_array_get(data, i));
    if (!flat && (ndim > KSERVE_MAX_DEPTH || !data_has_shape(data, dims, ndim)))
        return api_error_set(err, API_ERR_INVALID_REQUEST,
                             "inputs[0].data must be flat or nested exactly as its shape (it is ragged or mixed)");
    if (lim && n > lim->max_texts)
        return api_error_set(err, API_ERR_TOO_MANY_TEXTS, "inputs[0] holds %zu texts; the limit is %zu", n,
                             lim->max_texts);
    if (alloc_texts(r, n, err) < 0) return -1;
    size_t i = 0;
    fill_data(r, data, &i);
    for (i = 0; i < n; i++)
        if (r->text_lens[i] == 0) return api_error_set(err, API_ERR_EMPTY_TEXT, "inputs[0].data[%zu] is empty", i);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Public */

void api_request_init(api_request_t *r) {
    memset(r, 0, sizeof *r);
    r->gates = GRU_GATES_SUMMARY;
    r->truncate = 1;
}

void api_request_deinit(api_request_t *r) {
    if (!r) return;
    json_decref((json_t *)r->_doc);
    free(r->_texts);
    free(r->_lens);
    free(r->_edits);
    free(r->_subs);
    api_request_init(r);
}

int api_request_parse(api_request_t *r, api_request_kind_t kind, const char *body, size_t len,
                      const api_limits_t *lim, api_error_t *err) {
    api_request_deinit(r);
    r->kind = kind;
    if (kind == API_REQ_KSERVE_INFER || kind == API_REQ_TOKENIZE) r->gates = GRU_GATES_NONE;
    if (kind == API_REQ_EXPLAIN) r->truncate = 0;
    if (kind == API_REQ_EXPLAIN || kind == API_REQ_TOKENIZE) r->offsets = 1;
    json_t *root = load(body, len, err);
    if (!root) return -1;
    r->_doc = root;
    int rc;
    if (!json_is_object(root))
        rc = api_error_set(err, API_ERR_INVALID_TYPE, "the body must be a JSON object, not %s", type_name(root));
    else if (kind == API_REQ_KSERVE_INFER)
        rc = parse_kserve(r, root, lim, err);
    else
        rc = parse_sentiment(r, root, lim, err);
    if (rc < 0) api_request_deinit(r);
    return rc;
}
