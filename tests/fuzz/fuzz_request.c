/* fuzz_request.c - libFuzzer harness: the request parser and validator of every route with a
 * body (api_request_parse: POST /v1/sentiment, /v1/explain, /v1/tokenize, /v2/models/{name}/infer).
 *
 * The first byte picks the route (bit 0: KServe; else bits 6-7: sentiment, explain, tokenize)
 * and max_texts (1 + bits 1-5: 1..32); explain's edits are checked sorted and well-formed; the
 * rest is the body, as the server would pass it. Checks what the server relies on:
 *   - success: 1 <= n_texts <= max_texts; every text non-empty, valid UTF-8 (NUL bytes
 *     allowed) and NUL-terminated at its length; "model" non-empty without NUL; the modes in
 *     range; KServe: gates none, at least one output, each output once, in order;
 *   - failure: a known kind with a 4xx/5xx status, a NUL-terminated message, an error body
 *     that is JSON of the one shape with the kind's code word; the request holds nothing;
 *   - the same body parsed again into the same struct gives the same answer (no state kept).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when s[0..n) is valid UTF-8 (shortest forms, no surrogates, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

static void check_ok(const api_request_t *r, api_request_kind_t kind, size_t max_texts) {
    assert(r->kind == kind);
    assert(r->n_texts >= 1 && r->n_texts <= max_texts);
    assert(r->texts && r->text_lens);
    for (size_t i = 0; i < r->n_texts; i++) {
        assert(r->texts[i] && r->text_lens[i] > 0);
        assert(r->texts[i][r->text_lens[i]] == 0);
        assert(utf8_valid((const unsigned char *)r->texts[i], r->text_lens[i]));
    }
    assert(r->gates == GRU_GATES_NONE || r->gates == GRU_GATES_SUMMARY || r->gates == GRU_GATES_FULL);
    assert(r->trajectory == 0 || r->trajectory == 1);
    assert(r->truncate == 0 || r->truncate == 1);
    assert(r->n_edits <= API_MAX_EDITS && (r->n_edits == 0 || (kind == API_REQ_EXPLAIN && r->single)));
    for (size_t e = 0; e < r->n_edits; e++) {
        const api_edit_t *ed = &r->edits[e];
        assert(ed->n_subs >= 1 && ed->n_subs <= API_MAX_EDIT_INDICES);
        for (size_t k = 0; k < ed->n_subs; k++) {
            assert(k == 0 || ed->subs[k].index > ed->subs[k - 1].index);
            assert((ed->subs[k].text != NULL) == (ed->kind == API_EDIT_REPLACE));
        }
    }
    if (kind != API_REQ_KSERVE_INFER) {
        if (r->model) assert(r->model[0] && utf8_valid((const unsigned char *)r->model, strlen(r->model)));
        if (r->single) assert(r->n_texts == 1);
        assert(r->n_outputs == 0 && r->id == NULL);
    } else {
        assert(!r->single && r->model == NULL);
        assert(r->gates == GRU_GATES_NONE && r->trajectory == 0);
        assert(r->n_outputs >= 1 && r->n_outputs <= API_MAX_OUTPUTS);
        unsigned seen = 0;
        for (size_t i = 0; i < r->n_outputs; i++) {
            unsigned b = r->output_order[i];
            assert((b == API_OUTPUT_LABEL || b == API_OUTPUT_PROBABILITIES) && !(seen & b));
            seen |= b;
        }
        assert(seen == r->outputs);
    }
}

static void check_err(const api_request_t *r, const api_error_t *err) {
    assert(err->kind > API_ERR_NONE && err->kind < API_ERR__COUNT);
    int status = api_status_from_err(err->kind);
    assert(status >= 400 && status < 600);
    assert(memchr(err->message, 0, sizeof err->message) != NULL);
    assert(r->n_texts == 0 && r->_doc == NULL && r->_texts == NULL);
    size_t len = 0;
    char *body = api_error_body(err, &len);
    assert(body && len == strlen(body));
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    assert(doc && json_object_size(doc) == 1);
    json_t *e = json_object_get(doc, "error");
    assert(json_is_object(e) && json_object_size(e) == 2);
    assert(json_is_string(json_object_get(e, "message")));
    assert(!strcmp(json_string_value(json_object_get(e, "code")), api_err_code(err->kind)));
    json_decref(doc);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* Bit 0: KServe or not; bits 6-7 pick sentiment, explain or tokenize for the others. */
    static const api_request_kind_t json_kinds[4] = {API_REQ_SENTIMENT, API_REQ_EXPLAIN, API_REQ_TOKENIZE, API_REQ_SENTIMENT};
    api_request_kind_t kind = (data[0] & 1) ? API_REQ_KSERVE_INFER : json_kinds[data[0] >> 6];
    api_limits_t lim = {(size_t)1 + ((data[0] >> 1) & 31)};
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    api_request_t r;
    api_error_t err = {API_ERR_NONE, ""};
    api_request_init(&r);
    int rc = api_request_parse(&r, kind, body, len, &lim, &err);
    assert(rc == 0 || rc == -1);
    if (rc == 0) check_ok(&r, kind, lim.max_texts);
    else check_err(&r, &err);
    size_t n = r.n_texts, len0 = n ? r.text_lens[0] : 0;
    api_err_t kind0 = err.kind;

    /* Again, reusing the struct (the server parses each body once, but parse must not depend
     * on what the struct held). */
    api_error_t err2 = {API_ERR_NONE, ""};
    int rc2 = api_request_parse(&r, kind, body, len, &lim, &err2);
    assert(rc2 == rc && r.n_texts == n && (!n || r.text_lens[0] == len0));
    if (rc2 < 0) assert(err2.kind == kind0 && !strcmp(err2.message, err.message));
    api_request_deinit(&r);
    api_request_deinit(&r); /* idempotent */
    return 0;
}
