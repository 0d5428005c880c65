/* srv.c - gru-serve: the HTTP inference service for GRU sentiment models. main(), startup and
 * graceful shutdown.
 *
 * DESIGN
 * Three kinds of threads, each with one job (STYLE.md section 7):
 *   - HTTP threads (libmicrohttpd, `--http-threads` epoll threads, srv_http.c): read the body,
 *     parse it (api_), tokenize (tok_encode), allocate the request's result buffers, reserve
 *     room in the batch queue, suspend the connection, submit; later, when resumed, encode
 *     the JSON answer. They never block and never run the model.
 *   - The loop thread (this file's main thread, running uv_run): the batch queue (bq.c) takes
 *     submitted jobs from a lock-free stack on each uv_async wakeup, forms batches, starts
 *     them with uv_queue_work, and in the after-work callback completes jobs, which resumes
 *     their connections. It also runs the deadline and batching timers and the signal
 *     handlers that drive shutdown.
 *   - Workers (the libuv pool, UV_THREADPOOL_SIZE = `--workers`, OpenBLAS at 1 thread each):
 *     gru_forward_batch over a batch's own arrays, writing into the result buffers lent by
 *     the requests. Each worker slot owns one gru_ctx_t per model (scratch sized at startup by
 *     a warm-up batch); weights are read-only and shared.
 *
 * Ownership of a request (srv_request_t) changes hands at exactly four points:
 *   1. bq_submit: the HTTP thread, having suspended the connection, pushes the job; the loop
 *      thread owns it from the async callback on.
 *   2. uv_queue_work: a worker reads the texts' ids and writes their result buffers (the
 *      request struct itself is not touched).
 *   3. after_work_cb: back to the loop thread, which calls the job's done callback once.
 *   4. MHD_resume_connection (in done): back to the connection's HTTP thread, which answers;
 *      the request is freed in MHD's NOTIFY_COMPLETED callback, its only free path.
 * A connection is suspended before its job is submitted, and resumed exactly once, by done.
 *
 * Startup: parse the settings; listen (so /healthz answers at once); load every model, read
 * its model card, build the static bodies; create the queue and warm every worker context;
 * then /readyz turns 200. Well under a second with the shipped models.
 *
 * Shutdown (SIGTERM or SIGINT, on the loop thread): /readyz turns 503 and the listening
 * socket stops accepting; requests already received - queued, running, or arriving on open
 * keep-alive connections - are still served, with "Connection: close". When no request is in
 * flight, or when --drain-timeout-ms passes (then queued texts fail with 503 and there is a
 * short grace for the answers to go out), the queue is closed, the loop ends, and main stops
 * the daemon (every connection has been resumed by then), frees everything and exits 0.
 * A second signal skips the wait.
 */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <microhttpd.h>

#include "srv.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

uint64_t srv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

_Noreturn void srv_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "gru-serve: %s:%d: assertion failed: %s\n", file, line, what);
    abort();
}

/* Writes s into out as a Prometheus label value (backslash, quote and newline escaped). */
static void label_escape(char *out, size_t cap, const char *s) {
    size_t k = 0;
    for (; *s && k + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') out[k++] = '\\', out[k++] = *s;
        else if (*s == '\n') out[k++] = '\\', out[k++] = 'n';
        else out[k++] = *s;
    }
    out[k] = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Models */

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds "NAME=DIR" or "DIR" to s->models (not loaded yet). Returns 0 or -1 after logging. */
static int model_add(srv_t *s, const char *spec) {
    if (s->n_models == SRV_MAX_MODELS) {
        srv_log(CFG_LOG_ERROR, "too many models (at most %d)", SRV_MAX_MODELS);
        return -1;
    }
    srv_model_t *m = &s->models[s->n_models];
    const char *eq = strchr(spec, '='), *dir = eq ? eq + 1 : spec;
    if (eq) {
        snprintf(m->name, sizeof m->name, "%.*s", (int)(eq - spec), spec);
    } else {
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/') dl--;
        size_t b = dl;
        while (b > 0 && dir[b - 1] != '/') b--;
        snprintf(m->name, sizeof m->name, "%.*s", (int)(dl - b), dir + b);
    }
    for (size_t i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, m->name)) {
            srv_log(CFG_LOG_ERROR, "two models are called \"%s\" (use NAME=DIR)", m->name);
            return -1;
        }
    if (!(m->dir = strdup(dir))) return -1;
    s->n_models++;
    return 0;
}

