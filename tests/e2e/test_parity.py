"""test_parity.py - the server's results are gru-predict's results for the same texts.

Same model directories, same texts: every key of every result object must match (labels,
tokens, ids, truncation exactly; floats within 1e-5, the rounding a different batch
composition may cause). Runs on the tiny test models, and on the shipped models when present.
"""
import concurrent.futures
import os
import unittest

from harness import Server, assert_close, main, predict, shipped_models, tiny_models

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


class Parity(unittest.TestCase):
    def check(self, srv, model_dir, name, texts, gates, trajectory):
        want = predict(model_dir, texts, gates, trajectory)
        self.assertEqual(len(want), len(texts))
        for w in want:
            w["model"] = name
        body = {"model": name, "gates": gates, "trajectory": trajectory}
        # One request per text, 16 at a time: they share batches with each other.
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda t: srv.json("POST", "/v1/sentiment", dict(body, text=t)), texts))
        for t, (status, _, doc), w in zip(texts, got, want):
            self.assertEqual(status, 200, doc)
            assert_close(self, doc, w, "%s[%r]" % (name, t[:30]))
        # All texts in one request.
        status, _, doc = srv.json("POST", "/v1/sentiment", dict(body, texts=texts))
        self.assertEqual(status, 200, doc)
        for r, w in zip(doc["results"], want):
            assert_close(self, r, w, name)

    def run_models(self, dirs_and_texts):
        args = {"model": [d for d, _ in dirs_and_texts], "max_texts": 256}
        with Server(**args) as srv:
            for d, texts in dirs_and_texts:
                name = os.path.basename(d)
                for gates, traj in (("summary", False), ("none", False), ("full", True)):
                    with self.subTest(model=name, gates=gates, trajectory=traj):
                        self.check(srv, d, name, texts, gates, traj)

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
