"""The rows of an evaluation: the baselines and EVSS with the weights' own flow, other flow sources,
test-time variants of the same model and separately trained models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from evss.checkpoint import load_model
from evss.config import apply_overrides, parse_override
from evss.errors import ConfigError
from evss.evaluation.protocol import METHODS, Method
from evss.flow_sources import make_flow_source
from evss.models.evss import EVSSNet


def variant(model: EVSSNet, config: Any, spec: str) -> tuple[str, EVSSNet, tuple[tuple[str, Any], ...]]:
    """``--variant NAME=KEY=VALUE[,KEY=VALUE]``: model config keys (distortion.* at test time) or
    segmenter.*; values read by :func:`evss.config.parse_override`. Returns (name, model sharing
    ``model``'s networks, segmenter overrides)."""
    name, _, rest = spec.partition("=")
    if not name or not rest:
        raise ConfigError(f"--variant {spec!r}: expected NAME=KEY=VALUE")
    what = f"--variant {name}"
    overrides, seg = {}, []
    for item in rest.split(","):
        key, value = parse_override(item, what=what)
        if key.startswith("segmenter."):
            seg.append((key.removeprefix("segmenter."), value))
        else:
            overrides[key] = value
    new = apply_overrides(config, overrides, what=what)
    if new.correction != config.correction or new.backbone != config.backbone or new.flow != config.flow:
        raise ConfigError(f"--variant {name}: only distortion.* and segmenter.* can change at test time; "
                          "other changes need a separately trained model (--compare)")
    model = EVSSNet(backbone=model.backbone, flow=model.flow, correction=model.correction,
                    distortion=new.distortion).eval()
    return name, model, tuple(seg)


def trained_flow(config: Any, model: EVSSNet) -> Any:
    """The flow a checkpoint's CoNet was trained with, as a Method's ``flow`` (None: its learned
    FlowNet; also for mv, which needs a video's vectors)."""
    return make_flow_source(config.flow_source, model) if config.flow_source not in ("learned", "mv") else None


def method_rows(model: EVSSNet, config: Any, device: torch.device, *, modes: Sequence[str] = METHODS,
                flow_sources: Sequence[str] = (), variants: Sequence[str] = (), compare: Sequence[str] = (),
                propagation: str = "composed", label_space: str = "camvid",
                label_sets: torch.Tensor | None = None) -> list[Method]:
    """The rows of `evss eval`: ``modes`` with the weights' own flow, then warp-only and EVSS with each
    of ``flow_sources`` (rows NAME[source]), each ``variant`` spec and each ``compare`` NAME=WEIGHTS.
    ``label_sets`` (K, C): every row scored in the data's K classes (:func:`evss.label_sets.collapse_table`)."""
    own_flow = trained_flow(config, model)  # the rows without a [source]
    prop = (("propagation", propagation),)  # every row propagates the same way
    common = {"label_space": label_space, "label_sets": label_sets}
    methods = []
    for mode in modes:
        if mode not in METHODS:
            raise ConfigError(f"--methods: {mode!r} is not per_frame, warp_only or evss")
        methods.append(Method(name=mode, model=model, mode=mode, flow=own_flow, segmenter_overrides=prop, **common))
    for src in flow_sources:
        for mode in ("warp_only", "evss"):
            methods.append(Method(name=f"{mode}[{src}]", model=model, mode=mode, flow=make_flow_source(src, model),
                                  segmenter_overrides=prop, **common))
    for spec in variants:  # the same CoNet, so the same flow as the plain evss row
        name, other, seg = variant(model, config, spec)
        methods.append(Method(name=name, model=other, mode="evss", segmenter_overrides=prop + seg, flow=own_flow,
                              **common))
    methods.extend(_compared(spec, config, device, prop, common) for spec in compare)
    return methods


def _compared(spec: str, config: Any, device: torch.device, prop: tuple[tuple[str, Any], ...],
              common: dict[str, Any]) -> Method:
    """A ``--compare NAME=WEIGHTS`` row: another trained model, run as EVSS with its own CoNet's flow."""
    name, _, path = spec.partition("=")
    other, other_cfg = load_model(path)
    if other_cfg.num_classes != config.num_classes:
        raise ConfigError(f"--compare {spec}: {other_cfg.num_classes} classes, --weights has {config.num_classes}")
    if other_cfg.label_space != config.label_space:
        raise ConfigError(f"--compare {spec}: {other_cfg.label_space} classes, --weights has {config.label_space}")
    other = other.to(device).eval()  # with the flow its own CoNet was trained with
    return Method(name=name, model=other, mode="evss", flow=trained_flow(other_cfg, other), segmenter_overrides=prop,
                  **common)
