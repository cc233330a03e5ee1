"""Teacher cache: built once, resumed after an interruption, refused when stale, and the cached EVSS
stage sees the same pairs and targets as the uncached one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import vivid_tiny_model
from evss import train
from evss.data.sources import MemoryClips
from evss.errors import DataError
from evss.flow_sources import DISFlow
from evss.train import TrainConfig
from evss.train.teacher_cache import (
    CachedPairDataset,
    TeacherCache,
    backbone_fingerprint,
    build_teacher_cache,
    teacher_outputs,
)


def _clips(n=2, t=6, h=64, w=96, seed=0):
    """Moving colour bars: clip i, frame k is shifted right by 2k pixels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.integers(0, 255, (h, w + 4 * t, 3), dtype=np.uint8).repeat(1, 0)
        base = np.repeat(base[:, ::8], 8, axis=1)[:, : w + 4 * t]
        frames = np.stack([base[:, 2 * t - 2 * k: 2 * t - 2 * k + w] for k in range(t)])  # (T, H, W, 3)
        labels = (frames[..., 0] // 64).astype(np.uint8)  # (T, H, W) ids 0..3
        out.append({"frames": frames, "labels": labels})
    return out


@pytest.fixture(scope="module")
def tiny():
    return vivid_tiny_model(0).eval()  # predictions vary with the content


def test_build_resumes_and_matches_a_fresh_build(tmp_path, tiny):
    source = MemoryClips(_clips())
    part = tmp_path / "part"
    build_teacher_cache(source, tiny.backbone, part, progress=False, stop_after=5)
    manifest = json.loads((part / "manifest.json").read_text())
    assert [q["done"] for q in manifest["sequences"]] == [5, 0]
    with pytest.raises(DataError, match="unfinished"):
        TeacherCache(part, fingerprint=backbone_fingerprint(tiny.backbone))
    build_teacher_cache(source, tiny.backbone, part, progress=False)  # resumes at frame 5
    whole = build_teacher_cache(source, tiny.backbone, tmp_path / "whole", progress=False)
    a = TeacherCache(part, fingerprint=backbone_fingerprint(tiny.backbone))
    b = TeacherCache(whole, fingerprint=backbone_fingerprint(tiny.backbone))
    for s in range(2):
        for k in ("logits", "pseudo"):
            assert np.array_equal(a.arrays(s)[k], b.arrays(s)[k])
    logits, pseudo = teacher_outputs(tiny.backbone, source.frame(1, 3), torch.device("cpu"))
    assert np.array_equal(a.arrays(1)["logits"][3], logits) and np.array_equal(a.arrays(1)["pseudo"][3], pseudo)
    assert len(np.unique(a.arrays(0)["pseudo"])) > 1  # the tiny teacher is not constant on these clips


def test_a_cache_for_other_weights_is_refused(tmp_path, tiny):
    source = MemoryClips(_clips(n=1, t=3))
    root = build_teacher_cache(source, tiny.backbone, tmp_path / "c", progress=False)
    other = vivid_tiny_model(0).eval()
    with torch.no_grad():
        next(other.backbone.parameters()).add_(0.01)
    with pytest.raises(DataError, match="another backbone"):
        TeacherCache(root, fingerprint=backbone_fingerprint(other.backbone))
    with pytest.raises(DataError, match="teacher cache with backbone"):
        build_teacher_cache(source, other.backbone, root, progress=False)


def test_cached_dis_flow_and_flip(tmp_path, tiny):
    source = MemoryClips(_clips(n=1, t=4))
    dis = DISFlow()
    root = build_teacher_cache(source, tiny.backbone, tmp_path / "c", progress=False, flow=dis, flow_name="dis",
                               offsets=(-1, 1, 2))
    cache = TeacherCache(root, fingerprint=backbone_fingerprint(tiny.backbone), flow_name="dis")
    from evss.tensors import image_to_tensor
    expect = dis(image_to_tensor(source.frame(0, 1))[None], image_to_tensor(source.frame(0, 3))[None])[0]
    got = cache.arrays(0)["flow"][3, 2 - (-1)]  # t = 3, d = 2
    assert np.allclose(got, expect.numpy(), atol=1e-2)
    # content moves right 2 px/frame: I_3(x) = I_1(x - 4), a backward flow of -4 px = -1 on the 1/4 grid
    assert float(np.median(got[0])) == pytest.approx(-1.0, abs=0.05)
    flat = CachedPairDataset(source, cache, thin_classes=(2,), crop_size=(64, 96), flip=False, seed=0,
                             offsets=(2,), use_flow=True)
    item = flat[3]
    assert item["offset"] == 2 and torch.allclose(item["flow"], torch.from_numpy(got.astype(np.float32)))
    flipped = None
    for seed in range(20):  # a seed whose draw flips
        ds = CachedPairDataset(source, cache, thin_classes=(2,), crop_size=(64, 96), flip=True, seed=seed,
                               offsets=(2,), use_flow=True)
        it = ds[3]
        if not torch.equal(it["image"], item["image"]):
            flipped = it
            break
    assert flipped is not None
    assert torch.equal(flipped["image"], item["image"].flip(-1))
    assert torch.allclose(flipped["flow"][0], -item["flow"][0].flip(-1))
    assert torch.equal(flipped["key_logits"], item["key_logits"].flip(-1))
    assert torch.equal(flipped["pseudo"], item["pseudo"].flip(-1))


def test_cached_stage_matches_the_uncached_stage(tmp_path):
    """Same pairs, same targets: step 1's losses agree up to the cache's float16 rounding."""
    common = dict(model="tiny", data="synthdrive", synth_clips=2, synth_frames=6, synth_size=(64, 128),
                  crop_size=(64, 128), batch_size=2, flip=False, steps=1, lr=1e-7, min_lr=1e-7,
                  progress=False, tensorboard=False, threads=1, seed=3)
    teacher = tmp_path / "teacher"
    train.main(TrainConfig(stage="backbone", out_dir=str(teacher), **common))
    ckpt = str(teacher / "last.safetensors")
    plain = train.main(TrainConfig(stage="evss", teacher=ckpt, out_dir=str(tmp_path / "a"), **common))
    cached = train.main(TrainConfig(stage="evss", teacher=ckpt, cache=str(tmp_path / "cache"),
                                    out_dir=str(tmp_path / "b"), **common))
    a, b = plain.losses[0], cached.losses[0]
    for key in ("warp", "semantic", "edge", "edge_semantic", "total"):
        assert b[key] == pytest.approx(a[key], rel=2e-2, abs=1e-3), key


def test_a_cache_of_other_frames_with_the_same_shapes_is_refused(tmp_path, tiny):
    """Generated data of another seed has the same lengths and sizes; its cache must not be reused."""
    root = build_teacher_cache(MemoryClips(_clips(n=1, t=3, seed=0)), tiny.backbone, tmp_path / "c", progress=False)
    with pytest.raises(DataError, match="other frames"):
        build_teacher_cache(MemoryClips(_clips(n=1, t=3, seed=1)), tiny.backbone, root, progress=False)
    build_teacher_cache(MemoryClips(_clips(n=1, t=3, seed=0)), tiny.backbone, root, progress=False)  # same: reused


def test_a_cache_from_before_content_digests_is_refused_with_the_reason(tmp_path, tiny):
    root = build_teacher_cache(MemoryClips(_clips(n=1, t=3)), tiny.backbone, tmp_path / "c", progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    for q in manifest["sequences"]:
        del q["digest"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="written before caches recorded"):
        build_teacher_cache(MemoryClips(_clips(n=1, t=3)), tiny.backbone, root, progress=False)
