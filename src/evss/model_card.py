"""Model cards: what a weights file is, what it was trained on, how well it does and on what terms.

A card travels inside the checkpoint (the safetensors metadata key ``model_card``, a JSON string;
see :func:`evss.checkpoint.read_model_card` and :func:`evss.checkpoint.write_model_card`), so
``evss weights`` reads the facts from the file it describes, never from a table in code. What the
config already says (classes, keyframe network, default mode, flow source, distortion settings)
is not repeated here: the card holds what the tensors and the config cannot tell.

The card of each shipped weights file is kept as JSON in ``recipes/model_cards/NAME.json``;
``recipes/ship_weights.sh`` writes it into the file it assembles (``tools/write_model_card.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evss.errors import ConfigError

CARD_KEY = "model_card"  # the safetensors metadata key that holds the card's JSON


@dataclass(frozen=True)
class Figure:
    """One headline number and the command that reproduces it."""

    metric: str  # what is measured, on what data, with its unit: "CamVid val mIoU (%), EVSS (DIS), d = 5"
    value: float
    command: str  # the shell command whose report holds ``value``

    def __post_init__(self) -> None:
        if not self.metric.strip() or not self.command.strip():
            raise ConfigError(f"figure {self.metric!r}: metric and command must not be empty")
        if not math.isfinite(self.value):
            raise ConfigError(f"figure {self.metric!r}: value {self.value} is not a finite number")


@dataclass(frozen=True)
class ModelCard:
    """The facts about a weights file that its config does not hold.

    ``trained_on`` is the one-line answer for the list of ``evss weights``; ``training_data`` the
    full account, one entry per training stage or choice. ``licence`` is the one-line answer
    ("MIT", "research use only"); ``licence_terms`` says where each part of it comes from (the
    code, the training data, pretrained weights).
    """

    summary: str
    keyframe_network: str  # how it was built and initialised (the config gives its architecture)
    trained_on: str
    training_data: tuple[str, ...]
    figures: tuple[Figure, ...]
    licence: str
    licence_terms: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("summary", "keyframe_network", "trained_on", "licence"):
            if not getattr(self, name).strip():
                raise ConfigError(f"model card: {name} must not be empty")
        if not self.training_data or not self.licence_terms:
            raise ConfigError("model card: training_data and licence_terms need at least one entry each")


def card_to_dict(card: ModelCard) -> dict[str, Any]:
    return dataclasses.asdict(card)


def card_to_json(card: ModelCard, *, indent: int | None = None) -> str:
    return json.dumps(card_to_dict(card), indent=indent, ensure_ascii=False)


def card_from_dict(data: Any, *, where: str = "model card") -> ModelCard:
    """A ModelCard from parsed JSON; unknown keys, missing keys and wrong types raise ConfigError naming ``where``."""
    from evss.config import from_dict  # the one JSON -> frozen dataclass reader (strict types, unknown keys)
    if isinstance(data, dict):
        required = [f.name for f in dataclasses.fields(ModelCard)
                    if f.default is dataclasses.MISSING and f.name not in data]
        if required:
            raise ConfigError(f"{where}: missing key(s) {required}")
    return from_dict(ModelCard, data, where=where)


def card_from_json(text: str, *, where: str = "model card") -> ModelCard:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{where}: not valid JSON ({' '.join(str(exc).split())})") from None
    return card_from_dict(data, where=where)


def read_card_file(path: str | Path) -> ModelCard:
    """A card from its JSON file (``recipes/model_cards/NAME.json``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model card {p}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"model card {p}: cannot read ({exc})") from None
    return card_from_json(text, where=f"model card {p}")
