/* test_srv_frame.c - strict HTTP framing (server/srv_frame.c): each shape the adversarial pass
 * found (issue 15 §3) and the sound requests next to them, as a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/srv_frame.c"

typedef struct {
    const char *what;
    const char *version;
    const char *headers[6][2]; /* name, value; NULL name ends */
    int status;
} frame_case_t;

static const frame_case_t cases[] = {
    {"a plain GET", "HTTP/1.1", {{"Host", "a"}}, 0},
    {"a POST with a length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "12"}}, 0},
    {"a chunked POST", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 0},
    {"chunked in any case, with spaces", "HTTP/1.1", {{"Host", "a"}, {"transfer-encoding", " Chunked "}}, 0},
    {"HTTP/1.0 without Host", "HTTP/1.0", {{"Content-Length", "0"}}, 0},
    {"header names in any case", "HTTP/1.1", {{"HOST", "a"}, {"content-length", "007"}}, 0},
    {"the largest length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "18446744073709551615"}}, 0},
    {"CL and TE", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}, 400},
    {"TE and CL", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}}, 400},
    {"two different lengths", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "3"}, {"Content-Length", "10"}}, 400},
    {"two equal lengths", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "3"}, {"Content-Length", "3"}}, 400},
    {"a negative length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "-1"}}, 400},
    {"a signed length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "+22"}}, 400},
    {"a hex length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "0x16"}}, 400},
    {"a length over 2^64", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "18446744073709551616"}}, 400},
    {"an empty length", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", ""}}, 400},
    {"a length list", "HTTP/1.1", {{"Host", "a"}, {"Content-Length", "3, 3"}}, 400},
    {"TE identity", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "identity"}}, 501},
    {"TE gzip, chunked", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}}, 501},
    {"TE gzip then chunked", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}}, 501},
    {"TE chunked, gzip", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "chunked, gzip"}}, 400},
    {"TE chunked twice", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}, 400},
    {"TE empty", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", ""}}, 400},
    {"TE with an empty coding", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding", "chunked,,"}}, 400},
    {"TE in HTTP/1.0", "HTTP/1.0", {{"Transfer-Encoding", "chunked"}}, 400},
    {"a space before the colon", "HTTP/1.1", {{"Host", "a"}, {"Transfer-Encoding ", "chunked"}}, 400},
    {"a tab before the colon", "HTTP/1.1", {{"Host", "a"}, {"X-A\t", "b"}}, 400},
    {"a space in a name", "HTTP/1.1", {{"Host", "a"}, {"X A", "b"}}, 400},
    {"a separator in a name", "HTTP/1.1", {{"Host", "a"}, {"X(A)", "b"}}, 400},
    {"an empty name", "HTTP/1.1", {{"Host", "a"}, {"", "b"}}, 400},
    {"HTTP/1.1 without Host", "HTTP/1.1", {{"Content-Length", "0"}}, 400},
    {"two Hosts", "HTTP/1.1", {{"Host", "a"}, {"Host", "b"}}, 400},
    {"two Hosts in HTTP/1.0", "HTTP/1.0", {{"Host", "a"}, {"Host", "a"}}, 400},
};

static void test_srv_frame_cases(void **state) {
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const frame_case_t *c = &cases[i];
        srv_frame_t f;
        srv_frame_init(&f, c->version);
        for (size_t k = 0; k < 6 && c->headers[k][0]; k++)
            srv_frame_header(&f, c->headers[k][0], strlen(c->headers[k][0]), c->headers[k][1],
                             strlen(c->headers[k][1]));
        const char *why = "unset";
        int status = srv_frame_verdict(&f, &why);
        if (status != c->status || (status == 0) != (why == NULL)) {
            printf("case '%s': status %d (want %d), why %s\n", c->what, status, c->status, why ? why : "(none)");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* Values are read with their lengths: not NUL-terminated, and a NUL inside is not a digit. */
static void test_srv_frame_lengths(void **state) {
    (void)state;
    srv_frame_t f;
    srv_frame_init(&f, "HTTP/1.1");
    srv_frame_header(&f, "Hostile", 4, "a", 1);
    srv_frame_header(&f, "Content-Length: 12", 14, "12xyz", 2);
    assert_int_equal(srv_frame_verdict(&f, NULL), 0);
    assert_int_equal(f.cl, 12);
    srv_frame_init(&f, "HTTP/1.1");
    srv_frame_header(&f, "Host", 4, "a", 1);
    srv_frame_header(&f, "Content-Length", 14, "1\0002", 3);
    assert_int_equal(srv_frame_verdict(&f, NULL), 400);
    srv_frame_init(&f, NULL); /* unknown version: as 1.1 */
    srv_frame_header(&f, "Host", 4, NULL, 0);
    assert_int_equal(srv_frame_verdict(&f, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_frame_cases),
        cmocka_unit_test(test_srv_frame_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
