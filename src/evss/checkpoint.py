"""Saving and loading weights, safely.

evss checkpoints are single safetensors files whose metadata carries the ``EVSSConfig`` as JSON,
so a checkpoint rebuilds its own model. The authors' ``.pth`` files (``csrnet_*_best.pth``,
``flownet.pth``, full ``evss_*_best.pth``) load through ``torch.load(weights_only=True)``: tensors
and plain containers only, never arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn
from safetensors.torch import load_file, safe_open, save_file

from evss.config import EVSSConfig, build_model, config_from_json, preset, to_dict
from evss.errors import CheckpointError, ConfigError
from evss.media.atomic import atomic_write
from evss.model_card import CARD_KEY, ModelCard, card_from_json, card_to_json
from evss.models.evss import EVSSNet

FORMAT = "evss-checkpoint"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# The default model of `evss segment` (real footage: trained on CamVid) and of `evss demo`
# (SynthDrive): built-in weights by these names if shipped, else the untrained "light" preset.
DEFAULT_WEIGHTS = "camvid"
DEMO_WEIGHTS = "synthdrive_light"


def builtin_weights() -> dict[str, Path]:
    """Built-in weights shipped inside the package, by name."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def load_weights(weights: str | Path | None, *, notice=print,
                 default: str = DEFAULT_WEIGHTS) -> tuple[EVSSNet, EVSSConfig, str, bool]:
    """(model, config, description, trained) for a command's ``--weights``: a built-in name or a
    checkpoint path; None means the built-in ``default``, or the untrained "light" preset (seeded)
    with a ``notice`` where that is not shipped."""
    if weights is None:
        if default in builtin_weights():
            model, config = load_model(default)
            return model, config, f"built-in {default}", True
        notice(f"note: the built-in weights {default!r} are not shipped in this build; using the untrained "
               "'light' preset: timing is real, labels are not meaningful (pass --weights)")
        torch.manual_seed(0)
        return build_model(preset("light")).eval(), preset("light"), "untrained light preset", False
    model, config = load_model(weights)
    return model, config, str(weights), True


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file (a weights file's identity in model cards and batch manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Tensors at least this large that equal an earlier one are stored once (see ``dedupe``).
ALIAS_MIN_NUMEL = 256


def save_model(path: str | Path, model: nn.Module, config: EVSSConfig, *, half: bool = False,
               extra: Mapping[str, str] | None = None, card: ModelCard | None = None) -> Path:
    """Write ``model``'s state_dict (fp16 floats if ``half``) with its config, and ``card`` if given,
    in the metadata."""
    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    state, aliases = dedupe(state)
    meta = {"format": FORMAT, "version": "1", "config": json.dumps(to_dict(config)), **(extra or {})}
    if aliases:
        meta["aliases"] = json.dumps(aliases)
    if card is not None:
        meta[CARD_KEY] = card_to_json(card)
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    return path


def dedupe(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state without repeated tensors, {dropped key: the key holding its values}).

    Why: an update branch that is a copy of the keyframe network (``ScaledKeyframeUpdate``) keeps
    the keyframe network's frozen encoder, so a checkpoint would carry those tensors twice (7.5 of
    the shipped ``camvid``'s 19.7 MB). A tensor is dropped only when its dtype, shape and bytes all
    equal an earlier key's; small tensors (biases, counters) are kept so the alias list stays short.
    """
    first: dict[tuple, str] = {}
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for k, v in state.items():
        if v.numel() >= ALIAS_MIN_NUMEL:
            raw = v.reshape(-1).view(torch.uint8)  # the bytes, whatever the dtype
            key = (str(v.dtype), tuple(v.shape), hashlib.sha256(raw.numpy().tobytes()).hexdigest())
            twin = first.get(key)
            if twin is not None and torch.equal(kept[twin], v):
                aliases[k] = twin
                continue
            first.setdefault(key, k)
        kept[k] = v
    return kept, aliases


def read_tensors(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of an evss safetensors file, the ones stored once under two names restored."""
    aliases_json = read_metadata(path).get("aliases")
    try:
        state = load_file(str(path), device=str(map_location))
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError ... on a damaged file
        raise CheckpointError(f"{path}: cannot read tensors ({_one_line(exc)})") from None
    if aliases_json is None:
        return state
    try:
        aliases = json.loads(aliases_json)
        if not isinstance(aliases, dict) or not all(isinstance(a, str) and isinstance(b, str)
                                                    for a, b in aliases.items()):
            raise ValueError("expected an object of key names")
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: bad 'aliases' metadata ({_one_line(exc)})") from None
    for dst, src in aliases.items():
        if src not in state:
            raise CheckpointError(f"{path}: tensor {dst!r} is stored as {src!r}, which the file lacks")
        if dst in state:
            raise CheckpointError(f"{path}: tensor {dst!r} is both stored and listed as an alias of {src!r}")
        state[dst] = state[src]
    return state


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ValueError ... on a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(exc)})") from None


