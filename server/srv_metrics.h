/* srv_metrics.h - counters and histograms for GET /metrics (Prometheus text format 0.0.4).
 *
 * Everything is a relaxed C11 atomic: any thread may record, any thread may render. A render
 * is not a consistent snapshot across series (as in every Prometheus client). The request series
 * have one row per route of srv_routes.def (srv_route.h), labelled with its pattern.
 *
 * Per-model counters are kept per model name: a name gets a slot the first time it is served
 * (srv_metrics_model_slot) and keeps it for the life of the process, so a model reloaded with new
 * weights goes on counting, and a removed model's counters stay (as Prometheus counters must).
 * API key names (--api-key-file) get slots the same way (srv_metrics_key_slot).
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gru.h"
#include "srv_route.h"

/* ---- constants ---- */

#define SRV_METRICS_STATUSES 16 /* distinct status codes kept; more go to "other" */
#define SRV_METRICS_MAX_MODELS 32 /* model names over the life of the process */
#define SRV_METRICS_MAX_KEYS 64   /* API key names over the life of the process */
#define SRV_METRICS_NAME_MAX 256  /* an escaped label value */
#define SRV_HIST_MAX_BUCKETS 20

/* ---- types ---- */

typedef struct {
    const double *bounds; /* upper bounds, ascending (+Inf implied) */
    size_t n_bounds;
    atomic_uint_fast64_t buckets[SRV_HIST_MAX_BUCKETS + 1]; /* non-cumulative */
    atomic_uint_fast64_t count;
    _Atomic double sum;
} srv_hist_t;

typedef struct {
    atomic_uint_fast64_t requests[SRV_ROUTE__COUNT][SRV_METRICS_STATUSES];
    srv_hist_t latency[SRV_ROUTE__COUNT]; /* seconds */
    srv_hist_t queue_wait;                /* seconds, per text */
    srv_hist_t compute;                   /* seconds, per batch */
    srv_hist_t batch_size;                /* texts per batch */
    atomic_uint_fast64_t texts[SRV_METRICS_MAX_MODELS];
    atomic_uint_fast64_t tokens[SRV_METRICS_MAX_MODELS];
    atomic_uint_fast64_t batches[SRV_METRICS_MAX_MODELS];
    char model_names[SRV_METRICS_MAX_MODELS][SRV_METRICS_NAME_MAX]; /* escaped; [0, n_model_names) */
    atomic_size_t n_model_names;
    char key_names[SRV_METRICS_MAX_KEYS][SRV_METRICS_NAME_MAX];
    atomic_size_t n_key_names;
    atomic_uint_fast64_t key_requests[SRV_METRICS_MAX_KEYS];
    atomic_flag names_lock;               /* taken by the slot functions only */
    /* POST /v1/explain's work, apart from the counters above */
    atomic_uint_fast64_t explain_texts[SRV_METRICS_MAX_MODELS];
    atomic_uint_fast64_t explain_variants[SRV_METRICS_MAX_MODELS];
    atomic_uint_fast64_t explain_tokens[SRV_METRICS_MAX_MODELS];
    srv_hist_t explain_compute;           /* seconds, per explained text */
    double start_time;                    /* unix seconds */
} srv_metrics_t;

/* What render needs besides the counters: gauges read at render time. Borrowed. */
typedef struct {
    size_t queue_depth;
    int workers_busy, workers;
    long inflight;
    int ready, draining;
    size_t n_models;                  /* the models served now (gru_model_info) */
    const char *const *model_names;   /* (n_models) escaped label values */
    const char *const *model_info;    /* (n_models) extra labels, e.g. tokenizer="word",... */
    size_t memory_budget, memory_reserved, memory_peak; /* bytes (--max-memory-mb) */
    unsigned long memory_refused;     /* reservations refused (503 over_capacity) */
    unsigned long conns_refused;      /* connections closed: their address was at its limit */
} srv_metrics_gauges_t;

/* ---- prototypes ---- */

void srv_metrics_init(srv_metrics_t *m);

void srv_metrics_request(srv_metrics_t *m, srv_route_id_t route, int status, double seconds);
/* model: a slot of srv_metrics_model_slot. */
void srv_metrics_batch(srv_metrics_t *m, size_t model, size_t texts, size_t tokens, double seconds);
/* The slot of a model name (escaped here), given at its first call and the same ever after.
 * Returns it, or -1 when SRV_METRICS_MAX_MODELS names have been used. Any thread. */
int srv_metrics_model_slot(srv_metrics_t *m, const char *name);
/* The same for an API key's name; and one request authorized by the key of slot (< 0: none). */
int srv_metrics_key_slot(srv_metrics_t *m, const char *name);
void srv_metrics_key_request(srv_metrics_t *m, int slot);
void srv_metrics_wait(srv_metrics_t *m, double seconds);
/* One explained text: its variants (leave-one-out and edits) and the tokens run for them. */
void srv_metrics_explain(srv_metrics_t *m, size_t model, size_t variants, size_t tokens, double seconds);
void srv_hist_observe(srv_hist_t *h, double x);

/* The labels of a model's gru_model_info series (tokenizer="word",hidden_size="128",...) for
 * the model of config c, into out (cap bytes, NUL-terminated, cut if longer). */
void srv_metrics_model_info(char *out, size_t cap, const gru_config_t *c, const char *version, int is_default);
/* s as a Prometheus label value (backslash, quote and newline escaped) into out (cap bytes). */
void srv_metrics_label_escape(char *out, size_t cap, const char *s);

/* The exposition text (new malloc'ed bytes, NUL-terminated; free() them) with its length in
 * *len, or NULL when out of memory. */
char *srv_metrics_render(srv_metrics_t *m, const srv_metrics_gauges_t *g, size_t *len);

#endif /* SRV_METRICS_H */