/* The models of --model, or every model directory under --models-dir. */
static int models_resolve(srv_t *s) {
    for (size_t i = 0; i < s->cfg.n_model; i++)
        if (model_add(s, s->cfg.model[i]) < 0) return -1;
    if (s->cfg.n_model) return 0;
    DIR *d = opendir(s->cfg.models_dir);
    if (!d) {
        srv_log(CFG_LOG_ERROR, "no --model given and cannot read --models-dir %s: %s", s->cfg.models_dir,
                strerror(errno));
        return -1;
    }
    char *names[SRV_MAX_MODELS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < SRV_MAX_MODELS) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/config.json", s->cfg.models_dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char spec[4096 + 160];
        snprintf(spec, sizeof spec, "%s=%s/%s", names[i], s->cfg.models_dir, names[i]);
        if (rc == 0 && model_add(s, spec) < 0) rc = -1;
        free(names[i]);
    }
    if (rc == 0 && s->n_models == 0) {
        srv_log(CFG_LOG_ERROR, "no models: --models-dir %s holds no model directory (config.json); use --model DIR",
                s->cfg.models_dir);
        return -1;
    }
    return rc;
}

/* Loads every model and builds what the routes serve about them. */
static int models_load(srv_t *s) {
    api_model_info_t infos[SRV_MAX_MODELS];
    for (size_t i = 0; i < s->n_models; i++) {
        srv_model_t *m = &s->models[i];
        char err[1024];
        if (gru_model_load(&m->model, m->dir, err, sizeof err) < 0) {
            srv_log(CFG_LOG_ERROR, "cannot load model %s: %s", m->name, err);
            if (!s->cfg.skip_bad_models) return -1;
            /* --skip-bad-models: drop it; the models after it (not loaded yet, so without
             * pointers into themselves) move down one place. */
            srv_log(CFG_LOG_WARN, "starting without model %s (--skip-bad-models)", m->name);
            free(m->dir);
            memmove(m, m + 1, (s->n_models - i - 1) * sizeof *m);
            s->n_models--;
            i--;
            continue;
        }
        /* The served name (NAME=DIR) replaces the directory's name in every answer. */
        m->cfg_named = *gru_model_config(m->model);
        /* Both are char[128]; memcpy, since gcc -O0 -Wrestrict misreads snprintf here. */
        _Static_assert(sizeof m->cfg_named.name == sizeof m->name, "name buffers differ");
        memcpy(m->cfg_named.name, m->name, sizeof m->name);
        m->cfg = &m->cfg_named;
        m->vocab = gru_model_vocab(m->model);
        s->model_ptrs[i] = m->model;
        m->info.cfg = m->cfg;
        m->info.is_default = i == 0;
        api_model_card_read(m->dir, &m->info.accuracy, &m->info.macro_f1);
        infos[i] = m->info;
        if (!(m->meta_body = api_kserve_model_body(&m->info, &m->meta_len))) return -1;
        const gru_config_t *c = m->cfg;
        char labels[GRU_MAX_LABELS * (GRU_MAX_LABEL_LEN + 1)] = "", esc[sizeof labels * 2];
        for (int k = 0; k < c->num_labels; k++) {
            strcat(labels, k ? "|" : "");
            strcat(labels, c->labels[k]);
        }
        label_escape(esc, sizeof esc, labels);
        snprintf(m->metric_info, sizeof m->metric_info,
                 "tokenizer=\"%s\",hidden_size=\"%d\",num_layers=\"%d\",bidirectional=\"%s\",num_parameters=\"%zu\","
                 "labels=\"%.120s\",default=\"%s\"",
                 c->tokenizer.kind == TOK_KIND_CHAR ? "char" : "word", c->hidden_size, c->num_layers,
                 c->bidirectional ? "true" : "false", c->num_params, esc, i == 0 ? "true" : "false");
        label_escape(m->metric_name, sizeof m->metric_name, m->name);
        s->metric_names[i] = m->metric_name;
        s->metric_info[i] = m->metric_info;
        char acc[32] = "unknown";
        if (!isnan(m->info.accuracy)) snprintf(acc, sizeof acc, "%.4g", m->info.accuracy);
        srv_log(CFG_LOG_INFO,
                "model %s: %s, %s tokenizer, V=%d E=%d H=%d L=%d%s, %zu parameters, labels %s, dev accuracy %s",
                m->name, m->dir, c->tokenizer.kind == TOK_KIND_CHAR ? "char" : "word", c->vocab_size,
                c->embedding_dim, c->hidden_size, c->num_layers, c->bidirectional ? " bidirectional" : "",
                c->num_params, labels, acc);
    }
    if (s->n_models == 0) {
        srv_log(CFG_LOG_ERROR, "no model could be loaded");
        return -1;
    }
    if (!(s->models_body = api_models_body(infos, s->n_models, &s->models_body_len))) return -1;
    return 0;
}

