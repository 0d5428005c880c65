"""test_faults.py - faults (issue 6): SIGTERM during mixed load, broken model directories,
and worker-pool saturation.

- SIGTERM under load: every request the server accepted gets its complete answer, /readyz
  answers 503 while in-flight requests are still being answered, new connections are refused,
  exit 0 within --drain-timeout-ms.
- A model directory that is truncated, corrupt or mismatched: gru-serve exits non-zero at
  startup with a message naming the file (and the tensor, where there is one).
- Saturation: a tiny --max-queue under load gives 429 queue_full with Retry-After at once,
  and the latency of the admitted requests stays bounded.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

from harness import GRU_SERVE, Server, assert_error, main, tiny_models
import tiny_model
from test_bad_input import Reader, post_raw_body

J = {"Content-Type": "application/json"}


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


# ------------------------------------------------------------------------------------------

class SigtermUnderLoad(unittest.TestCase):
    DRAIN_MS = 5000
    CLIENTS = 24

    # (kind, path, body, expected status)
    KINDS = [
        ("single", "/v1/sentiment", {"text": "the food was cold but the staff were lovely"}, 200),
        ("batch", "/v1/sentiment", {"texts": ["good film", "awful plot and boring acting", "so so"] * 4}, 200),
        ("full", "/v1/sentiment", {"text": "the service was slow", "gates": "full", "trajectory": True}, 200),
        ("kserve", "/v2/models/work-en/infer",
         {"id": "k", "inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]}]}, 200),
        ("big_batch", "/v1/sentiment", {"texts": ["the plot was boring but the acting was great " * 8] * 32,
                                         "gates": "none"}, 200),
        ("invalid_json", "/v1/sentiment", b"{\"text\": ", 400),
        ("empty_text", "/v1/sentiment", {"text": ""}, 422),
    ]

    def test_every_accepted_request_answered(self):
        d = tiny_model.write(os.path.join(tempfile.mkdtemp(prefix="gru-e2e-faults-"), "work-en"), "word", hidden=192,
                             seed=11, max_tokens=64)
        srv = Server(model=[d], workers=1, drain_timeout_ms=self.DRAIN_MS).start()
        reqs = [(k, post_raw_body(b if isinstance(b, bytes) else json.dumps(b).encode(), p), want)
                for k, p, b, want in self.KINDS]
        lock = threading.Lock()
        sent, answers, lost, refused, wrong = [], [], [], [0], []
        signaled = threading.Event()
        t_sig = [None]

        def client(idx):
            sock, reader, i = None, None, idx
            while True:
                if sock is None:
                    try:
                        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
                        reader = Reader(sock)
                    except ConnectionRefusedError:
                        with lock:
                            refused[0] += 1
                        if signaled.is_set():
                            return
                        time.sleep(0.01)
                        continue
                kind, data, want = reqs[i % len(reqs)]
                i += 1
                try:
                    sock.sendall(data)
                except OSError:
                    sock.close()  # closed before our request went out: not accepted
                    sock = None
                    continue
                t_sent = time.time()
                with lock:
                    sent.append(t_sent)
                try:
                    r = reader.response()
                except (OSError, AssertionError) as e:
                    r, err = None, repr(e)
                else:
                    err = "closed without an answer"
                t_ans = time.time()
                if r is None:
                    with lock:
                        lost.append((kind, t_sent, err))
                    sock.close()
                    sock = None
                    continue
                with lock:
                    answers.append((kind, r.status, t_ans))
                    if r.status != want:
                        wrong.append((kind, r.status, r.body[:120]))
                if r.headers.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None

        ready_log = []  # (time, status) of /readyz on one keep-alive connection

        def monitor():
            with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
                rd = Reader(s)
                while True:
                    try:
                        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                        r = rd.response()
                    except OSError:
                        return
                    if r is None:
                        return
                    ready_log.append((time.time(), r.status, r.headers, r.body))
                    if r.status != 200:
                        return
                    time.sleep(0.002)

        try:
            threads = [threading.Thread(target=client, args=(k,)) for k in range(self.CLIENTS)]
            mon = threading.Thread(target=monitor)
            for t in threads + [mon]:
                t.start()
            time.sleep(1.5)
            t_sig[0] = time.time()
            signaled.set()
            srv.terminate()
            rc = srv.proc.wait(self.DRAIN_MS / 1000.0 + 10)
            t_exit = time.time()
            for t in threads + [mon]:
                t.join(20)
            self.assertFalse(any(t.is_alive() for t in threads), "a client hangs")
            srv.stop()
        finally:
            srv.kill()
        t0 = t_sig[0]
        after = [a for a in answers if a[2] > t0]
        sys.stderr.write("\n%d requests sent, %d answered (%d after SIGTERM), %d refused connects, exit %d in %.0f ms "
                         "after SIGTERM\n" % (len(sent), len(answers), len(after), refused[0], rc, (t_exit - t0) * 1e3))
        self.assertEqual(rc, 0, "".join(srv.log[-20:]))
        self.assertLess(t_exit - t0, self.DRAIN_MS / 1000.0, "the drain took longer than --drain-timeout-ms")
        self.assertEqual(wrong, [], "answers with the wrong status")
        # Lost = sent on an open connection, then closed without an answer. A request sent in the
        # last instants before exit may race the final close of an idle keep-alive connection
        # (the server ends after 100 ms without arrivals); anything older must have been answered.
        old_lost = [x for x in lost if x[1] < t_exit - 0.3]
        self.assertEqual(old_lost, [], "accepted requests lost")
        if lost:
            sys.stderr.write("note: %d requests sent within 300 ms of the exit got no answer: %s\n"
                             % (len(lost), lost[:3]))
        # Enough traffic that the signal met a busy server (not a throughput check: under ASan on
        # a loaded 2-core machine 1.5 s brings 40-100 answers; the drain is judged above).
        self.assertGreater(len(answers), 20, "too little traffic before the signal: the test proves little")
        self.assertTrue(after, "nothing was in flight at the signal: the test proves nothing")
        # Readiness flipped first: /readyz said 503 draining while answers were still going out.
        flips = [x for x in ready_log if x[1] != 200]
        self.assertTrue(flips, "/readyz never answered 503 after SIGTERM: %s" % ready_log[-3:])
        t_flip, status, h, body = flips[0]
        assert_error(self, status, h, body, 503, "draining")
        self.assertGreater(t_flip, t0)
        self.assertLess(t_flip, max(a[2] for a in after), "inference answers had stopped before /readyz said 503")
        self.assertGreater(refused[0], 0, "new connections were still accepted after SIGTERM")


# ------------------------------------------------------------------------------------------
# Broken model directories

def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def st_read(path):
    data = read_bytes(path)
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def st_write(path, header, payload):
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    write_bytes(path, struct.pack("<Q", len(hb)) + hb + payload)


def cut(keep):
    """Truncates model.safetensors: keep(len) is how many bytes stay."""
    def f(d):
        p = os.path.join(d, "model.safetensors")
        data = read_bytes(p)
        n = keep(len(data))
        assert 0 <= n < len(data)
        write_bytes(p, data[:n])
    return f


def set_dtype(d):
    p = os.path.join(d, "model.safetensors")
    h, body = st_read(p)
    h["gru.weight_hh_l0"]["dtype"] = "F64"  # a dtype the loader does not read (F16 and BF16 it does)
    st_write(p, h, body)


def drop_tensor(d):
    p = os.path.join(d, "model.safetensors")
    h, body = st_read(p)
    del h["fc.bias"]
    st_write(p, h, body)


def add_tensor(d):
    p = os.path.join(d, "model.safetensors")
    h, body = st_read(p)
    h["attention.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [len(body), len(body) + 8]}
    st_write(p, h, body + b"\0" * 8)


def nan_weight(d):
    p = os.path.join(d, "model.safetensors")
    h, body = st_read(p)
    a, b = h["gru.bias_ih_l0"]["data_offsets"]
    body = bytearray(body)
    body[a:a + 4] = np.float32(np.nan).tobytes()
    st_write(p, h, bytes(body))


def reshape_tensor(d):
    """fc.weight's shape says [3, H] (the bytes of [2, H] plus zeros): a 2-label config."""
    p = os.path.join(d, "model.safetensors")
    h, body = st_read(p)
    a, b = h["fc.weight"]["data_offsets"]
    rows, cols = h["fc.weight"]["shape"]
    extra = cols * 4
    for t in h.values():
        if isinstance(t, dict) and "data_offsets" in t and t["data_offsets"][0] >= b:
            t["data_offsets"] = [t["data_offsets"][0] + extra, t["data_offsets"][1] + extra]
    h["fc.weight"] = {"dtype": "F32", "shape": [rows + 1, cols], "data_offsets": [a, b + extra]}
    st_write(p, h, body[:b] + b"\0" * extra + body[b:])


