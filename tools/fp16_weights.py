"""Write an fp16 copy of an evss checkpoint (its model and config only): the file that ships.

    python tools/fp16_weights.py runs/evss_light_synthdrive-256x512/last.safetensors \
        src/evss/weights/synthdrive_light.safetensors

The training recipes end with this; the copy holds no training metadata (step, recipe note).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fp16_weights", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="evss checkpoint (.safetensors), e.g. a run's last.safetensors")
    parser.add_argument("out", help="the fp16 weights file to write")
    args = parser.parse_args(argv)
    from evss.checkpoint import load_model, save_model
    model, config = load_model(args.checkpoint)
    save_model(args.out, model, config, half=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
