"""Keyframe scheduling beyond the paper's fixed interval (Sec. II-C): adaptive keyframes.

The paper keeps a fixed interval and notes that adaptive schedulers usually pay for an extra
decision network. EVSS already computes a signal for free: the fine distortion map M^f (Eq. 4)
marks where the propagated features are unreliable. :class:`AdaptiveKeyframes` starts a keyframe
when, on the last non-keyframe,

* the share of 1/4-grid pixels with M^f > 0.5 (the binarisation of Eq. 7) exceeds ``share``, or
* the mean of M^f exceeds ``mean``, or
* (optional, with a :class:`FlowProbe`) the flow no longer explains the frame: the mean absolute
  difference between the current frame and the reference warped by the flow, both grey at the
  1/4 grid, exceeds ``residual``. This needs no trained weights and catches hard cuts, where
  M^f can stay low because the coarse map compares two predictions of the *old* content,

or when ``max_interval`` frames have passed since the last keyframe. With the segmenter's
``redo_as_keyframe`` hook the degraded frame itself is re-segmented as a keyframe (one extra
non-keyframe pass per trigger), so a keyframe starts *at* a cut, not one frame after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from evss.errors import EvssError
from evss.models.flow import FlowEstimator
from evss.models.warp import warp

if TYPE_CHECKING:  # the segmenter imports the policies: FrameResult only for annotations
    from evss.segmenter import FrameResult

__all__ = ["AdaptiveKeyframes", "FixedInterval", "FlowProbe", "KeyframePolicy"]


class KeyframePolicy(Protocol):
    """Decides whether frame ``index`` starts a new keyframe; ``since_key`` counts frames since it."""

    def __call__(self, *, index: int, since_key: int, last: "FrameResult | None") -> bool: ...


@dataclass(frozen=True)
class FixedInterval:
    interval: int

    def __call__(self, *, index: int, since_key: int, last: "FrameResult | None") -> bool:
        return since_key >= self.interval


class FlowProbe:
    """Wraps a :class:`FlowEstimator` and records how well each flow explains the current frame.

    ``residual`` is the mean |current - warp(reference, flow)| of the grey frames averaged onto
    the flow's 1/4 grid, in [0, 1]; None before the first non-keyframe.
    """

    def __init__(self, flow: FlowEstimator) -> None:
        self.flow = flow
        self.residual: float | None = None

    def __call__(self, reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        flow = self.flow(reference, current)  # (N, 2, h, w)
        size = flow.shape[-2:]
        ref = F.adaptive_avg_pool2d(reference.mean(dim=1, keepdim=True), size)  # (N, 1, h, w)
        cur = F.adaptive_avg_pool2d(current.mean(dim=1, keepdim=True), size)
        self.residual = float((warp(ref, flow) - cur).abs().mean())
        return flow


@dataclass
class AdaptiveKeyframes:
    """KeyframePolicy: a keyframe when the last non-keyframe looks degraded, or every ``max_interval``.

    Bounds set to None are not checked. ``min_interval`` keeps at least that many frames between
    keyframes (except for the ``redo`` of a degraded frame, which is never refused).
    """

    max_interval: int = 10
    share: float | None = 0.25  # bound on the share of pixels with M^f > 0.5
    mean: float | None = None  # bound on the mean of M^f
    residual: float | None = None  # bound on the probe's photometric residual (needs probe)
    probe: FlowProbe | None = None
    redo: bool = True  # re-segment a degraded frame as a keyframe at once (segmenter hook)
    min_interval: int = 1

    def __post_init__(self) -> None:
        if self.max_interval < 1 or self.min_interval < 1:
            raise EvssError(f"adaptive keyframes: intervals must be >= 1, got max {self.max_interval}, "
                            f"min {self.min_interval}")
        if self.residual is not None and self.probe is None:
            raise EvssError("adaptive keyframes: a residual bound needs a FlowProbe around the flow source")
        self.triggers: dict[str, int] = {"share": 0, "mean": 0, "residual": 0, "max_interval": 0}

    def degraded(self, result: FrameResult) -> str | None:
        """Which bound a non-keyframe result breaks ("share", "mean", "residual"), or None."""
        if result.is_keyframe:
            return None
        if self.share is not None and result.fine_share is not None and result.fine_share > self.share:
            return "share"
        if self.mean is not None and result.fine_mean is not None and result.fine_mean > self.mean:
            return "mean"
        if self.residual is not None and self.probe.residual is not None and self.probe.residual > self.residual:
            return "residual"
        return None

    def __call__(self, *, index: int, since_key: int, last: FrameResult | None) -> bool:
        if since_key >= self.max_interval:
            self.triggers["max_interval"] += 1
            return True
        if since_key < self.min_interval or last is None:
            return False
        # Without the redo hook (or with redo off) a degraded frame starts a keyframe one frame late.
        reason = None if self.redo else self.degraded(last)
        if reason:
            self.triggers[reason] += 1
        return reason is not None

    def redo_as_keyframe(self, result: FrameResult) -> bool:
        """Segmenter hook, called after each non-keyframe: True re-segments it as a keyframe."""
        reason = self.degraded(result) if self.redo else None
        if reason:
            self.triggers[reason] += 1
        return reason is not None
