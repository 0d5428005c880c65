/* srv.c - gru-serve: the HTTP inference service for GRU sentiment models. main(): settings,
 * the startup sequence, teardown. The files of server/ and their jobs: srv.h.
 *
 * DESIGN
 * Four kinds of threads, each with one job (STYLE.md section 7):
 *   - HTTP threads (libmicrohttpd, `--http-threads` epoll threads; srv_http.c, srv_infer.c):
 *     read the body, parse it (api_), tokenize (tok_encode), allocate the request's result
 *     buffers, reserve room in the batch queue, suspend the connection, submit - which hands
 *     the texts straight to an idle worker; later, when resumed, encode the JSON answer. They
 *     never block and never run the model.
 *   - Workers (`--workers` threads of the batch queue, bq.c; OpenBLAS at 1 thread each):
 *     gru_forward_batch over a batch's own arrays, writing into the result buffers lent by the
 *     requests; then they complete the batch's jobs (which resumes their connections) and take
 *     the next batch themselves while texts are pending. Each model has one gru_ctx_t per
 *     worker (bq_model_t; scratch sized by a warm-up batch when the model is loaded); weights
 *     are read-only and shared.
 *   - The loop thread (this file's main thread, running uv_run; srv_loop.c): the queue's
 *     timers (batching delay, deadlines), the signal handlers that drive shutdown, the
 *     slow-client sweep, and it frees the models no request holds any more (srv_models.c). It
 *     is not on the path of a request unless a timer is involved.
 *   - The reload thread (srv_reload.c), only while a SIGHUP or a repository load/unload is being
 *     handled: loads, checks and warms models off the serving path, then publishes the next
 *     model set. A request keeps the set it found at its first call (a reference, dropped in
 *     NOTIFY_COMPLETED), so it finishes on the models it started with.
 *
 * Ownership of a request (srv_request_t) changes hands at exactly three points:
 *   1. bq_submit: the HTTP thread, having suspended the connection, hands the job to the
 *      queue; a worker reads the texts' ids and writes their result buffers (the request
 *      struct itself is not touched).
 *   2. done (srv_infer.c: on_job_done), called once by the queue, on the worker that ran the
 *      job's last text (or on the loop thread for a deadline or shutdown failure).
 *   3. MHD_resume_connection (in done): back to the connection's HTTP thread, which answers;
 *      the request is freed in MHD's NOTIFY_COMPLETED callback, its only free path.
 * A connection is suspended before its job is submitted, and resumed exactly once, by done.
 *
 * Startup: parse the settings; read --api-key-file; listen (so /healthz answers at once); load
 * every model (its version, its model card, its worker contexts warmed), publish the first model
 * set; create the queue, which warms the pool's threads; then /readyz turns 200. Well under a
 * second with the shipped models. SIGHUP waits for that (it is blocked until then).
 *
 * Shutdown (SIGTERM or SIGINT, on the loop thread, srv_loop.c): /readyz turns 503 and the listening
 * socket stops accepting; requests already received - queued, running, or arriving on open
 * keep-alive connections - are still served, with "Connection: close". When no request is in
 * flight, or when --drain-timeout-ms passes (then queued texts fail with 503 and there is a
 * short grace for the answers to go out), the queue is closed, the loop ends, and main stops
 * the daemon (every connection has been resumed by then), frees everything and exits 0.
 * A second signal skips the wait.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cblas.h>

#include "srv.h"

/* ------------------------------------------------------------------------------------------ */
/* Queue observers (under the queue's lock, on a worker or the loop thread; atomics only) */

static void on_batch(void *data, size_t model, size_t texts, size_t tokens, uint64_t compute_ns) {
    srv_t *s = data;
    srv_metrics_batch(&s->metrics, model, texts, tokens, (double)compute_ns / 1e9);
}

static void on_wait(void *data, uint64_t wait_ns) {
    srv_t *s = data;
    srv_metrics_wait(&s->metrics, (double)wait_ns / 1e9);
}

/* ------------------------------------------------------------------------------------------ */
/* Startup steps */

static const char *env_lookup(const char *name) { return getenv(name); }

/* Parses argv and the environment into s->cfg. Returns -1 to go on, or the exit status (after
 * --help, --version, or a bad setting). */
static int settings(srv_t *s, int argc, char **argv) {
    char err[1024];
    if (cfg_init(&s->cfg) < 0) {
        fprintf(stderr, "gru-serve: out of memory\n");
        return 1;
    }
    int rc = cfg_load(&s->cfg, argc, argv, env_lookup, err, sizeof err), status = -1;
    if (rc == CFG_HELP) {
        cfg_print_help(stdout);
        status = 0;
    } else if (rc == CFG_VERSION) {
        printf("gru-serve %s (libmicrohttpd %s, libuv %s, jansson %s)\n", SRV_VERSION, MHD_get_version(),
               uv_version_string(), JANSSON_VERSION);
        status = 0;
    } else if (rc < 0) {
        fprintf(stderr, "gru-serve: %s\n", err);
        status = 2;
    }
    if (status >= 0) cfg_deinit(&s->cfg);
    return status;
}

