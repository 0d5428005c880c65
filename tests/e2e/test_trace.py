"""test_trace.py - request IDs (X-Request-Id), W3C trace context (traceparent) and model versions:
echoed in the headers, written in the access log, and the version in every answer."""
import json
import os
import re
import time
import unittest

from harness import Server, main, model_version, tiny_models

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def access_line(srv, request_id, timeout=5.0):
    """The access-log line of the request with this id (written when the request completes,
    just after its answer went out: wait a little for it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in list(srv.log):
            if line.startswith("{") and '"access"' in line:
                doc = json.loads(line)
                if doc.get("msg") == "access" and doc.get("request_id") == request_id:
                    return doc
        time.sleep(0.02)
    raise AssertionError("no access line with request_id %r:\n%s" % (request_id, "".join(srv.log[-20:])))


class Trace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(models=tiny_models()).start()
        cls.versions = {n: model_version(os.path.join(tiny_models(), n)) for n in ("tiny-en", "tiny-zh")}

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "gru-serve exited %r:\n%s" % (rc, "".join(cls.srv.log))

    def post(self, body, headers=None, path="/v1/sentiment"):
        return self.srv.request("POST", path, body, headers=headers)

    # -- X-Request-Id ----------------------------------------------------------------------
    def test_request_id_kept_and_logged(self):
        rid = "client-req_42.a:b/c+d=e@f"
        status, h, body = self.post({"text": "good"}, {"X-Request-Id": rid})
        self.assertEqual(status, 200, body)
        self.assertEqual(h["x-request-id"], rid)
        line = access_line(self.srv, rid)
        self.assertEqual((line["path"], line["status"], line["model"]), ("/v1/sentiment", 200, "tiny-en"))
        self.assertEqual(line["model_version"], self.versions["tiny-en"])
        self.assertNotIn("trace_id", line)

    def test_request_id_generated(self):
        ids = set()
        for headers in (None, {"X-Request-Id": "has space"}, {"X-Request-Id": "x" * 129},
                        {"X-Request-Id": "quo\"te"}, {"X-Request-Id": ""}):
            status, h, _ = self.post({"text": "good"}, headers)
            self.assertEqual(status, 200)
            self.assertRegex(h["x-request-id"], HEX32, headers)
            ids.add(h["x-request-id"])
            access_line(self.srv, h["x-request-id"])
        self.assertEqual(len(ids), 5)
        # The longest id kept: 128 bytes.
        status, h, _ = self.post({"text": "good"}, {"X-Request-Id": "y" * 128})
        self.assertEqual(h["x-request-id"], "y" * 128)

    def test_request_id_on_every_answer(self):
        """Errors, health checks, the page and the metrics carry one too."""
        for method, path, body, want in (("GET", "/healthz", None, 200), ("GET", "/nope", None, 404),
                                         ("POST", "/v1/sentiment", "{bad json", 400),
                                         ("DELETE", "/v1/models", None, 405), ("GET", "/metrics", None, 200),
                                         ("GET", "/v2/models/tiny-zh", None, 200)):
            status, h, _ = self.srv.request(method, path, body, headers={"X-Request-Id": "every-" + str(want)})
            self.assertEqual(status, want, path)
            self.assertEqual(h["x-request-id"], "every-" + str(want), path)
            self.assertEqual(access_line(self.srv, "every-" + str(want))["status"], want)

    # -- traceparent -----------------------------------------------------------------------
    def test_traceparent_echoed_with_our_span(self):
        status, h, _ = self.post({"text": "good"}, {"traceparent": TRACEPARENT, "X-Request-Id": "traced-1"})
        self.assertEqual(status, 200)
        m = re.match(r"^00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01$", h["traceparent"])
        self.assertTrue(m, h.get("traceparent"))
        self.assertNotIn(m.group(1), ("00f067aa0ba902b7", "0" * 16))
        line = access_line(self.srv, "traced-1")
        self.assertEqual(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(line["span_id"], m.group(1))
        self.assertEqual(line["parent_id"], "00f067aa0ba902b7")
        # Another request of the same trace gets another span.
        _, h2, _ = self.post({"text": "good"}, {"traceparent": TRACEPARENT})
        self.assertNotEqual(h2["traceparent"], h["traceparent"])
        # Errors are traced too.
        status, h3, body = self.post("{bad", {"traceparent": TRACEPARENT})
        self.assertEqual(status, 400)
        self.assertTrue(h3["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-"))

    def test_traceparent_invalid_is_ignored(self):
        for i, tp in enumerate(("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                                "garbage")):
            rid = "bad-trace-%d" % i
            status, h, body = self.post({"text": "good"}, {"traceparent": tp, "X-Request-Id": rid})
            self.assertEqual(status, 200, body)
            self.assertNotIn("traceparent", h, tp)
            self.assertNotIn("trace_id", access_line(self.srv, rid))

    # -- model versions --------------------------------------------------------------------
    def test_versions_everywhere(self):
        v_en, v_zh = self.versions["tiny-en"], self.versions["tiny-zh"]
        self.assertNotEqual(v_en, v_zh)
        _, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "good"})
        self.assertEqual((doc["model"], doc["model_version"]), ("tiny-en", v_en))
        _, _, doc = self.srv.json("POST", "/v1/sentiment", {"texts": ["好", "不好"], "model": "tiny-zh"})
        self.assertEqual((doc["model"], doc["model_version"]), ("tiny-zh", v_zh))
        _, _, doc = self.srv.json("GET", "/v1/models")
        self.assertEqual({m["name"]: m["version"] for m in doc["models"]}, self.versions)
        _, _, doc = self.srv.json("GET", "/v2/models/tiny-zh")
        self.assertEqual(doc["versions"], [v_zh])
        inp = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["好"]}]}
        status, _, doc = self.srv.json("POST", "/v2/models/tiny-zh/infer", inp)
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["model_name"], doc["model_version"]), ("tiny-zh", v_zh))
        # KServe's path version "1" stays the alias of the version served.
        status, _, doc = self.srv.json("POST", "/v2/models/tiny-zh/versions/1/infer", inp)
        self.assertEqual((status, doc.get("model_version")), (200, v_zh), doc)
        info = [k for k in self.srv.metrics() if k.startswith("gru_model_info{")]
        self.assertEqual(len(info), 2, info)
        for name, v in self.versions.items():
            self.assertEqual(len([k for k in info if 'model="%s"' % name in k and 'version="%s"' % v in k]), 1, info)


if __name__ == "__main__":
    main()
