"""`evss train STAGE`: the flags (:mod:`evss.cli.train`) -> a TrainConfig -> one stage, then a summary.

Precedence: TrainConfig defaults < ``--config FILE`` < the flags that were given (every flag
defaults to None, "not given"). The training itself is :func:`evss.train.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from evss.errors import ConfigError
from evss.train import BEST_FILE, MODEL_FILE, TrainConfig, TrainResult, load_train_config, main

# flag dest -> TrainConfig field, for the flags of evss.cli.train whose name differs from the field
_FLAG_FIELDS = {"out": "out_dir", "crop": "crop_size"}


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
    """Train the stage the flags describe; rank 0 prints the last losses, the held-out figures and
    where the checkpoint is."""
    config = config_from_args(args)
    result = main(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print_summary(config, result)
    return 0


def print_summary(config: TrainConfig, result: TrainResult) -> None:
    last = result.losses[-1] if result.losses else {}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k not in ("step", "lr", "skipped", "seconds"))
    print(f"evss train {config.stage}: step {result.step}/{config.steps}" + (f": {summary}" if summary else ""))
    if result.evals and "epe" in result.evals[-1]:
        print(f"held-out EPE {result.evals[-1]['epe']:.3f} px (full resolution)")
    if result.evals and "miou" in result.evals[-1]:
        print(f"held-out mIoU {result.evals[-1]['miou']:.4f}; best: {result.out_dir / BEST_FILE}")
    print(f"checkpoint: {result.out_dir / MODEL_FILE}")
