"""`evss demo`: a generated clip in, two videos and a summary out."""

from __future__ import annotations

import json

import pytest
import torch

from evss.cli import main
from evss.data.video import read_video_frames


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
               "-o", str(out)])
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
