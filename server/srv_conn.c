/* srv_conn.c - slow-client defence: every connection must deliver each whole request within
 * --connection-timeout-s.
 *
 * DESIGN
 * libmicrohttpd's own idle timeout is reset by every byte, so a client sending one byte a
 * second holds a connection forever. Each connection therefore gets a srv_conn_t (its socket
 * context, created and freed in MHD's connection notifications on the HTTP threads) in the
 * list s->conns, recording since when it has owed a whole request (its opening, or its previous
 * answer: srv_http.c updates since_ns and busy). The loop thread's sweep (every SRV_SWEEP_MS)
 * walks the list under s->conns_lock and shuts down the sockets of the late ones, and of clients
 * that closed in the middle of a request; MHD then sees the end of the stream and closes them.
 * The lock is taken twice per connection by the HTTP threads (open, close), never per request.
 *
 * Fairness: s->addrs counts open connections per client address (srv_addr.h). The accept
 * policy refuses a connection whose address is at --max-connections-per-address before MHD
 * allocates anything; the authoritative count is taken when MHD reports the connection (two
 * HTTP threads may accept from one address at once), and a connection that loses that race is
 * shut down at once. So one client holds at most that many of the --max-connections slots.
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "srv.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000 /* Linux: the peer shut down its writing half */
#endif

/* The length of a socket address MHD reports (it keeps the family's own size). */
static socklen_t addr_len(const struct sockaddr *sa) {
    return sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6) : (socklen_t)sizeof(struct sockaddr_in);
}

enum MHD_Result srv_conn_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    srv_t *s = cls;
    srv_addr_key_t key;
    if (!s->addrs || srv_addr_key(addr, addrlen, &key) < 0 || srv_addr_allowed(s->addrs, &key)) return MHD_YES;
    atomic_fetch_add_explicit(&s->conns_refused, 1, memory_order_relaxed);
    return MHD_NO;
}

/* Counts a new connection for its address; 0, or -1 when the address is at its limit. */
static int count_address(srv_t *s, struct MHD_Connection *conn, srv_conn_t *c) {
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!s->addrs || !ai || !ai->client_addr ||
        srv_addr_key(ai->client_addr, addr_len(ai->client_addr), &c->key) < 0)
        return 0; /* not an IP connection: not counted */
    if (srv_addr_acquire(s->addrs, &c->key) < 0) return -1;
    c->counted = 1;
    return 0;
}

void srv_conn_on_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe) {
    srv_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        srv_conn_t *c = ci ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c) return; /* untracked: MHD's idle timeout still applies */
        c->fd = ci->connect_fd;
        atomic_init(&c->since_ns, srv_now_ns());
        atomic_init(&c->busy, 0);
        if (count_address(s, conn, c) < 0) { /* lost the race to the limit: closed at once */
            atomic_fetch_add_explicit(&s->conns_refused, 1, memory_order_relaxed);
            shutdown(c->fd, SHUT_RDWR);
            c->cut = 1;
        }
        uv_mutex_lock(&s->conns_lock);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        uv_mutex_unlock(&s->conns_lock);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn_t *c = *socket_context;
        *socket_context = NULL;
        if (!c) return;
        uv_mutex_lock(&s->conns_lock);
        if (c->prev) c->prev->next = c->next;
        else s->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        uv_mutex_unlock(&s->conns_lock);
        if (c->counted) srv_addr_release(s->addrs, &c->key);
        free(c);
    }
}

void srv_conn_sweep(srv_t *s) {
    const uint64_t now = srv_now_ns(), limit = (uint64_t)s->cfg.connection_timeout_s * 1000000000u;
    int late = 0, gone = 0;
    uv_mutex_lock(&s->conns_lock);
    for (srv_conn_t *c = s->conns; c; c = c->next) {
        if (c->cut || atomic_load(&c->busy)) continue;
        uint64_t since = atomic_load(&c->since_ns); /* may be later than now: set meanwhile */
        int is_late = limit && since < now && now - since >= limit;
        /* A client that closed in the middle of a request can never finish it; libmicrohttpd
         * 0.9.75 with epoll misses a FIN that arrives together with a partial body (the socket
         * sits in CLOSE_WAIT until the timeout). Looking does not consume anything. */
        struct pollfd p = {c->fd, POLLRDHUP, 0};
        int is_gone = !is_late && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
        if (!is_late && !is_gone) continue;
        shutdown(c->fd, SHUT_RDWR); /* MHD sees the end of the stream and closes it */
        c->cut = 1;
        late += is_late;
        gone += is_gone;
    }
    uv_mutex_unlock(&s->conns_lock);
    if (late || gone)
        srv_log(CFG_LOG_DEBUG, "closed %d connections with no whole request in %d s, %d closed by the client", late,
                s->cfg.connection_timeout_s, gone);
}
