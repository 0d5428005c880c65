/* test_srv_keys.c - server/srv_keys.c: the --api-key-file format (comments, blank lines, CRLF,
 * names, unnamed keys), every kind of bad line (with messages that never show a key), the
 * limits, the lookup, and the single-key comparison. The module has no HTTP in it, so its .c
 * file is included here directly. */
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

#include "../../server/srv_keys.c"
#include "../../server/srv_util.c"

static const char FILE_OK[] =
    "# keys of the sentiment service\n"
    "\n"
    "k-ci-0123456789abcdef   ci-pipeline\r\n"
    "   \t\n"
    "  k-dash-XYZ/+=~!    dashboard   \n"
    "k-unnamed\n"
    "k-rotated-new dashboard\n"
    "#k-commented-out nobody\n"
    "k-last-no-newline\tlast.one_2";

static void test_srv_keys_parse(void **state) {
    (void)state;
    srv_keys_t *k;
    char err[256] = "";
    assert_int_equal(srv_keys_parse(&k, FILE_OK, strlen(FILE_OK), "keys.txt", err, sizeof err), 0);
    assert_int_equal(srv_keys_count(k), 5);
    assert_string_equal(srv_keys_name(k, 0), "ci-pipeline");
    assert_string_equal(srv_keys_name(k, 1), "dashboard");
    assert_string_equal(srv_keys_name(k, 2), "line-6");
    assert_string_equal(srv_keys_name(k, 3), "dashboard");
    assert_string_equal(srv_keys_name(k, 4), "last.one_2");
    assert_null(srv_keys_name(k, 5));
    /* Every key finds its name; nothing else finds anything. */
    const char *m = srv_keys_match(k, "k-ci-0123456789abcdef", 21);
    assert_non_null(m);
    assert_string_equal(m, "ci-pipeline");
    assert_string_equal(srv_keys_match(k, "k-dash-XYZ/+=~!", 15), "dashboard");
    assert_string_equal(srv_keys_match(k, "k-unnamed", 9), "line-6");
    assert_string_equal(srv_keys_match(k, "k-rotated-new", 13), "dashboard");
    assert_string_equal(srv_keys_match(k, "k-last-no-newline", 17), "last.one_2");
    const char *wrong[] = {"", "k-ci-0123456789abcde", "k-ci-0123456789abcdef0", "K-UNNAMED", "k-unnamed ",
                           "ci-pipeline", "#k-commented-out", "k-commented-out"};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) assert_null(srv_keys_match(k, wrong[i], strlen(wrong[i])));
    assert_null(srv_keys_match(k, NULL, 0));
    assert_null(srv_keys_match(NULL, "k-unnamed", 9));
    /* A second reference keeps the set alive after the first is dropped. */
    srv_keys_t *r = srv_keys_ref(k);
    srv_keys_unref(k);
    assert_string_equal(srv_keys_match(r, "k-unnamed", 9), "line-6");
    srv_keys_unref(r);
    srv_keys_unref(NULL);
}

/* Each bad text is refused with its code and a message naming the source and line; the
 * message never holds the key. */
