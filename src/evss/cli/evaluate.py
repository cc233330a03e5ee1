"""Flags of `evss eval`."""

from __future__ import annotations

import argparse
from pathlib import Path

from evss.cli.args import PROPAGATIONS, add_backend_arguments, inference_size, int_list, optional_size, size

# A literal copy of evss.evaluation.data.DATA_KINDS (the parser must not import torch)
DATA_KINDS = ("synthdrive", "camvid", "cityscapes_pix2pix")


class _GivenIntervals(argparse.Action):
    """Stores --intervals and notes that it was given: single frames take only the default (interval 1)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.intervals_given = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="built-in name or checkpoint path of the model to evaluate")
    p.add_argument("--data", choices=DATA_KINDS, default="synthdrive",
                   help="synthdrive or camvid clips, or cityscapes_pix2pix: single frames of the pix2pix copy of "
                        "Cityscapes at 256x512, scored per frame in 19 classes (see --holdout-list); a 19-class "
                        "model on camvid or synthdrive is scored collapsed to their 11 classes")
    p.add_argument("--root", type=Path, default=None,
                   help="dataset folder (synthdrive: written by `evss synth`, default: generate on the fly; "
                        "camvid: the SegNet-layout root, e.g. ../shared/data/camvid; cityscapes_pix2pix: the folder "
                        "holding train/<n>.jpg, e.g. ../shared/data/cityscapes_pix2pix)")
    p.add_argument("--split", default=None,
                   help="camvid split (default val, the 15 fps labelled clip); cityscapes_pix2pix folder "
                        "(default train)")
    p.add_argument("--holdout-list", type=Path, default=None, metavar="FILE",
                   help="cityscapes_pix2pix: evaluate only the file numbers listed in FILE, one per line (e.g. "
                        "recipes/cityscapes_heldout.txt, never trained on); default: every file of the split")
    p.add_argument("--clips", type=int, default=8, help="synthdrive clips generated on the fly (default 8)")
    p.add_argument("--seed", type=int, default=1000, help="synthdrive seed (default 1000, apart from training)")
    p.add_argument("--size", type=size, default=(256, 512), help="synthdrive frame size HxW")
    p.add_argument("--frames", type=int, default=30, help="synthdrive frames per clip")
    p.add_argument("--intervals", type=int_list, default=tuple(range(1, 10)), action=_GivenIntervals,
                   help="keyframe intervals, e.g. 1-9 or 1,3,5,7,9 (default 1-9; single frames: 1 only)")
    p.set_defaults(intervals_given=False)
    p.add_argument("--target", choices=("all", "last"), default="all",
                   help="score every frame with enough history (all) or the last frame of each sequence")
    p.add_argument("--tc-interval", type=int, default=5, help="keyframe interval of the TC streaming run")
    p.add_argument("--tc-flow", choices=("gt", "learned", "dis", "none"), default=None,
                   help="flow used to warp predictions for TC (default: gt on synthdrive, dis on real video)")
    p.add_argument("--methods", default=None,
                   help="baselines and the method, comma separated (default per_frame,warp_only,evss; on single "
                        "frames per_frame, the only one that applies)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=WEIGHTS",
                   help="another trained model (e.g. a Table IV ablation), evaluated as EVSS in the same run")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                   help="a test-time variant of --weights, e.g. coarse_only=distortion.mode=coarse or "
                        "official_test=segmenter.coarse_reference=keyframe")
    p.add_argument("--propagation", choices=PROPAGATIONS, default="composed",
                   help="composed (default): warp the keyframe's features once along the composed flow; "
                        "chained: warp the previous frame's warped features again (Algorithm 1 line 18); "
                        "merged: warp the previous frame's merged features F^m (not in the paper; an ablation of "
                        "line 18)")
    p.add_argument("--flow-sources", default="", metavar="NAME[,NAME]",
                   help="also run warp_only and evss with these flow sources instead of the learned FlowNet "
                        "(dis: OpenCV DIS), as rows NAME[dis]")
    p.add_argument("--max-sequences", type=int, default=None)
    p.add_argument("--panels", type=int, default=3, help="samples in the Fig. 6/12-style panel")
    p.add_argument("--costs-size", type=optional_size, default=(512, 1024),
                   help="resolution of the per-component cost table ('' skips)")
    p.add_argument("--out", type=Path, default=Path("eval-report"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    add_backend_arguments(p)
    p.add_argument("--inference-size", type=inference_size, default=None, metavar="PIXELS|full",
                   help="segment frames whose longer side is over PIXELS downscaled to it and score the labels "
                        "upsampled (as evss segment); full: every frame at its own size; default: the weights' "
                        "inference_size")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G (default: half the available memory, at most 3G); frames whose "
                        "estimated peak is over it are segmented smaller and the labels upsampled for scoring")
    p.add_argument("--no-downscale", action="store_true",
                   help="stop with an error instead of segmenting smaller when over --max-memory")
