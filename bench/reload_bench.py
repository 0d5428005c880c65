#!/usr/bin/python3
"""reload_bench.py - how long a hot reload of the shipped models takes, and what the clients see.

Copies every model under models/ to a scratch directory, serves it (gru-serve --models-dir),
and, while a few keep-alive clients send /v1/sentiment to every model, changes each model's
config.json (one key added, so its version changes) and sends SIGHUP, --rounds times. Prints,
per model, the server's own time to load, check and warm it (the "loaded in" of its log line),
the whole reload ("reload done in"), the time until the clients' answers carry the new version,
and the request figures: requests, rate, non-2xx answers and connection errors (both must be 0).

    bench/reload_bench.py [--build build] [--rounds 5] [--clients 4] [--workers 2]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    src = os.path.join(ROOT, "models")
    names = sorted(d for d in os.listdir(src) if os.path.isfile(os.path.join(src, d, "config.json")))
    tmp = tempfile.mkdtemp(prefix="gru-reload-bench-")
    for n in names:
        shutil.copytree(os.path.join(src, n), os.path.join(tmp, n))
    proc = subprocess.Popen([os.path.join(a.build, "server", "gru-serve"), "--host", "127.0.0.1", "--port", "0",
                             "--models-dir", tmp, "--workers", str(a.workers), "--log-level", "info"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log, port = [], None
    ready = threading.Event()

    def reader():
        nonlocal port
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"listening on \S+ port (\d+)", line)
            if m:
                port = int(m.group(1))
            if '"ready in' in line:
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        sys.exit("gru-serve did not start:\n" + "".join(log))
    stop = threading.Event()
    lock = threading.Lock()
    answers, errors = [], []

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while not stop.is_set():
            model = names[(k + i) % len(names)]
            i += 1
            text = "the food was cold but the staff were lovely" if "en" in model else "味道很好，送餐很快"
            try:
                conn.request("POST", "/v1/sentiment", json.dumps({"text": text, "model": model, "gates": "none"}),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                doc = json.loads(r.read())
                with lock:
                    answers.append((time.monotonic(), model, r.status, doc.get("model_version")))
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    for t in threads:
        t.start()
    t_begin = time.monotonic()
    loaded = {n: [] for n in names}
    whole, seen = [], {n: [] for n in names}
    try:
        for rnd in range(a.rounds):
            time.sleep(0.5)
            for n in names:
                p = os.path.join(tmp, n, "config.json")
                cfg = json.load(open(p))
                cfg["reload_bench_round"] = rnd
                with open(p + ".tmp", "w") as f:
                    json.dump(cfg, f)
                os.replace(p + ".tmp", p)
            n_log = len(log)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            while not any("reload done" in l for l in log[n_log:]):
                if time.monotonic() - t0 > 60:
                    sys.exit("no reload:\n" + "".join(log[n_log:]))
                time.sleep(0.002)
            new = {}
            for line in log[n_log:]:
                doc = json.loads(line)
                m = re.match(r"model (\S+): .* version (\w+), .* loaded in ([0-9.]+) ms", doc["msg"])
                if m:
                    loaded[m.group(1)].append(float(m.group(3)))
                    new[m.group(1)] = m.group(2)
                m = re.match(r"reload done in ([0-9.]+) ms", doc["msg"])
                if m:
                    whole.append(float(m.group(1)))
            # When the clients first see each new version.
            deadline = time.monotonic() + 10
            pending = dict(new)
            while pending and time.monotonic() < deadline:
                with lock:
                    for ts, model, st, v in answers[-2000:]:
                        if model in pending and v == pending[model] and ts >= t0:
                            seen[model].append((ts - t0) * 1e3)
                            del pending[model]
                time.sleep(0.002)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    dur = time.monotonic() - t_begin
    bad = [x for x in answers if x[2] != 200]
    print("reload of the shipped models, %d rounds, %d workers, %d clients (same machine, same run)"
          % (a.rounds, a.workers, a.clients))
    print("%-12s %22s %26s" % ("model", "load+check+warm ms", "clients see it after ms"))
    for n in names:
        print("%-12s %10.1f (median) %12.1f (median)" % (n, statistics.median(loaded[n]) if loaded[n] else -1,
                                                         statistics.median(seen[n]) if seen[n] else -1))
    print("whole reload (SIGHUP to the new set published): median %.1f ms, max %.1f ms" %
          (statistics.median(whole), max(whole)))
    print("requests: %d in %.1f s (%.0f/s), non-2xx %d, connection errors %d" %
          (len(answers), dur, len(answers) / dur, len(bad), len(errors)))
    return 1 if bad or errors else 0


if __name__ == "__main__":
    sys.exit(main())
