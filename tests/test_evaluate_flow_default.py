"""`evss eval`: the rows without a [source] run with the flow the weights' CoNet was trained with."""

from __future__ import annotations

import dataclasses
import json

from evss.checkpoint import load_model, save_model
from evss.cli import main


def test_plain_rows_use_the_checkpoints_flow_source(tmp_path, tiny_weights):
    model, config = load_model(tiny_weights)
    dis = save_model(tmp_path / "dis.safetensors", model, dataclasses.replace(config, flow_source="dis"))
    common = ["--data", "synthdrive", "--clips", "1", "--frames", "6", "--size", "64x128", "--intervals", "2",
              "--panels", "0", "--costs-size", "", "--tc-flow", "none", "--threads", "1"]
    assert main(["eval", "--weights", str(dis), "--flow-sources", "dis", "--out", str(tmp_path / "a"), *common]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    rows = report["methods"]
    assert report["flow_of_plain_rows"] == "dis"
    for mode in ("evss", "warp_only"):
        assert rows[mode]["intervals"]["2"]["miou"] == rows[f"{mode}[dis]"]["intervals"]["2"]["miou"]
    assert main(["eval", "--weights", str(tiny_weights), "--flow-sources", "dis", "--out", str(tmp_path / "b"),
                 *common]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["flow_of_plain_rows"] == "learned"
    assert report["methods"]["warp_only"]["intervals"]["2"]["miou"] != \
        report["methods"]["warp_only[dis]"]["intervals"]["2"]["miou"]


def test_mv_rows_are_fed_the_codec_vectors(tmp_path, tiny_weights, monkeypatch):
    """--flow-sources mv on frames that are not a video file: the frames are encoded, and every step
    of the mv rows gets its frame's motion field (before, the rows silently warped with zero flow)."""
    import numpy as np

    from evss.flow_sources import MVFlow
    fed = []
    feed = MVFlow.feed
    monkeypatch.setattr(MVFlow, "feed", lambda self, m: (fed.append(m), feed(self, m))[1])
    common = ["--data", "synthdrive", "--clips", "1", "--frames", "6", "--size", "128x256", "--intervals", "2",
              "--panels", "0", "--costs-size", "", "--tc-flow", "none", "--threads", "1"]
    assert main(["eval", "--weights", str(tiny_weights), "--flow-sources", "mv", "--methods", "warp_only",
                 "--out", str(tmp_path / "a"), *common]) == 0
    moving = [m for m in fed if m is not None and np.abs(m).max() > 0.5]
    assert len(fed) >= 8 and len(moving) >= len(fed) // 2  # two rows (warp_only[mv], evss[mv]) x 4 runs x 3 steps
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert set(report["methods"]) == {"warp_only", "warp_only[mv]", "evss[mv]"}
