#!/usr/bin/python3
"""peers_bench.py - gru-serve against the peers, same machine, same run.

Servers (all on 127.0.0.1, each started and stopped by this script):
  gru-serve  this project, with the shipped models (every model under models/)
  fastapi    ../shared/peers/fastapi_torch_server.py: FastAPI + uvicorn + PyTorch, 1 worker
  mhd_hello  ../shared/peers/mhd_hello.c: bare libmicrohttpd + jansson, fixed answer (the
             front-end ceiling: parses the same request, runs no model)
Load: wrk -t2 at 1, 16 and 64 connections, one sentence per request or 32 per request, gates
none or summary (the peer's "gates": true is its per-token r/z means: the same information).

    bench/peers_bench.py [--build build] [--duration 10] [--connections 1,16,64] [--texts 1,32]
                         [--gates none,summary] [--skip-fastapi] [--serve-args '...']
                         [--models sst2-en,sst2-en-glove,...]

--models: also, in the same run, one scenario per named model of the one gru-serve (one text per
request, "model" set; a Chinese sentence of the same meaning for models whose config.json under
models/ declares "zh", or named NAME:zh), so that models compare with each other and with
mhd_hello. Older models can be served beside the shipped ones with --serve-args, e.g.
`--serve-args "--model zh=models/zh --model zh-old=/tmp/zh-old" --models zh,zh-old:zh`.

Prints a table (req/s, texts/s, p50, p99, non-2xx, RSS) and the ratios gru-serve / fastapi and
gru-serve / mhd_hello. Figures drift on shared machines: compare the ratios within one run.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from bench_util import cpu_seconds, free_port, rss_kib, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers"))
SENTENCE = "the food was cold but the staff were really lovely tonight"
SENTENCES = [
    "the food was cold but the staff were really lovely tonight", "a gorgeous , witty , seductive movie",
    "it 's not a bad film , just a forgettable one", "the plot is nothing but boilerplate clichés",
    "an utterly charming and hilarious film", "too long , too slow and too self-important",
    "i loved every minute of it", "the acting is wooden and the dialogue is worse",
]
BATCH = (SENTENCES * 4)[:32]
SENTENCE_ZH = "这家店的菜凉了，但是服务员今晚真的很热情"  # the same meaning, 20 characters

WRK_LUA = r'''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d duration_s=%%.3f p50_ms=%%.3f p99_ms=%%.3f non2xx=%%d errors=%%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.status, e.connect + e.read + e.write + e.timeout))
end
'''


def model_languages(name):
    try:
        with open(os.path.join(ROOT, "models", name, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("languages", [])
    except OSError:
        return []


def body(server, batch, gates, model=None):
    if model:
        name, _, lang = model.partition(":")
        zh = lang == "zh" or (not lang and "zh" in model_languages(name))
        d = {"text": SENTENCE_ZH if zh else SENTENCE, "model": name, "gates": "summary" if gates else "none"}
    elif server == "gru-serve":
        d = {"texts": BATCH} if batch else {"text": SENTENCE}
        d["gates"] = "summary" if gates else "none"
    else:
        d = {"texts": BATCH} if batch else {"text": SENTENCE}
        if gates:
            d["gates"] = True
    return json.dumps(d)


def run_wrk(url, lua_path, conns, duration):
    threads = min(2, conns)
    p = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency", "-s", lua_path, url],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=duration + 60)
    m = re.search(r"RESULT requests=(\d+) duration_s=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) non2xx=(\d+) errors=(\d+)",
                  p.stdout)
    if not m:
        raise RuntimeError("wrk printed no RESULT line:\n" + p.stdout)
    req, dur, p50, p99, non2xx, errors = m.groups()
    return {"rps": int(req) / float(dur), "p50": float(p50), "p99": float(p99), "non2xx": int(non2xx),
            "errors": int(errors)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", default="1,16,64")
    ap.add_argument("--skip-fastapi", action="store_true")
    ap.add_argument("--texts", default="1,32", help="texts per request: 1 and/or 32")
    ap.add_argument("--gates", default="none,summary", help="gates of gru-serve and fastapi (mhd_hello: none)")
    ap.add_argument("--serve-args", default="", help="extra gru-serve flags, e.g. '--model models/sst2-en'")
    ap.add_argument("--models", default="", help="comma-separated model names: one scenario each (one text)")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    serve = os.path.join(args.build, "server", "gru-serve")
    if not os.access(serve, os.X_OK):
        sys.exit("no %s: build first (make build)" % serve)
    tmp = tempfile.mkdtemp(prefix="gru-peers-")
    procs = {}
    try:
        # mhd_hello: the front-end ceiling.
        hello = os.path.join(tmp, "mhd_hello")
        cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmicrohttpd", "jansson"], stdout=subprocess.PIPE,
                                text=True, check=True).stdout.split()
        subprocess.run(["cc", "-O2", "-o", hello, os.path.join(PEERS, "mhd_hello.c")] + cflags, check=True)
        servers = {}
        port = free_port()
        procs["mhd_hello"] = subprocess.Popen([hello, "--port", str(port), "--mode", "pool", "--threads", "2"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers["mhd_hello"] = port
        port = free_port()
        procs["gru-serve"] = subprocess.Popen([serve, "--port", str(port), "--log-level", "error"] + args.serve_args.split(), cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers["gru-serve"] = port
        if not args.skip_fastapi:
            port = free_port()
            procs["fastapi"] = subprocess.Popen(
                ["/usr/bin/python3", "-m", "uvicorn", "fastapi_torch_server:app", "--host", "127.0.0.1", "--port",
                 str(port), "--workers", "1", "--log-level", "warning"], cwd=PEERS,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers["fastapi"] = port
        for name, port in servers.items():
            path = "/readyz" if name == "gru-serve" else "/healthz"
            if name == "mhd_hello":
                time.sleep(0.3)
                continue
            if not wait_http("http://127.0.0.1:%d%s" % (port, path), 120):
                sys.exit("%s did not become ready" % name)
        rows = []
        plan = []  # (server, batch, gates, model)
        for name in servers:
            for batch in (False, True):
                for gates in (False, True):
                    plan.append((name, batch, gates, None))
        for model in [m for m in args.models.split(",") if m]:
            for gates in (False, True):
                plan.append(("gru-serve", False, gates, model))
        for name, batch, gates, model in plan:
            port = servers[name]
            url = "http://127.0.0.1:%d/v1/sentiment" % port
            if ("32" if batch else "1") not in args.texts.split(","):
                continue
            if name == "mhd_hello" and gates:
                continue
            if name != "mhd_hello" and ("summary" if gates else "none") not in args.gates.split(","):
                continue
            lua = os.path.join(tmp, "%s_%d_%d_%s.lua" % (name, batch, gates, model or ""))
            with open(lua, "w") as f:
                f.write(WRK_LUA % body(name, batch, gates, model))
            for c in conns:
                cpu0 = cpu_seconds(procs[name].pid)
                r = run_wrk(url, lua, c, args.duration)
                cpu = cpu_seconds(procs[name].pid) - cpu0
                r.update(server=name, batch=32 if batch else 1, gates="summary" if gates else "none", conns=c,
                         model=model, rss=rss_kib(procs[name].pid),
                         cpu_us=1e6 * cpu / max(1.0, r["rps"] * args.duration))
                r["texts"] = r["rps"] * r["batch"]
                rows.append(r)
                print("%-10s c=%-3d batch=%-2d gates=%-7s %s%9.0f req/s %9.0f texts/s p50 %7.2f ms p99 %8.2f ms "
                      "non2xx %d err %d RSS %6.1f MB CPU %5.1f us/req" % (
                          name, c, r["batch"], r["gates"], "model=%s " % model.split(":")[0] if model else "", r["rps"],
                          r["texts"], r["p50"], r["p99"], r["non2xx"], r["errors"], r["rss"] / 1024, r["cpu_us"]), flush=True)
        # Ratios, gru-serve against each peer on the same scenario.
        print("\n| model | conns | texts/req | gates | gru-serve req/s | p50 ms | p99 ms | RSS MB | x fastapi | fastapi RSS MB "
              "| % of mhd_hello | CPU us/req | % of mhd_hello by CPU |")
        print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["server"] != "gru-serve":
                continue
            def peer(name, gates):
                for q in rows:
                    if q["server"] == name and q["conns"] == r["conns"] and q["batch"] == r["batch"] and q["gates"] == gates:
                        return q
            fa = peer("fastapi", r["gates"]) if not r["model"] else None
            mh = peer("mhd_hello", "none")
            print("| %s | %d | %d | %s | %.0f | %.2f | %.2f | %.1f | %s | %s | %s | %.1f | %s |" % (
                (r["model"] or "(default)").split(":")[0], r["conns"], r["batch"], r["gates"], r["rps"], r["p50"], r["p99"], r["rss"] / 1024,
                "%.0fx" % (r["rps"] / fa["rps"]) if fa and fa["rps"] else "-",
                "%.0f" % (fa["rss"] / 1024) if fa else "-",
                "%.0f%%" % (100 * r["rps"] / mh["rps"]) if mh and mh["rps"] else "-",
                r["cpu_us"], "%.0f%%" % (100 * mh["cpu_us"] / r["cpu_us"]) if mh and r["cpu_us"] else "-"))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
