import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import algorithm1_reference, pan_flow, panning_clip
from evss.errors import EvssError
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.tensors import to_tensor


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


def test_a_read_only_frame_is_taken_as_is_and_left_untouched():
    frame = _clip(1, 6, 10)[0]
    read_only = frame.copy()
    read_only.setflags(write=False)  # as a decoded or memory-mapped frame comes
    t = to_tensor(read_only, torch.device("cpu"), torch.float32)  # (1, 3, 6, 10)
    assert torch.equal(t, to_tensor(frame, torch.device("cpu"), torch.float32))
    assert np.array_equal(read_only, frame) and not read_only.flags.writeable


def _frames(case, synth_clip):
    """(frames, flow estimator or None for the model's FlowNet): real motion, sides multiples of 32."""
    if case == "synthdrive":
        return list(synth_clip.frames), None  # camera and object motion, the model's own flow
    return panning_clip(8, 64, 128), pan_flow()  # a 4-pixel pan and its true flow


@pytest.mark.parametrize("propagation", ["chained", "composed"])
@pytest.mark.parametrize("case", ["synthdrive", "pan"])
def test_streaming_equals_algorithm1_reference(tiny_model, synth_clip, case, propagation):
    frames, flow = _frames(case, synth_clip)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(keyframe_interval=4, propagation=propagation),
                         flow=flow, return_maps=True)
    got = list(seg.segment(frames))
    propagate = "warped" if propagation == "chained" else "composed"
    ref = algorithm1_reference(tiny_model, frames, 4, flow=flow, propagate=propagate)
    assert [r.is_keyframe for r in got] == [i % 4 == 0 for i in range(8)]
    for i, (g, r) in enumerate(zip(got, ref)):
        assert np.array_equal(g.labels, r["labels"]), i
        assert np.array_equal(g.warped_labels, r["warped"]), i
    # The clip and model see what carries over: labels vary, the coarse map and the correction change
    # labels, and propagating the keyframe's features or keeping P_k would change the output.
    assert all(len(np.unique(r["labels"])) >= 5 for r in ref)
    assert all(0.05 < r["coarse"].mean() < 0.95 for i, r in enumerate(ref) if i % 4)
    assert all((r["labels"] != r["warped"]).mean() > 0.05 for i, r in enumerate(ref) if i % 4)
    others = {"warped", "composed", "keyframe"} - {propagate}
    for wrong in [dict(propagate=p) for p in sorted(others)] + [dict(propagate=propagate, update_pred=False)]:
        if case == "pan" and wrong["propagate"] != "keyframe" and "update_pred" not in wrong:
            continue  # an integer 4-pixel pan: composing the flows and chaining the warps agree exactly
        other = algorithm1_reference(tiny_model, frames, 4, flow=flow, **wrong)
        for i in (2, 3, 6, 7):  # the second and later non-keyframes after each keyframe
            assert (other[i]["labels"] != ref[i]["labels"]).mean() > 0.01, (wrong, i)


@pytest.mark.parametrize("merge_resolution", ["quarter", "full"])
def test_merged_propagation_carries_the_merged_features(tiny_model, synth_clip, merge_resolution):
    frames, flow = _frames("synthdrive", synth_clip)
    config = SegmenterConfig(keyframe_interval=4, propagation="merged", merge_resolution=merge_resolution)
    got = list(VideoSegmenter(tiny_model, config=config, flow=flow, return_maps=True).segment(frames))
    chained = algorithm1_reference(tiny_model, frames, 4, flow=flow, propagate="warped")
    if merge_resolution == "quarter":  # the reference fuses on the 1/4 grid
        ref = algorithm1_reference(tiny_model, frames, 4, flow=flow, propagate="merged")
        for i, (g, r) in enumerate(zip(got, ref)):
            assert np.array_equal(g.labels, r["labels"]), i
            assert np.array_equal(g.warped_labels, r["warped"]), i
    for i in (0, 1, 4, 5):  # keyframes and the first non-keyframes: nothing carried yet
        assert np.array_equal(got[i].warped_labels, chained[i]["warped"]), i
    for i in (2, 3, 6, 7):  # later ones warp the previous F^m, not F^w
        assert (got[i].warped_labels != chained[i]["warped"]).mean() > 0.01, i


