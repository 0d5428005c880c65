/* fuzz_headers.c - libFuzzer harness: the request headers gru-serve reads from any client
 * (server/srv_trace.c: X-Request-Id and traceparent) and the --api-key-file parser
 * (server/srv_keys.c), on arbitrary bytes.
 *
 * The first byte picks the parser; the rest is the header value or the file. Checks what the
 * specs promise: a kept request id is the input and valid, a generated one is 32 hex digits; a
 * parsed traceparent echoes a 55-byte header that parses again to the same trace and flags, and
 * its trace-id is in the input; a parsed key file has 1..SRV_KEYS_MAX keys whose names are
 * safe label values, and a failed one returns nothing. The modules are pure, so their .c files
 * are included (the fuzz targets link only the model and api libraries). */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/srv_keys.c"
#include "../../server/srv_util.c"
#include "../../server/srv_trace.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_request_id(const char *s, size_t n) {
    /* As a header value: NUL-terminated, at most what a connection buffer holds. */
    char *hdr = malloc(n + 1);
    if (!hdr) return;
    memcpy(hdr, s, n);
    hdr[n] = 0;
    char id[SRV_REQUEST_ID_MAX + 1];
    int kept = srv_request_id_take(hdr, id);
    assert(srv_request_id_valid(id, strlen(id)));
    if (kept) assert(!strcmp(id, hdr));
    else assert(strlen(id) == SRV_REQUEST_ID_NEW_HEX);
    assert(kept == srv_request_id_valid(hdr, strlen(hdr)));
    free(hdr);
}

/* 1 when needle[0..m) occurs in s[0..n). */
static int contains(const char *s, size_t n, const char *needle, size_t m) {
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(s + i, needle, m)) return 1;
    return 0;
}

static void one_traceparent(const char *s, size_t n) {
    srv_trace_t t, again;
    if (srv_traceparent_parse(s, n, &t) < 0) return;
    char out[SRV_TRACEPARENT_LEN + 1];
    srv_traceparent_format(&t, out);
    assert(strlen(out) == SRV_TRACEPARENT_LEN);
    assert(srv_traceparent_parse(out, strlen(out), &again) == 0);
    assert(!strcmp(again.trace_id, t.trace_id) && again.flags == t.flags);
    assert(!strcmp(again.parent_id, t.span_id));
    assert(contains(s, n, t.trace_id, SRV_TRACE_ID_HEX) && contains(s, n, t.parent_id, SRV_SPAN_ID_HEX));
}

static void one_key_file(const char *s, size_t n) {
    srv_keys_t *k = (srv_keys_t *)&n;
    char err[256];
    int rc = srv_keys_parse(&k, s, n, "fuzz", err, sizeof err);
    if (rc < 0) {
        assert(k == NULL && (rc == -EINVAL || rc == -E2BIG));
        return;
    }
    size_t count = srv_keys_count(k);
    assert(count >= 1 && count <= SRV_KEYS_MAX);
    for (size_t i = 0; i < count; i++) {
        const char *name = srv_keys_name(k, i);
        size_t len = strlen(name);
        assert(len >= 1 && len <= SRV_KEY_NAME_MAX);
        for (size_t j = 0; j < len; j++) assert(name_char(name[j]));
    }
    srv_keys_unref(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: one_request_id(s, n); break;
    case 1: one_traceparent(s, n); break;
    default: one_key_file(s, n); break;
    }
    return 0;
}
