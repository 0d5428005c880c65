"""harness.py - start the real gru-serve on a free loopback port and talk HTTP to it.

Standard library only. The binaries come from the environment (tests/e2e.cmake sets them):
  GRU_SERVE     path of gru-serve          GRU_PREDICT   path of gru-predict
  GRU_MODELS    the shipped models directory (tests that need real models skip without it)
  GRU_E2E_HTTP_THREADS  --http-threads for every server (the suite runs in each MHD mode)

Usage:
    with Server(models=tiny_models()) as srv:
        status, headers, body = srv.request("POST", "/v1/sentiment", {"text": "good"})
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tiny_model  # noqa: E402

GRU_SERVE = os.environ.get("GRU_SERVE", os.path.join(HERE, "..", "..", "build", "server", "gru-serve"))
GRU_PREDICT = os.environ.get("GRU_PREDICT", os.path.join(HERE, "..", "..", "build", "tools", "gru-predict"))
GRU_MODELS = os.environ.get("GRU_MODELS", os.path.join(HERE, "..", "..", "models"))
HTTP_THREADS = os.environ.get("GRU_E2E_HTTP_THREADS", "2")

_tiny_dir = None
_tiny_lock = threading.Lock()


def tiny_models():
    """A directory with two small random models, made once: tiny-en (word tokens, "languages":
    ["en"]) and tiny-zh (char tokens, ["zh"]). In name order tiny-en is the server's default."""
    global _tiny_dir
    with _tiny_lock:
        if _tiny_dir is None:
            _tiny_dir = tempfile.mkdtemp(prefix="gru-e2e-models-")
            tiny_model.write(os.path.join(_tiny_dir, "tiny-en"), "word", hidden=24, seed=1, languages=["en"])
            tiny_model.write(os.path.join(_tiny_dir, "tiny-zh"), "char", hidden=16, layers=2, seed=2,
                             languages=["zh"])
        return _tiny_dir


def model_version(model_dir):
    """A model directory's version as model/sha256.h defines it, computed here independently:
    the first 16 hex digits of SHA-256 over each file's name, NUL, u64 LE length and bytes."""
    import hashlib
    import struct
    h = hashlib.sha256()
    for f in ("config.json", "vocab.txt", "model.safetensors"):
        with open(os.path.join(model_dir, f), "rb") as fh:
            b = fh.read()
        h.update(f.encode() + b"\0" + struct.pack("<Q", len(b)) + b)
    return h.hexdigest()[:16]


def shipped_models():
    """The directories of the shipped models (each with config.json), or []."""
    if not os.path.isdir(GRU_MODELS):
        return []
    return sorted(os.path.join(GRU_MODELS, d) for d in os.listdir(GRU_MODELS)
                  if os.path.isfile(os.path.join(GRU_MODELS, d, "config.json")))


class Server:
    """A gru-serve process. Arguments are flags without "--" (a list value repeats the flag)."""

    def __init__(self, models=None, model=None, env=None, **flags):
        self.args = [GRU_SERVE, "--host", "127.0.0.1", "--port", "0", "--http-threads", HTTP_THREADS]
        if models:
            self.args += ["--models-dir", models]
        for m in ([model] if isinstance(model, str) else model or []):
            self.args += ["--model", m]
        for k, v in flags.items():
            self.args += ["--" + k.replace("_", "-"), str(v)]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.signaled = False
        self.port = None
        self.log = []
        self._reader = None

    # -- lifetime --------------------------------------------------------------------------
    def start(self, wait_ready=True, timeout=10.0):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
        port_seen = threading.Event()

        def read():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                m = re.search(r"listening on \S+ port (\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    port_seen.set()
            port_seen.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not port_seen.wait(timeout) or self.port is None:
            self.kill()
            raise RuntimeError("gru-serve did not start:\n" + "".join(self.log))
        if wait_ready:
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    if self.request("GET", "/readyz")[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.01)
            self.kill()
            raise RuntimeError("gru-serve never became ready:\n" + "".join(self.log))
        return self

    def terminate(self, sig=signal.SIGTERM):
        """Sends sig (a second SIGTERM cuts the drain short, so stop() then only waits)."""
        self.signaled = True
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signals the server (unless terminate() did already) and returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None and not self.signaled:
            self.terminate(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        if self._reader:
            self._reader.join(5)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stderr and not self.proc.stderr.closed:
            if self._reader:
                self._reader.join(5)
            self.proc.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.kill()

    # -- HTTP ------------------------------------------------------------------------------
    def connection(self, timeout=30.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, timeout=30.0):
        """Returns (status, headers as a lower-cased dict, body bytes). body: bytes, str, or an
        object sent as JSON (with Content-Type: application/json unless headers say else)."""
        own = conn is None
        c = conn or self.connection(timeout)
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        status, h, data = self.request(method, path, body, headers, conn)
        return status, h, json.loads(data) if data else None

    def wait_inflight(self, want=1, timeout=10.0):
        """Waits until gru_inflight_requests is want (the /metrics request itself counts 1) and
        returns the last reading. Read it once: a request is counted until its completion runs,
        just after its last byte went out, so the next reading may briefly include the previous
        /metrics request."""
        deadline = time.time() + timeout
        while True:
            n = self.metrics()["gru_inflight_requests"]
            if n == want or time.time() > deadline:
                return n
            time.sleep(0.02)

    def metrics(self, headers=None):
        """GET /metrics parsed into {name_with_labels: value}."""
        status, _, data = self.request("GET", "/metrics", headers=headers)
        assert status == 200, status
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def predict(model_dir, texts, gates="summary", trajectory=False):
    """gru-predict's JSON lines for texts (one result per text)."""
    args = [GRU_PREDICT, "--model", model_dir, "--gates", gates]
    if trajectory:
        args.append("--trajectory")
    out = subprocess.run(args, input="\n".join(texts) + "\n", capture_output=True, text=True, check=False)
    return [json.loads(line) for line in out.stdout.splitlines()]


def assert_close(tc, got, want, path="$", tol=1e-5):
    """Structural equality with floats compared within tol: a text's numbers depend on its
    batch only through BLAS rounding (seen up to ~3e-6 in full gates after a few steps)."""
    if isinstance(want, float) or isinstance(got, float):
        tc.assertTrue(isinstance(got, (int, float)) and abs(got - want) <= tol * max(1.0, abs(want)),
                      "%s: %r != %r" % (path, got, want))
    elif isinstance(want, dict):
        tc.assertIsInstance(got, dict, path)
        tc.assertEqual(sorted(got), sorted(want), path)
        for k in want:
            assert_close(tc, got[k], want[k], path + "." + k, tol)
    elif isinstance(want, list):
        tc.assertIsInstance(got, list, path)
        tc.assertEqual(len(got), len(want), path)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(tc, g, w, "%s[%d]" % (path, i), tol)
    else:
        tc.assertEqual(got, want, path)


def assert_error(tc, status, headers, body, want_status, want_code=None):
    """Checks an error answer: the status, JSON content type, and the one error shape."""
    tc.assertEqual(status, want_status, body)
    tc.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
    doc = json.loads(body)
    tc.assertEqual(sorted(doc), ["error"], doc)
    tc.assertEqual(sorted(doc["error"]), ["code", "message"], doc)
    tc.assertIsInstance(doc["error"]["message"], str)
    tc.assertTrue(doc["error"]["message"])
    if want_code:
        tc.assertEqual(doc["error"]["code"], want_code, doc)
    return doc


def main():
    unittest.main(verbosity=2)
