"""tiny_model.py - small random GRU models for the end-to-end tests (numpy only).

write(out_dir, kind="word"|"char", hidden=16, layers=1, bidirectional=False, seed=0,
languages=None) writes a model directory with tools/gru_format.py: a vocabulary of common English
words (word) or of common Chinese characters (char), random weights as PyTorch initializes them;
languages (e.g. ["en"]) goes into config.json as "languages" when given.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import gru_format  # noqa: E402

WORDS = ("the a an and but or not no is was were be been it 's n't i you he she we they this that "
         "food staff service movie film story plot acting was were very really quite so too good great "
         "lovely excellent bad terrible awful boring cold hot slow fast friendly rude tasty bland "
         "tonight today yesterday love hate like enjoyed loved hated . , ! ? but however").split()
CHARS = list("我你他她们的了是不很好坏吃送快慢太菜饭味道服务态度满意差评价还会再来买东西商家外卖")


def write(out_dir, kind="word", hidden=16, layers=1, bidirectional=False, seed=0, max_tokens=64,
          labels=("negative", "positive"), embedding=12, languages=None):
    rng = np.random.default_rng(seed)
    seen, vocab = set(), ["<pad>", "<unk>"]
    for t in (WORDS if kind == "word" else CHARS):
        if t not in seen:
            seen.add(t)
            vocab.append(t)
    V, E, H, C, D = len(vocab), embedding, hidden, len(labels), 2 if bidirectional else 1
    k = 1.0 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-k, k, size=shape).astype(np.float32)
    sd = {"embedding.weight": rng.normal(size=(V, E)).astype(np.float32)}
    sd["embedding.weight"][0] = 0
    for l in range(layers):
        for d in range(D):
            sfx = "_reverse" if d else ""
            inp = E if l == 0 else D * H
            sd[f"gru.weight_ih_l{l}{sfx}"] = u(3 * H, inp)
            sd[f"gru.weight_hh_l{l}{sfx}"] = u(3 * H, H)
            sd[f"gru.bias_ih_l{l}{sfx}"] = u(3 * H)
            sd[f"gru.bias_hh_l{l}{sfx}"] = u(3 * H)
    sd["fc.weight"] = u(C, D * H)
    sd["fc.bias"] = u(C)
    gru_format.write_model_dir(out_dir, sd, vocab, labels=list(labels), embedding_dim=E, hidden_size=H,
                               num_layers=layers, bidirectional=bidirectional,
                               tokenizer={"kind": kind, "lowercase": True, "max_tokens": max_tokens},
                               extra_config=None if languages is None else {"languages": list(languages)})
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("# tiny test model\n\nRandom weights.\n\n| split | accuracy | macro-F1 |\n|---|---|---|\n"
                "| dev | 0.5 | 0.33 |\n")
    return out_dir


if __name__ == "__main__":
    write(sys.argv[1], *(sys.argv[2:3] or ["word"]))
