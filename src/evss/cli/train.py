"""Flags of `evss train` (the flags -> TrainConfig conversion is :func:`evss.apps.train.config_from_args`).

Every flag defaults to None, "not given": the run's settings are TrainConfig's defaults, then the
``--config`` file, then the flags that were given. Only the standard library and
:mod:`evss.cli.args` are imported here (``evss --help`` stays fast).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from evss.cli.args import override, size, unit_float

# The choices that evss.train.config's TrainConfig checks (tests/apps/test_train.py keeps them equal).
STAGES = ("backbone", "flow", "evss")
DATA_SOURCES = ("synthdrive", "camvid", "camvid-stills", "cityscapes", "videos",
                "cityscapes_pix2pix", "cityscapes_pix2pix+camvid")
AMP_MODES = ("off", "bf16", "fp16")


def floats(n: int, example: str) -> Callable[[str], tuple[float, ...]]:
    """``n`` comma-separated numbers, e.g. ``example``."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"{text!r} is not {n} comma-separated numbers (e.g. {example})")
        return values
    return parse


class _ListAblations(argparse.Action):
    """``--list-ablations``: print the Table IV settings and exit (they are read from evss.train.config
    only then, so building the parser stays light)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        from evss.train.config import ABLATIONS
        for name, overrides in ABLATIONS.items():
            print(f"{name:14s} {', '.join(f'{k}={v}' for k, v in overrides.items()) or '(the proposed model)'}")
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``evss train``. Precedence: TrainConfig defaults < --config FILE < flags."""
    parser.description = ("Train a stage (output in --out, default runs/<stage>). Settings: defaults < "
                          "--config FILE < flags. The chain: evss train backbone; evss train flow; "
                          "evss train evss --teacher runs/backbone/last.safetensors "
                          "--flow-init runs/flow/last.safetensors")
    parser.add_argument("stage", choices=STAGES, help="backbone (CSRNet), flow (FlowNet pretraining) or "
                        "evss (FlowNet + CoNet against the frozen backbone)")
    parser.add_argument("--config", type=Path, default=None, help="TrainConfig JSON (see configs/)")
    _model_flags(parser.add_argument_group("model"))
    _data_flags(parser.add_argument_group("data"))
    _optimisation_flags(parser.add_argument_group("optimisation"))
    _loop_flags(parser.add_argument_group("loop"))


def _model_flags(g: argparse._ArgumentGroup) -> None:
    """The model, its initialisation and the teacher."""
    g.add_argument("--model", default=None,
                   help="preset (paper, official, light, tiny, lite0, lite1) or model JSON (default light)")
    g.add_argument("--set", dest="model_set", type=override, action="append", default=None, metavar="KEY=VALUE",
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


def _data_flags(g: argparse._ArgumentGroup) -> None:
    """The training data and its augmentation."""
    g.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="training data (default synthdrive; camvid-stills: CamVid's labelled frames made into "
                   "short simulated drives, for the evss stage; cityscapes_pix2pix+camvid: --data-root holding "
                   "cityscapes_pix2pix/ and camvid/, a 19-class backbone taught CamVid through sets of its classes)")
    g.add_argument("--data-root", default=None,
                   help="dataset folder (synthdrive: omit to generate clips in memory; videos: a file or folder)")
    g.add_argument("--data-split", default=None, help="camvid/cityscapes split (default train)")
    g.add_argument("--video-max-size", type=int, default=None, help="videos: longer side at most this")
    g.add_argument("--extra-data", action="append", default=None, metavar="KIND[:ROOT]",
                   help="train on another source too, e.g. synthdrive (generated in memory with the --synth-* "
                   "settings) or videos:DIR (repeatable)")
    g.add_argument("--crop", type=size, default=None, metavar="HxW",
                   help="random crop (flow: the pair size); default 256x512")
    g.add_argument("--offsets", choices=("paper", "official"), default=None, help="pair offsets i - k")
    g.add_argument("--scale-range", type=floats(2, "0.5,2"), default=None, metavar="LOW,HIGH",
                   help="backbone: random rescale before the crop, e.g. 0.5,2")
    g.add_argument("--color-jitter", type=unit_float, default=None, metavar="S",
                   help="backbone: photometric jitter +-S")
    g.add_argument("--holdout", action="append", default=None, metavar="PATTERN",
                   help="backbone: frame names (fnmatch, e.g. '0006R0_f0[23]*') kept out of training and "
                   "evaluated every --eval-every steps; the best is saved as best.safetensors (repeatable)")
    g.add_argument("--holdout-list", default=None, metavar="FILE",
                   help="cityscapes_pix2pix: file numbers (one per line, e.g. recipes/cityscapes_heldout.txt) kept "
                   "out of training and evaluated with the --holdout frames")
    g.add_argument("--synth-clips", type=int, default=None)
    g.add_argument("--synth-frames", type=int, default=None)
    g.add_argument("--synth-size", type=size, default=None, metavar="HxW")
    g.add_argument("--still-frames", type=int, default=None,
                   help="camvid-stills: frames per simulated drive made from each labelled still (default 6)")
    g.add_argument("--still-zoom", type=unit_float, default=None, metavar="Z",
                   help="camvid-stills: forward motion per frame, the view shrinks by this fraction (default 0.03)")


def _optimisation_flags(g: argparse._ArgumentGroup) -> None:
    """Optimiser, schedule and loss settings."""
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
    g.add_argument("--loss-weights", type=floats(4, "0.2,0.5,0.1,0.2"), default=None, metavar="W,S,E,ES",
                   help="lambda_w, lambda_s, lambda_e, lambda_es of Eq. (6) (default 0.2,0.5,0.1,0.2)")
    g.add_argument("--es-mask", choices=("paper", "official"), default=None)


def _loop_flags(g: argparse._ArgumentGroup) -> None:
    """Output, checkpoints, logging, resuming and the run's resources."""
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
