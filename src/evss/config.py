"""Model configuration: one frozen dataclass tree, saved into every checkpoint.

``EVSSConfig`` holds the parts' configs; ``build_model(config)`` builds an ``EVSSNet`` from it.
Named presets:

* ``paper``: the paper's networks (CSRNet-R18, FlowNet, CoNet at width 1, w_f = 0.5).
* ``official``: the authors' code (CoNet ``variant="official"``, w_f = 0.2); loads their files.
* ``light``: half width everywhere, for CPU use.
* ``tiny``: 1/8 width, for tests.
* ``lite0``: the default keyframe network for real footage: a SwiftNet-style decoder on an
  ImageNet-pretrained EfficientNet-Lite0 (``evss.models.efficientnet``); FlowNet and CoNet as in
  ``light``.
* ``lite1``: the same on EfficientNet-Lite1 (the Lite0 widths, 1.1x deeper stages 2-6).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from evss.errors import ConfigError
from evss.models.backbone import BackboneConfig, SwiftNet, build_backbone
from evss.models.correction import CoNet, CoNetConfig
from evss.models.distortion import DistortionConfig
from evss.models.evss import EVSSNet
from evss.models.flow import FlowConfig, FlowNet
from evss.models.scaled_update import ScaledKeyframeUpdate


@dataclass(frozen=True)
class EVSSConfig:
    name: str = "paper"
    num_classes: int = 19
    label_space: str = "cityscapes"  # "cityscapes" | "camvid" (also SynthDrive's)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    correction: CoNetConfig = field(default_factory=CoNetConfig)
    distortion: DistortionConfig = field(default_factory=DistortionConfig)
    freeze_flow: bool = False  # Table IV "FlowNet fixed"
    flow_source: str = "learned"  # N_flow at inference unless told otherwise: the one CoNet was trained with
    # `evss segment`'s mode unless told otherwise: the best point measured for these weights (README)
    default_mode: str = "evss"  # "evss" | "warp_only" | "per_frame"
    # `evss segment` segments frames whose longer side is over this many pixels downscaled to it and
    # upsamples the labels to the frame (chosen on held-out data for weights trained at one scale);
    # None: every frame at its own size. `--inference-size` overrides it.
    inference_size: int | None = None

    def __post_init__(self) -> None:
        if self.backbone.num_classes != self.num_classes or self.correction.num_classes != self.num_classes:
            raise ConfigError(f"config {self.name!r}: num_classes {self.num_classes} but backbone has "
                              f"{self.backbone.num_classes} and CoNet {self.correction.num_classes}")
        # Bounds that keep a config read from a file (or a checkpoint's metadata) from building
        # a model that cannot work or that would exhaust memory before any check runs.
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ConfigError(f"config {self.name!r}: num_classes must be in [1, {MAX_CLASSES}] (labels are 8-bit, "
                              f"255 = ignore), got {self.num_classes}")
        if self.label_space not in LABEL_SPACE_NAMES:
            raise ConfigError(f"config {self.name!r}: label_space {self.label_space!r} is not one of "
                              f"{LABEL_SPACE_NAMES}")
        for part, width in (("backbone", self.backbone.width), ("flow", self.flow.width),
                            ("correction", self.correction.width)):
            if not 0 < width <= MAX_WIDTH:
                raise ConfigError(f"config {self.name!r}: {part}.width must be in (0, {MAX_WIDTH}], got {width}")
        if self.default_mode not in ("evss", "warp_only", "per_frame"):
            raise ConfigError(f"config {self.name!r}: default_mode {self.default_mode!r} is not evss, warp_only or "
                              "per_frame")
        if self.inference_size is not None and not MIN_INFERENCE_SIZE <= self.inference_size <= MAX_INFERENCE_SIZE:
            raise ConfigError(f"config {self.name!r}: inference_size must be None or in [{MIN_INFERENCE_SIZE}, "
                              f"{MAX_INFERENCE_SIZE}] pixels (the longer side), got {self.inference_size}")
        if self.flow_source not in ("learned", "dis", "mv"):
            raise ConfigError(f"config {self.name!r}: flow_source {self.flow_source!r} is not learned, dis or mv")
        if self.backbone.arch not in ("csrnet", "swiftnet"):
            raise ConfigError(f"config {self.name!r}: backbone.arch {self.backbone.arch!r} is not 'csrnet' or "
                              "'swiftnet'")
        if self.backbone.arch == "swiftnet" and not (
                self.backbone.encoder in ENCODERS and 8 <= self.backbone.decoder_channels <= 512):
            raise ConfigError(f"config {self.name!r}: swiftnet needs encoder in {ENCODERS} and decoder_channels in "
                              f"[8, 512], got {self.backbone.encoder!r}, {self.backbone.decoder_channels}")
        if self.correction.activation not in ("relu", "leaky_relu"):
            raise ConfigError(f"config {self.name!r}: correction.activation {self.correction.activation!r} is not "
                              "'relu' or 'leaky_relu'")


MAX_CLASSES = 255  # class ids are stored in uint8 with 255 = ignore
MAX_WIDTH = 2.0  # channel multiplier; 1.0 is the paper's networks (4x their parameters at most)
MIN_INFERENCE_SIZE, MAX_INFERENCE_SIZE = 64, 16384  # the longer side a frame may be segmented at (evss.memory.MIN_SIDE)
LABEL_SPACE_NAMES = ("cityscapes", "camvid")
ENCODERS = ("lite0", "lite1", "lite2")


def preset(name: str, *, num_classes: int | None = None, label_space: str | None = None) -> EVSSConfig:
    """A named preset; ``num_classes``/``label_space`` default to CamVid-11 except for paper/official."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    width, variant, w_f, default_space = PRESETS[name]
    space = label_space or default_space
    c = num_classes or (19 if space == "cityscapes" else 11)
    backbone = BackboneConfig(num_classes=c, width=width)
    if name in SWIFTNET_PRESETS:  # the ImageNet-pretrained keyframe network
        backbone = BackboneConfig(num_classes=c, arch="swiftnet", encoder=SWIFTNET_PRESETS[name],
                                  decoder_channels=128)
    return EVSSConfig(
        name=name, num_classes=c, label_space=space,
        backbone=backbone,
        # centred FlowNet input for the presets trained here; paper/official keep the authors' [0, 1]
        flow=FlowConfig(width=width, input_offset=0.0 if name in ("paper", "official") else 0.5),
        # the presets trained here start CoNet at warp-only (F^u = F^w); paper/official as the authors
        correction=CoNetConfig(num_classes=c, width=width, variant=variant,
                               head_init="random" if name in ("paper", "official") else "passthrough"),
        distortion=DistortionConfig(w_f=w_f))


