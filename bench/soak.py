#!/usr/bin/python3
"""soak.py - gru-serve under a long mixed load: stability evidence (issue 6).

N minutes (default 10) at C keep-alive connections (default 128) on loopback, from Python
asyncio raw HTTP/1.1 clients, each sending a random mix of
    single   {"text"} with the default gates ("summary")          45%
    batch    {"texts": 2..16 texts}, gates none or summary          15%
    full     {"text", "gates": "full", "trajectory": true}          10%
    kserve   POST /v2/models/{name}/infer, 1..4 texts               10%
    other    the second model when there is one (else single)        5%
    invalid  malformed JSON 400, wrong type 400, empty text 422,    15%
             unknown model 404, wrong Content-Type 415
Every answer is checked: its status must be the one of its kind (anything else, or a connection
closed without an answer, is "unexpected"), error bodies must carry the kind's error code, and
one answer in 20 of the valid kinds is parsed and checked (labels, number of results).
Each minute: requests/s, p50/p99/max latency, statuses, and the server's RSS (VmRSS from
/proc/PID/status). Pass: zero unexpected answers, the server alive throughout (and exit 0 on
SIGTERM when this script started it), RSS growth < 5% after the warm-up minute.

    bench/soak.py                                 # starts build/server/gru-serve on models/
    bench/soak.py --minutes 1 --connections 32    # a quick one
    bench/soak.py --serve build-rel/server/gru-serve --model sst2-en=models/sst2-en
    bench/soak.py --port 8080 --pid $(pidof gru-serve)   # a server started elsewhere

Without models under models/ it uses the end-to-end tests' tiny random models (numpy).
Note: the clients are Python; on a small machine they share the CPU with the server, so the
latencies include the clients' own scheduling delays (compare runs on the same machine).
Exit status: 0 pass, 1 fail, 2 usage.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

EN = ["the food was cold but the staff were really lovely tonight", "a gorgeous , witty , seductive movie",
      "it 's not a bad film , just a forgettable one", "the plot is nothing but boilerplate clichés",
      "an utterly charming and hilarious film", "too long , too slow and too self-important",
      "i loved every minute of it", "the acting is wooden and the dialogue is worse",
      "Not good. Not bad either!", "what a waste of two hours ... awful", "great", "meh"]
ZH = ["菜很好吃，送得快！", "太慢了，饭都凉了", "味道不错，还会再来", "服务态度很差", "好吃", "一般般吧，不推荐",
      "10点半下的单,12点才到", "送餐小哥很有礼貌，点赞"]

WEIGHTS = [("single", 45), ("batch", 15), ("full", 10), ("kserve", 10), ("other", 5), ("invalid", 15)]
INVALID = [  # (body, content type, status, code)
    (b'{"text": "good"', "application/json", 400, "invalid_json"),
    (b'{"text": 42}', "application/json", 400, "invalid_type"),
    (b'{"text": "   "}', "application/json", 422, "empty_text"),
    (b'{"text": "good", "model": "no-such-model"}', "application/json", 404, "model_not_found"),
    (b'{"text": "good"}', "text/plain", 415, "unsupported_media_type"),
]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our exited child) is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def http(method, path, body=None, ctype="application/json"):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    if body is not None:
        h += "Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
    return h.encode() + b"\r\n" + (body or b"")


class Plan:
    """Pre-built requests of every kind, with what each answer must be."""

    def __init__(self, models, rng):
        self.models = models  # [(name, kind, labels)]
        self.reqs = {k: [] for k, _ in WEIGHTS}
        default, dkind, dlabels = models[0]
        pool = lambda kind: ZH if kind == "char" else EN
        texts = pool(dkind)
        for i in range(200):
            t = rng.choice(texts) + ("" if i % 3 else " " + rng.choice(texts))
            self.reqs["single"].append((http("POST", "/v1/sentiment", json.dumps({"text": t}).encode()), 200, None, 1))
            n = rng.randint(2, 16)
            body = {"texts": [rng.choice(texts) for _ in range(n)], "gates": rng.choice(["none", "summary"])}
            self.reqs["batch"].append((http("POST", "/v1/sentiment", json.dumps(body).encode()), 200, None, n))
            body = {"text": t, "gates": "full", "trajectory": True}
            self.reqs["full"].append((http("POST", "/v1/sentiment", json.dumps(body).encode()), 200, None, 1))
            n = rng.randint(1, 4)
            body = {"id": str(i), "inputs": [{"name": "text", "shape": [n], "datatype": "BYTES",
                                              "data": [rng.choice(texts) for _ in range(n)]}]}
            self.reqs["kserve"].append((http("POST", "/v2/models/%s/infer" % default, json.dumps(body).encode()),
                                        200, None, n))
            name, kind, _ = models[1] if len(models) > 1 else models[0]
            body = {"text": rng.choice(pool(kind)), "model": name}
            self.reqs["other"].append((http("POST", "/v1/sentiment", json.dumps(body).encode()), 200, None, 1))
        for body, ctype, status, code in INVALID:
            self.reqs["invalid"].append((http("POST", "/v1/sentiment", body, ctype), status, code, 0))
        self.labels = {name: set(labels) for name, _, labels in models}
        self.kinds = [k for k, _ in WEIGHTS]
        self.weights = [w for _, w in WEIGHTS]


class Stats:
    def __init__(self, minutes):
        self.minute = [{"lat": [], "status": {}, "kinds": {}, "unexpected": 0} for _ in range(minutes)]
        self.unexpected = []
        self.checked = 0

    def add(self, m, kind, status, dt, ok, why=None):
        if m >= len(self.minute):
            return
        s = self.minute[m]
        s["lat"].append(dt)
        s["status"][status] = s["status"].get(status, 0) + 1
        s["kinds"][kind] = s["kinds"].get(kind, 0) + 1
        if not ok:
            s["unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append((m, kind, status, why))


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def check(plan, kind, req, status, body, deep):
    """None when the answer is right, else why not."""
    _, want, code, n = req
    if status != want:
        return "status %d, want %d: %r" % (status, want, body[:160])
    if code:
        try:
            doc = json.loads(body)
        except ValueError:
            return "error body is not JSON: %r" % body[:160]
        if doc.get("error", {}).get("code") != code or not doc["error"].get("message"):
            return "error body %r, want code %s" % (body[:160], code)
        return None
    if not deep:
        return None if body[:1] == b"{" else "not a JSON object: %r" % body[:80]
    try:
        doc = json.loads(body)
    except ValueError:
        return "body is not JSON: %r" % body[:160]
    if kind == "kserve":
        outs = {o["name"]: o for o in doc.get("outputs", [])}
        if outs.get("label", {}).get("shape") != [n] or doc.get("model_name") not in plan.labels:
            return "bad KServe answer: %r" % body[:200]
        return None
    results = doc["results"] if "results" in doc else [doc]
    if len(results) != n or any(r.get("label") not in plan.labels.get(r.get("model"), ()) for r in results):
        return "bad result: %r" % body[:200]
    if kind == "full" and "trajectory" not in results[0] and "gates" not in results[0]:
        return "no gates: %r" % body[:200]
    return None


async def client(idx, host, port, plan, stats, t0, t_end, seed):
    rng = random.Random(seed)
    reader = writer = None
    k = 0
    prev = None  # (kind, status, end time) of the previous answer on this connection
    on_conn = 0
    while time.monotonic() < t_end:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                prev, on_conn = None, 0
            except OSError as e:
                stats.add(int((time.monotonic() - t0) // 60), "connect", -1, 0.0, False, repr(e))
                await asyncio.sleep(0.1)
                continue
        kind = rng.choices(plan.kinds, plan.weights)[0]
        req = rng.choice(plan.reqs[kind])
        k += 1
        t = time.monotonic()
        try:
            writer.write(req[0])
            status, headers, body = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            stats.add(int((t - t0) // 60), kind, -1, time.monotonic() - t, False,
                      "no answer after %.1f ms: %r (request %d on its connection; the previous: %s)"
                      % ((time.monotonic() - t) * 1e3, e, on_conn + 1,
                         "%s %d, %.1f ms before" % (prev[0], prev[1], (t - prev[2]) * 1e3) if prev else "none"))
            writer.close()
            writer = None
            continue
        dt = time.monotonic() - t
        on_conn += 1
        prev = (kind, status, t + dt)
        why = check(plan, kind, req, status, body, deep=(k % 20 == 0))
        stats.add(int((t - t0) // 60), kind, status, dt, why is None, why)
        if headers.get("connection", "").lower() == "close":
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def sampler(pid, t0, minutes, rss, alive_log, stop):
    """RSS at the end of every minute (and at the start)."""
    rss.append((0, rss_kb(pid)))
    for m in range(1, minutes + 1):
        delay = t0 + 60 * m - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ok = alive(pid)
        alive_log.append(ok)
        rss.append((m, rss_kb(pid) if ok else 0))
        if not ok:
            stop.set()
            return


class Started:
    pass


def start_server(args):
    """Starts gru-serve on a free loopback port, stderr to a log file; waits for /readyz."""
    import socket
    import urllib.request
    models = list(args.model)
    if not models:
        mdir = os.path.join(ROOT, "models")
        shipped = sorted(d for d in os.listdir(mdir) if os.path.isfile(os.path.join(mdir, d, "config.json"))) \
            if os.path.isdir(mdir) else []
        models = ["%s=%s" % (d, os.path.join(mdir, d)) for d in shipped]
    if not models:
        import harness  # tests/e2e: the tiny random models (numpy)
        tiny = harness.tiny_models()
        models = ["%s=%s" % (d, os.path.join(tiny, d)) for d in sorted(os.listdir(tiny))]
        print("no models under models/: using tiny random test models")
    sk = socket.socket()
    sk.bind(("127.0.0.1", 0))
    port = sk.getsockname()[1]
    sk.close()
    cmd = [args.serve, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warn"]
    for m in models:
        cmd += ["--model", m]
    cmd += args.server_arg
    srv = Started()
    srv.port = port
    srv.log_path = "/tmp/gru-soak-%d.log" % os.getpid()
    srv.logf = open(srv.log_path, "wb")
    srv.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=srv.logf, stderr=srv.logf)
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if srv.proc.poll() is not None or time.time() > deadline:
            srv.proc.kill()
            sys.exit("gru-serve did not become ready; see " + srv.log_path)
        time.sleep(0.05)
    print("started (pid %d, log %s): %s" % (srv.proc.pid, srv.log_path, " ".join(cmd)))
    return srv


def models_of(host, port):
    import urllib.request
    with urllib.request.urlopen("http://%s:%d/v1/models" % (host, port), timeout=10) as r:
        doc = json.load(r)
    return [(m["name"], m["tokenizer"]["kind"], m["labels"]) for m in doc["models"]]


async def run(args, pid):
    rng = random.Random(args.seed)
    plan = Plan(models_of(args.host, args.port), rng)
    stats = Stats(args.minutes)
    rss, alive_log, stop = [], [], asyncio.Event()
    t0 = time.monotonic()
    t_end = t0 + 60 * args.minutes
    tasks = [asyncio.create_task(client(i, args.host, args.port, plan, stats, t0, t_end, args.seed * 1000 + i))
             for i in range(args.connections)]
    samp = asyncio.create_task(sampler(pid, t0, args.minutes, rss, alive_log, stop))
    await asyncio.gather(*tasks)
    await samp
    return plan, stats, rss, alive_log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--connections", type=int, default=128)
    ap.add_argument("--warmup-minutes", type=int, default=1)
    ap.add_argument("--max-rss-growth", type=float, default=0.05, help="after the warm-up (0.05: 5%%)")
    ap.add_argument("--serve", default=os.environ.get("GRU_SERVE", os.path.join(ROOT, "build", "server", "gru-serve")),
                    help="gru-serve binary to start (default: build/server/gru-serve or $GRU_SERVE)")
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR for the started server (repeatable; "
                    "default: every model under models/, else tiny random test models)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra flag for the started server, "
                    "e.g. --server-arg=--workers=2 (it logs at warn level to /tmp/gru-soak-PID.log)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, help="use a running server on this port (with --pid)")
    ap.add_argument("--pid", type=int, help="the running server's PID (for RSS and liveness)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if args.minutes < args.warmup_minutes + 1:
        ap.error("--minutes must exceed --warmup-minutes")
    if (args.port is None) != (args.pid is None):
        ap.error("--port and --pid go together")

    srv = None
    if args.port is None:
        srv = start_server(args)
        args.port, pid = srv.port, srv.proc.pid
    else:
        pid = args.pid

    print("soak: %d min, %d connections, warm-up %d min, mix %s" % (
        args.minutes, args.connections, args.warmup_minutes, ", ".join("%s %d%%" % kw for kw in WEIGHTS)))
    sys.stdout.flush()
    try:
        plan, stats, rss, alive_log = asyncio.run(run(args, pid))
    finally:
        rc = None
        if srv is not None:
            t = time.time()
            srv.proc.send_signal(signal.SIGTERM)
            try:
                rc = srv.proc.wait(60)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                rc = srv.proc.wait()
            drain_ms = (time.time() - t) * 1e3
            srv.logf.close()

    # ---- report ----
    print("\nminute  requests   req/s   p50 ms   p99 ms   max ms   RSS MB  unexpected  statuses")
    total, unexpected = 0, 0
    rows = []
    for m, s in enumerate(stats.minute):
        n = len(s["lat"])
        total += n
        unexpected += s["unexpected"]
        r = dict(minute=m + 1, requests=n, rps=n / 60.0, p50_ms=pct(s["lat"], 50) * 1e3,
                 p99_ms=pct(s["lat"], 99) * 1e3, max_ms=(max(s["lat"]) if s["lat"] else 0) * 1e3,
                 rss_mb=(rss[m + 1][1] if m + 1 < len(rss) else 0) / 1024.0, unexpected=s["unexpected"],
                 statuses={str(k): v for k, v in sorted(s["status"].items())})
        rows.append(r)
        print("%6d %9d %7.0f %8.2f %8.2f %8.1f %8.1f %11d  %s" % (
            r["minute"], n, r["rps"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["rss_mb"], r["unexpected"],
            " ".join("%s:%d" % kv for kv in r["statuses"].items())))
    warm = rss[args.warmup_minutes][1] if len(rss) > args.warmup_minutes else 0
    later = [v for m, v in rss[args.warmup_minutes + 1:]]
    growth = (max(later) - warm) / warm if warm and later else float("nan")
    all_alive = all(alive_log) and len(alive_log) == args.minutes
    print("\nRSS: start %.1f MB, after warm-up %.1f MB, max after %.1f MB: growth %+.2f%% (limit %.0f%%)" % (
        rss[0][1] / 1024.0, warm / 1024.0, max(later) / 1024.0 if later else 0, growth * 100,
        args.max_rss_growth * 100))
    print("requests %d, unexpected %d, server alive every minute: %s" % (total, unexpected, all_alive))
    if srv is not None:
        print("SIGTERM at the end: exit %s, %.0f ms" % (rc, drain_ms))
    for u in stats.unexpected:
        print("unexpected: minute %d %s status %s: %s" % (u[0] + 1, u[1], u[2], u[3]))
    ok = (unexpected == 0 and all_alive and growth < args.max_rss_growth and total > 0
          and (srv is None or rc == 0))
    print("PASS" if ok else "FAIL")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"minutes": args.minutes, "connections": args.connections, "rows": rows,
                       "rss_kb": rss, "rss_growth": growth, "requests": total, "unexpected": unexpected,
                       "unexpected_examples": stats.unexpected, "alive": all_alive, "exit": rc, "pass": ok},
                      f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
