"""SwiftNet keyframe network (preset lite0): the backbone contract, configs, inference path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evss.checkpoint import load_model, save_model
from evss.config import EVSSConfig, build_model, config_from_json, from_dict, preset, to_dict
from evss.errors import ConfigError
from evss.models.backbone import CSRNet, SwiftNet, prepare_inference
from evss.segmenter import SegmenterConfig, VideoSegmenter


def _vivid(net: SwiftNet) -> SwiftNet:
    """Non-trivial BN statistics and weights, so that outputs vary and folding has work to do."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("size", [(64, 128), (70, 130), (33, 47)])
def test_contract_logits_at_a_quarter(size):
    net = SwiftNet(num_classes=11, decoder_channels=16).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 11, -(-size[0] // 4), -(-size[1] // 4))
    assert net.output_stride == 4 and net.num_classes == 11
    assert out.is_contiguous()


def test_prepare_inference_equals_the_plain_path():
    net = _vivid(SwiftNet(num_classes=5, decoder_channels=24))
    x = torch.rand(1, 3, 72, 104)
    with torch.no_grad():
        plain = net(x).clone()
        prepare_inference(net)
        fast = net(x)
    assert net.channels_last
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert torch.allclose(plain, fast, rtol=1e-4, atol=1e-4), (plain - fast).abs().max()
    assert torch.equal(plain.argmax(1), fast.argmax(1)) or (plain.argmax(1) != fast.argmax(1)).float().mean() < 1e-3


def test_prepare_inference_leaves_csrnet_alone():
    net = CSRNet(num_classes=11, width=0.125).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prepare_inference(net)
    after = net.state_dict()
    assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)


def test_lite0_preset_builds_and_round_trips(tmp_path):
    config = preset("lite0")
    assert config.backbone.arch == "swiftnet" and config.backbone.encoder == "lite0"
    assert config.label_space == "camvid" and config.num_classes == 11
    assert from_dict(EVSSConfig, to_dict(config)) == config
    model = build_model(config).eval()
    assert isinstance(model.backbone, SwiftNet)
    path = save_model(tmp_path / "m.safetensors", model, config, half=True)
    loaded, loaded_config = load_model(path)
    assert loaded_config == config and isinstance(loaded.backbone, SwiftNet)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(loaded.backbone(x), model.backbone(x).half().float(), atol=0.05)


def test_old_configs_without_arch_are_csrnet():
    data = to_dict(preset("light"))
    for key in ("arch", "encoder", "decoder_channels"):
        del data["backbone"][key]
    config = from_dict(EVSSConfig, data)
    assert config.backbone.arch == "csrnet" and isinstance(build_model(config).backbone, CSRNet)


def test_bad_backbone_settings_are_config_errors():
    with pytest.raises(ConfigError, match="backbone.arch 'resnet'"):
        config_from_json({"preset": "lite0", "backbone": {"arch": "resnet"}})
    with pytest.raises(ConfigError, match="encoder"):
        config_from_json({"preset": "lite0", "backbone": {"encoder": "b7"}})


def test_streaming_with_the_swiftnet_backbone():
    """Every mode of the segmenter runs on the new backbone (same contract as CSRNet)."""
    config = dataclasses.replace(preset("lite0"), backbone=dataclasses.replace(preset("lite0").backbone,
                                                                                decoder_channels=16))
    model = build_model(config).eval()
    frames = [np.random.default_rng(i).integers(0, 255, (64, 96, 3), dtype=np.uint8) for i in range(4)]
    for mode in ("evss", "warp_only", "per_frame"):
        seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=3, mode=mode))
        labels = [r.labels for r in seg.segment(frames)]
        assert len(labels) == 4 and all(lab.shape == (64, 96) for lab in labels)
