/* gru_tokenize.c - command-line front end of the C tokenizer (model/tok.h).
 *
 *     gru-tokenize [--kind word|char] [--no-lowercase] [--vocab FILE] [--offsets] < lines
 *
 * Reads stdin line by line (LF ends a line; a final line without LF counts) and prints, for each
 * line, its tokens separated by one space, or with --vocab their ids; --offsets appends each
 * token's code point span in the line as @start:end. A line that is not valid
 * UTF-8 prints "ERROR <byte offset>". No truncation: every token is printed. The output is the
 * same as that of `python3 tools/gru_tokenizer.py` with the same options (tests/tok_agree.py).
 * Exit status: 0, 1 on a runtime error (vocab, memory, output), 2 on bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

static void usage(FILE *f) {
    fputs("usage: gru-tokenize [--kind word|char] [--no-lowercase] [--vocab FILE] [--offsets]\n"
          "Reads stdin lines, prints each line's tokens (or ids with --vocab) space-separated,\n"
          "with --offsets each followed by @start:end (code points of the line);\n"
          "a line that is not valid UTF-8 prints ERROR <byte offset>.\n",
          f);
}

/* Prints the tokens (or ids) of seq as one line. */
static void print_seq(const tok_seq_t *seq, int ids, int offsets) {
    for (size_t i = 0; i < seq->n; i++) {
        if (i) putchar(' ');
        if (ids) printf("%d", (int)seq->ids[i]);
        else fputs(tok_seq_token(seq, i), stdout);
        if (offsets) printf("@%u:%u", (unsigned)seq->offsets[2 * i], (unsigned)seq->offsets[2 * i + 1]);
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    tok_config_t cfg = {TOK_KIND_WORD, 1, SIZE_MAX};
    const char *vocab_path = NULL;
    int offsets = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
            const char *k = argv[++i];
            if (strcmp(k, "word") == 0) cfg.kind = TOK_KIND_WORD;
            else if (strcmp(k, "char") == 0) cfg.kind = TOK_KIND_CHAR;
            else {
                fprintf(stderr, "gru-tokenize: unknown kind '%s'\n", k);
                return 2;
            }
        } else if (strcmp(argv[i], "--offsets") == 0) {
            offsets = 1;
        } else if (strcmp(argv[i], "--no-lowercase") == 0) {
            cfg.lowercase = 0;
        } else if (strcmp(argv[i], "--vocab") == 0 && i + 1 < argc) {
            vocab_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    tok_vocab_t *vocab = NULL;
    if (vocab_path) {
        char err[512];
        if (tok_vocab_load(&vocab, vocab_path, err, sizeof err) < 0) {
            fprintf(stderr, "gru-tokenize: %s\n", err);
            return 1;
        }
    }

    tok_seq_t seq;
    tok_seq_init(&seq);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    int status = 0;
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        int rc = tok_encode(&cfg, vocab, line, len, &seq);
        if (rc == -EILSEQ) {
            printf("ERROR %zu\n", seq.error_offset);
        } else if (rc < 0) {
            fprintf(stderr, "gru-tokenize: %s\n", strerror(-rc));
            status = 1;
            break;
        } else {
            print_seq(&seq, vocab != NULL, offsets);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "gru-tokenize: write error\n");
        status = 1;
    }
    free(line);
    tok_seq_deinit(&seq);
    tok_vocab_free(vocab);
    return status;
}
