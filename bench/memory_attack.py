#!/usr/bin/python3
"""memory_attack.py - clients that ask for the largest answer and never read it (issue 15).

Starts gru-serve (an existing binary, --serve) on 127.0.0.1 with the shipped sst2-en model, finds
the largest answer it allows (the most 256-token texts with "gates": "full" and "trajectory":
true that --max-result-mb admits: the count just under the 413), then for each client count in
--clients (default 16 and 64):

  - opens that many connections (receive buffer 4 KiB) that each send the request and read
    nothing for --hold seconds;
  - meanwhile (in a separate process) samples the server's RSS (/proc/PID/status) every 20 ms
    and probes GET /healthz on a fresh connection every 50 ms, timing each answer;
  - then every client reads its whole answer: it must be a complete 200 (the JSON parses and
    has every result) or a 503/429 with Retry-After; anything else is an answer lost.

Prints one row per client count and checks the goals: peak RSS under the memory budget + 64 MB,
no answer lost (except 503/429 with Retry-After), /healthz p99 < 50 ms throughout. The exit
status is 1 when a goal is missed.

    /usr/bin/python3 bench/memory_attack.py [--serve build/server/gru-serve] [--clients 16,64]
        [--hold 10] [--budget-mb 256] [--serve-args "..."] [--rss-abort-mb 3000]

--budget-mb is what the goal is judged against (and is passed as --max-memory-mb unless
--no-budget-flag, for a build without the flag: then the server has no budget and the run shows
the problem). The server is killed when its RSS passes --rss-abort-mb (the machine is shared).
"""
import argparse
import json
import multiprocessing
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("good bad movie the plot was slow but the actors were fine and I would see it again "
         "maybe not tomorrow").split()


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def text_of(tokens, salt):
    return " ".join(WORDS[(i * 7 + salt) % len(WORDS)] for i in range(tokens))


def body_for(n_texts, tokens=256):
    return json.dumps({"texts": [text_of(tokens, i) for i in range(n_texts)], "gates": "full",
                       "trajectory": True, "truncate": True}).encode()


def request_bytes(body):
    return (b"POST /v1/sentiment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class Response:
    def __init__(self):
        self.status, self.headers, self.body, self.error, self.raw_chunked = None, {}, b"", None, None

    def decode(self):
        """The body of a chunked response (received raw), decoded; sets error if malformed."""
        if self.raw_chunked is None:
            return
        data, pos, out = self.raw_chunked, 0, []
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                self.error = "truncated chunked body"
                return
            size = int(data[pos:eol].split(b";")[0], 16)
            out.append(data[eol + 2:eol + 2 + size])
            pos = eol + 2 + size + 2
            if size == 0:
                break
        self.body, self.raw_chunked = b"".join(out), None


def read_response(sock, timeout):
    """Reads one whole response (Content-Length, chunked, or until close)."""
    r = Response()
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            if not chunk:
                r.error = "closed before the head"
                return r
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        r.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers[k.strip().lower()] = v.strip()
        parts = []
        if "content-length" in r.headers:
            need = int(r.headers["content-length"])
            parts.append(buf)
            have = len(buf)
            while have < need:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    r.error = "closed mid-body (%d of %d bytes)" % (have, need)
                    return r
                parts.append(chunk)
                have += len(chunk)
            r.body = b"".join(parts)[:need]
        elif r.headers.get("transfer-encoding", "").lower() == "chunked":
            # Receive first, decode after: the raw bytes end with the last chunk ("0" CRLF CRLF),
            # and decoding while receiving would load this script, not the server.
            parts = [buf]
            tail = buf[-7:]
            while not (tail.endswith(b"\r\n0\r\n\r\n") or (len(parts) == 1 and buf.startswith(b"0\r\n\r\n"))):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise EOFError
                parts.append(chunk)
                tail = (tail + chunk)[-7:]
            r.raw_chunked = b"".join(parts)
        else:
            parts = [buf]
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                parts.append(chunk)
            r.body = b"".join(parts)
    except EOFError:
        r.error = "closed mid-body (chunked)"
    except (socket.timeout, ConnectionResetError, OSError) as e:
        r.error = "%s after %d bytes" % (type(e).__name__, len(r.body))
    return r


def post(port, body, timeout=60):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request_bytes(body))
        r = read_response(s, timeout)
        r.decode()
        return r


