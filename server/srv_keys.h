/* srv_keys.h - the API keys of --api-key-file: parsing, and a constant-time lookup.
 *
 * The file: one key per line, optionally followed by the key's name; blank lines and lines
 * whose first non-blank character is '#' are skipped; fields are separated by spaces or tabs;
 * a trailing CR is ignored (files written on Windows).
 *     # who          (comment)
 *     3f9c2a...e1    ci-pipeline
 *     77ab01...90    dashboard
 *     5d5d5d...5d                 (no name: called "line-4", after its line)
 * A key is 1..SRV_KEY_MAX printable ASCII bytes without blanks (what a Bearer token carries);
 * a name is 1..SRV_KEY_NAME_MAX bytes of [A-Za-z0-9_.-] (safe as a log field and a metrics
 * label). Two lines with the same key are an error; two keys may share a name (a key being
 * rotated: the old and the new one). Anything else on a line is an error naming the file and
 * the line, never the key. At most SRV_KEYS_MAX keys and SRV_KEYS_FILE_MAX bytes.
 *
 * Only the SHA-256 of each key is kept in memory. A lookup hashes the presented key once and
 * compares its digest with every key's digest, all bytes of all of them, with no early exit:
 * its time does not depend on which key (if any) matched or on how many bytes did.
 *
 * Threads: a key set is immutable after it is loaded and may be read from any thread; it is
 * reference counted (srv_keys_ref / srv_keys_unref, any thread) so that a reload can replace
 * the current set while requests still use the old one.
 *
 * Usage:
 *     srv_keys_t *k;
 *     if (srv_keys_load(&k, "keys.txt", err, sizeof err) < 0) { log(err); ... }
 *     const char *name = srv_keys_match(k, token, token_len);   // NULL: no such key
 *     srv_keys_unref(k);
 */
#ifndef SRV_KEYS_H
#define SRV_KEYS_H

#include <stddef.h>

/* ---- constants ---- */
#define SRV_KEY_MAX 256
#define SRV_KEY_NAME_MAX 64
#define SRV_KEYS_MAX 1024
#define SRV_KEYS_FILE_MAX (1u << 20)

/* ---- types ---- */
typedef struct srv_keys srv_keys_t; /* opaque; immutable; reference counted */

/* ---- prototypes ---- */

/* Reads and parses the key file path. Returns 0 and a new set (one reference) in *out, or a
 * negative errno (-ENOENT and the like from the file, -E2BIG beyond the limits, -EINVAL for a
 * bad line, -ENOMEM) with a message naming the file and line in err. A file without any key
 * is an error (-EINVAL): it would refuse every request. */
int srv_keys_load(srv_keys_t **out, const char *path, char *err, size_t errlen);

/* The same on text[0..len) in memory; source names it in messages. */
int srv_keys_parse(srv_keys_t **out, const char *text, size_t len, const char *source, char *err, size_t errlen);

/* Takes one more reference (returns k) / drops one (the last frees the set). Any thread;
 * NULL is accepted by both. */
srv_keys_t *srv_keys_ref(srv_keys_t *k);
void srv_keys_unref(srv_keys_t *k);

size_t srv_keys_count(const srv_keys_t *k);
/* The name of key i (borrowed from k). */
const char *srv_keys_name(const srv_keys_t *k, size_t i);

/* The name of the key equal to presented[0..len) (borrowed from k: copy it, or keep a
 * reference, to use it after k is dropped), or NULL. Constant time in the keys' contents. */
const char *srv_keys_match(const srv_keys_t *k, const char *presented, size_t len);

/* 1 when a[0..alen) equals b[0..blen), in time that depends only on the lengths (for single
 * keys such as --api-key and --admin-key), else 0. */
int srv_key_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif /* SRV_KEYS_H */
