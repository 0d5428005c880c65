/* tok.c - UTF-8 tokenizers (word and char kinds) and the vocabulary, per docs/tokenizer.md.
 *
 * tok_encode() makes two passes over the text. The first checks that it is strict UTF-8 (so an
 * error leaves seq empty and reports the offset of the bad sequence). The second runs the
 * normalizer (spec section 2) as an iterator with a small lookahead ring, and a scanner (spec
 * sections 4 and 5) that needs at most 8 code points of lookahead. No copy of the whole text
 * is made; the only memory used is seq's own storage, grown with realloc.
 *
 * Token strings are written NUL-terminated into seq->_buf and located by seq->_offs. A word is
 * first built in the free space after the last kept token (the "scratch"), where its clitics
 * are split off and it is cut to TOK_MAX_TOKEN_BYTES; a token past max_tokens is only counted.
 *
 * tools/gru_tokenizer.py is the reference implementation of the same rules; the two are kept
 * in step by tests/tok_agree.py. The structure of the scanner mirrors the Python on purpose.
 *
 * The vocabulary is one allocation holding the file's bytes (each newline replaced by NUL),
 * with an open-addressing hash table (FNV-1a, linear probing) from token to id built at load.
 * Thread safety: no global mutable state; a loaded vocab is read-only and shareable.
 */
#include "util.h"
#include "tok.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Code point classes (spec sections 2 and 3)
 */

#define CP_END 0xFFFFFFFFu  /* past the end of the text */
#define CP_NONE 0xFFFFFFFEu /* "no previous code point in this chunk" */

typedef struct {
    uint32_t lo, hi;
} cp_range_t;

static const cp_range_t SPACE_RANGES[] = {
    {0x0000, 0x0020}, {0x007F, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};
static const cp_range_t CJK_RANGES[] = {
    {0x2E80, 0x2FDF}, {0x3040, 0x30FF}, {0x3100, 0x312F}, {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF}, {0xAC00, 0xD7AF}, {0xF900, 0xFAFF}, {0x20000, 0x3134F},
};
static const cp_range_t SYMBOL_RANGES[] = {
    {0x0021, 0x002F}, {0x003A, 0x0040}, {0x005B, 0x0060}, {0x007B, 0x007E},
    {0x00A1, 0x00A9}, {0x00AB, 0x00B4}, {0x00B6, 0x00B9}, {0x00BB, 0x00BF},
    {0x00D7, 0x00D7}, {0x00F7, 0x00F7}, {0x2010, 0x2BFF}, {0x3001, 0x303F},
    {0xFE10, 0xFE6F}, {0xFF5F, 0xFF65}, {0xFFE0, 0xFFEE}, {0xE000, 0xF8FF},
    {0x1F000, 0x1FAFF},
};

#define N_RANGES(a) (sizeof(a) / sizeof((a)[0]))

static int in_ranges(uint32_t c, const cp_range_t *r, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi) return 1;
    return 0;
}

enum { CL_SPACE, CL_CJK, CL_SYMBOL, CL_ALNUM, CL_END };

/* Class of a normalized code point; CL_END for CP_END and CP_NONE. */
static int cp_class(uint32_t c) {
    if (c < 0x80) {
        if (c <= 0x20 || c == 0x7F) return CL_SPACE;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return CL_ALNUM;
        return CL_SYMBOL;
    }
    if (c > 0x10FFFF) return CL_END;
    if (in_ranges(c, SPACE_RANGES, N_RANGES(SPACE_RANGES))) return CL_SPACE;
    if (in_ranges(c, CJK_RANGES, N_RANGES(CJK_RANGES))) return CL_CJK;
    if (in_ranges(c, SYMBOL_RANGES, N_RANGES(SYMBOL_RANGES))) return CL_SYMBOL;
    return CL_ALNUM;
}

