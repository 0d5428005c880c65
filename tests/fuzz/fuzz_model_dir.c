/* fuzz_model_dir.c - libFuzzer harness: the whole model loader (config.json, vocab.txt,
 * model.safetensors) on arbitrary files.
 *
 * The input is split at the first two occurrences of the separator "\n----\n" into
 * config.json, vocab.txt and model.safetensors, written to a private directory, and loaded.
 * A model that loads must run a forward pass. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gru.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void write_file(const char *name, const uint8_t *p, size_t n) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

static const uint8_t *find_sep(const uint8_t *p, size_t n) {
    static const char sep[] = "\n----\n";
    for (size_t i = 0; i + 6 <= n; i++)
        if (memcmp(p + i, sep, 6) == 0) return p + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        strcpy(dir, "/tmp/fuzz_model_XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    const uint8_t *a = find_sep(data, size);
    if (!a) return 0;
    const uint8_t *b = find_sep(a + 6, size - (size_t)(a + 6 - data));
    if (!b) return 0;
    write_file("config.json", data, (size_t)(a - data));
    write_file("vocab.txt", a + 6, (size_t)(b - a - 6));
    write_file("model.safetensors", b + 6, size - (size_t)(b + 6 - data));
    gru_model_t *m;
    char err[1024];
    if (gru_model_load(&m, dir, NULL, err, sizeof err) == 0) {
        const gru_config_t *c = gru_model_config(m);
        gru_ctx_t *ctx;
        if (gru_ctx_new(&ctx, m) == 0) {
            int32_t ids[3] = {0, 1, c->vocab_size - 1};
            float probs[GRU_MAX_LABELS];
            gru_input_t in = {ids, 3};
            gru_output_t out = {probs, NULL, NULL};
            assert(gru_forward_batch(ctx, &in, &out, 1, GRU_GATES_NONE) == 0);
            gru_ctx_free(ctx);
        }
        gru_model_free(m);
    } else {
        assert(strstr(err, dir) != NULL || strstr(err, "model directory") != NULL); /* names the file */
    }
    return 0;
}
