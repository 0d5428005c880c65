/* srv_util.h - the small helpers every file of server/ uses (gru-serve and the batch queue):
 * the monotonic clock, the assertion that aborts and the error-message formatter. No other state.
 */
#ifndef SRV_UTIL_H
#define SRV_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* An invariant of the program (not a check of input): on failure, print where and abort. */
#define SRV_ASSERT(x)                                                                   \
    do {                                                                                \
        if (!(x)) srv_panic(__FILE__, __LINE__, #x);                                    \
    } while (0)
/* The calling thread is `owner` (a uv_thread_t). */
#define SRV_ASSERT_THREAD(owner)                                                        \
    do {                                                                                \
        uv_thread_t self_ = uv_thread_self();                                           \
        SRV_ASSERT(uv_thread_equal(&self_, &(owner)));                                  \
    } while (0)

uint64_t srv_now_ns(void); /* CLOCK_MONOTONIC in nanoseconds; any thread */
_Noreturn void srv_panic(const char *file, int line, const char *what);
/* Formats a message into err[0..errlen) (when err is not NULL) and returns code, so that an
 * error path reads `return srv_errorf(err, errlen, -EINVAL, "%s: ...", path);`. */
int srv_errorf(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* SRV_UTIL_H */
