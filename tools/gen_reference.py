#!/usr/bin/python3
"""gen_reference.py - reference outputs of PyTorch GRU classifiers for the C engine's parity tests.

Usage: /usr/bin/python3 tools/gen_reference.py [--out tests/data/ref]   (needs torch + numpy)

For each case in CASES it builds, with fixed seeds, exactly the modules of model/gru.h
    embedding = nn.Embedding(V, E, padding_idx=0)
    gru = nn.GRU(E, H, num_layers=L, batch_first=True, bidirectional=B)
    fc = nn.Linear(H * (2 if B else 1), C)
with random weights, and writes <out>/<case>/ = config.json + model.safetensors + vocab.txt
(tools/gru_format.write_model_dir; vocab tokens are synthetic: <pad>, <unk>, t2, t3, ...) and
<out>/<case>/expected.bin.

How the expected values are computed: an explicit GRU cell loop (the equations of gru.h, gate
order r, z, n) in float64 on the module's own float32 weights (upcast), so the file holds the
exact answer for those weights rounded once to float32. The script asserts that the loop
reproduces nn.GRU run in float64 (outputs and h_n, to 1e-10; per text and as one packed batch)
and that the whole float32 PyTorch pipeline (embedding -> nn.GRU -> fc -> softmax) agrees with
the expected probabilities to 1e-5. The head reads h_n of the last layer (bidirectional:
cat(h_n[-2], h_n[-1])), or for the cases with "pool" (config "pooling") the max or mean of the
last layer's outputs over positions; tools/train.py's GRUClassifier, float32, on the same weights
must agree to 1e-5 as well. A text of length 0 has probabilities softmax(fc(zeros)) (the engine's
contract; nn.GRU cannot run it) and no gates.

A case with "dtype" "F16" (or "BF16") stores its tensors in that dtype: its module's weights are
rounded to it first (p.half().float(), or bfloat16), and those rounded weights are the weights
of the reference; the safetensors file stores them as F16 (exact, no second rounding), which the
engine converts back to the same float32 values at load.

expected.bin, all little-endian, no padding:
    char[8]  magic "GRUREF1\\0"
    u32      V, E, H, L, D (1 or 2), C, n_seq
    n_seq times:
        u32  len
        u32  flags               bit 0: gates follow
        i32  ids[len]            in [0, V)
        f32  probs[C]            softmax(fc(h_T))
        f32  traj[len][C]        only when D == 1: softmax(fc(h_t)) of the last layer, per t
                                 (pooling: of the max / mean of its outputs 1..t)
        f32  gates[L][D][4][len][H]   only when flags & 1: kinds r, z, n, h (h = the state after
                                 the token), positions in TEXT order for both directions: the
                                 backward direction's entry t is the step that read token t.
                                 This is gru.h's GRU_GATES_FULL buffer layout, byte for byte.
    char[8]  end magic "GRUEND1\\0"

Data is kept small (tests/data/ref well under 6 MB): small vocabularies, and full gates for only
a few texts of the large-H case.
"""
import argparse
import copy
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gru_format import write_model_dir  # noqa: E402
import train  # noqa: E402  (GRUClassifier: the trainer's module, checked against the reference)

MAGIC = b"GRUREF1\0"
END_MAGIC = b"GRUEND1\0"

