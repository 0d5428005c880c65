/* srv_budget.c - the server's one memory budget (see srv_budget.h): a lock-free counter of
 * reserved bytes with a limit, a peak and a count of refusals.
 */
#include <errno.h>

#include "srv_budget.h"

void srv_budget_init(srv_budget_t *b, size_t limit) {
    b->limit = limit;
    atomic_init(&b->used, 0);
    atomic_init(&b->peak, 0);
    atomic_init(&b->refused, 0);
}

/* Raises the peak to at least v. */
static void note_peak(srv_budget_t *b, size_t v) {
    size_t p = atomic_load_explicit(&b->peak, memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak_explicit(&b->peak, &p, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
}

int srv_budget_reserve(srv_budget_t *b, size_t bytes) {
    if (bytes == 0) return 0;
    if (b->limit && bytes > b->limit) return -E2BIG;
    size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
    for (;;) {
        if (b->limit && used > b->limit - bytes) {
            atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
            return -EAGAIN;
        }
        if (atomic_compare_exchange_weak_explicit(&b->used, &used, used + bytes, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    note_peak(b, used + bytes);
    return 0;
}

void srv_budget_force(srv_budget_t *b, size_t bytes) {
    size_t now = atomic_fetch_add_explicit(&b->used, bytes, memory_order_relaxed) + bytes;
    note_peak(b, now);
}

void srv_budget_release(srv_budget_t *b, size_t bytes) {
    size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
    size_t next;
    do next = used >= bytes ? used - bytes : 0;
    while (!atomic_compare_exchange_weak_explicit(&b->used, &used, next, memory_order_relaxed, memory_order_relaxed));
}

size_t srv_budget_used(const srv_budget_t *b) {
    return atomic_load_explicit(&((srv_budget_t *)b)->used, memory_order_relaxed);
}

size_t srv_budget_peak(const srv_budget_t *b) {
    return atomic_load_explicit(&((srv_budget_t *)b)->peak, memory_order_relaxed);
}

unsigned long srv_budget_refused(const srv_budget_t *b) {
    return atomic_load_explicit(&((srv_budget_t *)b)->refused, memory_order_relaxed);
}
