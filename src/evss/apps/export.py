"""`evss export`: the keyframe graph and the non-keyframe graph as ONNX or torch.export programs.

    evss export --format onnx --weights synthdrive_light --size 256x512 -o export/

Two graphs carry Algorithm 1; the streaming state (F_k, P_k, I_k) stays with the caller, exactly as
in :class:`evss.segmenter.VideoSegmenter`:

* ``keyframe``: image (1, 3, H, W) in [0, 1] -> ``features`` F^b_k (1, C, H/4, W/4), ``pred`` P_k =
  argmax (1, H/4, W/4) int64, ``labels`` (1, H, W) int64 (x4 bilinear upsample, argmax). Lines 3-6.
* ``non_keyframe``: ``reference`` I_k, ``image`` I_i, ``key_features`` F_k, ``key_pred`` P_k ->
  ``warped`` F^w (the next F_k, line 18), ``merged`` F^m (1, C, H/4, W/4), ``pred`` P_i (the next
  P_k, line 19), ``fine`` M^f (1, 1, H/4, W/4), ``labels`` (1, H, W). Lines 8-17: flow, warp,
  CoNet, Eqs. 3-5. With ``flow_input=True`` the graph takes ``flow`` (1, 2, H/4, W/4) in place of
  ``reference`` and runs no FlowNet, so DIS or codec motion vectors can feed it.

Fed back their own outputs, the graphs run line 18 as written (the segmenter's "chained"
propagation). For the segmenter's default, "composed", use ``flow_input=True``: keep F^b_k as
``key_features`` and pass the frame-to-frame flows composed back to the keyframe,
O_{i->k} = O_{i->i-1} + warp(O_{i-1->k}, O_{i->i-1}).

Shapes are fixed at export; H and W must be multiples of 32 (pad frames by edge replication, as
the segmenter does, and crop the labels). ONNX goes through the torch.export-based exporter
(packages onnx and onnxscript) at opset >= 18; ``GridSample``, the warp, needs 16.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from evss.backends import onnx_export
from evss.checkpoint import load_weights
from evss.errors import EvssError
from evss.media import atomic_write
from evss.models.evss import rectify
from evss.models.upsample import upsample4
from evss.models.warp import warp

MIN_OPSET = 18  # the torch.export-based exporter writes 18+ (GridSample itself needs 16)


class KeyframeGraph(nn.Module):
    """Lines 3-6 of Algorithm 1: image -> (features, pred, labels)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, image: torch.Tensor):
        feat = self.backbone(image)  # (1, C, H/4, W/4)
        labels = upsample4(feat, image.shape[-2:]).argmax(dim=1)  # (1, H, W)
        return feat, feat.argmax(dim=1), labels


class NonKeyframeGraph(nn.Module):
    """Lines 8-17 of Algorithm 1 at the 1/4 grid (the segmenter's ``merge_resolution="quarter"``)."""

    def __init__(self, model: nn.Module, *, flow_input: bool = False) -> None:
        super().__init__()
        self.flow = None if flow_input else model.flow
        self.correction = model.correction
        self.distortion = model.distortion

    def forward(self, *inputs: torch.Tensor):
        if self.flow is None:
            image, flow, features, pred = inputs
        else:
            reference, image, features, pred = inputs
            flow = self.flow(reference, image)  # (1, 2, H/4, W/4)
        warped = warp(features, flow)  # (1, C, H/4, W/4), Eq. (1)
        parts = rectify(correction=self.correction, distortion=self.distortion, image=image, warped=warped,
                        key_pred=pred)
        merged = parts["merged_logits"]  # (1, C, H/4, W/4)
        labels = upsample4(merged, image.shape[-2:]).argmax(dim=1)  # (1, H, W)
        return warped, merged, merged.argmax(dim=1), parts["fine_map"], labels


def keyframe_graph(model: nn.Module) -> KeyframeGraph:
    """Lines 3-6 of Algorithm 1 as a module: image -> (features, pred, labels)."""
    return KeyframeGraph(model).eval()


def non_keyframe_graph(model: nn.Module, *, flow_input: bool = False) -> NonKeyframeGraph:
    """Lines 8-17 of Algorithm 1 as a module (see the module docstring for inputs and outputs)."""
    return NonKeyframeGraph(model, flow_input=flow_input).eval()


KEYFRAME_IO = (["image"], ["features", "pred", "labels"])
NON_KEYFRAME_IO = (["reference", "image", "key_features", "key_pred"], ["warped", "merged", "pred", "fine", "labels"])
NON_KEYFRAME_FLOW_IO = (["image", "flow", "key_features", "key_pred"], ["warped", "merged", "pred", "fine", "labels"])


