"""test_fold.py - tools/fold.py: K models folded into one GRU answer as their ensemble.

Tiny random members (tiny_model.py, numpy only) are folded with tools/fold.py (numpy only without
--dev), and gru-predict runs each member and the folded model on the same texts. For every text
the folded model's logits (log-probabilities, centred) must be the mean of the members' logits:
side-by-side and shared embeddings, one and two directions, pooling last / max / mean, on the
packed kernel (which skips the folded W_hh's zero blocks) and on OpenBLAS (GRU_PACKED=0). Members
that do not match are refused with a message, and nothing is written.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from harness import GRU_PREDICT, main, tiny_model

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
sys.path.insert(0, TOOLS)
import gru_format  # noqa: E402

TEXTS = ["the food was cold but the staff were lovely", "good", "not bad at all !", "i hated the plot",
         "xyzzy", "the movie was very very boring and the acting was awful but the story was great",
         "loved it"]


def predict(model, env=None):
    p = subprocess.run([GRU_PREDICT, "--model", model, "--batch", "3"], input="\n".join(TEXTS) + "\n",
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, **(env or {})))
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def centred_logits(result, labels):
    lp = [math.log(result["probabilities"][lab]) for lab in labels]
    mean = sum(lp) / len(lp)
    return [x - mean for x in lp]


class Fold(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gru-e2e-fold-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def members(self, k, bidirectional=False, pooling="last", shared=False, hidden=16, layers=1):
        dirs = []
        for i in range(k):
            d = tiny_model.write(os.path.join(self.tmp, "m%d" % i), "word", hidden=hidden, layers=layers,
                                 bidirectional=bidirectional, seed=10 + i, languages=["en"])
            cfg_path = os.path.join(d, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            if pooling != "last":
                cfg["pooling"] = pooling
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            if shared and i > 0:  # member 0's embedding (as train.py --embedding-from, frozen)
                _, first = gru_format.read_safetensors(os.path.join(dirs[0], "model.safetensors"))
                _, mine = gru_format.read_safetensors(os.path.join(d, "model.safetensors"))
                mine["embedding.weight"] = first["embedding.weight"]
                gru_format.write_safetensors(os.path.join(d, "model.safetensors"),
                                             {n: np.asarray(v, np.float32).reshape(s) for n, (s, v) in mine.items()})
            dirs.append(d)
        return dirs

    def fold(self, dirs, *extra):
        out = os.path.join(self.tmp, "folded")
        p = subprocess.run([sys.executable, os.path.join(TOOLS, "fold.py"), "--out", out, *extra, *dirs],
                           capture_output=True, text=True, timeout=120)
        return out, p

    def check(self, dirs, want_e, want_h, env=None):
        out, p = self.fold(dirs)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["embedding_dim"], cfg["hidden_size"]), (want_e, want_h))
        self.assertEqual(cfg["folding"]["members"], len(dirs))
        labels = cfg["labels"]
        got = predict(out, env)
        each = [predict(d, env) for d in dirs]
        self.assertEqual(len(got), len(TEXTS))
        for i, text in enumerate(TEXTS):
            want = [sum(v) / len(dirs) for v in zip(*(centred_logits(r[i], labels) for r in each))]
            have = centred_logits(got[i], labels)
            for a, b in zip(have, want):
                self.assertAlmostEqual(a, b, delta=2e-5, msg="text %r: %r against %r" % (text, have, want))
            self.assertEqual(got[i]["tokens"], each[0][i]["tokens"])
            self.assertEqual(got[i]["unknown_tokens"], each[0][i]["unknown_tokens"])
        return got

    def test_side_by_side_last_state(self):
        dirs = self.members(3)
        self.check(dirs, 3 * 12, 3 * 16)

    def test_shared_embedding_bidirectional_max(self):
        dirs = self.members(2, bidirectional=True, pooling="max", shared=True)
        self.check(dirs, 12, 2 * 16)

    def test_side_by_side_bidirectional_mean_blas(self):
        dirs = self.members(2, bidirectional=True, pooling="mean")
        self.check(dirs, 2 * 12, 2 * 16, env={"GRU_PACKED": "0"})

    def test_packed_and_blas_agree(self):
        dirs = self.members(3, bidirectional=True, pooling="max", shared=True)
        out, p = self.fold(dirs)
        self.assertEqual(p.returncode, 0, p.stderr)
        for a, b in zip(predict(out), predict(out, {"GRU_PACKED": "0"})):
            for lab, v in a["probabilities"].items():
                self.assertAlmostEqual(v, b["probabilities"][lab], delta=1e-5)

    def test_mismatched_members_refused(self):
        a = self.members(1)[0]
        b = tiny_model.write(os.path.join(self.tmp, "wider"), "word", hidden=24, seed=3, languages=["en"])
        out, p = self.fold([a, b])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("hidden_size", p.stderr)
        self.assertFalse(os.path.exists(out))
        c = tiny_model.write(os.path.join(self.tmp, "chars"), "char", hidden=16, seed=4, languages=["zh"])
        out, p = self.fold([a, c])
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(out))
        two = self.members(2, layers=2)
        out, p = self.fold(two)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("one-layer", p.stderr)
        out, p = self.fold([a])
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    main()
