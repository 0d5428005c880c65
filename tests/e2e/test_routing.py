"""test_routing.py - which model answers a request that names none ("auto"), and how much of each
text the model knew ("unknown_tokens").

The models are tiny random ones (tiny_model.py) whose config.json declares their languages, so
the tests do not depend on the shipped models. The main server loads, in this order:
  tiny-zh (["zh"], the server's default), tiny-en (["en"]), en-second (["en"], never chosen
  by auto: the first model of a language is its default), plain (no languages: only by name).
Every routed answer is compared with the answer of the same text sent to the expected model by
name, so a test fails if another model answered, or if a mixed batch came back out of order.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import GRU_SERVE, Server, assert_close, assert_error, main, tiny_model, tiny_models

EN = "the food was cold but the staff were lovely"
ZH = "菜很好吃，送得快！"


class Routing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gru-e2e-routing-")
        base = tiny_models()
        second = tiny_model.write(os.path.join(cls.tmp, "en-second"), "word", hidden=8, seed=7, languages=["en"])
        plain = tiny_model.write(os.path.join(cls.tmp, "plain"), "word", hidden=8, seed=8)
        cls.srv = Server(model=[os.path.join(base, "tiny-zh"), os.path.join(base, "tiny-en"), second, plain],
                         max_texts=64).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, "gru-serve exited %r:\n%s" % (rc, "".join(cls.srv.log))

    def post(self, body, want_status=200):
        status, _, doc = self.srv.json("POST", "/v1/sentiment", body)
        self.assertEqual(status, want_status, doc)
        return doc

    def named(self, text, model, **opts):
        """The answer of model, asked by name."""
        doc = self.post(dict(opts, text=text, model=model))
        self.assertEqual(doc["model"], model)
        return doc

    def routed(self, text, want_model, **opts):
        """Checks that text without a model, and with "auto", is answered by want_model."""
        want = self.named(text, want_model, **opts)
        for body in (dict(opts, text=text), dict(opts, text=text, model="auto")):
            doc = self.post(body)
            self.assertEqual(doc["model"], want_model, (text, body))
            assert_close(self, doc, want, "$[%r]" % text)
        return want

    # -- one text ----------------------------------------------------------------------------
    def test_english_goes_to_the_english_model(self):
        for text in (EN, "Not bad at all!", "très bien, ça marche"):
            self.routed(text, "tiny-en")

    def test_chinese_goes_to_the_chinese_model(self):
        for text in (ZH, "這家餐廳的服務態度很差", "东西好吃 but 太贵"):
            self.routed(text, "tiny-zh")

    def test_mixed_text_goes_by_the_majority_of_letters(self):
        self.routed("我喜欢iPhone", "tiny-en")  # 3 Han letters, 6 Latin ones
        self.routed("这个手机比iPhone好用多了", "tiny-zh")  # 9 : 6

    def test_no_letters_go_to_the_server_default(self):
        # tiny-zh is the default (the first model loaded): not "en", not the first English model.
        for text in ("12345", "3.14 + 2,500 = 42%", "😀👍🔥", "!!!", "好 a"):  # the last: a 1 : 1 tie
            self.routed(text, "tiny-zh")

    def test_languages_without_a_model_go_to_the_server_default(self):
        for text in ("ラーメンはおいしい", "정말 좋아요", "отличный фильм"):
            self.routed(text, "tiny-zh")

    def test_a_named_model_overrides_auto(self):
        doc = self.named("菜很好吃送得快", "tiny-en")
        self.assertEqual(doc["unknown_tokens"], len(doc["tokens"]))  # it knows none of them...
        self.assertIn(doc["label"], ("negative", "positive"))  # ...and still answers
        self.named(EN, "plain")  # a model without languages, by name
        doc = self.post({"texts": [EN, ZH, "12345"], "model": "en-second"})
        self.assertEqual(doc["model"], "en-second")
        self.assertEqual([r["model"] for r in doc["results"]], ["en-second"] * 3)

    def test_first_model_of_a_language_is_its_default(self):
        self.routed("a lovely film", "tiny-en")  # not en-second, loaded after it

    # -- batches -----------------------------------------------------------------------------
    def test_mixed_batch(self):
        cases = [(EN, "tiny-en"), (ZH, "tiny-zh"), ("12345", "tiny-zh"), ("😀😀", "tiny-zh"),
                 ("我喜欢iPhone", "tiny-en"), ("东西好吃 but 太贵", "tiny-zh"), ("good " * 100, "tiny-en"),
                 ("好" * 100, "tiny-zh"), ("bad", "tiny-en")]
        # Full gates and trajectories: the two models differ in layers and units, so every
        # text's buffers have their own model's layout.
        opts = {"gates": "full", "trajectory": True}
        want = [self.named(t, m, **opts) for t, m in cases]
        for model in (None, "auto"):
            body = dict(opts, texts=[t for t, _ in cases])
            if model:
                body["model"] = model
            doc = self.post(body)
            self.assertEqual(doc["model"], "auto")  # several models answered: each result says which
            self.assertEqual([r["model"] for r in doc["results"]], [m for _, m in cases])
            for (t, _), r, w in zip(cases, doc["results"], want):
                assert_close(self, r, w, "$[%r]" % t[:20])

    def test_batch_of_one_language_names_its_model(self):
        doc = self.post({"texts": [EN, "bad", "12 apples"]})
        self.assertEqual(doc["model"], "tiny-en")
        doc = self.post({"texts": ["12345", ZH]})
        self.assertEqual(doc["model"], "tiny-zh")

    def test_mixed_batch_counts_texts_per_model(self):
        def texts_of(m):
            return m.get('gru_texts_total{model="tiny-en"}', 0), m.get('gru_texts_total{model="tiny-zh"}', 0)
        en0, zh0 = texts_of(self.srv.metrics())
        self.post({"texts": [EN, ZH, ZH, "bad", ZH]})
        en1, zh1 = texts_of(self.srv.metrics())
        self.assertEqual((en1 - en0, zh1 - zh0), (2, 3))

    def test_mixed_batch_errors_name_the_text_and_its_model(self):
        # One bad text fails the whole request, as before routing.
        doc = self.post({"texts": [EN, ZH, "好" * 100], "truncate": False}, 422)
        self.assertEqual(doc["error"]["code"], "text_too_long")
        self.assertIn("#2", doc["error"]["message"])
        self.assertIn("tiny-zh", doc["error"]["message"])

    # -- unknown tokens ----------------------------------------------------------------------
    def test_unknown_tokens_count(self):
        for text, model in ((EN, "tiny-en"), ("the xyzzy was plugh", "tiny-en"), ("菜很好吃，送得快！", "tiny-zh"),
                            ("菜很甜", "tiny-zh")):
            doc = self.named(text, model)
            self.assertEqual(doc["unknown_tokens"], doc["token_ids"].count(1), text)
        self.assertEqual(self.named("the xyzzy was plugh", "tiny-en")["unknown_tokens"], 2)
        self.assertEqual(self.named("the food was good", "tiny-en")["unknown_tokens"], 0)

    def test_all_unknown_still_answers(self):
        for body in ({"text": "xyzzy plugh"}, {"text": "12345"}, {"text": "😀👍🔥"}):
            doc = self.post(body)
            self.assertEqual(doc["unknown_tokens"], len(doc["tokens"]), body)
            self.assertGreater(len(doc["tokens"]), 0)
            self.assertIn(doc["label"], ("negative", "positive"))
            self.assertAlmostEqual(sum(doc["probabilities"].values()), 1.0, places=5)

    def test_unknown_tokens_count_only_what_the_model_read(self):
        doc = self.named("xyzzy " * 100, "tiny-en")  # max_tokens 64
        self.assertTrue(doc["truncated"])
        self.assertEqual((doc["num_tokens_total"], len(doc["tokens"]), doc["unknown_tokens"]), (100, 64, 64))

    # -- the model list and KServe -----------------------------------------------------------
    def test_models_lists_languages(self):
        status, _, doc = self.srv.json("GET", "/v1/models")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["default"], "tiny-zh")
        langs = {m["name"]: m["languages"] for m in doc["models"]}
        self.assertEqual(langs, {"tiny-zh": ["zh"], "tiny-en": ["en"], "en-second": ["en"], "plain": []})
        self.assertEqual(doc["language_defaults"], {"zh": "tiny-zh", "en": "tiny-en"})

    def test_kserve_stays_per_named_model(self):
        req = {"inputs": [{"name": "INPUT0", "shape": [2, 1], "datatype": "BYTES", "data": [[ZH], [EN]]}]}
        status, _, doc = self.srv.json("POST", "/v2/models/tiny-en/infer", req)
        self.assertEqual((status, doc["model_name"]), (200, "tiny-en"), doc)
        want = [self.named(t, "tiny-en")["label"] for t in (ZH, EN)]
        self.assertEqual([o for o in doc["outputs"] if o["name"] == "label"][0]["data"], want)
        status, h, body = self.srv.request("POST", "/v2/models/auto/infer", req)
        assert_error(self, status, h, body, 404, "model_not_found")

    def test_unknown_model_name_is_still_an_error(self):
        doc = self.post({"text": EN, "model": "Auto"}, 404)
        self.assertEqual(doc["error"]["code"], "model_not_found")


class RoutingDefaults(unittest.TestCase):
    def test_models_without_languages_keep_the_old_behaviour(self):
        # Neither model declares a language: every text goes to the server's default, as before.
        tmp = tempfile.mkdtemp(prefix="gru-e2e-routing-")
        try:
            a = tiny_model.write(os.path.join(tmp, "a"), "word", hidden=8, seed=1)
            b = tiny_model.write(os.path.join(tmp, "b"), "char", hidden=8, seed=2)
            with Server(model=[a, b]) as srv:
                status, _, doc = srv.json("POST", "/v1/sentiment", {"texts": [EN, ZH]})
                self.assertEqual(status, 200, doc)
                self.assertEqual((doc["model"], [r["model"] for r in doc["results"]]), ("a", ["a", "a"]))
                status, _, doc = srv.json("GET", "/v1/models")
                self.assertEqual(doc["language_defaults"], {})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_queue_room_is_reserved_for_every_text_of_a_mixed_batch(self):
        with Server(models=tiny_models(), max_queue=3) as srv:
            status, h, body = srv.request("POST", "/v1/sentiment", {"texts": [EN, ZH, EN, ZH]})
            assert_error(self, status, h, body, 429, "queue_full")
            status, _, doc = srv.json("POST", "/v1/sentiment", {"texts": [EN, ZH, EN]})
            self.assertEqual((status, [r["model"] for r in doc["results"]]), (200, ["tiny-en", "tiny-zh", "tiny-en"]))


class BadLanguages(unittest.TestCase):
    """A config.json with a bad "languages" stops the start with a message naming the file."""

    def start_fails(self, *args):
        out = subprocess.run([GRU_SERVE, "--host", "127.0.0.1", "--port", "0", *args], capture_output=True,
                             text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0, "gru-serve started:\n" + out.stderr)
        return " ".join(json.loads(line).get("msg", "") for line in out.stderr.splitlines() if line.startswith("{"))

    def test_bad_languages(self):
        tmp = tempfile.mkdtemp(prefix="gru-e2e-routing-")
        try:
            for i, bad in enumerate(("en", ["EN"], [1], ["english"], [""], ["en", "en"], {"en": 1}, ["x"] * 20)):
                d = tiny_model.write(os.path.join(tmp, "m%d" % i), "word", hidden=8, seed=1)
                p = os.path.join(d, "config.json")
                with open(p) as f:
                    c = json.load(f)
                c["languages"] = bad
                with open(p, "w") as f:
                    json.dump(c, f)
                msg = self.start_fails("--model", d)
                self.assertIn(p, msg, bad)
                self.assertIn("languages", msg, bad)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_auto_is_not_a_model_name(self):
        msg = self.start_fails("--model", "auto=" + os.path.join(tiny_models(), "tiny-en"))
        self.assertIn('"auto"', msg)


if __name__ == "__main__":
    main()
