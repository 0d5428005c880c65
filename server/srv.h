/* srv.h - gru-serve's shared state and the interfaces between its files (internal to server/).
 * See srv.c for the DESIGN of the whole and README.md's layout table for the files:
 *   srv.c          main: settings, startup in order, teardown
 *   srv_models.c   the served models: the repository, loading one, model sets and their lifetime
 *   srv_reload.c   hot reload: SIGHUP and the repository routes, on a reload thread
 *   srv_repo.c     the repository routes (POST /v2/repository/...) behind --admin-key
 *   srv_loop.c     the loop thread's own handles: signals, graceful drain, the sweep timer
 *   srv_daemon.c   the libmicrohttpd daemon: listen, quiesce, stop
 *   srv_conn.c     slow-client defence: per-connection state, the whole-request deadline sweep
 *   srv_http.c     a request's life in the access handler: policy, the one error wrapper, free
 *   srv_route.c    the route table (srv_routes.def) and path matching
 *   srv_handlers.c the routes answered from memory (health, models, metrics, page, ...)
 *   srv_infer.c    the inference hand-off: texts to tokens to a queued job, and the answer
 *   srv_explain.c  POST /v1/explain (leave-one-out and edits, one queued item per text) and
 *                  POST /v1/tokenize
 *   srv_log.c      JSON lines on stderr;  srv_metrics.c  /metrics;  srv_util.c  clock, assert
 *   srv_trace.c    X-Request-Id and traceparent;  srv_keys.c  --api-key-file
 */
#ifndef SRV_H
#define SRV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include "api.h"
#include "bq.h"
#include "cfg.h"
#include "gru.h"
#include "srv_addr.h"
#include "srv_budget.h"
#include "srv_keys.h"
#include "srv_metrics.h"
#include "srv_path.h"
#include "srv_route.h"
#include "srv_trace.h"
#include "srv_util.h"

/* ---- constants ---- */
#define SRV_VERSION "0.1.0"
#define SRV_MAX_MODELS SRV_METRICS_MAX_MODELS
#define SRV_MODEL_AUTO "auto" /* "model": "auto" routes each text by its language; no model's name */
#define SRV_GRACE_MS 1000 /* after the drain timeout and the last batch: time for answers to go */
#define SRV_CONNECTION_MEMORY 16384 /* bytes per connection for headers and buffers */
#define SRV_SWEEP_MS 500 /* how often slow and vanished clients are looked for */
#define SRV_QUIET_MS 100  /* draining ends after this long with no request (keep-alive stragglers) */
#define SRV_STREAM_MIN (256u << 10) /* answers that may be larger are streamed in pieces */
#define SRV_BODY_FACTOR 3           /* a body's budget: its bytes, then its parsed document and tokens */
#define SRV_STREAM_BLOCK 16384      /* libmicrohttpd's buffer for a streamed answer */
#define SRV_MHD_LOG_PER_S 5         /* libmicrohttpd's messages logged per second; more are counted */

#define SRV_ASSERT_LOOP_THREAD(s) SRV_ASSERT_THREAD((s)->loop_thread)

/* ---- types ---- */

/* What a route handler (and each step inside one) did: the one error convention of server/.
 * The handler's caller (srv_http.c: run) turns it into libmicrohttpd's answer. */
typedef enum {
    SRV_CONTINUE = 0, /* nothing answered yet: the request goes on (the next step or call) */
    SRV_ANSWERED,     /* a response is queued */
    SRV_SUSPENDED,    /* handed to the batch queue; answered when the connection resumes */
    SRV_FAILED,       /* *err says what failed; the one error wrapper answers it */
    SRV_CLOSE,        /* libmicrohttpd refused a response: the connection is closed */
} srv_outcome_t;

/* Sets *err and evaluates to SRV_FAILED: `return SRV_FAIL(err, API_ERR_..., "fmt", ...);` */
#define SRV_FAIL(err, ...) (api_error_set((err), __VA_ARGS__), SRV_FAILED)

/* One loaded model: immutable once built, shared by every model set that holds it, reference
 * counted (srv_model_ref / srv_model_unref). When the last reference drops it goes to the
 * server's graveyard, and the loop thread frees it (srv_models_collect): by then no job names
 * its contexts, and no batch-queue code on the loop is in the middle of looking at them. */
