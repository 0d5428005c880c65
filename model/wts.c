/* wts.c - safetensors reader: mmap, parse the JSON header with jansson, validate everything.
 *
 * Layout of a safetensors file: u64 little-endian N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to its start.
 * Accepted dtypes: F32, F16 and BF16 (little-endian, as the format says); F16 and BF16 tensors
 * are converted to F32 at open (f16_to_f32, bf16_to_f32: exact, every value has an F32), so
 * that every tensor's data is a const float * for the engine.
 */
#include "util.h"
#include "wts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

struct wts_file {
    void *map;
    size_t map_len;
    wts_tensor_t *tensors;
    size_t n;
    float *copy; /* converted F16/BF16 tensors, and aligned copies of the F32 ones when any of
                    them is misaligned in the file (NULL when neither happens) */
    int f32_copied; /* the F32 tensors are in copy too (some were misaligned) */
};

static const char *const DTYPE_NAMES[] = {"F32", "F16", "BF16"}; /* by wts_dtype_t */
#define N_DTYPES (sizeof DTYPE_NAMES / sizeof *DTYPE_NAMES)

const char *wts_dtype_name(wts_dtype_t d) { return (unsigned)d < N_DTYPES ? DTYPE_NAMES[d] : "?"; }

/* Bytes per element in the file. */
static size_t dtype_size(wts_dtype_t d) { return d == WTS_F32 ? 4 : 2; }

static float f32_of_bits(uint32_t bits) {
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* IEEE 754 binary16 -> binary32, exactly: sign, 5-bit exponent (bias 15), 10-bit fraction.
 * Normals rebias the exponent (15 -> 127); subnormals (fraction * 2^-24) become F32 normals;
 * +-0 stay signed zeros; exponent 31 is +-inf (fraction 0) or a NaN whose payload is kept in the
 * top fraction bits (so it stays a NaN, quiet bit included). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, frac = h & 0x3ffu;
    if (exp == 0x1f) return f32_of_bits(sign | 0x7f800000u | frac << 13);
    if (exp) return f32_of_bits(sign | (exp + 127 - 15) << 23 | frac << 13);
    if (!frac) return f32_of_bits(sign);
    uint32_t shift = 0; /* normalize: 2^-14 * 0.frac = 2^(-14-shift) * 1.f */
    while (!(frac & 0x400u)) frac <<= 1, shift++;
    return f32_of_bits(sign | (127 - 14 - shift) << 23 | (frac & 0x3ffu) << 13);
}

/* bfloat16 is the upper half of a binary32: exact by construction. */
static float bf16_to_f32(uint16_t h) { return f32_of_bits((uint32_t)h << 16); }

/* Whole pages inside [b, b + len) may leave memory (MADV_DONTNEED on a private read-only map:
 * they are read back from the file if touched again). */
static void drop_pages(const void *p, size_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !len) return;
    uintptr_t b = (uintptr_t)p, e = b + len;
    b = (b + (uintptr_t)page - 1) & ~((uintptr_t)page - 1); /* whole pages inside the range only */
    e &= ~((uintptr_t)page - 1);
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}


void wts_close(wts_file_t *f) {
    if (!f) return;
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->map_len);
    free(f->tensors);
    free(f->copy);
    free(f);
}

size_t wts_count(const wts_file_t *f) { return f->n; }
const wts_tensor_t *wts_at(const wts_file_t *f, size_t i) { return i < f->n ? &f->tensors[i] : NULL; }

const wts_tensor_t *wts_find(const wts_file_t *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

void wts_release(const wts_file_t *f, const wts_tensor_t *t) {
    /* Only data that is the file's own mapped bytes: a copy or a conversion must stay. */
    if (!f->map || !t || !t->count || t->dtype != WTS_F32 || f->f32_copied) return;
    drop_pages(t->data, t->count * sizeof(float));
}

/* A JSON integer in [0, max], or -1. */
static int64_t json_uint(const json_t *v, int64_t max) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return (x < 0 || x > max) ? -1 : (int64_t)x;
}

