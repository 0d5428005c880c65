/* tok.h - UTF-8 tokenizers (English words, Chinese characters) and the vocabulary.
 *
 * The rules are specified in docs/tokenizer.md; tools/gru_tokenizer.py implements the same
 * rules for training. No HTTP, JSON or threads here. All functions are reentrant: a vocab is
 * read-only after tok_vocab_load() and may be shared by any number of threads.
 *
 * Usage:
 *     tok_vocab_t *v; char err[256];
 *     if (tok_vocab_load(&v, "models/sst2-en/vocab.txt", err, sizeof err) < 0) ...;
 *     tok_config_t cfg = { TOK_KIND_WORD, 1, 256 };
 *     tok_seq_t seq; tok_seq_init(&seq);
 *     if (tok_encode(&cfg, v, text, strlen(text), &seq) == 0)
 *         for (size_t i = 0; i < seq.n; i++) printf("%s=%d\n", tok_seq_token(&seq, i), seq.ids[i]);
 *     tok_seq_deinit(&seq); tok_vocab_free(v);
 */
#ifndef TOK_H
#define TOK_H

#include <stddef.h>
#include <stdint.h>

/* ---- constants ---- */
#define TOK_ID_PAD 0
#define TOK_ID_UNK 1
#define TOK_MAX_TOKEN_BYTES 1024 /* longer tokens are cut to this many bytes (on a UTF-8 boundary) */

/* ---- types ---- */
typedef enum { TOK_KIND_WORD = 0, TOK_KIND_CHAR = 1 } tok_kind_t;

typedef struct {
    tok_kind_t kind;
    int lowercase;     /* 1: ASCII and Latin-1 upper case to lower case */
    size_t max_tokens; /* tokens past this are dropped and the result is marked truncated */
} tok_config_t;

typedef struct tok_vocab tok_vocab_t; /* opaque; read-only after load */

/* The tokens of one text. Caller-owned storage, reusable across calls (tok_encode grows it).
 * Public, read-only after tok_encode: n, n_total, truncated, ids, offsets, error_offset.
 * Private: the rest.
 *
 * offsets: token i came from the code points [offsets[2i], offsets[2i+1]) of the original text
 * (Unicode code points, not bytes: Python's str indices; in JavaScript, indices into
 * Array.from(text)). They cover what the token was read from before normalization: "Don't"
 * gives "do" [0, 2) and "n't" [2, 5); a full-width "ＧＯＯＤ" gives "good" [0, 4); "…" gives
 * "..." [i, i+1); a run "....." gives one "..." over all five; a token cut to
 * TOK_MAX_TOKEN_BYTES keeps the span of the whole word. Tokens are in text order and do not
 * overlap, except that two tokens made from one typographic character share it (’” reads
 * ''' : '' [i, i+2) and ' [i+1, i+2)). Spaces and dropped characters (soft hyphen, zero-width
 * ones) lie outside every span unless inside a word. */
typedef struct {
    size_t n;            /* tokens kept, <= max_tokens */
    size_t n_total;      /* tokens in the whole text, before truncation */
    int truncated;       /* n_total > n */
    int32_t *ids;        /* (n) vocabulary ids; TOK_ID_UNK when a token is not in the vocab */
    uint32_t *offsets;   /* (n, 2) [start, end) of each token in code points of the text */
    size_t error_offset; /* after -EILSEQ: byte offset of the invalid UTF-8 sequence */
    /* private */
    uint32_t *_offs;     /* (n) offsets of each token's NUL-terminated string in _buf */
    char *_buf;
    size_t _cap, _buf_len, _buf_cap;
} tok_seq_t;

/* ---- prototypes ---- */

/* Loads vocab.txt: one token per line, line i is id i; line 0 must be "<pad>" and line 1
 * "<unk>". Empty lines, duplicate tokens, invalid UTF-8 and a missing final line are errors.
 * Returns 0 and a new vocab in *out (free with tok_vocab_free), or a negative errno with a
 * message naming the file and line in err. */
int tok_vocab_load(tok_vocab_t **out, const char *path, char *err, size_t errlen);
void tok_vocab_free(tok_vocab_t *v); /* accepts NULL */
size_t tok_vocab_size(const tok_vocab_t *v);
/* Borrowed string of id (valid while v lives), or NULL when id is out of range. */
const char *tok_vocab_token(const tok_vocab_t *v, int32_t id);
/* Id of the token s[0..len), or -1 when it is not in the vocabulary. */
int32_t tok_vocab_lookup(const tok_vocab_t *v, const char *s, size_t len);

void tok_seq_init(tok_seq_t *seq);
void tok_seq_deinit(tok_seq_t *seq); /* frees the storage; seq may be re-initialized */

/* Tokenizes text[0..len) (need not be NUL-terminated; may contain NUL bytes, which are Space)
 * into seq, replacing what it held. vocab may be NULL: then ids are all TOK_ID_UNK and only the
 * token strings are meaningful (used by tests and tools).
 * Returns 0; -EILSEQ for invalid UTF-8 (seq->error_offset says where; seq is then empty);
 * -ENOMEM; -EINVAL for bad arguments. */
int tok_encode(const tok_config_t *cfg, const tok_vocab_t *vocab, const char *text, size_t len,
               tok_seq_t *seq);

/* Borrowed NUL-terminated UTF-8 string of token i < seq->n (valid until the next tok_encode or
 * tok_seq_deinit on seq). */
const char *tok_seq_token(const tok_seq_t *seq, size_t i);

#endif /* TOK_H */
