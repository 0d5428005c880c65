#!/usr/bin/python3
"""make_seeds.py - (re)writes the seed corpora under tests/fuzz/corpus/ (needs numpy).

Seeds are small valid inputs plus a few near-misses; libFuzzer mutates from them. Crash inputs
found later are added to the same folders by hand (never by this script) and stay forever."""
import io
import json
import os
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from gru_format import write_model_dir  # noqa: E402


def put(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tiny_model(tmp, layers=1, bi=False, H=4, E=3, V=6, C=2, dtype="F32"):
    rng = np.random.default_rng(0)
    D = 2 if bi else 1
    sd = {"embedding.weight": rng.standard_normal((V, E)), "fc.weight": rng.standard_normal((C, D * H)),
          "fc.bias": rng.standard_normal(C)}
    for l in range(layers):
        for sfx in ([""] + (["_reverse"] if bi else [])):
            i = E if l == 0 else D * H
            sd["gru.weight_ih_l%d%s" % (l, sfx)] = rng.standard_normal((3 * H, i))
            sd["gru.weight_hh_l%d%s" % (l, sfx)] = rng.standard_normal((3 * H, H))
            sd["gru.bias_ih_l%d%s" % (l, sfx)] = rng.standard_normal(3 * H)
            sd["gru.bias_hh_l%d%s" % (l, sfx)] = rng.standard_normal(3 * H)
    vocab = ["<pad>", "<unk>"] + ["w%d" % i for i in range(2, V)]
    write_model_dir(tmp, sd, vocab, labels=["negative", "positive"][:C] if C == 2 else ["a", "b", "c"],
                    embedding_dim=E, hidden_size=H, num_layers=layers, bidirectional=bi,
                    tokenizer={"kind": "word", "lowercase": True, "max_tokens": 16}, dtype=dtype)
    return [open(os.path.join(tmp, f), "rb").read() for f in ("config.json", "vocab.txt", "model.safetensors")]


def main():
    texts = ["It's NOT good!!", "the food was cold but the staff were lovely", "我 上周 去 北京 玩 了",
             "10点半下的单,12点ＯＫ！😀", "\u201cquoted\u201d \u2014 and\u2026 don't can't won't",
             "mr. smith's e.t. 1.8 2,500 '70s old-fashioned and/or film--it", "", "   \t ", "!!!???***"]
    for i, t in enumerate(texts):
        for k in (0, 1, 2, 3):
            put("tok", "text%d_%d" % (i, k), bytes([k | 0x40]) + t.encode("utf-8"))
    put("tok", "bad_utf8", b"\x02ab\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in [("uni1", {}), ("bi2", {"layers": 2, "bi": True}), ("c3", {"C": 3})]:
            d = os.path.join(tmp, name)
            cfg, vocab, st = tiny_model(d, **kw)
            put("safetensors", name, st)
            put("model_dir", name, cfg + b"\n----\n" + vocab + b"\n----\n" + st)
        put("safetensors", "truncated", st[: len(st) // 2])
        # 16-bit tensors: the GRU's F16, the embedding BF16, the head F32 (one mixed file).
        mixed = {n: "F16" for n in ("gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0")}
        mixed["embedding.weight"] = "BF16"
        put("safetensors", "uni1_f16", tiny_model(os.path.join(tmp, "uni1_f16"), dtype=mixed)[2])
        hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
        put("safetensors", "overlap", struct.pack("<Q", len(hdr)) + hdr + b"\0" * 8)
        put("safetensors", "garbage", b"\xff" * 8 + b"{not json")
        bad_cfg = json.loads(cfg)
        bad_cfg["hidden_size"] = 5
        put("model_dir", "shape_mismatch", json.dumps(bad_cfg).encode() + b"\n----\n" + vocab + b"\n----\n" + st)
    # fuzz_headers: first byte 0 X-Request-Id, 1 traceparent, 2 an --api-key-file
    for i, v in enumerate([b"client-42", b"f47ac10b-58cc-4372-a567-0e02b2c3d479", b"bad id", b"x" * 129, b""]):
        put("headers", "request_id%d" % i, b"\0" + v)
    for i, v in enumerate([b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                           b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-later",
                           b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                           b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"]):
        put("headers", "traceparent%d" % i, b"\1" + v)
    put("headers", "keys_ok", b"\2# keys\n\nk-ci-0123456789abcdef ci-pipeline\r\n  k-2\tdashboard\nk-3\n")
    put("headers", "keys_bad", b"\2k-1 a b\nk-1 c\n")
    print("seeds written under", os.path.join(HERE, "corpus"))


if __name__ == "__main__":
    main()
