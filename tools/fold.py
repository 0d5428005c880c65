#!/usr/bin/python3
"""Folds K trained GRU classifiers into one GRU classifier that computes their ensemble exactly.

The members are model directories (tools/train.py's) with the same vocabulary, tokenizer,
labels, hidden size, direction count and pooling, and one layer. The folded directory is a plain
model (embedding + GRU + linear head) that gru-serve loads like any other:

- embedding: the members' embeddings side by side (E = K x theirs), or one copy when every
  member has the same embedding (members trained with train.py --embedding-from and a frozen
  embedding: E unchanged);
- GRU: hidden size K*H. Member k owns units k*H .. (k+1)*H-1 of each direction and each gate.
  Its input weights read its own embedding columns; the recurrent weights are block-diagonal, so
  a member's units see only their own state. Gates work unit by unit, so every unit computes
  exactly what it computed in its member (the engine skips the zero blocks: model/mm.c);
- head: pooling ("last", "max", "mean") also works unit by unit, and the linear layer is the
  members' heads side by side, each scaled by 1/K, with the mean of their biases: the folded
  logits are the mean of the members' logits, and its softmax is the ensemble's answer.

With --dev / --report the written model is evaluated as the engine will read it (after the
tensors' rounding to --emb-dtype / --dtype) with tools/train.py (PyTorch), and the figures go
into config.json "metrics" (dev_accuracy, reports) as train.py writes them, so that the accuracy
tests can check the C engine against them. Folding alone needs only numpy.

usage: /usr/bin/python3 tools/fold.py --out DIR [--emb-dtype F16] [--dev TSV] [--report TSV ...]
           MEMBER_DIR MEMBER_DIR [...]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gru_format  # noqa: E402

SAME = ("vocab_size", "hidden_size", "num_layers", "bidirectional", "labels", "tokenizer", "pooling")


def read_member(d):
    """(config dict, vocab.txt bytes, {tensor name: float32 array}) of a model directory."""
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    with open(os.path.join(d, "vocab.txt"), "rb") as f:
        vocab = f.read()
    _, tensors = gru_format.read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, vocab, {n: np.asarray(v, dtype=np.float32).reshape(s) for n, (s, v) in tensors.items()}


def fold_state(states, bidirectional):
    """The folded state dict of the members' state dicts (same shapes, one layer):
    (state, embedding_dim, hidden_size, shared embedding?)."""
    K = len(states)
    H = states[0]["gru.weight_hh_l0"].shape[1]
    embs = [s["embedding.weight"] for s in states]
    shared = all(np.array_equal(e, embs[0]) for e in embs[1:])
    E1 = embs[0].shape[1]
    E = E1 if shared else E1 * K
    out = {"embedding.weight": embs[0].copy() if shared else np.concatenate(embs, axis=1)}
    for sfx in [""] + (["_reverse"] if bidirectional else []):
        w_ih = np.zeros((3 * K * H, E), np.float32)
        w_hh = np.zeros((3 * K * H, K * H), np.float32)
        b_ih = np.zeros(3 * K * H, np.float32)
        b_hh = np.zeros(3 * K * H, np.float32)
        for k, s in enumerate(states):
            cols = slice(0, E) if shared else slice(k * E1, (k + 1) * E1)
            for g in range(3):  # gates r, z, n: member k's rows are g*K*H + k*H .. + H
                rows = slice(g * K * H + k * H, g * K * H + (k + 1) * H)
                mine = slice(g * H, (g + 1) * H)
                w_ih[rows, cols] = s[f"gru.weight_ih_l0{sfx}"][mine]
                w_hh[rows, k * H:(k + 1) * H] = s[f"gru.weight_hh_l0{sfx}"][mine]
                b_ih[rows] = s[f"gru.bias_ih_l0{sfx}"][mine]
                b_hh[rows] = s[f"gru.bias_hh_l0{sfx}"][mine]
        out[f"gru.weight_ih_l0{sfx}"] = w_ih
        out[f"gru.weight_hh_l0{sfx}"] = w_hh
        out[f"gru.bias_ih_l0{sfx}"] = b_ih
        out[f"gru.bias_hh_l0{sfx}"] = b_hh
    D = 2 if bidirectional else 1
    C = states[0]["fc.weight"].shape[0]
    fc_w = np.zeros((C, D * K * H), np.float32)
    for k, s in enumerate(states):
        for d in range(D):  # the head's input is [forward units; backward units]
            fc_w[:, d * K * H + k * H:d * K * H + (k + 1) * H] = s["fc.weight"][:, d * H:(d + 1) * H] / K
    out["fc.weight"] = fc_w
    out["fc.bias"] = (sum(s["fc.bias"].astype(np.float64) for s in states) / K).astype(np.float32)
    return out, E, K * H, shared


def evaluate(out_dir, dev, reports, data_root):
    """config "metrics" of the written model on dev (list of TSV) and reports, with train.py."""
    import train as T
    _, vocab, model = T.load_model_dir(out_dir)
    with open(os.path.join(out_dir, "config.json"), encoding="utf-8") as f:
        tk = json.load(f)["tokenizer"]

    def measured(paths):  # evaluate()'s metrics on the rows of paths together
        data, lens = [], []
        for p in paths:
            d, L = T.encode_file(p, tk["kind"], tk["lowercase"], vocab, tk["max_tokens"])
            data, lens = data + d, lens + L
        return T.evaluate(model, data, T.LONG_TOKENS, lens)

    metrics = {}
    if dev:
        m = measured(dev)
        print(f"dev {' '.join(dev)}: {T.fmt_metrics(m)}", flush=True)
        metrics.update(T.dev_config_metrics(m))
    if reports:
        rm = {p: measured([p]) for p in reports}
        for p, r in rm.items():
            print(f"report {p}: {T.fmt_metrics(r)}", flush=True)
        metrics["reports"] = T.reports_config_metrics(rm, data_root)
    return metrics


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("members", nargs="+", help="model directories (tools/train.py --out)")
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--emb-dtype", choices=gru_format.DTYPES, default="F32",
                    help="the embedding's dtype in model.safetensors (F16 halves its size)")
    ap.add_argument("--dtype", choices=gru_format.DTYPES, default="F32", help="the other tensors' dtype")
    ap.add_argument("--dev", action="append", default=[], help="TSV for metrics.dev_accuracy (PyTorch)")
    ap.add_argument("--report", action="append", default=[], help="TSV for metrics.reports (PyTorch)")
    ap.add_argument("--data-root", default="../shared",
                    help="dataset paths inside it are recorded relative to it (as train.py does)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for --dev / --report")
    args = ap.parse_args(argv)
    if len(args.members) < 2:
        ap.error("give at least two members")

    members = [read_member(d) for d in args.members]
    cfg0, vocab0, _ = members[0]
    for d, (cfg, vocab, _) in zip(args.members[1:], members[1:]):
        for key in SAME:
            if cfg.get(key) != cfg0.get(key):
                raise SystemExit(f"{d}: config {key} {cfg.get(key)!r} differs from "
                                 f"{args.members[0]}'s {cfg0.get(key)!r}")
        if vocab != vocab0:
            raise SystemExit(f"{d}: vocab.txt differs from {args.members[0]}'s")
    if cfg0["num_layers"] != 1:
        raise SystemExit(f"{args.members[0]}: {cfg0['num_layers']} layers; only one-layer members fold")
    bidi = cfg0["bidirectional"]
    sd, E, H, shared = fold_state([s for _, _, s in members], bidi)
    pooling = cfg0.get("pooling", "last")
    print(f"{len(members)} members: E={E} ({'one shared embedding' if shared else 'side by side'}) "
          f"H={H} bidirectional={bidi} pooling={pooling}", flush=True)

    dtypes = {n: (args.emb_dtype if n == "embedding.weight" else args.dtype) for n in sd}
    extra = {"folded_from": [{"dir": d, "dev_accuracy": c.get("metrics", {}).get("dev_accuracy"),
                              "command": c.get("training", {}).get("command")}
                             for d, (c, _, _) in zip(args.members, members)],
             "folding": {"members": len(members), "member_hidden_size": cfg0["hidden_size"],
                         "shared_embedding": shared,
                         "command": " ".join(["/usr/bin/python3", "tools/fold.py"] + argv)}}
    vocab = vocab0.decode("utf-8").split("\n")[:-1]

    def write(metrics):
        gru_format.write_model_dir(
            args.out, sd, vocab, labels=cfg0["labels"], embedding_dim=E, hidden_size=H, num_layers=1,
            bidirectional=bidi, tokenizer=cfg0["tokenizer"], languages=cfg0.get("languages"),
            pooling=pooling, extra_config=dict(extra, **({"metrics": metrics} if metrics else {})),
            dtype=dtypes)

    write(None)
    if args.dev or args.report:  # measured on the written (rounded) tensors, then recorded
        import torch
        torch.set_num_threads(args.threads)
        write(evaluate(args.out, args.dev, args.report, args.data_root))
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
