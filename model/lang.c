/* lang.c - the language of a text by a majority vote of its letters' scripts (see lang.h).
 *
 * One pass over the bytes: each strict UTF-8 sequence is decoded and looked up in SCRIPT_RANGES
 * (sorted, binary search; ASCII is decided without the table); a byte that does not start a
 * valid sequence is skipped as one non-letter. The ranges are blocks of the Unicode standard,
 * trimmed of the punctuation and combining marks that sit at their edges; inside a block of
 * another script ("other") an odd mark or digit may still count as a letter, which only makes a
 * mixed text a little less likely to get a language.
 */
#include "lang.h"

#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Scripts of letters
 */

typedef enum { SC_NONE = 0, SC_HAN, SC_LATIN, SC_KANA, SC_HANGUL, SC_OTHER } script_t;

typedef struct {
    uint32_t lo, hi;
    script_t script;
} script_range_t;

/* Sorted by lo, not overlapping. Code points outside every range are not letters. */
static const script_range_t SCRIPT_RANGES[] = {
    {0x00AA, 0x00AA, SC_LATIN},   /* feminine ordinal */
    {0x00BA, 0x00BA, SC_LATIN},   /* masculine ordinal */
    {0x00C0, 0x00D6, SC_LATIN},   /* Latin-1 letters (not U+00D7, the multiplication sign) */
    {0x00D8, 0x00F6, SC_LATIN},   /* (not U+00F7, the division sign) */
    {0x00F8, 0x02AF, SC_LATIN},   /* Latin-1, Latin Extended-A and -B, IPA */
    {0x0370, 0x03FF, SC_OTHER},   /* Greek and Coptic */
    {0x0400, 0x052F, SC_OTHER},   /* Cyrillic and its supplement */
    {0x0531, 0x0587, SC_OTHER},   /* Armenian */
    {0x05D0, 0x05F2, SC_OTHER},   /* Hebrew letters */
    {0x0620, 0x064A, SC_OTHER},   /* Arabic letters */
    {0x066E, 0x06D3, SC_OTHER},
    {0x06FA, 0x06FF, SC_OTHER},
    {0x0750, 0x077F, SC_OTHER},   /* Arabic Supplement */
    {0x0900, 0x0DFF, SC_OTHER},   /* Devanagari .. Sinhala */
    {0x0E01, 0x0E4E, SC_OTHER},   /* Thai */
    {0x0E81, 0x0EDF, SC_OTHER},   /* Lao */
    {0x0F40, 0x0F6C, SC_OTHER},   /* Tibetan letters */
    {0x1000, 0x109F, SC_OTHER},   /* Myanmar */
    {0x10A0, 0x10FF, SC_OTHER},   /* Georgian */
    {0x1100, 0x11FF, SC_HANGUL},  /* Hangul Jamo */
    {0x1200, 0x137F, SC_OTHER},   /* Ethiopic */
    {0x13A0, 0x13FF, SC_OTHER},   /* Cherokee */
    {0x1780, 0x17DD, SC_OTHER},   /* Khmer */
    {0x1D00, 0x1DBF, SC_LATIN},   /* Phonetic Extensions (Latin small capitals, modifiers) */
    {0x1E00, 0x1EFF, SC_LATIN},   /* Latin Extended Additional (Vietnamese) */
    {0x1F00, 0x1FFF, SC_OTHER},   /* Greek Extended */
    {0x2C60, 0x2C7F, SC_LATIN},   /* Latin Extended-C */
    {0x2E80, 0x2FDF, SC_HAN},     /* CJK Radicals Supplement, Kangxi Radicals */
    {0x3005, 0x3005, SC_HAN},     /* ideographic iteration mark */
    {0x3007, 0x3007, SC_HAN},     /* ideographic number zero */
    {0x3021, 0x3029, SC_HAN},     /* Hangzhou numerals */
    {0x3038, 0x303B, SC_HAN},
    {0x3041, 0x3096, SC_KANA},    /* Hiragana */
    {0x309D, 0x309F, SC_KANA},
    {0x30A1, 0x30FA, SC_KANA},    /* Katakana (not U+30FB, the middle dot) */
    {0x30FC, 0x30FF, SC_KANA},
    {0x3105, 0x312F, SC_HAN},     /* Bopomofo: written with Chinese only */
    {0x3131, 0x318E, SC_HANGUL},  /* Hangul Compatibility Jamo */
    {0x31A0, 0x31BF, SC_HAN},     /* Bopomofo Extended */
    {0x31F0, 0x31FF, SC_KANA},    /* Katakana Phonetic Extensions */
    {0x3400, 0x4DBF, SC_HAN},     /* CJK Extension A */
    {0x4E00, 0x9FFF, SC_HAN},     /* CJK Unified Ideographs */
    {0xA720, 0xA7FF, SC_LATIN},   /* Latin Extended-D */
    {0xA960, 0xA97F, SC_HANGUL},  /* Hangul Jamo Extended-A */
    {0xAB30, 0xAB6F, SC_LATIN},   /* Latin Extended-E */
    {0xAC00, 0xD7A3, SC_HANGUL},  /* Hangul Syllables */
    {0xD7B0, 0xD7FF, SC_HANGUL},  /* Hangul Jamo Extended-B */
    {0xF900, 0xFAFF, SC_HAN},     /* CJK Compatibility Ideographs */
    {0xFB00, 0xFB06, SC_LATIN},   /* Latin ligatures (ff, fi, ...) */
    {0xFF21, 0xFF3A, SC_LATIN},   /* full-width A..Z */
    {0xFF41, 0xFF5A, SC_LATIN},   /* full-width a..z */
    {0xFF66, 0xFF9D, SC_KANA},    /* half-width Katakana */
    {0xFFA0, 0xFFDC, SC_HANGUL},  /* half-width Hangul */
    {0x1B000, 0x1B16F, SC_KANA},  /* Kana Supplement and Extended-A */
    {0x20000, 0x323AF, SC_HAN},   /* CJK Extensions B..H, Compatibility Supplement */
};

