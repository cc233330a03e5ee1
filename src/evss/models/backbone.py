"""N_backb: the keyframe network (Sec. III-A).

``CSRNet`` is CSRNet-R18 exactly as the authors build it (reference README, section 4): ResNet-18
features, three SPP blocks and a cascaded SK-fusion decoder, logits at 1/4 resolution. Module and
buffer names match their ``csrnet_*_best.pth`` checkpoints key-for-key at ``width=1``.

The paper leaves the keyframe network open ("opened to an arbitrary semantic segmentation
network"); ``SegmenterBackbone`` adapts any per-frame ``nn.Module`` to the same contract.

Backbone contract: ``forward(image)`` takes RGB in [0, 1], shape (N, 3, H, W), and returns class
logits (N, C, ceil(H/4), ceil(W/4)); attributes ``num_classes`` and ``output_stride == 4``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from evss.models._layers import ConvNormAct, FusionUpsample, resize, scaled
from evss.models.efficientnet import EfficientNetLite, fold_batchnorm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneConfig:
    num_classes: int = 19
    width: float = 1.0  # CSRNet: multiplies every channel count; 1.0 is the released CSRNet-R18
    arch: str = "csrnet"  # "csrnet" | "swiftnet": the keyframe network
    encoder: str = "lite0"  # swiftnet: EfficientNet-Lite variant of evss.models.efficientnet
    decoder_channels: int = 96  # swiftnet: channels of the SPP and the upsampling ladder


class ImageNorm(nn.Module):
    """(img - mean) / std with float32 constants, as the authors' model does internally."""

    def __init__(self) -> None:
        super().__init__()
        # float32 on purpose: a float64 model keeps the float32-rounded values (reference §9).
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)  # (1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class SPP(nn.Module):
    """Spatial pyramid pooling over grids (8, 4, 2) x aspect ratio (reference §4.4)."""

    grids = (8, 4, 2)

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        level = channels // 3  # 42 at 128 channels
        self.spp_bn = ConvNormAct(cin, channels, 1)
        self.spp0 = ConvNormAct(channels, level, 1)
        self.spp1 = ConvNormAct(channels, level, 1)
        self.spp2 = ConvNormAct(channels, level, 1)
        self.spp_fuse = ConvNormAct(channels + 3 * level, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spp_bn(x)  # (N, ch, h, w)
        h, w = int(y.shape[-2]), int(y.shape[-1])  # plain ints keep the grid arithmetic traceable
        ar = w / h
        levels = [y]
        for g, unit in zip(self.grids, (self.spp0, self.spp1, self.spp2)):
            # Python's round (half to even) is what the checkpoints were made with.
            pooled = F.adaptive_avg_pool2d(y, (g, max(1, round(ar * g))))
            levels.append(resize(unit(pooled), (h, w)))  # (N, level, h, w)
        return self.spp_fuse(torch.cat(levels, dim=1))  # (N, ch, h, w)


class _SPPHolder(nn.Module):
    """Only there to reproduce the checkpoints' doubled ``spp.spp`` key prefix."""

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.spp = SPP(cin, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spp(x)


class CSRNetFeatures(nn.Module):
    """ResNet-18 encoder and the three-pass SK-fusion decoder; returns f4 (N, dec, H/4, W/4)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = [scaled(n, width) for n in (64, 128, 256, 512)]
        dec = scaled(128, width, minimum=6)
        self.out_channels = dec
        # Two unused buffers of the released checkpoints, kept so strict loading accepts them.
        self.register_buffer("img_mean", torch.tensor([73.1584, 82.9090, 72.3924]).view(1, 3, 1, 1))
        self.register_buffer("img_std", torch.tensor([44.9149, 46.1529, 45.3192]).view(1, 3, 1, 1))
        self.norm = ImageNorm()
        self.conv1 = nn.Conv2d(3, c[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(c[0], c[0], 1), BasicBlock(c[0], c[0], 1))
        self.layer2 = nn.Sequential(BasicBlock(c[0], c[1], 2), BasicBlock(c[1], c[1], 1))
        self.layer3 = nn.Sequential(BasicBlock(c[1], c[2], 2), BasicBlock(c[2], c[2], 1))
        self.layer4 = nn.Sequential(BasicBlock(c[2], c[3], 2), BasicBlock(c[3], c[3], 1))
        self.spp = _SPPHolder(c[3], dec)
        self.spp_up1 = _SPPHolder(dec, dec)
        self.spp_up2 = _SPPHolder(dec, dec)
        self.upsample = nn.ModuleList([FusionUpsample(c[2], dec, dec), FusionUpsample(c[1], dec, dec),
                                       FusionUpsample(c[0], dec, dec)])
        self.upsample_up2 = nn.ModuleList([FusionUpsample(dec, dec, dec), FusionUpsample(dec, dec, dec)])
        self.upsample_up3 = nn.ModuleList([FusionUpsample(dec, dec, dec)])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.norm(image)))))  # (N, c0, H/4, W/4)
        s4 = self.layer1(x)  # (N, c0, H/4, W/4)
        s8 = self.layer2(s4)  # (N, c1, H/8, W/8)
        s16 = self.layer3(s8)  # (N, c2, H/16, W/16)
        s32 = self.layer4(s16)  # (N, c3, H/32, W/32)
        p32 = self.spp(s32)  # (N, dec, H/32, W/32)
        u16 = self.upsample[0](p32, s16)  # pass 1
        u8 = self.upsample[1](u16, s8)
        u4 = self.upsample[2](u8, s4)
        q16 = self.spp_up1(u16)  # from u16 before it is re-pooled (reference §4.6)
        v8 = self.upsample_up2[0](q16, u8)  # pass 2
        v4 = self.upsample_up2[1](v8, u4)
        q8 = self.spp_up2(v8)
        return self.upsample_up3[0](q8, v4)  # pass 3: (N, dec, H/4, W/4)


class LogitsHead(nn.Module):
    """Pre-activation head: BN -> ReLU -> 1x1 conv with bias."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.norm(x)))


class CSRNet(nn.Module):
    """CSRNet-R18: image (N, 3, H, W) in [0, 1] -> logits (N, C, ceil(H/4), ceil(W/4))."""

    output_stride = 4

    def __init__(self, *, num_classes: int = 19, width: float = 1.0) -> None:
        super().__init__()
        self.config = BackboneConfig(num_classes=num_classes, width=width)
        self.num_classes = num_classes
        self.backbone = CSRNetFeatures(width)
        self.logits = LogitsHead(self.backbone.out_channels, num_classes)

    @classmethod
    def from_config(cls, config: BackboneConfig) -> "CSRNet":
        return cls(num_classes=config.num_classes, width=config.width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(self.backbone(image))  # (N, C, H/4, W/4)


class LadderUp(nn.Module):
    """SwiftNet's upsampling block: upsample, add the 1x1-projected lateral skip, 3x3 blend."""

    def __init__(self, skip_in: int, channels: int, *, separable: bool = False) -> None:
        super().__init__()
        self.lateral = ConvNormAct(skip_in, channels, 1)
        # At 1/4 a full 3x3 conv would cost more than the encoder; depthwise + pointwise keeps the
        # receptive field at a ninth of the multiply-adds.
        self.blend = (nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                                    ConvNormAct(channels, channels, 1))
                      if separable else ConvNormAct(channels, channels, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        s = self.lateral(skip)  # (N, ch, h_skip, w_skip)
        return self.blend(resize(x, s.shape[-2:]) + s)  # (N, ch, h_skip, w_skip)


class SwiftNet(nn.Module):
    """SwiftNet-style keyframe network on an ImageNet-pretrained EfficientNet-Lite encoder.

    SPP on the stride-32 features, then a ladder of upsampling blocks with lateral skips from
    strides 16, 8 and 4 (Orsic et al., CVPR 2019); logits at 1/4, the backbone contract of
    :class:`CSRNet`: image (N, 3, H, W) in [0, 1] -> logits (N, C, ceil(H/4), ceil(W/4)).
    """

    output_stride = 4

    def __init__(self, *, num_classes: int = 11, encoder: str = "lite0", decoder_channels: int = 96) -> None:
        super().__init__()
        self.config = BackboneConfig(num_classes=num_classes, arch="swiftnet", encoder=encoder,
                                     decoder_channels=decoder_channels)
        self.num_classes = num_classes
        ch = decoder_channels
        self.encoder = EfficientNetLite(encoder)
        c4, c8, c16, c32 = self.encoder.out_channels
        self.spp = SPP(c32, ch)
        self.up16 = LadderUp(c16, ch)
        self.up8 = LadderUp(c8, ch)
        self.up4 = LadderUp(c4, ch, separable=True)
        self.logits = nn.Conv2d(ch, num_classes, 1)
        self.channels_last = False  # set by prepare_inference: NHWC kernels are ~2x faster on CPU here

    @classmethod
    def from_config(cls, config: BackboneConfig) -> "SwiftNet":
        return cls(num_classes=config.num_classes, encoder=config.encoder, decoder_channels=config.decoder_channels)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The decoder's output before the 1x1 logits: (N, ch, H/4, W/4)."""
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        f4, f8, f16, f32 = self.encoder(image)  # strides 4, 8, 16, 32
        x = self.spp(f32)  # (N, ch, H/32, W/32)
        x = self.up16(x, f16)  # (N, ch, H/16, W/16)
        x = self.up8(x, f8)  # (N, ch, H/8, W/8)
        return self.up4(x, f4)  # (N, ch, H/4, W/4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = -(-image.shape[-2] // 4), -(-image.shape[-1] // 4)
        logits = self.logits(self.features(image)).contiguous()  # (N, C, H/4, W/4), NCHW for the rest
        # TF "same" padding gives ceil(H/4) already; the check keeps the contract explicit.
        return logits if logits.shape[-2:] == (h, w) else resize(logits, (h, w))


def prepare_inference(backbone: nn.Module) -> nn.Module:
    """Make a keyframe network fast for inference, in place: BatchNorm folded into the convs and
    NHWC ("channels-last") memory for SwiftNet, whose depthwise convs gain most from it.

    Outputs are equal to the plain path up to float rounding (tests). Only for a network that will
    not be trained again (folding bakes in the BN statistics); CSRNet is left as it is, so the
    authors' checkpoints keep their exact parity.
    """
    if isinstance(backbone, SwiftNet) and not backbone.channels_last:
        fold_batchnorm(backbone.eval())
        backbone.to(memory_format=torch.channels_last)
        backbone.channels_last = True
    return backbone


def build_backbone(config: BackboneConfig) -> nn.Module:
    """The keyframe network a config names."""
    if config.arch == "csrnet":
        return CSRNet.from_config(config)
    if config.arch == "swiftnet":
        return SwiftNet.from_config(config)
    raise ValueError(f"unknown backbone arch {config.arch!r}; expected 'csrnet' or 'swiftnet'")


class SegmenterBackbone(nn.Module):
    """Adapts any per-frame segmenter (image -> logits at any stride) to the backbone contract.

    The wrapped module sees the same [0, 1] RGB input; its logits are resized bilinearly to the
    1/4 grid ``ceil(H/4) x ceil(W/4)`` that FlowNet and CoNet use.
    """

    output_stride = 4

    def __init__(self, module: nn.Module, *, num_classes: int) -> None:
        super().__init__()
        self.module = module
        self.num_classes = num_classes

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.module(image)
        if isinstance(logits, dict):  # torchvision-style {"out": logits}
            logits = logits["out"]
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"wrapped segmenter returned {tuple(logits.shape)}, expected "
                             f"(N, {self.num_classes}, h, w) logits")
        h, w = -(-image.shape[-2] // 4), -(-image.shape[-1] // 4)
        return resize(logits, (h, w))  # (N, C, H/4, W/4)