typedef struct srv_model {
    atomic_long refs;
    char name[128];
    char *dir;
    char version[GRU_VERSION_HEX + 1]; /* gru_model_version */
    int slot;                  /* metrics slot of the name (srv_metrics_model_slot) */
    gru_model_t *model;
    bq_model_t *bqm;           /* the model's worker contexts */
    gru_config_t cfg_named;    /* the model's config with name = the served name */
    const gru_config_t *cfg;   /* &cfg_named */
    const tok_vocab_t *vocab;  /* borrowed from model */
    api_model_info_t info;
    char *meta_body;           /* GET /v2/models/{name} */
    size_t meta_len;
    char metric_info[640];     /* labels of gru_model_info, but default="..." (per set) */
    char metric_name[SRV_METRICS_NAME_MAX]; /* name as a label value */
    double load_ms;            /* how long loading, checking and warming took */
    uint64_t stamp[3][4];      /* device, inode, size, mtime (ns) of its 3 files before loading */
    struct srv_model *next_dead; /* in the graveyard */
} srv_model_t;

/* The models served at one moment: immutable, reference counted. The current set is swapped
 * whole at a reload (srv_models_publish); a request takes the set current at its first call
 * (srv_models_get) and keeps it to its end, so it finishes on the models it started with. */
typedef struct {
    atomic_long refs;
    size_t n;
    srv_model_t *models[SRV_MAX_MODELS]; /* [0] is the default; each holds one reference */
    char *models_body;                   /* GET /v1/models */
    size_t models_body_len;
    char metric_info[SRV_MAX_MODELS][680]; /* gru_model_info labels with default="..." */
    const char *metric_names[SRV_MAX_MODELS], *metric_infos[SRV_MAX_MODELS];
    const gru_config_t *cfgs[SRV_MAX_MODELS]; /* models[i]->cfg, for routing by language */
} srv_modelset_t;

/* A directory of the repository: the name it is served under and where it is. */
typedef struct {
    char name[128];
    char *dir;
} srv_repo_entry_t;

/* The server. Fields marked "loop" belong to the loop thread; "startup" ones are written
 * before the HTTP threads may read them (published by `ready`); atomics are shared. */
typedef struct srv {
    cfg_t cfg;                         /* startup */
    int workers;                       /* startup: cfg.workers resolved */
    uv_mutex_t models_lock;            /* guards set, keys and graveyard (the pointers) */
    srv_modelset_t *set;               /* the models served now (one reference) */
    srv_model_t *graveyard;            /* models without references, freed by the loop */
    srv_keys_t *keys;                  /* --api-key-file's keys (one reference), or NULL */
    int api_key_slot;                  /* metrics slot of "api-key" (--api-key) */
    struct srv_reload *reload;         /* srv_reload.c's state */
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
    srv_budget_t budget;               /* --max-memory-mb: bodies, result buffers, answers */
    srv_addr_table_t *addrs;           /* startup: open connections per client address */
    atomic_ulong conns_refused;        /* connections closed at once: their address was at its limit */

    uv_mutex_t conns_lock;             /* guards conns (the list, not the fields) */
    struct srv_conn *conns;            /* open connections (srv_conn.c) */

    uv_loop_t loop;                    /* loop */
    uv_thread_t loop_thread;
    uv_signal_t sig_term, sig_int;     /* loop */
    uv_timer_t drain_timer;            /* loop */
    uv_timer_t sweep_timer;            /* loop: srv_conn_sweep every SRV_SWEEP_MS */
    int canceled;                      /* loop: queued work was failed (drain timeout) */
    unsigned long quiet_arrivals;      /* loop: arrivals at quiet_since_ns */
    uint64_t quiet_since_ns;           /* loop: since when no request arrived */
    int closing;                       /* loop: handles are closing */
    uint64_t drain_start_ns, drain_deadline_ns, grace_deadline_ns; /* loop */
} srv_t;

/* One open connection (libmicrohttpd's socket context), in s->conns (srv_conn.c). The list is
 * changed under s->conns_lock, by the HTTP threads only at connect and close; the sweep reads
 * it under the lock, so fd is still open whenever the sweep sees the entry (MHD reports the
 * close before closing the socket). */
typedef struct srv_conn {
    struct srv_conn *prev, *next;
    int fd;
    _Atomic uint64_t since_ns; /* when the wait for the next whole request began */
    atomic_int busy;           /* a whole request arrived and is not answered yet */
    int cut;                   /* shut down by the sweep (under the lock) */
    int counted;               /* counted in s->addrs under key (released at close) */
    srv_addr_key_t key;
} srv_conn_t;

typedef enum { REQ_NEW, REQ_READING, REQ_DISCARDING, REQ_QUEUED, REQ_DONE, REQ_ANSWERED } srv_req_state_t;

typedef struct srv_request srv_request_t;
typedef srv_outcome_t (*srv_handler_fn)(srv_request_t *r, api_error_t *err);

