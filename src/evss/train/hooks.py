"""What happens after a training step besides the step itself: logging and held-out evaluation.

:func:`evss.train.loop.fit` calls every hook's ``after_step`` after each step (in list order) and
``at_end`` once after the last step and its checkpoint. Only rank 0 logs and evaluates.

* :class:`MetricsLog`: one JSON line per logged step and per evaluation in ``metrics.jsonl``, and
  TensorBoard scalars in ``tb/``;
* :class:`Evaluation`: the stage's held-out evaluation every ``eval_every`` steps and at the end;
  the best held-out mIoU so far is saved as ``best.safetensors`` (model selection on held-out
  frames, never on the evaluation clip).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Protocol

import torch.nn as nn
from torch.utils.tensorboard import SummaryWriter

from evss import checkpoint
from evss.config import EVSSConfig
from evss.train.state import BEST_FILE

METRICS_FILE = "metrics.jsonl"


class StepHook(Protocol):
    def after_step(self, step: int, record: dict[str, float], *, last: bool) -> None: ...

    def at_end(self, step: int) -> None: ...


class MetricsLog:
    """``metrics.jsonl`` (and TensorBoard) of a run, opened at step ``start`` on rank 0.

    A killed run logged steps after its last checkpoint; ``--resume`` does them again, so their
    records are dropped on opening (:func:`trim_metrics`).
    """

    def __init__(self, out_dir: Path, *, start: int, every: int, tensorboard: bool, resume: bool,
                 is_main: bool, show: Callable[[dict[str, str]], None] = lambda postfix: None) -> None:
        self.path, self.every, self.is_main, self.show = out_dir / METRICS_FILE, every, is_main, show
        self.writer: SummaryWriter | None = None
        if is_main:
            trim_metrics(self.path, start)
            if tensorboard:
                self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=start + 1 if resume else None)

    def write(self, record: dict[str, float]) -> None:
        if self.writer is not None:
            kind = "eval" if "epe" in record or "miou" in record else "train"
            for k, v in record.items():
                if k != "step":
                    self.writer.add_scalar(f"{kind}/{k}", v, int(record["step"]))
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def after_step(self, step: int, record: dict[str, float], *, last: bool) -> None:
        if self.is_main and (step % self.every == 0 or last):
            names = [k for k in record if k not in ("step", "lr", "skipped", "seconds")]
            self.show({k: f"{record[k]:.3f}" for k in names if k == "total" or len(names) <= 3})
            self.write(record)

    def at_end(self, step: int) -> None:
        pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Evaluation:
    """The stage's held-out evaluation (``evaluate() -> {"epe": ...}`` or ``{"miou": ...}``)."""

    def __init__(self, evaluate: Callable[[], dict[str, float]] | None, *, every: int, log: MetricsLog,
                 model: nn.Module, model_config: EVSSConfig, out_dir: Path, is_main: bool,
                 say: Callable[[str], None] = print) -> None:
        self.evaluate, self.every, self.log, self.say = evaluate, every, log, say
        self.model, self.model_config, self.out_dir, self.is_main = model, model_config, out_dir, is_main
        self.results: list[dict[str, float]] = []
        self.best = best_eval(out_dir / METRICS_FILE) if is_main else None

    def after_step(self, step: int, record: dict[str, float], *, last: bool) -> None:
        if self.every and step % self.every == 0 and not last:
            self.run(step)

    def at_end(self, step: int) -> None:
        self.run(step)

    def run(self, step: int) -> None:
        if self.evaluate is None or not self.is_main:
            return
        result = {"step": step, **self.evaluate()}
        self.results.append(result)
        self.log.write(result)
        record = getattr(self.evaluate, "record", None)  # a stage's own log of its evaluations (heldout.jsonl)
        if record is not None:
            record(result)
        self.say(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()
                                              if k != "step" and "/" not in k))
        if "miou" in result and (self.best is None or result["miou"] > self.best):
            self.best = result["miou"]
            checkpoint.save_model(self.out_dir / BEST_FILE, self.model, self.model_config,
                                  extra={"step": str(step), "miou": f"{self.best:.6f}"})


def best_eval(path: Path) -> float | None:
    """The best held-out mIoU logged so far in ``metrics.jsonl`` (None without one)."""
    if not path.exists():
        return None
    values = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("miou"), (int, float)):
            values.append(float(record["miou"]))
    return max(values) if values else None


def trim_metrics(path: Path, start: int) -> None:
    """Keep the complete records of ``metrics.jsonl`` up to step ``start`` (none from a fresh start).

    A run killed after its last checkpoint logged steps that ``--resume`` does again, and possibly
    half a line; without this the log would hold those steps twice.
    """
    if not path.exists():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] <= start:
            kept.append(line)
    checkpoint.atomic_write(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept)))
