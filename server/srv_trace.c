/* srv_trace.c - X-Request-Id validation and generation, W3C traceparent parsing and the header
 * we echo (rules in srv_trace.h). Pure functions over bytes, no HTTP: the routes call them with
 * header values and put the results in the answer and the access log.
 */
#include "srv_trace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* Randomness */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Fills buf from getrandom; when the kernel cannot (no getrandom, or no entropy yet so early in
 * boot that the call would block), from a per-thread splitmix64 stream seeded with the clock,
 * the thread's address and a process-wide counter: ids stay unique, they are just guessable. */
static void random_bytes(uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, GRND_NONBLOCK);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == n) return;
    static atomic_uint_fast64_t counter;
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        state ^= (uint64_t)(uintptr_t)&state ^ (atomic_fetch_add(&counter, 1) << 48);
        seeded = 1;
    }
    for (; got < n; got++) buf[got] = (uint8_t)splitmix64(&state);
}

void srv_random_hex(char *out, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    uint8_t buf[64];
    while (nbytes) {
        size_t n = nbytes < sizeof buf ? nbytes : sizeof buf;
        random_bytes(buf, n);
        for (size_t i = 0; i < n; i++) {
            *out++ = hex[buf[i] >> 4];
            *out++ = hex[buf[i] & 15];
        }
        nbytes -= n;
    }
    *out = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* X-Request-Id */

static int id_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("-_.:/+=@", c));
}

int srv_request_id_valid(const char *s, size_t len) {
    if (!s || len == 0 || len > SRV_REQUEST_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!id_char((unsigned char)s[i])) return 0;
    return 1;
}

int srv_request_id_take(const char *hdr, char out[SRV_REQUEST_ID_MAX + 1]) {
    /* strnlen: a header longer than the limit is not read to its end. */
    size_t len = hdr ? strnlen(hdr, SRV_REQUEST_ID_MAX + 1) : 0;
    if (srv_request_id_valid(hdr, len)) {
        memcpy(out, hdr, len);
        out[len] = 0;
        return 1;
    }
    srv_random_hex(out, SRV_REQUEST_ID_NEW_HEX / 2);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* traceparent */

/* 1 when s[0..n) is n lower-case hex digits (the specification allows no upper case). */
static int lower_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int all_zeros(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return 0;
    return 1;
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

int srv_traceparent_parse(const char *s, size_t len, srv_trace_t *out) {
    if (!s) return -EINVAL;
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    /* version "-" trace-id "-" parent-id "-" flags: offsets 0, 3, 36, 53 */
    if (len < SRV_TRACEPARENT_LEN) return -EINVAL;
    if (!lower_hex(s, 2) || (s[0] == 'f' && s[1] == 'f')) return -EINVAL;
    int v00 = s[0] == '0' && s[1] == '0';
    if (v00 ? len != SRV_TRACEPARENT_LEN : len > SRV_TRACEPARENT_LEN && s[SRV_TRACEPARENT_LEN] != '-')
        return -EINVAL;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return -EINVAL;
    const char *trace = s + 3, *parent = s + 36, *flags = s + 53;
    if (!lower_hex(trace, SRV_TRACE_ID_HEX) || all_zeros(trace, SRV_TRACE_ID_HEX)) return -EINVAL;
    if (!lower_hex(parent, SRV_SPAN_ID_HEX) || all_zeros(parent, SRV_SPAN_ID_HEX)) return -EINVAL;
    if (!lower_hex(flags, 2)) return -EINVAL;
    memcpy(out->trace_id, trace, SRV_TRACE_ID_HEX);
    out->trace_id[SRV_TRACE_ID_HEX] = 0;
    memcpy(out->parent_id, parent, SRV_SPAN_ID_HEX);
    out->parent_id[SRV_SPAN_ID_HEX] = 0;
    out->flags = (uint8_t)(hexval(flags[0]) << 4 | hexval(flags[1]));
    do srv_random_hex(out->span_id, SRV_SPAN_ID_HEX / 2);
    while (all_zeros(out->span_id, SRV_SPAN_ID_HEX) || !strcmp(out->span_id, out->parent_id));
    return 0;
}

void srv_traceparent_format(const srv_trace_t *t, char out[SRV_TRACEPARENT_LEN + 1]) {
    snprintf(out, SRV_TRACEPARENT_LEN + 1, "00-%.32s-%.16s-%02x", t->trace_id, t->span_id, t->flags);
}
