/* test_srv_budget.c - the server's memory budget (server/srv_budget.c): limits, refusals,
 * the peak, forced reservations, and that concurrent reservers never exceed the limit. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/srv_budget.c"

static void test_srv_budget_reserve_release(void **state) {
    (void)state;
    srv_budget_t b;
    srv_budget_init(&b, 100);
    assert_int_equal(srv_budget_reserve(&b, 60), 0);
    assert_int_equal(srv_budget_reserve(&b, 40), 0); /* exactly full */
    assert_int_equal(srv_budget_used(&b), 100);
    assert_int_equal(srv_budget_reserve(&b, 1), -EAGAIN);
    assert_int_equal(srv_budget_used(&b), 100); /* a refusal reserves nothing */
    assert_int_equal(srv_budget_refused(&b), 1);
    srv_budget_release(&b, 60);
    assert_int_equal(srv_budget_used(&b), 40);
    assert_int_equal(srv_budget_reserve(&b, 60), 0);
    srv_budget_release(&b, 100);
    assert_int_equal(srv_budget_used(&b), 0);
    assert_int_equal(srv_budget_peak(&b), 100);
    assert_int_equal(srv_budget_reserve(&b, 0), 0);
}

static void test_srv_budget_e2big(void **state) {
    (void)state;
    srv_budget_t b;
    srv_budget_init(&b, 100);
    assert_int_equal(srv_budget_reserve(&b, 101), -E2BIG); /* never satisfiable: not a retry */
    assert_int_equal(srv_budget_refused(&b), 0);
    assert_int_equal(srv_budget_reserve(&b, SIZE_MAX), -E2BIG);
    assert_int_equal(srv_budget_used(&b), 0);
}

static void test_srv_budget_unlimited(void **state) {
    (void)state;
    srv_budget_t b;
    srv_budget_init(&b, 0);
    assert_int_equal(srv_budget_reserve(&b, (size_t)1 << 40), 0);
    assert_int_equal(srv_budget_reserve(&b, (size_t)1 << 40), 0);
    assert_int_equal(srv_budget_used(&b), (size_t)2 << 40);
}

static void test_srv_budget_force(void **state) {
    (void)state;
    srv_budget_t b;
    srv_budget_init(&b, 100);
    assert_int_equal(srv_budget_reserve(&b, 90), 0);
    srv_budget_force(&b, 30); /* already allocated: counted even past the limit */
    assert_int_equal(srv_budget_used(&b), 120);
    assert_int_equal(srv_budget_peak(&b), 120);
    assert_int_equal(srv_budget_reserve(&b, 1), -EAGAIN);
    srv_budget_release(&b, 30);
    assert_int_equal(srv_budget_reserve(&b, 10), 0);
    srv_budget_release(&b, 500); /* too much: saturates at 0 */
    assert_int_equal(srv_budget_used(&b), 0);
}

/* Threads reserve random sizes, check they hold what they got, release; the count never
 * exceeds the limit and ends at 0. */
typedef struct {
    srv_budget_t *b;
    unsigned seed;
    int over;
    long granted;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < 20000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        size_t n = 1 + (w->seed >> 16) % 300;
        if (srv_budget_reserve(w->b, n) == 0) {
            if (srv_budget_used(w->b) > w->b->limit) w->over = 1;
            w->granted++;
            srv_budget_release(w->b, n);
        }
    }
    return NULL;
}

static void test_srv_budget_concurrent(void **state) {
    (void)state;
    srv_budget_t b;
    srv_budget_init(&b, 1000);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){&b, (unsigned)i * 7919u + 1, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    long granted = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].over, 0);
        granted += w[i].granted;
    }
    assert_true(granted > 0);
    assert_int_equal(srv_budget_used(&b), 0);
    assert_true(srv_budget_peak(&b) <= 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_budget_reserve_release), cmocka_unit_test(test_srv_budget_e2big),
        cmocka_unit_test(test_srv_budget_unlimited),       cmocka_unit_test(test_srv_budget_force),
        cmocka_unit_test(test_srv_budget_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
