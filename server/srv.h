/* srv.h - gru-serve's shared state and the interfaces between its files (internal to
 * server/): srv.c (main, startup, shutdown), srv_http.c (the libmicrohttpd front end and the
 * routes), srv_log.c (JSON lines on stderr). See srv.c for the DESIGN of the whole.
 */
#ifndef SRV_H
#define SRV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api.h"
#include "bq.h"
#include "cfg.h"
#include "gru.h"
#include "srv_metrics.h"

/* ---- constants ---- */
#define SRV_VERSION "0.1.0"
#define SRV_MAX_MODELS SRV_METRICS_MAX_MODELS
#define SRV_GRACE_MS 1000 /* after the drain timeout and the last batch: time for answers to go */
#define SRV_CONNECTION_MEMORY 16384 /* bytes per connection for headers and buffers */
#define SRV_SWEEP_MS 500 /* how often slow and vanished clients are looked for */
#define SRV_QUIET_MS 100  /* draining ends after this long with no request (keep-alive stragglers) */

#define SRV_ASSERT(x)                                                                   \
    do {                                                                                \
        if (!(x)) srv_panic(__FILE__, __LINE__, #x);                                    \
    } while (0)
#define SRV_ASSERT_LOOP_THREAD(s)                                                       \
    do {                                                                                \
        uv_thread_t self_ = uv_thread_self();                                           \
        SRV_ASSERT(uv_thread_equal(&self_, &(s)->loop_thread));                         \
    } while (0)

/* ---- types ---- */

/* One served model. Read-only once the server is ready. */
typedef struct {
    char name[128];
    char *dir;
    gru_model_t *model;
    gru_config_t cfg_named;    /* the model's config with name = the served name */
    const gru_config_t *cfg;   /* &cfg_named */
    const tok_vocab_t *vocab;  /* borrowed from model */
    api_model_info_t info;
    char *meta_body;           /* GET /v2/models/{name} */
    size_t meta_len;
    char metric_info[512];     /* labels of gru_model_info */
    char metric_name[256];     /* name as a label value */
} srv_model_t;

/* The server. Fields marked "loop" belong to the loop thread; "startup" ones are written
 * before the HTTP threads may read them (published by `ready`); atomics are shared. */
typedef struct srv {
    cfg_t cfg;                         /* startup */
    int workers;                       /* startup: cfg.workers resolved */
    srv_model_t models[SRV_MAX_MODELS]; /* startup; [0] is the default */
    size_t n_models;
    gru_model_t *model_ptrs[SRV_MAX_MODELS];
    const char *metric_names[SRV_MAX_MODELS], *metric_info[SRV_MAX_MODELS];
    char *models_body;                 /* startup: GET /v1/models */
    size_t models_body_len;
    bq_queue_t *bq;                    /* startup */
    struct MHD_Daemon *daemon;
    int listen_fd;                     /* after quiesce: closed after MHD_stop_daemon */
    unsigned port;                     /* the bound port */
    srv_metrics_t metrics;
    atomic_int ready;                  /* models loaded and warm */
    atomic_int draining;               /* SIGTERM/SIGINT seen */
    atomic_long inflight;              /* requests received and not yet completed */
    atomic_ulong arrivals;             /* requests received, ever */
    atomic_long answering;             /* requests submitted to the queue and not yet completed */
    uint64_t t_start_ns;

    uv_mutex_t conns_lock;             /* guards conns (the list, not the fields) */
    struct srv_conn *conns;            /* open connections (srv_http.c) */

    uv_loop_t loop;                    /* loop */
    uv_thread_t loop_thread;
    uv_signal_t sig_term, sig_int;     /* loop */
    uv_timer_t drain_timer;            /* loop */
    uv_timer_t sweep_timer;            /* loop: srv_http_sweep every SRV_SWEEP_MS */
    int canceled;                      /* loop: queued work was failed (drain timeout) */
    unsigned long quiet_arrivals;      /* loop: arrivals at quiet_since_ns */
    uint64_t quiet_since_ns;           /* loop: since when no request arrived */
    int closing;                       /* loop: handles are closing */
    uint64_t drain_start_ns, drain_deadline_ns, grace_deadline_ns; /* loop */
} srv_t;

/* ---- prototypes ---- */

/* srv.c */
uint64_t srv_now_ns(void); /* CLOCK_MONOTONIC, any thread */
_Noreturn void srv_panic(const char *file, int line, const char *what);

/* srv_http.c. Start: listens on cfg host:port with cfg.http_threads epoll threads (main
 * thread, before the loop runs); sets s->port. Returns 0 or -1 with a message in err.
 * Quiesce: stop accepting connections (loop thread, at SIGTERM). Stop: MHD_stop_daemon; every
 * connection must have been resumed (main thread, after the loop ended). */
int srv_http_start(srv_t *s, char *err, size_t errlen);
void srv_http_quiesce(srv_t *s);
void srv_http_stop(srv_t *s);
/* Loop thread, every SRV_SWEEP_MS: shuts down the sockets of connections that have not
 * delivered a whole request within --connection-timeout-s of being opened or of their previous
 * answer (slow clients; MHD's own timeout is reset by every byte), or whose client closed in
 * the middle of a request. MHD then closes them. */
void srv_http_sweep(srv_t *s);

/* srv_log.c: one JSON object per line on stderr, written with one write(2). Any thread. */
void srv_log_set_level(int level);
int srv_log_enabled(int level);
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
typedef struct {
    const char *method, *path;
    int status;
    double latency_ms;
    size_t texts, tokens, batch;
    double queue_ms, compute_ms; /* < 0: not applicable */
    const char *model;           /* or NULL */
} srv_access_t;
void srv_log_access(const srv_access_t *a);

#endif /* SRV_H */
