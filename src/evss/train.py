"""Training: three stages, one plain loop (``evss train backbone|flow|evss``).

Stages (paper Sec. III-E and IV-A; authors' code facts in the reference README, sections 7 and 11):

* ``backbone``: per-frame segmentation of the dataset's labelled frames (cross-entropy, 255 ignored)
  trains the CSRNet of the chosen preset. The checkpoint is a full evss checkpoint whose backbone is
  trained and whose other parts keep their fresh initialisation, so the ``evss`` stage can load it
  as its teacher (``--teacher``).
* ``flow``: FlowNet pretraining on generated :class:`~evss.data.flowpairs.FlowPairsDataset` pairs
  (the paper pretrains on Flying Chairs) with FlowNet's multi-scale EPE (see :func:`multiscale_epe`);
  the end-point error on held-out pairs is reported in full-resolution pixels every
  ``eval_every`` steps and at the end.
* ``evss``: FlowNet + CoNet trained jointly with the four losses of Eq. (6) against the frozen
  backbone (Sec. IV-A). See :func:`evss_step_losses`.

Each stage runs :func:`fit`: a tqdm bar, TensorBoard scalars in ``out_dir/tb``, AMP on CUDA only,
non-finite losses skipped (and the run stopped after ``max_bad_steps`` in a row, keeping the last
good checkpoint), and checkpoints every ``checkpoint_every`` steps: ``out_dir/last.safetensors``
(the model, :func:`evss.checkpoint.save_model`) and ``out_dir/last.state.pt`` (optimizer, scheduler,
step, RNG states, config; plain tensors and containers only, so it loads with
``torch.load(weights_only=True)``; it holds the weights too, so it alone can resume a run).

Determinism and resuming: the sample drawn at every position of the run is a function of
``(seed, step)`` only (:class:`StepPositions` / :class:`ByPosition`), and the augmentations are
drawn from ``(seed, epoch, index)``; so ``--resume`` continues the exact sample stream, and on the
CPU a resumed run reproduces the losses of an uninterrupted one.

Several GPUs: launch with ``torchrun --nproc_per_node N -m evss.cli train ...``. With
``WORLD_SIZE > 1`` the trained part is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on
the CPU); ``batch_size`` is per process (the authors: 8 per GPU on 2 GPUs) and each rank takes its
own slice of the global sample stream (so a run resumes with the same number of processes). Only
rank 0 writes checkpoints, logs and the progress bar.

Files in ``out_dir`` (default ``runs/<stage>``): ``last.safetensors``, ``last.state.pt``,
``train_config.json`` (the TrainConfig of the run), ``metrics.jsonl`` (one line per logged step and
evaluation) and ``tb/`` (TensorBoard).

This module imports only light modules at the top, so ``evss --help`` stays fast; torch, the data
modules and TensorBoard are imported inside the functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from evss.errors import CheckpointError, ConfigError, EvssError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

    from evss.config import EVSSConfig
    from evss.losses import LossWeights

STAGES = ("backbone", "flow", "evss")
DATA_SOURCES = ("synthdrive", "camvid", "cityscapes", "videos")
AMP_MODES = ("off", "bf16", "fp16")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
MODEL_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"  # backbone stage with --holdout: the best held-out mIoU so far
STATE_FILE = "last.state.pt"

# Table IV settings as overrides. Keys starting with "model." set a field of the model config
# (EVSSConfig, dotted path); the other keys set a field of TrainConfig (the loss weights).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},  # the proposed model
    "flownet-fixed": {"model.freeze_flow": True},  # FlowNet fixed (pretrained, not fine-tuned)
    "no-ppm": {"model.correction.use_ppm": False},  # w/o PPM: a 3x3 conv replaces it
    "no-ffm3": {"model.correction.use_ffm3": False},  # w/o FFM-3 (the 1/4 fusion)
    "no-ffm3-ffm2": {"model.correction.use_ffm3": False,  # w/o FFM-3 & FFM-2
                     "model.correction.use_ffm2": False},
    "no-concat": {"model.correction.concat_warped": False},  # w/o concatenation of F^w in N_upda
    "no-warped": {"model.correction.concat_warped": False,  # w/o the warped features F^w at all:
                  "model.distortion.use_warped": False},  # no concatenation, F^m = M^f * F^u
    "coarse-only": {"model.distortion.mode": "coarse"},  # w/ coarse distortion map M^c only
    "edge-only": {"model.distortion.mode": "edge"},  # w/ edge map M^e only
    "wf-0.3": {"model.distortion.w_f": 0.3},  # w_f = 0.3 in Eq. (4)
    "wf-0.8": {"model.distortion.w_f": 0.8},  # w_f = 0.8 in Eq. (4)
    "no-les": {"lambda_edge_semantic": 0.0},  # w/o the edge-semantics loss L_es
    "no-le": {"lambda_edge": 0.0},  # w/o the edge loss L_e
    "no-le-les": {"lambda_edge": 0.0, "lambda_edge_semantic": 0.0},  # w/o both
}

# Fields that may differ between a run and its --resume (they do not change what is computed).
RESUME_MAY_CHANGE = frozenset({"resume", "stop_at", "workers", "log_every", "checkpoint_every",
                               "eval_every", "device", "threads", "progress", "tensorboard",
                               "max_bad_steps", "max_bad_files", "teacher", "init", "flow_init", "cache"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved into its state file and its checkpoints."""

    stage: str = "evss"  # "backbone" | "flow" | "evss"
    model: str = "light"  # a preset name (paper, official, light, tiny) or a model JSON file
    model_set: tuple[str, ...] = ()  # "key=value" overrides of the model config, e.g. "distortion.w_f=0.3"
    ablation: tuple[str, ...] = ()  # names from ABLATIONS (Table IV), applied before model_set
    # Data ------------------------------------------------------------------------------------
    data: str = "synthdrive"  # "synthdrive" | "camvid" | "cityscapes" | "videos" (unused by "flow")
    data_root: str | None = None  # dataset folder (videos: a video file, a folder of videos or of frame
    #                               folders); synthdrive without one generates clips in memory
    data_split: str = "train"  # camvid / cityscapes split
    video_max_size: int | None = None  # videos: decode with the longer side at most this (None: as stored)
    extra_data: tuple[str, ...] = ()  # more sources trained on together: "KIND" or "KIND:ROOT" (e.g. "synthdrive",
    #                                   "videos:clips/"), read with the same settings as the main one
    synth_clips: int = 8  # in-memory SynthDrive: number of clips ...
    synth_frames: int = 30  # ... frames per clip ...
    synth_size: tuple[int, int] = (256, 512)  # ... and their size (H, W)
    crop_size: tuple[int, int] | None = (256, 512)  # (H, W) random crop; also the FlowPairs size
    offsets: str = "paper"  # pair offsets i - k: "paper" [-4, 5] \ {0} or "official" {1..5, -2..-5}
    flip: bool = True  # random horizontal flip (Sec. IV-A)
    scale_range: tuple[float, float] | None = None  # backbone stage: random rescale (e.g. 0.5-2x) before the crop
    color_jitter: float = 0.0  # backbone stage: brightness/contrast/saturation jitter (+-), 0 = off
    holdout: tuple[str, ...] = ()  # backbone stage: frame-name patterns (fnmatch) kept out of training;
    #                                held-out mIoU every eval_every steps, best model in best.safetensors
    flow_pairs: int = 100000  # flow stage: training pairs, generated on the fly (seed = seed) ...
    flow_eval_pairs: int = 64  # ... and held-out pairs (another seed) for the EPE report
    # Optimisation (Sec. IV-A: Adam, lr 1e-4, cosine annealing to 1e-6) ------------------------
    batch_size: int = 8  # per process (the authors: 8 per GPU x 2 GPUs; the paper: 16 in all)
    steps: int = 10000
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" (the paper) | "adamw" (decoupled weight decay)
    schedule: str = "cosine"  # "cosine" to min_lr (the paper) | "poly" (power 0.9, to min_lr)
    warmup_steps: int = 0  # linear warm-up from lr/10
    encoder_lr_mult: float = 1.0  # lr of a pretrained encoder's parameters relative to lr
    seg_loss: str = "ce"  # backbone stage: "ce" | "ohem" (hard pixels only, see losses.ohem_cross_entropy)
    class_balance: float = 0.0  # backbone stage: median-frequency class weights ** this power (0 = off)
    # Loss weights of Eq. (6): the paper states none; the authors' code uses 0.2/0.5/0.1/0.2.
    lambda_warp: float = 0.2
    lambda_semantic: float = 0.5
    lambda_edge: float = 0.1
    lambda_edge_semantic: float = 0.2
    es_mask: str = "paper"  # L_es mask: "paper" (M^f > 0.5, Eq. 7) or "official" (argmax of edge logits)
    # FlowNet's multi-scale EPE weights for flow6..flow2 (normalised to sum 1, see multiscale_epe)
    flow_level_weights: tuple[float, ...] = (0.005, 0.01, 0.02, 0.08, 0.32)
    # Initialisation ----------------------------------------------------------------------------
    teacher: str | None = None  # evss stage: evss checkpoint whose backbone is the frozen teacher
    init: str | None = None  # any stage: evss checkpoint loaded into the whole model first; backbone stage
    #                          also "imagenet" (the encoder's ImageNet weights; the default for swiftnet
    #                          presets) or "none" (random initialisation)
    flow_init: str | None = None  # evss stage: evss checkpoint whose FlowNet is loaded (flow stage output)
    flow_source: str = "learned"  # evss stage: the flow CoNet is trained with ("learned" FlowNet, trained
    #                               jointly, or "dis", fixed); saved as the model's flow_source
    cache: str | None = None  # evss stage: teacher-cache folder (built or finished first, then reused):
    #                           the frozen backbone runs once per frame instead of twice per step
    # Loop --------------------------------------------------------------------------------------
    checkpoint_every: int = 500
    log_every: int = 10
    eval_every: int = 500  # flow stage: held-out EPE every this many steps (0: only at the end)
    max_bad_steps: int = 5  # stop after this many non-finite losses in a row
    max_bad_files: int = 10  # files that fail mid-run (after the up-front check) are skipped; stop past this many
    seed: int = 0
    workers: int = 0  # DataLoader worker processes
    amp: str = "bf16"  # "off" | "bf16" | "fp16": autocast dtype on CUDA (always off on the CPU)
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA only)
    device: str = "auto"
    threads: int | None = None  # CPU threads (torch.set_num_threads)
    out_dir: str | None = None  # output folder; None: runs/<stage>
    resume: bool = False  # continue from out_dir/last.state.pt
    overfit_batch: bool = False  # train on the first batch only (debugging, tests)
    stop_at: int | None = None  # stop after this step as if interrupted (the schedule still spans steps)
    progress: bool = True  # tqdm bar on rank 0
    tensorboard: bool = True  # TensorBoard scalars in out_dir/tb on rank 0

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        check(self.stage in STAGES, f"stage {self.stage!r} is not one of {STAGES}")
        check(self.data in DATA_SOURCES, f"data {self.data!r} is not one of {DATA_SOURCES}")
        check(self.offsets in ("paper", "official"), f"offsets {self.offsets!r} is not 'paper' or 'official'")
        check(self.es_mask in ("paper", "official"), f"es_mask {self.es_mask!r} is not 'paper' or 'official'")
        check(self.amp in AMP_MODES, f"amp {self.amp!r} is not one of {AMP_MODES}")
        for name in ("batch_size", "steps", "checkpoint_every", "log_every", "max_bad_steps",
                     "synth_clips", "synth_frames", "flow_pairs", "flow_eval_pairs"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        check(self.max_bad_files >= 0, f"max_bad_files must be >= 0, got {self.max_bad_files}")
        check(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        check(0 < self.min_lr <= self.lr, f"need 0 < min_lr <= lr, got lr {self.lr}, min_lr {self.min_lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.optimizer in ("adam", "adamw"), f"optimizer {self.optimizer!r} is not 'adam' or 'adamw'")
        check(self.schedule in ("cosine", "poly"), f"schedule {self.schedule!r} is not 'cosine' or 'poly'")
        check(self.seg_loss in ("ce", "ohem"), f"seg_loss {self.seg_loss!r} is not 'ce' or 'ohem'")
        check(0 <= self.warmup_steps < self.steps, f"warmup_steps must be in [0, steps), got {self.warmup_steps}")
        check(0 < self.encoder_lr_mult <= 10, f"encoder_lr_mult must be in (0, 10], got {self.encoder_lr_mult}")
        check(0 <= self.color_jitter < 1, f"color_jitter must be in [0, 1), got {self.color_jitter}")
        check(0 <= self.class_balance <= 2, f"class_balance must be in [0, 2], got {self.class_balance}")
        check(self.scale_range is None or (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1] <= 8),
              f"scale_range must be (low, high) with 0 < low <= high <= 8, got {self.scale_range}")
        check(self.flow_source in ("learned", "dis"), f"flow_source {self.flow_source!r} is not 'learned' or "
              "'dis' (codec motion vectors exist only between consecutive decoded frames, not for training pairs)")
        check(self.cache is None or self.stage == "evss", "--cache is for the evss stage")
        check(self.init not in ("imagenet", "none") or self.stage == "backbone",
              f"--init {self.init} is for the backbone stage; other stages take an evss checkpoint")
        for name in ("crop_size", "synth_size"):
            size = getattr(self, name)
            check(size is None or (len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)),
                  f"{name} must be (H, W) with both >= 8, got {size}")
        check(self.crop_size is not None or self.stage != "flow", "the flow stage needs crop_size (the pair size)")
        check(len(self.flow_level_weights) == 5 and all(w >= 0 for w in self.flow_level_weights)
              and sum(self.flow_level_weights) > 0,
              f"flow_level_weights needs 5 weights >= 0 (flow6..flow2), got {self.flow_level_weights}")
        check(self.stop_at is None or 1 <= self.stop_at <= self.steps,
              f"stop_at must be in [1, steps={self.steps}], got {self.stop_at}")
        check(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        for name in self.ablation:
            check(name in ABLATIONS, f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}")
        for item in self.model_set:
            check("=" in item, f"model override {item!r} is not key=value (e.g. correction.use_ppm=false)")
        for spec in self.extra_data:
            kind = spec.partition(":")[0]
            check(kind in DATA_SOURCES, f"extra data {spec!r}: {kind!r} is not one of {DATA_SOURCES}")
            spaces = {LABEL_SPACE_OF.get(kind), LABEL_SPACE_OF.get(self.data)} - {None}  # videos: unlabelled
            check(len(spaces) <= 1, f"extra data {spec!r} is in another label space than --data {self.data}")


@dataclass
class TrainResult:
    """What :func:`main` returns: the trained model and the per-step record."""

    step: int  # the last step done
    losses: list[dict[str, float]]  # one dict per step of this run: step, lr, each loss, skipped
    evals: list[dict[str, float]]  # flow stage: step, epe (full-resolution pixels)
    model: Any  # the full EVSSNet (unwrapped), on the training device
    model_config: Any  # its EVSSConfig
    out_dir: Path


# ---- configuration ----------------------------------------------------------------------------

def output_dir(config: TrainConfig) -> Path:
    return Path(config.out_dir or f"runs/{config.stage}")


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_train_config(path: str | Path) -> TrainConfig:
    """A TrainConfig JSON file; unknown keys and wrong types raise ConfigError naming the file.

    Keys starting with ``_`` (such as ``"_comment"``) are notes and are skipped.
    """
    from evss.config import from_dict
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"training config {path}: no such file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"training config {p}: not valid JSON ({exc})") from None
    data = {k: v for k, v in data.items() if not k.startswith("_")} if isinstance(data, dict) else data
    return from_dict(TrainConfig, data, where=str(p))


def model_overrides(config: TrainConfig) -> dict[str, Any]:
    """The model-config overrides of the ablations then ``model_set`` (later ones win)."""
    out: dict[str, Any] = {}
    for name in config.ablation:
        out.update({k[len("model."):]: v for k, v in ABLATIONS[name].items() if k.startswith("model.")})
    for item in config.model_set:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare string such as distortion.mode=coarse
        out[key.strip()] = value
    return out


def loss_weights(config: TrainConfig) -> "LossWeights":
    """Eq. (6) lambdas: the config's, then the ablations' (``no-le`` sets lambda_e = 0, ...)."""
    from evss.losses import LossWeights
    values = {"lambda_warp": config.lambda_warp, "lambda_semantic": config.lambda_semantic,
              "lambda_edge": config.lambda_edge, "lambda_edge_semantic": config.lambda_edge_semantic}
    for name in config.ablation:
        values.update({k: v for k, v in ABLATIONS[name].items() if not k.startswith("model.")})
    return LossWeights(warp=values["lambda_warp"], semantic=values["lambda_semantic"],
                       edge=values["lambda_edge"], edge_semantic=values["lambda_edge_semantic"])


LABEL_SPACE_OF = {"synthdrive": "camvid", "camvid": "camvid", "cityscapes": "cityscapes"}  # videos: none


def data_label_space(config: TrainConfig) -> str | None:
    """The label space of the data (of the first labelled source); None for unlabelled videos only
    (it then follows the model)."""
    for kind in (config.data, *(spec.partition(":")[0] for spec in config.extra_data)):
        if kind in LABEL_SPACE_OF:
            return LABEL_SPACE_OF[kind]
    return None


def resolve_model_config(config: TrainConfig) -> "EVSSConfig":
    """Preset (in the data's label space) or JSON file, then the ablations and ``model_set``."""
    from evss.config import PRESETS, EVSSConfig, from_dict, load_config, preset, to_dict
    space = data_label_space(config)
    if space is None:  # unlabelled videos: the label space of the teacher (or --init) checkpoint
        space = _checkpoint_label_space(config.teacher or config.init)
    if config.model in PRESETS:
        base = preset(config.model, label_space=space)
    else:
        base = load_config(config.model)
        if space is not None and base.label_space != space:
            raise ConfigError(f"model config {config.model} is for the {base.label_space} label space, "
                              f"the {config.data} data uses {space}")
    data = to_dict(base)
    if config.stage == "evss":
        data["flow_source"] = config.flow_source
    for key, value in model_overrides(config).items():
        node, parts = data, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:i]) or "the model config"
                known = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f"model override {key}={value!r}: {where} has no key {part!r}; known: {known}")
            if i == len(parts) - 1:
                if isinstance(node[part], dict):
                    raise ConfigError(f"model override {key}: {key} is a section, set one of its keys")
                node[part] = value
            else:
                node = node[part]
    return from_dict(EVSSConfig, data, where="model config (after --ablation/--set)")


