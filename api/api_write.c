/* api_write.c - the one writer of the result object (POST /v1/sentiment's answers and
 * gru-predict's lines), in the format jansson writes with API_DUMP_FLAGS.
 *
 * Why not jansson: building a document for a result with per-token gates costs about fifty
 * small allocations and a printf("%.7g") per number; on the HTTP threads that was a third of
 * the time of a request. This writer appends to one buffer and formats numbers with exact
 * integer arithmetic. test_api checks, on many random results, that what it writes parses to
 * the values given and that jansson, loading and dumping it again, writes the same bytes; it
 * declines (b->failed) what jansson refuses too (non-finite numbers, invalid UTF-8).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Numbers */

static const uint64_t pow10_u64[] = {1ull,
                                     10ull,
                                     100ull,
                                     1000ull,
                                     10000ull,
                                     100000ull,
                                     1000000ull,
                                     10000000ull,
                                     100000000ull,
                                     1000000000ull,
                                     10000000000ull,
                                     100000000000ull,
                                     1000000000000ull,
                                     10000000000000ull,
                                     100000000000000ull,
                                     1000000000000000ull,
                                     10000000000000000ull,
                                     100000000000000000ull};

/* jansson's fix-ups of a printf("%.*g") string s of length n (see jsonp_dtostr in its
 * strconv.c): ".0" when it looks like an integer; no '+' and no leading zeros in the exponent. */
