"""CoNet, the correction network (Sec. III-C/D): N_upda (updated features, Eq. 2) + N_edge.

``N_upda``: an 8-layer encoder with 5 down-samplings, a pyramid pooling module (PPM), three
feature fusion modules (FFM-1 at 1/16, FFM-2 at 1/8, FFM-3 at 1/4; SK channel attention) and a
1x1 prediction over the decoder output concatenated with the warped features: C channels at 1/4.

``N_edge`` (edge & thin-object module, from CE2P): 1x1 convs on three feature levels, one shared
3x3 conv to 2-channel scores each, upsample, concatenate, 1x1 fuse.

Two variants (reference §11):
* ``"paper"``: the edge module reads encoder blocks 2-4 (E^2, E^3, E^4) and the fused score is one
  channel squashed by a sigmoid, as Sec. III-D writes.
* ``"official"``: the authors' code: it reads the decoder outputs d4, d8, d16, fuses to 2
  channels and takes a softmax (channel 1). Names match their ``conet.*`` keys at width 1.

Forward returns ``(updated_logits, edge_scores)`` at 1/4; ``edge_probability(edge_scores)`` turns
scores into the edge map M^e in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn

from evss.models._layers import FusionUpsample, make_act, resize, scaled
from evss.models.backbone import ImageNorm

VARIANTS = ("paper", "official")
HEAD_INITS = ("random", "passthrough")
UPDATES = ("conet", "keyframe")


class Correction(Protocol):
    """What Algorithm 1 needs of a correction network: :class:`CoNet`, or
    :class:`~evss.models.scaled_update.ScaledKeyframeUpdate` (``correction.update = "keyframe"``)."""

    num_classes: int

    def __call__(self, image: torch.Tensor, warped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) frame, (N, C, h, w) F^w -> (N, C, h, w) F^u (Eq. 2), (N, 1|2, h, w) edge scores."""
        ...

    def edge_probability(self, edge_scores: torch.Tensor) -> torch.Tensor:
        """Edge scores -> M^e in [0, 1], (N, 1, h, w)."""
        ...


@dataclass(frozen=True)
class CoNetConfig:
    num_classes: int = 19
    width: float = 1.0
    variant: str = "paper"  # "paper" | "official": where N_edge reads and how M^e is squashed
    activation: str = "leaky_relu"  # the authors use LeakyReLU(0.1) in every CBL; Fig. 5 says ReLU
    use_ppm: bool = True  # Table IV "w/o PPM": a plain 3x3 conv replaces the PPM
    use_ffm3: bool = True  # Table IV "w/o FFM-3" (the 1/4 fusion)
    use_ffm2: bool = True  # Table IV "w/o FFM-3 & FFM-2" turns this off too (the 1/8 fusion)
    concat_warped: bool = True  # Table IV "w/o concatenation of F^w": predict from the decoder only
    # "passthrough": the 1x1 prediction starts as F^u = F^w (identity on the concatenated warped
    # features, zero on the decoder's), so an untrained CoNet leaves Eq. (5) at warp-only and
    # training only learns corrections; "random": PyTorch's default init (the paper's, presumably).
    head_init: str = "random"
    # N_upda: "conet" (the paper's network above) or "keyframe": the keyframe network on the frame
    # scaled by update_scale, fused with F^w (evss.models.scaled_update); the other fields then unused.
    update: str = "conet"
    update_scale: float = 0.625
    update_train_encoder: bool = False  # "keyframe": fine-tune its encoder too (3x the step cost)

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ValueError(f"CoNet update {self.update!r} is not one of {UPDATES}")
        if not 0.2 <= self.update_scale <= 1.0:
            raise ValueError(f"CoNet update_scale must be in [0.2, 1], got {self.update_scale}")
        if self.variant not in VARIANTS:
            raise ValueError(f"CoNet variant {self.variant!r} is not one of {VARIANTS}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"CoNet head_init {self.head_init!r} is not one of {HEAD_INITS}")
        if self.head_init == "passthrough" and not self.concat_warped:
            raise ValueError("CoNet head_init 'passthrough' needs concat_warped: without F^w in the head "
                             "there is nothing to pass through (set correction.head_init=random too)")


def _cbl(cin: int, cout: int, stride: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), make_act(act))


