"""The training loop (evss.train.loop): the learning-rate schedule, the encoder's parameter group,
and non-finite losses (skipped, then the run stops keeping the last good checkpoint)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evss import train
from evss.errors import EvssError
from evss.losses import segmentation_loss
from evss.train import TrainConfig

# ---- schedule and parameter groups ---------------------------------------------------------------

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


# ---- non-finite losses ---------------------------------------------------------------------------

def test_non_finite_losses_are_skipped_then_stop_keeping_the_last_good_checkpoint(tmp_path):
    from evss.checkpoint import read_metadata
    from evss.config import build_model, preset
    model_config = preset("tiny")
    model = build_model(model_config)
    model.backbone.requires_grad_(True)
    data = [{"image": torch.rand(3, 32, 64), "label": torch.randint(0, 11, (32, 64))} for _ in range(4)]
    calls = []

    def losses(module, batch):
        out = segmentation_loss(module(batch["image"]), batch["label"])
        calls.append(1)
        if len(calls) in (2,) or len(calls) >= 4:  # one isolated bad step, then only bad ones
            out = {k: v * float("nan") for k, v in out.items()}
        return out

    config = TrainConfig(stage="backbone", out_dir=str(tmp_path), model="tiny", data="synthdrive", synth_clips=2,
                         synth_frames=8, synth_size=(64, 128), crop_size=(64, 128), batch_size=2, progress=False,
                         tensorboard=False, threads=1, steps=20, checkpoint_every=1, log_every=1, max_bad_steps=3)
    stage = train.Stage(model=model, trained=model.backbone, dataset=data, losses=losses)
    with pytest.raises(EvssError, match=r"3 non-finite losses in a row \(last at step 6\).*\(step 3\)"):
        train.fit(config, train.Runtime(device=torch.device("cpu")), stage, model_config)
    assert read_metadata(tmp_path / "last.safetensors")["step"] == "3"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in records if r["step"] <= 3] == [0.0, 1.0, 0.0]
