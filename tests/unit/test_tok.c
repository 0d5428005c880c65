/* test_tok.c - cmocka tests of the tokenizers and the vocabulary (model/tok.c).
 *
 * Tables of inputs and expected tokens for the word kind (English, PTB style as in SST-2) and the
 * char kind (Chinese), invalid UTF-8 with its error offset, edge cases (empty, whitespace only,
 * NUL bytes, 1 MB text, overlong tokens), vocab loading errors, lookups and reuse of one
 * tok_seq_t. tok.c is included (not linked) so that its allocations can be made to fail one by
 * one (the test_chaos.c idea from jansson): every failure must give -ENOMEM and leak nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- allocation failure injection: the n-th allocation in tok.c fails when fi_countdown hits 0 */

static long fi_countdown = -1; /* -1: never fail */

static int fi_fail_now(void) {
    if (fi_countdown < 0) return 0;
    return fi_countdown-- == 0;
}
static void *fi_malloc(size_t n) { return fi_fail_now() ? NULL : malloc(n); }
static void *fi_calloc(size_t k, size_t n) { return fi_fail_now() ? NULL : calloc(k, n); }
static void *fi_realloc(void *p, size_t n) { return fi_fail_now() ? NULL : realloc(p, n); }

#define malloc(n) fi_malloc(n)
#define calloc(k, n) fi_calloc(k, n)
#define realloc(p, n) fi_realloc(p, n)
#include "../../model/tok.c"
#undef malloc
#undef calloc
#undef realloc

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* Tokenizes text[0..len) and returns the tokens joined by single spaces (a static buffer). */
static const char *toks_n(tok_kind_t kind, int lowercase, const char *text, size_t len) {
    static char out[1 << 16];
    tok_config_t cfg = {kind, lowercase, SIZE_MAX};
    tok_seq_t seq;
    tok_seq_init(&seq);
    int rc = tok_encode(&cfg, NULL, text, len, &seq);
    if (rc < 0) {
        snprintf(out, sizeof out, "ERROR %d @%zu", rc, seq.error_offset);
    } else {
        size_t o = 0;
        out[0] = '\0';
        assert_int_equal(seq.n, seq.n_total);
        for (size_t i = 0; i < seq.n; i++) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", i ? " " : "",
                                  tok_seq_token(&seq, i));
            assert_true(o < sizeof out);
        }
    }
    tok_seq_deinit(&seq);
    return out;
}

static const char *toks(tok_kind_t kind, int lowercase, const char *text) {
    return toks_n(kind, lowercase, text, strlen(text));
}

typedef struct {
    const char *in, *want;
} tok_case_t;

static void run_table(tok_kind_t kind, int lowercase, const tok_case_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *got = toks(kind, lowercase, t[i].in);
        if (strcmp(got, t[i].want) != 0)
            print_error("input %s\n  want [%s]\n  got  [%s]\n", t[i].in, t[i].want, got);
        assert_string_equal(got, t[i].want);
    }
}

#define RUN_TABLE(kind, lc, table) run_table(kind, lc, table, sizeof(table) / sizeof((table)[0]))

