"""evss.evaluation from Python: the protocol, its rows and its report without the command line."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest
import torch

import evss.evaluation as ev
from evss.config import preset


def test_the_library_evaluates_a_tiny_model_without_argparse(tiny_model, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation library touched argparse")

    monkeypatch.setattr(argparse.ArgumentParser, "__init__", refuse)
    monkeypatch.setattr(argparse.Namespace, "__init__", refuse)
    data = ev.eval_source(ev.EvalData("synthdrive", clips=1, frames=4, size=(64, 128), seed=3))
    rows = ev.method_rows(tiny_model, preset("tiny"), torch.device("cpu"), flow_sources=["dis"],
                          variants=["coarse=distortion.mode=coarse"], label_space=data.label_space)
    assert [m.name for m in rows] == ["per_frame", "warp_only", "evss", "warp_only[dis]", "evss[dis]", "coarse"]
    report = ev.evaluate(rows, data.source, num_classes=11, intervals=(1, 2), tc_interval=2, tc_flow=data.gt_flow,
                         tc_flow_name="gt", panel_samples=1, progress=False)
    assert report["num_sequences"] == 1 and report["tc_flow"] == "gt" and len(report["panels"]) == 1
    for name, m in report["methods"].items():
        assert set(m["intervals"]) == {"1", "2"} and 0 <= m["intervals"]["2"]["miou"] <= 1, name
        assert 0 <= m["temporal_consistency"] <= 1 and len(m["tc_per_sequence"]) == 1, name
        assert len(m["tc_by_position"]) == 2, name
    assert report["methods"]["evss"]["intervals"]["2"]["corrected_labels"] > 0
    md = ev.write_report(report, tmp_path, label_space=data.label_space,
                         costs={**ev.component_costs(tiny_model, 64, 128, runs=1), "size": "64x128"})
    saved = json.loads((tmp_path / "report.json").read_text())
    assert "panels" not in saved and set(saved["component_costs"]) >= {"backbone", "fusion", "size"}
    assert "| coarse |" in md.read_text() and (tmp_path / "panels.png").exists()


@pytest.mark.parametrize("module", sorted(Path(ev.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_no_module_of_the_library_imports_argparse(module):
    tree = ast.parse(module.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "argparse" not in names
