"""A CoNet whose update branch N_upda is the keyframe network itself, run on the frame scaled down.

Why: the paper's CoNet is trained from scratch and, on CamVid, recovers a fifth of what the
rectification could buy (README, "How far could any CoNet go?"): the pixels the fine map hands to
F^u are the hardest quarter (moving boundaries, thin objects, disocclusions), where only a network
that knows the classes helps. The keyframe network already knows them. Run at a scale ``s`` (0.625
costs about 0.39 of a keyframe, the paper CoNet's cost here) it is a strong but blurry opinion of
the current frame; F^w is a sharp but stale one. This module fuses the two into F^u (Eq. 2) and
predicts the edge & thin-object map M^e from both (Sec. III-D), so Eqs. (3)-(5) are unchanged.

Interface of :class:`~evss.models.correction.CoNet`: ``(image (N, 3, H, W), F^w (N, C, h, w)) ->
(F^u (N, C, h, w), edge scores (N, 1, h, w))`` on the 1/4 grid h = ceil(H/4), w = ceil(W/4);
``edge_probability`` is a sigmoid (the paper's squashing).

Initialisation: the inner network starts as a copy of the trained keyframe network
(``init_from``); the F^u head starts as the mean of F^w and the scaled network's logits, so an
untrained module is already the "average the two opinions" baseline; training learns where to
trust which.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from evss.models._layers import ConvNormAct, resize
from evss.models.backbone import SwiftNet, prepare_inference
from evss.models.efficientnet import fold_batchnorm

FEATURE_CHANNELS = 32  # the scaled network's decoder features, projected before upsampling


class ScaledKeyframeUpdate(nn.Module):
    """CoNet with N_upda = the keyframe network (SwiftNet) on the frame resized by ``scale``."""

    def __init__(self, net: SwiftNet, *, scale: float, train_encoder: bool = False) -> None:
        super().__init__()
        if not 0.2 <= scale <= 1.0:
            raise ValueError(f"update scale must be in [0.2, 1], got {scale}")
        self.net = net
        self.scale = scale
        # The encoder stays the keyframe network's unless asked: its backward pass would triple the
        # cost of a training step, and the decoder is what has to adapt to the smaller scale.
        # (Frozen parameters and an input without gradient: autograd records nothing in it.)
        net.encoder.requires_grad_(train_encoder)
        self.num_classes = c = net.num_classes
        ch = net.config.decoder_channels
        k = FEATURE_CHANNELS
        self.project = ConvNormAct(ch, k, 1)
        # F^u head: 1x1 over [features, scaled logits, F^w] (mean init) + a zero-started 3x3 residual.
        self.predict = nn.Conv2d(k + 2 * c, c, 1)
        self.refine = nn.Sequential(ConvNormAct(k + 2 * c, k, 3), nn.Conv2d(k, c, 1))
        # N_edge: where the two opinions disagree and where the image has boundaries and thin things.
        self.edge = nn.Sequential(ConvNormAct(k + 2 * c, 16, 3), nn.Conv2d(16, 1, 1))
        with torch.no_grad():
            self.predict.weight.zero_()
            self.predict.bias.zero_()
            eye = torch.eye(c)  # (C, C)
            self.predict.weight[:, k:k + c, 0, 0] = 0.5 * eye  # scaled network's logits
            self.predict.weight[:, k + c:, 0, 0] = 0.5 * eye  # F^w
            self.refine[-1].weight.zero_()
            self.refine[-1].bias.zero_()

    def init_from(self, keyframe_net: nn.Module) -> None:
        """Copy the trained keyframe network's weights into the update branch."""
        self.net.load_state_dict(keyframe_net.state_dict())

    def train(self, mode: bool = True) -> "ScaledKeyframeUpdate":
        super().train(mode)
        # The copied network keeps the keyframe network's BatchNorm statistics: training batches
        # of a few small crops would estimate them worse than the teacher's run did.
        self.net.eval()
        return self

    def prepare_inference(self) -> None:
        """BN folded and NHWC in the inner network, as the segmenter does for the keyframe network;
        the heads' BN folded too, so no BatchNorm is left to run (time unchanged within noise at
        512x1024: the heads' cost is their 3x3 convolutions, not their BN)."""
        prepare_inference(self.net.eval())
        fold_batchnorm(self.eval())

    def scaled_input(self, image: torch.Tensor) -> torch.Tensor:
        """The frame resized by ``scale`` (sides rounded to multiples of 32), antialiased: (N, 3, hs, ws).

        Apart from :meth:`from_scaled` because compiled runtimes have no antialiased resize
        (OpenVINO, ``evss.backends.openvino``): they run the rest and leave this to PyTorch."""
        h, w = image.shape[-2:]
        size = (max(32, round(h * self.scale / 32) * 32), max(32, round(w * self.scale / 32) * 32))
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)

    def _scaled(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keyframe network on the resized frame: decoder features and logits at its 1/4 grid."""
        return self._network(self.scaled_input(image))

    def _network(self, small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.net.features(small)  # (N, ch, hs/4, ws/4)
        return x, self.net.logits(x)  # (N, ch, hs/4, ws/4), (N, C, hs/4, ws/4)

    def forward(self, image: torch.Tensor, warped_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_scaled(self.scaled_input(image), warped_logits)

    def from_scaled(self, small: torch.Tensor, warped_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` from the resized frame (:meth:`scaled_input`) on: (F^u, edge scores)."""
        grid = warped_logits.shape[-2:]  # (h, w): the 1/4 grid of the full frame
        feats, logits = self._network(small)
        feats = resize(self.project(feats).contiguous(), grid)  # (N, k, h, w)
        logits = resize(logits.contiguous(), grid)  # (N, C, h, w)
        x = torch.cat([feats, logits, warped_logits], dim=1)  # (N, k + 2C, h, w)
        updated = self.predict(x) + self.refine(x)  # (N, C, h, w): F^u, Eq. (2)
        return updated, self.edge(x)  # (N, C, h, w), (N, 1, h, w)

    def edge_probability(self, edge_scores: torch.Tensor) -> torch.Tensor:
        """Edge scores -> M^e in [0, 1] (N, 1, h, w), the paper's sigmoid."""
        return torch.sigmoid(edge_scores)
