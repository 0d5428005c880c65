"""test_explain.py - POST /v1/explain, POST /v1/tokenize and "offsets" on /v1/sentiment.

Every leave-one-out and edit result must equal what /v1/sentiment answers for the edited text
(cut out of the original text with the token offsets, and checked to tokenize to the expected
ids): a unidirectional word model, a 2-layer char model (Chinese) and a 2-layer bidirectional
one. Then the offsets, the limits (422, 413), and the explain metrics.
"""
import os
import tempfile
import unittest

import tiny_model
from harness import Server, assert_close, assert_error, main, tiny_models

TOL = 1e-6


def extra_models():
    """tiny-bi (2-layer bidirectional word model) and tiny-long (max_tokens 1024)."""
    d = tempfile.mkdtemp(prefix="gru-e2e-explain-")
    tiny_model.write(os.path.join(d, "tiny-bi"), "word", hidden=16, layers=2, bidirectional=True, seed=3)
    tiny_model.write(os.path.join(d, "tiny-long"), "word", hidden=16, seed=4, max_tokens=1024)
    return d


def cut(text, offsets, drop, insert=None):
    """text without the code points of the tokens in drop (and insert, {index: text}, in their place)."""
    cps = list(text)
    insert = insert or {}
    for i in sorted(set(drop) | set(insert), reverse=True):
        s, e = offsets[i]
        cps[s:e] = list(" " + insert[i] + " ") if i in insert else [" "]
    return "".join(cps)


