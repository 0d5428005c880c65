/* srv_frame.c - strict HTTP/1.x framing checks on the header fields (see srv_frame.h).
 *
 * Rules (RFC 9110 §5.1, RFC 9112 §3.2, §5.1, §6.1-6.3):
 *   - a field name is a token: no whitespace (in particular none before the colon) and no
 *     separators or control bytes -> 400;
 *   - HTTP/1.1 needs exactly one Host; more than one is an error in any version -> 400;
 *   - Content-Length is 1*DIGIT and fits 64 bits; more than one Content-Length field (even
 *     with equal values: this server never needs one) -> 400;
 *   - Content-Length together with Transfer-Encoding -> 400 (a request-smuggling shape);
 *   - Transfer-Encoding in an HTTP/1.0 request -> 400 (its framing is faulty, §6.1);
 *   - the codings of all Transfer-Encoding fields, as one comma-separated list, must be
 *     exactly "chunked" (any case): an empty coding or chunked not last or twice -> 400; any
 *     other coding (identity, gzip, ...) -> 501.
 */
#include <string.h>
#include <strings.h>

#include "srv_frame.h"

void srv_frame_init(srv_frame_t *f, const char *version) {
    memset(f, 0, sizeof *f);
    f->http11 = !(version && strcmp(version, "HTTP/1.0") == 0);
}

/* 1 when c may appear in a token (RFC 9110 §5.6.2). */
static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int name_is(const char *name, size_t n, const char *want) {
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Content-Length: 1*DIGIT, at most 2^64 - 1. */
static void add_content_length(srv_frame_t *f, const char *v, size_t n) {
    while (n && is_ows(*v)) v++, n--;
    while (n && is_ows(v[n - 1])) n--;
    uint64_t x = 0;
    int bad = n == 0;
    for (size_t i = 0; i < n && !bad; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10) bad = 1;
        else x = x * 10 + d;
    }
    if (bad) f->cl_bad = 1;
    else if (f->n_cl == 0) f->cl = x;
    else if (x != f->cl) f->cl_differ = 1;
    f->n_cl++;
}

/* Transfer-Encoding: a comma-separated list of codings, each possibly with parameters. */
static void add_transfer_encoding(srv_frame_t *f, const char *v, size_t n) {
    f->n_te++;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && v[i] != ',') i++;
        size_t a = start, b = i;
        while (a < b && is_ows(v[a])) a++;
        while (b > a && is_ows(v[b - 1])) b--;
        if (a == b) {
            f->te_empty = 1;
        } else if (b - a == 7 && strncasecmp(v + a, "chunked", 7) == 0) {
            f->n_chunked++;
            f->chunked_last = 1;
        } else {
            f->te_other = 1;
            f->chunked_last = 0;
        }
        if (i >= n) break;
        i++; /* past the comma */
    }
}

void srv_frame_header(srv_frame_t *f, const char *name, size_t name_len, const char *value, size_t value_len) {
    if (!value) value_len = 0;
    int ok = name_len > 0;
    for (size_t i = 0; i < name_len && ok; i++) ok = is_tchar((unsigned char)name[i]);
    if (!ok) {
        if (!f->bad_name) f->bad_name = "a header field name with whitespace (e.g. before the colon) or a byte that is not allowed";
        return; /* not a field of any known name */
    }
    if (name_is(name, name_len, "Host")) f->n_host++;
    else if (name_is(name, name_len, "Content-Length")) add_content_length(f, value, value_len);
    else if (name_is(name, name_len, "Transfer-Encoding")) add_transfer_encoding(f, value, value_len);
}

int srv_frame_verdict(const srv_frame_t *f, const char **why) {
    const char *w = NULL;
    int status = 400;
    if (f->bad_name) w = f->bad_name;
    else if (f->n_host > 1) w = "more than one Host header";
    else if (f->http11 && f->n_host == 0) w = "an HTTP/1.1 request without a Host header";
    else if (f->cl_bad) w = "a Content-Length that is not a decimal number of bytes";
    else if (f->n_cl > 1) w = f->cl_differ ? "two different Content-Length values" : "more than one Content-Length header";
    else if (f->n_te && f->n_cl) w = "both Content-Length and Transfer-Encoding";
    else if (f->n_te && !f->http11) w = "Transfer-Encoding in an HTTP/1.0 request";
    else if (f->te_empty) w = "an empty transfer coding";
    else if (f->n_chunked > 1 || (f->n_chunked == 1 && !f->chunked_last)) w = "chunked must be the last transfer coding, once";
    else if (f->te_other) {
        status = 501;
        w = "a transfer coding other than chunked (only chunked is implemented)";
    } else {
        status = 0;
    }
    if (why) *why = w;
    return status;
}