/* Writes content to a new temporary file; returns its path (a static buffer). */
static const char *write_tmp(const char *content, size_t len) {
    static char path[64];
    strcpy(path, "/tmp/test_tok_vocab_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

/* ---------------------------------------------------------------------------------------------
 * Word kind
 */

static void test_tok_word_english(void **state) {
    static const tok_case_t t[] = {
        {"It's NOT good!!", "it 's not good ! !"},
        {"don't", "do n't"},
        {"can't", "ca n't"},
        {"won't", "wo n't"},
        {"I'm", "i 'm"},
        {"they're we've you'll he'd", "they 're we 've you 'll he 'd"},
        {"\"quoted\"", "`` quoted ''"},
        {"he said \"no way\" (twice)", "he said `` no way '' ( twice )"},
        {"(parens)", "( parens )"},
        {"mr. smith", "mr. smith"},
        {"Mr. Smith and Dr. Who, etc. are here.", "mr. smith and dr. who , etc. are here ."},
        {"e.t.", "e.t."},
        {"e.t. phones home", "e.t. phones home"},
        {"u.s.", "u.s."},
        {"1.8", "1.8"},
        {"2,500", "2,500"},
        {"2,500,000 dollars, 3, 4", "2,500,000 dollars , 3 , 4"},
        {"'70s", "'70s"},
        {"the '70s and '80s", "the '70s and '80s"},
        {"old-fashioned", "old-fashioned"},
        {"and/or", "and/or"},
        {"r&d", "r&d"},
        {"o'fallon", "o'fallon"},
        {"film--it", "film -- it"},
        {"film -- it", "film -- it"},
        {"film---it", "film -- it"},
        {"wait...", "wait ..."},
        {"wait..", "wait ..."},
        {"wait.", "wait ."},
        {"***", "***"},
        {"a ** b *", "a ** b *"},
        {"rock 'n' roll", "rock 'n' roll"},
        {"'em 'til 'cause 'tis 'twas", "'em 'til 'cause 'tis 'twas"},
        {"cannot gonna wanna gotta", "can not gon na wan na got ta"},
        {"he said 'hello' to me", "he said ` hello ' to me"},
        {"('quoted')", "( ` quoted ' )"},
        {"the actors' work", "the actors ' work"},
        {"a . ' , '' `` ` --", "a . ' , '' `` ` --"},
        {"'s 're 've 'll 'd 'm n't", "'s 're 've 'll 'd 'm n't"},
        {"it 's", "it 's"},
        {"I. A. x. b.", "i . a . x. b."},
        {"no. 1", "no . 1"},
        {"et al.", "et al."},
        {"hey.you", "hey.you"},
        {"-5 -x", "- 5 - x"},
        {"anti- castro", "anti - castro"},
        {"? ! ?!? $5 50% #1 @me", "? ! ? ! ? $ 5 50 % # 1 @ me"},
        {"a=b<c>d", "a = b < c > d"},
        {"it\xe2\x80\x99s \xe2\x80\x9cgreat\xe2\x80\x9d \xe2\x80\x94 really\xe2\x80\xa6",
         "it 's `` great '' -- really ..."},
        {"\xe2\x80\x98single\xe2\x80\x99 \xe2\x80\x9elow\xe2\x80\x9d a\xe2\x80\x93" "b",
         "` single ' `` low '' a -- b"},
        {"\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3 \xef\xbd\x84\xef\xbd\x85\xef\xbd\x86\xef\xbc\x81",
         "abc def !"},                            /* full-width letters */
        {"\xc3\x89TOILE \xc3\x80 \xc3\x97 \xc3\x9e", "\xc3\xa9toile \xc3\xa0 \xc3\x97 \xc3\xbe"},
        {"na\xc3\xafvet\xc3\xa9 caf\xc3\xa9", "na\xc3\xafvet\xc3\xa9 caf\xc3\xa9"},
        {"soft\xc2\xadhyphen zero\xe2\x80\x8bwidth", "softhyphen zerowidth"},
        {"a\xc2\xa0" "b\xe3\x80\x80" "c\xe2\x80\x89" "d", "a b c d"},
        {"\xe4\xb8\xad\xe6\x96\x87ok", "\xe4\xb8\xad \xe6\x96\x87 ok"}, /* CJK inside a word chunk */
        {"good\xf0\x9f\x98\x80!", "good \xf0\x9f\x98\x80 !"},
        {"\xe2\x9d\xa4\xef\xb8\x8f", "\xe2\x9d\xa4"}, /* the variation selector is dropped */
    };
    (void)state;
    RUN_TABLE(TOK_KIND_WORD, 1, t);
}

static void test_tok_word_no_lowercase(void **state) {
    static const tok_case_t t[] = {
        {"DON'T Stop", "DO N'T Stop"},
        {"Cannot", "Can not"},
        {"IT'S", "IT 'S"},
        {"Mr. X. I.", "Mr. X. I ."},
        {"\xc3\x89t\xc3\xa9 \xef\xbc\xa1", "\xc3\x89t\xc3\xa9 A"},
        {"'S", "'S"},
    };
    (void)state;
    RUN_TABLE(TOK_KIND_WORD, 0, t);
}

/* ---------------------------------------------------------------------------------------------
 * Char kind
 */

static void test_tok_char_chinese(void **state) {
    static const tok_case_t t[] = {
        {"我 上周 去 北京 玩 了", "我 上 周 去 北 京 玩 了"},
        {"10点半下的单,12点ＯＫ！😀", "10 点 半 下 的 单 , 12 点 ok ! 😀"},
        {"iPhone6很好用abc", "iphone6 很 好 用 abc"},
        {"送餐快，味道好。", "送 餐 快 , 味 道 好 。"},
        {"第3次点ＫＦＣ了", "第 3 次 点 kfc 了"},
        {"Hello World 你好", "hello world 你 好"},
        {"👍👍", "👍 👍"},
        {"太难吃了!!!", "太 难 吃 了 ! ! !"},
        {"“好评”……", "“ 好 评 ” … …"}, /* no typographic expansion in the char kind */
        {"don't", "don ' t"},
        {"日本のアニメ", "日 本 の ア ニ メ"},
        {"한국어", "한 국 어"},
        {"𠀀x", "𠀀 x"},
        {"【推荐】＃话题＃", "【 推 荐 】 # 话 题 #"},
        {"3.5元", "3 . 5 元"},
    };
    (void)state;
    RUN_TABLE(TOK_KIND_CHAR, 1, t);
}

static void test_tok_word_chinese(void **state) {
    static const tok_case_t t[] = {
        {"我 上周 去 北京 玩 了", "我 上 周 去 北 京 玩 了"},
        {"10点半下的单,12点ＯＫ！😀", "10 点 半 下 的 单 , 12 点 ok ! 😀"},
        {"iPhone6很好用abc", "iphone6 很 好 用 abc"},
    };
    (void)state;
    RUN_TABLE(TOK_KIND_WORD, 1, t);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid UTF-8
 */

static void test_tok_invalid_utf8(void **state) {
    static const struct {
        const char *in;
        size_t offset;
    } t[] = {
        {"ab\xc0\x80", 2},             /* overlong 2-byte NUL */
        {"\xc1\xbf", 0},               /* overlong 2-byte */
        {"\xe0\x80\x80", 0},           /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 0},       /* overlong 4-byte */
        {"x\xed\xa0\x80", 1},          /* surrogate U+D800 */
        {"xy\xed\xbf\xbf", 2},         /* surrogate U+DFFF */
        {"abc\xe4\xb8", 3},            /* truncated at the end */
        {"\xe4\xb8" "a", 0},           /* truncated before ASCII */
        {"\xf0\x9f\x98", 0},           /* truncated 4-byte */
        {"q\xf4\x90\x80\x80", 1},      /* U+110000 */
        {"\xf5\x80\x80\x80", 0},       /* lead byte above U+10FFFF */
        {"ok \x80", 3},                /* lone continuation byte */
        {"\xbf", 0},                   /* lone continuation byte */
        {"\xff", 0},
        {"good movie \xc3", 11},       /* after some tokens: still an error, no tokens */
        {"\xe4\xb8\xad\xe6\x96\x87\x80", 6},
    };
    (void)state;
    tok_config_t cfgs[] = {{TOK_KIND_WORD, 1, 16}, {TOK_KIND_CHAR, 1, 16}};
    tok_seq_t seq;
    tok_seq_init(&seq);
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            int rc = tok_encode(&cfgs[c], NULL, t[i].in, strlen(t[i].in), &seq);
            if (rc != -EILSEQ || seq.error_offset != t[i].offset)
                print_error("case %zu: rc %d offset %zu\n", i, rc, seq.error_offset);
            assert_int_equal(rc, -EILSEQ);
            assert_int_equal(seq.error_offset, t[i].offset);
            assert_int_equal(seq.n, 0);
            assert_int_equal(seq.n_total, 0);
            assert_false(seq.truncated);
        }
    }
    /* Valid edge cases: U+FFFF, U+10FFFF, U+E000 are not errors. */
    assert_string_equal(toks(TOK_KIND_CHAR, 1, "\xef\xbf\xbf \xf4\x8f\xbf\xbf \xee\x80\x80"),
                        "\xef\xbf\xbf \xf4\x8f\xbf\xbf \xee\x80\x80");
    tok_seq_deinit(&seq);
}

