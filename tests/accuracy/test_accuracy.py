#!/usr/bin/python3
"""test_accuracy.py - the C engine reproduces a shipped model's dev accuracy.

Runs gru-predict over a labelled TSV (header "label<TAB>text", 0 = negative, 1 = positive) and
checks accuracy and macro-F1 against the figures training wrote into config.json ("metrics"),
and against a floor. Exit 77 (skip) when the dataset is absent. The figure compared is
metrics.dev_accuracy, or with --key K the accuracy training recorded for the file K
(metrics.dev_by_file[K] for one of several dev files, metrics.reports[K] for a --report file).

    test_accuracy.py --predict build/tools/gru-predict --model models/zh \
        --data ../shared/data/weibo2018/dev.tsv --key data/weibo2018/dev.tsv --min-accuracy 0.84
"""
import argparse
import json
import os
import subprocess
import sys


def macro_f1(gold, pred, classes):
    f1s = []
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predict", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--min-accuracy", type=float, required=True)
    ap.add_argument("--key", help="compare with metrics.dev_by_file[KEY] or metrics.reports[KEY]")
    ap.add_argument("--tolerance", type=float, default=0.002,
                    help="allowed gap to the accuracy that training measured with PyTorch")
    args = ap.parse_args()
    if not os.path.exists(args.data):
        print("SKIP: dataset %s is absent (../shared/data is not on this machine)" % args.data)
        return 77
    if not os.path.exists(os.path.join(args.model, "config.json")):
        print("SKIP: no model at %s" % args.model)
        return 77
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    gold, texts = [], []
    with open(args.data, encoding="utf-8") as f:
        next(f)
        for line in f:
            label, text = line.rstrip("\n").split("\t", 1)
            gold.append(int(label))
            texts.append(text)
    p = subprocess.run([args.predict, "--model", args.model, "--batch", "64"], input="\n".join(texts).encode() + b"\n",
                       stdout=subprocess.PIPE, timeout=600)
    results = [json.loads(l) for l in p.stdout.decode().splitlines()]
    if len(results) != len(texts):
        print("FAIL: %d results for %d texts" % (len(results), len(texts)))
        return 1
    labels = cfg["labels"]
    pred = [labels.index(r["label"]) if "label" in r else -1 for r in results]
    acc = sum(1 for g, q in zip(gold, pred) if g == q) / len(gold)
    f1 = macro_f1(gold, pred, range(len(labels)))
    print("%s on %s: %d texts, accuracy %.4f, macro-F1 %.4f" % (cfg.get("name", args.model), args.data, len(gold), acc, f1))
    failures = 0
    if acc < args.min_accuracy:
        print("FAIL: accuracy %.4f is below the floor %.4f" % (acc, args.min_accuracy))
        failures += 1
    metrics = cfg.get("metrics", {})
    if args.key:
        entry = metrics.get("dev_by_file", {}).get(args.key) or metrics.get("reports", {}).get(args.key)
        want = entry.get("accuracy") if entry else None
    else:
        want = metrics.get("dev_accuracy")
    if want is None:
        print("FAIL: config.json has no accuracy for %s to compare with" % (args.key or "metrics.dev_accuracy"))
        failures += 1
    elif abs(acc - want) > args.tolerance:
        print("FAIL: C engine accuracy %.4f differs from the PyTorch figure %.4f by more than %.4f" % (acc, want, args.tolerance))
        failures += 1
    else:
        print("ok: matches the PyTorch figure %.4f" % want)
    print("%d passed, %d failed" % (2 - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
