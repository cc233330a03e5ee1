import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evss.errors import EvssError
from evss.models.distortion import coarse_map, fine_map, fuse
from evss.models.warp import warp
from evss.segmenter import SegmenterConfig, VideoSegmenter


def _clip(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w + 4 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 4 * i:4 * i + w]) for i in range(n)]  # a panning clip


def test_issue_example_20_frames_270x480(tiny_model):
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=5))
    out = list(seg.segment(_clip(20, 270, 480)))
    assert len(out) == 20
    assert all(r.labels.shape == (270, 480) and r.labels.dtype == np.uint8 for r in out)
    assert [r.is_keyframe for r in out] == [i % 5 == 0 for i in range(20)]


def _reference_algorithm1(model, frames, n):
    """Algorithm 1 written out line by line, on padded 64x96 frames (multiples of 32)."""
    labels = []
    up = lambda x: F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    with torch.no_grad():
        for i, f in enumerate(frames):
            img = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
            if i % n == 0:
                feat = model.backbone(img)  # F_k^b
                pred = feat.argmax(1)  # P_k
                key_img = img
                labels.append(up(feat).argmax(1)[0].numpy())
                continue
            fw = warp(feat, model.flow(key_img, img))  # line 8
            fu, edge_scores = model.correction(img, fw)  # lines 9-10
            me = model.correction.edge_probability(edge_scores)  # line 13
            mc = coarse_map(fw, pred)  # lines 11-12
            mf = fine_map(mc, me, model.distortion)  # line 14
            fm = fuse(fw, fu, mf, model.distortion)  # line 15
            labels.append(up(fm).argmax(1)[0].numpy())  # lines 16-17
            feat, pred, key_img = fw, fm.argmax(1), img  # lines 18-20
    return labels


def test_streaming_equals_algorithm1_reference(tiny_model):
    frames = _clip(8, 64, 96, seed=3)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=3))
    got = [r.labels for r in seg.segment(frames)]
    ref = _reference_algorithm1(tiny_model, frames, 3)
    for g, r in zip(got, ref):
        assert np.array_equal(g, r.astype(np.uint8))


def test_reset_starts_a_new_video(tiny_model):
    frames = _clip(4, 64, 64)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=10))
    first = [r.labels for r in seg.segment(frames)]
    seg.reset()
    again = list(seg.segment(frames))
    assert again[0].is_keyframe and all(np.array_equal(a.labels, b) for a, b in zip(again, first))


def test_per_frame_mode_is_the_backbone(tiny_model):
    frames = _clip(3, 64, 64)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(mode="per_frame"))
    for f, r in zip(frames, seg.segment(frames)):
        assert r.is_keyframe
        img = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            ref = F.interpolate(tiny_model.backbone(img), scale_factor=4, mode="bilinear").argmax(1)[0]
        assert np.array_equal(r.labels, ref.numpy())


def test_warp_only_mode_skips_correction(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(tiny_model.correction, "forward", lambda *a: calls.append(1))
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(mode="warp_only", keyframe_interval=4))
    out = list(seg.segment(_clip(4, 64, 64)))
    assert not calls and [r.is_keyframe for r in out] == [True, False, False, False]


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (33, 65), (270, 481)])
def test_odd_and_extreme_sizes(tiny_model, size):
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=2), return_maps=True)
    frames = [np.full(size + (3,), 40 * i, dtype=np.uint8) for i in range(3)]
    for r in seg.segment(frames):
        assert r.labels.shape == size
        assert all(m.shape == size and 0 <= m.min() and m.max() <= 1 for m in r.maps.values())


def test_maps_on_request_and_full_resolution_merge(tiny_model):
    frames = _clip(3, 64, 96)
    for merge in ("quarter", "full"):
        seg = VideoSegmenter(tiny_model, config=SegmenterConfig(merge_resolution=merge, coarse_reference="keyframe"),
                             return_maps=True)
        r = list(seg.segment(frames))[-1]
        assert set(r.maps) == {"coarse", "edge", "fine"} and r.warped_labels.shape == (64, 96)
        assert r.fine_mean is not None


def test_state_does_not_grow(tiny_model):
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=50))
    frames = _clip(2, 64, 64)
    for i in range(30):
        seg.step(frames[i % 2])
    held = [t for t in (seg._feat, seg._pred, seg._image) if t is not None]
    assert sum(t.numel() for t in held) == 11 * 16 * 16 + 16 * 16 + 3 * 64 * 64


def test_changing_frame_size_is_named(tiny_model):
    seg = VideoSegmenter(tiny_model)
    seg.step(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(EvssError, match="frame 1 is 32x64, the clip started at 64x64"):
        seg.step(np.zeros((32, 64, 3), np.uint8))


def test_bad_settings():
    with pytest.raises(EvssError, match="keyframe interval"):
        SegmenterConfig(keyframe_interval=0)
    with pytest.raises(EvssError, match="mode"):
        SegmenterConfig(mode="fast")


def test_custom_flow_estimator(tiny_model):
    zero = lambda ref, cur: torch.zeros(ref.shape[0], 2, ref.shape[2] // 4, ref.shape[3] // 4)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(mode="warp_only"), flow=zero)
    out = list(seg.segment(_clip(3, 64, 64)))
    assert np.array_equal(out[1].labels, out[0].labels)  # zero flow carries the keyframe labels unchanged