/* ---------------------------------------------------------------------------------------------
 * Edge cases
 */

static void test_tok_empty_and_space(void **state) {
    (void)state;
    tok_config_t cfg = {TOK_KIND_WORD, 1, 8};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(&cfg, NULL, NULL, 0, &seq), 0);
    assert_int_equal(seq.n, 0);
    assert_int_equal(seq.n_total, 0);
    assert_false(seq.truncated);
    assert_null(tok_seq_token(&seq, 0));
    assert_int_equal(tok_encode(&cfg, NULL, "", 0, &seq), 0);
    assert_int_equal(seq.n, 0);
    static const char ws[] = " \t\r\n\v\f\xc2\xa0\xe3\x80\x80\xe2\x80\x8b\xef\xbb\xbf\xc2\x85";
    assert_int_equal(tok_encode(&cfg, NULL, ws, sizeof ws - 1, &seq), 0);
    assert_int_equal(seq.n_total, 0);
    cfg.kind = TOK_KIND_CHAR;
    assert_int_equal(tok_encode(&cfg, NULL, ws, sizeof ws - 1, &seq), 0);
    assert_int_equal(seq.n_total, 0);
    tok_seq_deinit(&seq);
    assert_string_equal(toks(TOK_KIND_WORD, 1, "!!! ??? ... ,,,"), "! ! ! ? ? ? ... , , ,");
    assert_string_equal(toks(TOK_KIND_CHAR, 1, "!!! ？？"), "! ! ! ? ?");
}

