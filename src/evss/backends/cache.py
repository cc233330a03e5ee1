"""Where compiled and exported graphs are kept between runs, and the hash that names them.

One root for every backend: ``$EVSS_CACHE``, else ``$XDG_CACHE_HOME/evss``, else ``~/.cache/evss``;
each backend keeps its files in a folder of its own under it (``onnx/``, ``openvino/``). A file is
named by a hash of the weights it was made from, so new weights never reuse an old graph.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn

OPSET = 18  # the ONNX opset of the exported graphs (part of the hash: a new opset exports anew)


def cache_root() -> Path:
    """``$EVSS_CACHE``, else ``$XDG_CACHE_HOME/evss``, else ``~/.cache/evss``."""
    root = os.environ.get("EVSS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evss"
    return Path(root)


def fingerprint(module: nn.Module) -> str:
    """A hash of the module's class, weights and buffers (and the torch version that exports it)."""
    h = hashlib.sha256(f"{type(module).__qualname__} {torch.__version__} opset{OPSET}".encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:20]
