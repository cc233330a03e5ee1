"""Write a model card into an evss checkpoint, its tensors and config untouched (checked).

    python tools/write_model_card.py src/evss/weights/camvid.safetensors recipes/model_cards/camvid.json

WEIGHTS is a checkpoint path or a built-in name; CARD.json holds an ``evss.model_card.ModelCard``
(``recipes/model_cards/`` keeps the shipped weights' cards). ``recipes/ship_weights.sh`` runs this
on the file it assembles. A card already in the file is replaced; ``evss weights WEIGHTS`` shows it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="write_model_card", description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="evss checkpoint (.safetensors) or built-in name")
    parser.add_argument("card", help="the card as JSON (recipes/model_cards/NAME.json)")
    args = parser.parse_args(argv)
    from evss.checkpoint import resolve_weights, write_model_card
    from evss.errors import EvssError
    from evss.model_card import read_card_file
    try:
        path = write_model_card(resolve_weights(args.weights), read_card_file(args.card))
    except EvssError as exc:
        print(f"write_model_card: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the model card of {args.card} into {path} (tensors and config unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
