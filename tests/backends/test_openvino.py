"""The openvino backend: the three networks compiled by OpenVINO give torch's labels, are cached by
weights, size and precision, compile anew for a new frame size, and fail in one line when missing."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from conftest import DATA, need_module, need_path
from evss.backends import check_backend, with_backend
from evss.backends import openvino as ov_backend
from evss.config import apply_overrides, build_model, preset
from evss.errors import EvssError
from evss.segmenter import SegmenterConfig, VideoSegmenter

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def camvid_frames() -> list[np.ndarray]:
    """Five consecutive CamVid val frames, downscaled to 96x128 (real footage, small enough to be quick)."""
    from PIL import Image

    from evss.media import list_images, resize_image
    folder = need_path(DATA / "camvid" / "val" / "images", "CamVid val frames")
    return [resize_image(np.asarray(Image.open(p).convert("RGB")), 96, 128) for p in list_images(folder)[:5]]


def compiled(model, cache, precision: str = "fp32"):
    need_module("openvino")
    return ov_backend.compile_parts(model, threads=1, precision=precision, cache=cache / "openvino")


def labels(model, frames, **config) -> list:
    seg = VideoSegmenter(model, config=SegmenterConfig(**config), return_maps=True)
    return list(seg.segment(frames))


def close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-4) -> None:
    """Equal up to float32 rounding at the scale of ``want`` (the vivid tiny model's logits reach 1e3)."""
    scale = max(1.0, float(want.abs().max()))
    assert got.shape == want.shape and float((got - want).abs().max()) <= rel * scale


def agreement(a, b) -> float:
    return float(np.mean([(x.labels == y.labels).mean() for x, y in zip(a, b)]))


def test_keyframe_labels_through_openvino_agree_with_torch_on_real_frames(tiny_model, camvid_frames,
                                                                          openvino_cache):
    eager = labels(tiny_model, camvid_frames, mode="per_frame")
    model = compiled(tiny_model, openvino_cache)
    assert isinstance(model.backbone, ov_backend.OpenVinoBackbone)
    fast = labels(model, camvid_frames, mode="per_frame")
    assert agreement(eager, fast) >= 0.995  # float rounding may flip a near tie, nothing more
    assert not model.backbone.in_torch and model.backbone.compiled_shapes == [((1, 3, 96, 128),)]
    image = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        close(model.backbone(image), model.backbone.module(image))


def test_the_evss_non_keyframe_step_through_openvino_equals_torch(tiny_model, camvid_frames, openvino_cache):
    """FlowNet and CoNet compiled: one keyframe, four non-keyframes, labels and distortion maps."""
    eager = labels(tiny_model, camvid_frames, mode="evss", keyframe_interval=5)
    model = compiled(tiny_model, openvino_cache)
    fast = labels(model, camvid_frames, mode="evss", keyframe_interval=5)
    assert [r.is_keyframe for r in fast] == [True, False, False, False, False]
    assert agreement(eager, fast) >= 0.995
    for a, b in zip(eager[1:], fast[1:]):
        np.testing.assert_allclose(a.maps["fine"], b.maps["fine"], atol=2e-3)
    assert not model.correction.in_torch and not model.flow.in_torch
    image, ref = torch.rand(1, 3, 96, 128), torch.rand(1, 3, 96, 128)
    warped = torch.randn(1, 11, 24, 32)
    with torch.no_grad():
        close(model.flow(ref, image), model.flow.module(ref, image))
        for got, want in zip(model.correction(image, warped), model.correction.module(image, warped)):
            close(got, want)


def test_the_update_branch_keeps_its_antialiased_resize_in_torch(tmp_path):
    """`camvid`'s correction is the keyframe network on the frame scaled down: OpenVINO has no
    antialiased resize, so PyTorch resizes and OpenVINO runs the rest."""
    torch.manual_seed(0)
    config = apply_overrides(preset("lite0"), {"correction.update": "keyframe", "correction.update_scale": 0.75,
                                               "backbone.decoder_channels": 16})
    model = build_model(config).eval()
    model.correction.init_from(model.backbone)
    image, warped = torch.rand(1, 3, 64, 96), torch.randn(1, 11, 16, 24)
    compiled(model, tmp_path)
    with torch.no_grad():
        want = model.correction.module(image, warped)
        got = model.correction(image, warped)
    assert model.correction.compiled_shapes == [((1, 3, 64, 64), (1, 11, 16, 24))]  # the graph takes the 0.75 frame
    for g, w in zip(got, want):
        close(g, w)


def test_compiled_models_are_cached_by_weights_and_a_new_weight_compiles_anew(tmp_path, tiny_model, monkeypatch):
    twin, changed, third = (copy.deepcopy(tiny_model) for _ in range(3))  # later runs: the same weights, new ones
    with torch.no_grad():
        next(changed.backbone.parameters()).mul_(1.5)  # one weight tensor changed
    image = torch.rand(1, 3, 64, 96)
    model = compiled(tiny_model, tmp_path)
    with torch.no_grad():
        first = model.backbone(image)
    files = sorted(tmp_path.rglob("keyframe-*.xml"))
    assert len(files) == 1 and model.backbone.key in files[0].name and "1x3x64x96-fp32" in files[0].name
    conversions = []
    real = ov_backend.convert
    monkeypatch.setattr(ov_backend, "convert", lambda *a: conversions.append(a) or real(*a))
    twin = compiled(twin, tmp_path)  # a new run of the same weights: read from the cache, not converted
    with torch.no_grad():
        torch.testing.assert_close(twin.backbone(image), first)
    assert conversions == []
    changed = compiled(changed, tmp_path)  # new weights: a new hash, a new conversion, their own outputs
    with torch.no_grad():
        out = changed.backbone(image)
        close(out, changed.backbone.module(image))
    assert len(conversions) == 1 and len(sorted(tmp_path.rglob("keyframe-*.xml"))) == 2
    assert changed.backbone.key != model.backbone.key and not torch.allclose(out, first)
    files[0].write_text("not an IR")  # a damaged cache file is converted anew
    again = compiled(third, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again.backbone(image), first)
    assert len(conversions) == 2


def test_a_frame_size_that_changes_mid_stream_compiles_for_the_new_size(tiny_model, camvid_frames, openvino_cache):
    small = [f[:64, :96].copy() for f in camvid_frames[:3]]
    eager = [labels(tiny_model, clip, mode="evss", keyframe_interval=2) for clip in (camvid_frames[:3], small)]
    model = compiled(tiny_model, openvino_cache)
    seg = VideoSegmenter(model, config=SegmenterConfig(mode="evss", keyframe_interval=2))
    fast = []
    for clip in (camvid_frames[:3], small, camvid_frames[:3]):
        seg.reset()  # a new clip at another size (the segmenter refuses a size change within a clip)
        fast.append(list(seg.segment(clip)))
    for want, got in zip(eager + eager[:1], fast):
        assert agreement(want, got) >= 0.995
    assert model.backbone.compiled_shapes == [((1, 3, 96, 128),), ((1, 3, 64, 96),)]
    assert len(model.correction.compiled_shapes) == 2 and len(model.flow.compiled_shapes) == 2


def test_a_part_openvino_cannot_convert_runs_in_torch_with_a_note(tmp_path, tiny_model, monkeypatch):
    need_module("openvino")

    def refuse(*args):
        raise RuntimeError("Model wasn't fully converted.\nNo conversion rule found for operations: aten.x")

    monkeypatch.setattr(ov_backend, "convert", refuse)
    notes = []
    model = ov_backend.compile_parts(tiny_model, threads=1, cache=tmp_path / "openvino", notice=notes.append)
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(image), model.backbone.module(image))
    assert model.backbone.in_torch and len(notes) == 1
    assert notes[0].startswith("note: OpenVINO could not convert the keyframe network (No conversion rule found")