static int is_alnum(uint32_t c) { return cp_class(c) == CL_ALNUM; }
static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
/* In the current chunk: neither Space, CJK nor the end. */
static int in_chunk(uint32_t c) { int k = cp_class(c); return k == CL_SYMBOL || k == CL_ALNUM; }
static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int is_dropped(uint32_t c) {
    return c == 0x00AD || (c >= 0x200B && c <= 0x200D) || c == 0x2060 ||
           (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF;
}

/* Word kind: the ASCII spelling of typographic punctuation (spec 2.5), or NULL. */
static const char *typo_ascii(uint32_t c) {
    switch (c) {
    case 0x2018: case 0x2019: case 0x201B: case 0x2032: return "'";
    case 0x201C: case 0x201E: return "``";
    case 0x201D: case 0x2033: return "''";
    case 0x2013: case 0x2014: case 0x2015: return "--";
    case 0x2026: return "...";
    default: return NULL;
    }
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8
 */

/* Returns 0 when text[0..len) is strict UTF-8, else -EILSEQ with *bad = the offset of the first
 * byte of the first bad sequence (as Python's UnicodeDecodeError.start). */
static int utf8_validate(const unsigned char *s, size_t len, size_t *bad) {
    size_t i = 0;
    while (i < len) {
        unsigned b = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0) lo = 0xA0;      /* overlong */
            else if (b == 0xED) hi = 0x9F; /* surrogates */
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0) lo = 0x90;      /* overlong */
            else if (b == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            *bad = i; /* continuation byte, 0xC0, 0xC1, 0xF5..0xFF */
            return -EILSEQ;
        }
        if (len - i <= need || s[i + 1] < lo || s[i + 1] > hi) {
            *bad = i;
            return -EILSEQ;
        }
        for (size_t k = 2; k <= need; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
                *bad = i;
                return -EILSEQ;
            }
        }
        i += need + 1;
    }
    return 0;
}

