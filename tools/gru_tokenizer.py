#!/usr/bin/env python3
"""gru_tokenizer.py - the reference tokenizer of docs/tokenizer.md, in pure Python.

The C library (model/tok.c) implements the same rules for the server; tests/tok_agree.py checks
that both give identical tokens on the data sets. Change the spec, this file and tok.c together.

API:
    tokenize(text, kind="word", lowercase=True) -> list[str]      all tokens, no truncation
    tokenize_bytes(b, kind="word", lowercase=True) -> list[str]   strict UTF-8 first
    encode(tokens, vocab_dict, max_tokens) -> (ids, truncated)
    load_vocab(path) -> dict[str, int]                            same checks as tok_vocab_load

Command line: reads stdin lines, prints each line's tokens separated by one space.
    python3 tools/gru_tokenizer.py [--kind word|char] [--no-lowercase]
A line that is not valid UTF-8 prints "ERROR <byte offset>".
"""

import argparse
import sys

TOK_ID_PAD = 0
TOK_ID_UNK = 1
TOK_MAX_TOKEN_BYTES = 1024  # longer tokens are cut to this many bytes, on a UTF-8 boundary

# ---------------------------------------------------------------------------------------------
# Code point classes (spec sections 2 and 3)

_DROPPED = frozenset([0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF] + list(range(0xFE00, 0xFE10)))

_SPACE_RANGES = ((0x0000, 0x0020), (0x007F, 0x00A0), (0x1680, 0x1680), (0x2000, 0x200A),
                 (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000))

_CJK_RANGES = ((0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3400, 0x4DBF),
               (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0x20000, 0x3134F))

_SYMBOL_RANGES = ((0x0021, 0x002F), (0x003A, 0x0040), (0x005B, 0x0060), (0x007B, 0x007E),
                  (0x00A1, 0x00A9), (0x00AB, 0x00B4), (0x00B6, 0x00B9), (0x00BB, 0x00BF),
                  (0x00D7, 0x00D7), (0x00F7, 0x00F7), (0x2010, 0x2BFF), (0x3001, 0x303F),
                  (0xFE10, 0xFE6F), (0xFF5F, 0xFF65), (0xFFE0, 0xFFEE), (0xE000, 0xF8FF),
                  (0x1F000, 0x1FAFF))

# Word kind only: typographic punctuation spelled in ASCII (spec 2.5).
_TYPO = {0x2018: "'", 0x2019: "'", 0x201B: "'", 0x2032: "'",
         0x201C: "``", 0x201E: "``", 0x201D: "''", 0x2033: "''",
         0x2013: "--", 0x2014: "--", 0x2015: "--", 0x2026: "..."}

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr jr sr st vs etc inc co ltd vol bros sept jan feb aug oct nov dec wash mt gen "
    "gov prof rev lt col sgt al".split())
_APOSTROPHE_WORDS = frozenset(["em", "til", "n", "cause", "tis", "twas"])
_CLITIC_CHUNKS = frozenset(["'s", "'re", "'ve", "'ll", "'d", "'m"])
_CLITIC_SUFFIXES = ("'s", "'re", "'ve", "'ll", "'d", "'m")
_SPECIAL_SPLITS = {"cannot": 3, "gonna": 3, "wanna": 3, "gotta": 3}  # word -> stem length
_OPENERS = frozenset(map(ord, "([{<`"))
_DQ_OPENERS = frozenset(map(ord, "([{<"))


def _in(c, ranges):
    for lo, hi in ranges:
        if lo <= c <= hi:
            return True
    return False


_SPACE, _CJK, _SYMBOL, _ALNUM = 0, 1, 2, 3
_class_memo = {}


def char_class(c):
    """_SPACE, _CJK, _SYMBOL or _ALNUM (Alnum: none of the others) of a normalized code point."""
    k = _class_memo.get(c)
    if k is None:
        if _in(c, _SPACE_RANGES):
            k = _SPACE
        elif _in(c, _CJK_RANGES):
            k = _CJK
        elif _in(c, _SYMBOL_RANGES):
            k = _SYMBOL
        else:
            k = _ALNUM
        _class_memo[c] = k
    return k


def is_space(c):
    return char_class(c) == _SPACE


def is_cjk(c):
    return char_class(c) == _CJK


def is_symbol(c):
    return char_class(c) == _SYMBOL


def is_alnum(c):
    return char_class(c) == _ALNUM


def _is_digit(c):
    return 0x30 <= c <= 0x39


def _ascii_lower(s):
    return "".join(chr(ord(ch) + 32) if "A" <= ch <= "Z" else ch for ch in s)


# ---------------------------------------------------------------------------------------------
# Decoding and normalization (spec sections 1 and 2)

