"""`evss demo`: a generated clip in, two videos and a summary out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evss.cli import main
from evss.media import read_video_frames


@pytest.fixture
def keep_threads():
    """`--threads` sets torch's global thread count: put it back for the tests after."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_demo_writes_videos_and_summary(tmp_path, capsys, keep_threads, tiny_weights):
    weights = tiny_weights
    out = tmp_path / "demo"
    rc = main(["demo", "--frames", "7", "--size", "64x128", "--weights", str(weights), "--threads", "1",
               "--keyframe-interval", "5", "-o", str(out)])
    assert rc == 0
    assert read_video_frames(out / "overlay.mp4")[0].shape == (7, 64, 128, 3)
    assert read_video_frames(out / "panel.mp4")[0].shape == (7, 128, 256, 3)
    s = json.loads((out / "summary.json").read_text())
    assert s["frames"] == 7 and s["keyframe_interval"] == 5 and s["trained"]
    assert 0 <= s["miou"] <= 1 and 0 <= s["miou_per_frame"] <= 1 and 0 <= s["temporal_consistency"] <= 1
    assert s["ms_per_keyframe"] > 0 and s["ms_per_non_keyframe"] > 0 and s["ms_per_frame_per_frame_baseline"] > 0
    printed = capsys.readouterr().out
    assert "mIoU against the ground truth" in printed and "per-frame backbone" in printed
    assert not list(out.glob(".*"))  # no temporary files left
    expected = _summary_by_hand(tiny_weights, frames=7, size=(64, 128), seed=0, interval=5)
    for k, v in expected.items():
        assert s[k] == pytest.approx(v, abs=1e-12), k


def _miou(pred, target, c):
    keep = target != 255
    cm = np.zeros((c, c), np.int64)
    np.add.at(cm, (target[keep].astype(int), pred[keep].astype(int)), 1)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    return float(np.mean(np.diag(cm)[union > 0] / union[union > 0]))


def _summary_by_hand(weights, *, frames, size, seed, interval):
    """The summary's accuracy numbers, recomputed: mIoU of the streaming and per-frame labels, and
    Eq. (8) with the previous labels pulled along the true backward flow (nearest pixel, clamped),
    occluded pixels not scored."""
    from evss.checkpoint import load_model
    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    model, config = load_model(weights)
    clip = generate_clip(SynthDriveConfig(height=size[0], width=size[1], frames=frames), seed=seed)
    from evss.flow_sources import make_flow_source
    streamed = SegmenterConfig(keyframe_interval=interval, mode=config.default_mode)  # the weights' defaults
    evss = [r.labels for r in VideoSegmenter(model, config=streamed,
                                             flow=make_flow_source(config.flow_source, model)).segment(clip.frames)]
    base = [r.labels for r in VideoSegmenter(model, config=SegmenterConfig(mode="per_frame")).segment(clip.frames)]
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w]
    pulled, current = [], []
    for t in range(1, frames):
        fx, fy = clip.flow_bwd[t]
        sx = np.clip(np.rint(xs + fx), 0, w - 1).astype(int)
        sy = np.clip(np.rint(ys + fy), 0, h - 1).astype(int)
        pulled.append(np.where(clip.occlusion[t], 255, evss[t - 1][sy, sx]))
        current.append(evss[t])
    c = config.num_classes
    tc = _miou(np.stack(current), np.stack(pulled), c)
    # the clip moves: the same labels compared without the flow would score differently
    assert abs(_miou(np.stack(current), np.stack([np.where(clip.occlusion[t], 255, evss[t - 1])
                                                  for t in range(1, frames)]), c) - tc) > 1e-3
    return {"miou": _miou(np.stack(evss), clip.labels, c), "miou_per_frame": _miou(np.stack(base), clip.labels, c),
            "temporal_consistency": tc}


def test_demo_runs_the_openvino_backend(tmp_path, capsys, keep_threads, tiny_weights, openvino_cache, monkeypatch):
    from conftest import need_module
    need_module("openvino")
    monkeypatch.setenv("EVSS_CACHE", str(openvino_cache))
    summaries = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / backend
        assert main(["demo", "--frames", "4", "--size", "64x96", "--weights", str(tiny_weights), "--threads", "1",
                     "--keyframe-interval", "2", "--backend", backend, "-o", str(out)]) == 0
        summaries[backend] = json.loads((out / "summary.json").read_text())
    assert "backend openvino" in capsys.readouterr().out
    assert summaries["openvino"]["backend"] == "openvino" and summaries["openvino"]["precision"] == "fp32"
    for key in ("miou", "miou_per_frame", "temporal_consistency"):
        assert summaries["openvino"][key] == pytest.approx(summaries["torch"][key], abs=0.01), key


def test_demo_of_a_19_class_model_scores_and_shows_it_collapsed_to_camvid(tmp_path, capsys, keep_threads,
                                                                          tiny_streets_weights):
    """SynthDrive is labelled in CamVid-11: the overlay keeps the model's 19 classes (Cityscapes colours),
    the scores and the panel's prediction are the collapse by the label sets (CamVid colours)."""
    from evss.checkpoint import load_model
    from evss.classes import CAMVID, CITYSCAPES
    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    from evss.label_sets import camvid_sets
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    out = tmp_path / "demo"
    assert main(["demo", "--frames", "3", "--size", "64x128", "--weights", str(tiny_streets_weights), "--threads", "1",
                 "--keyframe-interval", "2", "-o", str(out)]) == 0
    assert "scored (and shown in the panel) collapsed to CamVid-11" in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["label_space"] == "cityscapes" and s["scored_label_space"].startswith("camvid")
    model, config = load_model(tiny_streets_weights)
    clip = generate_clip(SynthDriveConfig(height=64, width=128, frames=3), seed=0)
    base = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"), label_sets=camvid_sets())
    labels = np.stack([base.step(f).labels for f in clip.frames])
    assert s["miou_per_frame"] == pytest.approx(_miou(labels, clip.labels, 11), abs=1e-12)
    plain = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame")).step(clip.frames[0]).labels

    def error(got, labels, space):  # mean distance to labels in a palette (H.264 blurs colours a little)
        return np.abs(got - np.asarray(space.palette)[labels]).mean()

    overlay = read_video_frames(out / "overlay.mp4")[0][0].astype(int)  # (64, 128, 3), blended half and half
    colours = 2 * overlay - clip.frames[0].astype(int)  # the label colours
    assert error(colours, plain, CITYSCAPES) < 0.6 * error(colours, labels[0], CAMVID)  # the 19-class colours
    panel = read_video_frames(out / "panel.mp4")[0][0].astype(int)  # (128, 256, 3): the prediction bottom-left
    prediction = panel[64 + 20:, :128]  # below the caption
    assert error(prediction, labels[0][20:], CAMVID) < error(prediction, plain[20:], CITYSCAPES) / 2
