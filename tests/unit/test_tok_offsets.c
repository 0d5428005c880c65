/* test_tok_offsets.c - every token's [start, end) in code points of the original text
 * (tok_seq_t.offsets), for the word and char tokenizers (cmocka).
 *
 * test_tok_offsets_cases: hand-checked texts through normalization (lower case, full width,
 *   typographic punctuation, dropped characters), PTB splitting (clitics, quote and dot runs,
 *   abbreviations) and Chinese, emoji included (one code point, two UTF-16 units, four bytes).
 * test_tok_offsets_random: 3000 random texts drawn from those characters; the spans must be in
 *   order, non-empty, within the text, disjoint (but for a typographic character that expands into
 *   two tokens), cover every code point that is neither a space nor a dropped character, and a token whose span is plain ASCII letters and
 *   digits must be that span lower-cased.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tok.h"

/* "tok@start:end tok@start:end ..." of text, in a static buffer. */
static const char *spans(tok_kind_t kind, const char *text, size_t max_tokens) {
    static char out[4096];
    tok_config_t cfg = {kind, 1, max_tokens};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(&cfg, NULL, text, strlen(text), &seq), 0);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < seq.n; i++)
        o += (size_t)snprintf(out + o, sizeof out - o, "%s%s@%u:%u", i ? " " : "", tok_seq_token(&seq, i),
                              (unsigned)seq.offsets[2 * i], (unsigned)seq.offsets[2 * i + 1]);
    tok_seq_deinit(&seq);
    return out;
}

