"""Flags of `evss bench`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import add_backend_arguments, size

FLOW_SOURCES = ("learned", "dis", "mv")  # evss.flow_sources.FLOW_SOURCES (a test checks they agree)


def _bench_size(text: str) -> tuple[int, int]:
    """``HxW``, each side at least 32 (the networks' stride)."""
    h, w = size(text)
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size {text!r}: each side must be at least 32")
    return h, w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, help="built-in name or checkpoint (default: the segment default)")
    p.add_argument("--preset", default=None, help="time an untrained preset instead (paper, official, light, tiny)")
    p.add_argument("--size", type=_bench_size, default=(512, 1024), help="frame size HxW (default 512x1024)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--keyframe-interval", type=int, default=5)
    p.add_argument("--flow", nargs="+", default=["learned", "dis", "mv"], choices=FLOW_SOURCES,
                   help="flow sources to time (default all)")
    p.add_argument("--frames", type=int, default=16, help="stream length (default 16)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per part (default 5)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="passes over the clip per stream (default 2)")
    p.add_argument("--half", action="store_true", help="float16 on CUDA")
    add_backend_arguments(p, several=True)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
