/* fuzz_tok.c - libFuzzer harness: both tokenizers on arbitrary bytes.
 *
 * The first byte picks the kind, lower-casing and max_tokens; the rest is the text. Checks the
 * invariants the spec promises: ids in range, token strings valid UTF-8 without Space, n <= max,
 * n_total >= n, an -EILSEQ offset inside the text, and code point offsets that are non-empty, in
 * order and inside the text. The language guess (lang.h) reads the same bytes: at most one
 * letter per byte, and a language only for a strict majority. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang.h"
#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tok_vocab_t *vocab;

static void load_vocab(void) {
    char path[] = "/tmp/fuzz_tok_vocab_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) abort();
    fputs("<pad>\n<unk>\nthe\n's\nn't\n...\n点\n!\nok\n", f);
    fclose(f);
    char err[256];
    if (tok_vocab_load(&vocab, path, err, sizeof err) < 0) abort();
    remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vocab) load_vocab();
    if (size < 1) return 0;
    tok_config_t cfg = {(data[0] & 1) ? TOK_KIND_CHAR : TOK_KIND_WORD, (data[0] >> 1) & 1,
                        (size_t)1 + (data[0] >> 2)};
    tok_seq_t seq;
    tok_seq_init(&seq);
    int rc = tok_encode(&cfg, vocab, (const char *)data + 1, size - 1, &seq);
    if (rc == -EILSEQ) {
        assert(seq.error_offset < size - 1);
        assert(seq.n == 0);
    } else {
        assert(rc == 0);
        assert(seq.n <= cfg.max_tokens && seq.n_total >= seq.n && seq.truncated == (seq.n_total > seq.n));
        size_t ncp = 0; /* code points of the text: bytes that are not continuation bytes */
        for (size_t b = 1; b < size; b++) ncp += (data[b] & 0xC0) != 0x80;
        for (size_t i = 0; i < seq.n; i++) {
            uint32_t s = seq.offsets[2 * i], e = seq.offsets[2 * i + 1];
            assert(s < e && e <= ncp);
            assert(i == 0 || (seq.offsets[2 * i - 2] <= s && seq.offsets[2 * i - 1] <= e && seq.offsets[2 * i - 1] <= s + 1));
            assert(seq.ids[i] >= 0 && (size_t)seq.ids[i] < tok_vocab_size(vocab));
            const char *t = tok_seq_token(&seq, i);
            size_t len = strlen(t);
            assert(len > 0 && len <= TOK_MAX_TOKEN_BYTES);
            assert(!strchr(t, ' ') && !strchr(t, '\n'));
            /* A token is itself valid text that tokenizes to something. */
            tok_seq_t again;
            tok_seq_init(&again);
            assert(tok_encode(&cfg, NULL, t, len, &again) == 0);
            tok_seq_deinit(&again);
        }
    }
    tok_seq_deinit(&seq);
    lang_counts_t c;
    lang_count((const char *)data + 1, size - 1, &c);
    assert(c.han + c.latin + c.kana + c.hangul + c.other <= size - 1);
    const char *lang = lang_detect((const char *)data + 1, size - 1);
    if (lang) { /* the winner has strictly more letters than every other script */
        const size_t n[4] = {c.han, c.latin, c.kana, c.hangul};
        static const char *const names[4] = {"zh", "en", "ja", "ko"};
        int w = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(lang, names[k])) w = k;
        assert(w >= 0 && n[w] > c.other);
        for (int k = 0; k < 4; k++) assert(k == w || n[k] < n[w]);
    }
    return 0;
}