def largest_allowed(port, tokens=256, hi=1024):
    """The most texts the server accepts in one full-gates, trajectory request (binary search on
    its 413 result_too_large / 422 too_many_texts, which come before any inference)."""
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        r = post(port, body_for(mid, tokens))
        if r.status == 200:
            lo = mid
        elif r.status in (413, 422):
            hi = mid - 1
        else:
            raise RuntimeError("probe of %d texts: %s %s" % (mid, r.status, r.body[:200]))
    return lo


def sample(pid, port, abort_kb, stop, out):
    """RSS every 20 ms and a /healthz probe every 50 ms on a fresh connection, until stop is set;
    runs in its own process, so that the clients' work (parsing 165 MB answers) cannot delay
    the probes in this script's interpreter. Puts (peak kB, latencies ms, failures, aborted)."""
    peak, lat, fail, aborted, next_health = 0, [], 0, False, 0.0
    while not stop.is_set():
        kb = rss_kb(pid)
        peak = max(peak, kb)
        if kb > abort_kb:
            aborted = True
            os.kill(pid, 9)
            break
        now = time.time()
        if now >= next_health:
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if read_response(s, 5).status != 200:
                        fail += 1
            except OSError:
                fail += 1
            lat.append((time.perf_counter() - t0) * 1e3)
            next_health = now + 0.05
        stop.wait(0.02)
    out.put((peak, lat, fail, aborted))


