/* srv_log.c - structured logging: one JSON object per line on stderr.
 *
 * Each line is formatted into a stack buffer and written with a single write(2), so lines
 * from different threads never interleave (stderr is usually a pipe; writes up to PIPE_BUF are
 * atomic) and no stdio lock is taken on the request path. Strings are JSON-escaped here
 * (request paths are client bytes); no jansson on this path.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srv.h"

static atomic_int log_level = CFG_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void srv_log_set_level(int level) { atomic_store(&log_level, level); }
int srv_log_enabled(int level) { return level <= atomic_load_explicit(&log_level, memory_order_relaxed); }

/* Appends s[0..n) JSON-escaped (without quotes) to out[*k..cap); bytes that are not printable
 * ASCII are written as \u00XX, so the line stays valid JSON whatever the client sent. */
static void escape(char *out, size_t cap, size_t *k, const char *s, size_t n) {
    for (size_t i = 0; i < n && *k + 16 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[(*k)++] = '\\';
            out[(*k)++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            *k += (size_t)snprintf(out + *k, cap - *k, "\\u%04x", c); /* room checked above */
        } else {
            out[(*k)++] = (char)c;
        }
    }
}

/* Appends printf output to out[*k..cap), never past cap - 8 (room for the closing bytes). */
static void append(char *out, size_t cap, size_t *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *out, size_t cap, size_t *k, const char *fmt, ...) {
    if (*k + 8 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *k, cap - 8 - *k, fmt, ap);
    va_end(ap);
    if (n > 0) *k += (size_t)n < cap - 8 - *k ? (size_t)n : cap - 9 - *k;
}

/* Writes the "time" field opening a line into out; returns its length. */
static size_t line_start(char *out, size_t cap, const char *level) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return (size_t)snprintf(out, cap, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
                            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                            ts.tv_nsec / 1000000, level);
}

static void line_write(char *out, size_t cap, size_t k) {
    if (k > cap - 3) k = cap - 3;
    out[k++] = '}';
    out[k++] = '\n';
    ssize_t w = write(STDERR_FILENO, out, k);
    (void)w; /* nowhere to report a failed log write */
}

void srv_log(int level, const char *fmt, ...) {
    if (!srv_log_enabled(level)) return;
    char msg[1024], out[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t k = line_start(out, sizeof out, level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    append(out, sizeof out, &k, ",\"msg\":\"");
    escape(out, sizeof out, &k, msg, strlen(msg));
    if (k < sizeof out - 1) out[k++] = '"';
    line_write(out, sizeof out, k);
}

void srv_log_access(const srv_access_t *a) {
    if (!srv_log_enabled(CFG_LOG_INFO)) return;
    char out[2048];
    size_t k = line_start(out, sizeof out, "info");
    append(out, sizeof out, &k, ",\"msg\":\"access\",\"method\":\"");
    escape(out, sizeof out, &k, a->method, strlen(a->method));
    append(out, sizeof out, &k, "\",\"path\":\"");
    escape(out, sizeof out, &k, a->path, strlen(a->path));
    append(out, sizeof out, &k, "\",\"status\":%d,\"latency_ms\":%.3f", a->status, a->latency_ms);
    if (a->request_id) { /* srv_trace.c: safe characters only, but escaped all the same */
        append(out, sizeof out, &k, ",\"request_id\":\"");
        escape(out, sizeof out, &k, a->request_id, strlen(a->request_id));
        append(out, sizeof out, &k, "\"");
    }
    if (a->trace)
        append(out, sizeof out, &k, ",\"trace_id\":\"%s\",\"span_id\":\"%s\",\"parent_id\":\"%s\"", a->trace->trace_id,
               a->trace->span_id, a->trace->parent_id);
    if (a->key) {
        append(out, sizeof out, &k, ",\"key\":\"");
        escape(out, sizeof out, &k, a->key, strlen(a->key));
        append(out, sizeof out, &k, "\"");
    }
    if (a->texts) {
        append(out, sizeof out, &k, ",\"model\":\"");
        escape(out, sizeof out, &k, a->model ? a->model : "", a->model ? strlen(a->model) : 0);
        if (a->model_version && a->model_version[0])
            append(out, sizeof out, &k, "\",\"model_version\":\"%s", a->model_version);
        append(out, sizeof out, &k, "\",\"texts\":%zu,\"tokens\":%zu,\"batch\":%zu", a->texts,
                              a->tokens, a->batch);
        if (a->queue_ms >= 0)
            append(out, sizeof out, &k, ",\"queue_ms\":%.3f,\"compute_ms\":%.3f", a->queue_ms,
                                  a->compute_ms);
    }
    if (k > sizeof out - 3) k = sizeof out - 3;
    line_write(out, sizeof out, k);
}