def test_the_weights_choose_the_coarse_reference_and_the_segmenter_may_override(tiny_model, synth_clip):
    import dataclasses
    frames = list(synth_clip.frames)
    saved = tiny_model.distortion
    try:
        tiny_model.distortion = dataclasses.replace(saved, coarse_reference="keyframe")
        runs = {ref: [r.labels for r in VideoSegmenter(tiny_model, config=SegmenterConfig(
            keyframe_interval=4, coarse_reference=ref)).segment(frames)] for ref in (None, "previous")}
        keep = algorithm1_reference(tiny_model, frames, 4, propagate="composed", update_pred=False)
        update = algorithm1_reference(tiny_model, frames, 4, propagate="composed")
    finally:
        tiny_model.distortion = saved
    assert all(np.array_equal(a, r["labels"]) for a, r in zip(runs[None], keep))  # the weights' "keyframe"
    assert all(np.array_equal(a, r["labels"]) for a, r in zip(runs["previous"], update))  # the override
    assert any((a != b).mean() > 0.01 for a, b in zip(runs[None], runs["previous"]))
    with pytest.raises(EvssError, match="coarse_reference 'key'"):
        SegmenterConfig(coarse_reference="key")


def test_warp_only_carries_labels_along_the_true_flow(tiny_model):
    """A 4-pixel pan with its true flow: each frame's labels are the keyframe's, shifted 4 px per frame."""
    frames = panning_clip(4, 64, 128)
    seg = VideoSegmenter(tiny_model, config=SegmenterConfig(mode="warp_only", keyframe_interval=10), flow=pan_flow())
    out = [r.labels for r in seg.segment(frames)]
    key = out[0]
    for t in (1, 2, 3):
        # pixel x of frame t shows pixel x + 4t of the keyframe; the 1/4-grid warp of a whole pixel
        # is exact away from the upsampling rims (2 px) and the clamped right border
        assert np.array_equal(out[t][:, 2:128 - 4 * t - 8], key[:, 2 + 4 * t:120]), t
    assert not np.array_equal(out[1], key)


def test_composed_propagation_does_not_blur_half_pixel_steps(tiny_model):
    """A 2-pixel pan (half a 1/4-grid pixel per frame): composed, frame 2 is the keyframe moved by
    exactly one grid pixel (as sharp as the keyframe); chained, it was resampled twice on the way."""
    frames = panning_clip(3, 64, 128, step=2)
    out = {}
    for propagation in ("composed", "chained"):
        seg = VideoSegmenter(tiny_model, flow=pan_flow(0.5), config=SegmenterConfig(
            mode="warp_only", keyframe_interval=10, propagation=propagation))
        out[propagation] = [r.labels for r in seg.segment(frames)]
    key, composed, chained = out["composed"][0], out["composed"][2], out["chained"][2]
    assert np.array_equal(composed[:, 2:128 - 16], key[:, 6:116])  # shifted 4 px, away from the rims
    assert np.array_equal(out["composed"][1], out["chained"][1])  # one step: nothing to compose
    assert not np.array_equal(chained, composed)


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
    held = [t for t in (seg._feat, seg._pred, seg._image, seg._flow) if t is not None]
    # F^b_k, P_k, I_k and the composed flow O_{i->k}: one of each, whatever the number of frames
    assert sum(t.numel() for t in held) == 11 * 16 * 16 + 16 * 16 + 3 * 64 * 64 + 2 * 16 * 16


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


def test_label_sets_give_the_argmax_of_each_sets_summed_probability(tiny_streets_model):
    """A 19-class model scored in CamVid-11: the keyframe's labels are the argmax of the set-summed
    softmax of the logits upsampled to the frame (as training's held-out evaluation); sets of one class
    give the exact labels of the model's own classes at every frame, and what propagates is unchanged."""
    from evss.label_sets import camvid_sets, collapse_probabilities
    from evss.models.upsample import upsample4
    frames = _clip(4, 64, 96)
    seg = VideoSegmenter(tiny_streets_model, config=SegmenterConfig(mode="per_frame"), label_sets=camvid_sets())
    with torch.no_grad():
        logits = upsample4(tiny_streets_model.backbone(to_tensor(frames[0], "cpu", torch.float32)), (64, 96))
    want = collapse_probabilities(logits, camvid_sets()).argmax(1)[0].numpy()  # (64, 96) CamVid-11 ids
    got = seg.step(frames[0]).labels
    assert np.array_equal(got, want) and got.max() < 11 and len(np.unique(got)) > 2
    for merge in ("quarter", "full"):
        cfg = SegmenterConfig(keyframe_interval=4, merge_resolution=merge, labels="exact")
        plain = VideoSegmenter(tiny_streets_model, config=cfg, return_maps=True)
        ones = VideoSegmenter(tiny_streets_model, config=cfg, return_maps=True, label_sets=torch.eye(19, dtype=bool))
        sets = VideoSegmenter(tiny_streets_model, config=cfg, return_maps=True, label_sets=camvid_sets())
        for f in frames:
            a, b, c = plain.step(f), ones.step(f), sets.step(f)
            assert np.array_equal(a.labels, b.labels) and np.array_equal(a.warped_labels, b.warped_labels), merge
            assert np.array_equal(a.maps["fine"], c.maps["fine"]) and c.labels.max() < 11, merge