def _checkpoint_label_space(path: str | None) -> str | None:
    """The label space in an evss checkpoint's embedded config; None when there is none to read."""
    if not path or not str(path).endswith(".safetensors") or not Path(path).is_file():
        return None
    from evss.checkpoint import read_metadata
    try:
        return json.loads(read_metadata(Path(path)).get("config", "{}")).get("label_space")
    except (json.JSONDecodeError, AttributeError):
        return None


# ---- data ---------------------------------------------------------------------------------------

class StepPositions:
    """Sampler of global sample positions: step ``s``, rank ``r`` takes ``s*B*W + r*B + j``.

    Iterates steps ``[start, stop)``. With ``fixed=True`` every step repeats the positions of step
    0 (a fixed batch). Pair it with :class:`ByPosition`, which maps a position to a sample.
    """

    def __init__(self, *, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 fixed: bool = False) -> None:
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.rank, self.world_size, self.fixed = rank, world_size, fixed

    def positions(self, step: int) -> list[int]:
        s = 0 if self.fixed else step
        base = (s * self.world_size + self.rank) * self.batch_size
        return list(range(base, base + self.batch_size))

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield from self.positions(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch_size


class ByPosition:
    """Dataset view: global position ``p`` -> item ``perm(seed, epoch)[p % N]`` of epoch ``p // N``.

    Each epoch is a fresh seeded permutation of the ``N`` items; the wrapped dataset's ``set_epoch``
    (when it has one) is set to the position's epoch before the item is read, so augmentations
    drawn from ``(seed, epoch, index)`` follow the position too, in any worker.
    """

    def __init__(self, dataset: Any, *, seed: int) -> None:
        self.dataset, self.seed = dataset, seed
        self.n = len(dataset)
        if self.n == 0:
            raise EvssError("the training dataset is empty")
        self._perm: tuple[int, Any] | None = None

    def __len__(self) -> int:
        return self.n

    def index(self, position: int) -> tuple[int, int]:
        import numpy as np
        epoch, i = divmod(int(position), self.n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n))
        return epoch, int(self._perm[1][i])

    def __getitem__(self, position: int) -> Any:
        from evss.data.validate import Replaced
        epoch, index = self.index(position)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        try:
            return self.dataset[index]
        except EvssError as exc:  # carried to the loop as data: see ItemError
            errors = [ItemError(type(exc).__name__, str(exc))]
        # A bad sample is skipped: the next readable items of this epoch's order take its place (the
        # batch keeps its size), and its error still reaches the loop, which counts it.
        i = int(position) % self.n
        for k in range(1, min(self.n, 4)):
            try:
                return Replaced(item=self.dataset[int(self._perm[1][(i + k) % self.n])], errors=tuple(errors))
            except EvssError as exc:
                errors.append(ItemError(type(exc).__name__, str(exc)))
        return errors[0] if len(errors) == 1 else Replaced(item=None, errors=tuple(errors))