static void models_free(srv_t *s) {
    for (size_t i = 0; i < s->n_models; i++) {
        gru_model_free(s->models[i].model);
        free(s->models[i].dir);
        free(s->models[i].meta_body);
    }
    free(s->models_body);
}

/* ------------------------------------------------------------------------------------------ */
/* Queue observers (loop thread) */

static void on_batch(void *data, size_t model, size_t texts, size_t tokens, uint64_t compute_ns) {
    srv_t *s = data;
    srv_metrics_batch(&s->metrics, model, texts, tokens, (double)compute_ns / 1e9);
}

static void on_wait(void *data, uint64_t wait_ns) {
    srv_t *s = data;
    srv_metrics_wait(&s->metrics, (double)wait_ns / 1e9);
}

static void on_sweep(uv_timer_t *t) { srv_http_sweep(t->data); }

/* ------------------------------------------------------------------------------------------ */
/* Shutdown (loop thread) */

static void close_all(srv_t *s) {
    if (s->closing) return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
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
    close_all(s);
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
    /* Stop listening first: the answers that say "Connection: close" (once draining is set)
     * send their clients to a socket that must already refuse them, not reset them. */
    srv_http_quiesce(s);
    atomic_store(&s->draining, 1);
    srv_log(CFG_LOG_INFO, "signal %d: draining (not ready, no new connections, up to %d ms)", signum,
            s->cfg.drain_timeout_ms);
    bq_flush(s->bq); /* no point waiting for fuller batches now */
    s->drain_start_ns = s->quiet_since_ns = now;
    s->quiet_arrivals = atomic_load(&s->arrivals);
    s->drain_deadline_ns = now + (uint64_t)s->cfg.drain_timeout_ms * 1000000u;
    uv_timer_start(&s->drain_timer, on_drain_tick, 0, 2);
}

/* ------------------------------------------------------------------------------------------ */
/* main */

static const char *env_lookup(const char *name) { return getenv(name); }

