/* page.c - the embedded web page (see page.h; the bytes come from page_html.h, generated from
 * web/index.html by web/embed.cmake). */
#include "page.h"

#include <string.h>

#include "page_html.h"

_Static_assert(sizeof srv_page_html == SRV_PAGE_LEN, "page_html.h is inconsistent");

const unsigned char *srv_page_get(size_t *len) {
    *len = sizeof srv_page_html;
    return srv_page_html;
}

const char *srv_page_csp(void) { return SRV_PAGE_CSP; }

const char *srv_page_etag(void) { return SRV_PAGE_ETAG; }

int srv_page_not_modified(const char *inm) {
    if (!inm) return 0;
    while (*inm == ' ' || *inm == '\t') inm++;
    if (inm[0] == '*' && (inm[1] == 0 || inm[1] == ' ' || inm[1] == ',')) return 1;
    /* A list of (possibly weak) entity tags: weak comparison, as RFC 9110 asks for GET. */
    return strstr(inm, SRV_PAGE_ETAG) != NULL;
}
