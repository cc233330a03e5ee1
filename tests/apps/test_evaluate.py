"""`evss eval` flags that reach the runtime (--backend and --precision) and the data: single Cityscapes
frames, a 19-class model on CamVid-11 labels."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, ROOT, need_module, need_path
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


def test_eval_scores_single_cityscapes_frames_per_frame_in_19_classes(tmp_path, tiny_streets_weights, capsys):
    """--data cityscapes_pix2pix on the held-out list's first files: one per-frame row at interval 1,
    per-class IoU of the 19 classes in both reports, and a note saying what was scored."""
    root = need_path(DATA / "cityscapes_pix2pix", "shared Cityscapes pix2pix data")
    assert main(["eval", "--weights", str(tiny_streets_weights), "--data", "cityscapes_pix2pix", "--root", str(root),
                 "--holdout-list", str(ROOT / "recipes" / "cityscapes_heldout.txt"), "--max-sequences", "2",
                 "--costs-size", "", "--threads", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"] == "single" and report["num_sequences"] == 2 and list(report["methods"]) == ["per_frame"]
    row = report["methods"]["per_frame"]["intervals"]
    assert list(row) == ["1"] and len(row["1"]["per_class_iou"]) == 19 and 0 <= row["1"]["miou"] <= 1
    md = (tmp_path / "report.md").read_text()
    assert "2 single frames, each its own keyframe" in md and "| traffic light | traffic sign |" in md
    assert "2 single frames, scored per frame (keyframe interval 1)" in capsys.readouterr().err


@pytest.mark.parametrize("flags, needle", [
    (["--intervals", "1-3"], "--intervals 1,2,3: --data cityscapes_pix2pix holds single frames, scored per frame"),
    (["--methods", "per_frame,evss"], "drop --methods or pass --methods per_frame"),
    (["--flow-sources", "dis"], "--flow-sources adds propagated rows; drop it"),
])
def test_eval_refuses_propagation_on_single_frames_in_one_line(tmp_path, tiny_streets_weights, capsys, flags, needle):
    root = need_path(DATA / "cityscapes_pix2pix", "shared Cityscapes pix2pix data")
    assert main(["eval", "--weights", str(tiny_streets_weights), "--data", "cityscapes_pix2pix", "--root", str(root),
                 *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_eval_scores_a_19_class_model_on_camvid_labels_collapsed(tmp_path, tiny_streets_weights, tiny_weights, capsys):
    """SynthDrive is labelled in CamVid-11: a 19-class model's rows are scored collapsed by the label
    sets, and both reports say so; an 11-class model cannot be scored on 19-class labels."""
    common = ["--data", "synthdrive", "--clips", "1", "--frames", "3", "--size", "64x96", "--intervals", "1,2",
              "--panels", "1", "--tc-flow", "none", "--costs-size", "", "--threads", "1"]
    assert main(["eval", "--weights", str(tiny_streets_weights), *common, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["collapsed"]["model_classes"] == 19 and report["collapsed"]["scored_label_space"] == "camvid"
    assert all(len(m["intervals"]["2"]["per_class_iou"]) == 11 for m in report["methods"].values())
    assert "Collapsed: a 19-class cityscapes model scored on 11-class camvid labels" in (
        tmp_path / "report.md").read_text()
    assert "collapsed to its 11 classes by the label sets" in capsys.readouterr().err
    root = need_path(DATA / "cityscapes_pix2pix", "shared Cityscapes pix2pix data")
    assert main(["eval", "--weights", str(tiny_weights), "--data", "cityscapes_pix2pix", "--root", str(root),
                 "--out", str(tmp_path / "no")]) == 2
    assert "a model in the camvid label space cannot be scored on cityscapes labels" in capsys.readouterr().err


def test_eval_segments_at_the_weights_inference_size_and_the_flag_overrides_it(tmp_path, tiny_model, tiny_weights,
                                                                              capsys):
    """96x64 SynthDrive frames under weights whose inference size is 64: segmented at 64x42 and scored
    upsampled, as `evss segment` runs them; --inference-size full scores them at their own size."""
    import dataclasses

    from evss.checkpoint import save_model
    from evss.config import preset
    at64 = save_model(tmp_path / "at64.safetensors", tiny_model, dataclasses.replace(preset("tiny"), inference_size=64))
    common = ["--data", "synthdrive", "--clips", "1", "--frames", "3", "--size", "64x96", "--methods", "per_frame",
              "--intervals", "1", "--tc-flow", "none", "--costs-size", "", "--threads", "1"]

    def miou(weights, *flags):
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        assert main(["eval", "--weights", str(weights), *common, *flags, "--out", str(out)]) == 0
        return json.loads((out / "report.json").read_text())["methods"]["per_frame"]["intervals"]["1"]["miou"]

    own = miou(at64)
    assert "96x64 frames are segmented at 64x42 (longer side 64: the inference size of these weights)" in (
        capsys.readouterr().err)
    assert own == miou(tiny_weights, "--inference-size", "64")
    assert miou(at64, "--inference-size", "full") == miou(tiny_weights) != own
