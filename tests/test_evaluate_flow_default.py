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