def _check_str(text):
    """Raises ValueError for a lone surrogate in a str (not representable in UTF-8)."""
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            off = len(text[:i].encode("utf-8", errors="surrogatepass"))
            err = ValueError(f"invalid UTF-8 at byte offset {off}")
            err.offset = off
            raise err


def decode_utf8(b):
    """Strict UTF-8 decoding; ValueError naming the byte offset of the bad sequence."""
    try:
        return bytes(b).decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        err = ValueError(f"invalid UTF-8 at byte offset {e.start}")
        err.offset = e.start
        raise err from None


def normalize(text, kind="word", lowercase=True):
    """Returns the list of normalized code points of text (spec 2)."""
    out = []
    word = kind == "word"
    for ch in text:
        c = ord(ch)
        if c in _DROPPED:
            continue
        if is_space(c):
            out.append(0x20)
            continue
        if 0xFF01 <= c <= 0xFF5E:
            c -= 0xFEE0
        if lowercase:
            if 0x41 <= c <= 0x5A or (0xC0 <= c <= 0xDE and c != 0xD7):
                c += 0x20
        if word and c in _TYPO:
            out.extend(map(ord, _TYPO[c]))
            continue
        out.append(c)
    return out


# ---------------------------------------------------------------------------------------------
# Char kind (spec 4)

def _scan(cps, single, continues, emit):
    """The tokens of cps: spaces separate; a code point for which single() holds is a token of
    its own; any other starts a run that goes on while continues() holds, and emit(run, toks)
    appends its tokens. Both kinds (spec 4 and 5) share this shape."""
    toks = []
    i, n = 0, len(cps)
    while i < n:
        c = cps[i]
        if is_space(c):
            i += 1
        elif single(c):
            toks.append(chr(c))
            i += 1
        else:
            j = i + 1
            while j < n and continues(cps[j]):
                j += 1
            emit(cps[i:j], toks)
            i = j
    return toks


def _char_tokens(cps):
    return _scan(cps, lambda c: is_cjk(c) or is_symbol(c), is_alnum,
                 lambda run, toks: toks.append("".join(map(chr, run))))


# ---------------------------------------------------------------------------------------------
# Word kind (spec 5)

def _is_connector(ch, j):
    """ch[j] joins the word it follows (spec 5, "Words")."""
    c = ch[j]
    if j == 0 or j + 1 >= len(ch):
        return False
    if c in (0x2D, 0x2F, 0x2E, 0x26, 0x27):  # - / . & '
        return is_alnum(ch[j - 1]) and is_alnum(ch[j + 1])
    if c == 0x2C:  # ,
        return _is_digit(ch[j - 1]) and _is_digit(ch[j + 1])
    return False


def _apostrophe_starts_word(ch, i):
    """ch[i] is "'": does a word start here ('70s, 'em, 'til, 'n, 'cause, 'tis, 'twas)?"""
    if i + 1 >= len(ch):
        return False
    if _is_digit(ch[i + 1]):
        return True
    j = i + 1
    while j < len(ch) and j - i <= 6 and is_alnum(ch[j]):
        j += 1
    if j < len(ch) and is_alnum(ch[j]):
        return False  # run longer than any listed word
    return _ascii_lower("".join(map(chr, ch[i + 1:j]))) in _APOSTROPHE_WORDS


def _is_abbreviation(word):
    if "." in word:
        return True
    low = _ascii_lower(word)
    if len(word) == 1 and "a" <= low <= "z" and low not in ("a", "i"):
        return True
    return low in _ABBREVIATIONS


def _split_clitics(word):
    """Spec 5, "Clitics": returns one or two tokens."""
    low = _ascii_lower(word)
    if low in _SPECIAL_SPLITS:
        k = _SPECIAL_SPLITS[low]
        return [word[:k], word[k:]]
    if low.endswith("n't") and len(word.encode("utf-8")) > 3:
        return [word[:-3], word[-3:]]
    for suf in _CLITIC_SUFFIXES:
        if low.endswith(suf) and len(word) > len(suf):
            return [word[:-len(suf)], word[-len(suf):]]
    return [word]


