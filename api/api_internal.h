/* api_internal.h - shared between the files of api/ (and their unit tests); not for other
 * modules. The fast JSON writer of the hot responses lives here.
 */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <stddef.h>

#include "api.h"

/* ---- types ---- */

/* A growable byte buffer. Caller-owned storage; buf is malloc'ed (free() it, or hand it on). */
typedef struct {
    char *buf;
    size_t len, cap;
    int failed; /* 1 after an allocation failed or the content cannot be written (see below) */
} api__buf_t;

/* ---- prototypes ---- */

/* Formats v as jansson dumps a real with JSON_REAL_PRECISION(API_REAL_PRECISION): "%.7g",
 * then ".0" when there is neither '.' nor 'e', and no '+' or leading zeros in the exponent.
 * out needs 32 bytes. Returns the length, or -1 for NaN and infinities (jansson refuses them). */
int api__fmt_real(char *out, double v);

/* Appends to b; on failure b->failed is set and later appends do nothing. */
void api__buf_put(api__buf_t *b, const char *s, size_t n);
void api__buf_real(api__buf_t *b, double v);           /* fails on NaN and infinities */
void api__buf_string(api__buf_t *b, const char *s, size_t n); /* quoted and escaped as jansson
                                                                 does; fails on invalid UTF-8 */

/* Appends the result object of r (api.h, api_sentiment_body) in jansson's API_DUMP_FLAGS format,
 * without building a jansson document (the hot path of POST /v1/sentiment). */
void api__write_result(api__buf_t *b, const api_result_t *r);

#endif /* API_INTERNAL_H */
