"""Digests of content, for the bookkeeping that decides whether a result is still current.

A result records what it was computed from (a run id, a curve point's key), and is recomputed when
that changes. The digest must follow the content, never the file: `torch.save` writes a zip archive
that stores its (temporary) file name, so two saves of equal weights differ in their bytes, and a copy
of the results tree (`cp -r` without `-p`, a cluster stage-in) changes every modification time.
`content_digest` therefore hashes the loaded object: mappings in sorted-key order, every tensor by its
dtype, shape and values (contiguous, on the CPU), every other leaf by its type and value.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import torch


def content_digest(obj) -> str:
    """sha1 (16 hex digits) of a nested structure of mappings, lists, tensors, arrays and JSON scalars.

    Equal content gives equal digests whatever the key order, the device, the memory layout or the file
    it came from; a changed value, dtype, shape, key or type gives another."""
    h = hashlib.sha1()
    _update(h, obj)
    return h.hexdigest()[:16]


def state_dict_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """`content_digest` of a module's (or a checkpoint's) state dict: its tensors in sorted-key order."""
    return content_digest(dict(state_dict))


def _update(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
        _tag(h, "tensor", f"{t.dtype}|{tuple(t.shape)}")
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw values, any dtype (bfloat16 included)
    elif isinstance(obj, np.ndarray):
        _update(h, torch.from_numpy(np.ascontiguousarray(obj)))
    elif isinstance(obj, Mapping):
        items = sorted(obj.items(), key=lambda kv: (type(kv[0]).__name__, str(kv[0])))
        _tag(h, "mapping", str(len(items)))
        for k, v in items:
            _update(h, k)
            _update(h, v)
    elif isinstance(obj, (list, tuple)):
        _tag(h, type(obj).__name__, str(len(obj)))
        for v in obj:
            _update(h, v)
    elif isinstance(obj, np.generic):
        _update(h, obj.item())
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        _tag(h, type(obj).__name__, json.dumps(obj))  # floats by repr: exact
    else:
        raise TypeError(f"content_digest cannot hash a {type(obj).__name__}: add it to genreview.hashing._update")


def _tag(h, kind: str, text: str) -> None:
    data = f"{kind}:{text}".encode()
    h.update(len(data).to_bytes(8, "little") + data)
