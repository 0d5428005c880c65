/* test_srv_trace.c - server/srv_trace.c: which X-Request-Id values are kept, generated ids,
 * and W3C traceparent parsing (the specification's example, every way to be invalid) and the
 * header we echo. The module is pure (no HTTP), so its .c file is included here directly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/srv_trace.c"

static int is_lower_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* X-Request-Id */

static void test_srv_request_id_valid(void **state) {
    (void)state;
    char max[SRV_REQUEST_ID_MAX + 2];
    memset(max, 'a', sizeof max);
    max[SRV_REQUEST_ID_MAX] = 0;
    const char *good[] = {"a", "abc-123", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "req_1.2:3/4+5=6@x", max};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(srv_request_id_valid(good[i], strlen(good[i])));
    max[SRV_REQUEST_ID_MAX] = 'a';
    max[SRV_REQUEST_ID_MAX + 1] = 0;
    const char *bad[] = {"", "a b", "a\"b", "a\\b", "a\nb", "a\tb", "<script>", "a,b", "a;b", "caf\xc3\xa9", "{}",
                         max};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(srv_request_id_valid(bad[i], strlen(bad[i])));
    /* A NUL inside the length counts as a bad byte. */
    assert_false(srv_request_id_valid("ab\0c", 4));
    assert_false(srv_request_id_valid(NULL, 0));
}

static void test_srv_request_id_take(void **state) {
    (void)state;
    char id[SRV_REQUEST_ID_MAX + 1], id2[SRV_REQUEST_ID_MAX + 1];
    assert_int_equal(srv_request_id_take("client-42", id), 1);
    assert_string_equal(id, "client-42");
    /* Absent, invalid and too long: a new id each time. */
    assert_int_equal(srv_request_id_take(NULL, id), 0);
    assert_true(is_lower_hex(id, SRV_REQUEST_ID_NEW_HEX));
    assert_int_equal(srv_request_id_take("bad id", id2), 0);
    assert_true(is_lower_hex(id2, SRV_REQUEST_ID_NEW_HEX));
    assert_string_not_equal(id, id2);
    char *longer = malloc(100000);
    assert_non_null(longer);
    memset(longer, 'x', 99999);
    longer[99999] = 0;
    assert_int_equal(srv_request_id_take(longer, id), 0);
    assert_true(is_lower_hex(id, SRV_REQUEST_ID_NEW_HEX));
    free(longer);
}

/* 1000 generated ids: all different (a broken generator repeats within far fewer). */
static void test_srv_random_hex_unique(void **state) {
    (void)state;
    enum { N = 1000 };
    static char ids[N][SRV_REQUEST_ID_NEW_HEX + 1];
    for (int i = 0; i < N; i++) {
        srv_random_hex(ids[i], SRV_REQUEST_ID_NEW_HEX / 2);
        assert_true(is_lower_hex(ids[i], SRV_REQUEST_ID_NEW_HEX));
        for (int j = 0; j < i; j++) assert_string_not_equal(ids[i], ids[j]);
    }
    /* More than one buffer's worth in one call. */
    char big[2 * 100 + 1];
    srv_random_hex(big, 100);
    assert_true(is_lower_hex(big, 200));
}

/* ------------------------------------------------------------------------------------------ */
/* traceparent */

#define EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_srv_traceparent_example(void **state) {
    (void)state;
    srv_trace_t t, t2;
    assert_int_equal(srv_traceparent_parse(EXAMPLE, strlen(EXAMPLE), &t), 0);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_true(is_lower_hex(t.span_id, SRV_SPAN_ID_HEX));
    assert_string_not_equal(t.span_id, t.parent_id);
    assert_string_not_equal(t.span_id, "0000000000000000");
    char out[SRV_TRACEPARENT_LEN + 1], want[SRV_TRACEPARENT_LEN + 1];
    srv_traceparent_format(&t, out);
    snprintf(want, sizeof want, "00-4bf92f3577b34da6a3ce929d0e0e4736-%s-01", t.span_id);
    assert_string_equal(out, want);
    /* A new span for every request. */
    assert_int_equal(srv_traceparent_parse(EXAMPLE, strlen(EXAMPLE), &t2), 0);
    assert_string_not_equal(t.span_id, t2.span_id);
    /* Flags are kept as sent; blanks around the value are not part of it. */
    const char *f = " \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe ";
    assert_int_equal(srv_traceparent_parse(f, strlen(f), &t), 0);
    assert_int_equal(t.flags, 0xfe);
    srv_traceparent_format(&t, out);
    assert_int_equal(strlen(out), SRV_TRACEPARENT_LEN);
    assert_string_equal(out + 53, "fe");
    /* A later version: its first 55 bytes are read as version 00's, more may follow a '-'. */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later";
    assert_int_equal(srv_traceparent_parse(v1, strlen(v1), &t), 0);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    srv_traceparent_format(&t, out);
    assert_memory_equal(out, "00-", 3);
    assert_int_equal(srv_traceparent_parse(v1, SRV_TRACEPARENT_LEN, &t), 0);
}

static void test_srv_traceparent_invalid(void **state) {
    (void)state;
    const char *bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",          /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",        /* v00 with more */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",        /* later version: no '-' */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         /* version ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",         /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",         /* zero trace-id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",         /* zero parent-id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",         /* a field one short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
        "00-4bf92f3577b34da6a3ce929d0e0e47z6-00f067aa0ba902b7-01",         /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0 ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        srv_trace_t t;
        memset(&t, 0x5a, sizeof t);
        assert_int_equal(srv_traceparent_parse(bad[i], strlen(bad[i]), &t), -EINVAL);
        /* out is untouched */
        assert_int_equal((unsigned char)t.trace_id[0], 0x5a);
    }
    /* A NUL inside the length is not a hex digit. */
    char nul[] = EXAMPLE;
    nul[10] = 0;
    srv_trace_t t;
    assert_int_equal(srv_traceparent_parse(nul, sizeof nul - 1, &t), -EINVAL);
    assert_int_equal(srv_traceparent_parse(NULL, 0, &t), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_request_id_valid),
        cmocka_unit_test(test_srv_request_id_take),
        cmocka_unit_test(test_srv_random_hex_unique),
        cmocka_unit_test(test_srv_traceparent_example),
        cmocka_unit_test(test_srv_traceparent_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