# name -> (width, CoNet variant, w_f, default label space)
PRESETS: dict[str, tuple[float, str, float, str]] = {
    "paper": (1.0, "paper", 0.5, "cityscapes"),
    "official": (1.0, "official", 0.2, "cityscapes"),
    "light": (0.5, "paper", 0.5, "camvid"),
    "tiny": (0.125, "paper", 0.5, "camvid"),
    "lite0": (0.5, "paper", 0.5, "camvid"),  # width: FlowNet and CoNet; the backbone is below
    "lite1": (0.5, "paper", 0.5, "camvid"),
}
# presets whose keyframe network is SwiftNet on this EfficientNet-Lite encoder
SWIFTNET_PRESETS: dict[str, str] = {"lite0": "lite0", "lite1": "lite1"}


def build_correction(config: EVSSConfig) -> nn.Module:
    """CoNet as the paper builds it, or with the keyframe network's architecture as N_upda."""
    if config.correction.update == "keyframe":
        if config.backbone.arch != "swiftnet":
            raise ConfigError(f"config {config.name!r}: correction.update 'keyframe' needs a swiftnet keyframe "
                              f"network, this one is {config.backbone.arch!r}")
        return ScaledKeyframeUpdate(SwiftNet.from_config(config.backbone), scale=config.correction.update_scale,
                                    train_encoder=config.correction.update_train_encoder)
    return CoNet.from_config(config.correction)


