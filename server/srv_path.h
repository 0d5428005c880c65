/* srv_path.h - the request-target as sent (libmicrohttpd's URI log callback sees it before any
 * unescaping) turned into the path that routing compares, so that an escape can never make a
 * path match a route it does not spell: "%00" would cut the decoded string short ("/metrics%00
 * .css" read as "/metrics"), "%3F" and "%2F" would act as "?" and "/".
 *
 * Normalization: the path is the target up to the first '?' (the query is not routed on);
 * an escape of an unreserved character (ALPHA, DIGIT, "-", ".", "_", "~") is decoded, as RFC
 * 3986 §6.2.2.2 makes them equivalent; every other escape stays as it is, in upper case, so
 * "%2F" and "%3F" are three plain characters that no route contains (-> 404). An encoded NUL
 * or a malformed escape ("%", "%4", "%G0") is refused (-> 400).
 *
 * Usage:
 *     char path[SRV_PATH_MAX];
 *     const char *why;
 *     int rc = srv_path_normalize(raw_uri, path, sizeof path, &why);
 *     // 0: route on path; -EINVAL: 400 (why says what); -E2BIG: longer than any route: 404
 *
 * No allocation; any thread.
 */
#ifndef SRV_PATH_H
#define SRV_PATH_H

#include <stddef.h>

/* ---- constants ---- */
#define SRV_PATH_MAX 512 /* longer normalized paths match no route */

/* ---- prototypes ---- */

/* Writes the normalized path of raw (a NUL-terminated request-target) into out (cap bytes,
 * NUL-terminated). Returns 0; -EINVAL for an encoded NUL or a malformed escape (*why, if why
 * is not NULL, gets a static explanation); -E2BIG when the path does not fit in cap (out then
 * holds a cut prefix, for logs). */
int srv_path_normalize(const char *raw, char *out, size_t cap, const char **why);

#endif /* SRV_PATH_H */
