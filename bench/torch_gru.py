#!/usr/bin/python3
"""torch_gru.py - the PyTorch side of gru-bench: the same classifier on the same shapes.

Reads shapes from the command line as H:B:T:gates items (gates: none|summary) and prints one
line per shape: "H B T gates median_us". The model is the one gru-sentiment serves
(Embedding(V, E) -> nn.GRU(E, H) -> Linear(H, 2) -> softmax), random weights. With gates, the
per-token gates come from a manual GRU-cell loop, as a Python service would have to do (nn.GRU
does not expose them). Threads: --threads N sets torch.set_num_threads(N); set
OPENBLAS_NUM_THREADS=N in the environment too (gru-bench does).
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, vocab, embed, hidden, labels=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, labels)

    def forward(self, ids):
        _, h = self.gru(self.embedding(ids))
        return torch.softmax(self.fc(h[-1]), dim=-1)

    def forward_with_gates(self, ids):
        x = self.embedding(ids)
        B, T, _ = x.shape
        g = self.gru
        gi = torch.nn.functional.linear(x, g.weight_ih_l0, g.bias_ih_l0)
        h = x.new_zeros(B, g.hidden_size)
        rs, zs = [], []
        for t in range(T):
            gh = torch.nn.functional.linear(h, g.weight_hh_l0, g.bias_hh_l0)
            i_r, i_z, i_n = gi[:, t].chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
            rs.append(r.mean(dim=1))
            zs.append(z.mean(dim=1))
        return torch.softmax(self.fc(h), dim=-1), torch.stack(rs, 1), torch.stack(zs, 1)


def median_us(fn, min_time):
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-7)))
    samples = []
    end = time.perf_counter() + min_time
    while time.perf_counter() < end or len(samples) < 5:
        s = time.perf_counter()
        for _ in range(reps):
            fn()
        samples.append((time.perf_counter() - s) / reps)
    return statistics.median(samples) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=20000)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--min-time", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {}
    with torch.inference_mode():
        for shape in args.shapes:
            h, b, t, gates = shape.split(":")
            h, b, t = int(h), int(b), int(t)
            if h not in models:
                models[h] = Classifier(args.vocab, args.embed, h).eval()
            m = models[h]
            ids = torch.randint(2, args.vocab, (b, t))
            fn = (lambda: m.forward_with_gates(ids)) if gates != "none" else (lambda: m(ids))
            print(h, b, t, gates, "%.3f" % median_us(fn, args.min_time), flush=True)


if __name__ == "__main__":
    main()