def _chunk_tokens(ch, toks):
    """Tokens of one chunk (a list of code points without Space or CJK)."""
    m = len(ch)
    s = "".join(map(chr, ch))
    if _ascii_lower(s) in _CLITIC_CHUNKS:
        toks.append(s)
        return
    i = 0
    while i < m:
        c = ch[i]
        if is_alnum(c) or (c == 0x27 and _apostrophe_starts_word(ch, i)):
            j = i + 1
            while j < m and (is_alnum(ch[j]) or _is_connector(ch, j)):
                j += 1
            if c == 0x27 and j - i == 2 and ch[i + 1] in (0x4E, 0x6E) and j < m and ch[j] == 0x27:
                j += 1  # 'n' as in rock 'n' roll
            word = "".join(map(chr, ch[i:j]))
            if (j < m and ch[j] == 0x2E and not (j + 1 < m and ch[j + 1] == 0x2E)
                    and _is_abbreviation(word)):
                word += "."
                j += 1
            toks.extend(_split_clitics(word))
            i = j
            continue
        # A symbol, or a connector character that is not between Alnums.
        j = i + 1
        if c in (0x2E, 0x2D, 0x2A, 0x60, 0x27):  # . - * ` ' come in runs
            while j < m and ch[j] == c:
                j += 1
        run = j - i
        if c == 0x2E:
            toks.append("..." if run >= 2 else ".")
        elif c == 0x2D:
            toks.append("--" if run >= 2 else "-")
        elif c == 0x2A:
            toks.append("*" * run)
        elif c == 0x60:
            toks.extend(["``"] * (run // 2) + ["`"] * (run % 2))
        elif c == 0x27:
            toks.extend(["''"] * (run // 2))
            if run % 2:
                opening = (i == 0 or ch[i - 1] in _OPENERS) and j < m
                toks.append("`" if opening else "'")
        elif c == 0x22:
            toks.append("``" if i == 0 or ch[i - 1] in _DQ_OPENERS else "''")
        else:
            toks.append(chr(c))
        i = j


def _word_tokens(cps):
    return _scan(cps, is_cjk, lambda c: not is_space(c) and not is_cjk(c), _chunk_tokens)


# ---------------------------------------------------------------------------------------------
# Public API

def cut_token(tok):
    """Cuts tok to at most TOK_MAX_TOKEN_BYTES bytes of UTF-8, on a code point boundary."""
    b = tok.encode("utf-8")
    if len(b) <= TOK_MAX_TOKEN_BYTES:
        return tok
    k = TOK_MAX_TOKEN_BYTES
    while k > 0 and (b[k] & 0xC0) == 0x80:
        k -= 1
    return b[:k].decode("utf-8")


def tokenize(text, kind="word", lowercase=True):
    """All tokens of text (a str), no truncation. ValueError for a lone surrogate."""
    if kind not in ("word", "char"):
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    _check_str(text)
    cps = normalize(text, kind, lowercase)
    toks = _word_tokens(cps) if kind == "word" else _char_tokens(cps)
    return [cut_token(t) for t in toks]


def tokenize_bytes(b, kind="word", lowercase=True):
    """Like tokenize() for UTF-8 bytes; ValueError (with .offset) for invalid UTF-8."""
    return tokenize(decode_utf8(b), kind, lowercase)


def encode(tokens, vocab_dict, max_tokens):
    """Returns (ids of the first max_tokens tokens, truncated); unknown tokens are TOK_ID_UNK."""
    ids = [vocab_dict.get(t, TOK_ID_UNK) for t in tokens[:max_tokens]]
    return ids, len(tokens) > max_tokens


def load_vocab(path):
    """Reads vocab.txt (line i is id i) with the checks of tok_vocab_load(); ValueError on error."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.endswith(b"\n"):
        raise ValueError(f"{path}: missing final newline")
    vocab = {}
    for i, line in enumerate(data[:-1].split(b"\n")):
        try:
            tok = decode_utf8(line)
        except ValueError as e:
            raise ValueError(f"{path}:{i + 1}: {e}") from None
        if not tok:
            raise ValueError(f"{path}:{i + 1}: empty line")
        if "\r" in tok or "\0" in tok:
            raise ValueError(f"{path}:{i + 1}: carriage return or NUL byte in a token")
        if tok in vocab:
            raise ValueError(f"{path}:{i + 1}: duplicate token {tok!r}")
        vocab[tok] = i
    if vocab.get("<pad>") != TOK_ID_PAD or vocab.get("<unk>") != TOK_ID_UNK:
        raise ValueError(f"{path}: lines 1 and 2 must be <pad> and <unk>")
    return vocab


def main(argv=None):
    ap = argparse.ArgumentParser(description="Tokenize stdin lines (docs/tokenizer.md).")
    ap.add_argument("--kind", choices=("word", "char"), default="word")
    ap.add_argument("--no-lowercase", action="store_true")
    args = ap.parse_args(argv)
    out = sys.stdout
    for raw in sys.stdin.buffer:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        try:
            toks = tokenize_bytes(raw, args.kind, not args.no_lowercase)
        except ValueError as e:
            out.write(f"ERROR {e.offset}\n")
            continue
        out.write(" ".join(toks) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