int main(int argc, char **argv) {
    static srv_t server; /* large; lives for the whole process */
    srv_t *s = &server;
    s->t_start_ns = srv_now_ns();
    s->listen_fd = -1;
    char err[1024];
    if (cfg_init(&s->cfg) < 0) {
        fprintf(stderr, "gru-serve: out of memory\n");
        return 1;
    }
    int rc = cfg_load(&s->cfg, argc, argv, env_lookup, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout);
        cfg_deinit(&s->cfg);
        return 0;
    }
    if (rc == CFG_VERSION) {
        printf("gru-serve %s (libmicrohttpd %s, libuv %s, jansson %s)\n", SRV_VERSION, MHD_get_version(),
               uv_version_string(), JANSSON_VERSION);
        cfg_deinit(&s->cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "gru-serve: %s\n", err);
        cfg_deinit(&s->cfg);
        return 2;
    }
    srv_log_set_level(s->cfg.log_level);

    /* Threads: one OpenBLAS thread per worker; the libuv pool is the parallelism. Both are
     * read once, before the first BLAS call and the first uv_queue_work. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->workers = s->cfg.workers ? s->cfg.workers : (int)(ncpu > 0 ? (ncpu < 64 ? ncpu : 64) : 1);
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%d", s->workers);
    setenv("UV_THREADPOOL_SIZE", nbuf, 1);
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

    /* SIGTERM/SIGINT stay blocked until the queue exists: a signal during startup is handled
     * once the loop runs (and every thread started meanwhile keeps them blocked, so they
     * arrive on this one). */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    int status = 1;
    if (uv_loop_init(&s->loop) < 0) {
        fprintf(stderr, "gru-serve: cannot create the event loop\n");
        cfg_deinit(&s->cfg);
        return 1;
    }
    s->loop_thread = uv_thread_self();
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    uv_timer_init(&s->loop, &s->drain_timer);
    uv_timer_init(&s->loop, &s->sweep_timer);
    s->sig_term.data = s->sig_int.data = s->drain_timer.data = s->sweep_timer.data = s;
    if (uv_mutex_init(&s->conns_lock) < 0) {
        fprintf(stderr, "gru-serve: cannot create a mutex\n");
        return 1;
    }
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);

    if (models_resolve(s) < 0) goto out;
    /* The engine reads its projection-table budget from the environment at load time. */
    char mb[16];
    snprintf(mb, sizeof mb, "%d", s->cfg.proj_table_max_mb);
    setenv("GRU_PROJ_TABLE_MAX_MB", mb, 1);
    if (srv_http_start(s, err, sizeof err) < 0) {
        srv_log(CFG_LOG_ERROR, "%s", err);
        goto out;
    }
    srv_log(CFG_LOG_INFO, "listening on %s port %u (%d HTTP threads, %d workers, max batch %d, max delay %d us)",
            s->cfg.host, s->port, s->cfg.http_threads, s->workers, s->cfg.max_batch, s->cfg.max_delay_us);
    if (models_load(s) < 0) goto out;
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
    if ((rc = bq_new(&s->bq, &s->loop, s->model_ptrs, s->n_models, &opt)) < 0) {
        srv_log(CFG_LOG_ERROR, "cannot create the batch queue: %s", strerror(-rc));
        goto out;
    }
    atomic_store_explicit(&s->ready, 1, memory_order_release);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    srv_log(CFG_LOG_INFO, "ready in %.1f ms: %zu model%s, default %s", (double)(srv_now_ns() - s->t_start_ns) / 1e6,
            s->n_models, s->n_models == 1 ? "" : "s", s->models[0].name);

    uv_timer_start(&s->sweep_timer, on_sweep, SRV_SWEEP_MS, SRV_SWEEP_MS);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    status = 0;
out:
    if (status != 0) close_all(s); /* startup failed: nothing was queued */
    srv_http_stop(s);
    uv_run(&s->loop, UV_RUN_DEFAULT); /* the close callbacks */
    if (uv_loop_close(&s->loop) != 0) srv_log(CFG_LOG_WARN, "the event loop still had handles at exit");
    bq_free(s->bq);
    models_free(s);
    srv_log(CFG_LOG_INFO, "stopped");
    uv_mutex_destroy(&s->conns_lock);
    cfg_deinit(&s->cfg);
    return status;
}
