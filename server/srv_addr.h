/* srv_addr.h - open connections per client address, so that one client cannot hold every
 * connection slot: a bounded hash table (open addressing, keyed with a secret seed so that a
 * client cannot choose colliding addresses), O(1) per connect and close.
 *
 * Addresses are counted per IPv4 address and per IPv6 /64 (one host usually owns a whole
 * /64); an IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address.
 *
 * Usage (libmicrohttpd: check in the accept policy, count on connect, uncount on close):
 *     srv_addr_table_t *t;
 *     srv_addr_table_new(&t, max_connections, per_address_limit);
 *     srv_addr_key_t k;
 *     if (srv_addr_key(sa, salen, &k) == 0 && srv_addr_acquire(t, &k) == 0) { ...counted... }
 *     ...
 *     srv_addr_release(t, &k);                 // exactly once per successful acquire
 *     srv_addr_table_free(t);
 *
 * Any thread (one mutex around each O(1) operation).
 */
#ifndef SRV_ADDR_H
#define SRV_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- types ---- */

/* An address as counted: 16 bytes (IPv4 in the IPv4-mapped form, IPv6 with the low 64 bits
 * zeroed). Plain data. */
typedef struct {
    uint8_t b[16];
} srv_addr_key_t;

typedef struct srv_addr_table srv_addr_table_t; /* opaque */

/* ---- prototypes ---- */

/* A table for at most max_addresses distinct addresses at once, each with at most limit open
 * connections (limit 0: no per-address limit; the table still counts). *out is new (free it
 * with srv_addr_table_free). Returns 0, -EINVAL (max_addresses 0) or -ENOMEM. */
int srv_addr_table_new(srv_addr_table_t **out, size_t max_addresses, unsigned limit);
void srv_addr_table_free(srv_addr_table_t *t); /* NULL is fine */

/* The key of a socket address. Returns 0, or -EAFNOSUPPORT for a family other than AF_INET
 * and AF_INET6 (or a length too short for it). */
int srv_addr_key(const struct sockaddr *sa, socklen_t len, srv_addr_key_t *key);

/* Counts one more connection of key. Returns 0; -EAGAIN when key already has limit
 * connections; -ENOSPC when max_addresses distinct addresses are in the table already. */
int srv_addr_acquire(srv_addr_table_t *t, const srv_addr_key_t *key);

/* 1 when key is below its limit now (a cheap check before accepting; srv_addr_acquire is
 * the authoritative one). */
int srv_addr_allowed(srv_addr_table_t *t, const srv_addr_key_t *key);

/* Counts one connection of key less; releasing a key with no connection is a programming
 * error and does nothing. */
void srv_addr_release(srv_addr_table_t *t, const srv_addr_key_t *key);

/* Open connections of key now, and distinct addresses in the table now. */
unsigned srv_addr_count(srv_addr_table_t *t, const srv_addr_key_t *key);
size_t srv_addr_addresses(srv_addr_table_t *t);

#endif /* SRV_ADDR_H */