def test_int8_quantises_the_camvid_keyframe_network_on_calibration_frames(tmp_path, camvid_frames, monkeypatch):
    """The built-in weights (an untrained tiny network's activations do not survive int8), calibrated
    on generated SynthDrive frames, labelling real ones: close to float32, not equal."""
    need_module("nncf")
    from evss.checkpoint import load_weights
    monkeypatch.delenv("EVSS_CALIBRATION", raising=False)
    model = load_weights("camvid", notice=lambda m: None)[0].eval()
    eager = labels(model, camvid_frames[:3], mode="per_frame")
    fast = labels(compiled(model, tmp_path, precision="int8"), camvid_frames[:3], mode="per_frame")
    assert agreement(eager, fast) >= 0.95  # 97.9 % when written (98.9 % at 360x480 on CamVid val)
    files = sorted(p.name for p in tmp_path.rglob("keyframe-*.xml"))
    assert len(files) == 1 and files[0].endswith("-1x3x96x128-int8-synthdrive.xml")


def test_a_missing_openvino_is_a_one_line_error_naming_the_extra(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(EvssError, match=r"^--backend openvino needs the openvino package: "
                                        r"pip install 'evss\[openvino\]' \(or use --backend torch\)$"):
        with_backend(tiny_model, "openvino", device=CPU, dtype=torch.float32)


def test_a_missing_nncf_is_a_one_line_error_for_int8_only(tmp_path, tiny_model, monkeypatch):
    need_module("openvino")
    monkeypatch.setitem(sys.modules, "nncf", None)
    monkeypatch.setenv("EVSS_CACHE", str(tmp_path))
    with pytest.raises(EvssError, match=r"^--precision int8 needs the nncf package .*pip install 'evss\[openvino\]'"):
        with_backend(tiny_model, "openvino", device=CPU, dtype=torch.float32, precision="int8")
    with_backend(tiny_model, "openvino", device=CPU, dtype=torch.float32)  # float32 does without it


def test_backend_and_precision_are_checked(tiny_model):
    with pytest.raises(EvssError, match="--precision int8 needs --backend openvino"):
        check_backend("torch", "int8")
    with pytest.raises(EvssError, match="precision 'int4' is not one of"):
        check_backend("openvino", "int4")
    with pytest.raises(EvssError, match="--backend openvino runs float32 on the CPU"):
        with_backend(tiny_model, "openvino", device=torch.device("cuda"), dtype=torch.float32)
    with pytest.raises(EvssError, match="--backend openvino runs float32 on the CPU"):
        with_backend(tiny_model, "openvino", device=CPU, dtype=torch.float16)
