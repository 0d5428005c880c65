/* fuzz_safetensors.c - libFuzzer harness: the safetensors parser on arbitrary bytes.
 * Whatever it accepts must be self-consistent: every tensor's floats readable. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private, 8-aligned copy, as an mmap would be. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    wts_file_t *f;
    char err[512];
    if (wts_open_buffer(&f, copy, size, "fuzz.safetensors", err, sizeof err) == 0) {
        volatile float sink = 0;
        for (size_t i = 0; i < wts_count(f); i++) {
            const wts_tensor_t *t = wts_at(f, i);
            assert(wts_find(f, t->name) != NULL);
            for (size_t j = 0; j < t->count; j++) sink += t->data[j];
        }
        (void)sink;
        wts_close(f);
    } else {
        assert(strstr(err, "fuzz.safetensors") != NULL); /* every error names the file */
    }
    free(copy);
    return 0;
}
