/* util.h - helpers shared by the files of model/ (internal; not part of the library's API). */
#ifndef GRU_UTIL_H
#define GRU_UTIL_H

#include <stddef.h>

/* Formats a message into err[0..errlen) (when err is not NULL) and returns code, so that an
 * error path reads `return gru__errorf(err, errlen, -EPROTO, "%s: ...", path);`. */
int gru__errorf(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* GRU_UTIL_H */
