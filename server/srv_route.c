/* srv_route.c - the route table (srv_routes.def) as data, and matching a path to a row.
 *
 * DESIGN
 * The table is the rows of srv_routes.def, in order. Matching walks them once: a row without a
 * {name} segment is one length check and memcmp; a row with one compares segment by segment.
 * With a dozen rows that is faster than any index and needs none; the first match wins, so an
 * exact path listed before a pattern takes precedence.
 */
#include "srv_route.h"

#include <string.h>

static const srv_route_t table[SRV_ROUTE__COUNT] = {
#define SRV_ROUTE(id, pattern, methods, auth, body, handler) {SRV_ROUTE_##id, pattern, methods, auth, body},
#include "srv_routes.def"
#undef SRV_ROUTE
    {SRV_ROUTE_OTHER, "other", SRV_M_GET | SRV_M_HEAD | SRV_M_POST, 0, 0},
};

const srv_route_t *srv_route_get(srv_route_id_t id) {
    return (unsigned)id < SRV_ROUTE__COUNT ? &table[id] : &table[SRV_ROUTE_OTHER];
}

const char *srv_route_name(srv_route_id_t id) { return srv_route_get(id)->pattern; }

/* Matches path[0..len) against a pattern with {name} segments. Returns 1 (name filled) or 0. */
static int pattern_match(const char *pat, const char *path, size_t len, char *name, size_t cap) {
    const char *p = path, *end = path + len;
    while (*pat) {
        if (strncmp(pat, "{name}", 6) != 0) { /* a literal character */
            if (p == end || *p != *pat) return 0;
            p++, pat++;
            continue;
        }
        const char *seg = p;
        while (p < end && *p != '/') p++;
        size_t n = (size_t)(p - seg);
        if (n == 0 || n >= cap) return 0;
        memcpy(name, seg, n);
        name[n] = 0;
        pat += 6;
        /* KServe: /v2/models/{name}/versions/1[/...] is the model's one version. */
        if ((size_t)(end - p) >= 11 && memcmp(p, "/versions/1", 11) == 0 && (end - p == 11 || p[11] == '/'))
            p += 11;
    }
    return p == end;
}

const srv_route_t *srv_route_match(const char *url, char *name, size_t cap) {
    size_t len = strcspn(url, "?");
    while (len > 1 && url[len - 1] == '/') len--; /* "/v1/models/" is "/v1/models" */
    for (size_t i = 0; i < SRV_ROUTE_OTHER; i++) {
        const char *pat = table[i].pattern;
        if (!strchr(pat, '{')) {
            if (strlen(pat) == len && memcmp(pat, url, len) == 0) return &table[i];
        } else if (pattern_match(pat, url, len, name, cap)) {
            return &table[i];
        }
    }
    return &table[SRV_ROUTE_OTHER];
}

unsigned srv_method_bit(const char *m) {
    if (!strcmp(m, "GET")) return SRV_M_GET;
    if (!strcmp(m, "HEAD")) return SRV_M_HEAD;
    if (!strcmp(m, "POST")) return SRV_M_POST;
    if (!strcmp(m, "OPTIONS")) return SRV_M_OPTIONS;
    return SRV_M_OTHER;
}

const char *srv_route_allow(unsigned methods) {
    if (methods & SRV_M_POST) return "POST, OPTIONS";
    return "GET, HEAD, OPTIONS";
}
