import dataclasses

import torch

from evss.config import build_model, preset


def _pair():
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 128), torch.rand(2, 3, 64, 128)


def test_output_structure(tiny_model):
    key, cur = _pair()
    out = tiny_model(key, cur)
    assert out.key_logits.shape == out.warped_logits.shape == out.merged_logits.shape == (2, 11, 16, 32)
    assert out.flow.shape == (2, 2, 16, 32)
    for m in (out.edge_map, out.coarse_map, out.fine_map):
        assert m.shape == (2, 1, 16, 32) and m.min() >= 0 and m.max() <= 1
    assert set(out.coarse_map.unique().tolist()) <= {0.0, 1.0}


def test_gradients_reach_flow_and_conet_not_backbone():
    model = build_model(preset("tiny")).train()
    key, cur = _pair()
    out = model(key, cur)
    (out.merged_logits.square().mean() + out.warped_logits.square().mean() + out.edge_map.mean()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.flow.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.correction.parameters())
    assert not model.backbone.training  # frozen BN statistics


def test_flow_fixed_ablation():
    cfg = dataclasses.replace(preset("tiny"), freeze_flow=True)
    model = build_model(cfg).train()
    out = model(*_pair())
    out.merged_logits.square().mean().backward()
    assert all(p.grad is None for p in model.flow.parameters()) and not model.flow.training


def test_distortion_modes_change_the_merge():
    torch.manual_seed(0)
    base = preset("tiny")
    key, cur = _pair()
    outs = {}
    for mode in ("fine", "coarse", "edge"):
        model = build_model(dataclasses.replace(base, distortion=dataclasses.replace(base.distortion, mode=mode)))
        torch.manual_seed(0)
        config = dataclasses.replace(base, distortion=dataclasses.replace(base.distortion, mode=mode))
        model = build_model(config).eval()
        with torch.no_grad():
            outs[mode] = model(key, cur)
    assert torch.equal(outs["coarse"].fine_map, outs["coarse"].coarse_map)
    assert torch.equal(outs["edge"].fine_map, outs["edge"].edge_map)
    f = outs["fine"]
    assert torch.allclose(f.fine_map, 0.5 * f.coarse_map + 0.5 * f.edge_map)
    assert torch.allclose(f.merged_logits, (1 - f.fine_map) * f.warped_logits + f.fine_map * f.updated_logits)