/* One HTTP request, from its first byte to MHD's NOTIFY_COMPLETED (srv_http.c frees it). Owned
 * by its connection's HTTP thread, except between bq_submit and the resume (see srv.c). */
struct srv_request {
    srv_t *s;
    struct MHD_Connection *conn;
    srv_conn_t *sock;       /* the connection's state, or NULL */
    const srv_route_t *route;
    srv_req_state_t state;
    unsigned method;        /* SRV_M_* */
    char method_name[16];
    char path[160];         /* the request-target as sent, cut (for the access log) */
    char route_path[SRV_PATH_MAX]; /* the path routed on (srv_path_normalize of the raw target) */
    int path_rc;            /* srv_path_normalize's result; path_why its explanation */
    const char *path_why;
    int close;              /* answer with Connection: close (unsound framing) */
    size_t reserved;        /* bytes held in s->budget (released when the request is freed) */
    char model_name[128];   /* the {name} of the path, if the route has one */
    uint64_t t_start_ns;
    srv_modelset_t *set;    /* the models current at the first call (one reference) */
    char request_id[SRV_REQUEST_ID_MAX + 1]; /* X-Request-Id: the client's, or ours */
    srv_trace_t trace;      /* traceparent, when `traced` */
    int traced;
    char traceparent[SRV_TRACEPARENT_LEN + 1]; /* the header we echo, when traced */
    char key_name[SRV_KEY_NAME_MAX + 1];       /* the API key's name, "" when none */
    srv_handler_fn resumed; /* the resumed call's handler (NULL: srv_infer_answer) */
    struct srv_reload_req *reload; /* repository routes: the reload request (freed with r) */
    int status;             /* the status answered (0: none yet) */
    srv_handler_fn final;   /* what answers at the last call; NULL: the deferred error */
    api_error_t deferred;   /* an error found before or while the body was arriving */

    char *body;
    size_t body_len, body_cap;
    size_t body_reserved;   /* the body capacity reserved for (SRV_BODY_FACTOR times it is in r->reserved) */

    /* Inference (srv_infer.c). */
    api_request_t req;
    const srv_model_t *model; /* the model of every text; NULL when they went to several */
    int routed;               /* no model named (or "auto"): each text went to its language's */
    size_t n;               /* texts */
    size_t tokens;
    tok_seq_t seq1, *seqs;  /* (n): &seq1 when n == 1 */
    bq_item_t item1, *items;
    float *arena;           /* probs (n, C), then gates, then trajectories */
    float *probs;
    bq_job_t job;
    int submitted;          /* handed to the queue (counted in s->answering) */
    struct srv_explain *explain; /* POST /v1/explain's own state (srv_explain.c), or NULL */
    api_result_t *results;  /* (n) the sentiment answer's view of the arena */
    size_t piece_max;       /* the largest piece of the answer, at most (api_result_json_bound) */
    size_t answer_max;      /* the whole answer, at most */
    api_sentiment_stream_t stream; /* a streamed answer: the current piece and how much is sent */
    const char *piece;
    size_t piece_len, piece_off;
    int streaming;
};

/* An extra response header. */
typedef struct {
    const char *name, *value;
} srv_header_t;

/* ---- prototypes ---- */

/* The route handlers: one per row of srv_routes.def (srv_handlers.c, srv_infer.c). HTTP thread.
 * Each returns SRV_ANSWERED, SRV_SUSPENDED, SRV_FAILED (with *err) or SRV_CLOSE. */
#define SRV_ROUTE(id, pattern, methods, auth, body, handler) srv_outcome_t handler(srv_request_t *r, api_error_t *err);
#include "srv_routes.def"
#undef SRV_ROUTE
srv_outcome_t srv_h_preflight(srv_request_t *r, api_error_t *err); /* OPTIONS on any route */

/* srv_http.c: the access handler and its helpers (HTTP threads). */
enum MHD_Result srv_http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload, size_t *upload_size, void **req_cls);
void srv_http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                           enum MHD_RequestTerminationCode toe);
/* MHD_OPTION_URI_LOG_CALLBACK: the request-target before any unescaping. Allocates the request
 * (returned as *req_cls; freed by srv_http_on_completed, which MHD calls even when it answers
 * the request itself) and normalizes the path to route on. */
void *srv_http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
/* Queues a response with the common headers (CORS, Connection: close when draining) and extra.
 * body is freed with free() when must_free (also on failure). Returns SRV_ANSWERED or SRV_CLOSE. */
srv_outcome_t srv_respond(srv_request_t *r, unsigned status, const char *ctype, char *body, size_t len, int must_free,
                          const srv_header_t *extra, size_t n_extra);
