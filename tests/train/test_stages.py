"""The three training stages end to end on generated data (tiny preset, 64x128, batch 2): their
losses fall, their checkpoints feed the next stage, a run resumes exactly (with and without a teacher
cache), two DDP processes on the CPU (gloo) stay identical, and the keyframe update branch starts
from the teacher."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from evss import train
from evss.errors import ConfigError
from evss.train import TrainConfig

# Small runs: in-memory SynthDrive clips of 64x128 (2 clips x 8 frames), the tiny preset.
TINY = dict(model="tiny", data="synthdrive", synth_clips=2, synth_frames=8, synth_size=(64, 128),
            crop_size=(64, 128), batch_size=2, progress=False, tensorboard=False, threads=1)


def tiny(stage: str, out: Path, **over) -> TrainConfig:
    return TrainConfig(stage=stage, out_dir=str(out), **{**TINY, **over})


def totals(result: train.TrainResult) -> list[float]:
    return [r["total"] for r in result.losses]


def falling(values: list[float], factor: float) -> bool:
    head, tail = values[:4], values[-4:]
    return sum(tail) / len(tail) < factor * sum(head) / len(head)


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


# ---- the three stages on a fixed batch; their checkpoints feed the next stage --------------------

@pytest.fixture(scope="module")
def backbone_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("backbone")
    result = train.main(tiny("backbone", out, steps=30, lr=2e-3, overfit_batch=True, checkpoint_every=10))
    return result, out / "last.safetensors"


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    result = train.main(tiny("flow", out, steps=30, lr=1e-3, overfit_batch=True, flow_pairs=16,
                             flow_eval_pairs=4, eval_every=15, checkpoint_every=30))
    return result, out / "last.safetensors"


def test_backbone_stage_loss_falls_and_saves_a_teacher(backbone_run):
    from evss.checkpoint import load_model, read_metadata
    result, ckpt = backbone_run
    assert result.step == 30 and len(result.losses) == 30
    assert all(torch.isfinite(torch.tensor(totals(result))))
    assert falling(totals(result), 0.8), totals(result)
    model, config = load_model(ckpt)
    assert config.name == "tiny" and config.num_classes == 11
    assert read_metadata(ckpt)["step"] == "30"
    trained = result.model.backbone.state_dict()
    assert all(torch.equal(v.cpu(), trained[k].cpu()) for k, v in model.backbone.state_dict().items())


def test_flow_stage_multiscale_epe_falls_and_reports_held_out_epe(flow_run):
    result, ckpt = flow_run
    assert ckpt.is_file()
    assert falling(totals(result), 0.9), totals(result)
    assert {"epe6", "epe5", "epe4", "epe3", "epe2", "total"} <= set(result.losses[0])
    assert [e["step"] for e in result.evals] == [15, 30]  # every eval_every steps and at the end
    assert all(0.0 <= e["epe"] < 100.0 for e in result.evals)
    # the references of the curve: zero flow and DIS on the same held-out pairs, computed once
    first, last = result.evals[0], result.evals[-1]
    assert first["epe_zero"] == last["epe_zero"] > first["epe_dis"] == last["epe_dis"] > 0


def test_evss_stage_loss_falls_with_teacher_and_pretrained_flow(backbone_run, flow_run, tmp_path):
    from evss.checkpoint import load_model
    result = train.main(tiny("evss", tmp_path, steps=30, lr=3e-3, overfit_batch=True, checkpoint_every=30,
                             teacher=str(backbone_run[1]), flow_init=str(flow_run[1])))
    assert {"warp", "semantic", "edge", "edge_semantic", "total"} <= set(result.losses[0])
    assert all(torch.isfinite(torch.tensor(totals(result))))
    # L_w is bounded below by the entropy of the (barely trained) teacher's own logits, so the total
    # falls less than the terms that CoNet controls
    assert falling(totals(result), 0.95), totals(result)
    for term in ("semantic", "edge"):
        assert falling([r[term] for r in result.losses], 0.95), term
    model, _ = load_model(tmp_path / "last.safetensors")
    teacher, _ = load_model(backbone_run[1])
    # the backbone stays frozen: the evss checkpoint carries the teacher's weights unchanged
    for k, v in teacher.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k


# ---- resuming ------------------------------------------------------------------------------------

def test_resume_reproduces_the_uninterrupted_losses(backbone_run, tmp_path):
    teacher = str(backbone_run[1])
    common = dict(steps=6, checkpoint_every=2, teacher=teacher, lr=1e-3)
    whole = train.main(tiny("evss", tmp_path / "whole", **common))
    first = train.main(tiny("evss", tmp_path / "cut", stop_at=3, **common))
    assert first.step == 3
    state = torch.load(tmp_path / "cut" / "last.state.pt", weights_only=True)  # plain tensors/containers
    assert state["step"] == 3
    # another config cannot continue that run; without --resume the folder is not overwritten
    with pytest.raises(ConfigError, match="another config"):
        train.main(tiny("evss", tmp_path / "cut", resume=True, **{**common, "lr": 5e-4}))
    with pytest.raises(ConfigError, match="pass --resume"):
        train.main(tiny("evss", tmp_path / "cut", **common))
    rest = train.main(tiny("evss", tmp_path / "cut", resume=True, **common))
    assert [r["step"] for r in rest.losses] == [4, 5, 6]
    assert without_time(first.losses + rest.losses) == without_time(whole.losses)
    for (k, a), b in zip(whole.model.state_dict().items(), rest.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_with_a_teacher_cache_reuses_the_cache(backbone_run, tmp_path):
    """The cache is keyed by the frozen backbone; a resumed run must present the run's backbone
    (not a freshly initialised one) and continue exactly as the uninterrupted run."""
    common = dict(steps=4, checkpoint_every=2, teacher=str(backbone_run[1]), lr=1e-3, flow_source="dis",
                  cache=str(tmp_path / "cache"))
    whole = train.main(tiny("evss", tmp_path / "whole", **common))
    train.main(tiny("evss", tmp_path / "cut", stop_at=2, **common))
    manifest = (tmp_path / "cache" / "manifest.json").read_text()
    rest = train.main(tiny("evss", tmp_path / "cut", resume=True, **common))
    assert [r["step"] for r in rest.losses] == [3, 4]
    assert without_time(rest.losses) == without_time(whole.losses[2:])
    assert (tmp_path / "cache" / "manifest.json").read_text() == manifest  # reused, not rebuilt


# ---- two processes, gloo -------------------------------------------------------------------------

DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from evss import train
    config = train.load_train_config(sys.argv[1])
    result = train.main(config)
    torch.save(result.model.state_dict(), os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
""")


