#!/usr/bin/python3
"""serve_bench.py - gru-serve against the bare libmicrohttpd ceiling, on loopback, same run.

Builds gru-serve (Release, in --build-dir) and ../shared/peers/mhd_hello.c, starts both on
127.0.0.1, and runs wrk -c64 with ../shared/peers/post.lua (one ~10-word English sentence per
request; gru-serve answers with its default gates "summary") against each, alternating, for
--rounds rounds of --duration seconds. Prints req/s, p50/p99 and RSS per run, then the medians
and the ratio to the ceiling, against the goals: >= 70% of the ceiling's req/s, p99 < 10 ms,
RSS < 64 MB with both shipped models loaded.

    /usr/bin/python3 bench/serve_bench.py [--duration 10] [--rounds 3] [--models-dir models]
                                          [--serve-args "--log-level warn"]

The machine is shared: absolute figures drift, the ratio within one run is what counts.
"""
import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from bench_util import free_port, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers"))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build(build_dir):
    sh(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"], stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", build_dir, "--target", "gru-serve", "-j2"], stdout=subprocess.DEVNULL)
    hello = os.path.join(build_dir, "mhd_hello")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmicrohttpd", "jansson"], capture_output=True,
                           text=True, check=True).stdout.split()
    sh(["cc", "-O2", "-o", hello, os.path.join(PEERS, "mhd_hello.c")] + flags)
    return os.path.join(build_dir, "server", "gru-serve"), hello


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wrk(url, duration):
    out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % duration, "--latency", "-s",
                          os.path.join(PEERS, "post.lua"), url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError("wrk printed no RESULT line:\n" + out)
    res = dict(kv.split("=") for kv in m.group(1).split())
    errors = sum(int(res[k]) for k in res if k.startswith("err_"))
    return float(res["rps"]), float(res["p50_ms"]), float(res["p99_ms"]), errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--serve-args", default="", help="extra gru-serve flags, e.g. '--log-level warn'")
    args = ap.parse_args()

    models = sorted(d for d in os.listdir(args.models_dir)
                    if os.path.isfile(os.path.join(args.models_dir, d, "config.json"))) if os.path.isdir(
        args.models_dir) else []
    if not models:
        sys.exit("serve_bench: no models under %s" % args.models_dir)
    serve_bin, hello_bin = build(args.build_dir)

    port_s, port_h = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="gru-serve-bench-", suffix=".log", delete=False)
    serve = subprocess.Popen([serve_bin, "--host", "127.0.0.1", "--port", str(port_s), "--models-dir", args.models_dir]
                             + shlex.split(args.serve_args), stdout=subprocess.DEVNULL, stderr=log)
    hello = subprocess.Popen([hello_bin, "--port", str(port_h)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        if not wait_http("http://127.0.0.1:%d/readyz" % port_s, 10):
            raise RuntimeError("gru-serve did not become ready")
        startup = time.time() - t0
        rss_idle = rss_kb(serve.pid)
        ours, ceiling = [], []
        print("models: %s; gru-serve flags: %s" % (", ".join(models), args.serve_args or "(defaults)"))
        print("%-6s %-11s %10s %9s %9s %9s %7s" % ("round", "server", "req/s", "p50 ms", "p99 ms", "RSS MB", "errors"))
        for r in range(args.rounds):
            for name, url, pid, acc in (
                    ("ceiling", "http://127.0.0.1:%d/v1/sentiment" % port_h, hello.pid, ceiling),
                    ("gru-serve", "http://127.0.0.1:%d/v1/sentiment" % port_s, serve.pid, ours)):
                rps, p50, p99, errors = wrk(url, args.duration)
                rss = rss_kb(pid, "VmHWM") / 1024
                acc.append((rps, p50, p99, rss, errors))
                print("%-6d %-11s %10.0f %9.3f %9.3f %9.1f %7d" % (r + 1, name, rps, p50, p99, rss, errors))
        med = lambda rows, i: statistics.median(x[i] for x in rows)
        o_rps, c_rps = med(ours, 0), med(ceiling, 0)
        ratio = o_rps / c_rps
        o_p99, o_rss = med(ours, 2), max(x[3] for x in ours)
        ratios = [o[0] / c[0] for o, c in zip(ours, ceiling)]
        print()
        print("gru-serve startup to ready: %.0f ms; idle RSS %.1f MB" % (startup * 1e3, rss_idle / 1024))
        print("%-11s %10s %9s %9s %9s" % ("median", "req/s", "p50 ms", "p99 ms", "peak RSS"))
        print("%-11s %10.0f %9.3f %9.3f %9.1f" % ("ceiling", c_rps, med(ceiling, 1), med(ceiling, 2),
                                                  max(x[3] for x in ceiling)))
        print("%-11s %10.0f %9.3f %9.3f %9.1f" % ("gru-serve", o_rps, med(ours, 1), o_p99, o_rss))
        print()
        print("ratio to the ceiling: %.0f%% (per round: %s)   goal >= 70%%: %s" % (
            100 * ratio, ", ".join("%.0f%%" % (100 * x) for x in ratios), "met" if ratio >= 0.7 else "NOT met"))
        print("gru-serve p99: %.2f ms   goal < 10 ms: %s" % (o_p99, "met" if o_p99 < 10 else "NOT met"))
        print("gru-serve peak RSS: %.1f MB   goal < 64 MB: %s" % (o_rss, "met" if o_rss < 64 else "NOT met"))
        print("errors: %d" % sum(x[4] for x in ours + ceiling))
    finally:
        for p in (serve, hello):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
    print("gru-serve exit status %d (log: %s)" % (serve.returncode, log.name))


if __name__ == "__main__":
    main()
