/* srv_frame.h - strict HTTP/1.x message framing (RFC 9112 §6), checked on the request line's
 * version and the header fields before any handler runs: the checks libmicrohttpd 0.9.75 does
 * not make (it lets the first Content-Length win, lets chunked win over Content-Length, waits
 * forever for a body in a transfer coding it does not know, and accepts a header name that
 * ends in whitespace, which hides a Transfer-Encoding from it).
 *
 * Usage (headers one by one, e.g. from MHD_get_connection_values_n's iterator):
 *     srv_frame_t f;
 *     srv_frame_init(&f, "HTTP/1.1");
 *     for (each header) srv_frame_header(&f, name, name_len, value, value_len);
 *     const char *why;
 *     int status = srv_frame_verdict(&f, &why);  // 0: fine; 400 or 501: answer it and close
 *
 * No allocation, no state outside f; any thread.
 */
#ifndef SRV_FRAME_H
#define SRV_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* ---- types ---- */

/* The checker's state. Caller-owned storage; the fields are private (read the verdict). */
typedef struct {
    int http11;            /* HTTP/1.1 or later (Host required; a transfer coding allowed) */
    unsigned n_host;       /* Host fields */
    unsigned n_cl;         /* Content-Length fields */
    unsigned n_te;         /* Transfer-Encoding fields */
    unsigned n_chunked;    /* "chunked" codings seen, over all Transfer-Encoding fields */
    int chunked_last;      /* the last coding seen is "chunked" */
    int te_other;          /* a coding other than chunked (501) */
    int te_empty;          /* an empty coding, e.g. "chunked,," or "" (400) */
    int cl_bad;            /* a Content-Length that is not 1*DIGIT or overflows */
    uint64_t cl;           /* the first Content-Length value */
    int cl_differ;         /* two Content-Length values differ */
    const char *bad_name;  /* the first header name with whitespace or a non-token byte */
} srv_frame_t;

/* ---- prototypes ---- */

/* Starts a check for a request of the given version ("HTTP/1.0", "HTTP/1.1"; NULL or any
 * other string counts as 1.1). */
void srv_frame_init(srv_frame_t *f, const char *version);

/* Adds one header field as received (name without the colon; name and value need not be
 * NUL-terminated; both are only read during the call). */
void srv_frame_header(srv_frame_t *f, const char *name, size_t name_len, const char *value, size_t value_len);

/* The verdict: 0 when the framing is sound; 400 (bad framing: the connection must close after
 * the answer) or 501 (a transfer coding this server does not implement) with a static
 * explanation in *why (why may be NULL). The first failed rule wins, in this order: header
 * names, Host, Content-Length, Transfer-Encoding. */
int srv_frame_verdict(const srv_frame_t *f, const char **why);

#endif /* SRV_FRAME_H */
