#!/usr/bin/python3
"""negation_aug.py - negated short phrases generated from SST-2's own one-word phrases.

SST-2 has almost no negated sentiment words: "not bad" is not in its train file at all, so a
model trained on it reads "Not bad at all!" as negative. This writes a small training file that
teaches the flip, built from the labelled one-word phrases of a train TSV (the lexicon: "bad" 0,
"charming" 1, ...; 3,334 words in SST-2 train) and a fixed list of sentiment verbs:

- each lexicon word w with label y gives --per-word negated texts (default 2) ("not w at all",
  "it was n't w .", "never w .", ...), templates drawn at random, each labelled 1 - y;
- each verb v (VERBS, with the label of "i v it") gives its negated forms ("i did n't v it",
  labelled 1 - y) and its plain form (labelled y), so that "did n't" alone does not mean a flip.

Texts are in SST-2's own style (lower case, PTB pieces such as "n't"), which the tokenizer
reads as it reads "didn't". Give the phrases of the run's own training split (e.g.
build/sst2-proxy/train_phrases.tsv), so that nothing of a held-out set leaks in.

    /usr/bin/python3 tools/negation_aug.py --phrases build/sst2-proxy/train_phrases.tsv \
        --out build/sst2-proxy/negation.tsv [--seed 1]

Deterministic for given arguments. The output is generated data (never committed).
"""
import argparse
import random
import re

from sst2_proxy import read  # label<TAB>text rows, header checked

# Negations of a word: "{w}" is the lexicon word. All flip the word's label.
TEMPLATES = [
    "not {w}",
    "not {w} at all",
    "not {w} at all !",
    "it was not {w} .",
    "it was n't {w} at all .",
    "it 's not {w} .",
    "this is not {w} .",
    "definitely not {w} .",
    "never {w} .",
    "nothing {w} about it .",
    "the movie was n't {w} .",
    "i did n't find it {w} .",
]

# Sentiment verbs and the label of "i VERB it" (hand-written; the lexicon has few verbs).
VERBS = {"love": 1, "like": 1, "enjoy": 1, "recommend": 1, "adore": 1, "admire": 1,
         "appreciate": 1, "hate": 0, "dislike": 0, "regret": 0, "despise": 0, "mind": 0}
VERB_NEGATED = ["i did n't {v} it .", "i do n't {v} it .", "i did not {v} this movie .",
                "we did n't {v} it at all .", "i would n't {v} it .", "i ca n't say i {v} it ."]
VERB_PLAIN = ["i {v} it .", "i really {v} this movie ."]

WORD = re.compile(r"[a-z]{3,}")


def generate(rows, seed, per_word):
    """[(label, text)]: the negated lexicon words, then the verb forms."""
    rng = random.Random(seed)
    lexicon = {}
    for label, text in rows:
        w = text.strip()
        if WORD.fullmatch(w) and label in ("0", "1") and w not in VERBS:
            lexicon.setdefault(w, label)
    out = []
    for w in sorted(lexicon):
        flipped = "1" if lexicon[w] == "0" else "0"
        for t in rng.sample(TEMPLATES, per_word):
            out.append((flipped, t.format(w=w)))
    for v, y in sorted(VERBS.items()):
        for t in VERB_NEGATED:
            out.append((str(1 - y), t.format(v=v)))
        for t in VERB_PLAIN:
            out.append((str(y), t.format(v=v)))
    return out, len(lexicon)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phrases", required=True, help="labelled TSV whose one-word rows are the lexicon")
    ap.add_argument("--out", required=True, help="TSV to write")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-word", type=int, default=2, choices=range(1, len(TEMPLATES) + 1),
                    metavar="N", help="negated texts per lexicon word")
    args = ap.parse_args()
    out, n_words = generate(read(args.phrases), args.seed, args.per_word)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("label\ttext\n")
        for label, text in out:
            f.write(f"{label}\t{text}\n")
    print(f"{n_words} lexicon words -> {len(out)} rows -> {args.out}")


if __name__ == "__main__":
    main()
