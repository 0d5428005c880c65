/* page.h - the web page at GET / and GET /index.html: web/index.html (HTML, CSS and JS in one
 * file), embedded in gru-serve at build time by web/embed.cmake. It uses only the public API.
 */
#ifndef SRV_PAGE_H
#define SRV_PAGE_H

#include <stddef.h>

/* ---- constants ---- */
#define SRV_PAGE_CONTENT_TYPE "text/html; charset=utf-8"
/* Revalidate every time (cheap: ETag -> 304), so a new binary's page is seen at once. */
#define SRV_PAGE_CACHE_CONTROL "no-cache"

/* ---- prototypes ---- */

/* The page's bytes (static, not NUL-terminated) and their count in *len. */
const unsigned char *srv_page_get(size_t *len);
/* The Content-Security-Policy to send with it: default-src 'none', connections to 'self' only,
 * the page's inline script and style allowed by their SHA-256 hashes (static string). */
const char *srv_page_csp(void);
/* The page's strong ETag, quoted (static string). */
const char *srv_page_etag(void);
/* 1 when an If-None-Match header value names the page's ETag (or is "*"): answer 304. */
int srv_page_not_modified(const char *if_none_match);

#endif /* SRV_PAGE_H */