/* Decodes the code point at s[*pos] of already validated UTF-8 and advances *pos. */
static uint32_t utf8_decode(const unsigned char *s, size_t *pos) {
    size_t i = *pos;
    uint32_t b = s[i];
    if (b < 0x80) {
        *pos = i + 1;
        return b;
    }
    if (b < 0xE0) {
        *pos = i + 2;
        return ((b & 0x1F) << 6) | (s[i + 1] & 0x3Fu);
    }
    if (b < 0xF0) {
        *pos = i + 3;
        return ((b & 0x0F) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    }
    *pos = i + 4;
    return ((b & 0x07) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
           (s[i + 3] & 0x3Fu);
}

/* Writes c as UTF-8 to out (room for 4 bytes); returns the byte count. */
static size_t utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* The longest prefix of s[0..len) of at most TOK_MAX_TOKEN_BYTES bytes that ends on a code
 * point boundary (spec 6). */
static size_t cut_len(const char *s, size_t len) {
    if (len <= TOK_MAX_TOKEN_BYTES) return len;
    size_t k = TOK_MAX_TOKEN_BYTES;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* ---------------------------------------------------------------------------------------------
 * Normalizer: an iterator over the normalized code points of validated UTF-8 (spec 2), with
 * lookahead. One input code point gives 0 to 3 normalized ones, so the ring never holds more
 * than MAX_PEEK + 3 entries.
 */

#define NORM_RING 16 /* power of two */
#define MAX_PEEK 8   /* norm_peek(nm, k) is called with k < MAX_PEEK */

typedef struct {
    const unsigned char *s;
    size_t pos, len;
    int word, lowercase;
    uint32_t ring[NORM_RING];
    uint32_t ring_src[NORM_RING]; /* index of the input code point each one came from */
    unsigned head, count;
    uint32_t src;      /* input code points read so far */
    uint32_t last_src; /* input index of the code point norm_next() returned last */
} norm_t;

static void norm_push(norm_t *nm, uint32_t c, uint32_t src) {
    unsigned k = (nm->head + nm->count) & (NORM_RING - 1);
    nm->ring[k] = c;
    nm->ring_src[k] = src;
    nm->count++;
}

/* Reads one input code point and pushes its 0..3 normalized code points. */
static void norm_pull(norm_t *nm) {
    uint32_t c = utf8_decode(nm->s, &nm->pos), src = nm->src++;
    if (is_dropped(c)) return;
    if (c < 0x80 ? (c <= 0x20 || c == 0x7F) : in_ranges(c, SPACE_RANGES, N_RANGES(SPACE_RANGES))) {
        norm_push(nm, ' ', src);
        return;
    }
    if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;
    if (nm->lowercase && ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)))
        c += 0x20;
    if (nm->word) {
        const char *t = typo_ascii(c);
        if (t) {
            for (; *t; t++) norm_push(nm, (uint32_t)*t, src);
            return;
        }
    }
    norm_push(nm, c, src);
}

/* The k-th normalized code point from the current one (k = 0), or CP_END. */
static uint32_t norm_peek(norm_t *nm, unsigned k) {
    while (nm->count <= k && nm->pos < nm->len) norm_pull(nm);
    return k < nm->count ? nm->ring[(nm->head + k) & (NORM_RING - 1)] : CP_END;
}

/* Returns the current code point (or CP_END) and moves past it; nm->last_src becomes the
 * input index it came from. */
static uint32_t norm_next(norm_t *nm) {
    uint32_t c = norm_peek(nm, 0);
    if (nm->count) {
        nm->last_src = nm->ring_src[nm->head];
        nm->head = (nm->head + 1) & (NORM_RING - 1);
        nm->count--;
    }
    return c;
}

/* Input index of the current code point (call after a norm_peek that did not return CP_END). */
static uint32_t norm_src(const norm_t *nm) { return nm->ring_src[nm->head]; }

/* ---------------------------------------------------------------------------------------------
 * Output: appending tokens to a tok_seq_t
 */

typedef struct {
    tok_seq_t *seq;
    const tok_vocab_t *vocab;
    size_t max_tokens;
} emit_t;

/* Makes room for extra bytes after seq->_buf_len. Returns 0 or -ENOMEM (seq unchanged). */
static int buf_reserve(tok_seq_t *seq, size_t extra) {
    size_t need = seq->_buf_len + extra;
    if (need <= seq->_buf_cap) return 0;
    size_t cap = seq->_buf_cap ? seq->_buf_cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *b = realloc(seq->_buf, cap);
    if (!b) return -ENOMEM;
    seq->_buf = b;
    seq->_buf_cap = cap;
    return 0;
}

/* Counts one token; if it is kept, it is the len bytes at _buf + _buf_len (the scratch, with
 * room for the NUL reserved): cut it, terminate it, look it up and keep it, with the input code
 * points [start, end) it came from. */
static int emit_scratch(emit_t *e, size_t len, uint32_t start, uint32_t end) {
    tok_seq_t *seq = e->seq;
    seq->n_total++;
    if (seq->n >= e->max_tokens) return 0;
    if (seq->n == seq->_cap) {
        size_t cap = seq->_cap ? seq->_cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t)) return -ENOMEM;
        int32_t *ids = realloc(seq->ids, cap * sizeof *ids);
        if (!ids) return -ENOMEM;
        seq->ids = ids;
        uint32_t *offs = realloc(seq->_offs, cap * sizeof *offs);
        if (!offs) return -ENOMEM;
        seq->_offs = offs;
        uint32_t *spans = realloc(seq->offsets, 2 * cap * sizeof *spans);
        if (!spans) return -ENOMEM;
        seq->offsets = spans;
        seq->_cap = cap;
    }
    char *s = seq->_buf + seq->_buf_len;
    len = cut_len(s, len);
    s[len] = '\0';
    int32_t id = e->vocab ? tok_vocab_lookup(e->vocab, s, len) : -1;
    seq->ids[seq->n] = id < 0 ? TOK_ID_UNK : id;
    seq->_offs[seq->n] = (uint32_t)seq->_buf_len;
    seq->offsets[2 * seq->n] = start;
    seq->offsets[2 * seq->n + 1] = end;
    seq->n++;
    seq->_buf_len += len + 1;
    return 0;
}

/* Counts one token s[0..len) (not in _buf), from input code points [start, end), and keeps it
 * when there is room. */
static int emit_str(emit_t *e, const char *s, size_t len, uint32_t start, uint32_t end) {
    if (e->seq->n >= e->max_tokens) {
        e->seq->n_total++;
        return 0;
    }
    len = cut_len(s, len);
    int rc = buf_reserve(e->seq, len + 1);
    if (rc < 0) return rc;
    memcpy(e->seq->_buf + e->seq->_buf_len, s, len);
    return emit_scratch(e, len, start, end);
}

/* Emits the code point norm_next() just returned as a token of its own. */
static int emit_cp(emit_t *e, const norm_t *nm, uint32_t c) {
    char u[4];
    return emit_str(e, u, utf8_encode(c, u), nm->last_src, nm->last_src + 1);
}

