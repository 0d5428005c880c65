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
 * Routing (lang_route): a text goes to the first of a list of models that declares the text's
 * language (gru_config_t.languages, from config.json); without a language, or when no model
 * declares it, to the first model of the list (the server's default).
 *
 * Usage:
 *     const char *lang = lang_detect(text, strlen(text)); // "en", "zh", "ja", "ko" or NULL
 *     lang_counts_t c; lang_count(text, strlen(text), &c); // the votes behind it
 *     size_t i = lang_route(text, strlen(text), cfgs, n);   // cfgs[i] answers the text
 */
#ifndef LANG_H
#define LANG_H

#include <stddef.h>

#include "gru.h"

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

/* The index of the first of cfgs[0..n) that declares lang, or n when none does (or lang is
 * NULL). cfgs are borrowed for the call. */
size_t lang_model_for(const char *lang, const gru_config_t *const *cfgs, size_t n);

/* The index in cfgs[0..n) (n >= 1) of the model that answers text[0..len) when a request names
 * no model: lang_model_for(lang_detect(text, len)), or 0 when that is n. */
size_t lang_route(const char *text, size_t len, const gru_config_t *const *cfgs, size_t n);

#endif /* LANG_H */