typedef struct { size_t begin, end, idx; } span_t;

static int span_cmp(const void *a, const void *b) {
    const span_t *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Fills one tensor from its header entry. data_len: size of the data section. */
static int parse_tensor(wts_tensor_t *t, span_t *sp, const char *key, json_t *info, size_t data_len,
                        const char *path, char *err, size_t errlen) {
    if (strlen(key) >= WTS_MAX_NAME)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor name too long: %.40s...", path, key);
    strcpy(t->name, key);
    if (!json_is_object(info))
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: header entry is not an object", path, key);
    const char *dtype = json_string_value(json_object_get(info, "dtype"));
    if (!dtype) return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: missing dtype", path, key);
    size_t di = 0;
    while (di < N_DTYPES && strcmp(dtype, DTYPE_NAMES[di]) != 0) di++;
    if (di == N_DTYPES)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: dtype %.40s, expected F32, F16 or BF16", path,
                           key, dtype);
    t->dtype = (wts_dtype_t)di;
    json_t *shape = json_object_get(info, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > WTS_MAX_DIMS)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: shape must be a list of at most %d ints",
                    path, key, WTS_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        int64_t dim = json_uint(json_array_get(shape, (size_t)d), INT32_MAX);
        if (dim < 0)
            return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: shape[%d] is not a valid size", path, key, d);
        t->shape[d] = dim;
        if (dim && count > SIZE_MAX / 4 / (size_t)dim)
            return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: shape too large", path, key);
        count *= (size_t)dim;
    }
    json_t *offs = json_object_get(info, "data_offsets");
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: data_offsets must be [begin, end]", path, key);
    int64_t b = json_uint(json_array_get(offs, 0), INT64_MAX);
    int64_t e = json_uint(json_array_get(offs, 1), INT64_MAX);
    if (b < 0 || e < 0 || e < b)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: bad data_offsets", path, key);
    if ((uint64_t)e > data_len)
        return gru__errorf(err, errlen, -EPROTO,
                    "%s: tensor %s: data_offsets [%lld, %lld] past the end of the data (%zu bytes; truncated file?)",
                    path, key, (long long)b, (long long)e, data_len);
    const size_t esize = dtype_size(t->dtype);
    if ((uint64_t)(e - b) != count * esize)
        return gru__errorf(err, errlen, -EPROTO, "%s: tensor %s: %lld bytes for a shape of %zu %s values, expected %zu",
                           path, key, (long long)(e - b), count, dtype, count * esize);
    t->count = count;
    sp->begin = (size_t)b;
    sp->end = (size_t)e;
    return 0;
}