def build_model(config: EVSSConfig) -> EVSSNet:
    return EVSSNet(backbone=build_backbone(config.backbone), flow=FlowNet.from_config(config.flow),
                   correction=build_correction(config), distortion=config.distortion,
                   freeze_flow=config.freeze_flow)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is not None and len(options) == 1:  # X | None: the message of X is the helpful one
            return _check_type(value, options[0], where)
        for arg in typing.get_args(hint):
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {hint}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {value} is too large for a float") from None
    if hint is type(None) and value is None:
        return None
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        return tuple(value)
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}")


def from_dict(cls: type, data: Any, *, where: str = "config") -> Any:
    """Rebuild a (nested) frozen dataclass from JSON data; unknown keys and wrong types are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(path: str | Path) -> EVSSConfig:
    """A preset name or a JSON file (a full EVSSConfig, or ``{"preset": name, ...overrides}``)."""
    p = Path(path)
    if not p.suffix and str(path) in PRESETS:
        return preset(str(path))
    if not p.is_file():
        raise ConfigError(f"config {path}: no such file and not a preset ({sorted(PRESETS)})")
    return config_from_json(read_json(p, "config"), where=str(p))


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file's content; a missing file or bad JSON raises ConfigError naming ``what`` and the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path}: no such file")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {p}: not valid JSON ({exc})") from None


def config_from_json(data: Any, *, where: str = "config") -> EVSSConfig:
    """An EVSSConfig from parsed JSON: a full config, or ``{"preset": name, ...overrides}``.

    Unknown keys, wrong types and impossible values raise ConfigError naming ``where``.
    """
    if isinstance(data, dict) and "preset" in data:
        name, classes, space = data["preset"], data.get("num_classes"), data.get("label_space")
        if not isinstance(name, str):
            raise ConfigError(f"{where}.preset: expected a preset name, got {type(name).__name__} {name!r}")
        if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool)):
            raise ConfigError(f"{where}.num_classes: expected int, got {type(classes).__name__} {classes!r}")
        if space is not None and not isinstance(space, str):
            raise ConfigError(f"{where}.label_space: expected str, got {type(space).__name__} {space!r}")
        try:
            base = to_dict(preset(name, num_classes=classes, label_space=space))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        _merge(base, {k: v for k, v in data.items() if k != "preset"})
        data = base
    return from_dict(EVSSConfig, data, where=where)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def parse_override(item: str, *, what: str = "override") -> tuple[str, Any]:
    """``"key.sub=value"`` -> ``("key.sub", value)``: the value is read as JSON (numbers, true/false,
    null, lists) and otherwise kept as a bare string (``distortion.mode=coarse``)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item!r} is not KEY=VALUE (e.g. distortion.w_f=0.3)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return key.strip(), value


def apply_overrides(config: EVSSConfig, overrides: dict[str, Any], *, what: str = "override") -> EVSSConfig:
    """``config`` with dotted-key overrides applied; an unknown key or a whole section raises
    ConfigError naming the key and the known ones, a wrong type names the key too."""
    data = to_dict(config)
    for key, value in overrides.items():
        node, parts = data, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:i]) or "the model config"
                known = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f"{what} {key}={value!r}: {where} has no key {part!r}; known: {known}")
            if i == len(parts) - 1:
                if isinstance(node[part], dict):
                    raise ConfigError(f"{what} {key}: {key} is a section, set one of its keys")
                node[part] = value
            else:
                node = node[part]
    return from_dict(EVSSConfig, data, where=f"model config (after {what}s)")