/* Process-wide settings, before any thread starts. Returns 0, or -1 after logging why. */
static int process_setup(srv_t *s, int argc, char **argv) {
    srv_log_set_level(s->cfg.log_level);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--api-key", 9) == 0 && (argv[i][9] == 0 || argv[i][9] == '='))
            srv_log(CFG_LOG_WARN, "--api-key on the command line is visible to every user of this machine in the "
                    "process list: set GRU_SERVE_API_KEY instead");
    /* One memory budget, and open connections per client address (hostile load, issue 15). */
    srv_budget_init(&s->budget, (size_t)s->cfg.max_memory_mb << 20);
    const int per_addr = s->cfg.max_connections_per_address;
    if (srv_addr_table_new(&s->addrs, (size_t)s->cfg.max_connections + 64, (unsigned)per_addr) < 0) {
        srv_log(CFG_LOG_ERROR, "out of memory for the connection table");
        return -1;
    }
    if (per_addr == 0 || per_addr >= s->cfg.max_connections)
        srv_log(CFG_LOG_WARN, "--max-connections-per-address %d: one client can hold all %d connections "
                "(health checks included)", per_addr, s->cfg.max_connections);
    /* Threads: one OpenBLAS thread per worker; the queue's workers are the parallelism. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->workers = s->cfg.workers ? s->cfg.workers : (int)(ncpu > 0 ? (ncpu < 64 ? ncpu : 64) : 1);
    openblas_set_num_threads(1);
    json_object_seed(0);
    signal(SIGPIPE, SIG_IGN);
    srv_metrics_init(&s->metrics);
    /* Room for --max-connections sockets, if the hard limit allows. */
    struct rlimit rl;
    rlim_t want = (rlim_t)s->cfg.max_connections + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

/* The batch queue over the loaded models, its worker contexts warmed. Returns 0 or -1. */
static int queue_start(srv_t *s) {
    bq_options_t opt = {
        .workers = s->workers,
        .max_batch = (size_t)s->cfg.max_batch,
        .max_batch_tokens = (size_t)s->cfg.max_batch_tokens,
        .max_delay_us = (uint64_t)s->cfg.max_delay_us,
        .max_queue = (size_t)s->cfg.max_queue,
        .timeout_ms = (uint64_t)s->cfg.timeout_ms,
        .warmup = s->cfg.warmup,
        .on_batch = on_batch,
        .on_wait = on_wait,
        .observer_data = s,
    };
    srv_modelset_t *set = srv_models_get(s);
    bq_model_t *warm[SRV_MAX_MODELS];
    for (size_t i = 0; i < set->n; i++) warm[i] = set->models[i]->bqm;
    int rc = bq_new(&s->bq, &s->loop, warm, set->n, &opt);
    srv_modelset_unref(s, set);
    if (rc < 0) srv_log(CFG_LOG_ERROR, "cannot create the batch queue: %s", strerror(-rc));
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* main */

int main(int argc, char **argv) {
    static srv_t server; /* large; lives for the whole process */
    srv_t *s = &server;
    s->t_start_ns = srv_now_ns();
    s->listen_fd = -1;
    int status = settings(s, argc, argv);
    if (status >= 0) return status;
    if (process_setup(s, argc, argv) < 0) {
        cfg_deinit(&s->cfg);
        return 1;
    }

    /* SIGTERM/SIGINT stay blocked until the queue exists: a signal during startup is handled
     * once the loop runs (and every thread started meanwhile keeps them blocked, so they
     * arrive on this one). */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP); /* a reload before the first load is done: after it */
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (uv_mutex_init(&s->conns_lock) < 0 || uv_mutex_init(&s->models_lock) < 0 || srv_loop_init(s) < 0 ||
        srv_reload_init(s) < 0) {
        fprintf(stderr, "gru-serve: cannot create the event loop\n");
        cfg_deinit(&s->cfg);
        return 1;
    }

    status = 1;
    char err[1024];
    s->api_key_slot = s->cfg.api_key[0] ? srv_metrics_key_slot(&s->metrics, "api-key") : -1;
    if (s->cfg.api_key_file[0] && srv_keys_reload(s, err, sizeof err) < 0) {
        srv_log(CFG_LOG_ERROR, "--api-key-file: %s", err);
        goto out;
    }
    if (srv_daemon_start(s, err, sizeof err) < 0) { /* /healthz answers from here on */
        srv_log(CFG_LOG_ERROR, "%s", err);
        goto out;
    }
    srv_log(CFG_LOG_INFO, "listening on %s port %u (%d HTTP threads, %d workers, max batch %d, max delay %d us)",
            s->cfg.host, s->port, s->cfg.http_threads, s->workers, s->cfg.max_batch, s->cfg.max_delay_us);
    if (srv_models_start(s) < 0 || queue_start(s) < 0) goto out;
    atomic_store_explicit(&s->ready, 1, memory_order_release);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    srv_log(CFG_LOG_INFO, "ready in %.1f ms: %zu model%s, default %s", (double)(srv_now_ns() - s->t_start_ns) / 1e6,
            s->set->n, s->set->n == 1 ? "" : "s", s->set->models[0]->name);

    srv_loop_start(s);
    uv_run(&s->loop, UV_RUN_DEFAULT); /* until srv_loop_close, after the drain */
    status = 0;
out:
    if (status != 0) srv_loop_close(s); /* startup failed: nothing was queued */
    srv_daemon_stop(s);
    uv_run(&s->loop, UV_RUN_DEFAULT); /* the close callbacks */
    if (uv_loop_close(&s->loop) != 0) srv_log(CFG_LOG_WARN, "the event loop still had handles at exit");
    srv_reload_free(s);
    srv_models_free(s); /* the worker contexts first: then the queue */
    bq_free(s->bq);
    srv_keys_unref(s->keys);
    uv_mutex_destroy(&s->models_lock);
    srv_log(CFG_LOG_INFO, "stopped");
    uv_mutex_destroy(&s->conns_lock);
    srv_addr_table_free(s->addrs);
    cfg_deinit(&s->cfg);
    return status;
}
