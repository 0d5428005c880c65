/* sha256.c - SHA-256 as FIPS 180-4 specifies it (section 6.2), and the version of a model
 * directory (the byte sequence is defined in sha256.h).
 *
 * A plain, portable implementation: one 64-round compression per 64-byte block, big-endian
 * words, no tables but the round constants. About 200-400 MB/s, so the shipped models (8 MB at
 * most) are hashed in tens of milliseconds at load; nothing on the request path hashes.
 */
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ------------------------------------------------------------------------------------------ */
/* The hash */

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

/* One block (FIPS 180-4 6.2.2). */
static void compress(uint32_t st[8], const uint8_t p[64]) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    st[0] += a, st[1] += b, st[2] += c, st[3] += d, st[4] += e, st[5] += f, st[6] += g, st[7] += h;
}

void gru_sha256_init(gru_sha256_t *h) {
    /* FIPS 180-4 5.3.3: the fractional parts of the square roots of the first 8 primes. */
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->_state, H0, sizeof H0);
    h->_bytes = 0;
    h->_fill = 0;
}

void gru_sha256_update(gru_sha256_t *h, const void *data, size_t len) {
    const uint8_t *p = data;
    if (len == 0) return; /* data may be NULL then, which memcpy does not allow */
    h->_bytes += len;
    if (h->_fill) {
        size_t take = 64 - h->_fill < len ? 64 - h->_fill : len;
        memcpy(h->_block + h->_fill, p, take);
        h->_fill += take, p += take, len -= take;
        if (h->_fill < 64) return;
        compress(h->_state, h->_block);
        h->_fill = 0;
    }
    for (; len >= 64; p += 64, len -= 64) compress(h->_state, p);
    if (len) memcpy(h->_block, p, len);
    h->_fill = len;
}

void gru_sha256_final(gru_sha256_t *h, uint8_t out[GRU_SHA256_BYTES]) {
    /* FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, the length in bits (64-bit BE). */
    uint64_t bits = h->_bytes * 8;
    h->_block[h->_fill++] = 0x80;
    if (h->_fill > 56) {
        memset(h->_block + h->_fill, 0, 64 - h->_fill);
        compress(h->_state, h->_block);
        h->_fill = 0;
    }
    memset(h->_block + h->_fill, 0, 56 - h->_fill);
    for (int i = 0; i < 8; i++) h->_block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(h->_state, h->_block);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(h->_state[i] >> (24 - 8 * k));
}

void gru_sha256(const void *data, size_t len, uint8_t out[GRU_SHA256_BYTES]) {
    gru_sha256_t h;
    gru_sha256_init(&h);
    gru_sha256_update(&h, data, len);
    gru_sha256_final(&h, out);
}

void gru_sha256_hex(const uint8_t digest[GRU_SHA256_BYTES], char *out, size_t hex_digits) {
    static const char hex[] = "0123456789abcdef";
    if (hex_digits > 2 * GRU_SHA256_BYTES) hex_digits = 2 * GRU_SHA256_BYTES;
    for (size_t i = 0; i < hex_digits; i++) out[i] = hex[(digest[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[hex_digits] = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* A model directory's version */

/* Adds name, 0x00, the u64 LE length and the bytes of dir/name to h. */
static int hash_file(gru_sha256_t *h, const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gru__errorf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return gru__errorf(err, errlen, -e, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gru__errorf(err, errlen, -EINVAL, "%s: not a regular file", path);
    }
    uint8_t head[8];
    uint64_t len = (uint64_t)st.st_size;
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)(len >> (8 * i));
    gru_sha256_update(h, name, strlen(name) + 1);
    gru_sha256_update(h, head, sizeof head);
    uint8_t buf[65536];
    uint64_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return gru__errorf(err, errlen, -e, "%s: read: %s", path, strerror(e));
        }
        if (n == 0) break;
        gru_sha256_update(h, buf, (size_t)n);
        got += (uint64_t)n;
    }
    close(fd);
    /* The length went into the hash first: a file that changed size while being read would
     * give a version of bytes that never existed together. */
    if (got != len) return gru__errorf(err, errlen, -EAGAIN, "%s: changed while being read", path);
    return 0;
}

int gru_model_dir_version(const char *dir, char out[GRU_VERSION_HEX + 1], char *err, size_t errlen) {
    static const char *const files[] = {"config.json", "vocab.txt", "model.safetensors"};
    gru_sha256_t h;
    gru_sha256_init(&h);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        int rc = hash_file(&h, dir, files[i], err, errlen);
        if (rc < 0) return rc;
    }
    uint8_t digest[GRU_SHA256_BYTES];
    gru_sha256_final(&h, digest);
    gru_sha256_hex(digest, out, GRU_VERSION_HEX);
    return 0;
}
