/* srv_loop.c - the loop thread's own handles: SIGTERM/SIGINT, the graceful drain, the
 * slow-client sweep timer, and closing everything so that uv_run returns.
 *
 * DESIGN
 * Everything here runs on the loop thread (the main thread inside uv_run), beside the batch
 * queue's callbacks. Shutdown, at the first SIGTERM or SIGINT: the daemon stops accepting
 * (srv_daemon_quiesce) before `draining` is set, so the answers that say "Connection: close"
 * send their clients to a socket that already refuses them; /readyz turns 503; the queue stops
 * waiting for fuller batches. A 2 ms timer (on_drain_tick) then waits until no request is in
 * flight and none has arrived for SRV_QUIET_MS (keep-alive stragglers), or until
 * --drain-timeout-ms: then queued texts fail with 503, running batches finish, and answers get
 * SRV_GRACE_MS to go out. Finally every handle is closed (srv_loop_close), the queue included,
 * and uv_run returns to main. A second signal skips the wait.
 * The sweep timer also frees the models that lost their last reference (srv_models_collect);
 * SIGHUP has its own handle in srv_reload.c.
 */
#include "srv.h"

static void on_sweep(uv_timer_t *t) {
    srv_conn_sweep(t->data);
    srv_models_collect(t->data); /* models whose last request ended */
    srv_daemon_log_flush();
}

void srv_loop_close(srv_t *s) {
    if (s->closing) return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
    srv_reload_close(s); /* waits for a running reload */
    if (s->bq) bq_close(s->bq);
}

static void on_drain_tick(uv_timer_t *t) {
    srv_t *s = t->data;
    SRV_ASSERT_LOOP_THREAD(s);
    uint64_t now = srv_now_ns();
    long inflight = atomic_load(&s->inflight);
    if (!s->canceled && now >= s->drain_deadline_ns) {
        bq_stats_t st;
        bq_stats(s->bq, &st);
        srv_log(CFG_LOG_WARN, "drain timeout: failing %zu queued texts, %ld requests in flight", st.depth, inflight);
        bq_cancel(s->bq);
        s->canceled = 1;
    }
    unsigned long arrivals = atomic_load(&s->arrivals);
    if (arrivals != s->quiet_arrivals || inflight) {
        s->quiet_arrivals = arrivals;
        s->quiet_since_ns = now;
    }
    /* Done when nothing is in flight and, for a short while, nothing has arrived: a client
     * that got a keep-alive answer just before the signal may still send one more request. */
    int idle = bq_idle(s->bq);
    int done = idle && inflight == 0 && now - s->quiet_since_ns >= (uint64_t)SRV_QUIET_MS * 1000000u;
    if (!done && s->canceled) {
        /* Past the drain timeout: running batches still finish (their requests are answered);
         * then requests that were queued get a short grace to be sent; requests still being
         * read (slow clients) are not waited for. */
        if (!idle) return;
        if (!s->grace_deadline_ns) s->grace_deadline_ns = now + (uint64_t)SRV_GRACE_MS * 1000000u;
        if (atomic_load(&s->answering) > 0 && now < s->grace_deadline_ns) return;
        done = 1;
    }
    if (!done) return;
    bq_cancel(s->bq); /* no reservation from here on; then nothing may be left in the queue */
    if (!bq_idle(s->bq)) return;
    if (inflight) srv_log(CFG_LOG_WARN, "drained with %ld requests unanswered", inflight);
    srv_log(CFG_LOG_INFO, "drained in %.1f ms", (double)(now - s->drain_start_ns) / 1e6);
    srv_loop_close(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    srv_t *s = h->data;
    SRV_ASSERT_LOOP_THREAD(s);
    uint64_t now = srv_now_ns();
    if (atomic_load(&s->draining)) {
        srv_log(CFG_LOG_WARN, "signal %d again: cancelling what is left", signum);
        s->drain_deadline_ns = now;
        return;
    }
    srv_daemon_quiesce(s);
    atomic_store(&s->draining, 1);
    srv_log(CFG_LOG_INFO, "signal %d: draining (not ready, no new connections, up to %d ms)", signum,
            s->cfg.drain_timeout_ms);
    bq_flush(s->bq); /* no point waiting for fuller batches now */
    s->drain_start_ns = s->quiet_since_ns = now;
    s->quiet_arrivals = atomic_load(&s->arrivals);
    s->drain_deadline_ns = now + (uint64_t)s->cfg.drain_timeout_ms * 1000000u;
    uv_timer_start(&s->drain_timer, on_drain_tick, 0, 2);
}

int srv_loop_init(srv_t *s) {
    if (uv_loop_init(&s->loop) < 0) return -1;
    s->loop_thread = uv_thread_self();
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    uv_timer_init(&s->loop, &s->drain_timer);
    uv_timer_init(&s->loop, &s->sweep_timer);
    s->sig_term.data = s->sig_int.data = s->drain_timer.data = s->sweep_timer.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    return 0;
}

void srv_loop_start(srv_t *s) { uv_timer_start(&s->sweep_timer, on_sweep, SRV_SWEEP_MS, SRV_SWEEP_MS); }
