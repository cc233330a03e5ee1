"""Training: three stages, one plain loop (``evss train backbone|flow|evss``).

* :mod:`.config`: :class:`TrainConfig` (everything a run depends on), ablations, config files,
  the flags -> config conversion and the model config of a run;
* :mod:`.sampling`: the run's data source and dataset, and the seeded order of its samples;
* :mod:`.stages`: ``train_backbone`` / ``train_flow`` / ``train_evss`` build a Stage and run it;
* :mod:`.loop`: :func:`fit`, the loop shared by the stages; :mod:`.hooks`: logging and held-out
  evaluation after each step; :mod:`.evaluation`: the held-out frames and flow pairs;
* :mod:`.state`: RNG states, the resumable training state and the run's checkpoints.

Files in ``out_dir`` (default ``runs/<stage>``): ``last.safetensors``, ``last.state.pt``,
``train_config.json`` (the TrainConfig of the run), ``metrics.jsonl`` (one line per logged step and
evaluation), ``tb/`` (TensorBoard) and, with held-out frames, ``best.safetensors``.

Several GPUs: launch with ``torchrun --nproc_per_node N -m evss.cli train ...``; ``batch_size`` is
per process (the authors: 8 per GPU on 2 GPUs). The flags are in :mod:`evss.cli.train`.
"""

from __future__ import annotations

import argparse
import os

from evss.device import Runtime
from evss.train.config import (
    ABLATIONS,
    AMP_MODES,
    DATA_SOURCES,
    STAGES,
    TrainConfig,
    config_from_args,
    data_label_space,
    load_train_config,
    loss_weights,
    model_overrides,
    output_dir,
    resolve_model_config,
    train_config_to_dict,
)
from evss.train.evaluation import HeldOutFrames, HeldOutPairs
from evss.train.loop import Stage, TrainResult, autocast_context, fit, lr_factor, param_groups
from evss.train.sampling import (
    ByPosition,
    ItemError,
    StepPositions,
    build_dataloader,
    build_dataset,
    build_source,
    collate,
    synthdrive_folder,
)
from evss.train.stages import (
    evss_batch_losses,
    init_model,
    main,
    setup_runtime,
    train_backbone,
    train_evss,
    train_flow,
)
from evss.train.state import (
    BEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    load_training_state,
    read_training_state,
    save_training_state,
    seed_everything,
)



def run(args: argparse.Namespace) -> int:
    """``evss train``: the flags (:mod:`evss.cli.train`) -> TrainConfig -> one stage, then a summary."""
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


__all__ = [
    "ABLATIONS", "AMP_MODES", "BEST_FILE", "DATA_SOURCES", "MODEL_FILE", "STAGES", "STATE_FILE", "ByPosition",
    "HeldOutFrames", "HeldOutPairs", "ItemError", "Runtime", "Stage", "StepPositions",
    "TrainConfig", "TrainResult", "autocast_context", "build_dataloader", "build_dataset", "build_source", "collate",
    "config_from_args", "data_label_space", "evss_batch_losses", "fit", "init_model",
    "load_train_config", "load_training_state", "loss_weights", "lr_factor", "main", "model_overrides",
    "output_dir", "param_groups", "read_training_state", "resolve_model_config", "run",
    "save_training_state", "seed_everything", "setup_runtime", "synthdrive_folder",
    "train_backbone", "train_config_to_dict", "train_evss", "train_flow",
]
