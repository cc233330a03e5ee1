"""A run's resumable state: RNG states, the training-state file and the run's checkpoints.

Files in the run folder:

* ``last.state.pt``: optimizer, scheduler, scaler, step, RNG states, config and the weights; plain
  tensors and containers only, so it loads with ``torch.load(weights_only=True)``, and it alone can
  resume a run;
* ``last.safetensors``: the model (:func:`evss.checkpoint.save_model`), for evaluation and the
  next stage;
* ``best.safetensors``: backbone stage with held-out frames, the best held-out mIoU so far.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from evss import checkpoint
from evss.config import EVSSConfig
from evss.errors import CheckpointError, ConfigError
from evss.train.config import RESUME_MAY_CHANGE, TrainConfig, train_config_to_dict

MODEL_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"  # backbone stage with --holdout: the best held-out mIoU so far
STATE_FILE = "last.state.pt"


# ---- random number generators -------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain containers (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                       float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the training-state file ---------------------------------------------------------------------

def save_training_state(out_dir: Path, *, step: int, model: nn.Module, model_config: EVSSConfig,
                        config: TrainConfig, optimizer: Any, scheduler: Any, scaler: Any,
                        world_size: int = 1) -> None:
    """Write ``last.state.pt`` then ``last.safetensors``, each atomically; both carry the step.

    The state file holds everything a resume needs, the model's weights included, so a run killed
    between the two writes (or at any other moment) resumes from the newest complete state file.
    ``last.safetensors`` is the checkpoint for everything else (evaluation, the next stage).
    """
    config_json = json.dumps(train_config_to_dict(config))
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = {"format": "evss-train-state", "version": 2, "step": step, "stage": config.stage,
             "model": weights, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "rng": rng_state(), "config": config_json, "world_size": world_size}
    checkpoint.atomic_write(out_dir / STATE_FILE, lambda tmp: torch.save(state, str(tmp)))
    checkpoint.save_model(out_dir / MODEL_FILE, model, model_config,
                          extra={"step": str(step), "stage": config.stage, "train_config": config_json})


def read_training_state(path: Path) -> dict[str, Any]:
    """A training state file, loaded with ``weights_only=True`` and checked; CheckpointError otherwise."""
    state = checkpoint.safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != "evss-train-state":
        raise CheckpointError(f"{path}: not an evss training state")
    need = {"step": int, "config": str, "optimizer": dict, "scheduler": dict, "rng": dict}
    for key, kind in need.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise CheckpointError(f"{path}: a damaged training state ({key!r} is "
                                  f"{type(state.get(key)).__name__}, expected {kind.__name__})")
    if "model" in state and not (isinstance(state["model"], dict)
                                 and all(isinstance(v, torch.Tensor) for v in state["model"].values())):
        raise CheckpointError(f"{path}: a damaged training state (its weights are not a state_dict)")
    try:
        saved = json.loads(state["config"])
    except (ValueError, RecursionError):
        saved = None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: a damaged training state (its config is not a JSON object)")
    state["config_dict"] = saved
    return state


def load_training_state(out_dir: Path, *, model: nn.Module, config: TrainConfig, optimizer: Any,
                        scheduler: Any, scaler: Any, world_size: int = 1) -> int:
    """Restore model, optimizer, scheduler, scaler and RNG states; return the step to continue after."""
    state_path, model_path = out_dir / STATE_FILE, out_dir / MODEL_FILE
    if not state_path.is_file():
        raise CheckpointError(f"--resume: no training state in {out_dir} (expected {STATE_FILE})")
    state = read_training_state(state_path)
    saved = state["config_dict"]
    now = train_config_to_dict(config)
    differ = sorted(k for k in set(saved) | set(now)
                    if k not in RESUME_MAY_CHANGE and _plain(saved.get(k)) != _plain(now.get(k)))
    if differ:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in differ[:5])
        raise ConfigError(f"--resume: the run in {out_dir} was made with another config ({detail})")
    if int(state.get("world_size", 1)) != world_size:
        raise ConfigError(f"--resume: the run in {out_dir} used {state.get('world_size')} process(es), this one "
                          f"{world_size}; the sample order depends on it, so resume with the same number")
    step = int(state["step"])
    if "model" in state:
        weights, source = state["model"], str(state_path)
    else:  # version 1 files: the weights are in last.safetensors, which must be of the same step
        if not model_path.is_file():
            raise CheckpointError(f"--resume: {state_path} has no weights and {model_path} is missing")
        meta_step = checkpoint.read_metadata(model_path).get("step")
        if meta_step != str(step):
            raise CheckpointError(f"{model_path} is from step {meta_step} but {state_path} from step {step} "
                                  "(interrupted while checkpointing?)")
        weights, source = checkpoint.read_tensors(model_path), str(model_path)
    checkpoint.load_state_checked(model, weights, source)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{state_path}: a damaged training state ({type(exc).__name__}: {exc})") from None
    return step


def _plain(value: Any) -> Any:
    return list(map(_plain, value)) if isinstance(value, (list, tuple)) else value


class Checkpoints:
    """The run's checkpoints: written by rank 0 (:func:`save_training_state`), and the step of the
    last one, which the loop names when it stops (the last good checkpoint)."""

    def __init__(self, out_dir: Path, *, config: TrainConfig, model: nn.Module, model_config: EVSSConfig,
                 optimizer: Any, scheduler: Any, scaler: Any, world_size: int, is_main: bool, step: int) -> None:
        self.out_dir, self.config, self.model, self.model_config = out_dir, config, model, model_config
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.world_size, self.is_main = world_size, is_main
        self.last_saved = step  # the step of the newest checkpoint (the start step of a resumed run)

    @property
    def path(self) -> Path:
        return self.out_dir / MODEL_FILE

    def save(self, step: int) -> None:
        if self.is_main:
            save_training_state(self.out_dir, step=step, model=self.model, model_config=self.model_config,
                                config=self.config, optimizer=self.optimizer, scheduler=self.scheduler,
                                scaler=self.scaler, world_size=self.world_size)
        self.last_saved = step


def write_train_config(out_dir: Path, config: TrainConfig) -> None:
    """``train_config.json``: the TrainConfig of the run, for people and tools to read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(out_dir / "train_config.json",
                            lambda tmp: tmp.write_text(json.dumps(train_config_to_dict(config), indent=2) + "\n"))


def load_part(target: nn.Module, path: str, part: str, what: str) -> None:
    """Load ``part`` ("backbone", "flow", "correction" or "" for all) of an evss checkpoint."""
    source, _ = checkpoint.load_model(path)
    module = getattr(source, part) if part else source
    checkpoint.load_state_checked(target, module.state_dict(), f"{what} {path}")
