"""`evss bench`: every part and stream timed, with each flow source."""

from __future__ import annotations

import json

import pytest
import torch

from evss.cli import main
from evss.flow_sources import FLOW_SOURCES


@pytest.fixture
def keep_threads():
    """`--threads` sets torch's global thread count: put it back for the tests after."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_bench_times_every_flow_source(tmp_path, capsys, keep_threads, tiny_weights):
    weights = tiny_weights
    assert main(["bench", "--weights", str(weights), "--size", "64x128", "--frames", "6", "--runs", "1",
                 "--repeats", "1", "--threads", "1", "--device", "cpu", "--json", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert set(res["streams"]) == {"per_frame", *(f"{m}_{f}" for m in ("evss", "warp_only") for f in FLOW_SOURCES)}
    assert {"keyframe", "flow_learned", "flow_dis", "flow_mv", "warp", "conet", "fusion"} <= set(res["parts_ms"])
    for name in (*FLOW_SOURCES, *(f"warp_only_{f}" for f in FLOW_SOURCES)):
        r = res["ratios"][name]
        assert r["non_keyframe_over_keyframe"] > 0 and r["mean_frame_over_per_frame"] > 0
    assert res["threads"] == 1 and res["size"] == [64, 128]
    assert "mean frame / per-frame" in capsys.readouterr().out


def test_bench_holds_every_backend_and_precision_in_one_run(tmp_path, capsys, keep_threads, tiny_weights,
                                                          openvino_cache, monkeypatch):
    """`--backend torch openvino --precision fp32 int8`: each pair timed in full, then side by side
    against eager torch; the first pair's figures stay at the top level, as a one-backend run writes them."""
    from conftest import need_module
    need_module("openvino")
    need_module("nncf")
    monkeypatch.setenv("EVSS_CACHE", str(openvino_cache))
    monkeypatch.delenv("EVSS_CALIBRATION", raising=False)
    assert main(["bench", "--weights", str(tiny_weights), "--size", "64x96", "--frames", "4", "--runs", "1",
                 "--repeats", "1", "--threads", "1", "--device", "cpu", "--flow", "dis", "--backend", "torch",
                 "openvino", "--precision", "fp32", "int8", "--json", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert list(res["backends"]) == ["torch", "openvino", "openvino-int8"]
    assert res["backend"] == "torch" and res["precision"] == "fp32"
    assert res["parts_ms"] == res["backends"]["torch"]["parts_ms"] and res["parts_ms"]["keyframe"] > 0
    assert res["backends"]["openvino-int8"]["precision"] == "int8"
    comparison = res["comparison"]
    assert comparison["torch"]["keyframe_speedup"] == 1.0 and comparison["torch"]["non_keyframe_speedup_dis"] == 1.0
    for name in ("openvino", "openvino-int8"):
        row = comparison[name]
        assert row["keyframe_speedup"] > 0 and row["non_keyframe_speedup_dis"] > 0 and row["non_keyframe_ms_dis"] > 0
        assert set(row["first_call_s"]) == {"keyframe", "flow_learned", "conet"}
    out = capsys.readouterr().out
    assert "### openvino-int8" in out and "| openvino-int8 |" in out and "EVSS non-keyframe ms, dis | x torch" in out


def test_bench_refuses_int8_without_openvino(capsys):
    assert main(["bench", "--preset", "tiny", "--size", "64x96", "--precision", "int8"]) == 2
    assert "int8 needs --backend openvino" in capsys.readouterr().err
