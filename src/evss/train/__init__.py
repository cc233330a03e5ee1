"""Training: three stages, one plain loop (``evss train backbone|flow|evss``).

* :mod:`.config`: :class:`TrainConfig` (everything a run depends on), ablations, config files
  and the model config of a run;
* :mod:`.sampling`: the run's data source and dataset, and the seeded order of its samples;
* :mod:`.stages`: ``train_backbone`` / ``train_flow`` / ``train_evss`` build a Stage and run it;
* :mod:`.loop`: :func:`fit`, the loop shared by the stages; :mod:`.hooks`: logging and held-out
  evaluation after each step; :mod:`.evaluation`: the held-out frames and flow pairs;
* :mod:`.state`: RNG states, the resumable training state and the run's checkpoints.

Files in ``out_dir`` (default ``runs/<stage>``): ``last.safetensors``, ``last.state.pt``,
``train_config.json`` (the TrainConfig of the run), ``metrics.jsonl`` (one line per logged step and
evaluation), ``tb/`` (TensorBoard) and, with held-out frames, ``best.safetensors``.

Several GPUs: launch with ``torchrun --nproc_per_node N -m evss.cli train ...``; ``batch_size`` is
per process (the authors: 8 per GPU on 2 GPUs). The flags are in :mod:`evss.cli.train`, their
conversion into a TrainConfig in :mod:`evss.apps.train`.
"""

from __future__ import annotations

from evss.device import Runtime
from evss.train.config import (
    ABLATIONS,
    AMP_MODES,
    DATA_SOURCES,
    STAGES,
    TrainConfig,
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

__all__ = [
    "ABLATIONS", "AMP_MODES", "BEST_FILE", "DATA_SOURCES", "MODEL_FILE", "STAGES", "STATE_FILE", "ByPosition",
    "HeldOutFrames", "HeldOutPairs", "ItemError", "Runtime", "Stage", "StepPositions",
    "TrainConfig", "TrainResult", "autocast_context", "build_dataloader", "build_dataset", "build_source", "collate",
    "data_label_space", "evss_batch_losses", "fit", "init_model",
    "load_train_config", "load_training_state", "loss_weights", "lr_factor", "main", "model_overrides",
    "output_dir", "param_groups", "read_training_state", "resolve_model_config",
    "save_training_state", "seed_everything", "setup_runtime", "synthdrive_folder",
    "train_backbone", "train_config_to_dict", "train_evss", "train_flow",
]
