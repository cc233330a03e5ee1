"""What a training run depends on: :class:`TrainConfig`, its checks, the Table IV ablations, JSON
config files, and the model config a run trains.

Precedence: TrainConfig defaults < ``--config FILE`` < flags (:func:`evss.apps.train.config_from_args`).
The model config is a preset in the data's label space (or a model JSON), then the ablations' and ``--set``'s
overrides (:func:`resolve_model_config`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evss.checkpoint import read_metadata
from evss.config import PRESETS, EVSSConfig, apply_overrides, from_dict, load_config, parse_override, preset, read_json
from evss.errors import ConfigError
from evss.losses import LossWeights

STAGES = ("backbone", "flow", "evss")
DATA_SOURCES = ("synthdrive", "camvid", "camvid-stills", "cityscapes", "videos",
                # Cityscapes' pix2pix copy, alone or with CamVid as sets of its classes (evss.train.mixed_backbone)
                "cityscapes_pix2pix", "cityscapes_pix2pix+camvid")
AMP_MODES = ("off", "bf16", "fp16")
LABEL_SPACE_OF = {"synthdrive": "camvid", "camvid": "camvid", "camvid-stills": "camvid",
                  "cityscapes": "cityscapes", "cityscapes_pix2pix": "cityscapes",
                  "cityscapes_pix2pix+camvid": "cityscapes"}  # videos: none

# Table IV settings as overrides. Keys starting with "model." set a field of the model config
# (EVSSConfig, dotted path); the other keys set a field of TrainConfig (the loss weights).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},  # the proposed model
    "flownet-fixed": {"model.freeze_flow": True},  # FlowNet fixed (pretrained, not fine-tuned)
    "no-ppm": {"model.correction.use_ppm": False},  # w/o PPM: a 3x3 conv replaces it
    "no-ffm3": {"model.correction.use_ffm3": False},  # w/o FFM-3 (the 1/4 fusion)
    "no-ffm3-ffm2": {"model.correction.use_ffm3": False,  # w/o FFM-3 & FFM-2
                     "model.correction.use_ffm2": False},
    # w/o concatenation of F^w in N_upda (so no passthrough head: it would have nothing to pass)
    "no-concat": {"model.correction.concat_warped": False, "model.correction.head_init": "random"},
    "no-warped": {"model.correction.concat_warped": False,  # w/o the warped features F^w at all:
                  "model.correction.head_init": "random",
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
    data: str = "synthdrive"  # "synthdrive" | "camvid" | "camvid-stills" | "cityscapes" | "videos" (unused by
    #                           "flow"); camvid-stills: CamVid's labelled frames as simulated drives (evss stage)
    data_root: str | None = None  # dataset folder (videos: a video file, a folder of videos or of frame
    #                               folders); synthdrive without one generates clips in memory
    data_split: str = "train"  # camvid / cityscapes split
    video_max_size: int | None = None  # videos: decode with the longer side at most this (None: as stored)
    extra_data: tuple[str, ...] = ()  # more sources trained on together: "KIND" or "KIND:ROOT" (e.g. "synthdrive",
    #                                   "videos:clips/"), read with the same settings as the main one
    synth_clips: int = 8  # in-memory SynthDrive: number of clips ...
    synth_frames: int = 30  # ... frames per clip ...
    synth_size: tuple[int, int] = (256, 512)  # ... and their size (H, W)
    still_frames: int = 6  # camvid-stills: frames per simulated drive ...
    still_zoom: float = 0.03  # ... and the forward motion per frame (the view shrinks by this fraction)
    crop_size: tuple[int, int] | None = (256, 512)  # (H, W) random crop; also the FlowPairs size
    offsets: str = "paper"  # pair offsets i - k: "paper" [-4, 5] \ {0} or "official" {1..5, -2..-5}
    flip: bool = True  # random horizontal flip (Sec. IV-A)
    scale_range: tuple[float, float] | None = None  # backbone stage: random rescale (e.g. 0.5-2x) before the crop
    color_jitter: float = 0.0  # backbone stage: brightness/contrast/saturation jitter (+-), 0 = off
    holdout: tuple[str, ...] = ()  # backbone stage: frame-name patterns (fnmatch) kept out of training;
    #                                held-out mIoU every eval_every steps, best model in best.safetensors
    holdout_list: str | None = None  # cityscapes_pix2pix: a file of file numbers (one per line) held out the same way
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
    # FlowNet's multi-scale EPE weights for flow6..flow2 (normalised to sum 1, see losses.multiscale_epe)
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
        check(self.still_frames >= 2, f"still_frames must be >= 2, got {self.still_frames}")
        check(0 <= self.still_zoom <= 0.2, f"still_zoom must be in [0, 0.2], got {self.still_zoom}")
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
        check(self.scale_range is None
              or (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1] <= 8),
              f"scale_range must be (low, high) with 0 < low <= high <= 8, got {self.scale_range}")
        check(self.flow_source in ("learned", "dis"), f"flow_source {self.flow_source!r} is not 'learned' or "
              "'dis' (codec motion vectors exist only between consecutive decoded frames, not for training pairs)")
        check(self.cache is None or self.stage == "evss", "--cache is for the evss stage")
        check(not self.data.startswith("cityscapes_pix2pix") or self.stage == "backbone",
              f"data {self.data!r} holds single frames: it trains the backbone stage only")
        check(self.holdout_list is None or self.data.startswith("cityscapes_pix2pix"),
              f"--holdout-list is for the cityscapes_pix2pix data, not {self.data!r}")
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


def output_dir(config: TrainConfig) -> Path:
    return Path(config.out_dir or f"runs/{config.stage}")


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_train_config(path: str | Path) -> TrainConfig:
    """A TrainConfig JSON file; unknown keys and wrong types raise ConfigError naming the file.

    Keys starting with ``_`` (such as ``"_comment"``) are notes and are skipped.
    """
    data = read_json(path, "training config")
    data = {k: v for k, v in data.items() if not k.startswith("_")} if isinstance(data, dict) else data
    return from_dict(TrainConfig, data, where=str(path))


# ---- what the config implies ---------------------------------------------------------------------

def model_overrides(config: TrainConfig) -> dict[str, Any]:
    """The model-config overrides of the ablations then ``model_set`` (later ones win)."""
    out: dict[str, Any] = {}
    for name in config.ablation:
        out.update({k[len("model."):]: v for k, v in ABLATIONS[name].items() if k.startswith("model.")})
    for item in config.model_set:
        key, value = parse_override(item, what="model override")
        out[key] = value
    return out


def loss_weights(config: TrainConfig) -> LossWeights:
    """Eq. (6) lambdas: the config's, then the ablations' (``no-le`` sets lambda_e = 0, ...)."""
    values = {"lambda_warp": config.lambda_warp, "lambda_semantic": config.lambda_semantic,
              "lambda_edge": config.lambda_edge, "lambda_edge_semantic": config.lambda_edge_semantic}
    for name in config.ablation:
        values.update({k: v for k, v in ABLATIONS[name].items() if not k.startswith("model.")})
    return LossWeights(warp=values["lambda_warp"], semantic=values["lambda_semantic"],
                       edge=values["lambda_edge"], edge_semantic=values["lambda_edge_semantic"])


def data_label_space(config: TrainConfig) -> str | None:
    """The label space of the data (of the first labelled source); None for unlabelled videos only
    (it then follows the model)."""
    for kind in (config.data, *(spec.partition(":")[0] for spec in config.extra_data)):
        if kind in LABEL_SPACE_OF:
            return LABEL_SPACE_OF[kind]
    return None


def resolve_model_config(config: TrainConfig) -> EVSSConfig:
    """Preset (in the data's label space) or JSON file, then the ablations and ``model_set``."""
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
    overrides = model_overrides(config)
    if config.stage == "evss":
        overrides = {"flow_source": config.flow_source, **overrides}
    return apply_overrides(base, overrides, what="model override")


def _checkpoint_label_space(path: str | None) -> str | None:
    """The label space in an evss checkpoint's embedded config; None when there is none to read."""
    if not path or not str(path).endswith(".safetensors") or not Path(path).is_file():
        return None
    try:
        return json.loads(read_metadata(Path(path)).get("config", "{}")).get("label_space")
    except (json.JSONDecodeError, AttributeError):
        return None
