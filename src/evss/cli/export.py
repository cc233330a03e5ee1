"""Flags of `evss export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import size

MIN_OPSET = 18  # evss.apps.export.MIN_OPSET (a test checks they agree)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("onnx", "pt2"), default="onnx",
                   help="onnx (onnxruntime, TensorRT, ...) or pt2 (torch.export programs; TorchScript tracing "
                        "cannot follow CSRNet's shape arithmetic)")
    p.add_argument("--weights", default=None, help="built-in name or checkpoint (default: the segment default)")
    p.add_argument("--size", type=size, default=(256, 512), help="input size HxW, multiples of 32 (default 256x512)")
    p.add_argument("--opset", type=int, default=18, help=f"ONNX opset (>= {MIN_OPSET}, default 18)")
    p.add_argument("--flow-input", action="store_true",
                   help="the non-keyframe graph takes the flow as an input instead of running FlowNet")
    p.add_argument("--check", action="store_true", help="compare the ONNX graphs with PyTorch (needs onnxruntime)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
