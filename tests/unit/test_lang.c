/* test_lang.c - cmocka tests of the language guess by script (model/lang.c).
 *
 * Tables of texts and the language expected for each (English, Chinese, mixed, accented Latin,
 * Japanese, Korean, other scripts, digits only, emoji only, ties), the letter counts behind
 * them, the CJK extension blocks, invalid UTF-8 (never a crash, a bad byte is a non-letter),
 * the vote itself on hand-made counts, and the range table (sorted, no overlaps, every code
 * point classified the same way through the decoder as directly), and the routing of texts to
 * models by their declared languages. lang.c is included so that its static table and helpers
 * can be checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../model/lang.c"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* "en", "zh", ... or "-" for NULL, for assert_string_equal. */
static const char *show(const char *lang) { return lang ? lang : "-"; }

typedef struct {
    const char *text;
    const char *lang; /* "-": none */
} lang_case_t;

static void check_cases(const lang_case_t *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *got = show(lang_detect(cases[i].text, strlen(cases[i].text)));
        if (strcmp(got, cases[i].lang) != 0)
            print_error("text \"%s\": expected %s, got %s\n", cases[i].text, cases[i].lang, got);
        assert_string_equal(got, cases[i].lang);
    }
}

/* Writes c as UTF-8 to out (room for 4 bytes); returns the byte count. Written independently
 * of the decoder under test: continuation bytes from the end, then the lead byte. */
