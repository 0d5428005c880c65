"""test_kserve.py - the KServe Open Inference Protocol v2 subset: infer round trip and errors."""
import unittest

from harness import Server, assert_close, assert_error, main, tiny_models


class KServe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(models=tiny_models(), max_texts=16).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def infer(self, body, model="tiny-en", version=False):
        path = "/v2/models/%s%s/infer" % (model, "/versions/1" if version else "")
        return self.srv.json("POST", path, body)

    def test_round_trip(self):
        texts = ["good", "the food was cold", "terrible service but lovely staff"]
        req = {"id": "req-42", "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]}
        status, h, doc = self.infer(req)
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["model_name"], doc["id"]), ("tiny-en", "req-42"))
        self.assertRegex(doc["model_version"], r"^[0-9a-f]{16}$")  # the content version (test_trace.py)
        self.assertTrue(h["x-inference-time"].isdigit())
        label, probs = doc["outputs"]
        self.assertEqual((label["name"], label["datatype"], label["shape"]), ("label", "BYTES", [3]))
        self.assertEqual((probs["name"], probs["datatype"], probs["shape"]), ("probabilities", "FP32", [3, 2]))
        self.assertEqual(probs["parameters"]["labels"], ["negative", "positive"])
        # The same numbers as the native API.
        _, _, native = self.srv.json("POST", "/v1/sentiment", {"texts": texts, "gates": "none"})
        for i, r in enumerate(native["results"]):
            self.assertEqual(label["data"][i], r["label"])
            assert_close(self, probs["data"][2 * i:2 * i + 2],
                         [r["probabilities"]["negative"], r["probabilities"]["positive"]])

    def test_outputs_and_shapes(self):
        req = {"inputs": [{"name": "INPUT0", "shape": [2, 1], "datatype": "BYTES", "data": [["好吃"], ["太慢了"]]}],
               "outputs": [{"name": "probabilities"}]}
        status, _, doc = self.infer(req, "tiny-zh", version=True)
        self.assertEqual(status, 200, doc)
        self.assertNotIn("id", doc)
        self.assertEqual([o["name"] for o in doc["outputs"]], ["probabilities"])
        self.assertEqual(len(doc["outputs"][0]["data"]), 4)
        req["outputs"] = [{"name": "label"}, {"name": "probabilities"}, {"name": "label"}]
        status, _, doc = self.infer(req, "tiny-zh")
        self.assertEqual([o["name"] for o in doc["outputs"]], ["label", "probabilities"])
        req["outputs"] = [{"name": "probabilities"}, {"name": "label"}]  # the requested order
        status, _, doc = self.infer(req, "tiny-zh")
        self.assertEqual([o["name"] for o in doc["outputs"]], ["probabilities", "label"])

    def test_errors(self):
        raw = lambda body, model="tiny-en": self.srv.request("POST", "/v2/models/%s/infer" % model, body)
        t = lambda **kw: {"inputs": [dict({"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}, **kw)]}
        assert_error(self, *raw({}), 422, "missing_text")
        assert_error(self, *raw({"inputs": {}}), 400, "invalid_type")
        assert_error(self, *raw({"inputs": [t()["inputs"][0]] * 2}), 422, "invalid_request")
        assert_error(self, *raw(t(datatype="FP32")), 422, "invalid_request")
        assert_error(self, *raw(t(shape=[2])), 422, "invalid_request")
        assert_error(self, *raw(t(shape="1")), 400, "invalid_type")
        assert_error(self, *raw(t(data=[1])), 400, "invalid_type")
        assert_error(self, *raw(t(data=[""])), 422, "empty_text")
        assert_error(self, *raw(t(shape=[0], data=[])), 422, "empty_list")
        assert_error(self, *raw(t(shape=[17], data=["a"] * 17)), 422, "too_many_texts")
        assert_error(self, *raw(dict(t(), outputs=[{"name": "logits"}])), 422, "invalid_request")
        assert_error(self, *raw(dict(t(), id=5)), 400, "invalid_type")
        assert_error(self, *raw(t(), model="nope"), 404, "model_not_found")
        assert_error(self, *self.srv.request("GET", "/v2/models/tiny-en/infer"), 405, "method_not_allowed")


if __name__ == "__main__":
    main()
