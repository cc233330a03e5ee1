"""Flags of `evss weights`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", nargs="?", default=None, metavar="NAME|PATH",
                   help="show one card in full: a built-in name or an evss checkpoint (default: list the built-in "
                        "weights)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON (a list without NAME)")