static void test_tok_offsets_cases(void **state) {
    (void)state;
    static const struct {
        tok_kind_t kind;
        const char *text, *want;
    } cases[] = {
        {TOK_KIND_WORD, "Don't STOP", "do@0:2 n't@2:5 stop@6:10"},
        {TOK_KIND_WORD, "\xEF\xBC\xA7\xEF\xBC\xAF\xEF\xBC\xAF\xEF\xBC\xA4\xEF\xBC\x81", "good@0:4 !@4:5"}, /* ＧＯＯＤ！ */
        {TOK_KIND_WORD, "I said \xE2\x80\x9Cwow\xE2\x80\x9D\xE2\x80\xA6", /* I said “wow”… */
         "i@0:1 said@2:6 ``@7:8 wow@8:11 ''@11:12 ...@12:13"},
        {TOK_KIND_WORD, "wait..... co\xC2\xADop", "wait@0:4 ...@4:9 coop@10:15"}, /* soft hyphen inside */
        {TOK_KIND_WORD, "cannot I'm don\xE2\x80\x99t", "can@0:3 not@3:6 i@7:8 'm@8:10 do@11:13 n't@13:16"},
        {TOK_KIND_WORD, "''''x ('tis) \"hi\" ```a",
         "''@0:2 ''@2:4 x@4:5 (@6:7 'tis@7:11 )@11:12 ``@13:14 hi@14:16 ''@16:17 ``@18:20 `@20:21 a@21:22"},
        {TOK_KIND_WORD, "rock 'n' roll, 1,000 U.S. Mr. Smith",
         "rock@0:4 'n'@5:8 roll@9:13 ,@13:14 1,000@15:20 u.s.@21:25 mr.@26:29 smith@30:35"},
        {TOK_KIND_WORD, "\xF0\x9F\x98\x80\xE5\xA5\xBD  \xE5\x8C\x97\xE4\xBA\xAC", "\xF0\x9F\x98\x80@0:1 \xE5\xA5\xBD@1:2 "
                                                                           "\xE5\x8C\x97@4:5 \xE4\xBA\xAC@5:6"},
        {TOK_KIND_WORD, "\xC3\x89T\xC3\x89 -- a\xE2\x80\x94" "b", "\xC3\xa9t\xC3\xa9@0:3 --@4:6 a@7:8 --@8:9 b@9:10"},
        /* 我 上周 去 北京！好吃abc123 很棒😀 */
        {TOK_KIND_CHAR,
         "\xE6\x88\x91 \xE4\xB8\x8A\xE5\x91\xA8 \xE5\x8E\xBB \xE5\x8C\x97\xE4\xBA\xAC\xEF\xBC\x81\xE5\xA5\xBD\xE5\x90\x83"
         "ABC123 \xE5\xBE\x88\xE6\xA3\x92\xF0\x9F\x98\x80",
         "\xE6\x88\x91@0:1 \xE4\xB8\x8A@2:3 \xE5\x91\xA8@3:4 \xE5\x8E\xBB@5:6 \xE5\x8C\x97@7:8 \xE4\xBA\xAC@8:9 !@9:10 "
         "\xE5\xA5\xBD@10:11 \xE5\x90\x83@11:12 abc123@12:18 \xE5\xBE\x88@19:20 \xE6\xA3\x92@20:21 \xF0\x9F\x98\x80@21:22"},
        {TOK_KIND_WORD, "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = spans(cases[i].kind, cases[i].text, SIZE_MAX);
        if (strcmp(got, cases[i].want) != 0) fail_msg("case %zu: want '%s'\n got '%s'", i, cases[i].want, got);
    }
    /* Truncation keeps the offsets of the kept tokens. */
    assert_string_equal(spans(TOK_KIND_WORD, "a b c d", 2), "a@0:1 b@2:3");
}

/* ---------------------------------------------------------------------------------------------
 * Random texts
 */

/* K_EXPANDS: a typographic character that normalizes to two or three code points ("" -- ...),
 * which may end up in two tokens (’” is ''' : tokens '' and '), whose spans then share it. */
enum { K_SPACE, K_DROPPED, K_OTHER, K_EXPANDS };

static const struct {
    const char *utf8;
    int kind;
} POOL[] = {
    {" ", K_SPACE}, {"\t", K_SPACE}, {"\xE3\x80\x80", K_SPACE}, /* U+3000 */
    {"\xC2\xAD", K_DROPPED}, {"\xE2\x80\x8B", K_DROPPED},        /* soft hyphen, zero width space */
    {"a", K_OTHER}, {"b", K_OTHER}, {"n", K_OTHER}, {"t", K_OTHER}, {"s", K_OTHER}, {"X", K_OTHER},
    {"0", K_OTHER}, {"7", K_OTHER}, {"'", K_OTHER}, {"`", K_OTHER}, {"\"", K_OTHER}, {".", K_OTHER},
    {"-", K_OTHER}, {"*", K_OTHER}, {",", K_OTHER}, {"/", K_OTHER}, {"&", K_OTHER}, {"(", K_OTHER},
    {"!", K_OTHER}, {"\xEF\xBC\xA1", K_OTHER}, /* full-width A */
    {"\xE2\x80\x99", K_OTHER}, {"\xE2\x80\x9C", K_EXPANDS}, {"\xE2\x80\x9D", K_EXPANDS},
    {"\xE2\x80\xA6", K_EXPANDS}, {"\xE2\x80\x94", K_EXPANDS}, {"\xC3\x89", K_OTHER}, {"\xE5\xA5\xBD", K_OTHER}, {"\xF0\x9F\x98\x80", K_OTHER},
};
#define POOL_N (sizeof POOL / sizeof POOL[0])

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void test_tok_offsets_random(void **state) {
    (void)state;
    uint64_t seed = 77;
    tok_seq_t seq;
    tok_seq_init(&seq);
    for (int iter = 0; iter < 3000; iter++) {
        char text[512];
        int kinds[64], covered[64];
        size_t len = 0, ncp = 1 + rng_next(&seed) % 40;
        for (size_t k = 0; k < ncp; k++) {
            size_t p = rng_next(&seed) % POOL_N;
            if (rng_next(&seed) % 3) p = 5 + p % 7; /* letters more often, so words form */
            size_t b = strlen(POOL[p].utf8);
            memcpy(text + len, POOL[p].utf8, b);
            len += b;
            kinds[k] = POOL[p].kind;
            covered[k] = 0;
        }
        tok_config_t cfg = {iter % 4 ? TOK_KIND_WORD : TOK_KIND_CHAR, 1, SIZE_MAX};
        assert_int_equal(tok_encode(&cfg, NULL, text, len, &seq), 0);
        for (size_t i = 0; i < seq.n; i++) {
            uint32_t s = seq.offsets[2 * i], e = seq.offsets[2 * i + 1];
            int after_prev = i == 0 || seq.offsets[2 * i - 1] <= s ||
                             (seq.offsets[2 * i - 1] == s + 1 && kinds[s] == K_EXPANDS);
            if (!(s < e && e <= ncp && after_prev))
                fail_msg("text '%.*s' token %zu '%s': bad span [%u, %u)", (int)len, text, i, tok_seq_token(&seq, i),
                         s, e);
            for (uint32_t k = s; k < e; k++) covered[k]++;
        }
        for (size_t k = 0; k < ncp; k++)
            if ((kinds[k] == K_OTHER && covered[k] != 1) || (kinds[k] == K_EXPANDS && !covered[k]) ||
                (kinds[k] == K_SPACE && covered[k] != 0))
                fail_msg("text '%.*s': code point %zu covered %d times", (int)len, text, k, covered[k]);
        /* A span of plain ASCII letters and digits is its token, lower-cased. */
        for (size_t i = 0; i < seq.n; i++) {
            uint32_t s = seq.offsets[2 * i], e = seq.offsets[2 * i + 1];
            char plain[64];
            size_t n = 0, cp = 0;
            int ok = 1;
            for (size_t b = 0; b < len && cp < e; cp++) { /* walk code points to byte positions */
                unsigned char c = (unsigned char)text[b];
                size_t w = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
                if (cp >= s) {
                    if (w != 1 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) ok = 0;
                    else plain[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                }
                b += w;
            }
            plain[n] = '\0';
            if (ok && strcmp(plain, tok_seq_token(&seq, i)) != 0)
                fail_msg("text '%.*s' token %zu: '%s' but its span reads '%s'", (int)len, text, i,
                         tok_seq_token(&seq, i), plain);
        }
    }
    tok_seq_deinit(&seq);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_offsets_cases),
        cmocka_unit_test(test_tok_offsets_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