/* A JSON body from an api_*_body encoder (NULL: out of memory, SRV_FAILED) with status. */
srv_outcome_t srv_respond_json(srv_request_t *r, unsigned status, char *body, size_t len, api_error_t *err);
/* Queues a response of unknown length (chunked) whose bytes reader produces with cls, with the
 * common headers and extra. Returns SRV_ANSWERED or SRV_CLOSE. */
srv_outcome_t srv_respond_stream(srv_request_t *r, unsigned status, const char *ctype, MHD_ContentReaderCallback reader,
                                 void *cls, const srv_header_t *extra, size_t n_extra);
/* Reserves bytes of the memory budget for r (released when r is freed). Returns SRV_CONTINUE,
 * or SRV_FAILED with *err: 503 over_capacity (full now: Retry-After) or, when bytes exceed the
 * whole budget, too_large (413) explaining that what would need them. */
srv_outcome_t srv_reserve(srv_request_t *r, size_t bytes, api_err_t too_large, const char *what, api_error_t *err);

/* srv_handlers.c. require_ready: SRV_CONTINUE when the models are loaded and warm, else
 * SRV_FAILED (503 not_ready). path_model: the model named by the path's {name}, or NULL with
 * *err set (not ready, or no such model). */
srv_outcome_t srv_require_ready(srv_request_t *r, api_error_t *err);
const srv_model_t *srv_path_model(srv_request_t *r, api_error_t *err);
/* srv_infer.c. answer: the resumed call of a queued request encodes its results (or the
 * queue's error). release: frees what the hand-off allocated in r (srv_http_on_completed). */
srv_outcome_t srv_infer_answer(srv_request_t *r, api_error_t *err);
void srv_infer_release(srv_request_t *r);
/* The steps of an inference route, shared with srv_explain.c (HTTP thread; each returns
 * SRV_CONTINUE or SRV_FAILED with *err, enqueue SRV_SUSPENDED): parse the body as kind (the
 * body's bytes are freed); pick r->model from the request's "model" (or r->routed: by each
 * text's language); tokenize every text into r->seqs (r->n texts) with its model
 * (r->items[i].model); hand r->items to the queue as one job (run: bq_job_t.run). respond:
 * the 200 answer with the queue and inference time headers (body is freed). */
srv_outcome_t srv_infer_parse(srv_request_t *r, api_request_kind_t kind, api_error_t *err);
srv_outcome_t srv_infer_model(srv_request_t *r, api_error_t *err);
/* The model of text i of r (set by srv_infer_tokenize: the request's, or its language's). */
const srv_model_t *srv_item_model(const srv_request_t *r, size_t i);
srv_outcome_t srv_infer_tokenize(srv_request_t *r, api_error_t *err);
srv_outcome_t srv_infer_enqueue(srv_request_t *r, bq_run_cb run, api_error_t *err);
srv_outcome_t srv_infer_respond(srv_request_t *r, char *body, size_t len);
/* srv_explain.c. answer: encodes a finished explanation (from srv_infer_answer). release:
 * frees r->explain (from srv_infer_release; NULL is fine). */
srv_outcome_t srv_explain_answer(srv_request_t *r, api_error_t *err);
void srv_explain_release(srv_request_t *r);

/* srv_conn.c: libmicrohttpd's connection notifications (HTTP threads), and the sweep (loop
 * thread, every SRV_SWEEP_MS): shuts down the sockets of connections that have not delivered a
 * whole request within --connection-timeout-s of being opened or of their previous answer (slow
 * clients; MHD's own timeout is reset by every byte), or whose client closed in the middle of a
 * request. MHD then closes them. */
void srv_conn_on_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);
void srv_conn_sweep(srv_t *s);
/* MHD's accept policy: refuses (closes at once) a connection whose address is at
 * --max-connections-per-address. Counting is in srv_conn_on_notify. */
enum MHD_Result srv_conn_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/* srv_daemon.c. Start: listens on cfg host:port with cfg.http_threads epoll threads (main
 * thread, before the loop runs); sets s->port. Returns 0 or -1 with a message in err.
 * Quiesce: stop accepting connections (loop thread, at SIGTERM). Stop: MHD_stop_daemon; every
 * connection must have been resumed (main thread, after the loop ended). */
int srv_daemon_start(srv_t *s, char *err, size_t errlen);
void srv_daemon_quiesce(srv_t *s);
void srv_daemon_stop(srv_t *s);
/* Logs how many libmicrohttpd messages the rate limit (SRV_MHD_LOG_PER_S) held back since the
 * last report, if any (loop thread, with the sweep). */
void srv_daemon_log_flush(void);