static int jansson_fixup(char *s, int n) {
    if (!memchr(s, '.', (size_t)n) && !memchr(s, 'e', (size_t)n)) {
        memcpy(s + n, ".0", 3);
        return n + 2;
    }
    char *e = memchr(s, 'e', (size_t)n);
    if (e) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-') start++;
        while (*end == '0') end++;
        if (end != start) {
            memmove(start, end, (size_t)(s + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    return n;
}

int api__fmt_real(char *out, double v) {
    if (!isfinite(v)) return -1;
    char *p = out;
    if (signbit(v)) {
        *p++ = '-';
        v = -v;
    }
    if (v == 0.0) {
        memcpy(p, "0.0", 4);
        return (int)(p - out) + 3;
    }
    if (!(v >= 1e-9 && v < 1e9)) { /* rare: let printf do it */
        int n = snprintf(p, 24, "%.*g", API_REAL_PRECISION, v);
        return (int)(p - out) + jansson_fixup(p, n);
    }
    /* v = M * 2^e2 exactly, M < 2^53. Find k with round(v * 10^(6-k)) in [10^6, 10^7): that
     * rounded integer is the 7 significant digits, k the decimal exponent (as %g rounds). */
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    const uint64_t M = (bits & ((1ull << 52) - 1)) | (1ull << 52); /* v is normal here */
    const int e2 = (int)((bits >> 52) & 0x7FF) - 1075;             /* v = M * 2^e2 */
    const int sh = -e2; /* v < 2^30, so sh > 22; v >= 1e-9, so sh <= 82 */
    /* v is in [2^(e2+52), 2^(e2+53)): a first guess of floor(log10 v), off by at most one;
     * 78913 / 2^18 ~ log10(2). */
    int k = (int)(((int64_t)(e2 + 52) * 78913) >> 18);
    uint64_t D = 0;
    for (int tries = 0; tries < 4; tries++) {
        int p10 = 6 - k;
        unsigned __int128 q, r, half;
        if (p10 >= 0) {
            if (p10 >= (int)(sizeof pow10_u64 / sizeof *pow10_u64)) break;
            unsigned __int128 num = (unsigned __int128)M * pow10_u64[p10];
            q = num >> sh;
            r = num & (((unsigned __int128)1 << sh) - 1);
            half = (unsigned __int128)1 << (sh - 1);
        } else {
            unsigned __int128 den = (unsigned __int128)pow10_u64[-p10] << sh;
            q = M / den;
            r = M % den;
            half = den / 2; /* den is even */
        }
        if (r > half || (r == half && (q & 1))) q++; /* round half to even, as glibc */
        if (q >= 10000000u) {
            k++;
        } else if (q < 1000000u) {
            k--;
        } else {
            D = (uint64_t)q;
            break;
        }
    }
    if (!D) { /* not reached; be safe */
        int n = snprintf(p, 24, "%.*g", API_REAL_PRECISION, v);
        return (int)(p - out) + jansson_fixup(p, n);
    }
    char dig[7];
    for (int i = 6; i >= 0; i--, D /= 10) dig[i] = (char)('0' + D % 10);
    int nd = 7;
    while (nd > 1 && dig[nd - 1] == '0') nd--; /* %g drops trailing zeros */
    if (k < -4 || k >= 7) {                    /* d.ddde-X, as jansson leaves it */
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, dig + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        int x = k;
        if (x < 0) {
            *p++ = '-';
            x = -x;
        }
        if (x >= 10) *p++ = (char)('0' + x / 10);
        *p++ = (char)('0' + x % 10);
    } else if (k >= 0) { /* ddd.ddd, or ddd.0 */
        memcpy(p, dig, (size_t)k + 1);
        p += k + 1;
        *p++ = '.';
        if (nd > k + 1) {
            memcpy(p, dig + k + 1, (size_t)(nd - k - 1));
            p += nd - k - 1;
        } else {
            *p++ = '0';
        }
    } else { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -k - 1; i++) *p++ = '0';
        memcpy(p, dig, (size_t)nd);
        p += nd;
    }
    *p = 0;
    return (int)(p - out);
}

/* ------------------------------------------------------------------------------------------ */
/* Buffer */

static int grow(api__buf_t *b, size_t need) {
    if (b->failed) return -1;
    if (b->len + need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + need) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) {
        b->failed = 1;
        return -1;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

void api__buf_put(api__buf_t *b, const char *s, size_t n) {
    if (grow(b, n + 1) < 0) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void api__buf_real(api__buf_t *b, double v) {
    char tmp[40];
    int n = api__fmt_real(tmp, v);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    api__buf_put(b, tmp, (size_t)n);
}

static void put_int(api__buf_t *b, long long v) {
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    api__buf_put(b, p, (size_t)(e - p));
}

/* Length of the valid UTF-8 sequence at s (of at most n bytes), or 0 if it is not valid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid, as for jansson). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || len > n) return 0;
    uint32_t cp = c & (0x3Fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void api__buf_string(api__buf_t *b, const char *s, size_t n) {
    if (grow(b, n * 6 + 3) < 0) return; /* the worst case: every byte a \u00XX escape */
    char *o = b->buf + b->len;
    *o++ = '"';
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(u + i, n - i);
            if (!l) {
                b->failed = 1;
                return;
            }
            memcpy(o, u + i, l);
            o += l;
            i += l;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: o += sprintf(o, "u%04X", c); break;
        }
        i++;
    }
    *o++ = '"';
    *o = 0;
    b->len = (size_t)(o - b->buf);
}

#define PUT(b, lit) api__buf_put((b), lit, sizeof lit - 1)

/* ------------------------------------------------------------------------------------------ */
/* The result object (its keys: api.h, api_sentiment_body) */

static void put_reals(api__buf_t *b, const float *v, size_t n) {
    PUT(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) PUT(b, ",");
        api__buf_real(b, (double)v[i]);
    }
    PUT(b, "]");
}

/* Tokens of seq the model does not know (id TOK_ID_UNK): the result's "unknown_tokens". */
static size_t unknown_tokens(const tok_seq_t *seq) {
    size_t n = 0;
    for (size_t i = 0; i < seq->n; i++) n += seq->ids[i] == TOK_ID_UNK;
    return n;
}

static void put_key(api__buf_t *b, const char *key) {
    api__buf_string(b, key, strlen(key));
    PUT(b, ":");
}

