/* test_srv_addr.c - open connections per client address (server/srv_addr.c): keys (IPv4,
 * IPv4-mapped, IPv6 /64), the per-address limit, the table bound, deletion in crowded probe
 * chains against a reference model, and concurrent use. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "../../server/srv_addr.c"

static srv_addr_key_t key4(const char *ip) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(1234);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    srv_addr_key_t k;
    assert_int_equal(srv_addr_key((struct sockaddr *)&a, sizeof a, &k), 0);
    return k;
}

static srv_addr_key_t key6(const char *ip) {
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    srv_addr_key_t k;
    assert_int_equal(srv_addr_key((struct sockaddr *)&a, sizeof a, &k), 0);
    return k;
}

static void test_srv_addr_keys(void **state) {
    (void)state;
    srv_addr_key_t a = key4("10.0.0.1"), b = key6("::ffff:10.0.0.1"), c = key4("10.0.0.2");
    assert_memory_equal(&a, &b, sizeof a); /* IPv4-mapped is the IPv4 address */
    assert_memory_not_equal(&a, &c, sizeof a);
    srv_addr_key_t d = key6("2001:db8:1:2::1"), e = key6("2001:db8:1:2:ffff::9"), f = key6("2001:db8:1:3::1");
    assert_memory_equal(&d, &e, sizeof d); /* the same /64 */
    assert_memory_not_equal(&d, &f, sizeof d);
    struct sockaddr_un u = {0};
    u.sun_family = AF_UNIX;
    srv_addr_key_t k;
    assert_int_equal(srv_addr_key((struct sockaddr *)&u, sizeof u, &k), -EAFNOSUPPORT);
    struct sockaddr_in short4 = {0};
    short4.sin_family = AF_INET;
    assert_int_equal(srv_addr_key((struct sockaddr *)&short4, 4, &k), -EAFNOSUPPORT);
    assert_int_equal(srv_addr_key(NULL, 0, &k), -EAFNOSUPPORT);
}

static void test_srv_addr_limit(void **state) {
    (void)state;
    srv_addr_table_t *t;
    assert_int_equal(srv_addr_table_new(&t, 4, 3), 0);
    srv_addr_key_t a = key4("127.0.0.2"), b = key4("127.0.0.1");
    for (int i = 0; i < 3; i++) assert_int_equal(srv_addr_acquire(t, &a), 0);
    assert_false(srv_addr_allowed(t, &a));
    assert_int_equal(srv_addr_acquire(t, &a), -EAGAIN); /* a is at its limit */
    assert_int_equal(srv_addr_count(t, &a), 3);
    assert_true(srv_addr_allowed(t, &b)); /* others are not */
    assert_int_equal(srv_addr_acquire(t, &b), 0);
    srv_addr_release(t, &a);
    assert_true(srv_addr_allowed(t, &a));
    assert_int_equal(srv_addr_acquire(t, &a), 0);
    for (int i = 0; i < 3; i++) srv_addr_release(t, &a);
    srv_addr_release(t, &b);
    srv_addr_release(t, &b); /* one too many: nothing happens */
    assert_int_equal(srv_addr_addresses(t), 0);
    srv_addr_table_free(t);
    srv_addr_table_free(NULL);
    assert_int_equal(srv_addr_table_new(&t, 0, 1), -EINVAL);
}

static void test_srv_addr_table_full(void **state) {
    (void)state;
    srv_addr_table_t *t;
    assert_int_equal(srv_addr_table_new(&t, 2, 0), 0); /* limit 0: unlimited per address */
    srv_addr_key_t a = key4("1.1.1.1"), b = key4("2.2.2.2"), c = key4("3.3.3.3");
    for (int i = 0; i < 100; i++) assert_int_equal(srv_addr_acquire(t, &a), 0);
    assert_int_equal(srv_addr_acquire(t, &b), 0);
    assert_false(srv_addr_allowed(t, &c));
    assert_int_equal(srv_addr_acquire(t, &c), -ENOSPC);
    srv_addr_release(t, &b);
    assert_int_equal(srv_addr_acquire(t, &c), 0);
    srv_addr_table_free(t);
}

/* Random acquires and releases over more keys than the table's half, with a small table, so
 * that probe chains are long and deletion shifts entries; every count is checked after every
 * operation against a plain array. Several seeds (the slots differ with each). */
static void test_srv_addr_model(void **state) {
    (void)state;
    enum { KEYS = 40, MAXA = 24 };
    for (int round = 0; round < 20; round++) {
        srv_addr_table_t *t;
        assert_int_equal(srv_addr_table_new(&t, MAXA, 5), 0);
        t->seed[0] = (uint64_t)round * 0x9e3779b97f4a7c15ull; /* reproducible layouts */
        t->seed[1] = (uint64_t)round;
        srv_addr_key_t keys[KEYS];
        unsigned ref[KEYS] = {0};
        size_t distinct = 0;
        for (int i = 0; i < KEYS; i++) {
            char ip[32];
            snprintf(ip, sizeof ip, "10.%d.%d.%d", round, i / 7, i * 13 % 251);
            keys[i] = key4(ip);
        }
        unsigned seed = (unsigned)round + 1;
        for (int op = 0; op < 5000; op++) {
            seed = seed * 1103515245u + 12345u;
            int i = (int)((seed >> 16) % KEYS);
            if ((seed >> 8) & 1) {
                int want = ref[i] == 0 ? (distinct >= MAXA ? -ENOSPC : 0) : (ref[i] >= 5 ? -EAGAIN : 0);
                assert_int_equal(srv_addr_acquire(t, &keys[i]), want);
                if (want == 0 && ref[i]++ == 0) distinct++;
            } else {
                srv_addr_release(t, &keys[i]);
                if (ref[i] && --ref[i] == 0) distinct--;
            }
            if (op % 50 == 0 || op == 4999) {
                for (int k = 0; k < KEYS; k++) assert_int_equal(srv_addr_count(t, &keys[k]), ref[k]);
                assert_int_equal(srv_addr_addresses(t), distinct);
            }
        }
        srv_addr_table_free(t);
    }
}

typedef struct {
    srv_addr_table_t *t;
    int id;
    int refused;
} thr_t;

static void *thr(void *arg) {
    thr_t *a = arg;
    char ip[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(ip, sizeof ip, "192.168.%d.%d", a->id, i % 50);
        srv_addr_key_t k = key4(ip);
        if (srv_addr_acquire(a->t, &k) == 0) srv_addr_release(a->t, &k);
        else a->refused++;
    }
    return NULL;
}

static void test_srv_addr_concurrent(void **state) {
    (void)state;
    srv_addr_table_t *t;
    assert_int_equal(srv_addr_table_new(&t, 256, 2), 0);
    pthread_t th[4];
    thr_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thr_t){t, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thr, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].refused, 0); /* each thread's addresses are its own: never over */
    }
    assert_int_equal(srv_addr_addresses(t), 0);
    srv_addr_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_addr_keys),       cmocka_unit_test(test_srv_addr_limit),
        cmocka_unit_test(test_srv_addr_table_full), cmocka_unit_test(test_srv_addr_model),
        cmocka_unit_test(test_srv_addr_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