/* srv_models.c. The repository: the models of --model, or every model directory under
 * --models-dir in name order, into e (returns their number in *n; 0, or -1 with err set; free
 * the entries with srv_repo_free). Any thread. */
int srv_repo_list(const srv_t *s, srv_repo_entry_t e[SRV_MAX_MODELS], size_t *n, char *err, size_t errlen);
void srv_repo_free(srv_repo_entry_t *e, size_t n);
/* Loads, checks and warms the model of e and builds what is served about it (any thread, off the
 * serving path). Returns 0 and a new model (one reference) in *out, or a negative errno with
 * the reason (naming the file) in err. */
int srv_model_build(srv_t *s, const srv_repo_entry_t *e, srv_model_t **out, char *err, size_t errlen);
/* 1 when the files of m's directory are, by device, inode, size and modification time, the ones
 * it was loaded from (a reload then keeps m without reading them). */
int srv_model_unchanged(const srv_model_t *m, const srv_repo_entry_t *e);
srv_model_t *srv_model_ref(srv_model_t *m);      /* any thread; NULL ok */
void srv_model_unref(srv_t *s, srv_model_t *m);  /* any thread; the last one: to the graveyard */
/* Frees the models in the graveyard. The loop thread, or main after the loop has ended. */
void srv_models_collect(srv_t *s);
/* A set of models[0..n) (each gets a reference; [0] is the default) with its bodies. Returns 0
 * and a new set (one reference), -EINVAL or -ENOMEM. Any thread. */
int srv_modelset_new(srv_t *s, srv_model_t *const *models, size_t n, srv_modelset_t **out);
void srv_modelset_unref(srv_t *s, srv_modelset_t *set); /* any thread; NULL ok */
/* The current set with one more reference (drop it with srv_modelset_unref), NULL before
 * startup loaded one. Any thread. */
srv_modelset_t *srv_models_get(srv_t *s);
/* Makes set (its reference is taken over; NULL at exit) the current one and drops the old. */
void srv_models_publish(srv_t *s, srv_modelset_t *set);
srv_model_t *srv_modelset_find(const srv_modelset_t *set, const char *name); /* borrowed, or NULL */
/* Startup (main thread): loads the repository (--skip-bad-models applies) and publishes the
 * first set. Returns 0, or -1 after logging why. free: at exit, after the loop has ended. */
int srv_models_start(srv_t *s);
void srv_models_free(srv_t *s);

/* srv_reload.c: hot reload. A request (SIGHUP: everything; the repository routes: load or
 * unload one model) runs on the reload thread, one at a time, in arrival order; the models are
 * loaded, checked and warmed there, then the new set is published. done is called on the loop
 * thread with the outcome in the request. */
typedef enum { SRV_RELOAD_ALL, SRV_RELOAD_LOAD, SRV_RELOAD_UNLOAD } srv_reload_kind_t;
typedef struct srv_reload_req {
    /* set by the requester */
    srv_reload_kind_t kind;
    char name[128];                        /* LOAD, UNLOAD: the model */
    void (*done)(struct srv_reload_req *); /* loop thread, once */
    void *data;
    /* the outcome, read-only in done */
    api_error_t err;                       /* kind API_ERR_NONE: done */
    char version[GRU_VERSION_HEX + 1];     /* LOAD: the version now served */
    /* private */
    struct srv_reload_req *next;
} srv_reload_req_t;
/* init: main thread, before the loop runs. request: any thread (req is the requester's until
 * done). close: loop thread, at shutdown: waits for the running reload, fails the others
 * (API_ERR_DRAINING), closes the handle. free: after the loop has ended. */
int srv_reload_init(srv_t *s);
void srv_reload_request(srv_t *s, srv_reload_req_t *req);
void srv_reload_close(srv_t *s);
void srv_reload_free(srv_t *s);
/* The API keys, read at startup and at each reload: 0, or -1 with err set (the keys in use
 * stay). Any thread. */
int srv_keys_reload(srv_t *s, char *err, size_t errlen);

/* srv_loop.c: the loop thread's handles. init (main thread, before anything can signal):
 * signal handlers and timers on s->loop; start: the sweep timer, once serving; close: close
 * every handle and the queue (ends uv_run; once). */
int srv_loop_init(srv_t *s);
void srv_loop_start(srv_t *s);
void srv_loop_close(srv_t *s);

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
    const char *model_version;   /* or NULL */
    const char *request_id;      /* X-Request-Id */
    const srv_trace_t *trace;    /* or NULL: no valid traceparent */
    const char *key;             /* the API key's name, or NULL */
} srv_access_t;
void srv_log_access(const srv_access_t *a);

#endif /* SRV_H */
