/* wts.h - read-only access to a safetensors weight file (internal to model/).
 *
 * The file is mmap'ed; the JSON header is parsed with jansson and every tensor is validated
 * before wts_open() returns: dtype F32, F16 or BF16, shape of at most WTS_MAX_DIMS non-negative
 * dims, data_offsets inside the data section and consistent with the shape (4 or 2 bytes per
 * element), no two tensors overlapping. Every tensor reads as float: F32 data is used in place
 * when every F32 tensor of the file is 4-byte aligned (else all F32 tensors are copied to an
 * aligned buffer); F16 (IEEE 754 binary16) and BF16 (the upper 16 bits of an F32) tensors are
 * converted to F32 at open, exactly (every 16-bit value, NaN and infinities included, has an
 * F32 of the same value; a NaN stays a NaN), into that same buffer. Files may mix dtypes.
 */
#ifndef WTS_H
#define WTS_H

#include <stddef.h>
#include <stdint.h>

#define WTS_MAX_DIMS 4
#define WTS_MAX_NAME 128
#define WTS_MAX_HEADER (100u << 20) /* as the safetensors reference implementation */

/* A tensor's dtype as stored in the file. */
typedef enum { WTS_F32, WTS_F16, WTS_BF16 } wts_dtype_t;

typedef struct {
    char name[WTS_MAX_NAME];
    int ndim;
    int64_t shape[WTS_MAX_DIMS];
    size_t count;      /* number of elements (floats in data) */
    wts_dtype_t dtype; /* as stored; data is F32 whatever it is */
    const float *data; /* borrowed from the file or converted; valid until wts_close */
} wts_tensor_t;

/* "F32", "F16" or "BF16" (the safetensors names). */
const char *wts_dtype_name(wts_dtype_t d);

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
 * (they are read back from the file if it is). A hint: it never fails, and does nothing for
 * data that is not the file's own bytes (copied or converted). */
void wts_release(const wts_file_t *f, const wts_tensor_t *t);

#endif /* WTS_H */
