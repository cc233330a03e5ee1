"""The training loop shared by the stages: :func:`fit`, a plain loop over steps.

Each step: a batch (unreadable samples skipped and counted, see ``--max-bad-files``), the stage's
loss dict under autocast (CUDA only), backward, and an optimizer step only when every loss is
finite: a non-finite step is skipped (BatchNorm's running statistics put back) and the run stops
after ``max_bad_steps`` of them in a row, keeping the last good checkpoint. After the step the
hooks run (:mod:`evss.train.hooks`: log, evaluation), then the checkpoint every
``checkpoint_every`` steps (:class:`evss.train.state.Checkpoints`).

Several processes (``torchrun``): the trained part is wrapped in DistributedDataParallel, one
all-reduce per step gives every rank the mean losses and the same verdict, and only rank 0 writes
files and shows the progress bar.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from evss.config import EVSSConfig
from evss.data.validate import BadItems, check_training_data, skip_bad_items
from evss.device import Runtime
from evss.errors import ConfigError, EvssError
from evss.train.config import TrainConfig, output_dir
from evss.train.hooks import Evaluation, MetricsLog, StepHook
from evss.train.sampling import ItemError, build_dataloader
from evss.train.state import STATE_FILE, Checkpoints, load_training_state, write_train_config


@dataclass
class Stage:
    """What a stage hands to :func:`fit`."""

    model: nn.Module  # the full EVSSNet: what the checkpoints hold
    trained: nn.Module  # the module being trained (a part of ``model``, or ``model``)
    dataset: Any
    losses: Callable[[nn.Module, dict[str, Any]], dict[str, torch.Tensor]]  # (trained or its DDP wrapper, batch)
    evaluate: Callable[[], dict[str, float]] | None = None  # rank 0, on the unwrapped module
    find_unused_parameters: bool = False


@dataclass
class TrainResult:
    """What a stage returns: the trained model and the per-step record."""

    step: int  # the last step done
    losses: list[dict[str, float]]  # one dict per step of this run: step, lr, each loss, skipped
    evals: list[dict[str, float]]  # held-out evaluations: step, epe (flow, full-resolution pixels) or miou
    model: nn.Module  # the full EVSSNet (unwrapped), on the training device
    model_config: EVSSConfig
    out_dir: Path


# ---- optimisation ----------------------------------------------------------------------------------

def cosine_factor(step: int, *, steps: int, lr: float, min_lr: float) -> float:
    """lr(step) / lr for cosine annealing from lr to min_lr over ``steps`` (Sec. IV-A)."""
    t = min(step, steps) / steps
    return (min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))) / lr


def lr_factor(step: int, config: TrainConfig) -> float:
    """lr(step) / lr: linear warm-up from lr/10, then cosine or poly(0.9) decay to min_lr."""
    if step < config.warmup_steps:
        return 0.1 + 0.9 * step / config.warmup_steps
    if config.schedule == "cosine":
        return cosine_factor(step, steps=config.steps, lr=config.lr, min_lr=config.min_lr)
    t = min(step, config.steps) / config.steps
    floor = config.min_lr / config.lr
    return floor + (1.0 - floor) * (1.0 - t) ** 0.9


def param_groups(trained: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Trainable parameters; a pretrained encoder's (``encoder.*``) at ``encoder_lr_mult`` x lr."""
    base, encoder = [], []
    for name, p in trained.named_parameters():
        if p.requires_grad:
            (encoder if name.split(".")[0] == "encoder" and config.encoder_lr_mult != 1.0 else base).append(p)
    groups = [{"params": base, "lr": config.lr}] if base else []
    if encoder:
        groups.append({"params": encoder, "lr": config.lr * config.encoder_lr_mult})
    return groups


def make_optimizer(trained: nn.Module, config: TrainConfig, device: torch.device
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, torch.amp.GradScaler]:
    """Adam(W) over the trainable parameters, the lr schedule (:func:`lr_factor`) and the fp16 loss scaler."""
    groups = param_groups(trained, config)
    if not groups:
        raise ConfigError(f"stage {config.stage}: nothing to train (every parameter is frozen)")
    optimizer = (torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam)(
        groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp == "fp16")
    return optimizer, scheduler, scaler