static void test_srv_keys_bad_lines(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int code;
        const char *msg;
    } cases[] = {
        {"secret-aaaa one two\n", -EINVAL, "keys.txt: line 1: more than a key and a name"},
        {"# c\nsecret-aaaa na/me\n", -EINVAL, "keys.txt: line 2: a name may only"},
        {"secret-aaaa n\"ame\n", -EINVAL, "line 1: a name may only"},
        {"secret-aaaa a\n\nsecret-aaaa b\n", -EINVAL, "line 3: the same key as a"},
        {"secret-aaaa\x01 x\n", -EINVAL, "line 1: a control or non-ASCII byte"},
        {"secret-aaaa caf\xc3\xa9\n", -EINVAL, "line 1: a control or non-ASCII byte"},
        {"secret-aaaa\0 x\n", -EINVAL, "line 1: a control"},
        {"", -EINVAL, "keys.txt: no key in it"},
        {"# only comments\n\n   \n", -EINVAL, "no key in it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        srv_keys_t *k = (srv_keys_t *)1;
        char err[256] = "";
        size_t len = strlen(cases[i].text);
        if (strstr(cases[i].msg, "control") && cases[i].text[11] == 0) len = 15; /* the NUL case */
        assert_int_equal(srv_keys_parse(&k, cases[i].text, len, "keys.txt", err, sizeof err), cases[i].code);
        assert_null(k);
        if (!strstr(err, cases[i].msg)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        assert_null(strstr(err, "secret"));
    }
}

static void test_srv_keys_limits(void **state) {
    (void)state;
    char err[256];
    srv_keys_t *k;
    /* A key of SRV_KEY_MAX bytes is fine, one more is not; the same for names. */
    char line[SRV_KEY_MAX + SRV_KEY_NAME_MAX + 8];
    memset(line, 'k', SRV_KEY_MAX);
    line[SRV_KEY_MAX] = ' ';
    memset(line + SRV_KEY_MAX + 1, 'n', SRV_KEY_NAME_MAX);
    size_t len = SRV_KEY_MAX + 1 + SRV_KEY_NAME_MAX;
    assert_int_equal(srv_keys_parse(&k, line, len, "f", err, sizeof err), 0);
    assert_non_null(srv_keys_match(k, line, SRV_KEY_MAX));
    srv_keys_unref(k);
    line[len] = 'n';
    assert_int_equal(srv_keys_parse(&k, line, len + 1, "f", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "the name is longer than 64 bytes"));
    memmove(line + 1, line, len);
    assert_int_equal(srv_keys_parse(&k, line, SRV_KEY_MAX + 1, "f", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "the key is longer than 256 bytes"));
    /* SRV_KEYS_MAX keys, then one more. */
    size_t cap = (SRV_KEYS_MAX + 1) * 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = 0;
    for (int i = 0; i < SRV_KEYS_MAX; i++) n += (size_t)snprintf(text + n, cap - n, "key%08d\n", i);
    assert_int_equal(srv_keys_parse(&k, text, n, "f", err, sizeof err), 0);
    assert_int_equal(srv_keys_count(k), SRV_KEYS_MAX);
    assert_string_equal(srv_keys_match(k, "key00000777", 11), "line-778");
    srv_keys_unref(k);
    n += (size_t)snprintf(text + n, cap - n, "key%08d\n", SRV_KEYS_MAX);
    assert_int_equal(srv_keys_parse(&k, text, n, "f", err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "more than 1024 keys"));
    free(text);
    /* A text over the size limit is refused before it is read. */
    assert_int_equal(srv_keys_parse(&k, "x", SRV_KEYS_FILE_MAX + 1, "f", err, sizeof err), -E2BIG);
}

static void test_srv_keys_load_file(void **state) {
    (void)state;
    char path[] = "/tmp/gru-test-keys-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, FILE_OK, strlen(FILE_OK)), (ssize_t)strlen(FILE_OK));
    close(fd);
    srv_keys_t *k;
    assert_int_equal(srv_keys_load(&k, path, err, sizeof err), 0);
    assert_int_equal(srv_keys_count(k), 5);
    assert_string_equal(srv_keys_match(k, "k-ci-0123456789abcdef", 21), "ci-pipeline");
    srv_keys_unref(k);
    /* The file's name is in the message of a bad line. */
    FILE *f = fopen(path, "w");
    fputs("a b c\n", f);
    fclose(f);
    assert_int_equal(srv_keys_load(&k, path, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(srv_keys_load(&k, path, err, sizeof err), -ENOENT);
    assert_null(k);
    assert_int_equal(srv_keys_load(&k, "/tmp", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_srv_key_equal(void **state) {
    (void)state;
    assert_true(srv_key_equal("secret", 6, "secret", 6));
    assert_false(srv_key_equal("secret", 6, "secreT", 6));
    assert_false(srv_key_equal("secret", 6, "secret", 5));
    assert_false(srv_key_equal("secret", 5, "secret!", 7));
    assert_true(srv_key_equal("", 0, "", 0));
    assert_false(srv_key_equal("", 0, "a", 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_keys_parse),
        cmocka_unit_test(test_srv_keys_bad_lines),
        cmocka_unit_test(test_srv_keys_limits),
        cmocka_unit_test(test_srv_keys_load_file),
        cmocka_unit_test(test_srv_key_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
