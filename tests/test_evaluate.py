import json

import numpy as np
import pytest

from conftest import algorithm1_reference, colour_model, panning_clip, smooth_frames
from evss.apps.evaluate import Method, _starts, evaluate
from evss.apps.report import write_report


class PanSource:
    """One clip of ``panning_clip`` (4 px per frame to the left), every frame labelled."""

    def __init__(self, length=5, h=64, w=96):
        self.frames = panning_clip(length, h, w)

    def num_sequences(self):
        return 1

    def sequence_length(self, s):
        return len(self.frames)

    def labelled_indices(self, s):
        return range(len(self.frames))

    def frame(self, s, t):
        return self.frames[t]

    def label(self, s, t):
        return (self.frames[t][:, :, 1] // 26).astype(np.uint8)  # any labels in 0..9


class FakeSource:
    """Two short panning sequences, every frame labelled."""

    def __init__(self, n=2, length=8, h=64, w=96, static=False):
        rng = np.random.default_rng(0)
        self.frames = []
        for _ in range(n):
            base = rng.integers(0, 256, (h, w + 2 * length, 3), dtype=np.uint8)
            self.frames.append([base[:, (0 if static else 2 * t):(0 if static else 2 * t) + w].copy() for t in range(length)])
        self.labels = [[(f[:, :, 0] // 64).astype(np.uint8) for f in seq] for seq in self.frames]

    def num_sequences(self):
        return len(self.frames)

    def sequence_length(self, s):
        return len(self.frames[s])

    def labelled_indices(self, s):
        return range(len(self.frames[s]))

    def frame(self, s, t):
        return self.frames[s][t]

    def label(self, s, t):
        return self.labels[s][t]


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


class JumpSource(PanSource):
    """Still shots that cut to another texture at t = 5 and t = 10; ``n`` such clips."""

    def __init__(self, n=2, h=64, w=96):
        shots = [smooth_frames(1, h, w, seed=k)[0] for k in range(3)]  # (h, w, 3) uint8 each
        self.frames = [shots[t // 5] for t in range(11)]
        self.n = n

    def num_sequences(self):
        return self.n


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


def test_report_shows_temporal_consistency_by_place(tmp_path):
    still = np.zeros((2, 64, 96), np.float32)
    rep = evaluate([Method("per_frame", colour_model(), "per_frame")], JumpSource(n=1), num_classes=11,
                   intervals=(1,), tc_interval=3, tc_flow=lambda s, t: (still, None), progress=False)
    md = write_report(rep, tmp_path, label_space="camvid", command="test").read_text()
    assert "by the pair's place in the keyframe interval (t mod 3)" in md
    row = next(line for line in md.splitlines() if line.startswith("| per_frame |") and line.count("|") == 5)
    assert row.split("|")[1:4] == [" per_frame ", " 100.00 ", f" {100 * rep['methods']['per_frame']['tc_by_position'][1]:.2f} "]
    assert (tmp_path / "tc_by_position.png").stat().st_size > 1000


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