static void test_tok_nul_bytes(void **state) {
    (void)state;
    static const char text[] = "good\0movie\0\0!";
    assert_string_equal(toks_n(TOK_KIND_WORD, 1, text, sizeof text - 1), "good movie !");
    assert_string_equal(toks_n(TOK_KIND_CHAR, 1, "\0\xe5\xa5\xbd\0", 5), "\xe5\xa5\xbd");
}

static void test_tok_long_text_truncated(void **state) {
    (void)state;
    static const char unit[] = "It's a good movie, isn't it? ";    /* 10 tokens */
    size_t ulen = sizeof unit - 1, reps = (1u << 20) / ulen + 1, len = reps * ulen;
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t i = 0; i < reps; i++) memcpy(text + i * ulen, unit, ulen);
    tok_config_t cfg = {TOK_KIND_WORD, 1, 256};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(&cfg, NULL, text, len, &seq), 0);
    assert_int_equal(seq.n, 256);
    assert_int_equal(seq.n_total, reps * 10);
    assert_true(seq.truncated);
    assert_string_equal(tok_seq_token(&seq, 0), "it");
    assert_string_equal(tok_seq_token(&seq, 1), "'s");
    assert_string_equal(tok_seq_token(&seq, 255), ","); /* token 255 = 25 units + 5 */
    assert_null(tok_seq_token(&seq, 256));
    /* No truncation: every token is kept. */
    cfg.max_tokens = SIZE_MAX;
    assert_int_equal(tok_encode(&cfg, NULL, text, len, &seq), 0);
    assert_int_equal(seq.n, reps * 10);
    assert_false(seq.truncated);
    assert_string_equal(tok_seq_token(&seq, seq.n - 1), "?");
    /* max_tokens 0: nothing kept, everything counted. */
    cfg.max_tokens = 0;
    assert_int_equal(tok_encode(&cfg, NULL, text, len, &seq), 0);
    assert_int_equal(seq.n, 0);
    assert_int_equal(seq.n_total, reps * 10);
    assert_true(seq.truncated);
    tok_seq_deinit(&seq);
    free(text);
}

