/* test_sha256.c - model/sha256.c: the FIPS 180-4 / NIST example vectors, messages at every
 * padding boundary (digests from Python's hashlib), updates split at every offset, and the
 * version of a model directory (the byte sequence of sha256.h, computed with hashlib). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sha256.h"

static void check_hex(const void *msg, size_t len, const char *want) {
    uint8_t d[GRU_SHA256_BYTES];
    char hex[65];
    gru_sha256(msg, len, d);
    gru_sha256_hex(d, hex, 64);
    assert_string_equal(hex, want);
}

/* NIST's examples for SHA-256 (FIPS 180-4 examples; the long ones from FIPS 180-2 appendix B). */
static void test_sha256_nist_vectors(void **state) {
    (void)state;
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    check_hex(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* One million 'a', fed in uneven pieces. */
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    gru_sha256_t h;
    gru_sha256_init(&h);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1)
        gru_sha256_update(&h, a + off, off + step > 1000000 ? 1000000 - off : step);
    uint8_t d[GRU_SHA256_BYTES];
    char hex[65];
    gru_sha256_final(&h, d);
    gru_sha256_hex(d, hex, 64);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* Lengths around the padding boundaries (55/56 bytes: the length fits or needs a second block). */
static void test_sha256_padding_boundaries(void **state) {
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } want[] = {
        {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
        {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
        {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
        {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
        {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
        {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
        {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
        {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
    };
    uint8_t msg[128];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)((i * 7 + 3) & 255);
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) check_hex(msg, want[k].n, want[k].hex);
}

/* Two updates split at every offset give the one-shot digest. */
static void test_sha256_split_updates(void **state) {
    (void)state;
    uint8_t msg[200], one[GRU_SHA256_BYTES], two[GRU_SHA256_BYTES];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 31 + 1);
    gru_sha256(msg, sizeof msg, one);
    for (size_t cut = 0; cut <= sizeof msg; cut++) {
        gru_sha256_t h;
        gru_sha256_init(&h);
        gru_sha256_update(&h, msg, cut);
        gru_sha256_update(&h, NULL, 0);
        gru_sha256_update(&h, msg + cut, sizeof msg - cut);
        gru_sha256_final(&h, two);
        assert_memory_equal(one, two, sizeof one);
    }
    char hex[17];
    gru_sha256_hex(one, hex, 16);
    assert_int_equal(strlen(hex), 16);
}

/* ------------------------------------------------------------------------------------------ */
/* Model directory versions */

static char dir[64];

static void put(const char *name, const void *data, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void put_model(const char *config, const char *vocab) {
    put("config.json", config, strlen(config));
    put("vocab.txt", vocab, strlen(vocab));
    put("model.safetensors", "\x08\0\0\0\0\0\0\0{}      ", 16);
}

static int dir_setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/gru-test-version-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int dir_teardown(void **state) {
    (void)state;
    char path[128];
    const char *files[] = {"config.json", "vocab.txt", "model.safetensors"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    return rmdir(dir);
}

static void test_sha256_model_dir_version(void **state) {
    (void)state;
    char v[GRU_VERSION_HEX + 1], err[256];
    put_model("{\"a\": 1}\n", "<pad>\n<unk>\n");
    assert_int_equal(gru_model_dir_version(dir, v, err, sizeof err), 0);
    /* hashlib over the byte sequence documented in sha256.h */
    assert_string_equal(v, "48b5d2bf8426a5d9");
    /* Moving a byte from the end of one file to the start of the next changes it. */
    put_model("{\"a\": 1}", "\n<pad>\n<unk>\n");
    char moved[GRU_VERSION_HEX + 1];
    assert_int_equal(gru_model_dir_version(dir, moved, err, sizeof err), 0);
    assert_string_not_equal(moved, v);
    /* So does one changed byte; the same bytes again give the same version. */
    put_model("{\"a\": 2}\n", "<pad>\n<unk>\n");
    assert_int_equal(gru_model_dir_version(dir, moved, err, sizeof err), 0);
    assert_string_not_equal(moved, v);
    put_model("{\"a\": 1}\n", "<pad>\n<unk>\n");
    assert_int_equal(gru_model_dir_version(dir, moved, err, sizeof err), 0);
    assert_string_equal(moved, v);
}

static void test_sha256_model_dir_missing_file(void **state) {
    (void)state;
    char v[GRU_VERSION_HEX + 1], err[256], path[128];
    put_model("{}", "<pad>\n");
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    unlink(path);
    assert_int_equal(gru_model_dir_version(dir, v, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "vocab.txt"));
    /* A directory where a file should be. */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(gru_model_dir_version(dir, v, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(rmdir(path), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_nist_vectors),
        cmocka_unit_test(test_sha256_padding_boundaries),
        cmocka_unit_test(test_sha256_split_updates),
        cmocka_unit_test_setup_teardown(test_sha256_model_dir_version, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_sha256_model_dir_missing_file, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