# scale: multiplies every GRU weight and bias after PyTorch's uniform init (>= 2, with emb_scale
# on the N(0, 1) embedding, saturates many gates: the *_sat cases); fc_scale the same for the
# head (so probabilities are not all near 1/C).
# lengths: the texts' lengths in file order; gates_max_len: texts up to this length carry
# gates, gates_extra: lengths that carry gates anyway.
CASES = [
    dict(name="l1_h8_uni", V=50, E=8, H=8, L=1, B=False, C=2, scale=1.0, fc_scale=4.0, seed=101,
         lengths=[0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 300], gates_max_len=300),
    dict(name="l1_h64_bi", V=200, E=32, H=64, L=1, B=True, C=2, scale=1.0, fc_scale=4.0, seed=202,
         lengths=[0, 1, 2, 3, 4, 7, 10, 17, 25, 40, 64, 100], gates_max_len=100),
    dict(name="l2_h32_uni_sat", V=100, E=16, H=32, L=2, B=False, C=2, scale=3.0, emb_scale=2.0, fc_scale=2.0, seed=303,
         lengths=[0, 1, 2, 3, 5, 9, 16, 30, 50, 80, 120], gates_max_len=120),
    dict(name="l2_h16_bi_sat", V=80, E=16, H=16, L=2, B=True, C=2, scale=2.5, emb_scale=2.0, fc_scale=2.0, seed=404,
         lengths=[0, 1, 2, 3, 6, 11, 20, 37, 70, 150, 300], gates_max_len=300),
    dict(name="l1_h256_uni", V=300, E=64, H=256, L=1, B=False, C=2, scale=1.0, fc_scale=8.0, seed=505,
         lengths=[0, 1, 2, 3, 7, 15, 31, 63, 127, 200, 299, 300], gates_max_len=7, gates_extra=[300]),
    # Pooling heads (config "pooling"): max / mean of the last layer's outputs over positions.
    dict(name="l1_h32_uni_max", V=60, E=16, H=32, L=1, B=False, C=2, scale=1.5, fc_scale=4.0, seed=707,
         pool="max", lengths=[0, 1, 2, 3, 5, 8, 13, 40, 100], gates_max_len=13),
    dict(name="l2_h16_uni_mean", V=60, E=8, H=16, L=2, B=False, C=3, scale=1.5, fc_scale=6.0, seed=808,
         pool="mean", lengths=[0, 1, 2, 3, 5, 8, 13, 40, 100], gates_max_len=13),
    dict(name="l1_h24_bi_max", V=60, E=16, H=24, L=1, B=True, C=2, scale=1.5, fc_scale=4.0, seed=909,
         pool="max", lengths=[0, 1, 2, 3, 5, 8, 13, 40, 100], gates_max_len=13),
    dict(name="l1_h24_bi_mean", V=60, E=16, H=24, L=1, B=True, C=2, scale=1.5, fc_scale=8.0, seed=1010,
         pool="mean", lengths=[0, 1, 2, 3, 5, 8, 13, 40, 100], gates_max_len=13),
    dict(name="l1_h128_uni_c3", V=150, E=32, H=128, L=1, B=False, C=3, scale=1.5, fc_scale=4.0, seed=606,
         lengths=[0, 1, 2, 3, 4, 6, 9, 14, 22, 35, 56, 90], gates_max_len=35, gates_extra=[90]),
    # Stored as F16 (a model saved after .half()): the reference runs on the half-rounded weights.
    dict(name="l1_h16_uni_f16", V=40, E=8, H=16, L=1, B=False, C=2, scale=1.5, fc_scale=4.0, seed=1111,
         dtype="F16", lengths=[0, 1, 2, 3, 5, 8, 13, 21, 40], gates_max_len=21),
]

ROUND = {"F16": torch.float16, "BF16": torch.bfloat16}

LABELS = {2: ["negative", "positive"], 3: ["negative", "neutral", "positive"]}


def build(case):
    torch.manual_seed(case["seed"])
    V, E, H, L, B, C = (case[k] for k in ("V", "E", "H", "L", "B", "C"))
    embedding = nn.Embedding(V, E, padding_idx=0)
    gru = nn.GRU(E, H, num_layers=L, batch_first=True, bidirectional=B)
    fc = nn.Linear(H * (2 if B else 1), C)
    with torch.no_grad():
        embedding.weight.mul_(case.get("emb_scale", 1.0))
        for p in gru.parameters():
            p.mul_(case["scale"])
        fc.weight.mul_(case["fc_scale"])
        fc.bias.mul_(case["fc_scale"])
        if case.get("dtype", "F32") != "F32":  # the stored dtype's values are the reference's weights
            for mod in (embedding, gru, fc):
                for p in mod.parameters():
                    p.copy_(p.to(ROUND[case["dtype"]]).float())
    for mod in (embedding, gru, fc):
        mod.eval()
    return embedding, gru, fc


