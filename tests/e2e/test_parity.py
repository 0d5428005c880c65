"""test_parity.py - same bytes alone or in a batch: a text's result does not depend on the texts
that share its batch, nor on the program that runs it.

For every model and output shape (gates none / summary / full + trajectory), gru-predict's output
lines at --batch 1 (each text alone) are the reference, byte for byte:
  - gru-predict at --batch 3, 7 and 32 writes the same bytes;
  - gru-serve answers each text, sent as its own request 16 at a time (so that they share
    batches, which /metrics confirms), with exactly that line as its body;
  - gru-serve answers all texts in one request with exactly those lines as its "results".
Runs on the tiny test models (one with 2 layers) and on the shipped models when present. On a
CPU without AVX2+FMA the engine runs on BLAS, where only closeness (1e-5) is promised.
"""
import concurrent.futures
import json
import os
import subprocess
import unittest

from harness import GRU_PREDICT, Server, assert_close, main, shipped_models, tiny_models

EN = ["The food was cold but the staff were lovely.", "good", "It's NOT good!!", "i loved this movie",
      "terrible , boring , awful", "the acting was great but the plot was really slow tonight",
      "Bad.", "we hated the service and the food", "so so", "what a lovely film " * 30]
ZH = ["菜很好吃，送得快！", "太慢了", "味道不错，服务态度很好", "差评", "还会再来", "东西好吃 but 太贵", "好" * 100]


def dev_texts(name, n=40):
    """The first n texts of a shared dev set (for the shipped models), or []."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", name, "dev.tsv")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t", 1)[1] for line in list(f)[1:n + 1]]


def exact_engine():
    """True where the engine promises the same bits for every batch (x86-64 AVX2 + FMA)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


def predict_lines(model_dir, texts, gates, trajectory, batch):
    """gru-predict's output lines (bytes, without the newline) for texts at --batch batch."""
    args = [GRU_PREDICT, "--model", model_dir, "--gates", gates, "--batch", str(batch)]
    if trajectory:
        args.append("--trajectory")
    out = subprocess.run(args, input="\n".join(texts).encode() + b"\n", capture_output=True, check=True)
    return out.stdout.splitlines()


class Parity(unittest.TestCase):
    def same(self, got, want, what):
        """got == want as bytes (or, off the exact engine, as JSON within 1e-5)."""
        if exact_engine():
            self.assertEqual(got, want, what)
        else:
            assert_close(self, json.loads(got), json.loads(want), what)

    def check(self, srv, model_dir, name, texts, gates, trajectory):
        want = predict_lines(model_dir, texts, gates, trajectory, 1)
        self.assertEqual(len(want), len(texts))
        for b in (3, 7, 32):
            got = predict_lines(model_dir, texts, gates, trajectory, b)
            for t, g, w in zip(texts, got, want):
                self.same(g, w, "%s --batch %d [%r]" % (name, b, t[:30]))
        body = {"model": name, "gates": gates, "trajectory": trajectory}
        # One request per text, 16 at a time: they share batches with each other.
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda t: srv.request("POST", "/v1/sentiment", dict(body, text=t)), texts))
        for t, (status, _, data), w in zip(texts, got, want):
            self.assertEqual(status, 200, data)
            self.same(data, w, "%s alone [%r]" % (name, t[:30]))
        # All texts in one request: the same objects in "results".
        status, _, data = srv.request("POST", "/v1/sentiment", dict(body, texts=texts))
        self.assertEqual(status, 200, data)
        version = json.loads(want[0])["model_version"]  # gru-predict's: the same files
        prefix = (b'{"model":' + json.dumps(name).encode() + b',"model_version":' + json.dumps(version).encode() +
                  b',"results":[')
        self.assertTrue(data.startswith(prefix) and data.endswith(b"]}"), data[:80])
        if exact_engine():
            self.assertEqual(data, prefix + b",".join(want) + b"]}", name)
        for r, w in zip(json.loads(data)["results"], want):
            assert_close(self, r, json.loads(w), name)

    def run_models(self, dirs_and_texts):
        # A short batching delay, so that concurrent single texts surely share batches.
        args = {"model": [d for d, _ in dirs_and_texts], "max_texts": 256, "max_delay_us": 2000}
        with Server(**args) as srv:
            for d, texts in dirs_and_texts:
                name = os.path.basename(d)
                for gates, traj in (("summary", False), ("none", False), ("full", True)):
                    with self.subTest(model=name, gates=gates, trajectory=traj):
                        self.check(srv, d, name, texts, gates, traj)
            m = srv.metrics()
            self.assertLess(m['gru_batch_size_bucket{le="1"}'], m["gru_batch_size_count"],
                            "no batch held more than one text: the test would prove nothing")

    def test_tiny_models(self):
        base = tiny_models()
        self.run_models([(os.path.join(base, "tiny-en"), EN), (os.path.join(base, "tiny-zh"), ZH)])

    def test_shipped_models(self):
        models = shipped_models()
        if not models:
            self.skipTest("no shipped models under models/")
        pairs = []
        for d in models:
            zh = "zh" in os.path.basename(d)
            pairs.append((d, (ZH if zh else EN) + dev_texts("waimai_10k" if zh else "sst2")))
        self.run_models(pairs)


if __name__ == "__main__":
    main()
