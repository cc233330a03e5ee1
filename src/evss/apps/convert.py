"""`evss convert`: the authors' .pth files -> one evss safetensors checkpoint."""

from __future__ import annotations

import argparse

from evss.checkpoint import load_official_model, save_model


def run(args: argparse.Namespace) -> int:
    model, config = load_official_model(*args.inputs)
    save_model(args.output, model, config, half=args.half)
    print(f"wrote {args.output} ({config.num_classes} classes, preset {config.name})")
    return 0
