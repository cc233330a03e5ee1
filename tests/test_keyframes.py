"""Adaptive keyframes: the rule on its own, the segmenter's redo hook, and a hard cut."""

from __future__ import annotations

import numpy as np
import pytest

from evss.errors import EvssError
from evss.flow_sources import DISFlow
from evss.keyframes import AdaptiveKeyframes, FlowProbe
from evss.segmenter import FrameResult, VideoSegmenter


def result(*, key=False, share=None, mean=None) -> FrameResult:
    return FrameResult(index=0, labels=np.zeros((1, 1), np.uint8), is_keyframe=key, seconds=0.0,
                       fine_mean=mean, fine_share=share)


def test_rule_bounds_and_max_interval():
    p = AdaptiveKeyframes(max_interval=4, share=0.3, mean=0.6, redo=False)
    assert p(index=4, since_key=4, last=result())  # the maximum interval
    assert not p(index=1, since_key=1, last=result(share=0.2, mean=0.5))
    assert p(index=1, since_key=1, last=result(share=0.31))
    assert p(index=1, since_key=1, last=result(mean=0.61))
    assert not p(index=1, since_key=1, last=result(key=True, share=1.0))  # keyframes carry no distortion
    assert p.triggers == {"share": 1, "mean": 1, "residual": 0, "max_interval": 1}
    lazy = AdaptiveKeyframes(max_interval=9, share=0.3, redo=False, min_interval=3)
    assert not lazy(index=2, since_key=2, last=result(share=0.9))
    assert lazy(index=3, since_key=3, last=result(share=0.9))


def test_redo_hook_decides_on_the_frame_itself():
    p = AdaptiveKeyframes(share=0.3)  # redo on: the hook, not the next frame, reacts
    assert p.redo_as_keyframe(result(share=0.5)) and not p.redo_as_keyframe(result(share=0.1))
    assert not p(index=3, since_key=3, last=result(share=0.5))
    with pytest.raises(EvssError, match="needs a FlowProbe"):
        AdaptiveKeyframes(residual=0.1)


def test_segmenter_redoes_a_degraded_frame_as_a_keyframe(tiny_model):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(5)]

    class EveryThird(AdaptiveKeyframes):
        def degraded(self, r):
            return "share" if not r.is_keyframe and r.index % 3 == 2 else None

    out = list(VideoSegmenter(tiny_model, keyframe_policy=EveryThird(max_interval=100)).segment(frames))
    assert [r.is_keyframe for r in out] == [True, False, True, False, False]
    assert [r.redone for r in out] == [False, False, True, False, False]


def test_hard_cut_starts_a_keyframe_at_the_cut(tiny_model):
    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    cfg = SynthDriveConfig(height=64, width=128, frames=7)
    a, b = generate_clip(cfg, seed=1).frames, generate_clip(cfg, seed=2).frames
    clip = np.concatenate([a, b])  # the cut is at frame 7
    probe = FlowProbe(DISFlow())
    policy = AdaptiveKeyframes(max_interval=100, share=None, residual=0.08, probe=probe)
    out = list(VideoSegmenter(tiny_model, flow=probe, keyframe_policy=policy).segment(clip))
    assert [r.index for r in out if r.is_keyframe] == [0, 7]
    assert out[7].redone and policy.triggers["residual"] == 1
    # the cut frame is segmented from its own pixels: exactly the backbone's labels for it
    fresh = VideoSegmenter(tiny_model).step(clip[7])
    assert np.array_equal(out[7].labels, fresh.labels)
