/* api_error.c - the one place that maps an error to its HTTP status, code word and body.
 *
 * Every failing route in the server ends in api_error_body() with an api_err_t: the table
 * below is the whole mapping (as format_error_response() in llama.cpp's server). The body has
 * one shape, {"error": {"code": "queue_full", "message": "..."}}, built by api_error_to_json().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* ------------------------------------------------------------------------------------------ */
/* The table */

static const struct {
    int status;
    const char *code;
} err_table[API_ERR__COUNT] = {
    [API_ERR_NONE] = {200, "ok"},
    [API_ERR_INVALID_JSON] = {400, "invalid_json"},
    [API_ERR_INVALID_TYPE] = {400, "invalid_type"},
    [API_ERR_MODEL_LOAD_FAILED] = {400, "model_load_failed"},
    [API_ERR_BAD_REQUEST] = {400, "bad_request"},
    [API_ERR_UNAUTHORIZED] = {401, "unauthorized"},
    [API_ERR_NOT_FOUND] = {404, "not_found"},
    [API_ERR_MODEL_NOT_FOUND] = {404, "model_not_found"},
    [API_ERR_METHOD_NOT_ALLOWED] = {405, "method_not_allowed"},
    [API_ERR_LAST_MODEL] = {409, "last_model"},
    [API_ERR_BODY_TOO_LARGE] = {413, "body_too_large"},
    [API_ERR_RESULT_TOO_LARGE] = {413, "result_too_large"},
    [API_ERR_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported_media_type"},
    [API_ERR_INVALID_REQUEST] = {422, "invalid_request"},
    [API_ERR_MISSING_TEXT] = {422, "missing_text"},
    [API_ERR_EMPTY_TEXT] = {422, "empty_text"},
    [API_ERR_EMPTY_LIST] = {422, "empty_list"},
    [API_ERR_TOO_MANY_TEXTS] = {422, "too_many_texts"},
    [API_ERR_TEXT_TOO_LONG] = {422, "text_too_long"},
    [API_ERR_INVALID_UTF8] = {422, "invalid_utf8"},
    [API_ERR_QUEUE_FULL] = {429, "queue_full"},
    [API_ERR_INTERNAL] = {500, "internal_error"},
    [API_ERR_NOT_IMPLEMENTED] = {501, "not_implemented"},
    [API_ERR_NOT_READY] = {503, "not_ready"},
    [API_ERR_DRAINING] = {503, "draining"},
    [API_ERR_OUT_OF_MEMORY] = {503, "out_of_memory"},
    [API_ERR_OVER_CAPACITY] = {503, "over_capacity"},
    [API_ERR_TIMEOUT] = {504, "timeout"},
};

int api_status_from_err(api_err_t kind) {
    if ((unsigned)kind >= API_ERR__COUNT) return 500;
    return err_table[kind].status;
}

const char *api_err_code(api_err_t kind) {
    if ((unsigned)kind >= API_ERR__COUNT) return "internal_error";
    return err_table[kind].code;
}

api_err_t api_err_from_errno(int neg_errno) {
    switch (neg_errno) {
    case 0: return API_ERR_NONE;
    case -EAGAIN: return API_ERR_QUEUE_FULL;
    case -ETIMEDOUT: return API_ERR_TIMEOUT;
    case -ECANCELED: return API_ERR_DRAINING;
    case -ENOMEM: return API_ERR_OUT_OF_MEMORY;
    case -E2BIG: return API_ERR_BODY_TOO_LARGE;
    case -EILSEQ: return API_ERR_INVALID_UTF8;
    case -EINVAL: return API_ERR_INVALID_REQUEST;
    default: return API_ERR_INTERNAL;
    }
}

int api_error_set(api_error_t *e, api_err_t kind, const char *fmt, ...) {
    if (!e) return -1;
    e->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* The body */

char *api_error_body(const api_error_t *e, size_t *len) {
    api_err_t kind = e ? e->kind : API_ERR_INTERNAL;
    const char *msg = e && e->message[0] ? e->message : api_err_code(kind);
    /* The message may hold bytes from the request (a cut-off token, a key): jansson refuses
     * invalid UTF-8, so fall back to the code word rather than to no body at all. */
    json_t *j = api_error_to_json(api_err_code(kind), msg);
    if (!j) j = api_error_to_json(api_err_code(kind), api_err_code(kind));
    char *s = j ? json_dumps(j, API_DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s && len) *len = strlen(s);
    return s;
}
