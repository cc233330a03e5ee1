"""The commands share their parts instead of copying them: the non-keyframe merge
(distortion.merge), the exported labels and weights resolution (checkpoint.load_weights). The
evaluation's x4 upsample (upsample4) and key=value overrides (config.parse_override) are tested in
tests/evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evss.apps import bench as bench_app
from evss.apps.export import keyframe_graph, non_keyframe_graph
from evss.checkpoint import load_weights
from evss.evaluation import costs as costs_module
from evss.models import distortion


def counting(monkeypatch, module):
    calls = []

    def merge(*args, **kwargs):
        calls.append(1)
        return distortion.merge(*args, **kwargs)

    monkeypatch.setattr(module, "merge", merge)
    return calls


def test_the_cost_table_and_the_bench_time_the_one_merge(tiny_model, monkeypatch):
    calls = counting(monkeypatch, costs_module)
    costs = costs_module.component_costs(tiny_model, 64, 128, runs=1)
    assert set(costs) == {"backbone", "flow", "warp", "conet", "fusion"} and costs["fusion"]["gflops"] >= 0
    assert len(calls) == 2  # counted once, timed once
    calls = counting(monkeypatch, bench_app)
    res = bench_app.bench(tiny_model, size=(64, 128), device=torch.device("cpu"), flows=["learned"], interval=2,
                          frames=2, runs=1, warmup=0, repeats=1)
    assert res["parts_ms"]["fusion"] > 0 and len(calls) == 1


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