/* Parses and validates the len bytes at p into f (whose map fields the caller set). */
static int wts_parse(wts_file_t *f, const unsigned char *p, size_t len, const char *path, char *err, size_t errlen) {
    if (len < 8) return gru__errorf(err, errlen, -EPROTO, "%s: %zu bytes, too short for a safetensors file", path, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    int rc;
    json_t *root = NULL;
    span_t *spans = NULL;
    if (hlen > WTS_MAX_HEADER || hlen > len - 8) {
        rc = gru__errorf(err, errlen, -EPROTO, "%s: header length %llu does not fit in the file (%zu bytes)",
                  path, (unsigned long long)hlen, len);
        goto out;
    }
    json_error_t jerr;
    root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        rc = gru__errorf(err, errlen, -EPROTO, "%s: header is not a JSON object: %s (line %d, column %d)", path,
                  root ? "not an object" : jerr.text, jerr.line, jerr.column);
        goto out;
    }
    size_t data_off = 8 + (size_t)hlen, data_len = len - data_off;
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    spans = calloc(n ? n : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        rc = gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        rc = parse_tensor(&f->tensors[f->n], &spans[f->n], key, val, data_len, path, err, errlen);
        if (rc < 0) goto out;
        spans[f->n].idx = f->n;
        f->n++;
    }
    /* No two tensors may share bytes (empty tensors share nothing). */
    qsort(spans, f->n, sizeof *spans, span_cmp);
    size_t far = 0, far_idx = 0; /* the furthest end so far, and whose it is */
    for (size_t i = 0; i < f->n; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (spans[i].begin < far) {
            rc = gru__errorf(err, errlen, -EPROTO, "%s: tensors %s and %s overlap", path, f->tensors[far_idx].name,
                      f->tensors[spans[i].idx].name);
            goto out;
        }
        far = spans[i].end;
        far_idx = spans[i].idx;
    }
    /* Point the F32 tensors into the bytes, or copy them all when any is misaligned for float;
     * convert the F16 and BF16 ones. Copies and conversions share one buffer. */
    int aligned = 1, any_16 = 0;
    size_t total = 0, total_16 = 0;
    for (size_t i = 0; i < f->n; i++) {
        const wts_tensor_t *t = &f->tensors[spans[i].idx];
        if (t->dtype != WTS_F32) {
            any_16 = 1;
            total_16 += t->count;
            continue;
        }
        if (((uintptr_t)p + data_off + spans[i].begin) % sizeof(float)) aligned = 0;
        total += t->count;
    }
    /* Tensors do not overlap, so the counts sum to at most data_len / 2 elements. */
    total = (aligned ? 0 : total) + total_16;
    f->f32_copied = !aligned;
    float *dst = NULL;
    if (!aligned || any_16) { /* (never NULL: empty tensors point into it too) */
        if (total > SIZE_MAX / sizeof(float) || !(f->copy = malloc((total ? total : 1) * sizeof(float)))) {
            rc = gru__errorf(err, errlen, -ENOMEM, "%s: out of memory (%zu floats)", path, total);
            goto out;
        }
        dst = f->copy;
    }
    for (size_t i = 0; i < f->n; i++) {
        wts_tensor_t *t = &f->tensors[spans[i].idx];
        const unsigned char *src = p + data_off + spans[i].begin;
        if (t->dtype == WTS_F32 && aligned) {
            t->data = (const float *)(const void *)src;
            continue;
        }
        if (t->dtype == WTS_F32) {
            memcpy(dst, src, t->count * sizeof(float));
        } else {
            float (*conv)(uint16_t) = t->dtype == WTS_F16 ? f16_to_f32 : bf16_to_f32;
            for (size_t k = 0; k < t->count; k++)
                dst[k] = conv((uint16_t)(src[2 * k] | src[2 * k + 1] << 8)); /* little-endian */
            if (f->map) drop_pages(src, t->count * 2); /* read once: the copy is what stays */
        }
        t->data = dst;
        dst += t->count;
    }
    rc = 0;
out:
    free(spans);
    json_decref(root);
    return rc;
}

int wts_open_buffer(wts_file_t **out, const void *data, size_t len, const char *name, char *err, size_t errlen) {
    *out = NULL;
    wts_file_t *f = calloc(1, sizeof *f);
    if (!f) return gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", name);
    int rc = wts_parse(f, data, len, name, err, errlen);
    if (rc < 0) {
        wts_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int wts_open(wts_file_t **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gru__errorf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return gru__errorf(err, errlen, e, "%s: %s", path, strerror(-e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gru__errorf(err, errlen, -EINVAL, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return gru__errorf(err, errlen, -EPROTO, "%s: %zu bytes, too short for a safetensors file", path, len);
    }
    wts_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return gru__errorf(err, errlen, -ENOMEM, "%s: out of memory", path);
    }
    f->map_len = len;
    f->map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        int e = -errno;
        wts_close(f);
        return gru__errorf(err, errlen, e, "%s: mmap: %s", path, strerror(-e));
    }
    int rc = wts_parse(f, f->map, len, path, err, errlen);
    if (rc < 0) {
        wts_close(f);
        return rc;
    }
    *out = f;
    return 0;
}