static void test_tok_long_token_cut(void **state) {
    (void)state;
    char text[4096];
    tok_seq_t seq;
    tok_seq_init(&seq);
    tok_config_t cfg = {TOK_KIND_WORD, 1, 100};
    /* 700 x U+00E9 (1400 bytes), then 's: cut to 512 characters, clitic kept. */
    size_t n = 0;
    for (int i = 0; i < 700; i++) n += (size_t)sprintf(text + n, "\xc3\xa9");
    n += (size_t)sprintf(text + n, "'s");
    assert_int_equal(tok_encode(&cfg, NULL, text, n, &seq), 0);
    assert_int_equal(seq.n, 2);
    assert_int_equal(strlen(tok_seq_token(&seq, 0)), TOK_MAX_TOKEN_BYTES);
    assert_string_equal(tok_seq_token(&seq, 1), "'s");
    /* 1023 x "x" then U+00E9: the cut falls inside the last character, which is dropped. */
    memset(text, 'x', 1023);
    memcpy(text + 1023, "\xc3\xa9y", 3);
    assert_int_equal(tok_encode(&cfg, NULL, text, 1026, &seq), 0);
    assert_int_equal(seq.n, 1);
    assert_int_equal(strlen(tok_seq_token(&seq, 0)), 1023);
    /* A run of 3000 stars is one token of 1024 stars. */
    memset(text, '*', 3000);
    assert_int_equal(tok_encode(&cfg, NULL, text, 3000, &seq), 0);
    assert_int_equal(seq.n, 1);
    assert_int_equal(strlen(tok_seq_token(&seq, 0)), TOK_MAX_TOKEN_BYTES);
    tok_seq_deinit(&seq);
}

static void test_tok_einval(void **state) {
    (void)state;
    tok_config_t cfg = {TOK_KIND_WORD, 1, 8}, bad = {(tok_kind_t)7, 1, 8};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(NULL, NULL, "a", 1, &seq), -EINVAL);
    assert_int_equal(tok_encode(&cfg, NULL, "a", 1, NULL), -EINVAL);
    assert_int_equal(tok_encode(&cfg, NULL, NULL, 1, &seq), -EINVAL);
    assert_int_equal(tok_encode(&bad, NULL, "a", 1, &seq), -EINVAL);
    tok_seq_deinit(&seq);
    tok_seq_deinit(NULL);
    tok_vocab_free(NULL);
}

/* One tok_seq_t across calls: each call replaces what the previous left, errors included. */
static void test_tok_seq_reuse(void **state) {
    (void)state;
    tok_config_t cfg = {TOK_KIND_WORD, 1, 4};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(&cfg, NULL, "one two three four five six", 27, &seq), 0);
    assert_int_equal(seq.n, 4);
    assert_int_equal(seq.n_total, 6);
    assert_true(seq.truncated);
    assert_int_equal(tok_encode(&cfg, NULL, "Don't", 5, &seq), 0);
    assert_int_equal(seq.n, 2);
    assert_int_equal(seq.n_total, 2);
    assert_false(seq.truncated);
    assert_string_equal(tok_seq_token(&seq, 0), "do");
    assert_string_equal(tok_seq_token(&seq, 1), "n't");
    assert_int_equal(tok_encode(&cfg, NULL, "bad \xff", 5, &seq), -EILSEQ);
    assert_int_equal(seq.error_offset, 4);
    assert_int_equal(seq.n, 0);
    cfg.kind = TOK_KIND_CHAR;
    assert_int_equal(tok_encode(&cfg, NULL, "好的", 6, &seq), 0);
    assert_int_equal(seq.n, 2);
    assert_int_equal(seq.error_offset, 0);
    assert_string_equal(tok_seq_token(&seq, 1), "的");
    tok_seq_deinit(&seq);
    tok_seq_deinit(&seq); /* deinit twice is harmless: the storage was zeroed */
}

/* ---------------------------------------------------------------------------------------------
 * Vocabulary
 */