def attack(pid, port, n_clients, n_texts, hold, abort_kb):
    body = body_for(n_texts)
    stop, out = multiprocessing.Event(), multiprocessing.Queue()
    sampler = multiprocessing.Process(target=sample, args=(pid, port, abort_kb, stop, out), daemon=True)
    sampler.start()
    socks = []
    if n_clients == 0:  # the baseline: the same probes with no attack, on this machine now
        time.sleep(hold)
    for _ in range(n_clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(request_bytes(body))
        socks.append(s)
    time.sleep(hold)
    # Then read every answer, all at once (the budget frees as answers complete).
    results = [None] * n_clients

    def drain(i):
        results[i] = read_response(socks[i], 120)
        socks[i].close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    peak_kb, health_ms, health_fail, aborted = out.get(timeout=30)
    sampler.join()
    counts, lost = {}, []
    for r in results:  # checked once the probes have stopped (parsing 165 MB is this script's work)
        r.decode()
        key = r.status if not r.error else "error"
        counts[key] = counts.get(key, 0) + 1
        if r.error:
            lost.append(r.error)
        elif r.status == 200:
            try:
                doc = json.loads(r.body)
                if len(doc["results"]) != n_texts:
                    lost.append("200 with %d results" % len(doc["results"]))
            except (ValueError, KeyError) as e:
                lost.append("200 with a broken body (%s, %d bytes)" % (e, len(r.body)))
        elif r.status in (429, 503):
            if "retry-after" not in r.headers:
                lost.append("%d without Retry-After" % r.status)
        else:
            lost.append("status %d: %s" % (r.status, r.body[:120]))
    hm = sorted(health_ms)
    p = lambda q: hm[min(len(hm) - 1, int(q * len(hm)))] if hm else float("nan")
    return {"clients": n_clients, "peak_rss_mb": peak_kb / 1024, "statuses": counts, "lost": lost,
            "health_n": len(hm), "health_fail": health_fail, "health_p50": p(0.5), "health_p99": p(0.99),
            "health_max": hm[-1] if hm else float("nan"), "aborted": aborted}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", default=os.path.join(ROOT, "build", "server", "gru-serve"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "sst2-en"))
    ap.add_argument("--clients", default="0,16,64", help="0: a baseline row with no attack")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds the clients read nothing")
    ap.add_argument("--budget-mb", type=int, default=256)
    ap.add_argument("--no-budget-flag", action="store_true", help="do not pass --max-memory-mb (an old build)")
    ap.add_argument("--serve-args", default="--log-level warn")
    ap.add_argument("--rss-abort-mb", type=int, default=3000)
    args = ap.parse_args()

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    cmd = [args.serve, "--host", "127.0.0.1", "--port", str(free), "--model", args.model]
    if not args.no_budget_flag:
        cmd += ["--max-memory-mb", str(args.budget_mb)]
    cmd += shlex.split(args.serve_args)
    print("server: %s" % " ".join(cmd))
    srv = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = []
    threading.Thread(target=lambda: [log.append(l.decode("utf-8", "replace")) for l in srv.stderr],
                     daemon=True).start()
    rows, ok = [], True
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", free), timeout=1) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if read_response(s, 2).status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline or srv.poll() is not None:
                raise RuntimeError("gru-serve did not become ready:\n" + "".join(log[-20:]))
            time.sleep(0.1)
        idle_mb = rss_kb(srv.pid) / 1024
        n_texts = largest_allowed(free)
        one = post(free, body_for(n_texts))
        answer_mb = len(one.body) / 2 ** 20
        print("largest allowed answer: %d texts x 256 tokens, gates full + trajectory: %.1f MB of JSON; "
              "idle RSS %.1f MB, after one such answer %.1f MB" % (n_texts, answer_mb, idle_mb,
                                                                     rss_kb(srv.pid) / 1024))
        for n in [int(c) for c in args.clients.split(",")]:
            row = attack(srv.pid, free, n, n_texts, args.hold, args.rss_abort_mb * 1024)
            rows.append(row)
            if row["aborted"]:
                print("clients %d: RSS passed %d MB: server killed" % (n, args.rss_abort_mb))
                break
    finally:
        if srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(20)
            except subprocess.TimeoutExpired:
                srv.kill()
    goal_rss = args.budget_mb + 64
    base = next((r for r in rows if r["clients"] == 0), None)
    print("\n| non-reading clients | peak RSS MB | answers | lost | /healthz n | p50 ms | p99 ms | max ms | "
          "p99 / baseline | goals |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        met = (r["peak_rss_mb"] < goal_rss and not r["lost"] and not r["aborted"] and r["health_p99"] < 50
               and r["health_fail"] == 0)
        if r["clients"] and base:
            r["vs_base"] = r["health_p99"] / max(base["health_p99"], 1e-3)
        ok &= met
        print("| %d | %.0f | %s | %d | %d | %.1f | %.1f | %.1f | %s | %s |" % (
            r["clients"], r["peak_rss_mb"], ", ".join("%s: %d" % (k, v) for k, v in sorted(r["statuses"].items(),
                                                                                        key=str)),
            len(r["lost"]), r["health_n"], r["health_p50"], r["health_p99"], r["health_max"],
            "%.1fx" % r["vs_base"] if "vs_base" in r else "-", "met" if met else "MISSED"))
        for what in r["lost"][:5]:
            print("    lost: %s" % what)
    print("\ngoals: peak RSS < budget + 64 = %d MB; no answer lost but 503/429 with Retry-After; "
          "/healthz p99 < 50 ms, no failed probe (the baseline row: the same probes with no attack, in the same "
          "run, shows what the machine itself adds; load average now %.1f)" % (goal_rss, os.getloadavg()[0]))
    return 0 if ok and rows and not rows[-1]["aborted"] else 1


if __name__ == "__main__":
    sys.exit(main())
