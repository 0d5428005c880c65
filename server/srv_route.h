/* srv_route.h - gru-serve's routes: the ids of the rows of srv_routes.def (the one route table),
 * matching a request path to a row, and what the table says about each route. No HTTP library
 * and no state: any thread.
 */
#ifndef SRV_ROUTE_H
#define SRV_ROUTE_H

#include <stddef.h>

/* ---- constants ---- */

/* HTTP methods as bits (a route's METHODS column; SRV_M_OTHER: a method no route takes). */
enum { SRV_M_GET = 1, SRV_M_HEAD = 2, SRV_M_POST = 4, SRV_M_OPTIONS = 8, SRV_M_OTHER = 0x100 };

/* One id per row of srv_routes.def, in its order, then OTHER: a path no row matches (404). */
typedef enum {
#define SRV_ROUTE(id, pattern, methods, auth, body, handler) SRV_ROUTE_##id,
#include "srv_routes.def"
#undef SRV_ROUTE
    SRV_ROUTE_OTHER,
    SRV_ROUTE__COUNT
} srv_route_id_t;

/* ---- types ---- */

/* A row of the table (the handler is bound by srv_http.c, which has the HTTP side). */
typedef struct {
    srv_route_id_t id;
    const char *pattern; /* also the "route" label of the metrics; "other" for SRV_ROUTE_OTHER */
    unsigned methods;    /* SRV_M_* bits */
    int auth;            /* needs the API key (when one is set) */
    int body;            /* takes a JSON body */
} srv_route_t;

/* ---- prototypes ---- */

/* The route of url (the path; a query after '?' and trailing slashes are ignored). A {name}
 * segment's text is copied to name (cap bytes, NUL-terminated; a longer name does not match).
 * Returns the row, or the SRV_ROUTE_OTHER row; never NULL. */
const srv_route_t *srv_route_match(const char *url, char *name, size_t cap);
const srv_route_t *srv_route_get(srv_route_id_t id); /* any id; out of range: the OTHER row */
const char *srv_route_name(srv_route_id_t id);       /* the metrics label */

unsigned srv_method_bit(const char *method); /* "GET" -> SRV_M_GET; unknown: SRV_M_OTHER */
const char *srv_route_allow(unsigned methods); /* the Allow header for a route's methods */

#endif /* SRV_ROUTE_H */
