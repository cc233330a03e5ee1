"""Flags of `evss convert`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="csrnet_*.pth [flownet.pth] or one evss_*_best.pth")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--half", action="store_true", help="store fp16 weights")
