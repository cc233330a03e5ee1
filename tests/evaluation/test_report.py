"""The report of an evaluation (evss.evaluation.report): report.json, report.md and the plots."""

import json

import numpy as np
from tiny_sources import FakeSource, JumpSource, SingleFrames

from conftest import colour_model
from evss.evaluation import Method, evaluate, write_report


def test_tiny_eval_writes_report_and_plots(tiny_model, tmp_path):
    src = FakeSource()
    zero = lambda s, t: (np.zeros((2, 64, 96), np.float32), None)
    methods = [Method(m, tiny_model, m) for m in ("per_frame", "warp_only", "evss")]
    rep = evaluate(methods, src, num_classes=11, intervals=(1, 2, 3), tc_flow=zero, tc_flow_name="zero",
                   panel_samples=2, progress=False)
    evss = rep["methods"]["evss"]["intervals"]
    assert set(evss) == {"1", "2", "3"} and all(0 <= v["miou"] <= 1 for v in evss.values())
    assert rep["methods"]["warp_only"]["intervals"]["2"]["corrected_labels"] == 0.0
    assert len(rep["panels"]) == 2
    # per-frame mIoU is the same whatever the interval of the row (it ignores keyframes)
    pf = rep["methods"]["per_frame"]["intervals"]
    md = write_report(rep, tmp_path, label_space="camvid", command="test")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["methods"]["evss"]["mode"] == "evss"
    for png in ("miou_vs_interval.png", "corrected_labels.png", "accuracy_vs_time.png", "panels.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert "| evss |" in md.read_text() and pf["1"]["miou"] >= 0


def test_report_shows_temporal_consistency_by_place(tmp_path):
    still = np.zeros((2, 64, 96), np.float32)
    rep = evaluate([Method("per_frame", colour_model(), "per_frame")], JumpSource(n=1), num_classes=11,
                   intervals=(1,), tc_interval=3, tc_flow=lambda s, t: (still, None), progress=False)
    md = write_report(rep, tmp_path, label_space="camvid", command="test").read_text()
    assert "by the pair's place in the keyframe interval (t mod 3)" in md
    row = next(line for line in md.splitlines() if line.startswith("| per_frame |") and line.count("|") == 5)
    place_1 = rep["methods"]["per_frame"]["tc_by_position"][1]
    assert row.split("|")[1:4] == [" per_frame ", " 100.00 ", f" {100 * place_1:.2f} "]
    assert (tmp_path / "tc_by_position.png").stat().st_size > 1000


def test_the_report_says_what_was_collapsed_and_what_single_frames_score(tiny_model, tiny_streets_model, tmp_path):
    rep = evaluate([Method("per_frame", tiny_model, "per_frame")], FakeSource(n=1, length=2), num_classes=11,
                   intervals=(1,), progress=False)
    md = write_report(rep, tmp_path / "c", label_space="camvid", model_space="cityscapes", command="t").read_text()
    saved = json.loads((tmp_path / "c" / "report.json").read_text())
    assert saved["collapsed"]["model_label_space"] == "cityscapes" and saved["collapsed"]["scored_classes"] == 11
    assert "Collapsed: a 19-class cityscapes model scored on 11-class camvid labels" in md
    assert "| method | Sky | Building |" in md  # per-class IoU in the scored (CamVid) classes
    rep = evaluate([Method("per_frame", tiny_streets_model, "per_frame")], SingleFrames(), num_classes=19,
                   intervals=(1,), target="single", progress=False)
    md = write_report(rep, tmp_path / "s", label_space="cityscapes", model_space="cityscapes", command="t").read_text()
    assert "3 single frames, each its own keyframe: per frame only" in md and "Corrected labels" not in md
    assert "| method | road | sidewalk | building |" in md
    assert "collapsed" not in json.loads((tmp_path / "s" / "report.json").read_text())
