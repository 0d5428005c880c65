/* test_srv_path.c - the raw path normalized for routing (server/srv_path.c): escapes of NUL,
 * '?' and '/' never become those characters; unreserved escapes are decoded. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/srv_path.c"

typedef struct {
    const char *raw, *path;
    int rc;
} path_case_t;

static const path_case_t cases[] = {
    {"/healthz", "/healthz", 0},
    {"/healthz?x=1&y=%00", "/healthz", 0}, /* the query is not routed on */
    {"/v1/models/", "/v1/models/", 0},
    {"/v1/sentimen%74", "/v1/sentiment", 0}, /* an unreserved escape is the character */
    {"/v2/models/sst2%2Den", "/v2/models/sst2-en", 0},
    {"/%7Euser/%5f", "/~user/_", 0},
    {"/metrics%2Fx", "/metrics%2Fx", 0}, /* '/' stays escaped: no route matches */
    {"/metrics%2fx", "/metrics%2Fx", 0}, /* in upper case */
    {"/v2/models/a%3Fb/ready", "/v2/models/a%3Fb/ready", 0},
    {"/a%20b", "/a%20b", 0},
    {"/caf%C3%A9", "/caf%C3%A9", 0},
    {"/metrics%00.css", NULL, -EINVAL},
    {"/v2/models/sst2-en%00x/ready", NULL, -EINVAL},
    {"/x%", NULL, -EINVAL},
    {"/x%4", NULL, -EINVAL},
    {"/x%G0", NULL, -EINVAL},
    {"/x%0", NULL, -EINVAL},
    {"", "", 0},
    {"*", "*", 0},
};

static void test_srv_path_cases(void **state) {
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        const char *why = "unset";
        int rc = srv_path_normalize(cases[i].raw, out, sizeof out, &why);
        int ok = rc == cases[i].rc && (rc != 0 || strcmp(out, cases[i].path) == 0) && (rc == 0) == (why == NULL);
        if (!ok) {
            printf("'%s': rc %d (want %d), path '%s' (want '%s'), why %s\n", cases[i].raw, rc, cases[i].rc, out,
                   cases[i].path ? cases[i].path : "-", why ? why : "(none)");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

static void test_srv_path_too_long(void **state) {
    (void)state;
    char out[8];
    assert_int_equal(srv_path_normalize("/1234567", out, sizeof out, NULL), -E2BIG);
    assert_string_equal(out, "/123456"); /* a cut prefix, for logs */
    assert_int_equal(srv_path_normalize("/123456", out, sizeof out, NULL), 0);
    assert_int_equal(srv_path_normalize("/12345%2F", out, sizeof out, NULL), -E2BIG); /* an escape is not split */
    assert_string_equal(out, "/12345");
    /* A NUL escape after the cut is still refused. */
    assert_int_equal(srv_path_normalize("/1234567890%00", out, sizeof out, NULL), -EINVAL);
    assert_int_equal(srv_path_normalize("/x", out, 0, NULL), -E2BIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_path_cases),
        cmocka_unit_test(test_srv_path_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