def autocast_context(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 / fp16 autocast on CUDA as ``config.amp`` says; nothing on other devices."""
    if device.type != "cuda" or config.amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)


# ---- the loop ----------------------------------------------------------------------------------------

def fit(config: TrainConfig, rt: Runtime, stage: Stage, model_config: EVSSConfig) -> TrainResult:
    """Train ``stage.trained`` for steps ``[start, stop)``; ``start`` is 0, or the step a resumed run stopped at."""
    out_dir = output_dir(config)
    device = rt.device
    check_training_data(config, stage.dataset, model_config, device_type=device.type,  # every file, before step one
                        print_line=lambda line: print(line, file=sys.stderr) if rt.is_main else None)
    model = stage.model.to(device)
    trained = _sync_batchnorm(model, stage.trained, config, rt)
    optimizer, scheduler, scaler = make_optimizer(trained, config, device)
    start, stop = _start_and_stop(config, rt, out_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                                  scaler=scaler)
    wrapped = _distributed(trained, stage, rt)
    if rt.is_main:
        write_train_config(out_dir, config)
    loader = build_dataloader(config, stage.dataset, start=start, stop=stop, rank=rt.rank,
                              world_size=rt.world_size, pin_memory=device.type == "cuda")
    bar = tqdm(total=stop, initial=start, desc=f"train {config.stage}", dynamic_ncols=True,
               disable=not (rt.is_main and config.progress))
    log = MetricsLog(out_dir, start=start, every=config.log_every, tensorboard=config.tensorboard,
                     resume=config.resume, is_main=rt.is_main, show=bar.set_postfix)
    evaluation = Evaluation(stage.evaluate, every=config.eval_every, log=log, model=model, model_config=model_config,
                            out_dir=out_dir, is_main=rt.is_main, say=bar.write)
    checkpoints = Checkpoints(out_dir, config=config, model=model, model_config=model_config, optimizer=optimizer,
                              scheduler=scheduler, scaler=scaler, world_size=rt.world_size, is_main=rt.is_main,
                              step=start)
    loop = _Loop(config=config, rt=rt, stage=stage, wrapped=wrapped, trained=trained, optimizer=optimizer,
                 scheduler=scheduler, scaler=scaler, bar=bar, hooks=[log, evaluation], checkpoints=checkpoints,
                 stop=stop)
    try:
        step = loop.run(loader, start)
        loop.finish(step)
    finally:
        bar.close()
        log.close()
    return TrainResult(step=step, losses=loop.history, evals=evaluation.results, model=model,
                       model_config=model_config, out_dir=out_dir)


def _start_and_stop(config: TrainConfig, rt: Runtime, out_dir: Path, *, model: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                    scaler: torch.amp.GradScaler) -> tuple[int, int]:
    """(the first step to do, the step to stop after): a resumed run continues from its state file;
    a new one refuses a folder that already holds a run."""
    start = 0
    if config.resume:
        start = load_training_state(out_dir, model=model, config=config, optimizer=optimizer,
                                    scheduler=scheduler, scaler=scaler, world_size=rt.world_size)
    elif (out_dir / STATE_FILE).exists():
        raise ConfigError(f"{out_dir} already holds a run ({STATE_FILE}); pass --resume to continue it "
                          "or choose another --out")
    stop = config.stop_at or config.steps
    if start > stop:
        raise ConfigError(f"--resume: {out_dir} is already at step {start}, past the stop at step {stop}")
    return start, stop


def _distributed(trained: nn.Module, stage: Stage, rt: Runtime) -> nn.Module:
    """``trained`` wrapped in DistributedDataParallel under several processes; else ``trained`` itself."""
    if not rt.distributed:
        return trained
    device = rt.device
    return nn.parallel.DistributedDataParallel(
        trained, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=stage.find_unused_parameters)


@dataclass
class _Loop:
    """The steps of one :func:`fit` call and what they share: the optimiser, the hooks, the record."""

    config: TrainConfig
    rt: Runtime
    stage: Stage
    wrapped: nn.Module  # ``trained`` or its DDP wrapper: what the losses run
    trained: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    bar: tqdm
    hooks: list[StepHook]
    checkpoints: Checkpoints
    stop: int
    history: list[dict[str, float]] = field(default_factory=list)
    bad_in_a_row: int = 0
    bad_files: dict[str, int] = field(default_factory=dict)  # message (it names the file) -> samples skipped for it

    def run(self, loader: Iterable[Any], start: int) -> int:
        """Steps ``start + 1 .. stop`` over ``loader``; returns the last step done."""
        step = start
        self.wrapped.train()
        tick = time.perf_counter()
        for step_index, batch in zip(range(start, self.stop), loader):
            step = step_index + 1  # steps done after this one
            if isinstance(batch, ItemError):  # a custom collate's whole-batch error
                batch = BadItems(errors=(batch,), batch=None)
            if isinstance(batch, BadItems):  # unreadable samples: skipped and counted, see --max-bad-files
                batch = skip_bad_items(batch, self.bad_files, step=step, max_bad_files=self.config.max_bad_files,
                                       distributed=self.rt.distributed,
                                       warn=self.bar.write if self.rt.is_main else None,
                                       checkpoint=(self.checkpoints.path, self.checkpoints.last_saved))
                if batch is None:  # nothing readable in this step's batch: the step is skipped
                    self.scheduler.step()
                    self.history.append({"step": step, "lr": self.optimizer.param_groups[0]["lr"], "skipped": 1.0,
                                         "seconds": time.perf_counter() - tick})
                    self.bar.update(1)
                    tick = time.perf_counter()
                    continue
            self.train_step(step, batch, tick)
            tick = time.perf_counter()  # checkpoints and evaluations are not part of a step's time
        return step

    def train_step(self, step: int, batch: dict[str, Any], tick: float) -> None:
        """Step ``step`` on ``batch`` (begun at ``tick``), then its record, the hooks and the checkpoint."""
        lr = self.optimizer.param_groups[0]["lr"]
        losses, finite = _step(self.config, self.rt, self.stage, self.wrapped, self.trained, batch, self.optimizer,
                               self.scaler)
        self.count_bad_loss(step, losses, finite)
        self.scheduler.step()
        if self.rt.device.type == "cuda":
            torch.cuda.synchronize(self.rt.device)
        record = {"step": step, "lr": lr, **losses, "skipped": float(not finite),
                  "seconds": time.perf_counter() - tick}  # wall time of the step, data loading included
        self.history.append(record)
        self.bar.update(1)
        for hook in self.hooks:
            hook.after_step(step, record, last=step == self.stop)
        if step % self.config.checkpoint_every == 0 and step != self.stop and finite:
            self.checkpoints.save(step)  # never right after a skipped step: the last checkpoint stays the last good one

    def count_bad_loss(self, step: int, losses: dict[str, float], finite: bool) -> None:
        """Count non-finite steps in a row; stop at ``max_bad_steps``, naming the last good checkpoint."""
        if finite:
            self.bad_in_a_row = 0
            return
        self.bad_in_a_row += 1
        if self.rt.is_main:
            self.bar.write(f"evss train: step {step}: non-finite loss "
                           f"({', '.join(f'{k} {v:.4g}' for k, v in losses.items())}); step skipped",
                           file=sys.stderr)
        if self.bad_in_a_row >= self.config.max_bad_steps:
            last = self.checkpoints.last_saved
            raise EvssError(f"{self.bad_in_a_row} non-finite losses in a row (last at step {step}); stopped. "
                            f"The last good checkpoint is {self.checkpoints.path} (step {last})"
                            if last else
                            f"{self.bad_in_a_row} non-finite losses in a row (last at step {step}); stopped "
                            "before the first checkpoint")

    def finish(self, step: int) -> None:
        """After the last step: the same BatchNorm statistics on every rank, the final checkpoint, the
        hooks' ``at_end``."""
        if step != self.stop:
            raise EvssError(f"the data loader ran out at step {step} of {self.stop}")
        if self.rt.distributed:  # DDP syncs BN statistics at each forward; the last step's are rank-local
            for buffer in self.trained.buffers():
                dist.broadcast(buffer, src=0)
        if self.checkpoints.last_saved != self.stop:
            self.checkpoints.save(self.stop)
        for hook in self.hooks:
            hook.at_end(step)
        if self.rt.distributed:
            dist.barrier()  # rank 0 has written its files


def _step(config: TrainConfig, rt: Runtime, stage: Stage, wrapped: nn.Module, trained: nn.Module,
          batch: dict[str, Any], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
          ) -> tuple[dict[str, float], bool]:
    """One optimisation step on ``batch``: (the losses, averaged over the processes; whether they
    were all finite, i.e. whether the optimizer stepped)."""
    device = rt.device
    batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    optimizer.zero_grad(set_to_none=True)
    # BatchNorm updates its running statistics in the forward pass, loss or no loss: keep them so a
    # skipped (non-finite) step leaves no trace in the model.
    kept = [b.detach().clone() for b in trained.buffers()]
    with autocast_context(config, device):
        losses = stage.losses(wrapped, batch)
    names = sorted(losses)
    values = torch.stack([losses[k].detach().float() for k in names])  # (K,)
    if rt.distributed:  # one all-reduce gives every rank the mean losses and the same verdict
        dist.all_reduce(values)
        values = values / rt.world_size
    # Always backward (so DDP's collectives stay in step on every rank); step only when finite.
    scaler.scale(losses["total"]).backward()
    finite = bool(torch.isfinite(values).all())
    if finite:
        scaler.step(optimizer)
        scaler.update()
    else:
        with torch.no_grad():
            for buffer, before in zip(trained.buffers(), kept):
                buffer.copy_(before)
    return dict(zip(names, values.tolist())), finite


def _sync_batchnorm(model: nn.Module, trained: nn.Module, config: TrainConfig, rt: Runtime) -> nn.Module:
    """``trained`` with SyncBatchNorm when asked for (several CUDA processes), put back into ``model``."""
    if not (config.sync_bn and rt.distributed):
        return trained
    if rt.device.type != "cuda":
        if rt.is_main:
            print("evss train: --sync-bn needs CUDA; using per-process BatchNorm on the CPU")
        return trained
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
    if converted is not trained and model is not trained:
        for name, child in model.named_children():
            if child is trained:
                setattr(model, name, converted)
    return converted
