import pytest
import torch
import torch.nn as nn

from evss.models.backbone import CSRNet, SegmenterBackbone


@pytest.mark.parametrize("h,w", [(64, 128), (70, 130), (5, 9)])
def test_logits_on_the_quarter_grid(h, w):
    net = CSRNet(num_classes=7, width=0.125).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, h, w))
    assert out.shape == (1, 7, -(-h // 4), -(-w // 4))


def test_width_multiplier_shrinks_the_network():
    full = sum(p.numel() for p in CSRNet(num_classes=11).parameters())
    half = sum(p.numel() for p in CSRNet(num_classes=11, width=0.5).parameters())
    assert full == 12_816_831  # the released CSRNet-R18 for CamVid (reference README §10)
    assert half < full / 3


class _Stride8(nn.Module):
    """Any per-frame segmenter: image -> logits at stride 8, as a dict like torchvision's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 8, stride=8)

    def forward(self, x):
        return {"out": self.conv(x)}


def test_adapter_brings_any_segmenter_to_the_backbone_contract():
    bb = SegmenterBackbone(_Stride8(), num_classes=5)
    out = bb(torch.rand(2, 3, 66, 130))
    assert out.shape == (2, 5, 17, 33) and bb.output_stride == 4


def test_adapter_checks_class_count():
    with pytest.raises(ValueError, match=r"expected \(N, 4, h, w\)"):
        SegmenterBackbone(_Stride8(), num_classes=4)(torch.rand(1, 3, 64, 64))


def test_adapter_works_inside_the_streaming_segmenter():
    import numpy as np

    from evss.config import build_model, preset
    from evss.models.evss import EVSSNet
    from evss.segmenter import VideoSegmenter

    tiny = build_model(preset("tiny", num_classes=5))
    model = EVSSNet(backbone=SegmenterBackbone(_Stride8(), num_classes=5), flow=tiny.flow,
                    correction=tiny.correction, distortion=tiny.distortion)
    seg = VideoSegmenter(model)
    out = [seg.step(np.zeros((40, 72, 3), np.uint8)) for _ in range(3)]
    assert all(r.labels.shape == (40, 72) for r in out)
