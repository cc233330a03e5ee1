"""Distortion maps and distortion map-guided fusion (Sec. III-D, Eqs. 3-5).

All maps are (N, 1, h, w) floats in [0, 1] on the grid of the features they gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evss.models.upsample import class_argmax

MAP_MODES = ("fine", "coarse", "edge")  # one map each, as returned beside the labels
MODES = MAP_MODES + ("update",)  # "update": no map gates F^u
COARSE_REFERENCES = ("previous", "keyframe")  # what Eq. (3) compares the warped prediction with
COMBINES = ("weighted", "max")  # how "fine" joins M^c and M^e (Eq. (4) is "weighted")


@dataclass(frozen=True)
class DistortionConfig:
    w_f: float = 0.5  # Eq. (4) weight of the coarse map; the paper's 0.5, the authors' code 0.2
    # "fine" | "coarse" (Table IV "M^c only") | "edge" (Table IV "M^e only") | "update": M^f = 1, F^m = F^u
    # (not in the paper: the measurement that asks whether any map beats no gating; README)
    mode: str = "fine"
    use_warped: bool = True  # False: Table IV "w/o the warped features" (F^m = M^f * F^u)
    # P_k of Eq. (3) when streaming: "previous" follows Algorithm 1 line 19 (P_k <- P_i, the last
    # frame's output); "keyframe" keeps the keyframe's own prediction, as Eq. (3) is written, as
    # training pairs (k, i) compute it, and as the authors' test script does. Chosen per weights on
    # validation data (README); a segmenter may override it.
    coarse_reference: str = "previous"
    # How the fine map joins the two maps. "weighted" is Eq. (4) (and then M^f < M^e wherever M^c = 0,
    # so the fine map can hand F^u fewer pixels than the edge map alone); "max" (max(M^c, M^e), which
    # for the binary M^c equals the noisy-or 1 - (1 - M^c)(1 - M^e)) calls a pixel distorted when
    # either map does and ignores w_f. Not in the paper: a measured alternative, chosen per weights on
    # validation data (README).
    combine: str = "weighted"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"distortion mode {self.mode!r} is not one of {MODES}")
        if self.coarse_reference not in COARSE_REFERENCES:
            raise ValueError(f"coarse_reference {self.coarse_reference!r} is not one of {COARSE_REFERENCES}")
        if self.combine not in COMBINES:
            raise ValueError(f"distortion combine {self.combine!r} is not one of {COMBINES}")
        if not 0.0 <= self.w_f <= 1.0:
            raise ValueError(f"w_f must lie in [0, 1], got {self.w_f}")


def coarse_map(warped_logits: torch.Tensor, key_pred: torch.Tensor) -> torch.Tensor:
    """Eq. (3): 1 where argmax of the warped features differs from the keyframe prediction.

    warped_logits (N, C, h, w), key_pred (N, h, w) long -> (N, 1, h, w) float, binary.
    """
    return (class_argmax(warped_logits) != key_pred).unsqueeze(1).to(warped_logits.dtype)


def fine_map(coarse: torch.Tensor, edge: torch.Tensor, config: DistortionConfig) -> torch.Tensor:
    """Eq. (4): M^f = w_f M^c + (1 - w_f) M^e (or the union of the two, ``config.combine``), one of
    the two maps alone (Table IV), or all ones."""
    if config.mode == "update":
        return torch.ones_like(edge)  # (N, 1, h, w)
    if config.mode == "coarse":
        return coarse
    if config.mode == "edge":
        return edge
    if config.combine == "max":
        return torch.maximum(coarse, edge)  # (N, 1, h, w)
    return config.w_f * coarse + (1.0 - config.w_f) * edge  # (N, 1, h, w) Eq. (4)


def fuse(warped: torch.Tensor, updated: torch.Tensor, fine: torch.Tensor, config: DistortionConfig) -> torch.Tensor:
    """Eq. (5): F^m = (1 - M^f) * F^w + M^f * F^u, the Hadamard products broadcast over channels."""
    if not config.use_warped:
        return fine * updated  # Table IV: the warped features are blocked from the merge
    return (1.0 - fine) * warped + fine * updated  # (N, C, h, w)


def merge(warped: torch.Tensor, updated: torch.Tensor, edge: torch.Tensor, key_pred: torch.Tensor,
          config: DistortionConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. (3)-(5) in one call: (F^m, M^c, M^f) from F^w, F^u, M^e and P_k, all on one grid.

    The one home of the non-keyframe merge: training, streaming (quarter or full resolution),
    the bench and the cost table all call it.
    """
    coarse = coarse_map(warped, key_pred)  # (N, 1, h, w) Eq. (3)
    fine = fine_map(coarse, edge, config)  # (N, 1, h, w) Eq. (4)
    return fuse(warped, updated, fine, config), coarse, fine  # (N, C, h, w) Eq. (5)