def resolve_weights(name_or_path: str | Path) -> Path:
    builtin = builtin_weights()
    if str(name_or_path) in builtin:
        return builtin[str(name_or_path)]
    p = Path(name_or_path)
    if not p.is_file():
        raise CheckpointError(f"weights {name_or_path!r}: no such file and not a built-in name "
                              f"(built-in: {sorted(builtin) or 'none'})")
    return p


def load_model(name_or_path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[EVSSNet, EVSSConfig]:
    """Rebuild an ``EVSSNet`` from an evss checkpoint (built-in name or path), float32, eval mode."""
    path = resolve_weights(name_or_path)
    if path.suffix in (".pth", ".pt", ".tar"):
        return load_official_model(path)
    config = read_config(path)
    model = build_model(config)
    state = read_tensors(path, map_location=map_location)
    load_state_checked(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    return model.eval(), config


def read_config(path: Path) -> EVSSConfig:
    """The ``EVSSConfig`` in an evss checkpoint's metadata, without building the model."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: a safetensors file without an evss config in its metadata")
    try:
        return config_from_json(json.loads(meta["config"]), where="config")
    except (ValueError, RecursionError, ConfigError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: bad embedded config: {_one_line(exc)}") from None


def read_model_card(path: Path) -> ModelCard | None:
    """The model card in an evss checkpoint's metadata, or None for a checkpoint without one."""
    text = read_metadata(path).get(CARD_KEY)
    if text is None:
        return None
    try:
        return card_from_json(text, where="model card")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: bad model card metadata: {_one_line(exc)}") from None


def write_model_card(path: str | Path, card: ModelCard) -> Path:
    """Put ``card`` into an evss checkpoint's metadata (replacing any card there), nothing else changed.

    Why not load and save the model: the stored tensors are copied as they are (no fp16 round
    trip, no new alias choice), and the result is checked before it replaces ``path``: every
    stored tensor equal in name, dtype, shape and value, and every other metadata entry equal.
    """
    path = Path(path)
    read_config(path)  # an evss checkpoint, whose config parses
    meta = read_metadata(path)
    try:
        stored = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError ... on a damaged file
        raise CheckpointError(f"{path}: cannot read tensors ({_one_line(exc)})") from None
    new_meta = {**meta, CARD_KEY: card_to_json(card)}

    def write(out: Path) -> None:  # atomic_write removes ``out`` if this raises
        save_file(stored, str(out), metadata=new_meta)
        after = load_file(str(out))
        same = (set(after) == set(stored)
                and all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in stored.items()))
        if not same or read_metadata(out) != new_meta:
            raise CheckpointError(f"{path}: writing the model card would change its tensors or metadata; "
                                  "nothing written")

    atomic_write(path, write)
    return path


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                       *, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Strict ``load_state_dict`` whose error names the missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def cut(items: list[str]) -> str:
            return ", ".join(items[:6]) + (f" ... ({len(items)} in all)" if len(items) > 6 else "")
        parts = []
        if missing:
            parts.append(f"missing keys: {cut(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {cut(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {cut(shapes)}")
        raise CheckpointError(f"{source} does not fit {type(module).__name__} (another architecture, width or "
                              f"class count?): " + "; ".join(parts))
    odd = [f"{k}: {state[k].dtype}" for k, v in own.items()
           if v.is_floating_point() != state[k].is_floating_point() or state[k].is_complex()]
    if odd:
        raise CheckpointError(f"{source}: tensors of the wrong kind for {type(module).__name__}: {', '.join(odd[:6])}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: cannot load into {type(module).__name__} ({_one_line(exc)[:300]})") from None


# ---- the authors' .pth files ---------------------------------------------------------------

def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat state_dict from an official .pth file, with ``module.`` prefixes stripped.

    ``weights_only=True`` refuses any pickle that would build objects other than tensors and
    plain containers, so a crafted file cannot run code here.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    obj = safe_torch_load(path)
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if (not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj)
            or not all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise CheckpointError(f"{path}: expected a state_dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


# The one message for a .pth/.pt file that torch.load(weights_only=True) does not load.
UNREADABLE = ("refused to load: not a readable PyTorch checkpoint of plain tensors; it is damaged, is not a "
              "checkpoint, or holds pickled objects other than tensors (unsafe to unpickle)")


def safe_torch_load(path: str | Path) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure a CheckpointError naming the file.

    The only ``torch.load`` in evss goes through here. ``weights_only=True`` builds tensors and
    plain containers only; a pickle that asks for anything else (a function to call, a class to
    build) is refused before any of it runs. Every unreadable file (a refused pickle, a damaged zip
    container or pickle stream, bytes that are no checkpoint at all) gets the same message; only
    its detail names what failed, since random bytes can fail in the unpickler, zipfile, struct or
    a storage lookup depending on chance.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except (PermissionError, IsADirectoryError) as exc:  # the file system, not the file's bytes
        raise CheckpointError(f"checkpoint {path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in zipfile, pickle, struct, storages ...
        raise CheckpointError(f"{path}: {UNREADABLE}. Detail: {_load_detail(exc)}") from None


def _load_detail(exc: Exception) -> str:
    """What failed, in one short line."""
    if isinstance(exc, pickle.UnpicklingError):
        # torch wraps the restricted unpickler's reason ("Unsupported global: GLOBAL posix.system",
        # "Unsupported operand 149") in a long paragraph; the reason is the useful part.
        # Without that marker the reason is the paragraph between torch's preamble and its footer.
        text = str(exc)
        if "WeightsUnpickler error:" in text:
            text = text.split("WeightsUnpickler error:", 1)[1]
        elif text.startswith("Weights only load failed"):
            text = text.split("\n\n", 1)[-1]
        reason = next((para for para in text.strip().split("\n\n") if para.strip()), "")
        return " ".join(reason.split())[:200] or type(exc).__name__
    return f"{type(exc).__name__}: {_one_line(exc)[:200]}"


def split_official(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, dict[str, torch.Tensor]]:
    """Group an official state_dict into ``csrnet`` / ``flownet`` / ``conet`` parts.

    Standalone CSRNet files start with ``backbone.``/``logits.``; standalone FlowNet files with
    ``conv1.0``/``predict_flow``; full EVSS files carry ``csrnet.*``, ``flownet.*``, ``conet.*``
    and ``resnet.*``, the last a duplicate of ``csrnet.backbone.*`` that is checked and dropped.
    """
    keys = list(state)
    if any(k.startswith(("csrnet.", "flownet.", "conet.")) for k in keys):
        parts: dict[str, dict[str, torch.Tensor]] = {"csrnet": {}, "flownet": {}, "conet": {}}
        for k, v in state.items():
            head, _, rest = k.partition(".")
            if head in parts:
                parts[head][rest] = v
            elif head == "resnet":
                twin = state.get(f"csrnet.backbone.{rest}")
                if twin is not None and (twin.shape != v.shape or not torch.equal(twin, v)):
                    raise CheckpointError(f"{source}: resnet.{rest} differs from csrnet.backbone.{rest}")
            else:
                raise CheckpointError(f"{source}: unexpected top-level key {k!r} in a full EVSS checkpoint")
        return {k: v for k, v in parts.items() if v}
    if any(k.startswith(("backbone.", "logits.")) for k in keys):
        return {"csrnet": dict(state)}
    if any(k.startswith(("predict_flow", "upsample_flow")) for k in keys):
        return {"flownet": dict(state)}
    if any(k.startswith(("predict_cc", "edge_layer")) for k in keys):
        return {"conet": dict(state)}
    raise CheckpointError(f"{source}: keys look like none of CSRNet, FlowNet, CoNet or a full EVSS checkpoint "
                          f"(first keys: {keys[:3]})")


def load_official_model(*paths: str | Path, config: EVSSConfig | None = None) -> tuple[EVSSNet, EVSSConfig]:
    """Build the ``official`` preset and fill it from the authors' files.

    Pass a CSRNet file (+ optionally ``flownet.pth``), or one full EVSS checkpoint. The class
    count is read from ``logits.conv.weight``. Parts not given keep their fresh initialisation.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for p in paths:
        for name, sd in split_official(read_official(p), str(p)).items():
            parts[name] = sd
    if config is None:
        if "csrnet" not in parts:
            raise CheckpointError(f"{', '.join(map(str, paths))}: no CSRNet weights; the class count is unknown")
        head = parts["csrnet"].get("logits.conv.weight")
        if head is None or head.dim() != 4:
            raise CheckpointError(f"{', '.join(map(str, paths))}: the CSRNet weights lack logits.conv.weight "
                                  "(N_classes, C, 1, 1), so the class count is unknown")
        c = int(head.shape[0])
        config = preset("official", num_classes=c, label_space="cityscapes" if c == 19 else "camvid")
    model = build_model(config)
    targets = {"csrnet": model.backbone, "flownet": model.flow, "conet": model.correction}
    for name, sd in parts.items():
        load_state_checked(targets[name], {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                           f"{name} weights from {', '.join(map(str, paths))}")
    return model.eval(), config