static size_t put_utf8(uint32_t c, char *out) {
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    for (size_t k = n - 1; k > 0; k--, c >>= 6) out[k] = (char)(0x80 | (c & 0x3F));
    out[0] = (char)(lead[n] | c);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Whole texts
 */

static void test_lang_detect_english_and_chinese(void **state) {
    (void)state;
    static const lang_case_t cases[] = {
        {"the food was cold but the staff were lovely", "en"},
        {"Not bad at all!", "en"},
        {"I didn't hate it :)", "en"},
        {"我上周去北京玩了，很开心", "zh"},
        {"味道不错，送餐很快。", "zh"},
        {"酒店位置很好 5星", "zh"},
        {"這家餐廳的服務態度很差", "zh"}, /* traditional characters */
        {"ㄅㄆㄇ", "zh"},                   /* Bopomofo */
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_lang_detect_accented_latin(void **state) {
    (void)state;
    static const lang_case_t cases[] = {
        {"très bien, ça marche", "en"},     /* every Latin script counts as "en" */
        {"Ærøskøbing", "en"},
        {"Tôi rất vui", "en"},              /* Vietnamese: Latin Extended Additional */
        {"e\xcc\x81t\xc3\xa9", "en"},       /* e + combining acute: the mark is no letter */
        {"\xef\xbc\xaf\xef\xbc\xab", "en"}, /* full-width OK */
        {"\xef\xac\x81ne", "en"},           /* the fi ligature */
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Mixed texts go to the script with the most letters; a tie goes nowhere. */
static void test_lang_detect_mixed_majority(void **state) {
    (void)state;
    static const lang_case_t cases[] = {
        {"这个手机比iPhone好用多了", "zh"}, /* 9 Han, 6 Latin */
        {"我喜欢iPhone", "en"},             /* 3 Han, 6 Latin: letters, not words, vote */
        {"the word 好 means good", "en"},
        {"好 a", "-"},                      /* 1 : 1 */
        {"好好 ab", "-"},
        {"好好 abc", "en"},
        {"好好好 ab", "zh"},
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Texts without letters: digits, emoji, punctuation, symbols, spaces, nothing. */
static void test_lang_detect_no_letters(void **state) {
    (void)state;
    static const lang_case_t cases[] = {
        {"12345", "-"},
        {"3.14 + 2,500 = 42%", "-"},
        {"\xef\xbc\x91\xef\xbc\x92", "-"}, /* full-width digits */
        {"😀👍🔥", "-"},
        {"❤️", "-"},                        /* with a variation selector */
        {"👍🏽", "-"},                       /* with a skin tone */
        {"!!! ??? ...", "-"},
        {"，。！？「」", "-"},               /* CJK punctuation is no Han letter */
        {"× ÷ © ®", "-"},
        {" \t\n ", "-"},
        {"", "-"},
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
    assert_null(lang_detect(NULL, 0));
    assert_null(lang_detect("a\0b", 0)); /* len 0: nothing read */
}

static void test_lang_detect_other_scripts(void **state) {
    (void)state;
    static const lang_case_t cases[] = {
        {"今日はとても楽しかった", "ja"}, /* 3 kanji, 8 kana */
        {"東京大学の学生", "zh"},         /* 6 kanji, 1 kana: shares the characters */
        {"ｶﾀｶﾅ", "ja"},                   /* half-width katakana */
        {"ラーメン", "ja"},               /* with the prolonged sound mark */
        {"정말 좋아요", "ko"},
        {"отличный фильм", "-"},          /* Cyrillic: no language */
        {"отличный film", "-"},           /* 8 Cyrillic, 4 Latin */
        {"отличный film film", "-"},      /* 8 : 8 */
        {"отл film", "en"},
        {"καλή ταινία", "-"},
        {"סרט טוב", "-"},
        {"فيلم جيد", "-"},
        {"बहुत अच्छा", "-"},
        {"ดีมาก", "-"},
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

/* The counts behind a guess, one script at a time, including the CJK extension blocks. */
static void test_lang_count_scripts(void **state) {
    (void)state;
    lang_counts_t c;
    const char *t = "Hi 你好 かな 한국 Ωμ 😀 42";
    lang_count(t, strlen(t), &c);
    assert_int_equal(c.latin, 2);
    assert_int_equal(c.han, 2);
    assert_int_equal(c.kana, 2);
    assert_int_equal(c.hangul, 2);
    assert_int_equal(c.other, 2);

    /* One code point of each Han block: Ext A, unified, compatibility, Ext B, Ext G, Ext H,
     * a Kangxi radical, the iteration mark and zero. */
    static const uint32_t han[] = {0x3400, 0x4DB5, 0x4E00, 0x9FFF, 0xF900, 0x20000, 0x20BB7,
                                   0x2A700, 0x2B740, 0x2CEB0, 0x2F800, 0x30000, 0x31350,
                                   0x323AF, 0x2F00, 0x3005, 0x3007};
    char buf[4 * 32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof han / sizeof han[0]; i++) n += put_utf8(han[i], buf + n);
    lang_count(buf, n, &c);
    assert_int_equal(c.han, sizeof han / sizeof han[0]);
    assert_int_equal(c.latin + c.kana + c.hangul + c.other, 0);
    assert_string_equal(show(lang_detect(buf, n)), "zh");

    /* Just outside: ideographic description characters, CJK punctuation, past Ext H. */
    static const uint32_t not_han[] = {0x2FF0, 0x3001, 0x3002, 0x300C, 0x323B0, 0xFF01};
    n = 0;
    for (size_t i = 0; i < sizeof not_han / sizeof not_han[0]; i++)
        n += put_utf8(not_han[i], buf + n);
    lang_count(buf, n, &c);
    assert_int_equal(c.han + c.latin + c.kana + c.hangul + c.other, 0);
}

/* Invalid UTF-8 never crashes; each bad byte is a non-letter and the rest still counts. */
static void test_lang_count_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        size_t latin, han;
    } cases[] = {
        {"\xff\xfe" "abc", 5, 3, 0},
        {"ab\xe4\xbd", 4, 2, 0},             /* truncated 你 at the end */
        {"\xe4\xbd\xa0\xe4", 4, 0, 1},       /* 你, then a lone lead byte */
        {"\xe4" "a\xbd\xa0", 4, 1, 0},       /* a lead byte interrupted by ASCII */
        {"\xc0\xaf" "x", 3, 1, 0},           /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0, 0},           /* overlong, 3 bytes */
        {"\xed\xa0\x80" "y", 4, 1, 0},       /* a surrogate */
        {"\xf4\x90\x80\x80", 4, 0, 0},       /* above U+10FFFF */
        {"\xf0\xa0\x80", 3, 0, 0},           /* truncated Ext B */
        {"\x80\x80\x80" "z", 4, 1, 0},       /* continuation bytes alone */
        {"a\0b", 3, 2, 0},                   /* NUL bytes are read, not an end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lang_counts_t c;
        lang_count(cases[i].bytes, cases[i].len, &c);
        assert_int_equal(c.latin, cases[i].latin);
        assert_int_equal(c.han, cases[i].han);
        assert_int_equal(c.kana + c.hangul + c.other, 0);
    }
}

/* ---------------------------------------------------------------------------------------------
 * The vote and the table
 */

static void test_lang_of_counts_vote(void **state) {
    (void)state;
    static const struct {
        lang_counts_t c;
        const char *lang;
    } cases[] = {
        {{0, 0, 0, 0, 0}, "-"},
        {{1, 0, 0, 0, 0}, "zh"},
        {{0, 1, 0, 0, 0}, "en"},
        {{0, 0, 1, 0, 0}, "ja"},
        {{0, 0, 0, 1, 0}, "ko"},
        {{0, 0, 0, 0, 1}, "-"},  /* other scripts win: no language */
        {{5, 4, 3, 2, 1}, "zh"}, /* a plurality is enough */
        {{4, 5, 4, 0, 0}, "en"},
        {{5, 5, 0, 0, 0}, "-"},  /* a tie at the top */
        {{5, 2, 5, 0, 0}, "-"},
        {{1, 0, 0, 0, 5}, "-"},
        {{6, 0, 0, 0, 5}, "zh"},
        {{0, 0, 0, 3, 3}, "-"},
        {{SIZE_MAX, SIZE_MAX - 1, 0, 0, 0}, "zh"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(show(lang_of_counts(&cases[i].c)), cases[i].lang);
}

/* The ranges are sorted and disjoint (the binary search needs it), and every code point gets
 * the same script through the decoder as from a linear scan of the table. */
static void test_lang_table_consistent(void **state) {
    (void)state;
    for (size_t i = 0; i < N_SCRIPT_RANGES; i++) {
        assert_true(SCRIPT_RANGES[i].lo <= SCRIPT_RANGES[i].hi);
        assert_true(SCRIPT_RANGES[i].lo >= 0x80);
        assert_true(SCRIPT_RANGES[i].hi <= 0x10FFFF);
        assert_true(SCRIPT_RANGES[i].script != SC_NONE);
        if (i > 0) assert_true(SCRIPT_RANGES[i - 1].hi < SCRIPT_RANGES[i].lo);
    }
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue; /* not encodable */
        script_t want = SC_NONE;
        if (cp < 0x80) {
            if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) want = SC_LATIN;
        } else {
            for (size_t i = 0; i < N_SCRIPT_RANGES; i++)
                if (cp >= SCRIPT_RANGES[i].lo && cp <= SCRIPT_RANGES[i].hi)
                    want = SCRIPT_RANGES[i].script;
        }
        char buf[4];
        size_t len = put_utf8(cp, buf), pos = 0;
        uint32_t got = next_cp((const unsigned char *)buf, len, &pos);
        if (got != cp || pos != len || script_of(got) != want) {
            print_error("U+%04X: decoded U+%04X over %zu of %zu bytes, script %d, want %d\n",
                        (unsigned)cp, (unsigned)got, pos, len, (int)script_of(got), (int)want);
            fail();
        }
    }
}

/* A long text (1 MiB, as the body limit) counts every letter. */
static void test_lang_count_long(void **state) {
    (void)state;
    const size_t reps = (1u << 20) / 8; /* "ab你好" is 8 bytes */
    char *t = malloc(reps * 8);
    assert_non_null(t);
    for (size_t i = 0; i < reps; i++) memcpy(t + 8 * i, "ab\xe4\xbd\xa0\xe5\xa5\xbd", 8);
    lang_counts_t c;
    lang_count(t, reps * 8, &c);
    assert_int_equal(c.latin, 2 * reps);
    assert_int_equal(c.han, 2 * reps);
    assert_null(lang_detect(t, reps * 8)); /* a tie */
    t[0] = 'c';                            /* still a tie: a letter for a letter */
    assert_null(lang_detect(t, reps * 8));
    t[reps * 8 - 1] = 'x'; /* 好 loses its last byte: one Han letter fewer, one Latin more */
    assert_string_equal(show(lang_detect(t, reps * 8)), "en");
    free(t);
}

/* ---------------------------------------------------------------------------------------------
 * Routing
 */

/* A config declaring the languages in the space-separated list (may be ""). */
static gru_config_t cfg_with(const char *langs) {
    gru_config_t c;
    memset(&c, 0, sizeof c);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", langs);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
        snprintf(c.languages[c.num_languages++], sizeof c.languages[0], "%s", tok);
    return c;
}

static void test_lang_route(void **state) {
    (void)state;
    /* In load order: zh (the default), en, a second en, one without languages, ja+ko. */
    gru_config_t c[5] = {cfg_with("zh"), cfg_with("en"), cfg_with("en"), cfg_with(""), cfg_with("ja ko")};
    const gru_config_t *cfgs[5] = {&c[0], &c[1], &c[2], &c[3], &c[4]};
    static const struct {
        const char *text;
        size_t model;
    } cases[] = {
        {"the food was good", 1},   /* en: the first model declaring it, not the second */
        {"我上周去北京玩了", 0},     /* zh */
        {"12345", 0},               /* no letters: the default */
        {"😀👍", 0},
        {"好 a", 0},                /* a tie: the default */
        {"отличный фильм", 0},      /* other scripts: the default */
        {"ラーメン", 4},            /* ja */
        {"정말 좋아요", 4},         /* ko */
        {"我喜欢iPhone", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(lang_route(cases[i].text, strlen(cases[i].text), cfgs, 5), cases[i].model);
    assert_int_equal(lang_model_for("en", cfgs, 5), 1);
    assert_int_equal(lang_model_for("ko", cfgs, 5), 4);
    assert_int_equal(lang_model_for("fr", cfgs, 5), 5);
    assert_int_equal(lang_model_for(NULL, cfgs, 5), 5);
    /* Without the zh model, Chinese goes to the default, now the first English model. */
    assert_int_equal(lang_route("我上周去北京玩了", strlen("我上周去北京玩了"), cfgs + 1, 4), 0);
    /* No model declares anything: everything goes to the default. */
    const gru_config_t *none[1] = {&c[3]};
    assert_int_equal(lang_route("the food", 8, none, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lang_detect_english_and_chinese),
        cmocka_unit_test(test_lang_detect_accented_latin),
        cmocka_unit_test(test_lang_detect_mixed_majority),
        cmocka_unit_test(test_lang_detect_no_letters),
        cmocka_unit_test(test_lang_detect_other_scripts),
        cmocka_unit_test(test_lang_count_scripts),
        cmocka_unit_test(test_lang_count_invalid_utf8),
        cmocka_unit_test(test_lang_of_counts_vote),
        cmocka_unit_test(test_lang_table_consistent),
        cmocka_unit_test(test_lang_count_long),
        cmocka_unit_test(test_lang_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
