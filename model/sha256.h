/* sha256.h - SHA-256 (FIPS 180-4) and the content version of a model directory.
 *
 * A model's version is the first GRU_VERSION_HEX lower-case hex digits of the SHA-256 of this
 * byte sequence, for each file in the order config.json, vocab.txt, model.safetensors:
 *     the file's name in ASCII, one 0x00 byte, the file's length in bytes as an unsigned
 *     64-bit little-endian integer, then the file's bytes.
 * Names and lengths are in the hash so that moving bytes from the end of one file to the start
 * of the next changes the version. The same in Python:
 *     h = hashlib.sha256()
 *     for f in ("config.json", "vocab.txt", "model.safetensors"):
 *         b = open(os.path.join(d, f), "rb").read()
 *         h.update(f.encode() + b"\0" + struct.pack("<Q", len(b)) + b)
 *     version = h.hexdigest()[:16]
 * Any change of any byte of the three files (weights, vocabulary, labels, tokenizer settings,
 * model-card metrics in config.json) gives a new version; the directory's name and path do not
 * count, so a copy of a model keeps its version.
 *
 * Threads: no shared state; a gru_sha256_t belongs to one thread at a time.
 *
 * Usage:
 *     gru_sha256_t h; uint8_t digest[GRU_SHA256_BYTES];
 *     gru_sha256_init(&h); gru_sha256_update(&h, "abc", 3); gru_sha256_final(&h, digest);
 *     char version[GRU_VERSION_HEX + 1];
 *     if (gru_model_dir_version(dir, version, err, sizeof err) < 0) puts(err);
 */
#ifndef GRU_SHA256_H
#define GRU_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* ---- constants ---- */
#define GRU_SHA256_BYTES 32
#define GRU_VERSION_HEX 16 /* hex digits of a model version (64 bits of the digest) */

/* ---- types ---- */

/* A running hash. Transparent so that it can live on the stack; all fields private. */
typedef struct {
    uint32_t _state[8];
    uint64_t _bytes;     /* message length so far */
    uint8_t _block[64];  /* a partial block */
    size_t _fill;        /* bytes in _block */
} gru_sha256_t;

/* ---- prototypes ---- */

void gru_sha256_init(gru_sha256_t *h);
/* Adds len bytes (data may be NULL when len is 0). */
void gru_sha256_update(gru_sha256_t *h, const void *data, size_t len);
/* Writes the digest; h must be initialized again before it is used again. */
void gru_sha256_final(gru_sha256_t *h, uint8_t out[GRU_SHA256_BYTES]);
/* The digest of one buffer. */
void gru_sha256(const void *data, size_t len, uint8_t out[GRU_SHA256_BYTES]);

/* Writes the first hex_digits (even, <= 64) lower-case hex digits of digest and a NUL into out
 * (hex_digits + 1 bytes). */
void gru_sha256_hex(const uint8_t digest[GRU_SHA256_BYTES], char *out, size_t hex_digits);

/* The version of the model directory dir (the byte sequence above), read with read(2).
 * Returns 0 and out (GRU_VERSION_HEX digits and a NUL), or a negative errno with a message
 * naming the file in err. */
int gru_model_dir_version(const char *dir, char out[GRU_VERSION_HEX + 1], char *err, size_t errlen);

#endif /* GRU_SHA256_H */
