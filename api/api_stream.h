/* api_stream.h - the POST /v1/sentiment body produced in bounded pieces, one result per piece,
 * so that a large answer is never held whole: the server encodes a piece when the socket has
 * room for it (libmicrohttpd's content-reader callback) and frees it once sent. The pieces,
 * concatenated, are byte for byte api_sentiment_body()'s output.
 *
 * Usage:
 *     api_sentiment_stream_t st;
 *     api_sentiment_stream_init(&st, results, n, single);   // results borrowed until deinit
 *     const char *piece; size_t len; int rc;
 *     while ((rc = api_sentiment_stream_next(&st, &piece, &len)) == 1) send(piece, len);
 *     // rc 0: the end; rc < 0: -ENOMEM (or a result jansson cannot write: -EINVAL)
 *     api_sentiment_stream_deinit(&st);
 *
 * api_result_json_bound() is what a caller budgets for a piece before encoding it.
 * (To be merged into api.h once the server uses it.)
 */
#ifndef API_STREAM_H
#define API_STREAM_H

#include <stddef.h>

#include "api.h"

/* ---- types ---- */

/* Caller-owned storage; private fields (use the functions). */
typedef struct {
    const api_result_t *results; /* borrowed: (n) */
    size_t n;
    int single;
    size_t next;                 /* the next result to encode */
    char *buf;                   /* the current piece (malloc'ed, reused) */
    size_t len, cap;
} api_sentiment_stream_t;

/* ---- prototypes ---- */

/* Starts the body of n results (n >= 1; single: one result object, else {"model", "results"}). */
void api_sentiment_stream_init(api_sentiment_stream_t *st, const api_result_t *results, size_t n, int single);

/* Encodes the next piece. Returns 1 with *piece and *len set (borrowed: valid until the next
 * call or deinit), 0 when the body is complete, or a negative errno (-ENOMEM; -EINVAL for a
 * result that cannot be written as JSON, e.g. a NaN). After an error the stream stays failed. */
int api_sentiment_stream_next(api_sentiment_stream_t *st, const char **piece, size_t *len);

/* Frees the piece buffer. st may be initialized again. */
void api_sentiment_stream_deinit(api_sentiment_stream_t *st);

/* An upper bound of the bytes of a piece holding r (its result object, a separator and the
 * batch body's prefix or suffix), computed without encoding: O(tokens). */
size_t api_result_json_bound(const api_result_t *r);

#endif /* API_STREAM_H */
