/* fuzz_http_head.c - libFuzzer harness: the checks gru-serve makes on a request head before any
 * route runs (issue 15): the framing verdict (server/srv_frame.c) and the raw path routed on
 * (server/srv_path.c). libmicrohttpd's own parser is not ours to fuzz; these two are the code
 * of ours that reads the head's bytes.
 *
 * Input: the request-target up to the first '\n', then header lines "name:value" ('\n'
 * separated; the first line's length parity picks HTTP/1.0 or 1.1). Checks:
 *   - srv_path_normalize: rc 0, -EINVAL or -E2BIG only; the output is NUL-terminated within
 *     its buffer; on success it holds no '?', no escape of NUL, every '%' starts a %XX with
 *     upper-case hex that is not an unreserved character, and normalizing it again changes
 *     nothing (idempotent);
 *   - srv_frame: the verdict is 0, 400 or 501 with a reason exactly when not 0; two sound
 *     checks of the same headers agree (no state kept).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/srv_frame.c"
#include "../../server/srv_path.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

static void check_path(const char *raw) {
    char out[64], again[64];
    memset(out, 'x', sizeof out);
    const char *why = NULL;
    int rc = srv_path_normalize(raw, out, sizeof out, &why);
    assert(rc == 0 || rc == -EINVAL || rc == -E2BIG);
    assert(memchr(out, 0, sizeof out) != NULL);
    assert((rc == -EINVAL) == (why != NULL));
    if (rc != 0) return;
    assert(!strchr(out, '?'));
    for (const char *p = out; (p = strchr(p, '%')); p++) {
        assert(is_upper_hex(p[1]) && is_upper_hex(p[2]));
        int c = hex_val(p[1]) * 16 + hex_val(p[2]);
        assert(c != 0 && !is_unreserved(c));
    }
    assert(srv_path_normalize(out, again, sizeof again, NULL) == 0 && strcmp(out, again) == 0);
}

static int frame_verdict(const char *version, const char *headers, size_t n, const char **why) {
    srv_frame_t f;
    srv_frame_init(&f, version);
    const char *p = headers, *end = headers + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) srv_frame_header(&f, p, (size_t)(colon - p), colon + 1, (size_t)(eol - colon - 1));
        p = eol + 1;
    }
    return srv_frame_verdict(&f, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *d = (const char *)data;
    const char *nl = memchr(d, '\n', size);
    size_t first = nl ? (size_t)(nl - d) : size;
    char *raw = malloc(first + 1);
    if (!raw) return 0;
    memcpy(raw, d, first);
    raw[first] = 0; /* a NUL inside ends the target, as it does for libmicrohttpd */
    check_path(raw);
    free(raw);
    if (!nl) return 0;
    const char *version = first % 2 ? "HTTP/1.0" : "HTTP/1.1";
    const char *why1 = NULL, *why2 = NULL;
    int v1 = frame_verdict(version, nl + 1, size - first - 1, &why1);
    int v2 = frame_verdict(version, nl + 1, size - first - 1, &why2);
    assert(v1 == 0 || v1 == 400 || v1 == 501);
    assert((v1 == 0) == (why1 == NULL));
    assert(v1 == v2 && why1 == why2);
    return 0;
}
