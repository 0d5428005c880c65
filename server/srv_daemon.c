/* srv_daemon.c - the libmicrohttpd daemon's lifecycle: listen, stop accepting, stop.
 *
 * DESIGN
 * The daemon runs `--http-threads` internal epoll threads (MHD_USE_INTERNAL_POLLING_THREAD with
 * a thread pool when > 1) with MHD_ALLOW_SUSPEND_RESUME, so an inference request can wait for
 * the batch queue without holding a thread. Its callbacks are srv_http_on_request (the access
 * handler), srv_http_on_completed (the only place a request is freed) and srv_conn_on_notify
 * (per-connection state for the slow-client sweep).
 *   start   (main thread, before the models load, so /healthz answers at once)
 *   quiesce (loop thread, at SIGTERM: no new connection; the open ones are still served)
 *   stop    (main thread, after the loop ended and every connection was resumed)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srv.h"

/* libmicrohttpd's messages, at most SRV_MHD_LOG_PER_S a second: it writes one per aborted or
 * malformed connection, which a hostile client can produce by the thousand. The rest are
 * counted and reported by srv_daemon_log_flush. The window is a rough one (racy by a line or
 * two between threads), which is all a log limit needs. */
static atomic_ullong log_window;  /* the second the counts below belong to */
static atomic_uint log_in_window; /* messages seen in that second */
static atomic_ulong log_held;     /* messages not logged since the last report */

void srv_daemon_log_flush(void) {
    unsigned long held = atomic_exchange(&log_held, 0);
    if (held)
        srv_log(CFG_LOG_WARN, "libmicrohttpd: %lu more messages (aborted or malformed connections) not logged: at "
                "most %d a second are", held, SRV_MHD_LOG_PER_S);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    unsigned long long now = srv_now_ns() / 1000000000u;
    if (atomic_exchange(&log_window, now) != now) atomic_store(&log_in_window, 0);
    if (atomic_fetch_add(&log_in_window, 1) >= SRV_MHD_LOG_PER_S) {
        atomic_fetch_add(&log_held, 1);
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    srv_log(CFG_LOG_WARN, "libmicrohttpd: %s", msg);
}

int srv_daemon_start(srv_t *s, char *err, size_t errlen) {
    const cfg_t *c = &s->cfg;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* TURBO: try reads and writes before asking epoll (they mostly succeed under load). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)c->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--host '%s' is not an IP address", c->host);
        return -1;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first, to catch every message */
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)srv_http_on_uri, s}, /* the raw path, to route on */
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)srv_http_on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)srv_conn_on_notify, s},
        {MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, c->connection_timeout_s, NULL},
        /* Per-connection memory for headers and I/O buffers; MHD zeroes it for every request,
         * so half its default is a measurable saving. Headers over ~14 KiB get 431. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONNECTION_MEMORY, NULL},
        {c->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, c->http_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, (uint16_t)c->port, srv_conn_accept_policy, s, srv_http_on_request, s,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %d (in use, or not an address of this machine?)", c->host,
                 c->port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (unsigned)c->port;
    s->listen_fd = -1;
    return 0;
}

void srv_daemon_quiesce(srv_t *s) {
    if (!s->daemon || s->listen_fd >= 0) return;
    int fd = s->listen_fd = MHD_quiesce_daemon(s->daemon);
    if (fd < 0) return;
    /* Connections the kernel already completed are in the backlog: they would be reset by the
     * shutdown below, after their clients may have sent a request. Hand them to MHD (which
     * closes the socket if it cannot take it); they are served like the open ones. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (int n = 0; n < 4096; n++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int c = accept(fd, (struct sockaddr *)&ss, &len);
        if (c < 0) break;
        fcntl(c, F_SETFD, FD_CLOEXEC);
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
        MHD_add_connection(s->daemon, c, (struct sockaddr *)&ss, len);
    }
    /* Then stop the kernel from accepting into the backlog; the fd itself is closed after
     * MHD_stop_daemon (MHD's threads may still hold it until then). */
    shutdown(fd, SHUT_RDWR);
}

void srv_daemon_stop(srv_t *s) {
    if (!s->daemon) return;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
}
