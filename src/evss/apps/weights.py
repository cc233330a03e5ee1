"""`evss weights`: the built-in weights and their model cards.

    evss weights                  # a table of the built-in weights, then each one's figures
    evss weights camvid           # one card in full, with the commands behind its figures
    evss weights run/last.safetensors --json

Everything shown is read from the checkpoint: the config in its metadata (classes, keyframe
network, default mode, flow source, distortion settings), the recipe notes written when it was
shipped, and its model card (:mod:`evss.model_card`); size and sha256 from the file itself. A
checkpoint without a card shows what its config says and "no model card".
"""

from __future__ import annotations

import argparse
import functools
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evss.checkpoint import (
    DEFAULT_WEIGHTS,
    DEMO_WEIGHTS,
    builtin_weights,
    file_sha256,
    read_config,
    read_metadata,
    read_model_card,
    resolve_weights,
)
from evss.classes import LABEL_SPACES
from evss.config import EVSSConfig, to_dict
from evss.errors import CheckpointError
from evss.model_card import ModelCard, card_to_dict

# Which command uses each built-in weights file when no --weights is given.
ROLES = {DEFAULT_WEIGHTS: "the default of `evss segment`", DEMO_WEIGHTS: "the default of `evss demo`"}
WIDTH = 100  # wrap prose at this many columns
LABEL = 18  # width of the field names of a full card


@dataclass(frozen=True)
class WeightsInfo:
    """What ``evss weights`` knows about one checkpoint, all of it read from the file."""

    name: str  # the built-in name, or the path as given
    path: Path
    builtin: bool
    config: EVSSConfig
    card: ModelCard | None
    size: int  # bytes
    sha256: str
    recipe: str | None  # the "recipe" metadata written when the weights were shipped
    default_mode_reason: str | None  # the measurement behind config.default_mode

    @property
    def role(self) -> str | None:
        return ROLES.get(self.name) if self.builtin else None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The label space's class names, or None when the class count is not the label space's."""
        names = LABEL_SPACES[self.config.label_space].names
        return names if len(names) == self.config.num_classes else None


def describe(name_or_path: str | Path) -> WeightsInfo:
    """A built-in name or a checkpoint path -> its WeightsInfo; CheckpointError naming it otherwise."""
    path = resolve_weights(name_or_path)
    if path.suffix in (".pth", ".pt", ".tar"):
        raise CheckpointError(f"{path}: an authors' .pth checkpoint carries no config or model card; "
                              "`evss convert` it into an evss checkpoint first")
    builtin = builtin_weights().get(str(name_or_path)) == path
    config = read_config(path)
    meta = read_metadata(path)
    return WeightsInfo(name=str(name_or_path), path=path, builtin=builtin, config=config, card=read_model_card(path),
                       size=path.stat().st_size, sha256=file_sha256(path), recipe=meta.get("recipe"),
                       default_mode_reason=meta.get("default_mode_reason"))


def keyframe_network(config: EVSSConfig) -> str:
    """The keyframe network in words, from the config: preset, architecture, encoder or width."""
    b = config.backbone
    if b.arch == "swiftnet":
        return f"{config.name}: SwiftNet on EfficientNet-{b.encoder.title()}, decoder {b.decoder_channels} channels"
    return f"{config.name}: CSRNet, width {b.width:g}"


def update_branch(config: EVSSConfig) -> str:
    """CoNet's N_upda in words (``correction.update``)."""
    c = config.correction
    if c.update == "keyframe":
        return f"the keyframe network at {c.update_scale:g} scale (correction.update=keyframe), fused with F^w"
    return f"CoNet ({c.variant}), width {c.width:g}"


def deployment(config: EVSSConfig) -> str:
    """The test-time settings a command uses unless told otherwise."""
    distortion = ", ".join(f"{k}={v}" for k, v in to_dict(config.distortion).items())
    size = f", inference size {config.inference_size} (longer side)" if config.inference_size else ""
    return f"mode {config.default_mode}, flow {config.flow_source}{size}; distortion: {distortion}"


def info_to_dict(info: WeightsInfo) -> dict[str, Any]:
    """The machine-readable card (``--json``)."""
    b = info.config.backbone
    return {
        "name": info.name, "path": str(info.path), "builtin": info.builtin, "role": info.role,
        "file": {"bytes": info.size, "sha256": info.sha256},
        "classes": {"label_space": info.config.label_space, "count": info.config.num_classes,
                    "names": list(info.class_names) if info.class_names else None},
        "keyframe_network": {"preset": info.config.name, "arch": b.arch,
                             "encoder": b.encoder if b.arch == "swiftnet" else None, "width": b.width,
                             "description": keyframe_network(info.config)},
        "deployment": {"default_mode": info.config.default_mode, "flow_source": info.config.flow_source,
                       "inference_size": info.config.inference_size,
                       "distortion": to_dict(info.config.distortion), "update_branch": update_branch(info.config),
                       "default_mode_reason": info.default_mode_reason},
        "recipe": info.recipe,
        "config": to_dict(info.config),
        "model_card": card_to_dict(info.card) if info.card else None,
    }


# ---- text -----------------------------------------------------------------------------------

