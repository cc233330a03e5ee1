"""EVSSNet: the training-time composition of N_backb, N_flow, CoNet and the distortion maps.

One forward pass takes a pair (I_k, I_i) and returns every intermediate that the four losses of
Eq. (6) and the Table IV ablations need. The backbone is frozen (Sec. IV-A): it runs in eval mode
without gradients whatever mode the rest of the model is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from evss.models.backbone import prepare_inference
from evss.models.correction import Correction
from evss.models.distortion import DistortionConfig, merge
from evss.models.upsample import class_argmax
from evss.models.warp import warp


@dataclass
class EVSSOutput:
    """All tensors at the 1/4 grid (h = ceil(H/4), w = ceil(W/4))."""

    key_logits: torch.Tensor  # (N, C, h, w)  F^b_k, the keyframe features
    flow: torch.Tensor  # (N, 2, h, w)  O_{i->k}, backward flow in 1/4-grid pixels
    warped_logits: torch.Tensor  # (N, C, h, w)  F^w_{k->i}, Eq. (1)
    updated_logits: torch.Tensor  # (N, C, h, w)  F^u_i, Eq. (2)
    edge_scores: torch.Tensor  # (N, 1|2, h, w) raw N_edge output
    edge_map: torch.Tensor  # (N, 1, h, w)  M^e_i in [0, 1]
    coarse_map: torch.Tensor  # (N, 1, h, w)  M^c_{k->i}, Eq. (3)
    fine_map: torch.Tensor  # (N, 1, h, w)  M^f_{k->i}, Eq. (4)
    merged_logits: torch.Tensor  # (N, C, h, w)  F^m_i, Eq. (5)


def rectify(*, correction: Correction, distortion: DistortionConfig, image: torch.Tensor,
            warped: torch.Tensor, key_pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """Lines 9-15 of Algorithm 1 for one non-keyframe; shared by training and streaming."""
    updated, edge_scores = correction(image, warped)  # (N, C, h, w), (N, 1|2, h, w)
    edge = correction.edge_probability(edge_scores)  # (N, 1, h, w)
    merged, coarse, fine = merge(warped, updated, edge, key_pred, distortion)  # (N, C, h, w), 2x (N, 1, h, w)
    return {"updated_logits": updated, "edge_scores": edge_scores, "edge_map": edge,
            "coarse_map": coarse, "fine_map": fine, "merged_logits": merged}


class EVSSNet(nn.Module):
    """(I_k, I_i) -> EVSSOutput. Parts are passed in; see ``evss.config.build_model``."""

    def __init__(self, *, backbone: nn.Module, flow: nn.Module, correction: Correction,
                 distortion: DistortionConfig = DistortionConfig(), freeze_flow: bool = False) -> None:
        super().__init__()
        if getattr(backbone, "num_classes", correction.num_classes) != correction.num_classes:
            raise ValueError(f"backbone predicts {backbone.num_classes} classes, "
                             f"correction network {correction.num_classes}")
        self.backbone = backbone
        self.flow = flow
        self.correction = correction
        self.distortion = distortion
        self.freeze_flow = freeze_flow  # Table IV "FlowNet fixed"
        self.backbone.requires_grad_(False)
        if freeze_flow:
            self.flow.requires_grad_(False)

    def train(self, mode: bool = True) -> "EVSSNet":
        super().train(mode)
        self.backbone.eval()  # frozen BN statistics too
        if self.freeze_flow:
            self.flow.eval()
        return self

    def prepare_inference(self) -> "EVSSNet":
        """BN folded and NHWC in the SwiftNet parts (the keyframe network, and the update branch
        built on it), in place: for a model that will not be trained again."""
        prepare_inference(self.backbone.eval())
        if hasattr(self.correction, "prepare_inference"):
            self.correction.prepare_inference()
        return self

    def forward(self, key_image: torch.Tensor, image: torch.Tensor, *, key_logits: torch.Tensor | None = None,
                flow: torch.Tensor | None = None) -> EVSSOutput:
        """``key_logits`` (the frozen backbone's F^b_k) and ``flow`` (an untrained flow source's
        O_{i->k}) may come precomputed from the teacher cache; they are then not recomputed."""
        if key_logits is None:
            with torch.no_grad():
                key_logits = self.backbone(key_image)  # (N, C, h, w)
        key_pred = class_argmax(key_logits)  # (N, h, w)  P_k
        if flow is None:
            flow = self.flow(key_image, image)  # (N, 2, h, w)
        warped = warp(key_logits, flow)  # (N, C, h, w)  Eq. (1)
        parts = rectify(correction=self.correction, distortion=self.distortion, image=image,
                        warped=warped, key_pred=key_pred)
        return EVSSOutput(key_logits=key_logits, flow=flow, warped_logits=warped, **parts)