static const char VOCAB[] = "<pad>\n<unk>\nit\n's\nnot\ngood\n!\n\xe5\xa5\xbd\n";

static void test_tok_vocab_lookup(void **state) {
    (void)state;
    const char *path = write_tmp(VOCAB, sizeof VOCAB - 1);
    tok_vocab_t *v = NULL;
    char err[256];
    assert_int_equal(tok_vocab_load(&v, path, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(tok_vocab_size(v), 8);
    assert_int_equal(tok_vocab_lookup(v, "<pad>", 5), TOK_ID_PAD);
    assert_int_equal(tok_vocab_lookup(v, "<unk>", 5), TOK_ID_UNK);
    assert_int_equal(tok_vocab_lookup(v, "good", 4), 5);
    assert_int_equal(tok_vocab_lookup(v, "goodx", 4), 5); /* length, not NUL, ends the key */
    assert_int_equal(tok_vocab_lookup(v, "\xe5\xa5\xbd", 3), 7);
    assert_int_equal(tok_vocab_lookup(v, "bad", 3), -1);
    assert_int_equal(tok_vocab_lookup(v, "", 0), -1);
    assert_string_equal(tok_vocab_token(v, 3), "'s");
    assert_string_equal(tok_vocab_token(v, 7), "\xe5\xa5\xbd");
    assert_null(tok_vocab_token(v, 8));
    assert_null(tok_vocab_token(v, -1));

    tok_config_t cfg = {TOK_KIND_WORD, 1, 16};
    tok_seq_t seq;
    tok_seq_init(&seq);
    assert_int_equal(tok_encode(&cfg, v, "It's NOT good!! Really.", 23, &seq), 0);
    static const int32_t want[] = {2, 3, 4, 5, 6, 6, TOK_ID_UNK, TOK_ID_UNK};
    assert_int_equal(seq.n, 8);
    for (size_t i = 0; i < seq.n; i++) assert_int_equal(seq.ids[i], want[i]);
    tok_seq_deinit(&seq);
    tok_vocab_free(v);
}

static void test_tok_vocab_errors(void **state) {
    (void)state;
    static const struct {
        const char *content, *why;
        int rc;
    } t[] = {
        {"hello\n<unk>\n", ":1: must be <pad>", -EINVAL},
        {"<pad>\nhello\n", ":2: must be <unk>", -EINVAL},
        {"<pad>\n", ":2: missing <unk>", -EINVAL},
        {"", ":1: empty file", -EINVAL},
        {"<pad>\n<unk>\na\nb\na\n", ":5: duplicate token (also on line 3)", -EINVAL},
        {"<pad>\n<unk>\n\nb\n", ":3: empty line", -EINVAL},
        {"<pad>\n<unk>\na", ":3: the last line has no newline", -EINVAL},
        {"<pad>\n<unk>\na\r\n", ":3: carriage return", -EINVAL},
        {"<pad>\n<unk>\nok\nb\xc0\x80\n", ":4: invalid UTF-8 at byte 1", -EILSEQ},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *path = write_tmp(t[i].content, strlen(t[i].content));
        static char sentinel;
        tok_vocab_t *v = (tok_vocab_t *)(void *)&sentinel; /* must be reset to NULL */
        char err[256] = "";
        int rc = tok_vocab_load(&v, path, err, sizeof err);
        unlink(path);
        if (rc != t[i].rc || !strstr(err, t[i].why))
            print_error("case %zu: rc %d err '%s'\n", i, rc, err);
        assert_int_equal(rc, t[i].rc);
        assert_null(v);
        assert_non_null(strstr(err, t[i].why));
        assert_non_null(strstr(err, "/tmp/test_tok_vocab_")); /* names the file */
    }
    tok_vocab_t *v = NULL;
    char err[256];
    assert_int_equal(tok_vocab_load(&v, "/nonexistent/vocab.txt", err, sizeof err), -ENOENT);
    assert_null(v);
    assert_non_null(strstr(err, "/nonexistent/vocab.txt"));
    assert_int_equal(tok_vocab_load(&v, "/nonexistent/vocab.txt", NULL, 0), -ENOENT);
}

/* A vocabulary large enough to exercise probing: every token finds its own id. */
static void test_tok_vocab_many(void **state) {
    (void)state;
    size_t n = 50000, cap = n * 12 + 32, len = 0;
    char *content = malloc(cap);
    assert_non_null(content);
    len += (size_t)sprintf(content, "<pad>\n<unk>\n");
    for (size_t i = 2; i < n; i++) len += (size_t)sprintf(content + len, "w%zu\n", i);
    const char *path = write_tmp(content, len);
    tok_vocab_t *v = NULL;
    assert_int_equal(tok_vocab_load(&v, path, NULL, 0), 0);
    unlink(path);
    assert_int_equal(tok_vocab_size(v), n);
    char key[32];
    for (size_t i = 2; i < n; i++) {
        int k = sprintf(key, "w%zu", i);
        assert_int_equal(tok_vocab_lookup(v, key, (size_t)k), (int32_t)i);
        assert_string_equal(tok_vocab_token(v, (int32_t)i), key);
    }
    assert_int_equal(tok_vocab_lookup(v, "w50000", 6), -1);
    tok_vocab_free(v);
    free(content);
}

/* ---------------------------------------------------------------------------------------------
 * Allocation failures: fail the n-th allocation for n = 0, 1, ... until the call succeeds.
 */

static void test_tok_encode_enomem(void **state) {
    (void)state;
    size_t len = 0;
    char *text = malloc(64 * 1024);
    assert_non_null(text);
    while (len < 60 * 1024) len += (size_t)sprintf(text + len, "It's \"great\" %zu, isn't it? ", len);
    tok_config_t cfg = {TOK_KIND_WORD, 1, 5000};
    size_t want_total = 0;
    {
        tok_seq_t seq;
        tok_seq_init(&seq);
        assert_int_equal(tok_encode(&cfg, NULL, text, len, &seq), 0);
        want_total = seq.n_total;
        tok_seq_deinit(&seq);
    }
    int failed = 0;
    for (long n = 0;; n++) {
        tok_seq_t seq;
        tok_seq_init(&seq);
        fi_countdown = n;
        int rc = tok_encode(&cfg, NULL, text, len, &seq);
        fi_countdown = -1;
        if (rc == 0) {
            assert_int_equal(seq.n_total, want_total);
            tok_seq_deinit(&seq);
            break;
        }
        failed++;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(seq.n, 0);
        assert_int_equal(seq.n_total, 0);
        tok_seq_deinit(&seq);
    }
    assert_true(failed > 3);
    free(text);
}

static void test_tok_vocab_enomem(void **state) {
    (void)state;
    const char *path = write_tmp(VOCAB, sizeof VOCAB - 1);
    for (long n = 0;; n++) {
        tok_vocab_t *v = NULL;
        char err[256];
        fi_countdown = n;
        int rc = tok_vocab_load(&v, path, err, sizeof err);
        fi_countdown = -1;
        if (rc == 0) {
            assert_int_equal(tok_vocab_lookup(v, "good", 4), 5);
            tok_vocab_free(v);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(v);
    }
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_word_english),
        cmocka_unit_test(test_tok_word_no_lowercase),
        cmocka_unit_test(test_tok_char_chinese),
        cmocka_unit_test(test_tok_word_chinese),
        cmocka_unit_test(test_tok_invalid_utf8),
        cmocka_unit_test(test_tok_empty_and_space),
        cmocka_unit_test(test_tok_nul_bytes),
        cmocka_unit_test(test_tok_long_text_truncated),
        cmocka_unit_test(test_tok_long_token_cut),
        cmocka_unit_test(test_tok_einval),
        cmocka_unit_test(test_tok_seq_reuse),
        cmocka_unit_test(test_tok_vocab_lookup),
        cmocka_unit_test(test_tok_vocab_errors),
        cmocka_unit_test(test_tok_vocab_many),
        cmocka_unit_test(test_tok_encode_enomem),
        cmocka_unit_test(test_tok_vocab_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
