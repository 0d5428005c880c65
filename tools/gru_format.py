"""gru_format.py - write (and read back) a gru-sentiment model directory.

A model directory is config.json + model.safetensors + vocab.txt (see README.md, "Model
format"). The safetensors writer is ours (the format is small): an 8-byte little-endian header
length, a JSON header {name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...,
"__metadata__": {...}} padded with spaces to a multiple of 8 bytes, then the tensor bytes,
each tensor 64-byte aligned. Standard library only (plus torch tensors or numpy arrays as
inputs), so tests and tools can use it without torch.
"""
import json
import os
import struct

FORMAT_VERSION = "1"


def _tensor_bytes(t):
    """Little-endian float32 bytes and shape of a torch tensor, numpy array or nested list."""
    if hasattr(t, "detach"):  # torch
        t = t.detach().cpu().contiguous().float().numpy()
    if hasattr(t, "astype"):  # numpy
        import numpy as np
        a = np.ascontiguousarray(t, dtype="<f4")
        return a.tobytes(), list(a.shape)
    raise TypeError("tensor must be a torch tensor or a numpy array")


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor (written in sorted name order). metadata: dict of str."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        data, shape = _tensor_bytes(tensors[name])
        pad = (-offset) % 64
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 64)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Returns (header dict, {name: (shape, list of floats)}) - for tests and tools."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        count = (e - b) // 4
        out[name] = (info["shape"], list(struct.unpack("<%df" % count, raw[base + b:base + e])))
    return header, out


def write_model_dir(out_dir, state_dict, vocab, *, labels, embedding_dim, hidden_size,
                    num_layers, bidirectional, tokenizer, languages=None, pooling="last",
                    extra_config=None):
    """Writes config.json, model.safetensors and vocab.txt into out_dir.

    state_dict: the module's state_dict() (names as in the README); vocab: list of tokens with
    vocab[0] == "<pad>" and vocab[1] == "<unk>"; tokenizer: {"kind", "lowercase", "max_tokens"};
    languages: the languages the model is for (e.g. ["en"]), written as config "languages";
    pooling: the head's input ("last", "max" or "mean"), written as config "pooling" unless
    "last" (the default a config without the field means).
    """
    assert vocab[0] == "<pad>" and vocab[1] == "<unk>"
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "model_type": "gru_classifier",
        "format_version": FORMAT_VERSION,
        "vocab_size": len(vocab),
        "embedding_dim": embedding_dim,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "bidirectional": bool(bidirectional),
        "labels": list(labels),
        "tokenizer": dict(tokenizer),
    }
    if languages:
        config["languages"] = list(languages)
    if pooling != "last":
        config["pooling"] = pooling
    if extra_config:
        config.update(extra_config)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    meta = {"format_version": FORMAT_VERSION, "vocab_size": len(vocab),
            "hidden_size": hidden_size, "num_classes": len(labels),
            "labels": json.dumps(list(labels), ensure_ascii=False)}
    write_safetensors(os.path.join(out_dir, "model.safetensors"), dict(state_dict), meta)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        for tok in vocab:
            assert tok and "\n" not in tok and "\r" not in tok, repr(tok)
            f.write(tok + "\n")
    return config
