"""test_reload.py - model hot reload under load: SIGHUP and the KServe repository routes.

A models directory with three small models serves a bounded load of concurrent keep-alive
clients (a few threads, a few seconds) while the directory changes: one model gets new weights,
one is added, one removed, one broken (a truncated weight file). Then SIGHUP. Required: zero
connection errors, zero non-2xx answers except 404 for the removed model's name (and only once it
is gone), /readyz 200 throughout, every model's answers switch from the old version to the new
one exactly once per client, the broken model keeps serving its old version, and the reload is
logged with the reason of the failure. Prints the request figures and the reload time.
"""
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

import tiny_model
from harness import Server, assert_error, main, model_version

TEXTS = ["good", "the food was cold but the staff were lovely", "bad movie", "not good at all", "loved it"]




def replace_model(path, **kw):
    """Writes a new model next to path, then moves each file over the old one (rename: a
    reader sees each file whole, old or new)."""
    tmp = path + ".new"
    tiny_model.write(tmp, **kw)
    for f in os.listdir(tmp):
        os.replace(os.path.join(tmp, f), os.path.join(path, f))
    os.rmdir(tmp)


class Load:
    """Client threads, each on its own keep-alive connection, sending /v1/sentiment for a
    random model of `models` (a list that the test may extend) until stopped."""

    def __init__(self, srv, models, threads=4, headers=None):
        self.srv, self.models, self.n = srv, models, threads
        self.headers = dict(headers or {}, **{"Content-Type": "application/json"})
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = []   # (thread, t_sent, t_done, model, status, version or error code)
        self.errors = []    # exceptions: resets, timeouts
        self.ready_bad = []  # /readyz answers other than 200
        self.threads = []

    def client(self, k):
        rng = random.Random(k)
        conn = self.srv.connection(timeout=30)
        while not self.stop.is_set():
            model = rng.choice(list(self.models))
            body = json.dumps({"text": rng.choice(TEXTS), "model": model, "gates": "none"})
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/sentiment", body=body, headers=self.headers)
                r = conn.getresponse()
                doc = json.loads(r.read() or b"null")
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append("%s: %r" % (model, e))
                conn.close()
                conn = self.srv.connection(timeout=30)
                continue
            what = doc.get("model_version") if r.status == 200 else doc["error"]["code"]
            with self.lock:
                self.answers.append((k, t0, time.monotonic(), model, r.status, what))
        conn.close()

    def readiness(self):
        while not self.stop.is_set():
            try:
                status = self.srv.request("GET", "/readyz", timeout=10)[0]
            except OSError as e:
                status = repr(e)
            if status != 200:
                with self.lock:
                    self.ready_bad.append(status)
            time.sleep(0.01)

    def __enter__(self):
        self.threads = [threading.Thread(target=self.client, args=(k,)) for k in range(self.n)]
        self.threads.append(threading.Thread(target=self.readiness))
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def wait_for(srv, pred, timeout=30.0):
    """Polls GET /v1/models until pred({name: version}) holds; returns the time it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, _, doc = srv.json("GET", "/v1/models")
        if status == 200 and pred({m["name"]: m["version"] for m in doc["models"]}):
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError("the models never became as expected:\n" + "".join(srv.log[-30:]))


class Reload(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gru-e2e-reload-")
        tiny_model.write(os.path.join(self.dir, "alpha"), "word", hidden=24, seed=1)
        tiny_model.write(os.path.join(self.dir, "beta"), "word", hidden=16, seed=2)
        tiny_model.write(os.path.join(self.dir, "gamma"), "char", hidden=16, seed=3)
        self.v0 = {n: model_version(os.path.join(self.dir, n)) for n in ("alpha", "beta", "gamma")}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def reload_logs(self, srv):
        return [json.loads(l) for l in srv.log if l.startswith("{") and "reload" in l]

    def test_sighup_under_load(self):
        srv = Server(models=self.dir, workers=2, log_level="debug").start()
        try:
            models = ["alpha", "beta", "gamma"]
            with Load(srv, models) as load:
                time.sleep(1.0)
                # The changes: new weights, a new model, a removed one, a broken one.
                replace_model(os.path.join(self.dir, "alpha"), kind="word", hidden=24, seed=11)
                tiny_model.write(os.path.join(self.dir, "delta"), "word", hidden=8, seed=4)
                shutil.rmtree(os.path.join(self.dir, "gamma"))
                st = os.path.join(self.dir, "beta", "model.safetensors")
                with open(st, "rb") as f:
                    data = f.read()
                with open(st + ".tmp", "wb") as f:
                    f.write(data[: len(data) // 2])
                os.replace(st + ".tmp", st)
                v_alpha = model_version(os.path.join(self.dir, "alpha"))
                v_delta = model_version(os.path.join(self.dir, "delta"))
                self.assertNotEqual(v_alpha, self.v0["alpha"])
                t_hup = time.monotonic()
                srv.proc.send_signal(signal.SIGHUP)
                took = wait_for(srv, lambda v: v.get("alpha") == v_alpha and "delta" in v and "gamma" not in v)
                t_swap = time.monotonic()
                models.append("delta")
                time.sleep(1.0)
            answers, errors = load.answers, load.errors
            # -- the figures -------------------------------------------------------------------
            by = {}
            for a in answers:
                by[(a[3], a[4])] = by.get((a[3], a[4]), 0) + 1
            dur = max(a[2] for a in answers) - min(a[1] for a in answers)
            print("\nreload under load: %d requests in %.1f s (%.0f/s), %d client threads, %d connection errors, "
                  "%d /readyz failures; seen by the clients %.0f ms after SIGHUP; by (model, status): %s"
                  % (len(answers), dur, len(answers) / dur, load.n, len(errors), len(load.ready_bad), took * 1e3,
                     sorted(by.items())), file=sys.stderr)
            for line in self.reload_logs(srv):
                print("  log: " + line["msg"], file=sys.stderr)
            # -- the checks --------------------------------------------------------------------
            self.assertEqual(errors, [])
            self.assertEqual(load.ready_bad, [])
            bad = [a for a in answers if a[4] != 200 and not (a[3] == "gamma" and a[4] == 404)]
            self.assertEqual(bad, [])
            # gamma: 404 only in answers that arrived after SIGHUP (a request sent just before the
            # signal may be read by the server after the swap: its answer, not its start, is
            # after t_hup); every answer that arrived before is 200.
            for a in answers:
                if a[3] == "gamma" and a[4] == 404:
                    self.assertGreater(a[2], t_hup)
                    self.assertEqual(a[5], "model_not_found")
                if a[3] == "gamma" and a[2] < t_hup:
                    self.assertEqual(a[4], 200)
            # alpha: per client, old answers then new ones, never back; new ones after the swap.
            for k in range(load.n):
                seq = [a[5] for a in answers if a[0] == k and a[3] == "alpha"]
                self.assertTrue(set(seq) <= {self.v0["alpha"], v_alpha}, set(seq))
                switched = seq.index(v_alpha) if v_alpha in seq else len(seq)
                self.assertEqual(seq[switched:], [v_alpha] * (len(seq) - switched), "client %d went back" % k)
            late = [a for a in answers if a[3] == "alpha" and a[1] > t_swap]
            self.assertTrue(late and all(a[5] == v_alpha for a in late))
            self.assertTrue(any(a[5] == self.v0["alpha"] for a in answers if a[3] == "alpha"))
            # beta: broken on disk, so the old one keeps serving; delta answers with its version.
            self.assertEqual({a[5] for a in answers if a[3] == "beta"}, {self.v0["beta"]})
            self.assertEqual({a[5] for a in answers if a[3] == "delta"}, {v_delta})
            self.assertGreater(sum(1 for a in answers if a[3] == "delta"), 0)
            msgs = " | ".join(l["msg"] for l in self.reload_logs(srv))
            self.assertRegex(msgs, r"beta.*model\.safetensors", msgs)
            # The replaced and the removed model leave memory once their last request has ended
            # (the loop frees them at its next sweep, every 500 ms).
            for name, v in (("alpha", self.v0["alpha"]), ("gamma", self.v0["gamma"])):
                want = "model %s version %s freed" % (name, v)
                deadline = time.time() + 5
                while time.time() < deadline and not any(want in l for l in srv.log):
                    time.sleep(0.02)
                self.assertTrue(any(want in l for l in srv.log), want)
            self.assertFalse(any("model beta version %s freed" % self.v0["beta"] in l for l in srv.log))
            # Nothing changed: a second SIGHUP keeps every model (same versions, no load).
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while time.time() < deadline and sum("reload done" in l for l in srv.log) < 2:
                time.sleep(0.02)
            self.assertEqual(sum("reload done" in l for l in srv.log), 2, "".join(srv.log[-10:]))
            _, _, doc = srv.json("GET", "/v1/models")
            self.assertEqual({m["name"]: m["version"] for m in doc["models"]},
                             {"alpha": v_alpha, "beta": self.v0["beta"], "delta": v_delta})
            # Metrics: the model-info series carry the versions now served.
            info = [k for k in srv.metrics() if k.startswith("gru_model_info{")]
            self.assertEqual(len(info), 3, info)
            self.assertTrue(any('version="%s"' % v_alpha in k for k in info), info)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, "".join(srv.log[-20:]))

    def test_repository_routes(self):
        key = "admin-secret-1"
        auth = {"Authorization": "Bearer " + key}
        with Server(models=self.dir, workers=1) as plain:
            # No --admin-key: the routes do not exist.
            for method, path in (("POST", "/v2/repository/index"), ("GET", "/v2/repository/index"),
                                 ("POST", "/v2/repository/models/alpha/load")):
                status, h, body = plain.request(method, path, b"" if method == "POST" else None, auth)
                assert_error(self, status, h, body, 404, "not_found")
        srv = Server(models=self.dir, workers=1, admin_key=key, api_key="user-key").start()
        try:
            user = {"Authorization": "Bearer user-key"}
            status, h, body = srv.request("POST", "/v2/repository/index", b"", user)
            assert_error(self, status, h, body, 401, "unauthorized")
            status, _, doc = srv.json("POST", "/v2/repository/index", headers=auth)
            self.assertEqual(status, 200, doc)
            self.assertEqual(sorted((m["name"], m["version"], m["state"]) for m in doc),
                             sorted((n, v, "READY") for n, v in self.v0.items()))
            with Load(srv, ["alpha", "beta"], threads=3, headers=user) as load:
                time.sleep(0.5)
                # Unload gamma: gone from the served models; the repository still lists it.
                status, _, doc = srv.json("POST", "/v2/repository/models/gamma/unload", headers=auth)
                self.assertEqual((status, doc["name"], doc["state"]), (200, "gamma", "UNAVAILABLE"), doc)
                status, h, body = srv.request("POST", "/v1/sentiment", {"text": "好", "model": "gamma"}, user)
                assert_error(self, status, h, body, 404, "model_not_found")
                status, _, doc = srv.json("POST", "/v2/repository/index", headers=auth)
                self.assertEqual({m["name"]: m["state"] for m in doc},
                                 {"alpha": "READY", "beta": "READY", "gamma": "UNAVAILABLE"})
                # Load it back; load a changed alpha; a broken load leaves the old one serving.
                status, _, doc = srv.json("POST", "/v2/repository/models/gamma/load", headers=auth)
                self.assertEqual((status, doc["state"], doc["model_version"]), (200, "READY", self.v0["gamma"]))
                replace_model(os.path.join(self.dir, "alpha"), kind="word", hidden=24, seed=21)
                v_alpha = model_version(os.path.join(self.dir, "alpha"))
                status, _, doc = srv.json("POST", "/v2/repository/models/alpha/load", headers=auth)
                self.assertEqual((status, doc["model_version"]), (200, v_alpha), doc)
                with open(os.path.join(self.dir, "beta", "config.json"), "w") as f:
                    f.write("{broken")
                status, h, body = srv.request("POST", "/v2/repository/models/beta/load", b"", auth)
                doc = assert_error(self, status, h, body, 400, "model_load_failed")
                self.assertIn("config.json", doc["error"]["message"])
                time.sleep(0.3)
            self.assertEqual(load.errors, [])
            self.assertEqual(load.ready_bad, [])
            self.assertEqual([a for a in load.answers if a[4] != 200], [])
            self.assertEqual({a[5] for a in load.answers if a[3] == "beta"}, {self.v0["beta"]})
            _, _, doc = srv.json("GET", "/v1/models", headers=user)
            self.assertEqual({m["name"]: m["version"] for m in doc["models"]},
                             {"alpha": v_alpha, "beta": self.v0["beta"], "gamma": self.v0["gamma"]})
            # Unknown names; and the last models cannot all go (readiness never drops).
            status, h, body = srv.request("POST", "/v2/repository/models/nope/load", b"", auth)
            assert_error(self, status, h, body, 404, "model_not_found")
            for n in ("alpha", "gamma"):
                self.assertEqual(srv.json("POST", "/v2/repository/models/%s/unload" % n, headers=auth)[0], 200)
            status, h, body = srv.request("POST", "/v2/repository/models/beta/unload", b"", auth)
            assert_error(self, status, h, body, 409, "last_model")
            self.assertEqual(srv.request("GET", "/readyz")[0], 200)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, "".join(srv.log[-20:]))


if __name__ == "__main__":
    main()
