"""The rows of an evaluation (evss.evaluation.variants): test-time variants, compared models and the
flow each row runs with."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from evss.checkpoint import load_model, save_model
from evss.cli import main
from evss.errors import ConfigError
from evss.evaluation import method_rows, variant
from evss.evaluation.protocol import _segmenter


def test_variants_read_overrides_like_every_other_key_value_flag(tiny_model):
    from evss.config import preset
    config = preset("tiny")
    name, model, seg = variant(tiny_model, config,
                               "soft=distortion.w_f=0.3,distortion.mode=coarse,"
                               "segmenter.coarse_reference=keyframe")
    assert name == "soft" and model.distortion.w_f == 0.3 and model.distortion.mode == "coarse"
    assert seg == (("coarse_reference", "keyframe"),) and model.backbone is tiny_model.backbone
    with pytest.raises(ConfigError, match="expected NAME=KEY=VALUE"):
        variant(tiny_model, config, "nothing")
    with pytest.raises(ConfigError, match="--variant x distortion.nope=1: distortion has no key 'nope'"):
        variant(tiny_model, config, "x=distortion.nope=1")
    with pytest.raises(ConfigError, match="only distortion.\\* and segmenter.\\* can change"):
        variant(tiny_model, config, "x=correction.width=0.5")


def test_variant_and_compare_rows_use_the_flow_their_conet_was_trained_with(tiny_model, tmp_path):
    """A --variant row is the same CoNet as the plain evss row, so it gets the same flow; a
    --compare row gets the flow its own checkpoint names. (They once fell back to the learned
    FlowNet, so test-time map variants and trained ablations were scored with another flow than
    the evss and warp-only rows beside them.)"""
    from evss.config import preset
    from evss.flow_sources import DISFlow

    dis_config = dataclasses.replace(preset("tiny"), flow_source="dis")
    save_model(tmp_path / "dis.safetensors", tiny_model, dis_config)
    save_model(tmp_path / "learned.safetensors", tiny_model, preset("tiny"))
    flags = {"modes": ["warp_only", "evss"], "flow_sources": [], "variants": ["soft=distortion.w_f=0.3"],
             "compare": [f"d={tmp_path / 'dis.safetensors'}", f"l={tmp_path / 'learned.safetensors'}"],
             "propagation": "chained", "label_space": "camvid"}
    rows = {m.name: m for m in method_rows(tiny_model, dis_config, torch.device("cpu"), **flags)}
    assert set(rows) == {"warp_only", "evss", "soft", "d", "l"}
    # --propagation reaches every row's segmenter, the variants' too
    assert all(_segmenter(m, 5, "cpu").config.propagation == "chained" for m in rows.values())
    for name in ("warp_only", "evss", "soft", "d"):
        assert isinstance(rows[name].flow, DISFlow), name
    assert rows["l"].flow is None  # the learned FlowNet of that checkpoint
    rows = {m.name: m for m in method_rows(tiny_model, preset("tiny"), torch.device("cpu"), **flags)}
    assert rows["soft"].flow is None and rows["evss"].flow is None and isinstance(rows["d"].flow, DISFlow)


def test_plain_rows_use_the_checkpoints_flow_source(tmp_path, tiny_weights):
    """`evss eval`: the rows without a [source] run with the flow the weights' CoNet was trained with."""
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
