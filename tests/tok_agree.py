#!/usr/bin/python3
"""tok_agree.py - the C tokenizer (gru-tokenize) and tools/gru_tokenizer.py must agree exactly.

    tok_agree.py --tokenize BUILD/tools/gru-tokenize --data ../shared/data [-v]

Checks, each over every row of the train and dev files:
  (a) agreement, byte for byte, between `gru-tokenize` and the Python reference: sst2 in the
      word kind (lower-cased and not) and the char kind; every Chinese set in the char kind and
      the word kind; plus a fixed pseudo-random set of tricky lines (typographic punctuation,
      full-width, Latin-1 capitals, CJK, emoji, NUL bytes, overlong tokens, invalid UTF-8, where
      the "ERROR <offset>" lines must agree too);
  (b) round trip: each SST-2 dev row is detokenized into natural text ("it 's" -> "it's",
      `` -> ", " , " -> ", ...), tokenized again by the C tokenizer, and must give back its
      tokens for at least ROUNDTRIP_MIN of the rows;
  (c) without the data directory the test prints "SKIP: ..." and exits with 77.
Exit status: 0 pass, 1 fail, 77 skip. Standard library only.
"""

import argparse
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import gru_tokenizer  # noqa: E402

SKIP = 77
ROUNDTRIP_MIN = 0.998  # measured 0.9985 (3343 of 3348 rows) with the tokenizer of 2026-11-29
ENGLISH = ["sst2"]
CHINESE = ["waimai_10k", "weibo2018", "online_shopping_10_cats", "chnsenticorp_htl"]


def read_texts(path):
    """The text column of a label<TAB>text file, as bytes."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    out = []
    for line in lines[1:]:
        if line:
            out.append(line.split(b"\t", 1)[1])
    return out


def run_c(exe, texts, kind, lowercase):
    """Output lines of gru-tokenize for texts (bytes without LF), one per text."""
    args = [exe, "--kind", kind] + ([] if lowercase else ["--no-lowercase"])
    inp = b"".join(t + b"\n" for t in texts)
    res = subprocess.run(args, input=inp, stdout=subprocess.PIPE, check=True)
    out = res.stdout.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    if len(out) != len(texts):
        raise RuntimeError(f"gru-tokenize printed {len(out)} lines for {len(texts)} texts")
    return out


def run_py(text, kind, lowercase):
    try:
        return " ".join(gru_tokenizer.tokenize_bytes(text, kind, lowercase)).encode("utf-8")
    except ValueError as e:
        return f"ERROR {e.offset}".encode()


def compare(name, exe, texts, kind, lowercase, verbose):
    """Counts rows where C and Python differ; prints the first few. Returns the count."""
    c_out = run_c(exe, texts, kind, lowercase)
    bad = 0
    for text, got in zip(texts, c_out):
        want = run_py(text, kind, lowercase)
        if got != want:
            bad += 1
            if bad <= 5:
                print(f"  DIFF {name}: {text[:200]!r}\n    C:  {got[:300]!r}\n    Py: {want[:300]!r}")
    mode = kind + ("" if lowercase else ",no-lowercase")
    print(f"agree {name} [{mode}]: {len(texts) - bad}/{len(texts)}")
    return bad


# ---------------------------------------------------------------------------------------------
# Tricky synthetic lines

_PIECES = (list("abcXYZ019 ..--**''``\"(),;:/&!?<[{$%#@") +
           ["n't", "'s", "'re", "'ll", "'m", "'d", "'ve", "cannot", "Gonna", "mr", "e.t", "al",
            "'70s", "'em", "'n'", "'til", "2,500", "1.8", "I", "A", "x", "etc", " ", " ", " ",
            "\t", "\x00", "\x7f", "É", "Ä", "Þ", "ß", "×", "÷", "é", "ª", "µ", "¿", "\u00a0",
            "\u00ad", "\u200b", "\u200d", "\ufe0f", "\ufeff", "\u3000", "\u2009", "Ａ", "ｚ",
            "＇", "＂", "！", "０", "\u2018", "\u2019", "\u201c", "\u201d", "\u201e", "\u2032",
            "\u2033", "\u2013", "\u2014", "\u2026", "\u2022", "中", "文", "ア", "한", "𠀀", "😀",
            "👍", "\U0001F3FB", "\ue000", "\uffff", "\U0010ffff", "Ж", "ж", "ǅ", "、", "。", "「",
            "・"])
_BAD = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf",
        b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\x80", b"\xbf", b"\xe4\xb8", b"\xf0\x9f\x98",
        b"\xff", b"\xfe"]


def synthetic_lines(n=30000, seed=20261129):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        parts = [rng.choice(_PIECES).encode("utf-8") for _ in range(rng.randint(0, 24))]
        if i % 10 == 0:
            parts.insert(rng.randint(0, len(parts)), rng.choice(_BAD))
        lines.append(b"".join(parts))
    # Tokens longer than TOK_MAX_TOKEN_BYTES, cut on a code point boundary.
    lines += ["é" * 700, "a" + "é" * 700 + "'s", "*" * 3000, "x" * 1023 + "中文" + "ü" * 600,
              "z" * 1023 + "é" + "y", "word " * 10 + "😀" * 300, "'" * 2001 + "a", "`" * 999]
    return [ln.encode("utf-8") if isinstance(ln, str) else ln for ln in lines]


# ---------------------------------------------------------------------------------------------
# Round trip: PTB tokens back to natural text

_ATTACH_PREV = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "...", "''", "'", "n't", "'s",
                "'re", "'ve", "'ll", "'d", "'m"}
_ATTACH_NEXT = {"(", "[", "{", "$", "``", "`", "#"}
_SPELL = {"``": '"', "''": '"', "`": "'"}


def detokenize(tokens):
    """Joins PTB tokens into natural text: clitics and closing punctuation attach to the previous
    word, opening brackets and quotes to the next, `` and '' become ", -- joins both sides."""
    out = []
    glue_next = True  # no space before the next token
    for tok in tokens:
        glue = glue_next or tok in _ATTACH_PREV or tok == "--"
        if not glue:
            out.append(" ")
        out.append(_SPELL.get(tok, tok))
        glue_next = tok in _ATTACH_NEXT or tok == "--"
    return "".join(out)