void api__write_result(api__buf_t *b, const api_result_t *r) {
    const gru_config_t *c = r->cfg;
    const tok_seq_t *s = r->tokens;
    const int C = c->num_labels;
    int best = 0;
    for (int k = 1; k < C; k++)
        if (r->probs[k] > r->probs[best]) best = k;
    PUT(b, "{\"model\":");
    api__buf_string(b, c->name, strlen(c->name));
    if (r->model_version && r->model_version[0]) {
        PUT(b, ",\"model_version\":");
        api__buf_string(b, r->model_version, strlen(r->model_version));
    }
    PUT(b, ",\"label\":");
    api__buf_string(b, c->labels[best], strlen(c->labels[best]));
    PUT(b, ",\"score\":");
    api__buf_real(b, (double)r->probs[best]);
    PUT(b, ",\"probabilities\":{");
    for (int k = 0; k < C; k++) {
        if (k) PUT(b, ",");
        put_key(b, c->labels[k]);
        api__buf_real(b, (double)r->probs[k]);
    }
    PUT(b, "},\"tokens\":[");
    for (size_t i = 0; i < s->n; i++) {
        if (i) PUT(b, ",");
        const char *t = tok_seq_token(s, i);
        api__buf_string(b, t, strlen(t));
    }
    PUT(b, "],\"token_ids\":[");
    for (size_t i = 0; i < s->n; i++) {
        if (i) PUT(b, ",");
        put_int(b, s->ids[i]);
    }
    PUT(b, "],\"unknown_tokens\":");
    put_int(b, (long long)unknown_tokens(s));
    PUT(b, ",\"truncated\":");
    if (s->truncated) {
        PUT(b, "true,\"num_tokens_total\":");
        put_int(b, (long long)s->n_total);
    } else {
        PUT(b, "false");
    }
    if (r->offsets) {
        PUT(b, ",\"offsets\":[");
        for (size_t i = 0; i < s->n; i++) {
            if (i) PUT(b, ",");
            PUT(b, "[");
            put_int(b, (long long)s->offsets[2 * i]);
            PUT(b, ",");
            put_int(b, (long long)s->offsets[2 * i + 1]);
            PUT(b, "]");
        }
        PUT(b, "]");
    }
    if (r->gates_mode != GRU_GATES_NONE && r->gates) {
        const size_t T = s->n, H = (size_t)c->hidden_size, D = 1 + (size_t)c->bidirectional;
        const int full = r->gates_mode == GRU_GATES_FULL;
        static const char *const keys[4] = {"reset", "update", "candidate", "hidden"};
        PUT(b, ",\"gates\":[");
        for (size_t l = 0; l < (size_t)c->num_layers; l++)
            for (size_t d = 0; d < D; d++) {
                if (l || d) PUT(b, ",");
                PUT(b, "{\"layer\":");
                put_int(b, (long long)l);
                if (d) PUT(b, ",\"direction\":\"backward\"");
                else PUT(b, ",\"direction\":\"forward\"");
                size_t ld = l * D + d;
                for (size_t k = 0; k < (full ? 4u : 2u); k++) {
                    PUT(b, ",");
                    put_key(b, keys[k]);
                    if (!full) {
                        put_reals(b, r->gates + (ld * 2 + k) * T, T);
                    } else {
                        PUT(b, "[");
                        for (size_t t = 0; t < T; t++) {
                            if (t) PUT(b, ",");
                            put_reals(b, r->gates + ((ld * 4 + k) * T + t) * H, H);
                        }
                        PUT(b, "]");
                    }
                }
                PUT(b, "}");
            }
        PUT(b, "]");
    }
    if (r->trajectory) {
        PUT(b, ",\"trajectory\":[");
        for (size_t t = 0; t < s->n; t++) {
            if (t) PUT(b, ",");
            put_reals(b, r->trajectory + t * (size_t)C, (size_t)C);
        }
        PUT(b, "]");
    }
    PUT(b, "}");
}
