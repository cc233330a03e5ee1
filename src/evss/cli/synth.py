"""Flags of `evss synth`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=size, default=(256, 512), help="frame size HxW (default 256x512)")
    p.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    p.add_argument("--difficulty", type=float, default=1.0)
    p.add_argument("--preview", action="store_true", help="also write preview.png, a contact sheet")