/* Appends c to the scratch word of *len bytes. */
static int scratch_put(tok_seq_t *seq, size_t *len, uint32_t c) {
    int rc = buf_reserve(seq, *len + 8);
    if (rc < 0) return rc;
    *len += utf8_encode(c, seq->_buf + seq->_buf_len + *len);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Char kind (spec 4)
 */

static int scan_char_kind(norm_t *nm, emit_t *e) {
    for (;;) {
        uint32_t c = norm_peek(nm, 0);
        int k = cp_class(c), rc = 0;
        if (k == CL_END) return 0;
        if (k == CL_SPACE) {
            norm_next(nm);
        } else if (k == CL_CJK || k == CL_SYMBOL) {
            norm_next(nm);
            rc = emit_cp(e, nm, c);
        } else {
            size_t len = 0;
            uint32_t start = norm_src(nm);
            while (rc == 0 && is_alnum(norm_peek(nm, 0))) rc = scratch_put(e->seq, &len, norm_next(nm));
            if (rc == 0) rc = emit_scratch(e, len, start, nm->last_src + 1);
        }
        if (rc < 0) return rc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Word kind (spec 5)
 */

/* Does the lookahead nm[from..] spell the ASCII word w (case-insensitively), followed by a code
 * point for which the run it ends is over (see the callers)? Only compares; see callers. */
static int peek_spells(norm_t *nm, unsigned from, const char *w) {
    for (unsigned i = 0; w[i]; i++)
        if (ascii_lower(norm_peek(nm, from + i)) != (unsigned char)w[i]) return 0;
    return 1;
}

/* At the start of a chunk that begins with "'": the number of code points of the chunk when it
 * is exactly one of 's 're 've 'll 'd 'm (ASCII case-insensitive), else 0. */
static unsigned clitic_chunk_len(norm_t *nm) {
    static const char *const clitics[] = {"s", "re", "ve", "ll", "d", "m"};
    for (size_t i = 0; i < sizeof clitics / sizeof clitics[0]; i++) {
        unsigned n = (unsigned)strlen(clitics[i]);
        if (peek_spells(nm, 1, clitics[i]) && !in_chunk(norm_peek(nm, 1 + n))) return 1 + n;
    }
    return 0;
}

/* The current code point is "'": does a word start here ('70s, 'em, 'til, 'n, 'cause, 'tis,
 * 'twas; the listed words must end their Alnum run)? */
static int apostrophe_starts_word(norm_t *nm) {
    static const char *const words[] = {"em", "til", "n", "cause", "tis", "twas"};
    uint32_t c1 = norm_peek(nm, 1);
    if (is_digit(c1)) return 1;
    unsigned run = 0;
    while (run < 7 && is_alnum(norm_peek(nm, 1 + run))) run++;
    if (run == 0 || run > 6) return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == run && peek_spells(nm, 1, words[i])) return 1;
    return 0;
}

static int lower_eq(const char *s, size_t len, const char *w) {
    size_t i = 0;
    for (; i < len && w[i]; i++)
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)w[i]) return 0;
    return i == len && w[i] == '\0';
}

/* Is the word s[0..len) an abbreviation that takes a following "."? */
static int is_abbreviation(const char *s, size_t len) {
    static const char *const abbr[] = {
        "mr", "mrs", "ms", "dr", "jr", "sr", "st", "vs", "etc", "inc", "co", "ltd", "vol", "bros",
        "sept", "jan", "feb", "aug", "oct", "nov", "dec", "wash", "mt", "gen", "gov", "prof", "rev",
        "lt", "col", "sgt", "al"};
    if (memchr(s, '.', len)) return 1;
    if (len == 1) {
        uint32_t c = ascii_lower((unsigned char)s[0]);
        return c >= 'a' && c <= 'z' && c != 'a' && c != 'i';
    }
    for (size_t i = 0; i < sizeof abbr / sizeof abbr[0]; i++)
        if (lower_eq(s, len, abbr[i])) return 1;
    return 0;
}

/* Where the word s[0..len) splits into stem and clitic (spec 5, "Clitics"), or 0. */
static size_t clitic_split(const char *s, size_t len) {
    static const char *const special[] = {"cannot", "gonna", "wanna", "gotta"};
    static const char *const suffixes[] = {"'s", "'re", "'ve", "'ll", "'d", "'m"};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (lower_eq(s, len, special[i])) return 3;
    if (len > 3 && lower_eq(s + len - 3, 3, "n't")) return len - 3;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && lower_eq(s + len - n, n, suffixes[i])) return len - n;
    }
    return 0;
}

/* The current code point starts a word: reads it into the scratch, then emits it with its
 * clitics split off. *prev becomes its last code point. */
