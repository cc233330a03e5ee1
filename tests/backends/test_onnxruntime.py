"""The onnxruntime backend: the keyframe network exported once per size, cached, and equal to eager."""

from __future__ import annotations

import pytest
import torch

from conftest import need_module
from evss.backends import OnnxRuntimeBackbone, fingerprint, with_backend
from evss.config import build_model, preset
from evss.errors import EvssError
from evss.segmenter import SegmenterConfig, VideoSegmenter


@pytest.fixture
def lite0_small():
    torch.manual_seed(0)
    config = preset("lite0")
    return build_model(config.__class__(**{**config.__dict__, "backbone": config.backbone.__class__(
        **{**config.backbone.__dict__, "decoder_channels": 16})})).eval()


def test_onnxruntime_backbone_equals_eager_and_caches_its_export(tmp_path, lite0_small):
    need_module("onnxruntime")
    need_module("onnxscript")
    eager = lite0_small.backbone
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = eager(image)
    ort = OnnxRuntimeBackbone(eager, threads=1, cache=tmp_path)
    out = ort(image)
    assert out.shape == ref.shape == (1, 11, 16, 24)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and fingerprint(eager) in files[0].name and "1x3x64x96" in files[0].name
    stamp = files[0].stat().st_mtime_ns
    again = OnnxRuntimeBackbone(eager, threads=1, cache=tmp_path)  # a new run: the cached graph, no export
    torch.testing.assert_close(again(image), ref, atol=1e-4, rtol=1e-4)
    assert files[0].stat().st_mtime_ns == stamp
    files[0].write_bytes(b"not onnx")  # a damaged cache file is reported, removed, and re-exported next time
    with pytest.raises(EvssError, match="could not load the cached graph"):
        OnnxRuntimeBackbone(eager, threads=1, cache=tmp_path)(image)
    assert not files[0].exists()


def test_segmenter_with_the_onnxruntime_backend_gives_the_eager_labels(tmp_path, lite0_small, monkeypatch):
    need_module("onnxruntime")
    need_module("onnxscript")
    from conftest import panning_clip
    frames = panning_clip(4, 64, 96)
    eager = [r.labels for r in VideoSegmenter(lite0_small, config=SegmenterConfig(mode="per_frame")).segment(frames)]
    monkeypatch.setenv("EVSS_CACHE", str(tmp_path))
    model = with_backend(lite0_small, "onnxruntime", device=torch.device("cpu"), dtype=torch.float32, threads=1)
    assert isinstance(model.backbone, OnnxRuntimeBackbone)
    fast = [r.labels for r in VideoSegmenter(model, config=SegmenterConfig(mode="per_frame")).segment(frames)]
    agree = sum((a == b).mean() for a, b in zip(eager, fast)) / len(frames)
    assert agree > 0.999  # float rounding may flip a tie here and there, nothing more


def test_onnxruntime_backend_refuses_cuda_and_half(lite0_small):
    with pytest.raises(EvssError, match="float32 on the CPU"):
        with_backend(lite0_small, "onnxruntime", device=torch.device("cuda"), dtype=torch.float32)
    with pytest.raises(EvssError, match="float32 on the CPU"):
        with_backend(lite0_small, "onnxruntime", device=torch.device("cpu"), dtype=torch.float16)
    with pytest.raises(EvssError, match="not one of"):
        with_backend(lite0_small, "tensorrt", device=torch.device("cpu"), dtype=torch.float32)


def test_segment_command_runs_the_onnxruntime_backend(tmp_path, tiny_weights, monkeypatch, capsys):
    need_module("onnxruntime")
    need_module("onnxscript")
    from PIL import Image

    from conftest import panning_clip
    from evss.cli import main
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(panning_clip(3, 48, 64)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    monkeypatch.setenv("EVSS_CACHE", str(tmp_path / "cache"))
    labels = {}
    for backend in ("torch", "onnxruntime"):
        rc = main(["segment", str(folder), "-o", str(tmp_path / f"{backend}.mp4"), "--weights", str(tiny_weights),
                   "--backend", backend, "--keyframe-interval", "1", "--save-labels", str(tmp_path / backend),
                   "--threads", "1"])
        assert rc == 0, capsys.readouterr().err
        labels[backend] = [Image.open(p) for p in sorted((tmp_path / backend).glob("*.png"))]
    assert "backend onnxruntime" in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    import numpy as np
    agree = np.mean([(np.asarray(a) == np.asarray(b)).mean() for a, b in zip(labels["torch"], labels["onnxruntime"])])
    assert agree > 0.999
