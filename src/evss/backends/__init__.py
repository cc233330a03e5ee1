"""Who runs the networks of Algorithm 1: eager PyTorch (the reference), ONNX Runtime or OpenVINO.

The segmenter, ``evss bench`` and ``evss eval`` call three parts of an :class:`~evss.models.evss.EVSSNet`
and nothing else of its networks:

* the keyframe network ``model.backbone``: image (N, 3, H, W) in [0, 1] -> logits (N, C, H/4, W/4),
  Algorithm 1 lines 3-6;
* the non-keyframe step's correction network ``model.correction``: (image, F^w) -> (F^u, edge
  scores) and ``edge_probability``, lines 9-10 and 13 (CoNet, or the keyframe network on the frame
  scaled down: ``evss.models.scaled_update``);
* the learned flow ``model.flow``: (reference, current) -> backward flow (N, 2, H/4, W/4), line 8.

A backend puts modules with the same contracts in their place (:func:`with_backend`), so the
segmenter does not know which runtime runs a part. The warp, the distortion maps, the fusion and the
labels (element-wise work on the 1/4 grid) stay in PyTorch, as do DIS and motion-vector flows.

* ``torch``: nothing replaced; the reference, and what runs on CUDA or in float16.
* ``onnxruntime``: the keyframe network, float32 on the CPU (:mod:`evss.backends.onnxruntime`).
* ``openvino``: all three parts, float32 or int8 on the CPU (:mod:`evss.backends.openvino`).

Exported and compiled graphs are cached under ``$EVSS_CACHE`` (:mod:`evss.backends.cache`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from evss.backends.cache import OPSET, cache_root, fingerprint
from evss.backends.onnxruntime import OnnxRuntimeBackbone, cache_dir, onnx_export
from evss.errors import EvssError

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")  # int8: the openvino backend only

__all__ = ["BACKENDS", "OPSET", "PRECISIONS", "OnnxRuntimeBackbone", "cache_dir", "cache_root", "check_backend",
           "fingerprint", "onnx_export", "with_backend"]


def check_backend(backend: str, precision: str = "fp32") -> None:
    """A known backend, a known precision, and int8 only where it exists (openvino)."""
    if backend not in BACKENDS:
        raise EvssError(f"backend {backend!r} is not one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise EvssError(f"precision {precision!r} is not one of {PRECISIONS}")
    if precision != "fp32" and backend != "openvino":
        raise EvssError(f"--precision {precision} needs --backend openvino (the {backend} backend runs float32)")


def with_backend(model: nn.Module, backend: str, *, device: torch.device, dtype: torch.dtype,
                 threads: int | None = None, precision: str = "fp32",
                 notice: Callable[[str], None] | None = None) -> nn.Module:
    """``model`` with its parts run by ``backend`` (in place; returned for chaining). ``notice``
    (default: stderr) hears of a part that OpenVINO could not convert and PyTorch runs instead."""
    check_backend(backend, precision)
    if backend == "torch":
        return model
    if device.type != "cpu" or dtype != torch.float32:
        raise EvssError(f"--backend {backend} runs float32 on the CPU; this run uses {dtype} on {device} "
                        "(use --backend torch there)")
    if backend == "onnxruntime":
        if not isinstance(model.backbone, OnnxRuntimeBackbone):
            model.backbone = OnnxRuntimeBackbone(model.backbone, threads=threads)
        return model
    from evss.backends.openvino import compile_parts
    return compile_parts(model, threads=threads, precision=precision, notice=notice)