@dataclass(frozen=True)
class ItemError:
    """A sample that could not be read (a bad file), carried through the DataLoader as data.

    A DataLoader worker re-raises an item's exception in the main process with the worker's whole
    traceback in its message; carried as data, the loop raises the product's own one-line error
    (naming the file) in every case, with or without workers.
    """

    kind: str  # the EvssError subclass name, e.g. "DataError"
    message: str

    def exception(self) -> EvssError:
        import evss.errors
        cls = getattr(evss.errors, self.kind, EvssError)
        return (cls if isinstance(cls, type) and issubclass(cls, EvssError) else EvssError)(self.message)


def collate(items: list[Any]) -> Any:
    """``default_collate``, except that unreadable samples (:class:`ItemError`, or replaced by
    :class:`ByPosition`) make the batch a ``BadItems`` holding their errors and the readable rest."""
    from torch.utils.data import default_collate

    from evss.data.validate import BadItems, Replaced
    errors: list[ItemError] = []
    good = []
    for item in items:
        if isinstance(item, Replaced):  # a bad sample and the readable one that took its place
            errors.extend(item.errors)
            item = item.item
        if isinstance(item, ItemError):
            errors.append(item)
        elif item is not None:
            good.append(item)
    if not errors:
        return default_collate(good)
    return BadItems(errors=tuple(errors), batch=default_collate(good) if good else None)