def example_inputs(model, height: int, width: int, *, flow_input: bool = False, seed: int = 0):
    """Plausible inputs for both graphs: two random frames and the keyframe's real outputs."""
    if height % 32 or width % 32:
        raise EvssError(f"export size {height}x{width}: both sides must be multiples of 32, e.g. "
                        f"{-(-height // 32) * 32}x{-(-width // 32) * 32} (pad frames by edge replication)")
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(1, 3, height, width, generator=g)
    img = (ref + 0.05 * torch.randn(1, 3, height, width, generator=g)).clamp(0, 1)
    with torch.no_grad():
        feat = model.backbone(ref)
    key = (ref,)
    if flow_input:
        flow = torch.randn(1, 2, height // 4, width // 4, generator=g)
        non = (img, flow, feat, feat.argmax(dim=1))
    else:
        non = (ref, img, feat, feat.argmax(dim=1))
    return key, non


def export_onnx(model, out: Path, *, height: int, width: int, opset: int = 18,
                flow_input: bool = False) -> dict[str, Path]:
    """Write ``keyframe.onnx`` and ``non_keyframe.onnx`` into ``out``; returns their paths."""
    if opset < MIN_OPSET:
        raise EvssError(f"--opset {opset}: the exporter writes opset >= {MIN_OPSET} (GridSample, the warp, needs 16)")
    model = model.float().eval()
    key_in, non_in = example_inputs(model, height, width, flow_input=flow_input)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"keyframe": out / "keyframe.onnx", "non_keyframe": out / "non_keyframe.onnx"}
    non_io = NON_KEYFRAME_FLOW_IO if flow_input else NON_KEYFRAME_IO
    for name, graph, args, (ins, outs) in (
            ("keyframe", keyframe_graph(model), key_in, KEYFRAME_IO),
            ("non_keyframe", non_keyframe_graph(model, flow_input=flow_input), non_in, non_io)):
        onnx_export(graph, args, paths[name], ins, outs, opset)
    return paths


def export_pt2(model, out: Path, *, height: int, width: int, flow_input: bool = False) -> dict[str, Path]:
    """``keyframe.pt2`` and ``non_keyframe.pt2``: ``torch.export`` programs with fixed shapes, for
    ``torch.export.load(path).module()`` or AOTInductor."""
    model = model.float().eval()
    key_in, non_in = example_inputs(model, height, width, flow_input=flow_input)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"keyframe": out / "keyframe.pt2", "non_keyframe": out / "non_keyframe.pt2"}
    for name, graph, args in (("keyframe", keyframe_graph(model), key_in),
                              ("non_keyframe", non_keyframe_graph(model, flow_input=flow_input), non_in)):
        program = torch.export.export(graph, args, strict=False)
        buf = io.BytesIO()
        torch.export.save(program, buf)
        atomic_write(paths[name], lambda tmp, b=buf.getvalue(): tmp.write_bytes(b))
    return paths


def check_onnx(model, paths: dict[str, Path], *, height: int, width: int, flow_input: bool = False,
               seed: int = 1) -> dict[str, dict[str, float]]:
    """Run both ONNX graphs with onnxruntime on fresh inputs and compare with PyTorch.

    Returns per graph and output: the max absolute difference (float outputs) or the share of
    differing values (integer outputs: argmax may flip where two classes tie within rounding).
    """
    import onnxruntime as ort  # optional (package onnxruntime): imported where it is needed

    key_in, non_in = example_inputs(model, height, width, flow_input=flow_input, seed=seed)
    report: dict[str, dict[str, float]] = {}
    graphs = {"keyframe": (keyframe_graph(model), key_in),
              "non_keyframe": (non_keyframe_graph(model, flow_input=flow_input), non_in)}
    for name, (graph, args) in graphs.items():
        sess = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
        got = sess.run(None, feeds)
        with torch.no_grad():
            want = [t.numpy() for t in graph(*args)]
        outs = [o.name for o in sess.get_outputs()]
        report[name] = {}
        for o, g, w in zip(outs, got, want):
            if g.shape != w.shape:
                raise EvssError(f"{paths[name]}: output {o} has shape {g.shape}, PyTorch gives {w.shape}")
            if np.issubdtype(w.dtype, np.floating):
                report[name][f"{o}_max_abs_diff"] = float(np.abs(g - w).max())
            else:
                report[name][f"{o}_mismatch"] = float(np.mean(g != w))
    return report


def run(args: argparse.Namespace) -> int:
    h, w = args.size
    model, config, described, _ = load_weights(args.weights, notice=lambda m: print(m, file=sys.stderr))
    if args.format == "onnx":
        paths = export_onnx(model, args.output, height=h, width=w, opset=args.opset, flow_input=args.flow_input)
    else:
        paths = export_pt2(model, args.output, height=h, width=w, flow_input=args.flow_input)
    print(f"exported {described} ({config.name}, {config.num_classes} classes) at {w}x{h}: "
          + ", ".join(str(p) for p in paths.values()))
    if args.check:
        if args.format != "onnx":
            raise EvssError("--check compares ONNX graphs; use it with --format onnx")
        try:
            report = check_onnx(model, paths, height=h, width=w, flow_input=args.flow_input)
        except ImportError:
            raise EvssError("--check needs onnxruntime: pip install onnxruntime") from None
        for name, r in report.items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.2e}" for k, v in r.items()))
    return 0
