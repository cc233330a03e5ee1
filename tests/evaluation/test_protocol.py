"""The evaluation protocol (evss.evaluation.protocol): the interval runs, TC (Eq. 8) per clip and by
place in the keyframe interval, corrected labels (Eq. 9), codec vectors for mv rows."""

import json

import numpy as np
import pytest
from tiny_sources import FakeSource, JumpSource, PanSource, SingleFrames

from conftest import algorithm1_reference, colour_model
from evss.cli import main
from evss.evaluation import Method, evaluate
from evss.evaluation.protocol import _starts
from evss.label_sets import camvid_sets
from evss.metrics import ConfusionMatrix
from evss.segmenter import SegmenterConfig, VideoSegmenter


def test_interval_protocol_places_the_keyframe_d_frames_before():
    runs = _starts([20], [1, 3, 9])
    assert dict(runs) == {19: [(20, 1)], 17: [(20, 3)], 11: [(20, 9)]}
    runs = _starts([0, 1, 2, 3], [1, 2])  # all frames labelled: one run per keyframe
    assert dict(runs) == {0: [(1, 1), (2, 2)], 1: [(2, 1), (3, 2)], 2: [(3, 1)]}


def test_static_clip_has_perfect_temporal_consistency(tiny_model):
    src = FakeSource(n=1, length=5, static=True)
    zero = lambda s, t: (np.zeros((2, 64, 96), np.float32), None)
    rep = evaluate([Method("per_frame", tiny_model, "per_frame")], src, num_classes=11, intervals=(1, 2),
                   tc_flow=zero, progress=False)
    assert rep["methods"]["per_frame"]["temporal_consistency"] == pytest.approx(1.0)


def test_temporal_consistency_warps_the_previous_prediction_along_the_flow():
    """Eq. (8) on a 4-pixel pan with its true flow: the colour model's labels move exactly with the
    image, so away from the rims TC is 1; the same clip scored with zero flow is far from 1."""
    src = PanSource(length=5)
    pan = np.zeros((2, 64, 96), np.float32)
    pan[0] = 4.0  # backward flow: pixel x of frame t was at x + 4 in frame t - 1
    valid = np.zeros((64, 96), bool)
    valid[:, 2:96 - 8] = True  # the upsampling rim on the left, new content and its rim on the right
    methods = [Method("per_frame", colour_model(), "per_frame")]
    true = evaluate(methods, src, num_classes=11, intervals=(1,), tc_flow=lambda s, t: (pan, valid), progress=False)
    zero = evaluate(methods, src, num_classes=11, intervals=(1,), tc_flow=lambda s, t: (0 * pan, valid),
                    progress=False)
    assert true["methods"]["per_frame"]["temporal_consistency"] == pytest.approx(1.0)
    assert zero["methods"]["per_frame"]["temporal_consistency"] < 0.9


def test_temporal_consistency_by_place_in_the_keyframe_interval():
    """The colour model's labels follow the image, so only the pairs that span a cut disagree: with
    interval 5 those are t = 5 and 10, both at place 0; every other place scores 1. Also one TC
    per clip, whose mean is the reported TC."""
    still = np.zeros((2, 64, 96), np.float32)
    rep = evaluate([Method("per_frame", colour_model(), "per_frame")], JumpSource(n=2), num_classes=11,
                   intervals=(1,), tc_interval=5, tc_flow=lambda s, t: (still, None), progress=False)
    m = rep["methods"]["per_frame"]
    by_place = m["tc_by_position"]
    assert len(by_place) == 5 and by_place[0] < 0.9
    assert by_place[1:] == pytest.approx([1.0] * 4)
    assert len(m["tc_per_sequence"]) == 2 and np.mean(m["tc_per_sequence"]) == pytest.approx(m["temporal_consistency"])
    assert by_place[0] < m["temporal_consistency"] < 1.0  # 2 of 10 pairs disagree


def test_corrected_labels_are_those_the_correction_changed(tiny_model):
    """Eq. (9) per interval: the mean over scored frames of the share of pixels whose final label
    differs from the warped one, each run starting at its keyframe t - d (Algorithm 1 by hand)."""
    src = PanSource(length=5)
    rep = evaluate([Method("evss", tiny_model, "evss")], src, num_classes=11, intervals=(1, 2), progress=False)
    for d in (1, 2):
        expected = []
        for t in range(d, 5):
            last = algorithm1_reference(tiny_model, src.frames[t - d:t + 1], 100, propagate="composed")[-1]
            expected.append(float(np.mean(last["labels"] != last["warped"])))
        got = rep["methods"]["evss"]["intervals"][str(d)]["corrected_labels"]
        assert got == pytest.approx(float(np.mean(expected)), abs=1e-9) and got > 0.05, (d, got, expected)


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


def test_single_frames_are_scored_per_frame_at_interval_1(tiny_streets_model):
    """Each one-frame sequence is its own keyframe: the per-frame row at interval 1 counts every frame
    (the confusion matrix of the backbone's labels on each), and asking for more is refused."""
    src = SingleFrames()
    rep = evaluate([Method("per_frame", tiny_streets_model, "per_frame", label_space="cityscapes")], src,
                   num_classes=19, intervals=(1,), target="single", progress=False)
    seg = VideoSegmenter(tiny_streets_model, config=SegmenterConfig(mode="per_frame"))
    cm = ConfusionMatrix(19)
    for s in range(3):
        cm.update(seg.step(src.frame(s, 0)).labels, src.label(s, 0))
    got = rep["methods"]["per_frame"]["intervals"]["1"]
    assert rep["target"] == "single" and got["miou"] == pytest.approx(cm.compute()["miou"])
    assert len(got["per_class_iou"]) == 19 and rep["methods"]["per_frame"]["temporal_consistency"] is None
    with pytest.raises(ValueError, match="target 'single' .* per_frame rows at interval 1 only"):
        evaluate([Method("evss", tiny_streets_model, "evss")], src, num_classes=19, intervals=(1,), target="single")
    with pytest.raises(ValueError, match="at intervals \\[1, 2\\]"):
        evaluate([Method("per_frame", tiny_streets_model, "per_frame")], src, num_classes=19, intervals=(1, 2),
                 target="single")


def test_a_19_class_model_is_scored_on_camvid_labels_through_the_sets(tiny_streets_model):
    """Every row in the data's 11 classes: per frame, the argmax of the set-summed probabilities (the
    segmenter's label_sets) against the 11-class labels; propagated rows score too."""
    src = FakeSource(n=1, length=4)  # labels 0..3, CamVid ids
    sets = camvid_sets()
    rows = [Method(m, tiny_streets_model, m, label_sets=sets) for m in ("per_frame", "warp_only", "evss")]
    rep = evaluate(rows, src, num_classes=11, intervals=(1, 3), progress=False)
    seg = VideoSegmenter(tiny_streets_model, config=SegmenterConfig(mode="per_frame"), label_sets=sets)
    cm = ConfusionMatrix(11)
    for t in (1, 2, 3):  # the frames with a frame before them
        cm.update(seg.step(src.frame(0, t)).labels, src.label(0, t))
    assert rep["methods"]["per_frame"]["intervals"]["1"]["miou"] == pytest.approx(cm.compute()["miou"])
    for m in rep["methods"].values():
        assert all(len(v["per_class_iou"]) == 11 for v in m["intervals"].values())