def cell_loop(x, w_ih, w_hh, b_ih, b_hh, reverse):
    """x (T, In) float64. Returns outputs (T, H) and r, z, n (T, H), in text order."""
    T = x.shape[0]
    H = w_hh.shape[1]
    gi = x @ w_ih.T + b_ih  # (T, 3H)
    h = torch.zeros(H, dtype=torch.float64)
    out = torch.zeros(T, H, dtype=torch.float64)
    R, Z, N = (torch.zeros(T, H, dtype=torch.float64) for _ in range(3))
    for t in (reversed(range(T)) if reverse else range(T)):
        gh = w_hh @ h + b_hh
        r = torch.sigmoid(gi[t, :H] + gh[:H])
        z = torch.sigmoid(gi[t, H:2 * H] + gh[H:2 * H])
        n = torch.tanh(gi[t, 2 * H:] + r * gh[2 * H:])
        h = (1 - z) * n + z * h
        out[t], R[t], Z[t], N[t] = h, r, z, n
    return out, R, Z, N


def reference(case, mods, ids):
    """Float64 reference of one text: probs (C), traj (T, C) or None, gates (L, D, 4, T, H), h_n."""
    embedding, gru, fc = mods
    L, D, H = case["L"], 2 if case["B"] else 1, case["H"]
    T = len(ids)
    fw = fc.weight.detach().double()
    fb = fc.bias.detach().double()
    if T == 0:
        feat = torch.zeros(D * H, dtype=torch.float64)
        return torch.softmax(fw @ feat + fb, -1), None, None, None
    x = embedding.weight.detach().double()[torch.tensor(ids, dtype=torch.long)]
    gates = torch.zeros(L, D, 4, T, H, dtype=torch.float64)
    finals = []
    for l in range(L):
        outs = []
        for d in range(D):
            sfx = "_reverse" if d else ""
            w = [getattr(gru, "%s_l%d%s" % (k, l, sfx)).detach().double()
                 for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out, R, Z, N = cell_loop(x, *w, reverse=bool(d))
            gates[l, d, 0], gates[l, d, 1], gates[l, d, 2], gates[l, d, 3] = R, Z, N, out
            outs.append(out)
            finals.append(out[0] if d else out[-1])
        x = torch.cat(outs, dim=1)  # (T, D*H)
    h_n = torch.stack(finals)  # (L*D, H), nn.GRU's order
    pool = case.get("pool", "last")
    if pool == "last":
        feat = torch.cat([h_n[-2], h_n[-1]]) if D == 2 else h_n[-1]
        prefix = x  # the head's input after each prefix (unidirectional)
    elif pool == "max":
        feat = x.max(dim=0).values
        prefix = torch.cummax(x, dim=0).values
    else:
        feat = x.mean(dim=0)
        prefix = torch.cumsum(x, dim=0) / torch.arange(1, T + 1, dtype=torch.float64)[:, None]
    probs = torch.softmax(fw @ feat + fb, -1)
    traj = torch.softmax(prefix @ fw.T + fb, -1) if D == 1 else None
    return probs, traj, gates, (x, h_n)


def check_against_torch(case, mods, seqs, refs):
    """Asserts the cell loop reproduces nn.GRU; returns the float32 pipeline's max prob error."""
    embedding, gru, fc = mods
    gru64 = copy.deepcopy(gru).double()
    emb64 = embedding.weight.detach().double()
    D = 2 if case["B"] else 1
    worst64 = 0.0
    worst32 = 0.0
    with torch.no_grad():
        for ids, (probs, _traj, _gates, extra) in zip(seqs, refs):
            if not ids:
                # softmax(fc(zeros)) through the float32 module
                p32 = torch.softmax(fc(torch.zeros(1, D * case["H"])), -1)[0].double()
                worst32 = max(worst32, (p32 - probs).abs().max().item())
                continue
            x_ref, hn_ref = extra
            idt = torch.tensor([ids], dtype=torch.long)
            out, h_n = gru64(emb64[idt])
            worst64 = max(worst64, (out[0] - x_ref).abs().max().item(), (h_n[:, 0] - hn_ref).abs().max().item())
        # All non-empty texts as one packed batch (the trainer's path).
        nz = [(ids, r[3][1]) for ids, r in zip(seqs, refs) if ids]
        lens = torch.tensor([len(i) for i, _ in nz])
        pad = torch.zeros(len(nz), int(lens.max()), dtype=torch.long)
        for k, (ids, _) in enumerate(nz):
            pad[k, :len(ids)] = torch.tensor(ids)
        packed = nn.utils.rnn.pack_padded_sequence(emb64[pad], lens, batch_first=True, enforce_sorted=False)
        _, h_n = gru64(packed)
        for k, (_, hn_ref) in enumerate(nz):
            worst64 = max(worst64, (h_n[:, k] - hn_ref).abs().max().item())
        # The trainer's own module (tools/train.py GRUClassifier, float32, the same weights),
        # every text in one packed batch, empty ones included: what the shipped models run.
        model = train.GRUClassifier(case["V"], case["E"], case["H"], case["L"], case["B"], case["C"],
                                    pooling=case.get("pool", "last"))
        sd = {"embedding.weight": embedding.weight}
        sd.update({"gru." + k: v for k, v in gru.state_dict().items()})
        sd.update({"fc." + k: v for k, v in fc.state_dict().items()})
        model.load_state_dict(sd)
        model.eval()
        lens = torch.tensor([len(i) for i in seqs])
        pad = torch.zeros(len(seqs), max(1, int(lens.max())), dtype=torch.long)
        for k, ids in enumerate(seqs):
            pad[k, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        p32 = torch.softmax(model(pad, lens), -1).double()
        for k, r in enumerate(refs):
            worst32 = max(worst32, (p32[k] - r[0]).abs().max().item())
    assert worst64 < 1e-10, "%s: cell loop vs nn.GRU (float64): %g" % (case["name"], worst64)
    assert worst32 < 1e-5, "%s: float32 PyTorch pipeline vs reference: %g" % (case["name"], worst32)
    return worst64, worst32


def f32(t):
    return np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes()


def write_case(out_root, case):
    mods = build(case)
    embedding, gru, fc = mods
    V, E, H, L, C = (case[k] for k in ("V", "E", "H", "L", "C"))
    D = 2 if case["B"] else 1
    rng = np.random.default_rng(case["seed"])
    seqs = [[int(i) for i in rng.integers(0, V, size=n)] for n in case["lengths"]]
    with torch.no_grad():
        refs = [reference(case, mods, ids) for ids in seqs]
    worst64, worst32 = check_against_torch(case, mods, seqs, refs)

    d = os.path.join(out_root, case["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    state = {"embedding.weight": embedding.weight}
    state.update({"gru." + k: v for k, v in gru.state_dict().items()})
    state.update({"fc." + k: v for k, v in fc.state_dict().items()})
    vocab = ["<pad>", "<unk>"] + ["t%d" % i for i in range(2, V)]
    write_model_dir(d, state, vocab, labels=LABELS[C], embedding_dim=E, hidden_size=H, num_layers=L,
                    bidirectional=case["B"], tokenizer={"kind": "word", "lowercase": True, "max_tokens": 512},
                    pooling=case.get("pool", "last"), dtype=case.get("dtype", "F32"))

    gated = 0
    with open(os.path.join(d, "expected.bin"), "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<7I", V, E, H, L, D, C, len(seqs)))
        for ids, (probs, traj, gates, _) in zip(seqs, refs):
            T = len(ids)
            has_gates = T > 0 and (T <= case["gates_max_len"] or T in case.get("gates_extra", []))
            gated += has_gates
            f.write(struct.pack("<2I", T, 1 if has_gates else 0))
            f.write(np.asarray(ids, dtype="<i4").tobytes())
            f.write(f32(probs))
            if D == 1 and T:
                f.write(f32(traj))
            if has_gates:
                f.write(f32(gates))
        f.write(END_MAGIC)
    size = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    print("%-16s V=%-3d E=%-2d H=%-3d L=%d D=%d C=%d %-4s texts=%d (gates %d) tokens=%d  %7.1f KB  "
          "loop-vs-nn.GRU(f64) %.1e  f32-pipeline-vs-ref %.1e" %
          (case["name"], V, E, H, L, D, C, case.get("dtype", "F32"), len(seqs), gated, sum(case["lengths"]),
           size / 1024, worst64, worst32))
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "ref"))
    ap.add_argument("--case", action="append", help="only these cases (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for case in CASES:
        if args.case and case["name"] not in args.case:
            continue
        total += write_case(args.out, case)
    print("total %.2f MB" % (total / 2**20))


if __name__ == "__main__":
    main()
