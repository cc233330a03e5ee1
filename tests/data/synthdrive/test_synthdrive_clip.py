"""SynthDrive clips: determinism, exact flow and occlusion, scene content (evss.data.synthdrive.clip).

Clips here are small (128x256 or 64x128, a few frames); the speed check lives in
benchmarks/synthdrive_speed.py. Run with ``-s`` to see the measured flow-check numbers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from evss.classes import CAMVID, IGNORE_INDEX
from evss.data.synthdrive import Clip, SynthDriveConfig, clip_seed, clip_stats, generate_clip
from evss.errors import ConfigError
from evss.models.warp import warp

SMALL = SynthDriveConfig(height=64, width=128, frames=4)
MEDIUM = SynthDriveConfig(height=128, width=256, frames=8)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return generate_clip(MEDIUM, seed=3)


@pytest.fixture(scope="module")
def clean_clip() -> Clip:
    """No sensor noise, no illumination drift: the flow check measures geometry alone."""
    return generate_clip(replace(MEDIUM, noise_std=0.0, illumination=0.0), seed=3)


def _nearest(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    ys = np.clip(np.rint(np.arange(h)[:, None] + flow[1]), 0, h - 1).astype(int)
    xs = np.clip(np.rint(np.arange(w)[None, :] + flow[0]), 0, w - 1).astype(int)
    return img[ys, xs]


def _warp_errors(c: Clip) -> tuple[list[float], list[float], list[float]]:
    """Per frame t >= 1: photometric error (8-bit levels, non-occluded), the same with zero flow,
    and label agreement under nearest warping (non-occluded)."""
    err, err0, agree = [], [], []
    for t in range(1, len(c.frames)):
        prev = torch.from_numpy(c.frames[t - 1]).permute(2, 0, 1)[None].double()  # (1, 3, H, W)
        flow = torch.from_numpy(c.flow_bwd[t])[None].double()  # (1, 2, H, W)
        warped = warp(prev, flow)[0].permute(1, 2, 0).numpy()  # (H, W, 3)
        vis = ~c.occlusion[t]
        cur = c.frames[t].astype(np.float64)
        err.append(float(np.abs(warped - cur)[vis].mean()))
        err0.append(float(np.abs(c.frames[t - 1] - cur)[vis].mean()))
        agree.append(float((_nearest(c.labels[t - 1], c.flow_bwd[t]) == c.labels[t])[vis].mean()))
    return err, err0, agree


def test_shapes_dtypes_and_conventions(clip: Clip) -> None:
    T, H, W = MEDIUM.frames, MEDIUM.height, MEDIUM.width
    assert clip.frames.shape == (T, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.labels.shape == (T, H, W) and clip.labels.dtype == np.uint8
    assert clip.flow_bwd.shape == (T, 2, H, W) and clip.flow_bwd.dtype == np.float32
    assert clip.flow_fwd.shape == (T, 2, H, W) and clip.flow_fwd.dtype == np.float32
    assert clip.occlusion.shape == (T, H, W) and clip.occlusion.dtype == bool
    assert clip.instances is not None and clip.instances.shape == (T, H, W)
    assert clip.instances.dtype == np.int32
    assert not clip.flow_bwd[0].any() and not clip.flow_fwd[-1].any() and not clip.occlusion[0].any()
    assert np.isfinite(clip.flow_bwd).all() and np.isfinite(clip.flow_fwd).all()
    assert set(np.unique(clip.labels).tolist()) <= set(range(CAMVID.num_classes)) | {IGNORE_INDEX}


def test_deterministic_in_config_and_seed() -> None:
    a, b = generate_clip(SMALL, 7), generate_clip(SMALL, 7)
    for name in ("frames", "labels", "flow_bwd", "flow_fwd", "occlusion", "instances"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.moving_instances == b.moving_instances
    assert not np.array_equal(a.frames, generate_clip(SMALL, 8).frames)


def test_flow_warps_previous_frame_onto_current(clip: Clip, clean_clip: Clip) -> None:
    for name, c, limit in (("clean", clean_clip, 4.0), ("default", clip, 6.0)):
        err, err0, agree = _warp_errors(c)
        print(f"\n{name}: photometric error on non-occluded pixels {np.mean(err):.2f} levels "
              f"(zero flow {np.mean(err0):.2f}), label agreement min {min(agree):.4f}, "
              f"occluded {c.occlusion[1:].mean():.3f}")
        assert np.mean(err) < limit
        assert np.mean(err) < 0.5 * np.mean(err0)  # the flow explains most of the change
        assert min(agree) >= 0.99


def test_forward_and_backward_flow_agree(clip: Clip) -> None:
    # A non-occluded pixel p of frame t lands at q = p + bwd_t(p) in t-1; from there the forward
    # flow of t-1 must lead back: fwd_{t-1}(q) ~= -bwd_t(p). Both come from one 3D model, so this
    # checks the two directions against each other (up to sampling fwd at a sub-pixel q).
    ok = []
    for t in range(1, MEDIUM.frames):
        fwd = torch.from_numpy(clip.flow_fwd[t - 1])[None]
        bwd = torch.from_numpy(clip.flow_bwd[t])[None]
        back = warp(fwd, bwd)[0].numpy()  # (2, H, W) fwd_{t-1} sampled at p + bwd_t(p)
        res = np.hypot(*(back + clip.flow_bwd[t]))  # (H, W)
        ok.append(float((res < 0.5)[~clip.occlusion[t]].mean()))
    assert min(ok) > 0.97, ok


def test_flow_is_not_a_single_translation(clip: Clip) -> None:
    f = clip.flow_bwd[4]
    vis = ~clip.occlusion[4]
    # Expansion from forward motion: flow points towards the centre (backward) on both halves.
    w = f.shape[2]
    left, right = f[0][:, : w // 4][vis[:, : w // 4]], f[0][:, -w // 4:][vis[:, -w // 4:]]
    assert np.median(left) > np.median(right)
    assert f[0][vis].std() > 0.5 and f[1][vis].std() > 0.3


def test_every_class_appears_across_a_few_clips() -> None:
    cfg = SynthDriveConfig(height=128, width=256, frames=2)
    seen: set[int] = set()
    for i in range(4):
        seen |= set(np.unique(generate_clip(cfg, clip_seed(0, i)).labels).tolist())
    assert set(range(CAMVID.num_classes)) <= seen, sorted(set(range(CAMVID.num_classes)) - seen)


def test_thin_occluded_and_moving_pixels_in_every_frame(clip: Clip) -> None:
    stats = clip_stats(clip)
    print(f"\nthin {stats['thin_fraction']}\noccluded {stats['occluded_fraction']}\n"
          f"moving {stats['moving_fraction']}")
    assert min(stats["thin_fraction"]) > 0.002
    assert min(stats["occluded_fraction"][1:]) > 0.002
    assert min(stats["moving_fraction"]) > 0.002


def test_poles_are_thin_at_512_wide() -> None:
    c = generate_clip(SynthDriveConfig(frames=1), seed=1)
    pole = c.labels[0] == 2  # (H, W)
    runs = []  # horizontal run lengths of Pole pixels
    for row in pole[: pole.shape[0] * 2 // 3]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        runs += (edges[1::2] - edges[::2]).tolist()
    assert runs and 1 <= np.median(runs) <= 4, np.median(runs)


def test_motion_blur_changes_frames_not_labels() -> None:
    a = generate_clip(SMALL, 2)
    b = generate_clip(replace(SMALL, motion_blur=True), 2)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.flow_bwd, b.flow_bwd)
    assert not np.array_equal(a.frames, b.frames)


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="16x16"):
        generate_clip(SynthDriveConfig(height=8), 0)
