/* srv_addr.c - open connections per client address (see srv_addr.h).
 *
 * DESIGN
 * Linear probing in a power-of-two array at most half full (capacity >= 2 * max_addresses),
 * with backward-shift deletion (no tombstones, so probe lengths do not grow with churn). The
 * slot of a key comes from a keyed 64-bit mix of its two halves with a seed drawn at creation
 * (getrandom, else the clock and the address of the table): the seed is secret, so a client
 * that controls many addresses (an IPv6 /48 has 65,536 /64s) cannot aim them at one probe
 * chain. One mutex guards the table; every operation is a few probes, so it is never held
 * long.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "srv_addr.h"

typedef struct {
    srv_addr_key_t key;
    unsigned count; /* 0: the slot is empty */
} slot_t;

struct srv_addr_table {
    pthread_mutex_t lock;
    slot_t *slots;   /* (mask + 1) */
    size_t mask;
    size_t used;     /* slots with count > 0 */
    size_t max_used; /* max_addresses */
    unsigned limit;
    uint64_t seed[2];
};

/* ------------------------------------------------------------------------------------------ */
/* Keys */

int srv_addr_key(const struct sockaddr *sa, socklen_t len, srv_addr_key_t *key) {
    memset(key->b, 0, sizeof key->b);
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        key->b[10] = key->b[11] = 0xff;
        memcpy(key->b + 12, &v4->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        memcpy(key->b, &v6->sin6_addr, 16);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(key->b, mapped, 12) != 0) memset(key->b + 8, 0, 8); /* the /64 */
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* ------------------------------------------------------------------------------------------ */
/* Table */

static uint64_t mix64(uint64_t x) { /* the finalizer of MurmurHash3 (a bijection) */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t slot_of(const srv_addr_table_t *t, const srv_addr_key_t *k) {
    uint64_t a, b;
    memcpy(&a, k->b, 8);
    memcpy(&b, k->b + 8, 8);
    uint64_t h = mix64(a ^ t->seed[0]);
    h = mix64(h ^ b ^ t->seed[1]);
    return (size_t)h & t->mask;
}

int srv_addr_table_new(srv_addr_table_t **out, size_t max_addresses, unsigned limit) {
    *out = NULL;
    if (max_addresses == 0 || max_addresses > ((size_t)1 << 30)) return -EINVAL;
    size_t cap = 16;
    while (cap < 2 * max_addresses) cap *= 2;
    srv_addr_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->slots = calloc(cap, sizeof *t->slots))) {
        free(t);
        return -ENOMEM;
    }
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->slots);
        free(t);
        return -ENOMEM;
    }
    t->mask = cap - 1;
    t->max_used = max_addresses;
    t->limit = limit;
    if (getrandom(t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t->seed[0] = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32));
        t->seed[1] = mix64((uint64_t)(uintptr_t)t ^ t->seed[0]);
    }
    *out = t;
    return 0;
}

void srv_addr_table_free(srv_addr_table_t *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

/* The slot holding k, or the empty slot where it would go. Under the lock. */
static size_t find(const srv_addr_table_t *t, const srv_addr_key_t *k) {
    size_t i = slot_of(t, k);
    while (t->slots[i].count && memcmp(&t->slots[i].key, k, sizeof *k) != 0) i = (i + 1) & t->mask;
    return i;
}

int srv_addr_acquire(srv_addr_table_t *t, const srv_addr_key_t *key) {
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    slot_t *s = &t->slots[find(t, key)];
    if (s->count == 0) {
        if (t->used >= t->max_used) rc = -ENOSPC;
        else {
            s->key = *key;
            s->count = 1;
            t->used++;
        }
    } else if (t->limit && s->count >= t->limit) {
        rc = -EAGAIN;
    } else {
        s->count++;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int srv_addr_allowed(srv_addr_table_t *t, const srv_addr_key_t *key) {
    pthread_mutex_lock(&t->lock);
    const slot_t *s = &t->slots[find(t, key)];
    int ok = s->count == 0 ? t->used < t->max_used : (!t->limit || s->count < t->limit);
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void srv_addr_release(srv_addr_table_t *t, const srv_addr_key_t *key) {
    pthread_mutex_lock(&t->lock);
    size_t i = find(t, key);
    if (t->slots[i].count > 1) {
        t->slots[i].count--;
    } else if (t->slots[i].count == 1) {
        /* Backward-shift deletion: move later members of the probe chain into the hole when
         * their home slot does not lie cyclically in (hole, j]. */
        t->slots[i].count = 0;
        t->used--;
        size_t hole = i;
        for (size_t j = (i + 1) & t->mask; t->slots[j].count; j = (j + 1) & t->mask) {
            size_t home = slot_of(t, &t->slots[j].key);
            int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (stays) continue;
            t->slots[hole] = t->slots[j];
            t->slots[j].count = 0;
            hole = j;
        }
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned srv_addr_count(srv_addr_table_t *t, const srv_addr_key_t *key) {
    pthread_mutex_lock(&t->lock);
    unsigned n = t->slots[find(t, key)].count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t srv_addr_addresses(srv_addr_table_t *t) {
    pthread_mutex_lock(&t->lock);
    size_t n = t->used;
    pthread_mutex_unlock(&t->lock);
    return n;
}
