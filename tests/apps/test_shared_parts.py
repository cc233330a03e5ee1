"""The commands share their parts instead of copying them: the non-keyframe merge
(distortion.merge), the x4 upsample (upsample4), key=value overrides (config.parse_override) and
weights resolution (checkpoint.load_weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evss.apps import bench as bench_app
from evss.apps import evaluate as evaluate_app
from evss.apps._eval_data import estimated_flow
from evss.apps.export import keyframe_graph, non_keyframe_graph
from evss.checkpoint import load_weights
from evss.errors import ConfigError
from evss.models import distortion


def counting(monkeypatch, module):
    calls = []

    def merge(*args, **kwargs):
        calls.append(1)
        return distortion.merge(*args, **kwargs)

    monkeypatch.setattr(module, "merge", merge)
    return calls


def test_the_cost_table_and_the_bench_time_the_one_merge(tiny_model, monkeypatch):
    calls = counting(monkeypatch, evaluate_app)
    costs = evaluate_app.component_costs(tiny_model, 64, 128, runs=1)
    assert set(costs) == {"backbone", "flow", "warp", "conet", "fusion"} and costs["fusion"]["gflops"] >= 0
    assert len(calls) == 2  # counted once, timed once
    calls = counting(monkeypatch, bench_app)
    res = bench_app.bench(tiny_model, size=(64, 128), device=torch.device("cpu"), flows=["learned"], interval=2,
                          frames=2, runs=1, warmup=0, repeats=1)
    assert res["parts_ms"]["fusion"] > 0 and len(calls) == 1


def test_variants_read_overrides_like_every_other_key_value_flag(tiny_model):
    from evss.config import preset
    config = preset("tiny")
    name, model, seg = evaluate_app.variant(tiny_model, config,
                                            "soft=distortion.w_f=0.3,distortion.mode=coarse,"
                                            "segmenter.coarse_reference=keyframe")
    assert name == "soft" and model.distortion.w_f == 0.3 and model.distortion.mode == "coarse"
    assert seg == (("coarse_reference", "keyframe"),) and model.backbone is tiny_model.backbone
    with pytest.raises(ConfigError, match="expected NAME=KEY=VALUE"):
        evaluate_app.variant(tiny_model, config, "nothing")
    with pytest.raises(ConfigError, match="--variant x distortion.nope=1: distortion has no key 'nope'"):
        evaluate_app.variant(tiny_model, config, "x=distortion.nope=1")
    with pytest.raises(ConfigError, match="only distortion.\\* and segmenter.\\* can change"):
        evaluate_app.variant(tiny_model, config, "x=correction.width=0.5")


class Source:
    def __init__(self, frames):
        self.frames = frames

    def frame(self, s, t):
        return self.frames[t]


def test_tc_flow_is_the_quarter_flow_upsampled_by_four():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    q = torch.randn(1, 2, 16, 24)
    model = type("Model", (), {"flow": staticmethod(lambda a, b: q)})  # a fixed 1/4-grid field
    full, valid = estimated_flow("learned", model, Source(frames), torch.device("cpu"))(0, 1)
    expected = F.interpolate(q, scale_factor=4, mode="bilinear", align_corners=False)[0, :, :64, :96] * 4
    assert valid is None and np.allclose(full, expected.numpy(), atol=1e-6)


def test_exported_labels_are_the_upsampled_argmax(tiny_model):
    image = torch.rand(1, 3, 64, 128)
    feat, pred, labels = keyframe_graph(tiny_model)(image)
    ref = F.interpolate(feat, scale_factor=4.0, mode="bilinear", align_corners=False).argmax(dim=1)
    assert torch.equal(labels, ref) and torch.equal(pred, feat.argmax(dim=1))
    _, merged, _, _, labels = non_keyframe_graph(tiny_model)(image, image, feat, pred)
    assert torch.equal(labels, F.interpolate(merged, scale_factor=4.0, mode="bilinear",
                                             align_corners=False).argmax(dim=1))


def test_weights_resolve_by_name_path_or_default(tiny_weights):
    notes = []
    model, config, described, trained = load_weights(None, default="no_such_builtin", notice=notes.append)
    assert not trained and described == "untrained light preset" and config.name == "light"
    assert "'no_such_builtin' are not shipped" in notes[0]
    model, config, described, trained = load_weights(str(tiny_weights), notice=notes.append)
    assert trained and described == str(tiny_weights) and config.num_classes == 11 and len(notes) == 1


def test_variant_and_compare_rows_use_the_flow_their_conet_was_trained_with(tiny_model, tmp_path):
    """A --variant row is the same CoNet as the plain evss row, so it gets the same flow; a
    --compare row gets the flow its own checkpoint names. (They once fell back to the learned
    FlowNet, so test-time map variants and trained ablations were scored with another flow than
    the evss and warp-only rows beside them.)"""
    import argparse
    import dataclasses

    from evss.checkpoint import save_model
    from evss.config import preset
    from evss.flow_sources import DISFlow

    dis_config = dataclasses.replace(preset("tiny"), flow_source="dis")
    save_model(tmp_path / "dis.safetensors", tiny_model, dis_config)
    save_model(tmp_path / "learned.safetensors", tiny_model, preset("tiny"))
    args = argparse.Namespace(methods="warp_only,evss", flow_sources="", variant=["soft=distortion.w_f=0.3"],
                              compare=[f"d={tmp_path / 'dis.safetensors'}", f"l={tmp_path / 'learned.safetensors'}"],
                              propagation="chained")
    rows = {m.name: m for m in evaluate_app._methods(args, tiny_model, dis_config, torch.device("cpu"), "camvid")}
    assert set(rows) == {"warp_only", "evss", "soft", "d", "l"}
    # --propagation reaches every row's segmenter, the variants' too
    assert all(evaluate_app._segmenter(m, 5, "cpu").config.propagation == "chained" for m in rows.values())
    for name in ("warp_only", "evss", "soft", "d"):
        assert isinstance(rows[name].flow, DISFlow), name
    assert rows["l"].flow is None  # the learned FlowNet of that checkpoint
    rows = {m.name: m for m in evaluate_app._methods(args, tiny_model, preset("tiny"), torch.device("cpu"), "camvid")}
    assert rows["soft"].flow is None and rows["evss"].flow is None and isinstance(rows["d"].flow, DISFlow)
