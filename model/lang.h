/* lang.h - the language of a text, guessed from the scripts of its letters.
 *
 * Used to send a text to a model of its language when a request names no model. The guess is a
 * majority vote of letters by Unicode script, nothing more: Han (and Bopomofo) letters vote for
 * "zh", Latin letters for "en", kana for "ja", Hangul for "ko"; letters of other scripts (Greek,
 * Cyrillic, Hebrew, Arabic, Indic, Thai, ...) vote for no language. Digits, punctuation,
 * symbols, emoji and spaces do not vote. The script with strictly more letters than every other
 * one wins; a tie, a win of the other scripts or a text without letters gives no language
 * (NULL), and the caller decides (the server falls back to its default model). The exact code
 * point ranges are listed in lang.c and in api/README.md ("Which model answers").
 *
 * Pure functions: no allocation, no global state, any thread. Invalid UTF-8 is not an error
 * here: each byte that does not start a valid sequence counts as one non-letter.
 *
 * Usage:
 *     const char *lang = lang_detect(text, strlen(text)); // "en", "zh", "ja", "ko" or NULL
 *     lang_counts_t c; lang_count(text, strlen(text), &c); // the votes behind it
 */
#ifndef LANG_H
#define LANG_H

#include <stddef.h>

/* ---- types ---- */

/* Letters of a text by script. */
typedef struct {
    size_t han;    /* CJK ideographs (all extension blocks), radicals, Bopomofo: "zh" */
    size_t latin;  /* Latin letters, with accents, ligatures and full-width forms: "en" */
    size_t kana;   /* Hiragana and Katakana (also half-width): "ja" */
    size_t hangul; /* Hangul syllables and jamo: "ko" */
    size_t other;  /* letters of other scripts: no language */
} lang_counts_t;

/* ---- prototypes ---- */

/* Counts the letters of text[0..len) by script into *out (zeroed first). text need not be
 * NUL-terminated and may be NULL when len is 0. */
void lang_count(const char *text, size_t len, lang_counts_t *out);

/* The language of the counts' majority script: a static string "en", "zh", "ja" or "ko", or NULL
 * when no script has strictly more letters than every other one, when letters of other scripts
 * are the most, or when there are no letters at all. */
const char *lang_of_counts(const lang_counts_t *c);

/* lang_of_counts() of lang_count(text, len). */
const char *lang_detect(const char *text, size_t len);

#endif /* LANG_H */
