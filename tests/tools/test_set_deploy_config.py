"""recipes/set_deploy_config.sh: test-time settings of a weights file change, its tensors do not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from evss.checkpoint import load_model, read_metadata, read_tensors, save_model
from evss.config import preset

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "set_deploy_config.sh"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(RECIPE), *args], capture_output=True, text=True, env=env, timeout=300)


def test_changes_the_distortion_config_and_keeps_tensors_and_notes(tmp_path, tiny_model):
    path = save_model(tmp_path / "w.safetensors", tiny_model, preset("tiny"), half=True, extra={"recipe": "made here"})
    before = read_tensors(path)
    r = _run(str(path), "distortion.coarse_reference=keyframe", "distortion.w_f=0.3")
    assert r.returncode == 0, r.stderr
    _, config = load_model(path)
    assert (config.distortion.coarse_reference, config.distortion.w_f) == ("keyframe", 0.3)
    after = read_tensors(path)
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert all(after[k].dtype == torch.float16 for k in after if after[k].is_floating_point())
    assert read_metadata(path)["recipe"].startswith("made here\nthen: recipes/set_deploy_config.sh")


def test_refuses_other_sections_and_bad_values_and_leaves_the_file(tmp_path, tiny_model):
    path = save_model(tmp_path / "w.safetensors", tiny_model, preset("tiny"))
    raw = path.read_bytes()
    r = _run(str(path), "flow.width=2")
    assert r.returncode != 0 and "only distortion.* can change here, not flow.width" in r.stderr
    r = _run(str(path), "distortion.coarse_reference=key")
    assert r.returncode != 0 and "coarse_reference 'key' is not one of" in r.stderr and "Traceback" not in r.stderr
    r = _run(str(tmp_path / "nope.safetensors"), "distortion.w_f=0.1")
    assert r.returncode != 0 and "nope.safetensors" in r.stderr and "Traceback" not in r.stderr
    assert path.read_bytes() == raw and not list(tmp_path.glob("*.new"))


def test_sets_and_clears_the_inference_size(tmp_path, tiny_model):
    path = save_model(tmp_path / "w.safetensors", tiny_model, preset("tiny"))
    before = read_tensors(path)
    r = _run(str(path), "inference_size=1024")
    assert r.returncode == 0, r.stderr
    assert load_model(path)[1].inference_size == 1024 and "set_deploy_config.sh inference_size=1024" in (
        read_metadata(path)["recipe"])
    after = read_tensors(path)
    assert all(torch.equal(after[k], before[k]) for k in before)
    r = _run(str(path), "inference_size=null")
    assert r.returncode == 0 and load_model(path)[1].inference_size is None
    r = _run(str(path), "inference_size=8")
    assert r.returncode != 0 and "inference_size must be None or in [64, 16384]" in r.stderr
    r = _run(str(path), "default_mode=evss")
    assert r.returncode != 0 and "only distortion.* can change here, not default_mode (and inference_size" in r.stderr