static int scan_word(norm_t *nm, emit_t *e, uint32_t *prev) {
    tok_seq_t *seq = e->seq;
    size_t len = 0;
    unsigned ncp = 1;
    /* Input indices of the word's last 4 code points, for the offsets of a clitic split. */
    uint32_t src[4];
    uint32_t start = norm_src(nm), first = norm_next(nm), last = first;
    src[0] = nm->last_src;
    int rc = scratch_put(seq, &len, first);
    while (rc == 0) {
        uint32_t c = norm_peek(nm, 0);
        int take = is_alnum(c);
        if (!take && (c == '-' || c == '/' || c == '.' || c == '&' || c == '\''))
            take = is_alnum(last) && is_alnum(norm_peek(nm, 1));
        else if (!take && c == ',')
            take = is_digit(last) && is_digit(norm_peek(nm, 1));
        if (!take) break;
        last = norm_next(nm);
        src[ncp++ & 3] = nm->last_src;
        rc = scratch_put(seq, &len, last);
    }
    if (rc < 0) return rc;
    const char *w = seq->_buf + seq->_buf_len;
    if (first == '\'' && ncp == 2 && (w[1] == 'n' || w[1] == 'N') && norm_peek(nm, 0) == '\'') {
        last = norm_next(nm); /* 'n' as in rock 'n' roll */
        src[ncp++ & 3] = nm->last_src;
        rc = scratch_put(seq, &len, last);
    }
    w = seq->_buf + seq->_buf_len;
    if (rc == 0 && norm_peek(nm, 0) == '.' && norm_peek(nm, 1) != '.' && is_abbreviation(w, len)) {
        last = norm_next(nm);
        src[ncp++ & 3] = nm->last_src;
        rc = scratch_put(seq, &len, last);
    }
    if (rc < 0) return rc;
    *prev = last;
    uint32_t end = nm->last_src + 1;

    w = seq->_buf + seq->_buf_len;
    size_t k = clitic_split(w, len);
    if (k == 0) return emit_scratch(e, len, start, end);
    char tail[8]; /* the clitic: at most 3 bytes, all ASCII, so one code point each */
    size_t tail_len = len - k;
    memcpy(tail, w + k, tail_len);
    uint32_t tail_start = src[(ncp - tail_len) & 3], stem_end = src[(ncp - tail_len - 1) & 3] + 1;
    rc = emit_scratch(e, k, start, stem_end);
    return rc < 0 ? rc : emit_str(e, tail, tail_len, tail_start, end);
}

/* A symbol (or a connector character not between Alnums) at the current code point. */
static int scan_symbol(norm_t *nm, emit_t *e, uint32_t *prev) {
    uint32_t start = norm_src(nm), c = norm_next(nm);
    size_t run = 1;
    int rc = 0;
    if (c == '.' || c == '-' || c == '*')
        while (norm_peek(nm, 0) == c) {
            norm_next(nm);
            run++;
        }
    /* A run of ` or ': each pair is one token `` or '', emitted as it completes (its offsets
     * are its own two code points'); an odd last one is decided after the run. */
    if (c == '`' || c == '\'')
        while (norm_peek(nm, 0) == c) {
            uint32_t s = norm_src(nm);
            norm_next(nm);
            if (++run % 2 == 0) {
                if ((rc = emit_str(e, c == '`' ? "``" : "''", 2, start, nm->last_src + 1)) < 0) return rc;
            } else {
                start = s;
            }
        }
    uint32_t before = *prev, end = nm->last_src + 1;
    *prev = c;
    switch (c) {
    case '.': return run >= 2 ? emit_str(e, "...", 3, start, end) : emit_str(e, ".", 1, start, end);
    case '-': return run >= 2 ? emit_str(e, "--", 2, start, end) : emit_str(e, "-", 1, start, end);
    case '*': {
        size_t n = run < TOK_MAX_TOKEN_BYTES ? run : TOK_MAX_TOKEN_BYTES;
        if ((rc = buf_reserve(e->seq, n + 1)) < 0) return rc;
        memset(e->seq->_buf + e->seq->_buf_len, '*', n);
        return emit_scratch(e, n, start, end);
    }
    case '`': return run % 2 ? emit_str(e, "`", 1, start, end) : 0;
    case '\'':
        if (run % 2) {
            int opening = (before == CP_NONE || before == '(' || before == '[' || before == '{' ||
                           before == '<' || before == '`') &&
                          in_chunk(norm_peek(nm, 0));
            rc = opening ? emit_str(e, "`", 1, start, end) : emit_str(e, "'", 1, start, end);
        }
        return rc;
    case '"': {
        int opening = before == CP_NONE || before == '(' || before == '[' || before == '{' ||
                      before == '<';
        return opening ? emit_str(e, "``", 2, start, end) : emit_str(e, "''", 2, start, end);
    }
    default: return emit_cp(e, nm, c);
    }
}

