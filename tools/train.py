#!/usr/bin/python3
"""train.py - train the gru-sentiment GRU classifier and write a model directory.

The module is exactly the one the C engine runs (README.md, "Model format"):

    embedding = nn.Embedding(V, E, padding_idx=0)
    gru = nn.GRU(E, H, num_layers=L, batch_first=True, bidirectional=B)
    fc = nn.Linear(H * (2 if B else 1), C)
    logits = fc(h_n[-1])                      # unidirectional, last layer
    logits = fc(cat(h_n[-2], h_n[-1]))        # bidirectional, last layer (forward, backward)

Sequences are packed (pack_padded_sequence), so padding never changes a result: each text is
processed at its own length, as in the C engine. Dropout (embedding output, between GRU layers,
before fc) has no parameters, so the exported state_dict holds only the tensors above.
Tokenization is tools/gru_tokenizer.py (docs/tokenizer.md), the same rules as the server.

Train (data: TSV with a header `label<TAB>text`, label 0 = negative, 1 = positive):

    /usr/bin/python3 tools/train.py --train TRAIN.tsv [--train MORE.tsv ...] --dev DEV.tsv \
        --kind word --out models/NAME [--embedding-dim 128 --hidden-size 256 ...]

Check a written model directory (loads config.json / model.safetensors / vocab.txt back into
the same module, tokenizes with config's tokenizer and max_tokens):

    /usr/bin/python3 tools/train.py --eval models/NAME --data DEV.tsv [--data MORE.tsv]

Use /usr/bin/python3 (Debian's torch). Threads: --threads N sets torch.set_num_threads and
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS (set before torch is imported).
"""

import argparse
import collections
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

LABELS = ["negative", "positive"]
LONG_TOKENS = 15  # "long" dev rows (a proxy for whole sentences): at least this many tokens


def _early_threads(argv):
    """Sets the BLAS/OpenMP thread variables from --threads before torch is imported."""
    n = "1"
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    return int(n)


_THREADS = _early_threads(sys.argv[1:])

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import gru_format  # noqa: E402
import gru_tokenizer  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Data

