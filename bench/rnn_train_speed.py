#!/usr/bin/python3
"""rnn_train_speed.py - training step time of a GRU against an LSTM of the same size, same run.

The comparison row of models/sst2-en's card (issue 11: "GRU vs LSTM, as users of a GRU service
ask"). Both are tools/train.py's GRUClassifier (embedding, one recurrent layer, head), built with
the same arguments but rnn="gru" or "lstm", trained with the same optimizer on the same random
batches (batch 64, lengths 5-40 tokens, packed), one thread. Rounds alternate GRU and LSTM so
that a shared machine's load hits both alike; the ratio is the figure to read.

    /usr/bin/python3 bench/rnn_train_speed.py [--vocab 40000] [-E 100] [-H 128] [--bidirectional]
                                              [--pooling max] [--steps 30] [--rounds 5]
"""
import argparse
import os
import random
import sys
import time

sys.argv += ["--threads", "1"] if "--threads" not in sys.argv else []
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import train  # noqa: E402  (sets the BLAS thread variables before torch loads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=40000)
    ap.add_argument("-E", type=int, default=100)
    ap.add_argument("-H", type=int, default=128)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--pooling", default="max")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    batches = []
    for _ in range(args.steps):
        lens = torch.tensor([rng.randint(5, 40) for _ in range(64)])
        x = torch.zeros(64, int(lens.max()), dtype=torch.long)
        for r, n in enumerate(lens.tolist()):
            x[r, :n] = torch.randint(2, args.vocab, (n,))
        batches.append((x, lens, torch.randint(0, 2, (64,))))
    models = {}
    for kind in ("gru", "lstm"):
        torch.manual_seed(0)
        m = train.GRUClassifier(args.vocab, args.E, args.H, 1, args.bidirectional, 2, 0.5, 0.3, kind, True,
                                args.pooling)
        dense = [p for n, p in m.named_parameters() if n != "embedding.weight"]
        opts = [torch.optim.Adam(dense, lr=2e-3), torch.optim.SparseAdam([m.embedding.weight], lr=5e-4)]
        models[kind] = (m, opts, sum(p.numel() for p in dense))
    loss_fn = nn.CrossEntropyLoss()
    times = {k: [] for k in models}
    for _ in range(args.rounds):
        for kind, (m, opts, _) in models.items():
            m.train()
            t0 = time.perf_counter()
            for x, lens, y in batches:
                for o in opts:
                    o.zero_grad()
                loss = loss_fn(m(x, lens), y)
                loss.backward()
                for o in opts:
                    o.step()
            times[kind].append((time.perf_counter() - t0) / len(batches) * 1e3)
    for kind, (m, _, n_rnn) in models.items():
        best = min(times[kind])
        print(f"{kind:4s}: recurrent layer + head {n_rnn:,} parameters; ms per training step "
              f"(batch 64): best {best:.1f}, all {' '.join(f'{t:.1f}' for t in times[kind])}")
    print(f"lstm / gru step time (best of {args.rounds}): {min(times['lstm']) / min(times['gru']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
