/* srv_util.c - the clock and the assertion of server/ (srv_util.h). */
#include "srv_util.h"

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