def read_tsv(path):
    """[(label int, text str)] from a `label<TAB>text` file with a header line."""
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n")
        if header.split("\t")[:2] != ["label", "text"]:
            raise SystemExit(f"{path}: header must be 'label<TAB>text', got {header!r}")
        for n, line in enumerate(f, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            lab, sep, text = line.partition("\t")
            if not sep or lab not in ("0", "1"):
                raise SystemExit(f"{path}:{n}: bad row {line[:60]!r}")
            rows.append((int(lab), text))
    return rows


def tokenize_rows(rows, kind, lowercase):
    return [(lab, gru_tokenizer.tokenize(text, kind, lowercase)) for lab, text in rows]


def build_vocab(token_lists, min_freq, max_size):
    """ids 0 <pad>, 1 <unk>, then tokens by frequency (descending), then token (ascending)."""
    cnt = collections.Counter()
    for toks in token_lists:
        cnt.update(toks)
    cnt.pop("<pad>", None)
    cnt.pop("<unk>", None)
    items = sorted(((t, c) for t, c in cnt.items() if c >= min_freq), key=lambda x: (-x[1], x[0]))
    if max_size:
        items = items[:max(0, max_size - 2)]
    return ["<pad>", "<unk>"] + [t for t, _ in items]


def encode_rows(tok_rows, vocab_dict, max_tokens):
    """[(label, [ids])] with at most max_tokens ids (the first ones), as the server does."""
    return [(lab, gru_tokenizer.encode(toks, vocab_dict, max_tokens)[0]) for lab, toks in tok_rows]


def encode_file(path, kind, lowercase, vocab_dict, max_tokens):
    """A labelled TSV, encoded: ([(label, [ids])], the untruncated token count of each row)."""
    tok = tokenize_rows(read_tsv(path), kind, lowercase)
    return encode_rows(tok, vocab_dict, max_tokens), [len(t) for _, t in tok]


def dataset_key(path, data_root):
    """A dataset path as config.json records it: relative to data_root when inside it."""
    r = os.path.relpath(path, data_root) if data_root else path
    return path if r.startswith("..") else r


def dev_config_metrics(m):
    """The dev figures of config.json "metrics", from evaluate()'s metrics m."""
    return {"dev_accuracy": m["accuracy"], "dev_macro_f1": m["macro_f1"], "dev_examples": m["examples"],
            "dev_per_class": m["per_class"], "dev_long_accuracy": m["long"]["accuracy"],
            "dev_long_examples": m["long"]["examples"], "dev_long_min_tokens": m["long"]["min_tokens"]}


def reports_config_metrics(reports, data_root):
    """config.json "metrics.reports" from {path: evaluate()'s metrics}."""
    return {dataset_key(p, data_root): {"accuracy": r["accuracy"], "examples": r["examples"]}
            for p, r in reports.items()}


def make_batches(data, batch_size, rng=None):
    """Lists of indices into data, each batch of similar lengths. With rng: bucketed shuffle
    (shuffle, sort chunks of 50 batches by length, cut, shuffle the batch order); without:
    sorted by length (evaluation)."""
    idx = list(range(len(data)))
    if rng is None:
        idx.sort(key=lambda i: len(data[i][1]))
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda i: len(data[i][1]))
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(data, batch):
    lens = [len(data[i][1]) for i in batch]
    x = torch.zeros(len(batch), max(1, max(lens)), dtype=torch.long)
    for r, i in enumerate(batch):
        ids = data[i][1]
        if ids:
            x[r, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    y = torch.tensor([data[i][0] for i in batch], dtype=torch.long)
    return x, torch.tensor(lens, dtype=torch.long), y


# ---------------------------------------------------------------------------------------------
# Model

class GRUClassifier(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers=1, bidirectional=False,
                 num_classes=2, dropout=0.0, emb_dropout=0.0, rnn="gru", sparse=False,
                 pooling="last"):
        super().__init__()
        # pooling: the head reads the last layer's final state(s) ("last"), or the element-wise
        # max or mean of its outputs over the text's tokens ("max", "mean").
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0, sparse=sparse)
        # rnn="lstm" is for comparison runs only (not exportable: the engine serves GRUs).
        cls = nn.LSTM if rnn == "lstm" else nn.GRU
        self.gru = cls(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.rnn = rnn
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.emb_drop = nn.Dropout(emb_dropout)  # no parameters: not in the state_dict
        self.out_drop = nn.Dropout(dropout)
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size

    def final_state(self, x, lengths):
        """x: (B, T) ids; lengths: (B,) true lengths (0 allowed: the zero state, as the engine)."""
        bsz = x.size(0)
        d = 2 if self.bidirectional else 1
        h = x.new_zeros((bsz, d * self.hidden_size), dtype=torch.float)
        nz = (lengths > 0).nonzero(as_tuple=True)[0]
        if len(nz) == 0:
            return h
        emb = self.emb_drop(self.embedding(x[nz]))
        packed = pack_padded_sequence(emb, lengths[nz].cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, h_n = self.gru(packed)  # (L*D, b, H), in the input order
        if self.pooling != "last":
            y, _ = pad_packed_sequence(out, batch_first=True)  # (b, T, D*H), zero-padded
            lens = lengths[nz]
            mask = (torch.arange(y.size(1))[None, :] < lens[:, None])[:, :, None]
            if self.pooling == "max":
                hf = y.masked_fill(~mask, float("-inf")).max(dim=1).values
            else:
                hf = (y * mask).sum(dim=1) / lens[:, None].to(y.dtype)
        else:
            if self.rnn == "lstm":
                h_n = h_n[0]  # (h_n, c_n)
            hf = torch.cat((h_n[-2], h_n[-1]), dim=1) if self.bidirectional else h_n[-1]
        if len(nz) == bsz:
            return hf
        h = h.clone()
        h[nz] = hf
        return h

    def forward(self, x, lengths):
        return self.fc(self.out_drop(self.final_state(x, lengths)))


def export_state_dict(model, num_layers, bidirectional):
    """The state_dict with exactly the names of the model format (checked)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    want = {"embedding.weight", "fc.weight", "fc.bias"}
    for k in range(num_layers):
        for sfx in ([""] + (["_reverse"] if bidirectional else [])):
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                want.add(f"gru.{w}_l{k}{sfx}")
    if set(sd) != want:
        raise RuntimeError(f"state_dict names differ: extra {sorted(set(sd) - want)}, "
                           f"missing {sorted(want - set(sd))}")
    return sd


# ---------------------------------------------------------------------------------------------
# Evaluation

def predict(model, data, batch_size=256):
    """(predictions, probabilities of class 1) in data order."""
    model.eval()
    preds = [0] * len(data)
    probs = [0.0] * len(data)
    with torch.no_grad():
        for batch in make_batches(data, batch_size):
            x, lens, _ = collate(data, batch)
            p = torch.softmax(model(x, lens), dim=1)
            for r, i in enumerate(batch):
                preds[i] = int(p[r].argmax())
                probs[i] = float(p[r, 1])
    return preds, probs


def metrics(gold, pred, num_classes=2):
    n = len(gold)
    acc = sum(g == p for g, p in zip(gold, pred)) / n if n else float("nan")
    per = {}
    f1s = []
    for c in range(num_classes):
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        per[LABELS[c]] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    return {"accuracy": acc, "macro_f1": sum(f1s) / len(f1s), "examples": n, "per_class": per}


def evaluate(model, data, long_tokens=LONG_TOKENS, token_lens=None):
    """Metrics on data; also accuracy on rows with >= long_tokens tokens (token_lens: the
    untruncated token counts, default the encoded lengths)."""
    pred, _ = predict(model, data)
    gold = [lab for lab, _ in data]
    m = metrics(gold, pred)
    lens = token_lens if token_lens is not None else [len(ids) for _, ids in data]
    long_idx = [i for i, L in enumerate(lens) if L >= long_tokens]
    m["long"] = {"min_tokens": long_tokens, "examples": len(long_idx),
                 "accuracy": (sum(gold[i] == pred[i] for i in long_idx) / len(long_idx))
                 if long_idx else float("nan")}
    return m


LENGTH_BUCKETS = (0, 15, 50, 100, 200, 512)


def by_length(model, data, token_lens):
    """{"a-b": {"examples", "accuracy"}} over untruncated token-length buckets."""
    pred, _ = predict(model, data)
    out = {}
    edges = list(LENGTH_BUCKETS) + [None]
    for lo, hi in zip(edges[:-1], edges[1:]):
        idx = [i for i, L in enumerate(token_lens) if L >= lo and (hi is None or L < hi)]
        if idx:
            out[f"{lo}-{hi - 1}" if hi else f"{lo}+"] = {
                "examples": len(idx),
                "accuracy": sum(pred[i] == data[i][0] for i in idx) / len(idx)}
    return out


def fmt_metrics(m):
    s = (f"acc {m['accuracy'] * 100:.2f}%  macro-F1 {m['macro_f1'] * 100:.2f}  "
         f"(n={m['examples']}")
    if "long" in m:
        s += f"; >={m['long']['min_tokens']} tokens: {m['long']['accuracy'] * 100:.2f}% " \
             f"n={m['long']['examples']}"
    s += ")"
    for name, pc in m["per_class"].items():
        s += (f"\n    {name:9s} P {pc['precision'] * 100:.2f}  R {pc['recall'] * 100:.2f}  "
              f"F1 {pc['f1'] * 100:.2f}  n={pc['support']}")
    return s


# ---------------------------------------------------------------------------------------------
# Loading a model directory back (--eval)

def load_model_dir(d):
    import numpy as np
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    header, tensors = gru_format.read_safetensors(os.path.join(d, "model.safetensors"))
    vocab = gru_tokenizer.load_vocab(os.path.join(d, "vocab.txt"))
    if len(vocab) != cfg["vocab_size"]:
        raise SystemExit(f"{d}: vocab.txt has {len(vocab)} tokens, config says {cfg['vocab_size']}")
    model = GRUClassifier(cfg["vocab_size"], cfg["embedding_dim"], cfg["hidden_size"],
                          cfg["num_layers"], cfg["bidirectional"], len(cfg["labels"]),
                          pooling=cfg.get("pooling", "last"))
    sd = {name: torch.from_numpy(np.asarray(vals, dtype=np.float32).reshape(shape))
          for name, (shape, vals) in tensors.items()}
    model.load_state_dict(sd, strict=True)  # exact names and shapes
    model.eval()
    return cfg, vocab, model


def teacher_probs(dirs, tok_rows):
    """P(class 1) of each row, averaged over the model directories dirs (each with its own
    vocabulary and max_tokens; same tokenizer kind as tok_rows)."""
    total = [0.0] * len(tok_rows)
    for d in dirs:
        cfg, vocab, model = load_model_dir(d)
        data = encode_rows(tok_rows, vocab, cfg["tokenizer"]["max_tokens"])
        _, probs = predict(model, data)
        total = [a + b for a, b in zip(total, probs)]
        print(f"teacher {d}: train accuracy "
              f"{100 * sum((p > 0.5) == (lab == 1) for p, (lab, _) in zip(probs, data)) / len(data):.2f}%",
              flush=True)
    return [t / len(dirs) for t in total]


def run_eval(args):
    cfg, vocab, model = load_model_dir(args.eval)
    tk = cfg["tokenizer"]
    print(f"{args.eval}: V={cfg['vocab_size']} E={cfg['embedding_dim']} H={cfg['hidden_size']} "
          f"L={cfg['num_layers']} B={cfg['bidirectional']} tokenizer={tk}")
    for path in args.data:
        rows = read_tsv(path)
        toks = tokenize_rows(rows, tk["kind"], tk["lowercase"])
        data = encode_rows(toks, vocab, tk["max_tokens"])
        m = evaluate(model, data, args.long_tokens, [len(t) for _, t in toks])
        unk = sum(i == 1 for _, ids in data for i in ids)
        tot = sum(len(ids) for _, ids in data)
        trunc = sum(len(t) > tk["max_tokens"] for _, t in toks)
        print(f"{path}: {fmt_metrics(m)}\n    unk tokens {unk}/{tot} "
              f"({100 * unk / max(1, tot):.2f}%), truncated rows {trunc}")
        if args.errors:
            pred, probs = predict(model, data)
            for (lab, text), p, q in zip(rows, pred, probs):
                if p != lab:
                    print(f"    wrong: gold {LABELS[lab]:8s} P(positive) {q:.2f}  {text}")
        if "metrics" in cfg and args.compare:
            want = cfg["metrics"].get("dev_accuracy")
            if want is not None and abs(want - m["accuracy"]) > 1e-9:
                print(f"    MISMATCH: config dev_accuracy {want} != {m['accuracy']}")
                return 1
            print("    matches config metrics.dev_accuracy")
    return 0


# ---------------------------------------------------------------------------------------------
# Training

def load_checkpoint(path, vocab):
    """A --checkpoint file ({"epoch", "state", "vocab"}), refused unless its vocabulary is vocab."""
    ck = torch.load(path)
    if ck["vocab"] != vocab:
        raise SystemExit(f"{path}: its vocabulary differs from this run's")
    return ck


def train(args):
    t_start = time.time()

    def rel(p):  # a dataset path as recorded in config.json
        return dataset_key(p, args.data_root)

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(_THREADS)
    lowercase = not args.no_lowercase

    train_rows = []
    train_times = []  # per row: how many times an epoch it is seen (--repeat)
    for p in args.train:
        rows = read_tsv(p)
        print(f"train {p}: {len(rows)} rows" +
              (f", seen {args.repeat[p]} times an epoch" if p in args.repeat else ""), flush=True)
        train_rows.extend(rows)
        train_times += [args.repeat.get(p, 1)] * len(rows)
    dev_rows = []
    dev_spans = []  # (path, first row, end row) of each dev file in dev_rows
    for p in args.dev:
        rows = read_tsv(p)
        print(f"dev   {p}: {len(rows)} rows", flush=True)
        dev_spans.append((p, len(dev_rows), len(dev_rows) + len(rows)))
        dev_rows.extend(rows)
    t0 = time.time()
    train_tok = tokenize_rows(train_rows, args.kind, lowercase)
    dev_tok = tokenize_rows(dev_rows, args.kind, lowercase)
    print(f"tokenized ({args.kind}, lowercase={lowercase}) in {time.time() - t0:.1f}s", flush=True)

    vocab = build_vocab([t for _, t in train_tok], args.min_freq, args.max_vocab)
    pretrained = None
    if args.glove:
        import glove
        vocab, pretrained = glove.extend_vocab(vocab, os.path.expanduser(args.glove), args.glove_vocab,
                                               args.embedding_dim, args.kind, lowercase)
    vdict = {t: i for i, t in enumerate(vocab)}
    # Each train row: (label, ids, soft target = P(class 1) averaged over the --teacher models,
    # or None). Distillation: the loss mixes the hard label with the teachers' probabilities.
    soft = teacher_probs(args.teacher, train_tok) if args.teacher else [None] * len(train_tok)
    train_data = [(lab, ids, q) for (lab, ids), q, k in
                  zip(encode_rows(train_tok, vdict, args.max_tokens), soft, train_times)
                  if ids for _ in range(k)]
    if args.repeat_long > 1:  # rows with >= long_tokens tokens appear repeat_long times an epoch
        train_data += [r for r in train_data if len(r[1]) >= args.long_tokens] * (args.repeat_long - 1)
    dev_data = encode_rows(dev_tok, vdict, args.max_tokens)
    dev_lens = [len(t) for _, t in dev_tok]
    reports = []  # (path, data, token lengths): evaluated each epoch, never used for selection
    for p in args.report:
        reports.append((p, *encode_file(p, args.kind, lowercase, vdict, args.max_tokens)))
    n_unk = sum(i == 1 for _, ids in dev_data for i in ids)
    n_tok = sum(len(ids) for _, ids in dev_data)
    print(f"vocab {len(vocab)} (min_freq {args.min_freq}, max {args.max_vocab}); "
          f"train {len(train_data)} rows; dev {len(dev_data)} rows, unk {n_unk}/{n_tok} "
          f"({100 * n_unk / max(1, n_tok):.2f}%), dev rows >= {args.long_tokens} tokens: "
          f"{sum(L >= args.long_tokens for L in dev_lens)}", flush=True)

    model = GRUClassifier(len(vocab), args.embedding_dim, args.hidden_size, args.num_layers,
                          args.bidirectional, len(LABELS), args.dropout, args.emb_dropout,
                          args.rnn, args.sparse_emb, args.pooling)
    if pretrained is not None:
        with torch.no_grad():
            for i, vec in pretrained.items():
                model.embedding.weight[i] = torch.from_numpy(vec)
        print(f"embedding: {len(pretrained)} of {len(vocab)} rows from {args.glove}", flush=True)
    if args.embedding_from:  # an ensemble member that shares another model's embedding
        _, evocab, emodel = load_model_dir(args.embedding_from)
        if evocab != vdict:
            raise SystemExit(f"{args.embedding_from}: its vocabulary differs from this run's")
        with torch.no_grad():
            model.embedding.weight.copy_(emodel.embedding.weight)
        print(f"embedding: all {len(vocab)} rows from {args.embedding_from}", flush=True)
    if args.init_from:  # continue a stopped run: its best state, a fresh optimizer at --lr
        ck = load_checkpoint(args.init_from, vocab)
        model.load_state_dict(ck["state"])
        print(f"initialized from {args.init_from} (epoch {ck['epoch']} of its run)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model E={args.embedding_dim} H={args.hidden_size} L={args.num_layers} "
          f"B={args.bidirectional} dropout={args.dropout} emb_dropout={args.emb_dropout} "
          f"word_dropout={args.word_dropout}: "
          f"{n_params} parameters ({n_params * 4 / 1e6:.1f} MB)", flush=True)
    emb_params = [model.embedding.weight]
    other_params = [p for n, p in model.named_parameters() if n != "embedding.weight"]
    emb_lr = args.emb_lr if args.emb_lr is not None else args.lr
    if args.sparse_emb:  # only the rows of a batch's tokens are updated (fast for a big vocab)
        opts = [torch.optim.Adam(other_params, lr=args.lr, weight_decay=args.weight_decay),
                torch.optim.SparseAdam(emb_params, lr=emb_lr)]
    else:
        opts = [torch.optim.Adam([{"params": other_params},
                                  {"params": emb_params, "lr": emb_lr}],
                                 lr=args.lr, weight_decay=args.weight_decay)]
    model.embedding.weight.requires_grad_(args.freeze_emb_epochs == 0)

    def dev_score(m, data):
        if args.select == "long":
            return m["long"]["accuracy"]
        if args.select == "macro":  # mean of the dev files' accuracies
            accs = [evaluate(model, data[b:e])["accuracy"] for _, b, e in dev_spans]
            return sum(accs) / len(accs)
        return m["accuracy"]

    def per_file(data):
        out = {}
        for p, b, e in dev_spans:
            fm = evaluate(model, data[b:e], args.long_tokens, dev_lens[b:e])
            out[rel(p)] = {"accuracy": fm["accuracy"], "macro_f1": fm["macro_f1"],
                           "examples": fm["examples"]}
        return out
    loss_fn = nn.CrossEntropyLoss()
    rng = random.Random(args.seed)

    best = None  # (score, epoch, state, metrics)
    bad = 0
    history = []
    states = {}  # epoch -> state (only kept with --average)
    if args.from_checkpoint:  # export a stopped run's best state (same arguments otherwise)
        ck = load_checkpoint(args.from_checkpoint, vocab)
        model.load_state_dict(ck["state"])
        best = (dev_score(evaluate(model, dev_data), dev_data), ck["epoch"], ck["state"], None)
        print(f"{args.from_checkpoint}: best state of epoch {ck['epoch']}", flush=True)
    for epoch in range(1, 0 if args.from_checkpoint else args.epochs + 1):
        t0 = time.time()
        if args.freeze_emb_epochs and epoch == args.freeze_emb_epochs + 1:
            model.embedding.weight.requires_grad_(True)
            print("embedding unfrozen", flush=True)
        model.train()
        tot_loss, tot_n, correct = 0.0, 0, 0
        for batch in make_batches(train_data, args.batch_size, rng):
            x, lens, y = collate(train_data, batch)
            if args.word_dropout > 0:  # replace random tokens by <unk> (robustness to OOV)
                x = x.masked_fill((torch.rand(x.shape) < args.word_dropout) & (x > 1), 1)
            for opt in opts:
                opt.zero_grad()
            logits = model(x, lens)
            loss = loss_fn(logits, y)
            if args.teacher:
                q1 = torch.tensor([train_data[i][2] for i in batch], dtype=torch.float)
                q = torch.stack((1 - q1, q1), dim=1)
                kd = -(q * torch.log_softmax(logits, dim=1)).sum(1).mean()
                loss = (1 - args.distill_weight) * loss + args.distill_weight * kd
            loss.backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(other_params if args.sparse_emb else model.parameters(),
                                         args.clip)
            for opt in opts:
                opt.step()
            tot_loss += float(loss) * len(batch)
            tot_n += len(batch)
            correct += int((logits.argmax(1) == y).sum())
        m = evaluate(model, dev_data, args.long_tokens, dev_lens)
        score = dev_score(m, dev_data)
        dt = time.time() - t0
        lr_now = opts[0].param_groups[0]["lr"]
        history.append({"epoch": epoch, "loss": tot_loss / tot_n, "dev_accuracy": m["accuracy"],
                        "dev_long_accuracy": m["long"]["accuracy"], "seconds": dt})
        improved = best is None or score > best[0]
        rep_s = ""
        for p, rdata, rlens in reports:
            rm = evaluate(model, rdata, args.long_tokens, rlens)
            history[-1]["report:" + p] = rm["accuracy"]
            rep_s += f"  [{os.path.basename(os.path.dirname(p)) or p}/{os.path.basename(p)} " \
                     f"{100 * rm['accuracy']:.2f}%]"
        if len(dev_spans) > 1:
            rep_s += "  dev files: " + " ".join(
                f"{os.path.basename(os.path.dirname(p))} {100 * v['accuracy']:.2f}%"
                for p, v in zip(args.dev, per_file(dev_data).values()))
        print(f"epoch {epoch:2d}  loss {tot_loss / tot_n:.4f}  train acc {100 * correct / tot_n:.2f}%"
              f"  dev acc {100 * m['accuracy']:.2f}%  F1 {100 * m['macro_f1']:.2f}"
              f"  long {100 * m['long']['accuracy']:.2f}%  select {100 * score:.2f}"
              f"  lr {lr_now:.2g}  {dt:.1f}s{rep_s}{'  *' if improved else ''}", flush=True)
        if args.average > 1:
            states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            states.pop(epoch - 2 * args.average - args.patience, None)
        if improved:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()}, m)
            bad = 0
            if args.checkpoint:  # the best state so far survives an interrupted run
                torch.save({"epoch": epoch, "state": best[2], "vocab": vocab}, args.checkpoint)
        else:
            bad += 1
            if args.lr_decay < 1.0:
                for opt in opts:
                    for g in opt.param_groups:
                        g["lr"] *= args.lr_decay
            if bad >= args.patience:
                print(f"early stop: no improvement for {bad} epochs", flush=True)
                break
        if args.time_limit and time.time() - t_start > args.time_limit:
            print(f"time limit {args.time_limit}s reached", flush=True)
            break

    score, best_epoch, state, _ = best
    model.load_state_dict(state)
    m = evaluate(model, dev_data, args.long_tokens, dev_lens)
    averaged = None
    for p, rdata, rlens in reports:
        print(f"  single best epoch: report {p} "
              f"{100 * evaluate(model, rdata, args.long_tokens, rlens)['accuracy']:.2f}%", flush=True)
    if args.average > 1:
        # Average the weights of the epochs best-K+1 .. best (checkpoint averaging); keep the
        # average if its dev score is at least the single best epoch's.
        eps = [e for e in range(best_epoch - args.average + 1, best_epoch + 1) if e in states]
        avg = {k: sum(states[e][k] for e in eps) / len(eps) for k in state}
        model.load_state_dict(avg)
        ma = evaluate(model, dev_data, args.long_tokens, dev_lens)
        sa = dev_score(ma, dev_data)
        print(f"average of epochs {eps[0]}..{eps[-1]}: dev acc {100 * ma['accuracy']:.2f}%  "
              f"F1 {100 * ma['macro_f1']:.2f}", flush=True)
        for p, rdata, rlens in reports:
            print(f"  averaged: report {p} "
                  f"{100 * evaluate(model, rdata, args.long_tokens, rlens)['accuracy']:.2f}%",
                  flush=True)
        if sa >= score:
            averaged = eps
            m = ma
            print("using the averaged weights", flush=True)
        else:
            model.load_state_dict(state)
            print("keeping the single best epoch", flush=True)
    train_secs = time.time() - t_start
    print(f"best epoch {best_epoch}: dev {fmt_metrics(m)}", flush=True)
    dev_files = per_file(dev_data)
    for p, v in dev_files.items():
        print(f"  dev {p}: acc {100 * v['accuracy']:.2f}%  macro-F1 {100 * v['macro_f1']:.2f}  "
              f"n={v['examples']}", flush=True)
    dev_len = by_length(model, dev_data, dev_lens)
    for b, v in dev_len.items():
        print(f"  dev tokens {b}: acc {100 * v['accuracy']:.2f}%  n={v['examples']}", flush=True)
    final_reports = {}
    for p, rdata, rlens in reports:
        rm = evaluate(model, rdata, args.long_tokens, rlens)
        final_reports[p] = rm
        print(f"report {p}: {fmt_metrics(rm)}", flush=True)
    print(f"total time {train_secs:.0f}s", flush=True)

    if args.out:
        sd = export_state_dict(model, args.num_layers, args.bidirectional)
        extra = {
            "metrics": {**dev_config_metrics(m), "dev_by_file": dev_files, "dev_by_tokens": dev_len,
                        "reports": reports_config_metrics(final_reports, args.data_root)},
            "dataset": {"train": [rel(p) for p in args.train],
                        "dev": [rel(p) for p in args.dev],
                        "train_examples": len(train_data)},
            "training": {"best_epoch": best_epoch, "epochs_run": len(history),
                         "seconds": round(train_secs), "parameters": n_params,
                         "averaged_epochs": averaged,
                         "command": args.command_line,
                         "hyperparameters": {k: getattr(args, k) for k in (
                             "embedding_dim", "hidden_size", "num_layers", "bidirectional",
                             "glove", "glove_vocab", "teacher", "distill_weight", "emb_lr", "sparse_emb", "freeze_emb_epochs",
                             "dropout", "emb_dropout", "word_dropout", "repeat_long", "repeat", "average", "lr", "lr_decay", "weight_decay",
                             "batch_size", "clip", "min_freq", "max_vocab", "seed", "select", "pooling", "init_from", "embedding_from")}},
        }
        gru_format.write_model_dir(
            args.out, sd, vocab, labels=LABELS, embedding_dim=args.embedding_dim,
            hidden_size=args.hidden_size, num_layers=args.num_layers,
            bidirectional=args.bidirectional,
            tokenizer={"kind": args.kind, "lowercase": lowercase, "max_tokens": args.max_tokens},
            languages=[x for x in args.languages.split(",") if x], pooling=args.pooling,
            extra_config=extra)
        size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
        print(f"wrote {args.out} ({size / 1e6:.1f} MB)", flush=True)
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump({"dev": m, "reports": final_reports, "best_epoch": best_epoch, "history": history,
                       "seconds": train_secs, "parameters": n_params}, f, indent=1)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--train", action="append", default=[], help="train TSV (repeatable)")
    ap.add_argument("--dev", action="append", default=[], help="dev TSV (repeatable)")
    ap.add_argument("--report", action="append", default=[],
                    help="extra labelled TSV evaluated each epoch and at the end, for information "
                         "only (never used for early stopping); repeatable")
    ap.add_argument("--out", help="model directory to write")
    ap.add_argument("--kind", choices=("word", "char"), default="word", help="tokenizer kind")
    ap.add_argument("--no-lowercase", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=256, help="tokens kept per text")
    ap.add_argument("--min-freq", type=int, default=1, help="min token frequency in train")
    ap.add_argument("--max-vocab", type=int, default=0, help="max vocab size incl. specials; 0=all")
    ap.add_argument("--embedding-dim", "-E", type=int, default=128)
    ap.add_argument("--hidden-size", "-H", type=int, default=256)
    ap.add_argument("--num-layers", "-L", type=int, default=1)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.3, help="before fc / between GRU layers")
    ap.add_argument("--emb-dropout", type=float, default=0.3, help="on embedding outputs")
    ap.add_argument("--word-dropout", type=float, default=0.0,
                    help="training only: replace each token by <unk> with this probability")
    ap.add_argument("--repeat-long", type=int, default=1,
                    help="rows with >= --long-tokens tokens appear this many times per epoch")
    ap.add_argument("--repeat", action="append", default=[], metavar="TRAIN=K",
                    help="the rows of --train file TRAIN are seen K times an epoch (the vocabulary "
                         "still counts them once)")
    ap.add_argument("--average", type=int, default=1,
                    help="average the weights of the last K epochs up to the best (K > 1)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-decay", type=float, default=0.5,
                    help="multiply lr by this after an epoch without improvement")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=5.0, help="gradient norm clip (0 = off)")
    ap.add_argument("--epochs", type=int, default=20, help="max epochs")
    ap.add_argument("--patience", type=int, default=3, help="early stopping patience (epochs)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--select", choices=("acc", "long", "macro"), default="acc",
                    help="early stopping on dev accuracy (all --dev files as one), on accuracy "
                         "of long dev rows, or on the mean of the --dev files' accuracies")
    ap.add_argument("--pooling", choices=("last", "max", "mean"), default="last",
                    help="head input: the final state(s), or the max or mean of the last "
                         "layer's outputs over the tokens")
    ap.add_argument("--rnn", choices=("gru", "lstm"), default="gru",
                    help="lstm: a comparison run only (cannot be written with --out)")
    ap.add_argument("--glove", metavar="DIR", nargs="?", const="~/.cache/gru-sentiment/glove",
                    help="initialize the embedding from pretrained vectors prepared by "
                         "tools/glove.py in DIR (its --cache), adding frequent words beyond the "
                         "train vocabulary up to --glove-vocab entries")
    ap.add_argument("--glove-vocab", type=int, default=0,
                    help="with --glove: vocabulary size to fill up to with frequent GloVe words")
    ap.add_argument("--emb-lr", type=float, default=None, help="embedding lr (default --lr)")
    ap.add_argument("--sparse-emb", action="store_true",
                    help="sparse embedding gradients (SparseAdam): fast with a large vocabulary")
    ap.add_argument("--freeze-emb-epochs", type=int, default=0,
                    help="keep the embedding fixed for this many first epochs")
    ap.add_argument("--teacher", action="append", default=[], metavar="DIR",
                    help="distill: model directories whose averaged probabilities are soft "
                         "targets (repeatable)")
    ap.add_argument("--distill-weight", type=float, default=0.7,
                    help="with --teacher: weight of the soft-target loss (1 - it: hard labels)")
    ap.add_argument("--languages", default="",
                    help="comma-separated languages written to config.json (e.g. en)")
    ap.add_argument("--checkpoint", help="torch.save the best state here after each improvement")
    ap.add_argument("--embedding-from", metavar="DIR",
                    help="copy the embedding of this model directory (same vocabulary); with "
                         "--freeze-emb-epochs N >= --epochs the run trains a member that shares it "
                         "(tools/fold.py)")
    ap.add_argument("--init-from", metavar="CK",
                    help="start from the state saved by another run's --checkpoint (same data and "
                         "vocabulary; the optimizer starts afresh at --lr): continues a run that a "
                         "time limit stopped")
    ap.add_argument("--from-checkpoint", metavar="CK",
                    help="no training: load the best state a run with the same arguments saved "
                         "in CK (--checkpoint), evaluate it and write --out")
    ap.add_argument("--long-tokens", type=int, default=LONG_TOKENS,
                    help="rows with at least this many tokens count as 'long'")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch / BLAS threads (1 is best on a busy machine: with 2 threads on "
                         "2 shared cores, OpenMP waiting made an epoch up to 10x slower)")
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds")
    ap.add_argument("--data-root", default="../shared",
                    help="dataset paths in config.json are written relative to this")
    ap.add_argument("--metrics-json", help="also write final metrics and history here")
    ap.add_argument("--eval", metavar="DIR", help="evaluate a written model directory instead")
    ap.add_argument("--data", action="append", default=[], help="TSV for --eval (repeatable)")
    ap.add_argument("--errors", action="store_true", help="with --eval: print misclassified rows")
    ap.add_argument("--compare", action="store_true",
                    help="with --eval: fail unless accuracy equals config metrics.dev_accuracy")
    args = ap.parse_args(argv)
    args.command_line = "/usr/bin/python3 tools/train.py " + " ".join(argv)
    if args.eval:
        if not args.data:
            ap.error("--eval needs --data TSV")
        torch.set_num_threads(_THREADS)
        return run_eval(args)
    if not args.train or not args.dev:
        ap.error("--train and --dev are required (or --eval DIR --data TSV)")
    if args.rnn == "lstm" and args.out:
        ap.error("--rnn lstm cannot be written as a model directory (the engine serves GRUs)")
    repeat = {}
    for r in args.repeat:
        path, _, k = r.rpartition("=")
        if path not in args.train or not k.isdigit() or int(k) < 1:
            ap.error(f"--repeat {r}: want TRAIN=K, TRAIN one of the --train files, K >= 1")
        repeat[path] = int(k)
    args.repeat = repeat
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