def roundtrip(exe, texts, verbose):
    natural = [detokenize(t.decode("utf-8").split(" ")).encode("utf-8") for t in texts]
    c_out = run_c(exe, natural, "word", True)
    ok = 0
    shown = 0
    for text, nat, got in zip(texts, natural, c_out):
        if got == text:
            ok += 1
        elif verbose and shown < 40:
            shown += 1
            print(f"  RT {nat.decode()!r}\n     want {text.decode()!r}\n     got  {got.decode()!r}")
    # The detokenized texts must agree between C and Python, too.
    bad = sum(got != run_py(nat, "word", True) for nat, got in zip(natural, c_out))
    rate = ok / len(texts)
    print(f"round trip sst2/dev: {ok}/{len(texts)} = {rate:.4f} (bar {ROUNDTRIP_MIN}); "
          f"C/Python disagree on {bad} detokenized rows")
    return rate, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenize", required=True, help="path of the gru-tokenize executable")
    ap.add_argument("--data", required=True, help="the shared data directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="show round-trip failures")
    args = ap.parse_args()

    if not os.path.isdir(os.path.join(args.data, "sst2")):
        print(f"SKIP: data directory {args.data} (with sst2/) is absent")
        return SKIP
    if not os.access(args.tokenize, os.X_OK):
        print(f"FAIL: {args.tokenize} is not an executable")
        return 1

    failures = 0
    failures += compare("synthetic", args.tokenize, synthetic_lines(), "word", True, args.verbose)
    failures += compare("synthetic", args.tokenize, synthetic_lines(), "char", True, args.verbose)
    failures += compare("synthetic", args.tokenize, synthetic_lines(), "word", False, args.verbose)
    for name in ENGLISH + CHINESE:
        for split in ("dev", "train"):
            path = os.path.join(args.data, name, split + ".tsv")
            if not os.path.exists(path):
                print(f"FAIL: {path} is missing")
                failures += 1
                continue
            texts = read_texts(path)
            label = f"{name}/{split}"
            if name in ENGLISH:
                failures += compare(label, args.tokenize, texts, "word", True, args.verbose)
                failures += compare(label, args.tokenize, texts, "word", False, args.verbose)
                failures += compare(label, args.tokenize, texts, "char", True, args.verbose)
            else:
                failures += compare(label, args.tokenize, texts, "char", True, args.verbose)
                failures += compare(label, args.tokenize, texts, "word", True, args.verbose)

    rate, bad = roundtrip(args.tokenize, read_texts(os.path.join(args.data, "sst2", "dev.tsv")),
                          args.verbose)
    failures += bad
    if rate < ROUNDTRIP_MIN:
        print(f"FAIL: round-trip rate {rate:.4f} is below {ROUNDTRIP_MIN}")
        failures += 1
    print("PASS" if failures == 0 else f"FAIL: {failures} disagreements or failures")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
