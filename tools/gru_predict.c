/* gru_predict.c - classify texts from stdin, one per line, with a model directory.
 *
 * Prints one JSON result object per input line (JSON Lines), in input order; a line that
 * cannot be classified (invalid UTF-8, empty) prints {"error": {...}, "line": N} instead and
 * the exit status is then 1. A bad flag or model directory exits 2 with a message.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "gru.h"
#include "tool_options.h"
#include "tok.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gru-predict --model DIR [--gates none|summary|full] [--trajectory] [--batch N]\n"
            "\n"
            "Reads texts from stdin, one per line, and prints one JSON result per line.\n"
            "  -m, --model DIR     model directory (config.json, model.safetensors, vocab.txt)\n"
            "  -g, --gates MODE    per-token gate activations: none (default), summary, full\n"
            "  -t, --trajectory    add the label probabilities after each token\n"
            "  -b, --batch N       texts per batched forward pass (default 32, 1..4096)\n"
            "  -h, --help          this text\n");
}

typedef struct {
    char *text;
    size_t len;
    size_t line;
    tok_seq_t seq;
    const char *error; /* static error code, or NULL */
    char message[128];
} item_t;

/* Classifies items[0..n) and prints their results. Returns the number of failed items, or a
 * negative errno when the engine itself fails. */
static int run_batch(gru_ctx_t *ctx, const gru_model_t *m, item_t *items, size_t n, gru_gates_mode_t mode,
                     int trajectory) {
    const gru_config_t *c = gru_model_config(m);
    const tok_vocab_t *v = gru_model_vocab(m);
    gru_input_t *in = calloc(n, sizeof *in);
    gru_output_t *out = calloc(n, sizeof *out);
    float *probs = calloc(n * (size_t)c->num_labels, sizeof(float));
    size_t *map = calloc(n, sizeof *map), k = 0;
    int failed = 0, rc = 0;
    if (!in || !out || !probs || !map) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        int trc = tok_encode(&c->tokenizer, v, it->text, it->len, &it->seq);
        if (trc == -EILSEQ) {
            it->error = "invalid_utf8";
            snprintf(it->message, sizeof it->message, "invalid UTF-8 at byte %zu", it->seq.error_offset);
            continue;
        } else if (trc < 0) {
            rc = trc;
            goto done;
        }
        if (it->seq.n == 0) {
            it->error = "empty_text";
            snprintf(it->message, sizeof it->message, "the text has no tokens");
            continue;
        }
        in[k] = (gru_input_t){it->seq.ids, it->seq.n};
        out[k].probs = probs + k * (size_t)c->num_labels;
        if (mode != GRU_GATES_NONE && !(out[k].gates = malloc(gru_gates_floats(c, mode, it->seq.n) * sizeof(float)))) {
            rc = -ENOMEM;
            goto done;
        }
        if (trajectory && !c->bidirectional &&
            !(out[k].trajectory = malloc(it->seq.n * (size_t)c->num_labels * sizeof(float)))) {
            rc = -ENOMEM;
            goto done;
        }
        map[i] = k++;
    }
    if ((rc = gru_forward_batch(ctx, in, out, k, mode)) < 0) goto done;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        char *line = NULL;
        size_t len = 0;
        if (it->error) {
            json_t *j = api_error_to_json(it->error, it->message);
            if (j) json_object_set_new(j, "line", json_integer((json_int_t)it->line));
            if (j && (line = json_dumps(j, API_DUMP_FLAGS))) len = strlen(line);
            json_decref(j);
            failed++;
        } else { /* the server's writer: the same bytes as POST /v1/sentiment's answer */
            gru_output_t *o = &out[map[i]];
            api_result_t r = {c, &it->seq, o->probs, mode, o->gates, o->trajectory, 0, gru_model_version(m)};
            line = api_sentiment_body(&r, 1, 1, &len);
        }
        if (!line) {
            rc = -ENOMEM;
            goto done;
        }
        fwrite(line, 1, len, stdout);
        free(line);
        fputc('\n', stdout);
    }
    rc = failed;
done:
    for (size_t i = 0; out && i < k; i++) {
        free(out[i].gates);
        free(out[i].trajectory);
    }
    free(in);
    free(out);
    free(probs);
    free(map);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"gates", required_argument, NULL, 'g'},
        {"trajectory", no_argument, NULL, 't'},   {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *model_dir = NULL;
    gru_gates_mode_t mode = GRU_GATES_NONE;
    int trajectory = 0;
    long batch = 32;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:g:tb:h", opts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'g':
            if (gru_gates_mode_parse(optarg, &mode) < 0) {
                fprintf(stderr, "gru-predict: --gates must be none, summary or full, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 't': trajectory = 1; break;
        case 'b':
            errno = 0;
            batch = strtol(optarg, &end, 10);
            if (errno || *end || batch < 1 || batch > 4096) {
                fprintf(stderr, "gru-predict: --batch must be an integer from 1 to 4096, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gru-predict: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!model_dir) {
        fprintf(stderr, "gru-predict: --model DIR is required\n");
        usage(stderr);
        return 2;
    }
    json_object_seed(0);
    char err[1024];
    gru_model_t *m;
    const gru_load_options_t load = tool_load_options();
    if (gru_model_load(&m, model_dir, &load, err, sizeof err) < 0) {
        fprintf(stderr, "gru-predict: %s\n", err);
        return 2;
    }
    gru_ctx_t *ctx;
    item_t *items = calloc((size_t)batch, sizeof *items);
    if (gru_ctx_new(&ctx, m) < 0 || !items) {
        fprintf(stderr, "gru-predict: out of memory\n");
        return 2;
    }
    for (long i = 0; i < batch; i++) tok_seq_init(&items[i].seq);
    int status = 0;
    size_t n = 0, line_no = 0;
    for (;;) {
        item_t *it = &items[n];
        size_t cap = 0;
        free(it->text);
        it->text = NULL;
        ssize_t got = getline(&it->text, &cap, stdin);
        if (got >= 0) {
            it->len = (size_t)got;
            if (it->len && it->text[it->len - 1] == '\n') it->len--;
            if (it->len && it->text[it->len - 1] == '\r') it->len--;
            it->line = ++line_no;
            it->error = NULL;
            n++;
        }
        if (n == (size_t)batch || (got < 0 && n > 0)) {
            int rc = run_batch(ctx, m, items, n, mode, trajectory);
            if (rc < 0) {
                fprintf(stderr, "gru-predict: %s\n", strerror(-rc));
                status = 2;
                break;
            }
            if (rc > 0) status = 1;
            n = 0;
        }
        if (got < 0) break;
    }
    fflush(stdout);
    for (long i = 0; i < batch; i++) {
        free(items[i].text);
        tok_seq_deinit(&items[i].seq);
    }
    free(items);
    gru_ctx_free(ctx);
    gru_model_free(m);
    return status;
}