def test_ddp_two_processes_keep_identical_parameters(backbone_run, tmp_path):
    config = tiny("evss", tmp_path / "run", steps=3, checkpoint_every=3, lr=1e-3, teacher=str(backbone_run[1]),
                  threads=1)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(dataclasses.asdict(config)))
    script = tmp_path / "ddp_worker.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(config_path), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k, v in r0.items():
        assert torch.equal(v, r1[k]), k
    from evss.config import build_model
    train.seed_everything(config.seed)  # what main() does before it builds the model
    initial = build_model(train.resolve_model_config(config))
    changed = [k for k, v in initial.named_parameters() if not torch.equal(v.detach(), r0[k])]
    assert any(k.startswith("correction.") for k in changed) and any(k.startswith("flow.") for k in changed)
    assert (tmp_path / "run" / "last.safetensors").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3]  # rank 0 alone logs (log_every 10 -> the last step only)


# ---- the keyframe update branch ------------------------------------------------------------------

def test_evss_stage_starts_the_keyframe_update_branch_from_the_teacher(tmp_path):
    """correction.update=keyframe: the copy starts as the teacher, its encoder stays frozen, and
    its decoder and heads are what the stage trains."""
    from evss.checkpoint import load_model, save_model
    from evss.config import build_model, preset
    torch.manual_seed(1)
    teacher_config = preset("lite0")
    teacher_path = tmp_path / "teacher.safetensors"
    save_model(teacher_path, build_model(teacher_config), teacher_config)
    sets = ("correction.update=keyframe", "correction.update_scale=0.5")
    out = tmp_path / "run"
    train.main(tiny("evss", out, model="lite0", model_set=sets, steps=3, lr=1e-3, checkpoint_every=3,
                    teacher=str(teacher_path), flow_init=None))
    model, config = load_model(out / "last.safetensors")
    assert config.correction.update == "keyframe"
    teacher, _ = load_model(teacher_path)
    net, key = model.correction.net.state_dict(), teacher.backbone.state_dict()
    assert all(torch.equal(net[k], v) for k, v in key.items() if k.startswith("encoder."))
    assert not all(torch.equal(net[k], v) for k, v in key.items() if k.startswith("up4."))
    assert config.correction.update_scale == 0.5 and not config.correction.update_train_encoder
