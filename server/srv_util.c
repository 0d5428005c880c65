/* srv_util.c - the clock, the assertion and the error formatter of server/ (srv_util.h). */
#include "srv_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t srv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

_Noreturn void srv_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "gru-serve: %s:%d: assertion failed: %s\n", file, line, what);
    abort();
}

int srv_errorf(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