def edit_config(**kv):
    def f(d):
        p = os.path.join(d, "config.json")
        c = json.loads(read_bytes(p))
        c.update(kv)
        write_bytes(p, json.dumps(c).encode())
    return f


def write_file(name, data):
    return lambda d: write_bytes(os.path.join(d, name), data)


def remove_file(name):
    return lambda d: os.remove(os.path.join(d, name))


def header_garbage(d):
    p = os.path.join(d, "model.safetensors")
    data = read_bytes(p)
    write_bytes(p, data[:8] + b"{not json at all" + data[24:])


# (name, corruption, file the message must name, tensor it must name or None)
BROKEN = [
    ("truncated_half", cut(lambda n: n // 2), "model.safetensors", "any"),
    ("truncated_last_bytes", cut(lambda n: n - 100), "model.safetensors", "any"),
    ("truncated_last_byte", cut(lambda n: n - 1), "model.safetensors", "any"),
    ("truncated_in_header", cut(lambda n: 40), "model.safetensors", None),
    ("truncated_in_length", cut(lambda n: 5), "model.safetensors", None),
    ("empty_weights", cut(lambda n: 0), "model.safetensors", None),
    ("header_length_garbage", write_file("model.safetensors", b"\xff" * 8 + b"{}"), "model.safetensors", None),
    ("header_not_json", header_garbage, "model.safetensors", None),
    ("dtype_f64", set_dtype, "model.safetensors", "gru.weight_hh_l0"),
    ("missing_tensor", drop_tensor, "model.safetensors", "fc.bias"),
    ("unexpected_tensor", add_tensor, "model.safetensors", "attention.weight"),
    ("nan_weight", nan_weight, "model.safetensors", "gru.bias_ih_l0"),
    ("tensor_shape_vs_labels", reshape_tensor, "model.safetensors", "fc.weight"),
    ("config_hidden_size", edit_config(hidden_size=32), "model.safetensors", "any"),
    ("config_layers", edit_config(num_layers=2), "model.safetensors", "any"),
    ("config_vocab_size", edit_config(vocab_size=1000), "any", None),
    ("vocab_short", write_file("vocab.txt", b"<pad>\n<unk>\ngood\n"), "vocab.txt", None),
    ("vocab_missing", remove_file("vocab.txt"), "vocab.txt", None),
    ("config_missing", remove_file("config.json"), "config.json", None),
    ("config_not_json", write_file("config.json", b"{\"hidden_size\": "), "config.json", None),
    ("weights_missing", remove_file("model.safetensors"), "model.safetensors", None),
]


class BrokenModels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gru-e2e-broken-")
        cls.good = tiny_model.write(os.path.join(cls.tmp, "good-en"), "word", hidden=8, seed=3)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def broken(self, name, corrupt):
        d = os.path.join(self.tmp, name)
        shutil.copytree(self.good, d)
        corrupt(d)
        return d

    def start_fails(self, *models, flags=()):
        args = [GRU_SERVE, "--host", "127.0.0.1", "--port", "0", *flags]
        for m in models:
            args += ["--model", m]
        t0 = time.time()
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return out.returncode, out.stderr, time.time() - t0

    def check(self, name, corrupt, file, tensor):
        d = self.broken(name, corrupt)
        rc, err, took = self.start_fails(d)
        self.assertNotEqual(rc, 0, "gru-serve started with a broken model:\n" + err)
        self.assertLess(took, 10)
        errors = [json.loads(line)["msg"] for line in err.splitlines()
                  if line.startswith("{") and json.loads(line).get("level") == "error"]
        self.assertTrue(errors, err)
        msg = " ".join(errors)
        self.assertIn(d, msg)  # the directory...
        if file == "any":
            self.assertTrue(any(f in msg for f in ("config.json", "vocab.txt", "model.safetensors")), msg)
        else:
            self.assertIn(file, msg)  # ...and the file
        if tensor == "any":
            self.assertRegex(msg, r"tensors? (embedding|gru|fc)\.\w+", "no tensor named")
        elif tensor:
            self.assertIn(tensor, msg)
        return msg

    def test_good_model_starts(self):
        with Server(model=[self.good]) as srv:
            self.assertEqual(srv.request("POST", "/v1/sentiment", {"text": "good"})[0], 200)

    def test_one_bad_among_good_refuses_to_start(self):
        """By default one broken model stops the start (the safe default), naming the broken one."""
        bad = self.broken("bad-among-good", cut(lambda n: n // 2))
        rc, err, _ = self.start_fails(self.good, bad)
        self.assertNotEqual(rc, 0)
        self.assertIn(bad, err)
        self.assertIn("model.safetensors", err)

    def test_skip_bad_models_starts_with_the_good_ones(self):
        """--skip-bad-models: the broken model (first, so it would have been the default) is left
        out with its error logged; the good one serves and becomes the default."""
        bad = self.broken("bad-skipped", cut(lambda n: n // 2))
        with Server(model=["bad=" + bad, "good=" + self.good], skip_bad_models="true") as srv:
            status, _, body = srv.request("GET", "/v1/models")
            self.assertEqual(status, 200)
            names = [m["name"] for m in json.loads(body)["models"]]
            self.assertEqual(names, ["good"])
            status, _, body = srv.request("POST", "/v1/sentiment", {"text": "good"})
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["model"], "good")
            self.assertEqual(srv.request("POST", "/v1/sentiment", {"text": "good", "model": "bad"})[0], 404)

    def test_skip_bad_models_needs_one_good_model(self):
        bad = self.broken("bad-alone", set_dtype)
        rc, err, _ = self.start_fails(bad, flags=["--skip-bad-models"])
        self.assertNotEqual(rc, 0)
        self.assertIn("no model could be loaded", err)
        self.assertIn("gru.weight_hh_l0", err)

    def test_bad_model_under_models_dir(self):
        """The default --models-dir scan hits the same check."""
        root = os.path.join(self.tmp, "models-dir")
        os.makedirs(root)
        shutil.copytree(self.good, os.path.join(root, "a-good"))
        shutil.copytree(self.good, os.path.join(root, "b-bad"))
        set_dtype(os.path.join(root, "b-bad"))
        out = subprocess.run([GRU_SERVE, "--host", "127.0.0.1", "--port", "0", "--models-dir", root],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("b-bad", out.stderr)
        self.assertIn("gru.weight_hh_l0", out.stderr)


def _make_broken(name, corrupt, file, tensor):
    def test(self):
        self.check(name, corrupt, file, tensor)
    test.__name__ = "test_broken_" + name
    test.__doc__ = "%s: exit non-zero, naming %s%s" % (name, file, " and tensor " + tensor if tensor else "")
    return test


for _b in BROKEN:
    setattr(BrokenModels, "test_broken_" + _b[0], _make_broken(*_b))


# ------------------------------------------------------------------------------------------

class Saturation(unittest.TestCase):
    """--max-queue 8 texts, one worker, 32 clients: the queue is full most of the time."""
    SECONDS = 4.0
    CLIENTS = 32

    def test_429_and_bounded_latency(self):
        d = tiny_model.write(os.path.join(tempfile.mkdtemp(prefix="gru-e2e-sat-"), "sat-en"), "word", hidden=128,
                             seed=13, max_tokens=64)
        with Server(model=[d], workers=1, max_queue=8, max_batch=8, timeout_ms=10000) as srv:
            text = "the food was cold but the staff were lovely " * 4
            bodies = [json.dumps({"text": text}).encode(), json.dumps({"texts": [text] * 3}).encode()]
            # Unloaded service time of a full batch, for the report.
            solo = []
            for _ in range(10):
                t = time.time()
                srv.request("POST", "/v1/sentiment", {"texts": [text] * 8})
                solo.append(time.time() - t)
            lock = threading.Lock()
            ok, full, other, health = [], [], [], []
            stop = time.time() + self.SECONDS

            def client(k):
                with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
                    rd = Reader(s)
                    i = k
                    while time.time() < stop:
                        t = time.time()
                        s.sendall(post_raw_body(bodies[i % 2]))
                        r = rd.response()
                        dt = time.time() - t
                        i += 1
                        with lock:
                            if r is None:
                                other.append(("closed", None))
                                return
                            if r.status == 200:
                                ok.append(dt)
                            elif r.status == 429:
                                full.append((dt, r))
                            else:
                                other.append((r.status, r.body[:120]))

            def prober():
                while time.time() < stop:
                    t = time.time()
                    status = srv.request("GET", "/healthz")[0]
                    health.append((time.time() - t, status))
                    time.sleep(0.05)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(self.CLIENTS)]
            threads.append(threading.Thread(target=prober))
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            m = srv.metrics()
        p50, p99 = percentile(ok, 50), percentile(ok, 99)
        r99 = percentile([x[0] for x in full], 99)
        sys.stderr.write("\nsolo batch-8 %.1f ms; admitted %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms; 429: %d (p99 "
                         "%.1f ms); healthz max %.1f ms; other %s\n" % (
                             percentile(solo, 50) * 1e3, len(ok), p50 * 1e3, p99 * 1e3, max(ok) * 1e3, len(full),
                             r99 * 1e3, max(h[0] for h in health) * 1e3, other[:3]))
        self.assertEqual(other, [])
        self.assertGreater(len(ok), 20)
        self.assertGreater(len(full), 20, "the queue never filled: the test proves nothing")
        for dt, r in full[:50]:
            assert_error(self, r.status, r.headers, r.body, 429, "queue_full")
            self.assertEqual(r.headers.get("retry-after"), "1")
        # Refusals are immediate; admitted requests wait for at most a queue's worth of work.
        self.assertLess(r99, 0.25)
        self.assertLess(p99, 1.0)
        self.assertLess(max(ok), 2.0)
        self.assertTrue(all(s == 200 for _, s in health))
        self.assertLess(max(h[0] for h in health), 0.5)
        self.assertEqual(m.get('gru_requests_total{route="/v1/sentiment",status="504"}', 0), 0)
        self.assertGreaterEqual(m['gru_requests_total{route="/v1/sentiment",status="429"}'], len(full))


if __name__ == "__main__":
    main()
