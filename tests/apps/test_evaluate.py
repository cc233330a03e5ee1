"""`evss eval` flags that reach the runtime: --backend and --precision."""

from __future__ import annotations

import json

import pytest

from conftest import need_module
from evss.cli import main


def test_eval_runs_the_openvino_backend(tmp_path, tiny_weights, openvino_cache, monkeypatch):
    """Every row through OpenVINO, within rounding of torch's; the cost table keeps PyTorch's FLOPs."""
    need_module("openvino")
    monkeypatch.setenv("EVSS_CACHE", str(openvino_cache))
    common = ["--weights", str(tiny_weights), "--data", "synthdrive", "--clips", "1", "--frames", "5", "--size",
              "64x96", "--intervals", "2", "--panels", "0", "--tc-flow", "none", "--threads", "1"]
    reports = {}
    for backend in ("torch", "openvino"):
        assert main(["eval", *common, "--backend", backend, "--costs-size", "64x96",
                     "--out", str(tmp_path / backend)]) == 0
        reports[backend] = json.loads((tmp_path / backend / "report.json").read_text())
    got, want = reports["openvino"], reports["torch"]
    assert got["backend"] == "openvino" and got["precision"] == "fp32" and want["backend"] == "torch"
    for row in ("per_frame", "warp_only", "evss"):
        assert got["methods"][row]["intervals"]["2"]["miou"] == pytest.approx(
            want["methods"][row]["intervals"]["2"]["miou"], abs=0.01), row
    assert got["component_costs"]["backbone"]["gflops"] == pytest.approx(want["component_costs"]["backbone"]["gflops"])
    assert got["component_costs"]["conet"]["gflops"] > 0