class LabelledFrames:
    """Per-frame samples for the backbone stage: every labelled frame of a sequence source.

    Items: ``image`` (3, h, w) float in [0, 1] and ``label`` (h, w) int64, 255 = ignore, after the
    same random flip + crop as the pair dataset (drawn from ``(seed, epoch, index)``).
    """

    def __init__(self, source: Any, *, crop_size: tuple[int, int] | None, flip: bool, seed: int,
                 scale_range: tuple[float, float] | None = None, color_jitter: float = 0.0,
                 exclude: tuple[str, ...] = ()) -> None:
        self.source, self.crop_size, self.flip, self.seed = source, crop_size, flip, seed
        self.scale_range, self.color_jitter = scale_range, color_jitter
        self.epoch = 0
        self.targets = [(s, int(t)) for s in range(source.num_sequences()) for t in source.labelled_indices(s)
                        if not matches(frame_name(source, s, int(t)), exclude)]
        if not self.targets:
            raise EvssError("the source has no labelled frames to train the backbone on"
                            + (f" outside the held-out patterns {list(exclude)}" if exclude else ""))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.targets)

    def class_counts(self, num_classes: int) -> "torch.Tensor":
        """Pixel count per class over the training labels (ignored pixels and ids >= C left out)."""
        import numpy as np
        import torch
        counts = np.zeros(num_classes, np.int64)
        for s, t in self.targets:
            label = np.asarray(self.source.label(s, t)).ravel()
            counts += np.bincount(label[label < num_classes], minlength=num_classes)[:num_classes]
        return torch.from_numpy(counts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import numpy as np

        from evss.classes import IGNORE_INDEX
        from evss.data.transforms import image_to_tensor, joint_flip_crop, label_to_tensor
        s, t = self.targets[index]
        image = self.source.frame(s, t)  # (H, W, 3) uint8
        label = self.source.label(s, t)
        if label is None:
            label = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.scale_range is not None:
            from evss.data.transforms import random_scale
            image, label = random_scale(rng, image, label, scale_range=self.scale_range)
        (image,), (label,), _ = joint_flip_crop(rng, images=[image], labels=[label], crop_size=self.crop_size,
                                                flip_prob=0.5 if self.flip else 0.0)
        if self.color_jitter:
            from evss.data.transforms import color_jitter
            image = color_jitter(rng, image, strength=self.color_jitter)
        return {"image": image_to_tensor(image), "label": label_to_tensor(label)}


def frame_name(source: Any, s: int, t: int) -> str:
    """A frame's name for the held-out patterns: its file stem, or ``<sequence index>_<frame index>``."""
    if isinstance(source, ConcatSource):
        inner, i = source.parts[s]
        return frame_name(inner, i, t)
    sequences = getattr(source, "sequences", None)
    if sequences is not None:
        return Path(sequences[s].frames[t].image).stem
    return f"{s}_{t}"


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class HeldOutFrames:
    """The labelled frames that match the held-out patterns, read once, for the backbone's mIoU."""

    def __init__(self, source: Any, patterns: tuple[str, ...]) -> None:
        self.items = [(source.frame(s, t), source.label(s, t)) for s in range(source.num_sequences())
                      for t in source.labelled_indices(s) if matches(frame_name(source, s, int(t)), patterns)]
        if not self.items:
            raise ConfigError(f"--holdout {list(patterns)} matches no labelled frame of the training data")

    def __len__(self) -> int:
        return len(self.items)

    def miou(self, backbone: Any, num_classes: int, device: Any) -> dict[str, float]:
        """Per-frame mIoU (and per-class IoU) of ``backbone`` on these frames, full resolution."""
        import numpy as np
        import torch

        from evss.data.transforms import image_to_tensor
        from evss.metrics import confusion_matrix, iou_per_class, mean_iou
        was_training = backbone.training
        backbone.eval()
        cm = np.zeros((num_classes, num_classes), np.int64)
        with torch.no_grad():
            for image, label in self.items:
                x = image_to_tensor(image)[None].to(device)  # (1, 3, H, W)
                pred = up4(backbone(x), tuple(label.shape)).argmax(1)[0]  # (H, W)
                cm += confusion_matrix(pred.cpu().numpy(), label, num_classes)
        backbone.train(was_training)
        iou = iou_per_class(cm)
        return {"miou": mean_iou(cm), **{f"iou/{c}": float(v) for c, v in enumerate(iou) if np.isfinite(v)}}


class MemoryClips:
    """Generated clips' frames and labels held in memory, so random access never regenerates them."""

    def __init__(self, dataset: Any) -> None:
        self.clips = []
        for i in range(len(dataset)):
            clip = dataset.clip(i)
            self.clips.append({"frames": clip.frames, "labels": clip.labels})  # flows are not needed

    def __len__(self) -> int:
        return len(self.clips)

    def clip(self, i: int) -> dict[str, Any]:
        return self.clips[i]


class SynthDriveFolder:
    """A SequenceSource over a folder written by ``evss synth``: reads only the frames and labels asked for."""

    def __init__(self, root: Path) -> None:
        from evss.data._paths import safe_join
        from evss.data.synthdrive import read_manifest
        self.root = root
        # read_manifest refuses clip names that leave root; safe_join keeps that promise here too
        self.clips = [(safe_join(root, c["name"], source=root / "manifest.json"), int(c["frames"]))
                      for c in read_manifest(root)["clips"]]

    def num_sequences(self) -> int:
        return len(self.clips)

    def sequence_length(self, s: int) -> int:
        return self.clips[s][1]

    def labelled_indices(self, s: int) -> range:
        return range(self.clips[s][1])

    def frame(self, s: int, t: int) -> Any:
        from evss.data.pairs import read_rgb
        return read_rgb(self.clips[s][0] / "frames" / f"{t:06d}.png")

    def label(self, s: int, t: int) -> Any:
        from evss.data.synthdrive import read_label
        return read_label(self.clips[s][0] / "labels" / f"{t:06d}.png")


class VideoClips:
    """Unlabelled video files decoded into memory as clips (``frames``, ``labels`` None)."""

    def __init__(self, paths: list[Path], *, max_size: int | None) -> None:
        import numpy as np

        from evss.data.video import open_video
        self.clips = []
        for path in paths:
            with open_video(path, max_size=max_size) as video:
                frames = np.stack([f.image for f in video])  # (T, H, W, 3) uint8
            if len(frames) < 2:
                raise EvssError(f"{path}: {len(frames)} frame(s); a training pair needs at least 2")
            self.clips.append({"frames": frames, "labels": None})

    def __len__(self) -> int:
        return len(self.clips)

    def clip(self, i: int) -> dict[str, Any]:
        return self.clips[i]


class ConcatSource:
    """Several sequence sources as one: their sequences one after the other."""

    def __init__(self, sources: list[Any]) -> None:
        self.parts = [(source, s) for source in sources for s in range(source.num_sequences())]

    def num_sequences(self) -> int:
        return len(self.parts)

    def sequence_length(self, s: int) -> int:
        source, i = self.parts[s]
        return source.sequence_length(i)

    def labelled_indices(self, s: int) -> Any:
        source, i = self.parts[s]
        return source.labelled_indices(i)

    def frame(self, s: int, t: int) -> Any:
        source, i = self.parts[s]
        return source.frame(i, t)

    def label(self, s: int, t: int) -> Any:
        source, i = self.parts[s]
        return source.label(i, t)


def build_source(config: TrainConfig) -> Any:
    """The sequence source of ``config.data`` and ``config.extra_data`` (see :class:`evss.data.pairs.SequenceSource`)."""
    if not config.extra_data:
        return _one_source(config)
    sources = [_one_source(config)]
    for spec in config.extra_data:
        kind, _, root = spec.partition(":")
        sources.append(_one_source(dataclasses.replace(config, data=kind, data_root=root or None, extra_data=())))
    return ConcatSource(sources)


def _one_source(config: TrainConfig) -> Any:
    root = Path(config.data_root) if config.data_root else None
    if config.data == "synthdrive":
        from evss.data.pairs import SynthDriveSource
        from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset
        if root is not None:
            return SynthDriveFolder(root)
        h, w = config.synth_size
        synth = SynthDriveConfig(height=h, width=w, frames=config.synth_frames)
        return SynthDriveSource(MemoryClips(SynthDriveDataset(root=None, clips=config.synth_clips,
                                                              seed=config.seed, config=synth)))
    if root is None:
        raise ConfigError(f"data {config.data!r} needs data_root (--data-root)")
    if config.data == "camvid":
        from evss.data.camvid import CamVid, CamVidVideo
        if (root / "video_image").is_dir():  # the authors' decoded-video layout
            return CamVidVideo(root)
        return CamVid(root, config.data_split)
    if config.data == "cityscapes":
        from evss.data.cityscapes import CityscapesSequences
        return CityscapesSequences(root, config.data_split)
    # videos: a video file, a folder of video files, or folders of frames (FolderSource)
    videos = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if videos:
        from evss.data.pairs import SynthDriveSource
        return SynthDriveSource(VideoClips(videos, max_size=config.video_max_size))
    from evss.data.pairs import FolderSource
    return FolderSource(root)


def build_dataset(config: TrainConfig, model_config: "EVSSConfig", cache: Any = None) -> Any:
    """The stage's map-style dataset (before :class:`ByPosition`)."""
    from evss.classes import LABEL_SPACES
    if config.stage == "flow":
        from evss.data.flowpairs import FlowPairsConfig, FlowPairsDataset
        h, w = config.crop_size
        return FlowPairsDataset(pairs=config.flow_pairs, seed=config.seed, config=FlowPairsConfig(height=h, width=w))
    source = build_source(config)
    if config.stage == "backbone":
        return LabelledFrames(source, crop_size=config.crop_size, flip=config.flip, seed=config.seed,
                              scale_range=config.scale_range, color_jitter=config.color_jitter,
                              exclude=config.holdout)
    from evss.data.pairs import PairDataset
    from evss.data.transforms import pair_offsets
    if cache is not None:
        from evss.data.teacher_cache import CachedPairDataset
        return CachedPairDataset(source, cache, thin_classes=LABEL_SPACES[model_config.label_space].thin,
                                 crop_size=config.crop_size, flip=config.flip, seed=config.seed,
                                 offsets=pair_offsets(official=config.offsets == "official"),
                                 use_flow=config.flow_source != "learned")
    return PairDataset(source, thin_classes=LABEL_SPACES[model_config.label_space].thin,
                       crop_size=config.crop_size, flip=config.flip, seed=config.seed,
                       offsets=pair_offsets(official=config.offsets == "official"))


def _seed_worker(worker_id: int) -> None:
    """Workers seed numpy and random from torch's per-worker seed (which follows the loader's generator)."""
    import random

    import numpy as np
    import torch
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(config: TrainConfig, dataset: Any, *, start: int, stop: int, rank: int = 0,
                     world_size: int = 1, pin_memory: bool = False) -> Any:
    """Batches for steps ``[start, stop)`` of this rank; the order is a function of (seed, step)."""
    import torch
    from torch.utils.data import DataLoader
    sampler = StepPositions(start=start, stop=stop, batch_size=config.batch_size, rank=rank,
                            world_size=world_size, fixed=config.overfit_batch)
    return DataLoader(ByPosition(dataset, seed=config.seed), batch_size=config.batch_size, sampler=sampler,
                      num_workers=config.workers, worker_init_fn=_seed_worker, pin_memory=pin_memory,
                      collate_fn=collate,  # an unreadable sample arrives as an ItemError, see fit()
                      # its own generator, so that the loader never draws from the global torch RNG
                      generator=torch.Generator().manual_seed(config.seed), drop_last=False)


# ---- losses ---------------------------------------------------------------------------------------

def up4(x: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """x4 bilinear upsampling (align_corners=False) of a 1/4-grid map, cropped to label size (H, W)."""
    import torch.nn.functional as F
    y = F.interpolate(x.float(), scale_factor=4, mode="bilinear", align_corners=False)
    return y[..., : size[0], : size[1]]  # (N, C, H, W)


def segmentation_loss(logits: "torch.Tensor", label: "torch.Tensor", *, kind: str = "ce",
                      weight: "torch.Tensor | None" = None) -> dict[str, "torch.Tensor"]:
    """Backbone stage: CE (or OHEM CE) of the x4-upsampled 1/4 logits against the labels, 255
    ignored; ``weight`` (C,) are optional class weights."""
    from evss.classes import IGNORE_INDEX
    from evss.losses import cross_entropy, ohem_cross_entropy
    loss = ohem_cross_entropy if kind == "ohem" else cross_entropy
    ce = loss(up4(logits, tuple(label.shape[-2:])), label, ignore_index=IGNORE_INDEX, weight=weight)
    return {"ce": ce, "total": ce}


def multiscale_epe(flow2: "torch.Tensor", pyramid: list["torch.Tensor"], target: "torch.Tensor",
                   weights: tuple[float, ...] = (0.005, 0.01, 0.02, 0.08, 0.32)) -> dict[str, "torch.Tensor"]:
    """FlowNet's multi-scale end-point error, every level in full-resolution pixels.

    ``flow2`` (N, 2, H/4, W/4) is FlowNet's output in 1/4-grid pixels (``5 * predict_flow2``);
    ``pyramid`` holds the raw ``predict_flow6..3`` outputs; ``target`` (N, 2, H, W) is the
    full-resolution backward flow in full-resolution pixels.

    Convention (FlowNet's ``div_flow = 20``, which the model's x5 at flow2 encodes: 5 = 20 / 4):
    every raw prediction, at every level, is the flow in full-resolution pixels divided by 20. So
    level N's prediction in full-resolution pixels is ``20 * flowN`` (and ``4 * flow2`` at level 2),
    and it is compared with the target area-averaged to that level's grid *without* rescaling its
    values. The EPE of each level is a per-pixel mean (not FlowNet-PyTorch's per-image sum, which
    would weight the fine levels by their pixel counts too); the weights (FlowNet's 0.005, 0.01,
    0.02, 0.08, 0.32 for flow6..flow2) are normalised to sum 1, so ``total`` reads as a weighted
    mean EPE in full-resolution pixels.
    """
    import torch
    import torch.nn.functional as F
    preds = [20.0 * p.float() for p in pyramid] + [4.0 * flow2.float()]  # levels 6..2, full-res px
    total_w = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=flow2.device)
    for level, pred, w in zip((6, 5, 4, 3, 2), preds, weights):
        t = F.interpolate(target.float(), size=tuple(pred.shape[-2:]), mode="area")  # (N, 2, h, w)
        epe = torch.linalg.vector_norm(pred - t, dim=1).mean()
        out[f"epe{level}"] = epe
        total = total + (w / total_w) * epe
    out["total"] = total
    return out


def full_resolution_epe(flow2: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
    """Per-pair EPE (N,) in full-resolution pixels: ``4 * up4(flow2)`` against the full-res target."""
    import torch
    pred = 4.0 * up4(flow2, tuple(target.shape[-2:]))  # (N, 2, H, W) full-res px
    return torch.linalg.vector_norm(pred - target.float(), dim=1).flatten(1).mean(dim=1)


def evss_step_losses(model: "nn.Module", batch: dict[str, "torch.Tensor"], *, net: "nn.Module",
                     weights: "LossWeights", es_mask: str, thin_classes: tuple[int, ...]) -> dict[str, "torch.Tensor"]:
    """Eq. (6) on one batch of pairs. ``model`` may be the DDP wrapper of ``net`` (the EVSSNet).

    * F^w, F^m, F^u are upsampled x4 bilinearly to label resolution (the authors upsample before
      every loss); the edge logits are upsampled before they are squashed into M^e (the authors
      take the softmax after upsampling); M^f is upsampled as it is.
    * P^gt_i = argmax of the frozen backbone's upsampled logits on I_i (Sec. III-E): the target of
      L_w, L_s and L_es.
    * M^gt_i comes from the true labels (the pair dataset's ``edge``); a sample without any known
      label (unlabelled videos) takes the edge target of its pseudo-label instead.
    """
    import torch

    from evss.classes import IGNORE_INDEX
    from evss.data.transforms import edge_target
    from evss.losses import evss_losses
    key, image = batch["key_image"], batch["image"]  # (N, 3, H, W) each
    size = (image.shape[-2], image.shape[-1])
    # From the teacher cache when the batch has them: F^b_k, P^gt_i and an untrained source's flow.
    out = model(key, image, key_logits=batch.get("key_logits"), flow=batch.get("flow"))
    if "pseudo" in batch:
        pseudo = batch["pseudo"]  # (N, H, W), 255 where the crop left the frame
    else:
        with torch.no_grad():
            pseudo = up4(net.backbone(image), size).argmax(dim=1)  # (N, H, W) P^gt_i
    edge_t = batch["edge"]
    unlabelled = (batch["label"] == IGNORE_INDEX).flatten(1).all(dim=1)  # (N,)
    if bool(unlabelled.any()):
        pseudo_edge = edge_target(pseudo, thin_classes=thin_classes).long()  # (N, H, W)
        edge_t = torch.where(unlabelled[:, None, None], pseudo_edge, edge_t)
    edge_prob = net.correction.edge_probability(up4(out.edge_scores, size))[:, 0]  # (N, H, W) M^e
    return evss_losses(warped_logits=up4(out.warped_logits, size), merged_logits=up4(out.merged_logits, size),
                       updated_logits=up4(out.updated_logits, size), edge_prob=edge_prob,
                       fine_map=up4(out.fine_map, size)[:, 0], pseudo_label=pseudo, edge_target=edge_t,
                       weights=weights, es_mask=es_mask, ignore_index=IGNORE_INDEX)


# ---- runtime: device, processes, seeds ----------------------------------------------------------

@dataclass
class Runtime:
    device: Any
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # this run initialised the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(config: TrainConfig) -> Runtime:
    """One process per device; DDP when torchrun sets WORLD_SIZE > 1."""
    import torch
    import torch.distributed as dist

    from evss.device import resolve_device
    if config.threads:
        torch.set_num_threads(config.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(device=resolve_device(config.device))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = torch.cuda.is_available() and config.device in ("auto", "cuda")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Runtime(device=device, rank=dist.get_rank(), world_size=dist.get_world_size(), owns_group=owns)


def teardown_runtime(rt: Runtime) -> None:
    import torch.distributed as dist
    if rt.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain containers (weights_only-loadable)."""
    import random

    import numpy as np
    import torch
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
    import random

    import numpy as np
    import torch
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- checkpoints and training state -------------------------------------------------------------

def save_training_state(out_dir: Path, *, step: int, model: "nn.Module", model_config: "EVSSConfig",
                        config: TrainConfig, optimizer: Any, scheduler: Any, scaler: Any,
                        world_size: int = 1) -> None:
    """Write ``last.state.pt`` then ``last.safetensors``, each atomically; both carry the step.

    The state file holds everything a resume needs, the model's weights included, so a run killed
    between the two writes (or at any other moment) resumes from the newest complete state file.
    ``last.safetensors`` is the checkpoint for everything else (evaluation, the next stage).
    """
    import torch

    from evss.checkpoint import atomic_write, save_model
    config_json = json.dumps(train_config_to_dict(config))
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = {"format": "evss-train-state", "version": 2, "step": step, "stage": config.stage,
             "model": weights, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "rng": rng_state(), "config": config_json, "world_size": world_size}
    atomic_write(out_dir / STATE_FILE, lambda tmp: torch.save(state, str(tmp)))
    save_model(out_dir / MODEL_FILE, model, model_config,
               extra={"step": str(step), "stage": config.stage, "train_config": config_json})


def read_training_state(path: Path) -> dict[str, Any]:
    """A training state file, loaded with ``weights_only=True`` and checked; CheckpointError otherwise."""
    import torch

    from evss.checkpoint import safe_torch_load
    state = safe_torch_load(path)
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


def load_training_state(out_dir: Path, *, model: "nn.Module", config: TrainConfig, optimizer: Any,
                        scheduler: Any, scaler: Any, world_size: int = 1) -> int:
    """Restore model, optimizer, scheduler, scaler and RNG states; return the step to continue after."""
    from safetensors.torch import load_file

    from evss.checkpoint import load_state_checked, read_metadata
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
        meta_step = read_metadata(model_path).get("step")
        if meta_step != str(step):
            raise CheckpointError(f"{model_path} is from step {meta_step} but {state_path} from step {step} "
                                  "(interrupted while checkpointing?)")
        try:
            weights, source = load_file(str(model_path)), str(model_path)
        except Exception as exc:  # noqa: BLE001 - a damaged file
            raise CheckpointError(f"{model_path}: cannot read tensors ({exc})") from None
    load_state_checked(model, weights, source)
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


def load_part(target: "nn.Module", path: str, part: str, what: str) -> None:
    """Load ``part`` ("backbone", "flow", "correction" or "" for all) of an evss checkpoint."""
    from evss.checkpoint import load_model, load_state_checked
    source, _ = load_model(path)
    module = getattr(source, part) if part else source
    load_state_checked(target, module.state_dict(), f"{what} {path}")


# ---- the loop ----------------------------------------------------------------------------------

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


def param_groups(trained: Any, config: TrainConfig) -> list[dict[str, Any]]:
    """Trainable parameters; a pretrained encoder's (``encoder.*``) at ``encoder_lr_mult`` x lr."""
    base, encoder = [], []
    for name, p in trained.named_parameters():
        if p.requires_grad:
            (encoder if name.split(".")[0] == "encoder" and config.encoder_lr_mult != 1.0 else base).append(p)
    groups = [{"params": base, "lr": config.lr}] if base else []
    if encoder:
        groups.append({"params": encoder, "lr": config.lr * config.encoder_lr_mult})
    return groups


@dataclass
class Stage:
    """What a stage hands to :func:`fit`."""

    model: Any  # the full EVSSNet: what the checkpoints hold
    trained: Any  # the module being trained (a part of ``model``, or ``model``)
    dataset: Any
    losses: Callable[[Any, dict[str, Any]], dict[str, Any]]  # (trained or its DDP wrapper, batch) -> dict
    evaluate: Callable[[], dict[str, float]] | None = None  # rank 0, on the unwrapped module
    find_unused_parameters: bool = False


def autocast_context(config: TrainConfig, device: Any):
    import contextlib

    import torch
    if device.type != "cuda" or config.amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)


def fit(config: TrainConfig, rt: Runtime, stage: Stage, model_config: "EVSSConfig") -> TrainResult:
    """The training loop shared by the stages: a plain loop over steps."""
    import time

    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from tqdm import tqdm

    from evss.data.validate import BadItems, check_training_data, skip_bad_items

    out_dir = output_dir(config)
    device = rt.device
    check_training_data(config, stage.dataset, model_config, device_type=device.type,  # every file, before step one
                        print_line=lambda line: print(line, file=sys.stderr) if rt.is_main else None)
    model = stage.model.to(device)
    trained = stage.trained
    if config.sync_bn and rt.distributed:
        if device.type == "cuda":
            trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
            _replace_part(model, stage.trained, trained)
        elif rt.is_main:
            print("evss train: --sync-bn needs CUDA; using per-process BatchNorm on the CPU")
    groups = param_groups(trained, config)
    if not groups:
        raise ConfigError(f"stage {config.stage}: nothing to train (every parameter is frozen)")
    optimizer = (torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam)(
        groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp == "fp16")

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
    wrapped = trained
    if rt.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=stage.find_unused_parameters)

    writer = None
    if rt.is_main:
        from evss.checkpoint import atomic_write
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / "train_config.json",
                     lambda tmp: tmp.write_text(json.dumps(train_config_to_dict(config), indent=2) + "\n"))
        # A killed run logged steps after its last checkpoint; they are redone, so their records go.
        trim_metrics(out_dir / "metrics.jsonl", start)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(out_dir / "tb"), purge_step=start + 1 if config.resume else None)
    loader = build_dataloader(config, stage.dataset, start=start, stop=stop, rank=rt.rank,
                              world_size=rt.world_size, pin_memory=device.type == "cuda")
    bar = tqdm(total=stop, initial=start, desc=f"train {config.stage}", dynamic_ncols=True,
               disable=not (rt.is_main and config.progress))
    history: list[dict[str, float]] = []
    evals: list[dict[str, float]] = []
    bad_in_a_row, last_saved, step = 0, start, start
    bad_files: dict[str, int] = {}  # message (it names the file) -> samples skipped for it
    best = best_eval(out_dir / "metrics.jsonl") if rt.is_main else None

    def log(record: dict[str, float]) -> None:
        if writer is not None:
            kind = "eval" if "epe" in record or "miou" in record else "train"
            for k, v in record.items():
                if k != "step":
                    writer.add_scalar(f"{kind}/{k}", v, int(record["step"]))
        with open(out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def run_eval() -> None:
        if stage.evaluate is None or not rt.is_main:
            return
        nonlocal best
        result = {"step": step, **stage.evaluate()}
        evals.append(result)
        log(result)
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()
                                               if k != "step" and "/" not in k))
        if "miou" in result and (best is None or result["miou"] > best):
            # model selection on held-out frames (never on the evaluation clip)
            from evss.checkpoint import save_model
            best = result["miou"]
            save_model(out_dir / BEST_FILE, model, model_config, extra={"step": str(step), "miou": f"{best:.6f}"})

    def checkpoint() -> None:
        nonlocal last_saved
        if rt.is_main:
            save_training_state(out_dir, step=step, model=model, model_config=model_config, config=config,
                                optimizer=optimizer, scheduler=scheduler, scaler=scaler, world_size=rt.world_size)
        last_saved = step

    try:
        wrapped.train()
        tick = time.perf_counter()
        for step_index, batch in zip(range(start, stop), loader):
            step = step_index + 1  # steps done after this one
            if isinstance(batch, ItemError):  # a custom collate's whole-batch error
                batch = BadItems(errors=(batch,), batch=None)
            if isinstance(batch, BadItems):  # unreadable samples: skipped and counted, see --max-bad-files
                batch = skip_bad_items(batch, bad_files, step=step, max_bad_files=config.max_bad_files,
                                       distributed=rt.distributed, warn=bar.write if rt.is_main else None,
                                       checkpoint=(out_dir / MODEL_FILE, last_saved))
                if batch is None:  # nothing readable in this step's batch: the step is skipped
                    scheduler.step()
                    history.append({"step": step, "lr": optimizer.param_groups[0]["lr"], "skipped": 1.0,
                                    "seconds": time.perf_counter() - tick})
                    bar.update(1)
                    tick = time.perf_counter()
                    continue
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            optimizer.zero_grad(set_to_none=True)
            # BatchNorm updates its running statistics in the forward pass, loss or no loss: keep
            # them so a skipped (non-finite) step leaves no trace in the model.
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
            lr = optimizer.param_groups[0]["lr"]
            if finite:
                scaler.step(optimizer)
                scaler.update()
                bad_in_a_row = 0
            else:
                bad_in_a_row += 1
                with torch.no_grad():
                    for buffer, before in zip(trained.buffers(), kept):
                        buffer.copy_(before)
                if rt.is_main:
                    bar.write(f"evss train: step {step}: non-finite loss "
                              f"({', '.join(f'{k} {v:.4g}' for k, v in zip(names, values.tolist()))}); "
                              "step skipped", file=sys.stderr)
                if bad_in_a_row >= config.max_bad_steps:
                    raise EvssError(f"{bad_in_a_row} non-finite losses in a row (last at step {step}); stopped. "
                                    f"The last good checkpoint is {out_dir / MODEL_FILE} (step {last_saved})"
                                    if last_saved else
                                    f"{bad_in_a_row} non-finite losses in a row (last at step {step}); stopped "
                                    "before the first checkpoint")
            scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            record = {"step": step, "lr": lr, **dict(zip(names, values.tolist())), "skipped": float(not finite),
                      "seconds": now - tick}  # wall time of the step, data loading included
            history.append(record)
            bar.update(1)
            if rt.is_main and (step % config.log_every == 0 or step == stop):
                bar.set_postfix({k: f"{record[k]:.3f}" for k in names if k == "total" or len(names) <= 3})
                log(record)
            if config.eval_every and step % config.eval_every == 0 and step != stop:
                run_eval()
            if step % config.checkpoint_every == 0 and step != stop and finite:
                checkpoint()  # never right after a skipped step: the last checkpoint stays the last good one
            tick = time.perf_counter()  # checkpoints and evaluations are not part of a step's time
        if step != stop:
            raise EvssError(f"the data loader ran out at step {step} of {stop}")
        if rt.distributed:  # DDP syncs BN statistics at each forward; the last step's are rank-local
            for buffer in trained.buffers():
                dist.broadcast(buffer, src=0)
        if last_saved != stop:
            checkpoint()
        run_eval()
        if rt.distributed:
            dist.barrier()  # rank 0 has written its files
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return TrainResult(step=step, losses=history, evals=evals, model=model, model_config=model_config,
                       out_dir=out_dir)


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
    from evss.checkpoint import atomic_write
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] <= start:
            kept.append(line)
    atomic_write(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept)))


