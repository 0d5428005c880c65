/* srv_path.c - normalization of the raw request-target for routing (see srv_path.h). */
#include <errno.h>
#include <string.h>

#include "srv_path.h"

static int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_unreserved(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

int srv_path_normalize(const char *raw, char *out, size_t cap, const char **why) {
    static const char hex[] = "0123456789ABCDEF";
    const char *w = NULL;
    int rc = 0;
    size_t o = 0;
    if (cap == 0) return -E2BIG;
    for (const char *p = raw; *p && *p != '?'; p++) {
        char piece[3];
        size_t len = 1;
        piece[0] = *p;
        if (*p == '%') {
            int hi = hex_val(p[1]), lo = hi < 0 ? -1 : hex_val(p[2]);
            if (hi < 0 || lo < 0) {
                w = "a malformed percent-escape in the path";
                rc = -EINVAL;
                break;
            }
            int c = hi * 16 + lo;
            if (c == 0) {
                w = "an encoded NUL (%00) in the path";
                rc = -EINVAL;
                break;
            }
            if (is_unreserved(c)) {
                piece[0] = (char)c;
            } else {
                piece[1] = hex[hi];
                piece[2] = hex[lo];
                len = 3;
            }
            p += 2;
        }
        if (rc == 0 && o + len >= cap) rc = -E2BIG; /* keep scanning: a later %00 is still a 400 */
        if (rc == 0) {
            memcpy(out + o, piece, len);
            o += len;
        }
    }
    out[o] = 0;
    if (why) *why = w;
    return rc;
}
