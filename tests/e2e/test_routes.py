"""test_routes.py - every route of gru-serve, and every error status with its JSON body."""
import json
import os
import re
import socket
import threading
import time
import unittest

from harness import Server, assert_error, main, tiny_models


class Routes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(models=tiny_models(), cors_origin="https://example.org").start()

    @classmethod
    def tearDownClass(cls):
        cls.rc = cls.srv.stop()
        assert cls.rc == 0, "gru-serve exited %r:\n%s" % (cls.rc, "".join(cls.srv.log))

    def test_healthz_readyz(self):
        for path, want in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
            status, h, doc = self.srv.json("GET", path)
            self.assertEqual((status, doc), (200, want))
            self.assertEqual(h["access-control-allow-origin"], "https://example.org")

    def test_head(self):
        status, h, body = self.srv.request("HEAD", "/healthz")
        self.assertEqual((status, body), (200, b""))

    def test_sentiment_single(self):
        status, h, doc = self.srv.json("POST", "/v1/sentiment", {"text": "The food was cold, but the staff were lovely!"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["model"], "tiny-en")
        self.assertIn(doc["label"], ("negative", "positive"))
        self.assertAlmostEqual(sum(doc["probabilities"].values()), 1.0, places=5)
        self.assertEqual(doc["score"], max(doc["probabilities"].values()))
        self.assertEqual(doc["tokens"][:4], ["the", "food", "was", "cold"])
        self.assertEqual(len(doc["token_ids"]), len(doc["tokens"]))
        self.assertFalse(doc["truncated"])
        self.assertEqual(len(doc["gates"]), 1)  # default "summary", one layer, one direction
        g = doc["gates"][0]
        self.assertEqual((g["layer"], g["direction"]), (0, "forward"))
        self.assertEqual(len(g["reset"]), len(doc["tokens"]))
        self.assertEqual(len(g["update"]), len(doc["tokens"]))
        self.assertNotIn("trajectory", doc)
        for k in ("x-queue-time", "x-inference-time"):
            self.assertTrue(h[k].isdigit(), h)

    def test_sentiment_batch_and_options(self):
        texts = ["good", "bad movie", "the plot was boring and the acting awful"]
        status, _, doc = self.srv.json("POST", "/v1/sentiment",
                                       {"texts": texts, "gates": "full", "trajectory": True})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["model"], "tiny-en")
        self.assertEqual(len(doc["results"]), 3)
        for text, r in zip(texts, doc["results"]):
            n = len(r["tokens"])
            self.assertEqual(n, len(text.split()))
            self.assertEqual(len(r["trajectory"]), n)
            g = r["gates"][0]
            self.assertEqual(sorted(g), ["candidate", "direction", "hidden", "layer", "reset", "update"])
            self.assertEqual([len(g["hidden"]), len(g["hidden"][0])], [n, 24])
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "good", "gates": "none"})
        self.assertNotIn("gates", doc)
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "good", "gates": True})
        self.assertEqual(len(doc["gates"][0]["reset"]), 1)

    def test_sentiment_other_model(self):
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "菜很好吃，送得快！", "model": "tiny-zh"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["model"], "tiny-zh")
        self.assertEqual(doc["tokens"], ["菜", "很", "好", "吃", ",", "送", "得", "快", "!"])  # full-width folded
        self.assertEqual(len(doc["gates"]), 2)  # two layers

    def test_truncation(self):
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "good " * 100})
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["truncated"])
        self.assertEqual((len(doc["tokens"]), doc["num_tokens_total"]), (64, 100))

    def test_models(self):
        status, _, doc = self.srv.json("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(doc["default"], "tiny-en")
        names = [m["name"] for m in doc["models"]]
        self.assertEqual(names, ["tiny-en", "tiny-zh"])
        en = doc["models"][0]
        self.assertEqual(en["labels"], ["negative", "positive"])
        self.assertEqual(en["tokenizer"], {"kind": "word", "lowercase": True, "max_tokens": 64})
        self.assertEqual((en["hidden_size"], en["num_layers"], en["bidirectional"]), (24, 1, False))
        self.assertEqual((en["accuracy"], en["macro_f1"]), (0.5, 0.33))  # from the model card
        self.assertGreater(en["num_parameters"], 0)
        self.assertEqual(en["pooling"], "last")

    def test_openapi(self):
        # The document itself equals the route table: tests/unit/test_route.c. Here: it is served.
        status, h, doc = self.srv.json("GET", "/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(doc["openapi"][:2], "3.")
        self.assertIn("/v1/sentiment", doc["paths"])

    def test_metrics(self):
        self.srv.request("POST", "/v1/sentiment", {"texts": ["good", "bad"]})
        m = self.srv.metrics()
        self.assertGreaterEqual(m['gru_requests_total{route="/v1/sentiment",status="200"}'], 1)
        self.assertGreaterEqual(m['gru_texts_total{model="tiny-en"}'], 2)
        self.assertGreaterEqual(m['gru_tokens_total{model="tiny-en"}'], 2)
        self.assertGreaterEqual(m["gru_batch_size_count"], 1)
        self.assertGreaterEqual(m["gru_compute_seconds_count"], 1)
        self.assertGreaterEqual(m["gru_queue_wait_seconds_count"], 2)
        self.assertIn('gru_request_duration_seconds_bucket{route="/v1/sentiment",le="+Inf"}', m)
        self.assertEqual(m["gru_ready"], 1)
        self.assertIn("gru_queue_depth", m)
        self.assertGreater(m["process_resident_memory_bytes"], 0)
        self.assertTrue(any(k.startswith('gru_model_info{model="tiny-zh"') for k in m))
        status, h, _ = self.srv.request("GET", "/metrics")
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))

    def test_kserve_metadata(self):
        status, _, doc = self.srv.json("GET", "/v2")
        self.assertEqual((status, doc["name"]), (200, "gru-serve"))
        self.assertEqual(self.srv.json("GET", "/v2/health/live")[2], {"live": True})
        self.assertEqual(self.srv.json("GET", "/v2/health/ready")[2], {"ready": True})
        for path in ("/v2/models/tiny-zh", "/v2/models/tiny-zh/versions/1"):
            status, _, doc = self.srv.json("GET", path)
            self.assertEqual(status, 200)
            self.assertEqual(doc["name"], "tiny-zh")
            self.assertEqual(doc["inputs"][0]["datatype"], "BYTES")
            self.assertEqual([o["name"] for o in doc["outputs"]], ["label", "probabilities"])
            self.assertEqual(doc["outputs"][1]["shape"], [-1, 2])
        self.assertEqual(self.srv.json("GET", "/v2/models/tiny-en/ready")[2], {"name": "tiny-en", "ready": True})

    def test_preflight(self):
        status, h, body = self.srv.request("OPTIONS", "/v1/sentiment", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(status, 204)
        self.assertEqual(h["access-control-allow-origin"], "https://example.org")
        self.assertIn("POST", h["access-control-allow-methods"])
        self.assertEqual(h["access-control-allow-headers"], "Authorization, Content-Type")

    def test_keep_alive(self):
        c = self.srv.connection()
        try:
            for _ in range(3):
                for path in ("/healthz", "/nope"):
                    self.srv.request("GET", path, conn=c)
                status, _, _ = self.srv.request("POST", "/v1/sentiment", {"text": "good"}, conn=c)
                self.assertEqual(status, 200)
        finally:
            c.close()


class Errors(unittest.TestCase):
    """Every error status the service answers, with its JSON body."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(models=tiny_models(), max_texts=8, body_max_bytes=4096, max_queue=6).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def post(self, body, path="/v1/sentiment", headers=None):
        return self.srv.request("POST", path, body, headers)

    def test_400_malformed_json(self):
        for body in (b"{", b"", b"{\"text\": \"a\"} trailing", b"[1, 2", b"{\"text\": \"a\", \"text\": \"b\"}"):
            assert_error(self, *self.post(body, headers={"Content-Type": "application/json"}), 400, "invalid_json")

    def test_400_wrong_types(self):
        for body in ([1], "\"str\"", {"text": 5}, {"texts": "abc"}, {"texts": ["a", 3]}, {"text": "a", "gates": 1},
                     {"text": "a", "trajectory": "yes"}, {"text": "a", "model": 7}, {"text": "a", "truncate": 0}):
            assert_error(self, *self.post(body if not isinstance(body, str) else body.encode(),
                                          headers={"Content-Type": "application/json"}), 400, "invalid_type")

    def test_404(self):
        assert_error(self, *self.srv.request("GET", "/v1/nothing"), 404, "not_found")
        assert_error(self, *self.post({"text": "a", "model": "no-such-model"}), 404, "model_not_found")
        assert_error(self, *self.srv.request("GET", "/v2/models/no-such-model"), 404, "model_not_found")
        assert_error(self, *self.post({"inputs": []}, "/v2/models/nope/infer"), 404, "model_not_found")
        assert_error(self, *self.srv.request("GET", "/v2/models/tiny-en/versions/2"), 404, "not_found")

    def test_405(self):
        for method, path, allow in (("GET", "/v1/sentiment", "POST"), ("DELETE", "/healthz", "GET"),
                                    ("PUT", "/v2/models/tiny-en/infer", "POST"), ("POST", "/metrics", "GET")):
            status, h, body = self.srv.request(method, path, b"{}" if method in ("POST", "PUT") else None)
            assert_error(self, status, h, body, 405, "method_not_allowed")
            self.assertIn(allow, h["allow"])

    def test_413(self):
        big = json.dumps({"text": "good " * 2000})
        assert_error(self, *self.post(big, headers={"Content-Type": "application/json"}), 413, "body_too_large")
        # Chunked, so the size is only known while reading.
        c = self.srv.connection()
        try:
            c.putrequest("POST", "/v1/sentiment")
            c.putheader("Content-Type", "application/json")
            c.putheader("Transfer-Encoding", "chunked")
            c.endheaders()
            for _ in range(10):
                chunk = b"x" * 1000
                c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            c.send(b"0\r\n\r\n")
            r = c.getresponse()
            assert_error(self, r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), 413, "body_too_large")
        finally:
            c.close()

    def test_415(self):
        for ct in ("text/plain", "multipart/form-data; boundary=x", "application/xml"):
            assert_error(self, *self.post(b"{\"text\": \"a\"}", headers={"Content-Type": ct}), 415,
                         "unsupported_media_type")
        # No Content-Type, or curl -d's default, are taken as JSON (api/README.md).
        for h in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "application/json; charset=utf-8"}):
            self.assertEqual(self.post(b"{\"text\": \"good\"}", headers=h)[0], 200)

    def test_422(self):
        cases = [({}, "missing_text"), ({"model": "tiny-en"}, "missing_text"), ({"texts": []}, "empty_list"),
                 ({"text": ""}, "empty_text"), ({"texts": ["a", ""]}, "empty_text"), ({"text": "   \t "}, "empty_text"),
                 ({"texts": ["a"] * 9}, "too_many_texts"),
                 ({"text": "good " * 65, "truncate": False}, "text_too_long"),
                 ({"text": "a", "texts": ["b"]}, "invalid_request"), ({"text": "a", "gates": "most"}, "invalid_request"),
                 ({"text": "a", "colour": "red"}, "invalid_request")]
        for body, code in cases:
            assert_error(self, *self.post(body), 422, code)
        # Invalid UTF-8: raw bytes, and an escaped lone surrogate.
        for raw in (b"{\"text\": \"caf\xc3\"}", b"{\"text\": \"\xff\xfe\"}", b"{\"text\": \"\\ud800\"}"):
            assert_error(self, *self.post(raw, headers={"Content-Type": "application/json"}), 422, "invalid_utf8")
        # A text of exactly max_tokens is fine without truncation.
        self.assertEqual(self.post({"text": "good " * 64, "truncate": False})[0], 200)

    def test_429_batch_over_queue(self):
        # One request needing more room than the whole queue (6 texts): refused at once.
        status, h, body = self.post({"texts": ["good"] * 7})
        assert_error(self, status, h, body, 429, "queue_full")
        self.assertEqual(h["retry-after"], "1")
        self.assertEqual(self.post({"texts": ["good"] * 6})[0], 200)

    def test_nul_and_odd_text(self):
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "good\u0000bad"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["tokens"], ["good", "bad"])
        status, _, doc = self.srv.json("POST", "/v1/sentiment", {"text": "!!!"})
        self.assertEqual(status, 200, doc)


class QueueLimits(unittest.TestCase):
    """429 when the queue is full, 504 past the deadline, 503 while draining."""

    def test_429_queue_full(self):
        # One worker, a long batching delay: texts wait in the queue, so it fills up.
        with Server(models=tiny_models(), workers=1, max_delay_us=400000, max_queue=4, max_batch=64) as srv:
            results = []

            def one():
                results.append(srv.request("POST", "/v1/sentiment", {"texts": ["good", "bad"]}))

            ts = [threading.Thread(target=one) for _ in range(2)]
            for t in ts:
                t.start()
            deadline = time.time() + 5
            while srv.metrics()["gru_queue_depth"] < 4 and time.time() < deadline:
                time.sleep(0.01)
            for body in ({"text": "good"}, {"texts": ["a", "b"]}):
                status, h, data = srv.request("POST", "/v1/sentiment", body)
                assert_error(self, status, h, data, 429, "queue_full")
                self.assertEqual(h["retry-after"], "1")
            for t in ts:
                t.join()
            self.assertEqual([r[0] for r in results], [200, 200])
            key = 'gru_requests_total{route="/v1/sentiment",status="429"}'
            for _ in range(100):
                m = srv.metrics()
                if m.get(key) == 2:
                    break
                time.sleep(0.01)
            self.assertEqual(m[key], 2)

    def test_504_deadline(self):
        with Server(models=tiny_models(), max_delay_us=1000000, timeout_ms=50) as srv:
            t0 = time.time()
            status, h, data = srv.request("POST", "/v1/sentiment", {"text": "good"})
            assert_error(self, status, h, data, 504, "timeout")
            self.assertLess(time.time() - t0, 0.9)  # answered at the deadline, not after the delay
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)

    def test_503_draining(self):
        # The queued text waits up to 1 s for a fuller batch, so the server is surely still
        # draining when /readyz is asked 50 ms after the signal, even on a loaded machine.
        srv = Server(models=tiny_models(), max_delay_us=1000000).start()
        try:
            keep = srv.connection()
            srv.request("GET", "/healthz", conn=keep)  # an open keep-alive connection
            queued = []
            t = threading.Thread(target=lambda: queued.append(srv.request("POST", "/v1/sentiment", {"text": "good"})))
            t.start()
            time.sleep(0.1)
            srv.terminate()
            time.sleep(0.05)
            status, h, data = srv.request("GET", "/readyz", conn=keep)
            assert_error(self, status, h, data, 503, "draining")
            self.assertEqual(h.get("connection", "").lower(), "close")
            with self.assertRaises(OSError):  # the listening socket is closed
                socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            t.join()
            self.assertEqual(queued[0][0], 200)  # the queued request was still answered
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()


class SlowClients(unittest.TestCase):
    def test_whole_request_deadline(self):
        """A client trickling its headers is cut after --connection-timeout-s; one that vanishes
        mid-body is freed at once; everyone else is served meanwhile."""
        with Server(models=tiny_models(), connection_timeout_s=1) as srv:
            slow = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            slow.sendall(b"POST /v1/sentiment HTTP/1.1\r\n")
            t0 = time.time()
            closed = False
            for ch in b"Host: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
                time.sleep(0.2)
                try:
                    slow.send(bytes([ch]))
                    slow.setblocking(False)
                    if slow.recv(1) == b"":
                        closed = True
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                    break
                finally:
                    slow.setblocking(True)
                self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            self.assertTrue(closed)
            self.assertLess(time.time() - t0, 3.0)
            slow.close()
            for _ in range(5):  # data and FIN together, mid-body
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"text\": \"good")
                s.close()
            self.assertEqual(srv.wait_inflight(timeout=3), 1)  # the /metrics request itself


class Auth(unittest.TestCase):
    def test_401(self):
        with Server(models=tiny_models(), env={"GRU_SERVE_API_KEY": "s3cret"}) as srv:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                            {"Authorization": "Bearer s3cret2"}):
                status, h, body = srv.request("POST", "/v1/sentiment", {"text": "good"}, headers)
                assert_error(self, status, h, body, 401, "unauthorized")
                self.assertEqual(h["www-authenticate"], "Bearer")
                assert_error(self, *srv.request("GET", "/metrics", headers=headers), 401, "unauthorized")
            ok = {"Authorization": "Bearer s3cret"}
            self.assertEqual(srv.request("POST", "/v1/sentiment", {"text": "good"}, ok)[0], 200)
            self.assertEqual(srv.request("GET", "/v1/models", headers=ok)[0], 200)
            for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):  # no key needed
                self.assertEqual(srv.request("GET", path)[0], 200, path)
            self.assertNotIn("s3cret", "".join(srv.log))


class Startup(unittest.TestCase):
    def test_fast_start_and_help(self):
        t0 = time.time()
        with Server(models=tiny_models()) as srv:
            self.assertLess(time.time() - t0, 5.0)  # with the harness, under sanitizers, on a busy machine
            # The harness reads the log on its own thread: the line may land just after /readyz.
            deadline = time.time() + 5
            while True:
                ready = [float(m.group(1)) for m in (re.search(r'"ready in ([0-9.]+) ms', line) for line in list(srv.log))
                         if m]
                if ready or time.time() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual(len(ready), 1)
            self.assertLess(ready[0], 1000.0)  # the server's own count: start to warm and ready
        import subprocess
        from harness import GRU_SERVE
        out = subprocess.run([GRU_SERVE, "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        for flag in ("--port", "--model", "--max-batch", "--max-delay-us", "--max-queue", "GRU_SERVE_PORT"):
            self.assertIn(flag, out.stdout)
        bad = subprocess.run([GRU_SERVE, "--max-batch", "0"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("max-batch", bad.stderr)
        bad = subprocess.run([GRU_SERVE, "--port", "0", "--model", "/nonexistent/model"], capture_output=True,
                             text=True, timeout=10)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("/nonexistent/model", bad.stderr)

    def test_named_model(self):
        with Server(model=["mine=" + os.path.join(tiny_models(), "tiny-zh")]) as srv:
            status, _, doc = srv.json("POST", "/v1/sentiment", {"text": "好"})
            self.assertEqual((status, doc["model"]), (200, "mine"))


if __name__ == "__main__":
    main()