def _replace_part(model: Any, old: Any, new: Any) -> None:
    """After SyncBatchNorm conversion returned a new module, put it where the old one was."""
    if old is new or model is old:
        return
    for name, child in model.named_children():
        if child is old:
            setattr(model, name, new)


# ---- the stages -----------------------------------------------------------------------------------

def _build(config: TrainConfig) -> tuple[Any, "EVSSConfig"]:
    from evss.config import build_model
    model_config = resolve_model_config(config)
    model = build_model(model_config)
    if config.resume:
        return model, model_config
    init = config.init
    if init is None and config.stage == "backbone" and model_config.backbone.arch == "swiftnet":
        init = "imagenet"  # a pretrained encoder is the point of these presets
    if init == "imagenet":
        from evss.models.efficientnet import load_imagenet
        encoder = getattr(model.backbone, "encoder", None)
        if encoder is None:
            raise ConfigError(f"--init imagenet: the {model_config.name} preset's backbone "
                              f"({model_config.backbone.arch}) has no pretrained encoder; use a swiftnet preset "
                              "such as lite0, or --init none")
        load_imagenet(encoder)
    elif init and init != "none":
        load_part(model, init, "", "--init")
    return model, model_config


def train_backbone(config: TrainConfig, rt: Runtime) -> TrainResult:
    """Per-frame CE (or OHEM) on the labelled frames trains the keyframe network; the other parts
    stay as initialised. With ``holdout``, the held-out frames' mIoU is the evaluation."""
    model, model_config = _build(config)
    net = model.backbone
    net.requires_grad_(True)  # EVSSNet freezes it; this stage trains it
    held_out = HeldOutFrames(build_source(config), config.holdout) if config.holdout else None
    dataset = build_dataset(config, model_config)
    weight = None
    if config.class_balance:
        from evss.losses import class_balance_weights
        weight = class_balance_weights(dataset.class_counts(model_config.num_classes),
                                       config.class_balance).to(rt.device)
        if rt.is_main:
            print(f"evss train backbone: class weights (median frequency ** {config.class_balance}): "
                  + " ".join(f"{w:.2f}" for w in weight.tolist()), file=sys.stderr)

    def losses(module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return segmentation_loss(module(batch["image"]), batch["label"], kind=config.seg_loss, weight=weight)

    def evaluate() -> dict[str, float]:
        return held_out.miou(net, model_config.num_classes, rt.device)

    return fit(config, rt, Stage(model=model, trained=net, dataset=dataset,
                                 losses=losses, evaluate=evaluate if held_out else None), model_config)


def train_flow(config: TrainConfig, rt: Runtime) -> TrainResult:
    """FlowNet pretraining with the multi-scale EPE; held-out EPE in full-resolution pixels."""
    import torch

    from evss.data.flowpairs import FlowPairsConfig, FlowPairsDataset
    model, model_config = _build(config)
    net = model.flow
    net.requires_grad_(True)
    h, w = config.crop_size
    held_out = FlowPairsDataset(pairs=config.flow_eval_pairs, seed=config.seed + 1_000_003,
                                config=FlowPairsConfig(height=h, width=w))

    def losses(module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        flow2, pyramid = module(batch["image1"], batch["image2"], return_pyramid=True)
        return multiscale_epe(flow2, pyramid, batch["flow"], config.flow_level_weights)

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        net.eval()
        total, count = 0.0, 0
        for i in range(0, len(held_out), config.batch_size):
            items = [held_out[j] for j in range(i, min(i + config.batch_size, len(held_out)))]
            one, two, flow = (torch.stack([it[k] for it in items]).to(rt.device) for k in ("image1", "image2", "flow"))
            with autocast_context(config, rt.device):
                flow2 = net(one, two)
            total += float(full_resolution_epe(flow2, flow).sum())
            count += len(items)
        net.train()
        return {"epe": total / count}

    return fit(config, rt, Stage(model=model, trained=net, dataset=build_dataset(config, model_config),
                                 losses=losses, evaluate=evaluate), model_config)


def train_evss(config: TrainConfig, rt: Runtime) -> TrainResult:
    """FlowNet + CoNet against the frozen backbone with the four losses of Eq. (6).

    Loss weights default to the authors' code (lambda_w 0.2, lambda_s 0.5, lambda_e 0.1,
    lambda_es 0.2; reference README section 11): the paper names the four terms but gives no
    values, and these are the weights the released checkpoints were trained with.
    """
    from evss.classes import LABEL_SPACES
    if not (config.teacher or config.init or config.resume):
        raise ConfigError("stage evss needs a trained backbone: --teacher CKPT (the backbone stage's "
                          "last.safetensors) or --init CKPT (a full evss checkpoint)")
    model, model_config = _build(config)
    if not config.resume:
        if config.teacher:
            load_part(model.backbone, config.teacher, "backbone", "--teacher")
        if config.flow_init:
            load_part(model.flow, config.flow_init, "flow", "--flow-init")
    if rt.is_main and config.flow_source == "learned" and not (config.flow_init or config.init or config.resume):
        print("evss train: FlowNet starts from random weights" +
              (" and stays frozen (--ablation flownet-fixed)" if model_config.freeze_flow else "") +
              "; the paper pretrains it first (evss train flow, then --flow-init)", file=sys.stderr)
    weights = loss_weights(config)
    thin = LABEL_SPACES[model_config.label_space].thin
    if config.flow_source != "learned":
        model.flow.requires_grad_(False)  # CoNet learns to correct this fixed flow source
    cache = None
    if config.cache:
        cache = teacher_cache(config, model.backbone, rt)
    elif config.flow_source != "learned":
        raise ConfigError(f"--flow-source {config.flow_source} trains with cached flow: pass --cache DIR")

    def losses(module: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return evss_step_losses(module, batch, net=model, weights=weights, es_mask=config.es_mask,
                                thin_classes=thin)

    # A zero-weighted loss is not computed, so some ablations leave parameters without gradients.
    return fit(config, rt, Stage(model=model, trained=model, dataset=build_dataset(config, model_config, cache),
                                 losses=losses, find_unused_parameters=True), model_config)


def teacher_cache(config: TrainConfig, backbone: Any, rt: Runtime) -> Any:
    """The teacher cache of the run's data in ``config.cache``: built (or finished) on rank 0, then opened."""
    import torch.distributed as dist

    from evss.data.teacher_cache import TeacherCache, backbone_fingerprint, build_teacher_cache
    from evss.data.transforms import pair_offsets
    from evss.flow_sources import make_flow_source
    flow = make_flow_source(config.flow_source) if config.flow_source != "learned" else None
    # the flow's settings are part of the key: a cache of another DIS preset or scale is stale too
    flow_name = f"{config.flow_source} {vars(flow).get('preset', '')} {vars(flow).get('scale', '')}".strip() \
        if flow is not None else None
    if rt.is_main:
        build_teacher_cache(build_source(config), backbone, config.cache, device=rt.device, flow=flow,
                            flow_name=flow_name, offsets=pair_offsets(official=config.offsets == "official"),
                            progress=config.progress)
    if rt.distributed:
        dist.barrier()
    return TeacherCache(config.cache, fingerprint=backbone_fingerprint(backbone), flow_name=flow_name)


STAGE_FUNCTIONS = {"backbone": train_backbone, "flow": train_flow, "evss": train_evss}


def main(config: TrainConfig) -> TrainResult:
    """Run one training stage in this process (one rank of it under torchrun)."""
    rt = setup_runtime(config)
    try:
        seed_everything(config.seed)  # the same on every rank: identical initial weights
        return STAGE_FUNCTIONS[config.stage](config, rt)
    finally:
        teardown_runtime(rt)


# ---- command line ---------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 256x512") from None
    return h, w


def _floats(n: int) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"{text!r} is not {n} comma-separated numbers")
        return values
    return parse


def _weights(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"loss weights {text!r} are not W,S,E,ES (e.g. 0.2,0.5,0.1,0.2)")
    return values  # type: ignore[return-value]


class _ListAblations(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        for name, overrides in ABLATIONS.items():
            print(f"{name:14s} {', '.join(f'{k}={v}' for k, v in overrides.items()) or '(the proposed model)'}")
        parser.exit()


# flag dest -> TrainConfig field, for flags whose name differs from the field
_FLAG_FIELDS = {"out": "out_dir", "crop": "crop_size"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``evss train``. Precedence: TrainConfig defaults < --config FILE < flags."""
    parser.description = ("Train a stage (output in --out, default runs/<stage>). Settings: defaults < "
                          "--config FILE < flags. The chain: evss train backbone; evss train flow; "
                          "evss train evss --teacher runs/backbone/last.safetensors "
                          "--flow-init runs/flow/last.safetensors")
    parser.add_argument("stage", choices=STAGES, help="backbone (CSRNet), flow (FlowNet pretraining) or "
                        "evss (FlowNet + CoNet against the frozen backbone)")
    parser.add_argument("--config", type=Path, default=None, help="TrainConfig JSON (see configs/)")
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None, help="preset (paper, official, light, tiny) or model JSON (default light)")
    g.add_argument("--set", dest="model_set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a model config field, e.g. correction.use_ppm=false (repeatable)")
    g.add_argument("--ablation", default=None, metavar="NAME[,NAME]",
                   help="Table IV settings (see --list-ablations), applied before --set")
    g.add_argument("--list-ablations", action=_ListAblations, help="print the ablation names and exit")
    g.add_argument("--teacher", default=None, metavar="CKPT",
                   help="evss stage: checkpoint holding the trained backbone")
    g.add_argument("--init", default=None, metavar="imagenet|none|CKPT",
                   help="load a full evss checkpoint first; backbone stage: 'imagenet' (the default for "
                   "swiftnet presets such as lite0: the encoder's ImageNet weights, needs the [train] extra) "
                   "or 'none' (random)")
    g.add_argument("--flow-init", default=None, metavar="CKPT",
                   help="evss stage: checkpoint holding the pretrained FlowNet")
    g.add_argument("--flow", dest="flow_source", choices=("learned", "dis"), default=None,
                   help="evss stage: train CoNet with this flow (learned: FlowNet trained jointly; dis: OpenCV DIS, "
                   "cached); inference then uses it by default")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help="evss stage: teacher cache (backbone logits and pseudo-labels per frame, DIS flow per "
                   "pair); built with a progress bar if missing, finished if interrupted, refused if stale")
    g = parser.add_argument_group("data")
    g.add_argument("--data", choices=DATA_SOURCES, default=None, help="training data (default synthdrive)")
    g.add_argument("--data-root", default=None,
                   help="dataset folder (synthdrive: omit to generate clips in memory; videos: a file or folder)")
    g.add_argument("--data-split", default=None, help="camvid/cityscapes split (default train)")
    g.add_argument("--video-max-size", type=int, default=None, help="videos: longer side at most this")
    g.add_argument("--extra-data", action="append", default=None, metavar="KIND[:ROOT]",
                   help="train on another source too, e.g. synthdrive (generated in memory with the --synth-* "
                   "settings) or videos:DIR (repeatable)")
    g.add_argument("--crop", type=_size, default=None, metavar="HxW",
                   help="random crop (flow: the pair size); default 256x512")
    g.add_argument("--offsets", choices=("paper", "official"), default=None, help="pair offsets i - k")
    g.add_argument("--scale-range", type=_floats(2), default=None, metavar="LOW,HIGH",
                   help="backbone: random rescale before the crop, e.g. 0.5,2")
    g.add_argument("--color-jitter", type=float, default=None, metavar="S", help="backbone: photometric jitter +-S")
    g.add_argument("--holdout", action="append", default=None, metavar="PATTERN",
                   help="backbone: frame names (fnmatch, e.g. '0006R0_f0[23]*') kept out of training and "
                   "evaluated every --eval-every steps; the best is saved as best.safetensors (repeatable)")
    g.add_argument("--synth-clips", type=int, default=None)
    g.add_argument("--synth-frames", type=int, default=None)
    g.add_argument("--synth-size", type=_size, default=None, metavar="HxW")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=None, help="per process (default 8)")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--min-lr", type=float, default=None)
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--optimizer", choices=("adam", "adamw"), default=None)
    g.add_argument("--schedule", choices=("cosine", "poly"), default=None)
    g.add_argument("--warmup-steps", type=int, default=None)
    g.add_argument("--encoder-lr-mult", type=float, default=None, help="pretrained encoder lr / lr")
    g.add_argument("--seg-loss", choices=("ce", "ohem"), default=None, help="backbone stage loss")
    g.add_argument("--class-balance", type=float, default=None, metavar="POWER",
                   help="backbone stage: weight classes by (median frequency / frequency) ** POWER "
                        "(0.5 damped, 1 full; default 0 = off)")
    g.add_argument("--loss-weights", type=_weights, default=None, metavar="W,S,E,ES",
                   help="lambda_w, lambda_s, lambda_e, lambda_es of Eq. (6) (default 0.2,0.5,0.1,0.2)")
    g.add_argument("--es-mask", choices=("paper", "official"), default=None)
    g = parser.add_argument_group("loop")
    g.add_argument("--out", default=None, help="output folder (default runs/<stage>)")
    g.add_argument("--resume", action="store_true", default=None, help="continue from OUT/last.state.pt")
    g.add_argument("--checkpoint-every", type=int, default=None)
    g.add_argument("--log-every", type=int, default=None)
    g.add_argument("--eval-every", type=int, default=None, help="held-out EPE (flow) / mIoU (backbone) interval")
    g.add_argument("--max-bad-steps", type=int, default=None)
    g.add_argument("--max-bad-files", type=int, default=None,
                   help="a sample whose file fails mid-run is skipped with a warning; stop when more than this many "
                        "files failed (default 10; every file is checked before step one)")
    g.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later)")
    g.add_argument("--overfit-batch", action="store_true", default=None, help="train on one fixed batch")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--workers", type=int, default=None)
    g.add_argument("--amp", choices=AMP_MODES, default=None, help="autocast dtype on CUDA (default bf16)")
    g.add_argument("--sync-bn", action="store_true", default=None)
    g.add_argument("--device", default=None)
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the defaults, the --config file, then the flags that were given."""
    base = load_train_config(args.config) if args.config else TrainConfig(stage=args.stage)
    if args.config and base.stage != args.stage:
        raise ConfigError(f"{args.config} is a {base.stage!r} config, not {args.stage!r}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    over: dict[str, Any] = {}
    for key, value in vars(args).items():
        name = _FLAG_FIELDS.get(key, key)
        if value is None or name not in names or name == "stage":
            continue
        over[name] = value
    if "ablation" in over:
        over["ablation"] = tuple(v.strip() for v in over["ablation"].split(",") if v.strip())
    if "extra_data" in over:
        over["extra_data"] = tuple(over["extra_data"])
    if "holdout" in over:
        over["holdout"] = tuple(over["holdout"])
    if "model_set" in over:
        over["model_set"] = tuple(base.model_set) + tuple(over["model_set"])
    if args.loss_weights is not None:
        over.update(zip(("lambda_warp", "lambda_semantic", "lambda_edge", "lambda_edge_semantic"), args.loss_weights))
    return dataclasses.replace(base, **over)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = main(config)
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.losses[-1] if result.losses else {}
        summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k not in ("step", "lr", "skipped", "seconds"))
        print(f"evss train {config.stage}: step {result.step}/{config.steps}" + (f": {summary}" if summary else ""))
        if result.evals and "epe" in result.evals[-1]:
            print(f"held-out EPE {result.evals[-1]['epe']:.3f} px (full resolution)")
        if result.evals and "miou" in result.evals[-1]:
            print(f"held-out mIoU {result.evals[-1]['miou']:.4f}; best: {result.out_dir / BEST_FILE}")
        print(f"checkpoint: {result.out_dir / MODEL_FILE}")
    return 0