#define N_SCRIPT_RANGES (sizeof SCRIPT_RANGES / sizeof SCRIPT_RANGES[0])

static script_t script_of(uint32_t c) {
    if (c < 0x80) return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? SC_LATIN : SC_NONE;
    if (c >= 0x4E00 && c <= 0x9FFF) return SC_HAN; /* the common case of Chinese text */
    size_t lo = 0, hi = N_SCRIPT_RANGES; /* search [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < SCRIPT_RANGES[mid].lo) hi = mid;
        else if (c > SCRIPT_RANGES[mid].hi) lo = mid + 1;
        else return SCRIPT_RANGES[mid].script;
    }
    return SC_NONE;
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8 (lenient: a bad byte is skipped)
 */

/* Decodes the strict UTF-8 sequence at s[*pos] (*pos < len) and advances *pos past it; a byte
 * that does not start one is returned as 0xFFFFFFFF (not a letter) and skipped alone. */
static uint32_t next_cp(const unsigned char *s, size_t len, size_t *pos) {
    size_t i = *pos;
    uint32_t b = s[i];
    *pos = i + 1;
    if (b < 0x80) return b;
    size_t need;
    uint32_t c;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;      /* overlong */
        else if (b == 0xED) hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07;
        if (b == 0xF0) lo = 0x90;      /* overlong */
        else if (b == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0xFFFFFFFFu;
    }
    if (len - i <= need || s[i + 1] < lo || s[i + 1] > hi) return 0xFFFFFFFFu;
    for (size_t k = 1; k <= need; k++) {
        if (k > 1 && (s[i + k] < 0x80 || s[i + k] > 0xBF)) return 0xFFFFFFFFu;
        c = (c << 6) | (s[i + k] & 0x3Fu);
    }
    *pos = i + need + 1;
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * API
 */

void lang_count(const char *text, size_t len, lang_counts_t *out) {
    memset(out, 0, sizeof *out);
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0;
    while (pos < len) {
        switch (script_of(next_cp(s, len, &pos))) {
        case SC_HAN: out->han++; break;
        case SC_LATIN: out->latin++; break;
        case SC_KANA: out->kana++; break;
        case SC_HANGUL: out->hangul++; break;
        case SC_OTHER: out->other++; break;
        case SC_NONE: break;
        }
    }
}

const char *lang_of_counts(const lang_counts_t *c) {
    const size_t n[] = {c->han, c->latin, c->kana, c->hangul, c->other};
    const char *const lang[] = {"zh", "en", "ja", "ko", NULL};
    size_t best = 0;
    int tie = 0;
    for (size_t i = 1; i < sizeof n / sizeof n[0]; i++) {
        if (n[i] > n[best]) {
            best = i;
            tie = 0;
        } else if (n[i] == n[best]) {
            tie = 1;
        }
    }
    if (n[best] == 0 || tie) return NULL;
    return lang[best];
}

const char *lang_detect(const char *text, size_t len) {
    lang_counts_t c;
    lang_count(text, len, &c);
    return lang_of_counts(&c);
}

size_t lang_model_for(const char *lang, const gru_config_t *const *cfgs, size_t n) {
    for (size_t i = 0; lang && i < n; i++)
        for (int k = 0; k < cfgs[i]->num_languages; k++)
            if (strcmp(cfgs[i]->languages[k], lang) == 0) return i;
    return n;
}

size_t lang_route(const char *text, size_t len, const gru_config_t *const *cfgs, size_t n) {
    size_t i = lang_model_for(lang_detect(text, len), cfgs, n);
    return i < n ? i : 0;
}
