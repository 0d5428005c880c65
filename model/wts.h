/* wts.h - read-only access to a safetensors weight file (internal to model/).
 *
 * The file is mmap'ed; the JSON header is parsed with jansson and every tensor is validated
 * before wts_open() returns: dtype F32, shape of at most WTS_MAX_DIMS non-negative dims,
 * data_offsets inside the data section and consistent with the shape, no two tensors
 * overlapping. Tensor data is 4-byte aligned in memory (copied when the file is not).
 */
#ifndef WTS_H
#define WTS_H

#include <stddef.h>
#include <stdint.h>

#define WTS_MAX_DIMS 4
#define WTS_MAX_NAME 128
#define WTS_MAX_HEADER (100u << 20) /* as the safetensors reference implementation */

typedef struct {
    char name[WTS_MAX_NAME];
    int ndim;
    int64_t shape[WTS_MAX_DIMS];
    size_t count;      /* number of floats */
    const float *data; /* borrowed from the file; valid until wts_close */
} wts_tensor_t;

typedef struct wts_file wts_file_t;

/* Opens and validates path. Returns 0 and *out, or a negative errno with a message naming the
 * file (and tensor) in err. */
int wts_open(wts_file_t **out, const char *path, char *err, size_t errlen);
void wts_close(wts_file_t *f); /* accepts NULL */

/* The same on bytes in memory (borrowed: they must outlive the result); name is used in error
 * messages. For tests and fuzzing. */
int wts_open_buffer(wts_file_t **out, const void *data, size_t len, const char *name, char *err, size_t errlen);

size_t wts_count(const wts_file_t *f);
const wts_tensor_t *wts_at(const wts_file_t *f, size_t i);
/* The tensor called name, or NULL. */
const wts_tensor_t *wts_find(const wts_file_t *f, const char *name);

/* Tells the kernel that t's data will not be read for a while, so its pages can leave memory
 * (they are read back from the file if it is). A hint: it never fails. */
void wts_release(const wts_file_t *f, const wts_tensor_t *t);

#endif /* WTS_H */
