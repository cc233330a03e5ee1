"""N_flow: optical flow between the reference (key) frame and the current frame (Sec. III-B).

``FlowNet`` is the authors' FlowNet-S variant at 3/8 width without BatchNorm (reference README,
section 5); names match their ``flownet.pth`` key-for-key at ``width=1``. It returns the backward
flow of the current frame to the reference at 1/4 resolution, in 1/4-grid pixels, ready for
:func:`evss.models.warp.warp` on the 1/4-resolution logits.

Any other source (classical optical flow, codec motion vectors) plugs in through the
``FlowEstimator`` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn

from evss.models._layers import scaled


@runtime_checkable
class FlowEstimator(Protocol):
    """Contract of a flow source.

    ``estimator(reference, current)`` takes two RGB frames in [0, 1], (N, 3, H, W) each, and
    returns the backward flow (N, 2, ceil(H/4), ceil(W/4)) in pixels of the 1/4 grid, so that
    ``warp(features_of_reference, flow)`` aligns them with ``current``.
    """

    def __call__(self, reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class FlowConfig:
    width: float = 1.0  # 1.0 = the authors' FlowNet (24..384 channels)
    # Subtracted from both frames before the first conv. The authors feed [0, 1] as it is (0.0,
    # kept for their checkpoints); with no normalisation anywhere in FlowNet, that leaves a
    # from-scratch FlowNet on the zero-flow plateau (1,500 steps learned nothing: EPE = zero flow),
    # while centred input leaves it within a few hundred steps (tests/models/test_flow.py).
    input_offset: float = 0.0


def _crop_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Keep rows/cols 1..S of a 2n+2 transposed-conv output (the authors' odd-size handling)."""
    return x[:, :, 1:size[0] + 1, 1:size[1] + 1]


class FlowNet(nn.Module):
    """FlowNet-S: frames (N, 3, H, W) x 2 in [0, 1], no normalisation -> flow (N, 2, H/4, W/4)."""

    def __init__(self, *, width: float = 1.0, input_offset: float = 0.0) -> None:
        super().__init__()
        self.config = FlowConfig(width=width, input_offset=input_offset)
        self.input_offset = input_offset
        c1, c2, c3, c4, c6 = (scaled(n, width) for n in (24, 48, 96, 192, 384))

        def enc(cin: int, cout: int, k: int, s: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2), nn.LeakyReLU(0.1, inplace=True))

        def dec(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 0, bias=False), nn.LeakyReLU(0.1, inplace=True))

        self.conv1, self.conv2, self.conv3 = enc(6, c1, 7, 2), enc(c1, c2, 5, 2), enc(c2, c3, 5, 2)
        self.conv3_1 = enc(c3, c3, 3, 1)
        self.conv4, self.conv4_1 = enc(c3, c4, 3, 2), enc(c4, c4, 3, 1)
        self.conv5, self.conv5_1 = enc(c4, c4, 3, 2), enc(c4, c4, 3, 1)
        self.conv6, self.conv6_1 = enc(c4, c6, 3, 2), enc(c6, c6, 3, 1)
        cat5, cat4 = c4 + c4 + 2, c4 + c3 + 2
        cat3, cat2 = c3 + c2 + 2, c2 + c1 + 2
        self.predict_flow6 = nn.Conv2d(c6, 2, 3, 1, 1)
        self.predict_flow5 = nn.Conv2d(cat5, 2, 3, 1, 1)
        self.predict_flow4 = nn.Conv2d(cat4, 2, 3, 1, 1)
        self.predict_flow3 = nn.Conv2d(cat3, 2, 3, 1, 1)
        self.predict_flow2 = nn.Conv2d(cat2, 2, 3, 1, 1)
        self.deconv5, self.deconv4 = dec(c6, c4), dec(cat5, c3)
        self.deconv3, self.deconv2 = dec(cat4, c2), dec(cat3, c1)
        self.upsample_flow6to5 = nn.ConvTranspose2d(2, 2, 4, 2, 0, bias=False)
        self.upsample_flow5to4 = nn.ConvTranspose2d(2, 2, 4, 2, 0, bias=False)
        self.upsample_flow4to3 = nn.ConvTranspose2d(2, 2, 4, 2, 0, bias=False)
        self.upsample_flow3to2 = nn.ConvTranspose2d(2, 2, 4, 2, 0, bias=False)

    @classmethod
    def from_config(cls, config: FlowConfig) -> "FlowNet":
        return cls(width=config.width, input_offset=config.input_offset)

    def forward(self, reference: torch.Tensor, current: torch.Tensor, *,
                return_pyramid: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        # The authors feed the current (later) frame first: cat[I_i, I_k] (reference §11).
        x = torch.cat([current, reference], dim=1)  # (N, 6, H, W)
        if self.input_offset:
            x = x - self.input_offset
        c2 = self.conv2(self.conv1(x))  # (N, c2, H/4, W/4)
        c3 = self.conv3_1(self.conv3(c2))  # (N, c3, H/8, W/8)
        c4 = self.conv4_1(self.conv4(c3))  # (N, c4, H/16, W/16)
        c5 = self.conv5_1(self.conv5(c4))  # (N, c4, H/32, W/32)
        c6 = self.conv6_1(self.conv6(c5))  # (N, c6, H/64, W/64)
        flow6 = self.predict_flow6(c6)
        cat5 = torch.cat([c5, _crop_to(self.deconv5(c6), c5.shape[-2:]),
                          _crop_to(self.upsample_flow6to5(flow6), c5.shape[-2:])], 1)
        flow5 = self.predict_flow5(cat5)
        cat4 = torch.cat([c4, _crop_to(self.deconv4(cat5), c4.shape[-2:]),
                          _crop_to(self.upsample_flow5to4(flow5), c4.shape[-2:])], 1)
        flow4 = self.predict_flow4(cat4)
        cat3 = torch.cat([c3, _crop_to(self.deconv3(cat4), c3.shape[-2:]),
                          _crop_to(self.upsample_flow4to3(flow4), c3.shape[-2:])], 1)
        flow3 = self.predict_flow3(cat3)
        cat2 = torch.cat([c2, _crop_to(self.deconv2(cat3), c2.shape[-2:]),
                          _crop_to(self.upsample_flow3to2(flow3), c2.shape[-2:])], 1)
        # x5 = FlowNet's usual x20 divided by 4: pixels of the 1/4 grid.
        flow = 5.0 * self.predict_flow2(cat2)  # (N, 2, H/4, W/4)
        if return_pyramid:
            # Raw coarse predictions for the multi-scale EPE of flow pretraining (same x5 units
            # relative to their own grid after scaling by the caller).
            return flow, [flow6, flow5, flow4, flow3]
        return flow
