/* srv_trace.h - request IDs (X-Request-Id) and W3C Trace Context (traceparent) for gru-serve.
 *
 * X-Request-Id: a client's id is kept when it is 1..SRV_REQUEST_ID_MAX bytes of
 * [A-Za-z0-9] and -_.:/+=@ (safe in a header, a JSON string and a log line unescaped);
 * anything else (empty, too long, a space, a quote, a control or non-ASCII byte) is replaced by
 * a generated id: 16 random bytes (getrandom) as 32 lower-case hex digits.
 *
 * traceparent (https://www.w3.org/TR/trace-context/ section 3.2): "VV-TTTT...-PPPP...-FF" with
 * lower-case hex only: version VV (not ff), a 32-digit trace-id and a 16-digit parent-id, neither
 * all zeros, and 2-digit flags. Version 00 is exactly 55 bytes; a later version may carry more
 * after a '-' at byte 55 (ignored, as the specification asks). A valid header gets a new span-id
 * of ours and is echoed as "00-<trace-id>-<our span-id>-<flags>"; an invalid one is ignored
 * (never an error).
 *
 * Threads: every function may run on any thread; nothing is shared.
 *
 * Usage:
 *     char id[SRV_REQUEST_ID_MAX + 1];
 *     srv_request_id_take(header_or_NULL, id);          // the client's id, or a new one
 *     srv_trace_t tr;
 *     if (srv_traceparent_parse(hdr, strlen(hdr), &tr) == 0) {
 *         char echo[SRV_TRACEPARENT_LEN + 1]; srv_traceparent_format(&tr, echo); ...
 *     }
 */
#ifndef SRV_TRACE_H
#define SRV_TRACE_H

#include <stddef.h>
#include <stdint.h>

/* ---- constants ---- */
#define SRV_REQUEST_ID_MAX 128   /* longest X-Request-Id kept */
#define SRV_REQUEST_ID_NEW_HEX 32 /* digits of a generated id */
#define SRV_TRACE_ID_HEX 32
#define SRV_SPAN_ID_HEX 16
#define SRV_TRACEPARENT_LEN 55   /* "00-" 32 "-" 16 "-" 2 */

/* ---- types ---- */

/* A parsed traceparent: the caller's trace and span, our span. NUL-terminated lower-case hex. */
typedef struct {
    char trace_id[SRV_TRACE_ID_HEX + 1];
    char parent_id[SRV_SPAN_ID_HEX + 1]; /* the caller's span-id */
    char span_id[SRV_SPAN_ID_HEX + 1];   /* ours, new for each request */
    uint8_t flags;
} srv_trace_t;

/* ---- prototypes ---- */

/* 1 when s[0..len) may be kept as a request id (the rule above), else 0. */
int srv_request_id_valid(const char *s, size_t len);

/* Writes into out (NUL-terminated) the client's id hdr when it is valid, else a new one; hdr
 * may be NULL (no header). Returns 1 when the client's id was kept, 0 when one was generated. */
int srv_request_id_take(const char *hdr, char out[SRV_REQUEST_ID_MAX + 1]);

/* Writes 2 * nbytes random lower-case hex digits and a NUL into out (getrandom; should it fail,
 * a per-thread generator seeded from the clock, the thread and a counter: unique, not secret). */
void srv_random_hex(char *out, size_t nbytes);

/* Parses the traceparent header value s[0..len) (surrounding spaces and tabs are ignored).
 * Returns 0 and *out, with a new span_id, or -EINVAL (out is then untouched). */
int srv_traceparent_parse(const char *s, size_t len, srv_trace_t *out);

/* Writes the header we answer with, "00-<trace_id>-<span_id>-<flags>", and a NUL. */
void srv_traceparent_format(const srv_trace_t *t, char out[SRV_TRACEPARENT_LEN + 1]);

#endif /* SRV_TRACE_H */
