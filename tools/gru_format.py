"""gru_format.py - write (and read back) a gru-sentiment model directory.

A model directory is config.json + model.safetensors + vocab.txt (see README.md, "Model
format"). The safetensors writer is ours (the format is small): an 8-byte little-endian header
length, a JSON header {name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...,
"__metadata__": {...}} padded with spaces to a multiple of 8 bytes, then the tensor bytes,
each tensor 64-byte aligned. Tensors are written as F32 (the default), F16 (IEEE half) or BF16
(the upper 16 bits of an F32), each rounded to nearest, ties to even; the server loads all three
(converting to F32). Writing needs numpy (the tensors are torch tensors or numpy arrays; torch
itself is never imported); reading is standard library only, so tests and tools can use it
without torch.
"""
import json
import os
import struct

FORMAT_VERSION = "1"


DTYPES = ("F32", "F16", "BF16")


def bf16_bits(a):
    """uint16 bfloat16 bits of a float32 numpy array: round to nearest, ties to even (as torch's
    .bfloat16()); a NaN stays a NaN (quiet), values past the largest bfloat16 round to inf."""
    import numpy as np
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    r[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)
    return r


def _tensor_bytes(t, dtype="F32", name="?"):
    """Little-endian bytes in dtype ("F32", "F16" or "BF16") and shape of a torch tensor or
    numpy array. A finite value too large for F16 (beyond 65504 once rounded) is a ValueError:
    the file would hold an inf that the server rejects."""
    if dtype not in DTYPES:
        raise ValueError("tensor %s: dtype %r, expected one of %s" % (name, dtype, ", ".join(DTYPES)))
    if hasattr(t, "detach"):  # torch (any float dtype: the upcast to float32 is exact)
        t = t.detach().cpu().contiguous().float().numpy()
    if not hasattr(t, "astype"):
        raise TypeError("tensor must be a torch tensor or a numpy array")
    import numpy as np
    a = np.ascontiguousarray(t, dtype="<f4")
    if dtype == "F16":
        with np.errstate(over="ignore"):
            h = a.astype("<f2")
        bad = np.isinf(h) & np.isfinite(a)
        if bad.any():
            raise ValueError("tensor %s: %g does not fit in F16 (max 65504)" % (name, a[bad].flat[0]))
        return h.tobytes(), list(a.shape)
    if dtype == "BF16":
        return bf16_bits(a).astype("<u2").tobytes(), list(a.shape)
    return a.tobytes(), list(a.shape)


def write_safetensors(path, tensors, metadata=None, dtype="F32"):
    """tensors: dict name -> tensor (written in sorted name order). metadata: dict of str.
    dtype: "F32", "F16" or "BF16" for every tensor, or a dict name -> dtype (a mixed file;
    names it lacks are F32)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dt = dtype.get(name, "F32") if isinstance(dtype, dict) else dtype
        data, shape = _tensor_bytes(tensors[name], dt, name)
        pad = (-offset) % 64
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        header[name] = {"dtype": dt, "shape": shape,
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
    """Returns (header dict, {name: (shape, list of floats)}) - for tests and tools. F32, F16
    and BF16 tensors all read as Python floats (exactly: each has a float64 of its value)."""
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
        blob = raw[base + b:base + e]
        dtype = info["dtype"]
        if dtype == "F32":
            vals = struct.unpack("<%df" % (len(blob) // 4), blob)
        elif dtype == "F16":
            vals = struct.unpack("<%de" % (len(blob) // 2), blob)
        elif dtype == "BF16":
            bits = struct.unpack("<%dH" % (len(blob) // 2), blob)
            vals = struct.unpack("<%df" % len(bits), struct.pack("<%dI" % len(bits), *[x << 16 for x in bits]))
        else:
            raise ValueError("%s: tensor %s: dtype %s, expected one of %s" % (path, name, dtype, ", ".join(DTYPES)))
        out[name] = (info["shape"], list(vals))
    return header, out


def write_model_dir(out_dir, state_dict, vocab, *, labels, embedding_dim, hidden_size,
                    num_layers, bidirectional, tokenizer, languages=None, pooling="last",
                    extra_config=None, dtype="F32"):
    """Writes config.json, model.safetensors and vocab.txt into out_dir.

    state_dict: the module's state_dict() (names as in the README); vocab: list of tokens with
    vocab[0] == "<pad>" and vocab[1] == "<unk>"; tokenizer: {"kind", "lowercase", "max_tokens"};
    languages: the languages the model is for (e.g. ["en"]), written as config "languages";
    pooling: the head's input ("last", "max" or "mean"), written as config "pooling" unless
    "last" (the default a config without the field means); dtype: the tensors' dtype in
    model.safetensors ("F32", "F16" or "BF16", or a dict name -> dtype; see write_safetensors).
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
    write_safetensors(os.path.join(out_dir, "model.safetensors"), dict(state_dict), meta, dtype=dtype)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        for tok in vocab:
            assert tok and "\n" not in tok and "\r" not in tok, repr(tok)
            f.write(tok + "\n")
    return config
