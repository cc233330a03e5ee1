"""Small building blocks shared by the backbone (CSRNet) and CoNet.

Attribute names (``conv``, ``norm``, ``sk.fc1``...) follow the authors' checkpoints so that their
state_dicts load key-for-key (reference README, sections 3-4 and 7).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """Channel count under a width multiplier; width 1.0 gives the paper's sizes exactly."""
    return max(minimum, int(round(channels * width)))


def make_act(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation {kind!r}; expected 'relu' or 'leaky_relu'")


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False``, the convention of the authors' code."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvNormAct(nn.Module):
    """Conv (no bias) -> BN -> activation: CBR in CSRNet, CBL in CoNet."""

    def __init__(self, cin: int, cout: int, k: int = 1, *, act: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SKFusion(nn.Module):
    """Selective-kernel fusion of two same-shaped inputs with per-channel soft attention."""

    def __init__(self, channels: int, *, act: str = "relu") -> None:
        super().__init__()
        self.fc = ConvNormAct(channels, channels, 1, act=act)
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)
        self.conv_out = ConvNormAct(channels, channels, 1, act=act)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = (a + b).mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        z = self.fc(z).flatten(1)  # (N, C)
        w = torch.stack([self.fc1(z), self.fc2(z)], dim=0).softmax(dim=0)  # (2, N, C): softmax over branches
        w1, w2 = w[0][:, :, None, None], w[1][:, :, None, None]
        return self.conv_out(a * w1 + b * w2)


class FusionUpsample(nn.Module):
    """U(skip -> out): project the skip, upsample the coarse input to it, SK-fuse, 3x3 blend.

    This is CSRNet's decoder block and CoNet's FFM (Fig. 5c). ``fuse=False`` is the Table IV
    "w/o FFM" ablation: the skip and the attention are dropped, only upsampling and the blend stay.
    """

    def __init__(self, skip_in: int, channels: int, out: int, *, act: str = "relu", fuse: bool = True) -> None:
        super().__init__()
        self.fuse = fuse
        if fuse:
            self.bottleneck = ConvNormAct(skip_in, channels, 1, act=act)
            self.sk = SKFusion(channels, act=act)
        self.blend_conv = ConvNormAct(channels, out, 3, act=act)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if not self.fuse:
            return self.blend_conv(resize(x, skip.shape[-2:]))  # (N, out, h_skip, w_skip)
        s = self.bottleneck(skip)  # (N, channels, h_skip, w_skip)
        x = resize(x, s.shape[-2:])
        return self.blend_conv(self.sk(x, s))  # (N, out, h_skip, w_skip)
