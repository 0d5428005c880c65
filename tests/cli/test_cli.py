#!/usr/bin/python3
"""test_cli.py - end-to-end tests of gru-predict against a real model directory.

    test_cli.py --predict build/tools/gru-predict --model models/sst2-en
Exit 0 when every check passes, 1 otherwise, 77 (skip) when the model is absent.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

FAILED = []
PASSED = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (PASSED if cond else FAILED).append(what)


def run(args, stdin=b""):
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def close(a, b, tol=1e-6):
    return all(abs(x - y) <= tol for x, y in zip(a, b)) and len(a) == len(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predict", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.model, "config.json")):
        print("SKIP: no model at %s" % args.model)
        return 77
    exe, model = args.predict, args.model
    cfg = json.load(open(os.path.join(model, "config.json")))
    labels, H = cfg["labels"], cfg["hidden_size"]
    dirs = 2 if cfg.get("bidirectional") else 1

    # Flags and bad model directories.
    rc, out, _ = run([exe, "--help"])
    check(rc == 0 and "--model" in out, "--help exits 0 and lists --model")
    rc, _, err = run([exe])
    check(rc == 2 and "--model" in err, "no --model: exit 2 and says so")
    rc, _, err = run([exe, "--model", model, "--gates", "bogus"])
    check(rc == 2 and "--gates" in err, "bad --gates: exit 2 with a message")
    for bad in ("0", "-3", "x", "5000"):
        rc, _, err = run([exe, "--model", model, "--batch", bad])
        check(rc == 2 and "--batch" in err, "bad --batch %s: exit 2" % bad)
    rc, _, err = run([exe, "--model", "/nonexistent/model"])
    check(rc == 2 and "config.json" in err, "missing model dir: exit 2 naming config.json")
    with tempfile.TemporaryDirectory() as tmp:
        bad_dir = os.path.join(tmp, "truncated")
        shutil.copytree(model, bad_dir)
        st = os.path.join(bad_dir, "model.safetensors")
        size = os.path.getsize(st)
        with open(st, "r+b") as f:
            f.truncate(size // 2)
        rc, _, err = run([exe, "--model", bad_dir])
        check(rc == 2 and "model.safetensors" in err, "truncated weights: exit 2 naming the file: " + err.strip())

    # Results: one line per input line, errors in place, exit 1 when a line failed.
    texts = ["the food was cold but the staff were lovely", "It's NOT good!!", "", "a" * 10 + " b" * 3000,
             "great", "terrible , awful movie", "   ", "我 上周 去 北京 玩 了"]
    data = "\n".join(texts).encode() + b"\n" + b"bad \xff utf8\n" + b"last line without newline"
    n_lines = len(texts) + 2
    rc, out, err = run([exe, "--model", model, "--gates", "summary", "--trajectory", "--batch", "3"], data)
    lines = out.splitlines()
    check(rc == 1, "a failed line makes exit status 1 (got %d)" % rc)
    check(len(lines) == n_lines, "one output line per input line (%d of %d)" % (len(lines), n_lines))
    res = [json.loads(l) for l in lines]
    check(res[2].get("error", {}).get("code") == "empty_text" and res[2].get("line") == 3, "empty line: empty_text error")
    check(res[6].get("error", {}).get("code") == "empty_text", "whitespace line: empty_text error")
    check(res[8].get("error", {}).get("code") == "invalid_utf8" and "byte 4" in res[8]["error"]["message"],
          "invalid UTF-8: error with the byte offset")
    ok = [r for r in res if "error" not in r]
    check(len(ok) == 7, "seven results")
    for r in ok:
        p = [r["probabilities"][k] for k in labels]
        n = len(r["tokens"])
        check(abs(sum(p) - 1) < 1e-5 and r["label"] == labels[p.index(max(p))] and r["score"] == max(p),
              "probabilities sum to 1, label is the argmax: %s" % r["label"])
        check(len(r["token_ids"]) == n and len(r["gates"]) == cfg["num_layers"] * dirs, "gates entries per layer/direction")
        g = r["gates"][0]
        check(len(g["reset"]) == n and len(g["update"]) == n and all(0 <= v <= 1 for v in g["reset"] + g["update"]),
              "summary gates: one value in [0, 1] per token")
        if dirs == 1:
            check(len(r["trajectory"]) == n and close(r["trajectory"][-1], p, 1e-5), "trajectory ends at the probabilities")
    long = res[3]
    check(long["truncated"] is True and len(long["tokens"]) == cfg["tokenizer"]["max_tokens"] and
          long["num_tokens_total"] == 3001, "long text truncated to max_tokens, total reported")
    check(res[0]["truncated"] is False and "num_tokens_total" not in res[0], "short text not truncated")

    # Batching does not change results.
    good = "\n".join(t for t in texts if t.strip()).encode() + b"\n"
    _, out1, _ = run([exe, "--model", model, "--batch", "1"], good)
    _, out7, _ = run([exe, "--model", model, "--batch", "7"], good)
    r1 = [json.loads(l) for l in out1.splitlines()]
    r7 = [json.loads(l) for l in out7.splitlines()]
    same = len(r1) == len(r7) == 6 and all(
        a["tokens"] == b["tokens"] and close([a["probabilities"][k] for k in labels], [b["probabilities"][k] for k in labels])
        for a, b in zip(r1, r7))
    check(same, "batch 1 and batch 7 give the same results")
    check(all("gates" not in r and "trajectory" not in r for r in r1), "no gates or trajectory unless asked")

    # Full gates: four vectors of H per token.
    rc, out, _ = run([exe, "--model", model, "--gates", "full"], b"the staff were lovely\n")
    r = json.loads(out)
    g = r["gates"][0]
    n = len(r["tokens"])
    check(rc == 0 and all(len(g[k]) == n and all(len(v) == H for v in g[k]) for k in ("reset", "update", "candidate", "hidden")),
          "full gates: reset, update, candidate, hidden of H values per token")
    check(all(-1 <= v <= 1 for row in g["hidden"] + g["candidate"] for v in row), "hidden and candidate in [-1, 1]")

    print("%d passed, %d failed" % (len(PASSED), len(FAILED)))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