def short_network(config: EVSSConfig) -> str:
    b = config.backbone
    if b.arch == "swiftnet":
        return f"{config.name} (SwiftNet, {b.encoder.title()})"
    return f"{config.name} (CSRNet x{b.width:g})"


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def list_text(infos: list[WeightsInfo]) -> str:
    """The table of the built-in weights, then per weights its use, training data, classes and figures."""
    rows = [["NAME", "CLASSES", "KEYFRAME NETWORK", "MODE, FLOW", "SIZE", "SHA256", "LICENCE"]]
    for i in infos:
        rows.append([i.name, f"{i.config.num_classes} {i.config.label_space}", short_network(i.config),
                     f"{i.config.default_mode}, {i.config.flow_source}", f"{i.size / 2**20:.1f} MiB", i.sha256[:12],
                     i.card.licence if i.card else "no model card"])
    blocks = [table(rows)]
    for i in infos:
        lines = [f"{i.name}: {i.role or 'built-in'}"]
        lines += field("trained on", i.card.trained_on if i.card else "no model card")
        lines += field("classes", ", ".join(i.class_names) if i.class_names else f"{i.config.num_classes} classes")
        if i.card:
            lines += field("figures", "\n".join(figure_line(f.value, f.metric, _value_width(i.card))
                                                for f in i.card.figures), wrap=False)
        blocks.append("\n".join(lines))
    blocks.append("`evss weights NAME` shows one card in full, with the commands behind the figures; "
                  "--json prints the cards as JSON.")
    return "\n\n".join(blocks)


def _value_width(card: ModelCard) -> int:
    return max((len(str(f.value)) for f in card.figures), default=0)


def figure_line(value: float, metric: str, width: int) -> str:
    return f"{str(value).rjust(width)}  {metric}"


def field(label: str, text: str, *, wrap: bool = True, width: int = 12) -> list[str]:
    """``  label  text`` with the text wrapped (or split on its own newlines) and indented under itself."""
    indent = " " * (2 + width + 2)
    head = f"  {label.ljust(width)}  "
    if wrap:
        body = textwrap.wrap(text, WIDTH - len(indent)) or [""]
    else:
        body = text.splitlines() or [""]
    return [head + body[0]] + [indent + line for line in body[1:]]


def bullets(label: str, items: tuple[str, ...] | list[str]) -> list[str]:
    """A field whose entries each start with "- " and wrap under their own text."""
    lines: list[str] = []
    for k, item in enumerate(items):
        wrapped = textwrap.wrap(item, WIDTH - LABEL - 6) or [""]
        first = f"  {(label if k == 0 else '').ljust(LABEL)}  - {wrapped[0]}"
        lines += [first] + [" " * (LABEL + 6) + w for w in wrapped[1:]]
    return lines


def card_text(info: WeightsInfo) -> str:
    """One checkpoint's card in full: what its config says, then its model card."""
    c = info.config
    where = f"built-in, {info.role}" if info.role else ("built-in" if info.builtin else "checkpoint")
    lines = [f"{info.name} ({where})"]
    if info.card:
        lines += [""] + [f"  {w}" for w in textwrap.wrap(info.card.summary, WIDTH - 2)] + [""]
    f = functools.partial(field, width=LABEL)
    lines += f("file", f"{info.path}\n{info.size / 2**20:.1f} MiB ({info.size:,} bytes), sha256 {info.sha256}",
               wrap=False)
    names = ", ".join(info.class_names) if info.class_names else "(names not known for this count)"
    lines += f("classes", f"{c.num_classes}, label space {c.label_space}: {names}")
    lines += f("keyframe network", keyframe_network(c) + (f". {info.card.keyframe_network}" if info.card else ""))
    lines += f("update branch", update_branch(c))
    lines += f("deployment", deployment(c))
    if info.default_mode_reason:
        lines += f("why this mode", info.default_mode_reason)
    if info.card is None:
        lines += f("model card", "no model card: this checkpoint carries only its config "
                                 "(tools/write_model_card.py adds one)")
    else:
        lines += _card_fields(info.card)
    if info.recipe:
        lines += f("recipe", "\n".join(textwrap.fill(part, WIDTH - LABEL - 4) for part in info.recipe.splitlines()),
                   wrap=False)
    return "\n".join(lines)


def _card_fields(card: ModelCard) -> list[str]:
    """The model card's own fields: training data, figures under their commands, licence, notes."""
    lines = field("trained on", card.trained_on, width=LABEL)
    lines += bullets("training data", card.training_data)
    lines.append("  headline figures")
    width = _value_width(card)
    commands = list(dict.fromkeys(fig.command for fig in card.figures))  # first-seen order
    for command in commands:
        lines.append(f"    $ {command}")
        lines += [f"      {figure_line(f.value, f.metric, width)}" for f in card.figures if f.command == command]
    lines += field("licence", card.licence, width=LABEL)
    lines += bullets("", card.licence_terms)
    if card.notes:
        lines += bullets("notes", card.notes)
    return lines


def run(args: argparse.Namespace) -> int:
    if args.weights is not None:
        info = describe(args.weights)
        print(json.dumps(info_to_dict(info), indent=2, ensure_ascii=False) if args.json else card_text(info))
        return 0
    infos = [describe(name) for name in builtin_weights()]
    if args.json:
        print(json.dumps([info_to_dict(i) for i in infos], indent=2, ensure_ascii=False))
    elif not infos:
        print("no built-in weights are shipped in this build; `evss weights PATH` shows a checkpoint's card")
    else:
        print(list_text(infos))
    return 0