class Explain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        extra = extra_models()
        cls.srv = Server(models=tiny_models(), model=["tiny-en=" + os.path.join(tiny_models(), "tiny-en"),
                                                      "tiny-zh=" + os.path.join(tiny_models(), "tiny-zh"),
                                                      "tiny-bi=" + os.path.join(extra, "tiny-bi"),
                                                      "tiny-long=" + os.path.join(extra, "tiny-long")],
                         explain_max_tokens=40, explain_max_texts=3, max_result_mb=1).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "gru-serve exited %r:\n%s" % (rc, "".join(cls.srv.log))

    def sentiment(self, model, text, trajectory=False):
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": text, "model": model, "trajectory": trajectory})
        self.assertEqual(status, 200, doc)
        return doc

    def check_loo(self, model, text, trajectory):
        status, h, ex = self.srv.json("POST", "/v1/explain", {"text": text, "model": model, "trajectory": trajectory})
        self.assertEqual(status, 200, ex)
        self.assertTrue(h["x-inference-time"].isdigit())
        plain = self.sentiment(model, text, trajectory)
        for k in ("label", "probabilities", "tokens", "token_ids", "gates"):
            assert_close(self, ex[k], plain[k], k, TOL)
        target = ex["target"]
        self.assertEqual(target, plain["label"])
        n = len(ex["tokens"])
        self.assertEqual([a["index"] for a in ex["attributions"]], list(range(n)))
        for a in ex["attributions"]:
            i = a["index"]
            self.assertEqual(a["token"], ex["tokens"][i])
            self.assertEqual(a["offsets"], ex["offsets"][i])
            without = cut(text, ex["offsets"], [i])
            want_ids = ex["token_ids"][:i] + ex["token_ids"][i + 1:]
            _, _, tk = self.srv.json("POST", "/v1/tokenize", {"text": without, "model": model})
            self.assertEqual(tk["token_ids"], want_ids, without)
            ref = self.sentiment(model, without, trajectory)
            assert_close(self, a["p_without"], ref["probabilities"][target], "p_without[%d]" % i, TOL)
            assert_close(self, a["delta"], ex["probabilities"][target] - ref["probabilities"][target], "delta", 1e-5)
            self.assertEqual(a["label_without"], ref["label"])
            if trajectory and "trajectory" in ref:
                assert_close(self, a["trajectory_without"], ref["trajectory"], "trajectory_without[%d]" % i, TOL)
            else:
                self.assertNotIn("trajectory_without", a)
        deltas = [abs(a["delta"]) for a in ex["attributions"]]
        self.assertEqual(sorted(ex["ranking"]), list(range(n)))
        self.assertEqual([deltas[i] for i in ex["ranking"]], sorted(deltas, reverse=True))
        return ex

    def test_loo_word_model(self):
        self.check_loo("tiny-en", "the food was cold but the staff were lovely", True)

    def test_loo_char_model_two_layers(self):
        self.check_loo("tiny-zh", "菜很好吃，送得太慢了", True)

    def test_loo_bidirectional(self):
        ex = self.check_loo("tiny-bi", "the movie was not good but the acting was great", True)
        self.assertNotIn("trajectory", ex)  # no trajectory for bidirectional models

    def test_edits_match_sentiment(self):
        text = "the food was not good but the service was friendly"
        edits = [{"remove": [3]}, {"replace": {"4": "awful", "9": "very rude"}}, {"remove_span": [3, 4]},
                 {"replace": {"0": ""}}]
        for model in ("tiny-en", "tiny-bi"):
            status, _, ex = self.srv.json("POST", "/v1/explain",
                                          {"text": text, "model": model, "edits": edits, "trajectory": True,
                                           "target": "negative"})
            self.assertEqual(status, 200, ex)
            self.assertEqual(ex["target"], "negative")
            off = ex["offsets"]
            texts = [cut(text, off, [3]), cut(text, off, [], {4: "awful", 9: "very rude"}), cut(text, off, [3, 4]),
                     cut(text, off, [0])]
            self.assertEqual(len(ex["edits"]), 4)
            for e, want, edited in zip(ex["edits"], edits, texts):
                self.assertEqual(e["edit"], want)
                ref = self.sentiment(model, edited, True)
                self.assertEqual(e["num_tokens"], len(ref["tokens"]))
                self.assertEqual(e["label"], ref["label"])
                assert_close(self, e["probabilities"], ref["probabilities"], "edit", TOL)
                if model == "tiny-en":
                    assert_close(self, e["trajectory"], ref["trajectory"], "edit trajectory", TOL)
            # remove [3] is also token 3's leave-one-out
            assert_close(self, ex["edits"][0]["probabilities"]["negative"], ex["attributions"][3]["p_without"], "", 0)

    def test_several_texts(self):
        status, _, doc = self.srv.json("POST", "/v1/explain", {"texts": ["good food", "bad service"], "model": "tiny-en"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["model"], "tiny-en")
        self.assertEqual([len(r["attributions"]) for r in doc["results"]], [2, 2])

    def test_routed_by_language(self):
        # No "model": each text goes to its language's model, as on /v1/sentiment.
        texts = ["the food was good", "菜很好吃"]
        status, _, doc = self.srv.json("POST", "/v1/explain", {"texts": texts})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["model"], "auto")
        self.assertEqual([r["model"] for r in doc["results"]], ["tiny-en", "tiny-zh"])
        _, _, plain = self.srv.json("POST", "/v1/sentiment", {"texts": texts})
        for ex, ref in zip(doc["results"], plain["results"]):
            assert_close(self, ex["probabilities"], ref["probabilities"], "routed", TOL)
            self.assertEqual(ex["tokens"], ref["tokens"])
        status, _, tk = self.srv.json("POST", "/v1/tokenize", {"texts": texts})
        self.assertEqual((tk["model"], [r["model"] for r in tk["results"]]), ("auto", ["tiny-en", "tiny-zh"]))

    def test_tokenize_and_offsets(self):
        text = "Don\u2019t \uff27\uff2f\uff2f\uff24 staff\u2026 \U0001F600"
        status, _, tk = self.srv.json("POST", "/v1/tokenize", {"text": text, "model": "tiny-en"})
        self.assertEqual(status, 200, tk)
        self.assertEqual(tk["tokens"], ["do", "n't", "good", "staff", "...", "\U0001F600"])
        self.assertEqual(tk["offsets"], [[0, 2], [2, 5], [6, 10], [11, 16], [16, 17], [18, 19]])
        self.assertEqual(tk["unknown"], [i == 1 for i in tk["token_ids"]])
        self.assertTrue(tk["unknown"][-1])
        status, _, zh = self.srv.json("POST", "/v1/tokenize", {"texts": ["我 很 好", "好吃"], "model": "tiny-zh"})
        self.assertEqual([r["offsets"] for r in zh["results"]], [[[0, 1], [2, 3], [4, 5]], [[0, 1], [1, 2]]])
        doc = self.sentiment("tiny-en", text)
        self.assertNotIn("offsets", doc)
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": text, "model": "tiny-en", "offsets": True})
        self.assertEqual(doc["offsets"], tk["offsets"])

    def test_limits_and_errors(self):
        long_text = " ".join(["good"] * 41)
        status, h, body = self.srv.request("POST", "/v1/explain", {"text": long_text, "model": "tiny-en"})
        assert_error(self, status, h, body, 422, "text_too_long")
        status, _, doc = self.srv.json("POST", "/v1/explain", {"text": long_text, "model": "tiny-en", "truncate": True})
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["truncated"])
        self.assertEqual(len(doc["attributions"]), 40)
        status, h, body = self.srv.request("POST", "/v1/explain", {"texts": ["a", "b", "c", "d"]})
        assert_error(self, status, h, body, 422, "too_many_texts")
        for bad in ({"text": "good food", "edits": [{"remove": [2]}]},
                    {"text": "good food", "target": "neutral"},
                    {"text": "good food", "edits": [{"remove": [0]}] * 33},
                    {"text": "good food", "edits": [{"remove_span": [1, 0]}]},
                    {"texts": ["good food"], "edits": [{"remove": [0]}]},
                    {"text": "good", "offsets": True}):
            status, h, body = self.srv.request("POST", "/v1/explain", bad)
            assert_error(self, status, h, body, 422, "invalid_request")
        status, h, body = self.srv.request("POST", "/v1/explain", {"text": "good", "edits": "no"})
        assert_error(self, status, h, body, 400, "invalid_type")
        status, h, body = self.srv.request("POST", "/v1/tokenize", {"text": "good", "gates": "full"})
        assert_error(self, status, h, body, 422, "invalid_request")
        status, h, body = self.srv.request("GET", "/v1/explain")
        assert_error(self, status, h, body, 405, "method_not_allowed")
        # 400 tokens: the 400 x 399 variant ids (0.6 MiB) fit --max-result-mb 1, but not with
        # 400 x 399 x 2 trajectory floats (1.2 MiB more)
        status, h, body = self.srv.request("POST", "/v1/explain", {"text": " ".join(["good"] * 400), "model": "tiny-long",
                                                                  "truncate": True, "trajectory": True})
        self.assertEqual(status, 200)  # cut to --explain-max-tokens 40 first: small
        srv = Server(models=tiny_models(), model=["tiny-long=" + os.path.join(extra_models(), "tiny-long")],
                     explain_max_tokens=512, max_result_mb=1).start()
        try:
            status, h, body = srv.request("POST", "/v1/explain", {"text": " ".join(["good"] * 400), "trajectory": True})
            assert_error(self, status, h, body, 413, "result_too_large")
            status, _, doc = srv.json("POST", "/v1/explain", {"text": " ".join(["good"] * 400)})
            self.assertEqual(status, 200)  # without trajectories it fits
            self.assertEqual(len(doc["attributions"]), 400)
            status, h, body = srv.request("POST", "/v1/explain", {"text": " ".join(["good"] * 513)})
            assert_error(self, status, h, body, 422, "text_too_long")
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_metrics_count_explain_apart(self):
        before = self.srv.metrics()
        status, _, doc = self.srv.json("POST", "/v1/explain", {"text": "good food today", "model": "tiny-en",
                                                              "edits": [{"remove": [0]}]})
        self.assertEqual(status, 200, doc)
        after = self.srv.metrics()
        key = '{model="tiny-en"}'
        self.assertEqual(after["gru_explain_texts_total" + key] - before.get("gru_explain_texts_total" + key, 0), 1)
        self.assertEqual(after["gru_explain_variants_total" + key] - before.get("gru_explain_variants_total" + key, 0), 4)
        # 3 leave-one-out variants share prefixes: 2 + 1 + 0 tokens; "remove 0" shares none: 2
        self.assertEqual(after["gru_explain_tokens_total" + key] - before.get("gru_explain_tokens_total" + key, 0), 5)
        self.assertEqual(after.get("gru_texts_total" + key, 0), before.get("gru_texts_total" + key, 0))


if __name__ == "__main__":
    main()
