"""Flow sources: DIS and codec motion vectors meet the FlowEstimator contract and the warp convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_frames
from evss.errors import EvssError
from evss.flow_sources import DISFlow, MVFlow, make_flow_source
from evss.media import open_video, write_video_frames
from evss.media.motion_vectors import b_frame_distances, vectors_to_flow
from evss.models.flow import FlowEstimator
from evss.models.warp import warp

MV_DTYPE = np.dtype([("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"),
                     ("dst_x", "<i2"), ("dst_y", "<i2"), ("flags", "<u8"), ("motion_x", "<i4"),
                     ("motion_y", "<i4"), ("motion_scale", "<u2")])


def mvs(*rows) -> np.ndarray:
    """rows of (source, w, h, dst_x, dst_y, motion_x, motion_y) with quarter-pel motion (scale 4)."""
    out = np.zeros(len(rows), MV_DTYPE)
    for i, (src, w, h, x, y, mx, my) in enumerate(rows):
        out[i] = (src, w, h, x + mx // 4, y + my // 4, x, y, 0, mx, my, 4)
    return out


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)


def test_vectors_become_a_backward_flow_on_the_quarter_grid():
    # One 16x16 block at the top-left whose content came from 8 px to the left in the previous frame.
    v = mvs((-1, 16, 16, 8, 8, -32, 0))
    flow = vectors_to_flow(v, 32, 48)
    assert flow.shape == (2, 8, 12)
    assert np.allclose(flow[0, :4, :4], -2.0) and np.allclose(flow[1, :4, :4], 0.0)  # -8 px = -2 grid px
    assert np.allclose(flow[:, 4:, :], 0) and np.allclose(flow[:, :, 4:], 0)  # no vector: zero


def test_distances_scale_past_and_future_vectors_and_fill_intra_cells():
    # Past reference 2 frames back (-16 px -> -8 px per frame), future reference 2 ahead (+16 px).
    v = mvs((-1, 16, 16, 8, 8, -64, 0), (1, 16, 16, 8, 8, 64, 0), (1, 8, 8, 20, 4, 32, -32))
    fill = np.full((2, 8, 12), 7.0, np.float32)
    flow = vectors_to_flow(v, 32, 48, past_distance=2, future_distance=2, fill=fill)
    assert np.allclose(flow[0, :4, :4], -2.0)  # both vectors agree: -8 px per frame
    assert np.allclose(flow[:, :2, 4:6], [[[-1.0]], [[1.0]]])  # future only: -(+8, -8)/2 px -> grid
    assert np.allclose(flow[:, 4:, :], 7.0)  # uncovered (intra) cells take the fill
    # without a known future distance future vectors are not used
    assert np.allclose(vectors_to_flow(v[2:], 32, 48), 0)


def test_b_frame_distances_read_the_bipred_ratio():
    def bipred(p, f, n=6):  # n blocks moving 4 px per frame, refs p back and f ahead
        return mvs(*[r for i in range(n) for r in ((-1, 16, 16, 8 + 16 * i, 8, -16 * p, 0),
                                                   (1, 16, 16, 8 + 16 * i, 8, 16 * f, 0))])
    assert b_frame_distances(bipred(1, 2), 1, 2) == (1, 2)
    assert b_frame_distances(bipred(2, 1), 2, 1) == (2, 1)
    assert b_frame_distances(bipred(1, 1), 2, 2) == (2, 2)  # a tie goes to the anchors
    assert b_frame_distances(bipred(1, 1), 1, 3) == (1, 1)  # B-pyramid: the middle B frame is the reference
    assert b_frame_distances(None, 3, 1) == (3, 1)


def test_mv_flow_recovers_a_known_translation(tmp_path):
    # Content moves 4 px right per frame: the backward flow is -4 px = -1 on the 1/4 grid.
    frames = smooth_frames(8, 64, 96, step=4)
    for opts in ({"x264-params": "bframes=0:ref=1"}, {}):  # P frames only; x264 defaults (B-pyramid)
        path = write_video_frames(tmp_path / "t.mp4", frames, options=opts)
        with open_video(path, motion_vectors=True) as v:
            got = list(v)
        assert got[0].motion_kind == "none" and np.allclose(got[0].motion, 0)
        for f in got[1:]:
            assert f.motion_kind == "vectors" and f.motion.shape == (2, 16, 24)
            assert np.median(f.motion[0]) == pytest.approx(-1.0, abs=0.05), (opts, f.index, f.pict_type)
            assert np.abs(f.motion[1]).mean() < 0.1


def test_mv_flow_in_the_segmenter_convention(tmp_path):
    frames = smooth_frames(3, 64, 96, step=4)
    with open_video(write_video_frames(tmp_path / "t.mp4", frames, options={"x264-params": "bframes=0:ref=1"}),
                    motion_vectors=True) as v:
        got = list(v)
    est = MVFlow()
    assert isinstance(est, FlowEstimator)
    ref, cur = as_tensor(np.stack([got[1].image, got[2].image]))[:, None].unbind(0)
    est.feed(got[2].motion)
    flow = est(ref, cur)  # (1, 2, 16, 24)
    small = torch.nn.functional.avg_pool2d(ref, 4)
    err_mv = (warp(small, flow) - torch.nn.functional.avg_pool2d(cur, 4)).abs()[..., 2:-2, 2:-2].mean()
    err_zero = (small - torch.nn.functional.avg_pool2d(cur, 4)).abs()[..., 2:-2, 2:-2].mean()
    assert err_mv < 0.3 * err_zero


def test_mv_flow_pads_to_the_padded_grid_and_is_zero_unfed():
    est = MVFlow()
    frame = torch.zeros(1, 3, 64, 96)
    assert torch.equal(est(frame, frame), torch.zeros(1, 2, 16, 24))
    est.feed(np.ones((2, 13, 22), np.float32))  # a 50x86 frame padded to 64x96 by the segmenter
    out = est(frame, frame)
    assert out.shape == (1, 2, 16, 24) and torch.all(out == 1)
    est.feed(np.ones((2, 20, 30), np.float32))
    with pytest.raises(EvssError, match="larger than the frame's 1/4 grid"):
        est(frame, frame)


def test_dis_flow_recovers_a_translation_in_the_warp_convention():
    frames = smooth_frames(2, 96, 128, step=4)  # +4 px per frame -> backward flow -4 px = -1 grid px
    ref, cur = as_tensor(frames[:1]), as_tensor(frames[1:])
    est = DISFlow()
    flow = est(ref, cur)
    assert flow.shape == (1, 2, 24, 32) and flow.dtype == torch.float32
    inner = flow[..., 3:-3, 3:-3]
    assert inner[:, 0].median().item() == pytest.approx(-1.0, abs=0.1)
    assert inner[:, 1].abs().median().item() < 0.1
    odd = est(torch.rand(2, 3, 50, 70), torch.rand(2, 3, 50, 70))
    assert odd.shape == (2, 2, 13, 18)


def test_make_flow_source_names():
    model = type("M", (), {"flow": object()})()
    assert make_flow_source("learned", model) is model.flow
    assert isinstance(make_flow_source("dis"), DISFlow) and isinstance(make_flow_source("mv"), MVFlow)
    with pytest.raises(EvssError, match="not one of"):
        make_flow_source("raft")


def test_dis_converts_each_streamed_frame_to_grey_once(monkeypatch):
    import evss.flow_sources as fs
    frames = [torch.from_numpy(f.copy()).permute(2, 0, 1)[None].float() / 255 for f in smooth_frames(4, 64, 96, step=2)]
    calls = []
    real = fs._grey_u8
    monkeypatch.setattr(fs, "_grey_u8", lambda x: calls.append(1) or real(x))
    streamed = fs.DISFlow()
    flows = [streamed(frames[i - 1], frames[i]) for i in range(1, 4)]
    assert len(calls) == 4  # frame 0 as the first reference, then each new current once
    for i, flow in enumerate(flows, start=1):  # the same flow as a fresh estimator computes
        assert torch.equal(flow, fs.DISFlow()(frames[i - 1], frames[i]))
    frames[3].mul_(0.5)  # an in-place change is seen: no stale grey image
    calls.clear()
    streamed(frames[3], frames[2])
    assert len(calls) == 2
