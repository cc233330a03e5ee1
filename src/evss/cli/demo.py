"""Flags of `evss demo`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import add_backend_arguments, size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=20, help="clip length (default 20)")
    p.add_argument("--size", type=size, default=(256, 512), help="frame size HxW (default 256x512)")
    p.add_argument("--keyframe-interval", type=int, default=2,
                   help="a keyframe every N frames (default 2: on SynthDrive's fast motion the shortest interval "
                        "that stays within 2 mIoU of the per-frame backbone; see the README)")
    p.add_argument("--weights", default=None, help="built-in name or checkpoint path (default: built-in demo model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    add_backend_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, default=Path("evss-demo"),
                   help="output folder for overlay.mp4, panel.mp4 and summary.json (default evss-demo)")
