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
