/* srv_budget.h - one memory budget for the whole server: an atomic count of the bytes that
 * requests hold (bodies, result buffers, encoded answers until their last byte is sent),
 * checked against a limit before the memory is allocated.
 *
 * Usage:
 *     srv_budget_t b;
 *     srv_budget_init(&b, (size_t)256 << 20);
 *     int rc = srv_budget_reserve(&b, need);    // before malloc(need)
 *     if (rc == -EAGAIN) ...503 + Retry-After (full now: retry later)
 *     if (rc == -E2BIG)  ...413 (more than the whole budget: retrying cannot help)
 *     ...
 *     srv_budget_release(&b, need);             // after free()
 *
 * Any thread; lock-free (one compare-and-swap loop). The budget does not allocate anything: it
 * is bookkeeping, and only as true as the callers' reserve-before-allocate discipline.
 */
#ifndef SRV_BUDGET_H
#define SRV_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>

/* ---- types ---- */

/* Caller-owned storage (srv_budget_init; nothing to deinit). Read the fields through the
 * accessors below. */
typedef struct {
    size_t limit;          /* read-only after init; 0: no limit (everything is granted) */
    atomic_size_t used;    /* bytes reserved now */
    atomic_size_t peak;    /* the most bytes ever reserved at once */
    atomic_ulong refused;  /* reservations refused with -EAGAIN */
} srv_budget_t;

/* ---- prototypes ---- */

/* Initializes b with a limit in bytes (0: unlimited). Not thread-safe: before sharing b. */
void srv_budget_init(srv_budget_t *b, size_t limit);

/* Reserves bytes. Returns 0; -E2BIG when bytes alone exceed the limit (never satisfiable);
 * -EAGAIN when used + bytes would exceed it now (nothing is reserved then). bytes == 0
 * always succeeds. Any thread. */
int srv_budget_reserve(srv_budget_t *b, size_t bytes);

/* Reserves bytes even past the limit (for memory that is already allocated and must be
 * counted, e.g. an encoded piece whose size was only known after encoding). Any thread. */
void srv_budget_force(srv_budget_t *b, size_t bytes);

/* Returns bytes reserved earlier (by reserve or force). Releasing more than is reserved is a
 * programming error: the count saturates at 0. Any thread. */
void srv_budget_release(srv_budget_t *b, size_t bytes);

/* Accessors (any thread; relaxed reads, for metrics and logs). */
size_t srv_budget_used(const srv_budget_t *b);
size_t srv_budget_peak(const srv_budget_t *b);
unsigned long srv_budget_refused(const srv_budget_t *b);

#endif /* SRV_BUDGET_H */
