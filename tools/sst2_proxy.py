#!/usr/bin/python3
"""sst2_proxy.py - a sentence-disjoint split of SST-2 train, to select and report on whole sentences.

SST-2's train file mixes whole treebank sentences with phrases cut from them, and its dev file
is a random sample of the same kind, so phrase-level dev accuracy says little about whole
sentences (what users send, and what the held-back test is). This splits train.tsv by sentence:

- a row is a *sentence* if it is not a (whole-token) substring of another row ("maximal");
- SEL + TEST random sentences of >= MIN_TOKENS tokens are held out (seed SEED): sent_dev.tsv
  (model selection) and sent_test.tsv (report only);
- every other row that occurs only inside held-out sentences is dropped, so no held-out
  sentence is seen in training, even in pieces; the rest is written as train_sentences.tsv
  (kept maximal rows) and train_phrases.tsv (the other kept rows), so training can weight the
  sentences by passing train_sentences.tsv more than once.

    /usr/bin/python3 tools/sst2_proxy.py [--data ../shared/data/sst2/train.tsv] \
        [--out build/sst2-proxy] [--train-with-test]

--train-with-test: the same two held-out sets, but the sent_test sentences and their phrases stay
in training (only sent_dev is held out): for the final model, once the recipe was chosen and
reported on sent_test by a run without it (write it to another --out, e.g. build/sst2-final).

Deterministic for given arguments. Outputs are generated data (never committed). Exit 77 when
the data file is absent (ctest's skip code).
"""
import argparse
import os
import random
import sys


def read(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        if f.readline().rstrip("\n").split("\t")[:2] != ["label", "text"]:
            raise SystemExit(f"{path}: header must be 'label<TAB>text'")
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f if line.strip()]


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("label\ttext\n")
        for lab, text in rows:
            f.write(f"{lab}\t{text}\n")


def occurs_elsewhere(text, big):
    """True if ' text ' occurs in big at least twice (itself once, as a line of big)."""
    needle = f" {text} "
    first = big.find(needle)
    return first >= 0 and big.find(needle, first + 1) >= 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/sst2/train.tsv")
    ap.add_argument("--out", default="build/sst2-proxy")
    ap.add_argument("--sel", type=int, default=700, help="held-out sentences for selection")
    ap.add_argument("--test", type=int, default=700, help="held-out sentences for the report")
    ap.add_argument("--min-tokens", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-with-test", action="store_true",
                    help="keep the sent_test sentences and their phrases in training")
    args = ap.parse_args()

    if not os.path.exists(args.data):
        print(f"SKIP: {args.data} is absent (../shared/data is not on this machine)")
        return 77
    rows = read(args.data)
    texts = [t for _, t in rows]
    big = "\n " + " \n ".join(texts) + " \n"
    maximal = [not occurs_elsewhere(t, big) for t in texts]
    cand = [i for i, (t, m) in enumerate(zip(texts, maximal)) if m and len(t.split()) >= args.min_tokens]
    rng = random.Random(args.seed)
    held = rng.sample(cand, args.sel + args.test)
    out_of_train = held[:args.sel] if args.train_with_test else held
    held_set = set(out_of_train)
    held_big = "\n " + " \n ".join(texts[i] for i in out_of_train) + " \n"
    kept_big = "\n " + " \n ".join(t for i, (t, m) in enumerate(zip(texts, maximal))
                                    if m and i not in held_set) + " \n"
    sentences, phrases, dropped = [], [], 0
    for i, (row, m) in enumerate(zip(rows, maximal)):
        if i in held_set:
            continue
        needle = f" {row[1]} "
        if not m and needle in held_big and needle not in kept_big:
            dropped += 1
            continue
        (sentences if m else phrases).append(row)
    os.makedirs(args.out, exist_ok=True)
    write(os.path.join(args.out, "sent_dev.tsv"), [rows[i] for i in held[:args.sel]])
    write(os.path.join(args.out, "sent_test.tsv"), [rows[i] for i in held[args.sel:]])
    write(os.path.join(args.out, "train_sentences.tsv"), sentences)
    write(os.path.join(args.out, "train_phrases.tsv"), phrases)
    print(f"{args.data}: {len(rows)} rows, {sum(maximal)} sentences (maximal rows); held out "
          f"{args.sel} (sent_dev) + {args.test} (sent_test) of {len(cand)} with >= "
          f"{args.min_tokens} tokens; dropped {dropped} rows found only inside held-out "
          f"sentences{' (sent_test kept in train)' if args.train_with_test else ''}; train: "
          f"{len(sentences)} sentences + {len(phrases)} phrases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
