#!/usr/bin/python3
"""run_valgrind.py - one end-to-end run of gru-serve under valgrind memcheck (issue 6).

Starts the real gru-serve (the harness of tests/e2e/, with two tiny models, an API key and
CORS) under `valgrind --leak-check=full`, sends a modest set of real requests - every route,
single/batch/gates full/trajectory/KServe, and a few errors (400, 401, 404, 405, 413, 415,
422, 429, a client vanishing mid-body) - then SIGTERM. Passes when the server exits 0 and
memcheck reports zero errors and zero definitely lost bytes. Exit 77 (ctest: skipped) when
valgrind is not installed.

    GRU_SERVE=build/server/gru-serve tests/valgrind/run_valgrind.py
Suppressions: gru-serve.supp next to this file (see the reasons there).
"""
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import Server, tiny_models  # noqa: E402

KEY = "valgrind-key"
ADMIN = "valgrind-admin"
AUTH = {"Authorization": "Bearer " + KEY}
ERROR_EXIT = 97


def main():
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("valgrind is not installed: skipped (apt-get install valgrind)")
        return 77
    log_dir = tempfile.mkdtemp(prefix="gru-valgrind-")
    log = os.path.join(log_dir, "memcheck.%p.log")
    srv = Server(models=tiny_models(), api_key=KEY, cors_origin="https://example.org", workers=2, max_queue=16,
                 body_max_bytes=65536, admin_key=ADMIN, env={"OPENBLAS_NUM_THREADS": "1"})
    srv.args = [valgrind, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,possible",
                "--errors-for-leak-kinds=definite", "--error-exitcode=%d" % ERROR_EXIT, "--num-callers=30",
                "--suppressions=" + os.path.join(HERE, "gru-serve.supp"), "--log-file=" + log] + srv.args
    t0 = time.time()
    srv.start(timeout=180)
    print("started under valgrind in %.1f s (port %d)" % (time.time() - t0, srv.port))
    checks = []

    def expect(want, method, path, body=None, headers=None):
        h = dict(AUTH)
        h.update(headers or {})
        status, _, data = srv.request(method, path, body, h, timeout=120)
        checks.append((method, path, want, status))
        if status != want:
            print("UNEXPECTED %s %s: %d (wanted %d) %r" % (method, path, status, want, data[:200]))

    try:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/models", "/v2", "/v2/health/live",
                     "/v2/health/ready", "/v2/models/tiny-en", "/v2/models/tiny-zh/versions/1",
                     "/v2/models/tiny-en/ready"):
            expect(200, "GET", path)
        expect(200, "HEAD", "/v1/models")
        expect(204, "OPTIONS", "/v1/sentiment", headers={"Origin": "https://example.org",
                                                         "Access-Control-Request-Method": "POST"})
        expect(200, "POST", "/v1/sentiment", {"text": "the food was cold but the staff were lovely"})
        expect(200, "POST", "/v1/sentiment", {"texts": ["good film", "bad plot", "so so"] * 3, "gates": "full",
                                              "trajectory": True})
        expect(200, "POST", "/v1/sentiment", {"text": "菜很好吃，送得快！", "model": "tiny-zh", "gates": "none"})
        expect(200, "POST", "/v1/sentiment", {"text": "good " * 100})  # truncated
        # Routed by language: texts of two models (and the default's) in one request.
        expect(200, "POST", "/v1/sentiment", {"texts": ["good film", "菜很好吃", "12345", "bad"], "model": "auto",
                                              "gates": "full", "trajectory": True})
        expect(200, "POST", "/v2/models/tiny-en/infer",
               {"id": "1", "inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]}],
                "outputs": [{"name": "probabilities"}]})
        # Errors.
        expect(400, "POST", "/v1/sentiment", b"{\"text\": ", {"Content-Type": "application/json"})
        expect(400, "POST", "/v1/sentiment", {"text": 5})
        status = srv.request("POST", "/v1/sentiment", {"text": "good"})[0]
        checks.append(("POST", "/v1/sentiment (no key)", 401, status))
        expect(404, "GET", "/nope")
        expect(404, "POST", "/v1/sentiment", {"text": "good", "model": "nope"})
        expect(405, "GET", "/v1/sentiment")
        expect(413, "POST", "/v1/sentiment", {"text": "good " * 20000})
        expect(415, "POST", "/v1/sentiment", b"{\"text\": \"good\"}", {"Content-Type": "text/plain"})
        expect(422, "POST", "/v1/sentiment", {"text": ""})
        expect(422, "POST", "/v1/sentiment", b"{\"text\": \"\\ud800\"}", {"Content-Type": "application/json"})
        expect(429, "POST", "/v1/sentiment", {"texts": ["good"] * 17})
        # A client that vanishes mid-body (reset), and a chunked body.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
            s.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                      b"\r\nContent-Length: 1000\r\n\r\n{\"text\": \"go")
            time.sleep(0.2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
            body = b"{\"texts\": [\"good\", \"bad\"]}"
            s.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                      b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            reply = s.recv(200)
            checks.append(("POST", "/v1/sentiment (chunked)", 200, int(reply.split()[1]) if reply else 0))
        # Trace context, the repository routes and a SIGHUP reload (issue 13): the reload thread,
        # the model sets and the freeing of a model whose last request ended.
        expect(200, "POST", "/v1/sentiment", {"text": "good"},
               {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Request-Id": "vg-1"})
        admin = {"Authorization": "Bearer " + ADMIN}
        expect(200, "POST", "/v2/repository/index", b"", admin)
        expect(200, "POST", "/v2/repository/models/tiny-zh/unload", b"", admin)
        expect(404, "POST", "/v1/sentiment", {"text": "好", "model": "tiny-zh"})
        expect(200, "POST", "/v2/repository/models/tiny-zh/load", b"", admin)
        expect(200, "POST", "/v1/sentiment", {"text": "好", "model": "tiny-zh"})
        n_log = len(srv.log)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 120
        while time.time() < deadline and not any("reload done" in l for l in srv.log[n_log:]):
            time.sleep(0.05)
        checks.append(("SIGHUP", "reload done", 1, int(any("reload done" in l for l in srv.log[n_log:]))))
        expect(200, "POST", "/v1/sentiment", {"text": "good"})
        time.sleep(0.7)  # the sweep frees the tiny-zh that was unloaded
    finally:
        t1 = time.time()
        rc = srv.stop(timeout=180)
        srv.kill()
    print("SIGTERM -> exit %d in %.1f s" % (rc, time.time() - t1))
    bad = [c for c in checks if c[2] != c[3]]
    text = ""
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name)) as f:
            text += f.read()
    m = re.findall(r"ERROR SUMMARY: ([\d,]+) errors", text)
    errors = int(m[-1].replace(",", "")) if m else -1
    m = re.findall(r"definitely lost: ([\d,]+) bytes", text)
    definite = int(m[-1].replace(",", "")) if m else 0
    summary = text[text.find("HEAP SUMMARY"):] if "HEAP SUMMARY" in text else text[-3000:]
    print(re.sub(r"(?m)^==\d+== ?", "", summary).strip())
    print("%d requests, %d with an unexpected status; memcheck: %d errors, %d bytes definitely lost; exit %d"
          % (len(checks), len(bad), errors, definite, rc))
    ok = rc == 0 and errors == 0 and definite == 0 and not bad
    if not ok:
        print("FAILED; the full memcheck log:\n" + text[-20000:])
        for c in bad:
            print("unexpected status: %s %s wanted %d got %d" % c)
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
