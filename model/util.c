/* util.c - helpers shared by the files of model/. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

int gru__errorf(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