class PPM(nn.Module):
    """Pyramid pooling over bins (1, 3, 6), fused by a 3x3 conv (reference §7)."""

    def __init__(self, cin: int, branch: int, out: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(cin, branch, 1, bias=False), nn.BatchNorm2d(branch))
            for s in (1, 3, 6)])
        self.bottleneck = nn.Sequential(nn.Conv2d(cin + 3 * branch, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [resize(stage(x), x.shape[-2:]) for stage in self.stages]  # 3 x (N, branch, h, w)
        return self.bottleneck(torch.cat([*pooled, x], dim=1))  # (N, out, h, w)


class EdgeModule(nn.Module):
    """N_edge: three levels -> shared 3x3 scores -> upsample to the finest -> 1x1 fuse."""

    def __init__(self, in_channels: tuple[int, int, int], mid: int, out: int) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3 = (
            nn.Sequential(nn.Conv2d(c, mid, 1, bias=False), nn.BatchNorm2d(mid)) for c in in_channels)
        self.conv4 = nn.Conv2d(mid, 2, 3, 1, 1)  # shared across the three levels
        self.conv5 = nn.Conv2d(6, out, 1)

    def forward(self, f4: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        size = f4.shape[-2:]
        e4 = self.conv4(self.conv1(f4))  # (N, 2, H/4, W/4)
        e8 = resize(self.conv4(self.conv2(f8)), size)  # (N, 2, H/4, W/4)
        e16 = resize(self.conv4(self.conv3(f16)), size)  # (N, 2, H/4, W/4)
        return self.conv5(torch.cat([e4, e8, e16], dim=1))  # (N, out, H/4, W/4)


def passthrough_init(head: nn.Conv2d, *, decoder_channels: int) -> None:
    """Make the 1x1 head over [decoder (d4 channels), F^w (C channels)] return F^w exactly.

    The decoder's columns start at zero (as a zero-initialised residual branch): they still get
    gradients (dL/dW = dL/dout * d4), and the decoder does from the first update on.
    """
    c = head.out_channels
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[:, decoder_channels:, 0, 0] = torch.eye(c)  # (C, C): F^u = F^w


class CoNet(nn.Module):
    """Correction network: (image (N,3,H,W), warped logits (N,C,H/4,W/4)) -> (F^u, edge scores)."""

    def __init__(self, *, num_classes: int = 19, width: float = 1.0, variant: str = "paper",
                 activation: str = "leaky_relu", use_ppm: bool = True, use_ffm3: bool = True,
                 use_ffm2: bool = True, concat_warped: bool = True, head_init: str = "random") -> None:
        super().__init__()
        self.config = CoNetConfig(num_classes=num_classes, width=width, variant=variant, activation=activation,
                                  use_ppm=use_ppm, use_ffm3=use_ffm3, use_ffm2=use_ffm2,
                                  concat_warped=concat_warped, head_init=head_init)
        self.num_classes = num_classes
        act = activation
        c1, c2, c3, c4, c5 = (scaled(n, width) for n in (32, 64, 128, 256, 512))
        d16, d8, d4 = scaled(128, width), scaled(64, width), scaled(32, width)
        self.norm = ImageNorm()
        # Encoder: 8 conv layers, 5 stride-2 down-samplings (to 1/32).
        self.conv1, self.conv2 = _cbl(3, c1, 2, act), _cbl(c1, c2, 2, act)
        self.conv3, self.conv3_1 = _cbl(c2, c3, 2, act), _cbl(c3, c3, 1, act)
        self.conv4, self.conv4_1 = _cbl(c3, c4, 2, act), _cbl(c4, c4, 1, act)
        self.conv5, self.conv5_1 = _cbl(c4, c5, 2, act), _cbl(c5, c5, 1, act)
        if use_ppm:
            self.psp = PPM(c5, scaled(128, width), d16)
        else:
            self.psp = nn.Sequential(nn.Conv2d(c5, d16, 3, 1, 1, bias=False), nn.BatchNorm2d(d16))
        # FFM-1 (1/16), FFM-2 (1/8), FFM-3 (1/4); names from the authors' code.
        self.deconv4 = FusionUpsample(c4, d16, d16, act=act)
        self.deconv3 = FusionUpsample(c3, d16, d8, act=act, fuse=use_ffm2)
        self.deconv2 = FusionUpsample(c2, d8, d4, act=act, fuse=use_ffm3)
        if variant == "official":
            self.edge_layer = EdgeModule((d4, d8, d16), scaled(32, width), 2)
        else:
            self.edge_layer = EdgeModule((c2, c3, c4), scaled(32, width), 1)
        self.predict_cc = nn.Conv2d(d4 + (num_classes if concat_warped else 0), num_classes, 1)
        if head_init == "passthrough":
            passthrough_init(self.predict_cc, decoder_channels=d4)

    @classmethod
    def from_config(cls, config: CoNetConfig) -> "CoNet":
        if config.update != "conet":
            raise ValueError(f"CoNetConfig update={config.update!r} is not built by CoNet (see config.build_model)")
        return cls(**{k: v for k, v in config.__dict__.items() if not k.startswith("update")})

    def forward(self, image: torch.Tensor, warped_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(image)
        e2 = self.conv2(self.conv1(x))  # (N, c2, H/4, W/4): encoder block 2 (E^2)
        e3 = self.conv3_1(self.conv3(e2))  # (N, c3, H/8, W/8): E^3
        e4 = self.conv4_1(self.conv4(e3))  # (N, c4, H/16, W/16): E^4
        e5 = self.conv5_1(self.conv5(e4))  # (N, c5, H/32, W/32)
        p = self.psp(e5)  # (N, d16, H/32, W/32)
        d16 = self.deconv4(p, e4)  # (N, d16, H/16, W/16)
        d8 = self.deconv3(d16, e3)  # (N, d8, H/8, W/8)
        d4 = self.deconv2(d8, e2)  # (N, d4, H/4, W/4)
        if self.config.variant == "official":
            edge = self.edge_layer(d4, d8, d16)  # (N, 2, H/4, W/4)
        else:
            edge = self.edge_layer(e2, e3, e4)  # (N, 1, H/4, W/4)
        if warped_logits.shape[-2:] != d4.shape[-2:]:
            raise ValueError(f"warped logits are {tuple(warped_logits.shape[-2:])}, CoNet's 1/4 grid for this "
                             f"image is {tuple(d4.shape[-2:])}")
        head_in = torch.cat([d4, warped_logits], dim=1) if self.config.concat_warped else d4
        updated = self.predict_cc(head_in)  # (N, C, H/4, W/4): F^u, Eq. (2)
        return updated, edge

    def edge_probability(self, edge_scores: torch.Tensor) -> torch.Tensor:
        """Edge scores -> M^e in [0, 1], (N, 1, h, w): sigmoid (paper) or softmax channel 1 (official)."""
        if self.config.variant == "official":
            return edge_scores.softmax(dim=1)[:, 1:2]
        return torch.sigmoid(edge_scores)