static int scan_word_kind(norm_t *nm, emit_t *e) {
    uint32_t prev = CP_NONE; /* the previous code point of the current chunk */
    for (;;) {
        uint32_t c = norm_peek(nm, 0);
        int k = cp_class(c), rc;
        if (k == CL_END) return 0;
        if (k == CL_SPACE) {
            norm_next(nm);
            prev = CP_NONE;
            continue;
        }
        if (k == CL_CJK) { /* a chunk of its own */
            norm_next(nm);
            prev = CP_NONE;
            if ((rc = emit_cp(e, nm, c)) < 0) return rc;
            continue;
        }
        unsigned n = prev == CP_NONE && c == '\'' ? clitic_chunk_len(nm) : 0;
        if (n) { /* the chunk is exactly 's 're 've 'll 'd or 'm */
            size_t len = 0;
            uint32_t start = norm_src(nm);
            rc = 0;
            for (unsigned i = 0; rc == 0 && i < n; i++) rc = scratch_put(e->seq, &len, prev = norm_next(nm));
            if (rc == 0) rc = emit_scratch(e, len, start, nm->last_src + 1);
        } else if (k == CL_ALNUM || (c == '\'' && apostrophe_starts_word(nm))) {
            rc = scan_word(nm, e, &prev);
        } else {
            rc = scan_symbol(nm, e, &prev);
        }
        if (rc < 0) return rc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Public: sequences and tok_encode
 */

void tok_seq_init(tok_seq_t *seq) { memset(seq, 0, sizeof *seq); }

void tok_seq_deinit(tok_seq_t *seq) {
    if (!seq) return;
    free(seq->ids);
    free(seq->_offs);
    free(seq->offsets);
    free(seq->_buf);
    memset(seq, 0, sizeof *seq);
}

const char *tok_seq_token(const tok_seq_t *seq, size_t i) {
    return seq && i < seq->n ? seq->_buf + seq->_offs[i] : NULL;
}

/* The token strings take at most 3 bytes per input byte ('"' gives "``" and a NUL), so this
 * bound keeps every offset within uint32_t. */
#define TOK_MAX_TEXT_BYTES ((size_t)(UINT32_MAX / 4))

int tok_encode(const tok_config_t *cfg, const tok_vocab_t *vocab, const char *text, size_t len,
               tok_seq_t *seq) {
    if (!cfg || !seq || (!text && len) || len > TOK_MAX_TEXT_BYTES ||
        (cfg->kind != TOK_KIND_WORD && cfg->kind != TOK_KIND_CHAR))
        return -EINVAL;
    seq->n = seq->n_total = 0;
    seq->truncated = 0;
    seq->error_offset = 0;
    seq->_buf_len = 0;
    if (len == 0) return 0;

    const unsigned char *s = (const unsigned char *)text;
    size_t bad = 0;
    if (utf8_validate(s, len, &bad) < 0) {
        seq->error_offset = bad;
        return -EILSEQ;
    }
    norm_t nm = {.s = s, .len = len, .word = cfg->kind == TOK_KIND_WORD,
                 .lowercase = cfg->lowercase != 0};
    emit_t e = {.seq = seq, .vocab = vocab, .max_tokens = cfg->max_tokens};
    int rc = nm.word ? scan_word_kind(&nm, &e) : scan_char_kind(&nm, &e);
    if (rc < 0) {
        seq->n = seq->n_total = 0;
        seq->_buf_len = 0;
        return rc;
    }
    seq->truncated = seq->n_total > seq->n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Vocabulary
 */

struct tok_vocab {
    char *blob;      /* the file's bytes, each newline replaced by NUL */
    uint32_t *offs;  /* (n) offset of token i in blob */
    uint32_t *lens;  /* (n) its length in bytes */
    int32_t *slots;  /* (mask + 1) hash table of ids, -1 when empty */
    size_t n, mask;
};

static uint32_t fnv1a(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* The slot holding s[0..len), or the empty slot where it would go. */
static size_t vocab_slot(const tok_vocab_t *v, const char *s, size_t len) {
    size_t i = fnv1a(s, len) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return i;
        if (v->lens[id] == len && memcmp(v->blob + v->offs[id], s, len) == 0) return i;
        i = (i + 1) & v->mask;
    }
}


/* Reads the whole file into a new buffer (*out, *len). Returns 0 or a negative errno. */
static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            if (cap >= ((size_t)UINT32_MAX + 1) / 2) {
                rc = -EFBIG;
                break;
            }
            char *b = realloc(buf, cap * 2);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = -EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

void tok_vocab_free(tok_vocab_t *v) {
    if (!v) return;
    free(v->blob);
    free(v->offs);
    free(v->lens);
    free(v->slots);
    free(v);
}

int tok_vocab_load(tok_vocab_t **out, const char *path, char *err, size_t errlen) {
    if (!out || !path) return gru__errorf(err, errlen, -EINVAL, "tok_vocab_load: bad arguments");
    *out = NULL;
    tok_vocab_t *v = calloc(1, sizeof *v);
    if (!v) return gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", path);
    size_t len = 0;
    int rc = read_file(path, &v->blob, &len);
    if (rc < 0) {
        free(v);
        return gru__errorf(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
    }

    /* Count lines, check the shape of the file. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += v->blob[i] == '\n';
    if (len == 0 || v->blob[len - 1] != '\n') {
        rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: %s", path, lines + 1,
                   len ? "the last line has no newline" : "empty file (needs <pad> and <unk>)");
        goto fail;
    }
    size_t cap = 16;
    while (cap < 2 * lines) cap *= 2;
    v->offs = malloc(lines * sizeof *v->offs);
    v->lens = malloc(lines * sizeof *v->lens);
    v->slots = malloc(cap * sizeof *v->slots);
    if (!v->offs || !v->lens || !v->slots) {
        rc = gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memset(v->slots, 0xFF, cap * sizeof *v->slots); /* all -1 */
    v->mask = cap - 1;

    size_t start = 0;
    for (size_t line = 0; line < lines; line++) {
        const char *s = v->blob + start;
        size_t n = (size_t)((const char *)memchr(s, '\n', len - start) - s), bad;
        if (line > (size_t)INT32_MAX) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: too many tokens", path, line + 1);
            goto fail;
        }
        if (n == 0) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: empty line", path, line + 1);
            goto fail;
        }
        if (memchr(s, '\r', n) || memchr(s, '\0', n)) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: carriage return or NUL byte in a token",
                       path, line + 1);
            goto fail;
        }
        if (utf8_validate((const unsigned char *)s, n, &bad) < 0) {
            rc = gru__errorf(err, errlen, -EILSEQ, "%s:%zu: invalid UTF-8 at byte %zu of the line",
                       path, line + 1, bad);
            goto fail;
        }
        const char *want = line == 0 ? "<pad>" : line == 1 ? "<unk>" : NULL;
        if (want && (n != 5 || memcmp(s, want, 5) != 0)) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: must be %s (id %zu)", path, line + 1, want,
                       line);
            goto fail;
        }
        size_t slot = vocab_slot(v, s, n);
        if (v->slots[slot] >= 0) {
            rc = gru__errorf(err, errlen, -EINVAL, "%s:%zu: duplicate token (also on line %d)", path,
                       line + 1, v->slots[slot] + 1);
            goto fail;
        }
        v->blob[start + n] = '\0';
        v->offs[line] = (uint32_t)start;
        v->lens[line] = (uint32_t)n;
        v->slots[slot] = (int32_t)line;
        v->n = line + 1;
        start += n + 1;
    }
    if (v->n < 2) {
        rc = gru__errorf(err, errlen, -EINVAL, "%s:2: missing <unk> (id 1)", path);
        goto fail;
    }
    *out = v;
    return 0;
fail:
    tok_vocab_free(v);
    return rc;
}

size_t tok_vocab_size(const tok_vocab_t *v) { return v ? v->n : 0; }

const char *tok_vocab_token(const tok_vocab_t *v, int32_t id) {
    return v && id >= 0 && (size_t)id < v->n ? v->blob + v->offs[id] : NULL;
}

int32_t tok_vocab_lookup(const tok_vocab_t *v, const char *s, size_t len) {
    if (!v || (!s && len)) return -1;
    return v->slots[vocab_slot(v, s, len)];
}
