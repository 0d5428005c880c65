/* srv_metrics.c - the counters behind GET /metrics and their Prometheus text rendering. */
#include "srv_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Series */


/* The status codes with their own series; index SRV_METRICS_STATUSES - 1 is "other". */
static const int statuses[SRV_METRICS_STATUSES - 1] = {200, 204, 400, 401, 404, 405, 409, 413,
                                                       415, 422, 429, 500, 503, 504};

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static void hist_init(srv_hist_t *h, const double *bounds, size_t n) {
    h->bounds = bounds;
    h->n_bounds = n;
}

void srv_metrics_init(srv_metrics_t *m) {
    memset(m, 0, sizeof *m);
    atomic_flag_clear(&m->names_lock);
    for (int r = 0; r < SRV_ROUTE__COUNT; r++)
        hist_init(&m->latency[r], latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    hist_init(&m->queue_wait, latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    hist_init(&m->compute, latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    hist_init(&m->explain_compute, latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    hist_init(&m->batch_size, size_bounds, sizeof size_bounds / sizeof *size_bounds);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void srv_hist_observe(srv_hist_t *h, double x) {
    size_t i = 0;
    while (i < h->n_bounds && x > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double cur = atomic_load_explicit(&h->sum, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum, &cur, cur + x, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void srv_metrics_request(srv_metrics_t *m, srv_route_id_t route, int status, double seconds) {
    if ((unsigned)route >= SRV_ROUTE__COUNT) route = SRV_ROUTE_OTHER;
    size_t s = 0;
    while (s < SRV_METRICS_STATUSES - 1 && statuses[s] && statuses[s] != status) s++;
    if (s < SRV_METRICS_STATUSES - 1 && !statuses[s]) s = SRV_METRICS_STATUSES - 1;
    atomic_fetch_add_explicit(&m->requests[route][s], 1, memory_order_relaxed);
    srv_hist_observe(&m->latency[route], seconds);
}

void srv_metrics_batch(srv_metrics_t *m, size_t model, size_t texts, size_t tokens, double seconds) {
    if (model >= SRV_METRICS_MAX_MODELS) model = SRV_METRICS_MAX_MODELS - 1;
    atomic_fetch_add_explicit(&m->texts[model], texts, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->tokens[model], tokens, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->batches[model], 1, memory_order_relaxed);
    srv_hist_observe(&m->compute, seconds);
    srv_hist_observe(&m->batch_size, (double)texts);
}

void srv_metrics_wait(srv_metrics_t *m, double seconds) { srv_hist_observe(&m->queue_wait, seconds); }

/* The slot of name in names[0, *n) (cap slots), added when new; -1 when full. Writers take the
 * spin lock (slots are handed out at startup and reloads only); renders read *n (acquire) and
 * then only the names before it, which never change again. */
static int name_slot(srv_metrics_t *m, char (*names)[SRV_METRICS_NAME_MAX], atomic_size_t *n, size_t cap,
                     const char *name) {
    char esc[SRV_METRICS_NAME_MAX];
    srv_metrics_label_escape(esc, sizeof esc, name);
    while (atomic_flag_test_and_set_explicit(&m->names_lock, memory_order_acquire)) {
    }
    size_t k = atomic_load_explicit(n, memory_order_relaxed), i = 0;
    while (i < k && strcmp(names[i], esc) != 0) i++;
    int slot = -1;
    if (i < k) {
        slot = (int)i;
    } else if (k < cap) {
        memcpy(names[k], esc, sizeof esc);
        atomic_store_explicit(n, k + 1, memory_order_release);
        slot = (int)k;
    }
    atomic_flag_clear_explicit(&m->names_lock, memory_order_release);
    return slot;
}

int srv_metrics_model_slot(srv_metrics_t *m, const char *name) {
    return name_slot(m, m->model_names, &m->n_model_names, SRV_METRICS_MAX_MODELS, name);
}

int srv_metrics_key_slot(srv_metrics_t *m, const char *name) {
    return name_slot(m, m->key_names, &m->n_key_names, SRV_METRICS_MAX_KEYS, name);
}

void srv_metrics_key_request(srv_metrics_t *m, int slot) {
    if (slot >= 0 && slot < SRV_METRICS_MAX_KEYS)
        atomic_fetch_add_explicit(&m->key_requests[slot], 1, memory_order_relaxed);
}

void srv_metrics_explain(srv_metrics_t *m, size_t model, size_t variants, size_t tokens, double seconds) {
    if (model >= SRV_METRICS_MAX_MODELS) model = SRV_METRICS_MAX_MODELS - 1;
    atomic_fetch_add_explicit(&m->explain_texts[model], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->explain_variants[model], variants, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->explain_tokens[model], tokens, memory_order_relaxed);
    srv_hist_observe(&m->explain_compute, seconds);
}

void srv_metrics_label_escape(char *out, size_t cap, const char *s) {
    size_t k = 0;
    for (; *s && k + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') out[k++] = '\\', out[k++] = *s;
        else if (*s == '\n') out[k++] = '\\', out[k++] = 'n';
        else out[k++] = *s;
    }
    out[k] = 0;
}

void srv_metrics_model_info(char *out, size_t cap, const gru_config_t *c, const char *version, int is_default) {
    char labels[GRU_MAX_LABELS * (GRU_MAX_LABEL_LEN + 1)] = "", esc[sizeof labels * 2];
    for (int k = 0; k < c->num_labels; k++) {
        strcat(labels, k ? "|" : "");
        strcat(labels, c->labels[k]);
    }
    srv_metrics_label_escape(esc, sizeof esc, labels);
    snprintf(out, cap,
             "tokenizer=\"%s\",hidden_size=\"%d\",num_layers=\"%d\",bidirectional=\"%s\",num_parameters=\"%zu\","
             "labels=\"%.120s\",default=\"%s\",version=\"%.16s\"",
             c->tokenizer.kind == TOK_KIND_CHAR ? "char" : "word", c->hidden_size, c->num_layers,
             c->bidirectional ? "true" : "false", c->num_params, esc, is_default ? "true" : "false",
             version ? version : "");
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

static void hist_render(sbuf_t *b, const char *name, const char *labels, srv_hist_t *h) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->n_bounds) sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i], (unsigned long long)cum);
        else sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    }
    const char *lb = *labels ? "{" : "", *rb = *labels ? "}" : "";
    sb_printf(b, "%s_sum%s%s%s %.9g\n", name, lb, labels, rb, atomic_load_explicit(&h->sum, memory_order_relaxed));
    sb_printf(b, "%s_count%s%s%s %llu\n", name, lb, labels, rb,
              (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
}

/* A counter with one series per model. */
/* A per-model counter: one series per model name ever served (its slot). */
static void model_counter(sbuf_t *b, const char *name, const char *help, atomic_uint_fast64_t *v,
                          srv_metrics_t *m) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    const size_t n_names = atomic_load_explicit(&m->n_model_names, memory_order_acquire);
    for (size_t i = 0; i < n_names; i++)
        sb_printf(b, "%s{model=\"%s\"} %llu\n", name, m->model_names[i],
                  (unsigned long long)atomic_load_explicit(&v[i], memory_order_relaxed));
}

/* Resident set size in bytes, from /proc/self/statm (0 if unreadable). */
static unsigned long long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

char *srv_metrics_render(srv_metrics_t *m, const srv_metrics_gauges_t *g, size_t *len) {
    sbuf_t b = {malloc(16384), 0, 16384, 0};
    if (!b.buf) return NULL;
    b.buf[0] = 0;
    sb_printf(&b, "# HELP gru_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE gru_requests_total counter\n");
    for (int r = 0; r < SRV_ROUTE__COUNT; r++)
        for (int s = 0; s < SRV_METRICS_STATUSES; s++) {
            uint64_t v = atomic_load_explicit(&m->requests[r][s], memory_order_relaxed);
            if (!v) continue;
            char st[8];
            if (s < SRV_METRICS_STATUSES - 1) snprintf(st, sizeof st, "%d", statuses[s]);
            else snprintf(st, sizeof st, "other");
            sb_printf(&b, "gru_requests_total{route=\"%s\",status=\"%s\"} %llu\n", srv_route_name((srv_route_id_t)r), st,
                      (unsigned long long)v);
        }
    sb_printf(&b, "# HELP gru_request_duration_seconds Time from the first byte of a request to its "
                  "answer being queued.\n# TYPE gru_request_duration_seconds histogram\n");
    for (int r = 0; r < SRV_ROUTE__COUNT; r++) {
        if (!atomic_load_explicit(&m->latency[r].count, memory_order_relaxed)) continue;
        char labels[96];
        snprintf(labels, sizeof labels, "route=\"%s\"", srv_route_name((srv_route_id_t)r));
        hist_render(&b, "gru_request_duration_seconds", labels, &m->latency[r]);
    }
    sb_printf(&b, "# HELP gru_queue_wait_seconds Time a text waited in the batch queue.\n"
                  "# TYPE gru_queue_wait_seconds histogram\n");
    hist_render(&b, "gru_queue_wait_seconds", "", &m->queue_wait);
    sb_printf(&b, "# HELP gru_compute_seconds Time of one batched forward pass.\n"
                  "# TYPE gru_compute_seconds histogram\n");
    hist_render(&b, "gru_compute_seconds", "", &m->compute);
    sb_printf(&b, "# HELP gru_batch_size Texts per batched forward pass.\n# TYPE gru_batch_size histogram\n");
    hist_render(&b, "gru_batch_size", "", &m->batch_size);

    model_counter(&b, "gru_texts_total", "Texts classified.", m->texts, m);
    model_counter(&b, "gru_tokens_total", "Tokens run through the GRU.", m->tokens, m);
    model_counter(&b, "gru_explain_texts_total", "Texts explained (POST /v1/explain; not in gru_texts_total).",
                  m->explain_texts, m);
    model_counter(&b, "gru_explain_variants_total", "Leave-one-out and edited variants classified for explanations.",
                  m->explain_variants, m);
    model_counter(&b, "gru_explain_tokens_total", "Tokens run through the GRU for explanations (after prefix reuse).",
                  m->explain_tokens, m);
    sb_printf(&b, "# HELP gru_explain_compute_seconds Worker time per explained text.\n"
                  "# TYPE gru_explain_compute_seconds histogram\n");
    hist_render(&b, "gru_explain_compute_seconds", "", &m->explain_compute);
    model_counter(&b, "gru_batches_total", "Batched forward passes.", m->batches, m);
    const size_t n_keys = atomic_load_explicit(&m->n_key_names, memory_order_acquire);
    if (n_keys) {
        sb_printf(&b, "# HELP gru_api_key_requests_total Requests authorized, by the name of the API key "
                      "(--api-key-file; \"api-key\" for --api-key).\n# TYPE gru_api_key_requests_total counter\n");
        for (size_t i = 0; i < n_keys; i++)
            sb_printf(&b, "gru_api_key_requests_total{key=\"%s\"} %llu\n", m->key_names[i],
                      (unsigned long long)atomic_load_explicit(&m->key_requests[i], memory_order_relaxed));
    }
    sb_printf(&b, "# HELP gru_model_info A loaded model (version: its content hash).\n# TYPE gru_model_info gauge\n");
    for (size_t i = 0; i < g->n_models; i++)
        sb_printf(&b, "gru_model_info{model=\"%s\",%s} 1\n", g->model_names[i], g->model_info[i]);

    sb_printf(&b,
              "# HELP gru_queue_depth Texts admitted and waiting for a worker.\n# TYPE gru_queue_depth gauge\n"
              "gru_queue_depth %zu\n"
              "# HELP gru_workers_busy Batches running.\n# TYPE gru_workers_busy gauge\ngru_workers_busy %d\n"
              "# HELP gru_workers Worker threads.\n# TYPE gru_workers gauge\ngru_workers %d\n"
              "# HELP gru_inflight_requests Requests received and not yet answered.\n"
              "# TYPE gru_inflight_requests gauge\ngru_inflight_requests %ld\n"
              "# HELP gru_ready 1 when the models are loaded and warm and the server is not draining.\n"
              "# TYPE gru_ready gauge\ngru_ready %d\n"
              "# HELP gru_draining 1 after SIGTERM/SIGINT.\n# TYPE gru_draining gauge\ngru_draining %d\n"
              "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
              "# HELP process_start_time_seconds Start time of the process since the epoch in seconds.\n"
              "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
              g->queue_depth, g->workers_busy, g->workers, g->inflight, g->ready && !g->draining, g->draining,
              rss_bytes(), m->start_time);
    sb_printf(&b,
              "# HELP gru_memory_budget_bytes The memory budget for requests (--max-memory-mb).\n"
              "# TYPE gru_memory_budget_bytes gauge\ngru_memory_budget_bytes %zu\n"
              "# HELP gru_memory_reserved_bytes Bytes reserved now by requests: bodies, result buffers, answers.\n"
              "# TYPE gru_memory_reserved_bytes gauge\ngru_memory_reserved_bytes %zu\n"
              "# HELP gru_memory_reserved_peak_bytes The most bytes ever reserved at once.\n"
              "# TYPE gru_memory_reserved_peak_bytes gauge\ngru_memory_reserved_peak_bytes %zu\n"
              "# HELP gru_memory_refused_total Requests refused because the budget was in use (503).\n"
              "# TYPE gru_memory_refused_total counter\ngru_memory_refused_total %lu\n"
              "# HELP gru_connections_refused_total Connections closed at once: their address had "
              "--max-connections-per-address open.\n"
              "# TYPE gru_connections_refused_total counter\ngru_connections_refused_total %lu\n",
              g->memory_budget, g->memory_reserved, g->memory_peak, g->memory_refused, g->conns_refused);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    *len = b.len;
    return b.buf;
}
