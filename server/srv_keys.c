/* srv_keys.c - the --api-key-file parser and the constant-time key lookup (rules in
 * srv_keys.h). A set holds each key's SHA-256 digest and name; the key bytes themselves are not
 * kept once the file is parsed.
 */
#include "srv_keys.h"
#include "srv_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

typedef struct {
    uint8_t digest[GRU_SHA256_BYTES];
    char name[SRV_KEY_NAME_MAX + 1];
} key_entry_t;

struct srv_keys {
    atomic_long refs;
    size_t n;
    key_entry_t keys[]; /* (n) */
};

/* ------------------------------------------------------------------------------------------ */
/* Comparison */

int srv_key_equal(const char *a, size_t alen, const char *b, size_t blen) {
    /* Compare digests, so that the time depends on neither the bytes nor where they differ. */
    uint8_t da[GRU_SHA256_BYTES], db[GRU_SHA256_BYTES];
    gru_sha256(a, alen, da);
    gru_sha256(b, blen, db);
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < GRU_SHA256_BYTES; i++) diff |= da[i] ^ db[i];
    return diff == 0 && alen == blen;
}

const char *srv_keys_match(const srv_keys_t *k, const char *presented, size_t len) {
    if (!k || !presented) return NULL;
    uint8_t d[GRU_SHA256_BYTES];
    gru_sha256(presented, len, d);
    /* found = the index + 1 of the matching key; selected without a branch on the data. */
    size_t found = 0;
    for (size_t i = 0; i < k->n; i++) {
        volatile uint8_t diff = 0;
        for (size_t j = 0; j < GRU_SHA256_BYTES; j++) diff |= k->keys[i].digest[j] ^ d[j];
        size_t same = (size_t)(((unsigned)diff - 1u) >> 8) & 1u; /* 1 when diff == 0 */
        found |= (i + 1) & (0 - same);
    }
    return found && len <= SRV_KEY_MAX ? k->keys[found - 1].name : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime */

srv_keys_t *srv_keys_ref(srv_keys_t *k) {
    if (k) atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void srv_keys_unref(srv_keys_t *k) {
    if (k && atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1) free(k);
}

size_t srv_keys_count(const srv_keys_t *k) { return k ? k->n : 0; }
const char *srv_keys_name(const srv_keys_t *k, size_t i) { return k && i < k->n ? k->keys[i].name : NULL; }

/* ------------------------------------------------------------------------------------------ */
/* Parsing */

static int blank(char c) { return c == ' ' || c == '\t'; }
static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

int srv_keys_parse(srv_keys_t **out, const char *text, size_t len, const char *source, char *err, size_t errlen) {
    *out = NULL;
    if (len > SRV_KEYS_FILE_MAX)
        return srv_errorf(err, errlen, -E2BIG, "%s: larger than %u bytes", source, SRV_KEYS_FILE_MAX);
    /* Count the lines for the allocation: at most one key each. */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    size_t cap = lines < SRV_KEYS_MAX ? lines : SRV_KEYS_MAX;
    srv_keys_t *k = calloc(1, sizeof *k + cap * sizeof k->keys[0]);
    if (!k) return srv_errorf(err, errlen, -ENOMEM, "%s: out of memory", source);
    atomic_init(&k->refs, 1);
    int rc = 0;
    size_t line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (n && s[n - 1] == '\r') n--;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 ? s[i] != '\t' : (unsigned char)s[i] >= 0x7f) {
                rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: a control or non-ASCII byte", source, line);
                goto bad;
            }
        while (n && blank(*s)) s++, n--;
        while (n && blank(s[n - 1])) n--;
        if (n == 0 || *s == '#') continue;
        /* key [blanks name] */
        size_t kl = 0;
        while (kl < n && !blank(s[kl])) kl++;
        const char *name = s + kl;
        size_t rest = n - kl;
        while (rest && blank(*name)) name++, rest--;
        size_t nl_ = 0;
        while (nl_ < rest && !blank(name[nl_])) nl_++;
        if (nl_ < rest) {
            rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: more than a key and a name", source, line);
            goto bad;
        }
        if (kl > SRV_KEY_MAX) {
            rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: the key is longer than %d bytes", source, line, SRV_KEY_MAX);
            goto bad;
        }
        if (nl_ > SRV_KEY_NAME_MAX) {
            rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: the name is longer than %d bytes", source, line,
                      SRV_KEY_NAME_MAX);
            goto bad;
        }
        for (size_t i = 0; i < nl_; i++)
            if (!name_char(name[i])) {
                rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: a name may only have letters, digits and _.-", source,
                          line);
                goto bad;
            }
        if (k->n == SRV_KEYS_MAX) {
            rc = srv_errorf(err, errlen, -E2BIG, "%s: more than %d keys", source, SRV_KEYS_MAX);
            goto bad;
        }
        key_entry_t *e = &k->keys[k->n];
        gru_sha256(s, kl, e->digest);
        if (nl_) {
            memcpy(e->name, name, nl_);
            e->name[nl_] = 0;
        } else {
            snprintf(e->name, sizeof e->name, "line-%zu", line);
        }
        for (size_t i = 0; i < k->n; i++)
            if (!memcmp(k->keys[i].digest, e->digest, GRU_SHA256_BYTES)) {
                rc = srv_errorf(err, errlen, -EINVAL, "%s: line %zu: the same key as %s", source, line, k->keys[i].name);
                goto bad;
            }
        k->n++;
    }
    if (k->n == 0) {
        rc = srv_errorf(err, errlen, -EINVAL, "%s: no key in it (every request would be refused)", source);
        goto bad;
    }
    *out = k;
    return 0;
bad:
    free(k);
    return rc;
}

int srv_keys_load(srv_keys_t **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return srv_errorf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return srv_errorf(err, errlen, -EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SRV_KEYS_FILE_MAX) {
        close(fd);
        return srv_errorf(err, errlen, -E2BIG, "%s: larger than %u bytes", path, SRV_KEYS_FILE_MAX);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return srv_errorf(err, errlen, -ENOMEM, "%s: out of memory", path);
    }
    size_t len = 0;
    for (;;) {
        /* Read one byte past the size seen: a file that grew meanwhile is still bounded. */
        ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return srv_errorf(err, errlen, -e, "%s: read: %s", path, strerror(e));
        }
        if (r == 0 || (len += (size_t)r) == (size_t)st.st_size + 1) break;
    }
    close(fd);
    int rc = len > (size_t)st.st_size ? srv_errorf(err, errlen, -EAGAIN, "%s: changed while being read", path)
                                      : srv_keys_parse(out, buf, len, path, err, errlen);
    /* The key bytes are secrets: do not leave them in freed memory. */
    explicit_bzero(buf, (size_t)st.st_size + 1);
    free(buf);
    return rc;
}
