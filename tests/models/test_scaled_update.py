"""The keyframe-network update branch (evss.models.scaled_update) behind CoNet's interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evss.checkpoint import load_model, save_model
from evss.config import apply_overrides, build_model, preset
from evss.errors import ConfigError
from evss.models.scaled_update import ScaledKeyframeUpdate
from evss.segmenter import SegmenterConfig, VideoSegmenter


def _config(scale: float = 0.5):
    return apply_overrides(preset("lite0"), {"correction.update": "keyframe", "correction.update_scale": scale})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(_config())
    m.correction.init_from(m.backbone)
    return m.eval()


def test_untrained_head_averages_the_scaled_network_and_the_warped_features(model):
    corr = model.correction
    assert isinstance(corr, ScaledKeyframeUpdate)
    image = torch.rand(1, 3, 70, 130)  # not a multiple of 32: the scaled frame is rounded, the grid is not
    warped = torch.randn(1, 11, 18, 33)  # (N, C, ceil(H/4), ceil(W/4))
    with torch.no_grad():
        updated, edge = corr(image, warped)
        _, small_logits = corr._scaled(image)
    expected = 0.5 * (torch.nn.functional.interpolate(small_logits, size=(18, 33), mode="bilinear",
                                                      align_corners=False) + warped)
    assert updated.shape == (1, 11, 18, 33) and edge.shape == (1, 1, 18, 33)
    torch.testing.assert_close(updated, expected, atol=1e-5, rtol=1e-5)
    prob = corr.edge_probability(edge)
    assert float(prob.min()) >= 0 and float(prob.max()) <= 1


def test_init_from_copies_the_keyframe_network_and_training_keeps_its_statistics(model):
    m = build_model(_config())
    assert not torch.equal(m.correction.net.logits.weight, m.backbone.logits.weight)
    m.correction.init_from(m.backbone)
    for (name, a), (_, b) in zip(m.correction.net.state_dict().items(), m.backbone.state_dict().items()):
        assert torch.equal(a, b), name
    m.train()
    assert not m.correction.net.training  # BatchNorm statistics stay the keyframe network's
    assert m.correction.refine.training and m.correction.edge.training
    # ... while its decoder learns; the encoder only when asked (update_train_encoder)
    image, warped = torch.rand(2, 3, 64, 96), torch.randn(2, 11, 16, 24)
    updated, edge = m.correction(image, warped)
    (updated.square().mean() + edge.mean()).backward()
    assert all(p.grad is None for p in m.correction.net.encoder.parameters())
    assert all(p.grad is not None for p in m.correction.net.up4.parameters())
    tuned = build_model(apply_overrides(_config(), {"correction.update_train_encoder": True})).train()
    updated, edge = tuned.correction(image, warped)
    (updated.square().mean() + edge.mean()).backward()
    grads = [p.grad for p in tuned.correction.net.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_prepare_inference_folds_every_batchnorm_and_keeps_the_outputs():
    torch.manual_seed(1)
    m = build_model(_config())
    m.correction.init_from(m.backbone)
    for bn in m.correction.modules():  # non-trivial statistics, or folding would change nothing
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    m.eval()
    image, warped = torch.rand(1, 3, 64, 96), torch.randn(1, 11, 16, 24)
    with torch.no_grad():
        before = m.correction(image, warped)
        m.prepare_inference()
        after = m.correction(image, warped)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.correction.modules())
    for a, b in zip(before, after):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_config_checks():
    with pytest.raises(ConfigError, match="swiftnet"):
        build_model(apply_overrides(preset("light"), {"correction.update": "keyframe"}))
    with pytest.raises(ConfigError, match="update"):
        apply_overrides(preset("lite0"), {"correction.update": "bigger"})
    with pytest.raises(ConfigError, match="update_scale"):
        apply_overrides(preset("lite0"), {"correction.update_scale": 2.0})


def test_checkpoint_round_trip_and_streaming(tmp_path, model):
    path = tmp_path / "ku.safetensors"
    save_model(path, model, _config())
    # The update branch's frozen encoder is the keyframe network's: stored once, named twice.
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        stored = set(f.keys())
    encoder = [k for k in model.state_dict() if k.startswith("correction.net.encoder.")]
    assert encoder and not any(k in stored for k in encoder if model.state_dict()[k].numel() >= 256)
    loaded, config = load_model(path)
    assert config.correction.update == "keyframe" and config.correction.update_scale == 0.5
    assert isinstance(loaded.correction, ScaledKeyframeUpdate)
    for (name, a), (_, b) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name
    seg = VideoSegmenter(loaded, config=SegmenterConfig(keyframe_interval=3), return_maps=True)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (60, 90, 3), dtype=np.uint8) for _ in range(4)]
    results = list(seg.segment(frames))
    assert [r.labels.shape for r in results] == [(60, 90)] * 4
    assert seg.model.correction.net.channels_last  # prepared for inference like the keyframe network


def test_onnx_export_matches_pytorch(model, tmp_path):
    """The scaled (antialiased) resize and the inner SwiftNet survive ONNX export."""
    from conftest import need_module
    from evss.apps.export import check_onnx, export_onnx
    need_module("onnxruntime")
    need_module("onnxscript")
    paths = export_onnx(model, tmp_path, height=64, width=96, flow_input=True)
    report = check_onnx(model, paths, height=64, width=96, flow_input=True)
    assert report["non_keyframe"]["labels_mismatch"] < 1e-3
    assert report["non_keyframe"]["merged_max_abs_diff"] < 1e-3
