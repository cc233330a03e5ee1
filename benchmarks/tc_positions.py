"""Where is temporal consistency won or lost, and how much could a better CoNet win?

    python benchmarks/tc_positions.py --weights synthdrive_light --seeds 500 2000 --threads 2
    python benchmarks/tc_positions.py --weights synthdrive_light --seeds 1000 --threads 2
    python benchmarks/tc_positions.py --weights camvid --data camvid --threads 2

Claim (d) says EVSS is more consistent over time (Eq. 8) than the per-frame keyframe network. A
keyframe method is very consistent between propagated frames (the labels move with the flow) and
jumps where a fresh keyframe replaces the propagated features. This script runs `evss eval`'s TC
protocol (streaming at interval 5; SynthDrive: ground-truth flow with occlusions ignored, CamVid:
DIS) for per-frame, warp-only, EVSS with the weights' own settings, any ``--variant`` of `evss eval`,
and an **oracle**: EVSS whose F^u is the keyframe network's own logits on the current frame (CoNet's
edge map and Eqs. 3-5 unchanged), i.e. a CoNet as good as the keyframe network (``--oracle 0.5@0.75``:
half of F^u from the keyframe network run on the frame scaled by 0.75, half CoNet's; these rows cost
a keyframe network per frame and only measure what a stronger CoNet could buy). It prints

* TC per row, and TC split by where the pair (t - 1, t) falls in the keyframe interval (t mod 5;
  0: t is a keyframe);
* per clip, each row's TC minus per-frame's, their mean, its standard error over clips and how many
  clips the row wins: whether a difference is larger than the clip-to-clip spread.

With ``--intervals`` it also scores mIoU at those keyframe distances (as `evss eval`; slower).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evss.checkpoint import load_model
from evss.evaluation import EvalData, Method, eval_source, evaluate, tc_flow_for, trained_flow, variant
from evss.models.evss import EVSSNet


class KeyframeNetUpdate(nn.Module):
    """CoNet whose F^u is mixed with the keyframe network's logits on the current frame (the oracle):
    F^u := alpha * F^b_i + (1 - alpha) * CoNet's F^u, F^b_i computed on the frame resized by ``scale``
    (then resized onto the 1/4 grid). alpha 1, scale 1: a CoNet as good as the keyframe network."""

    def __init__(self, correction: nn.Module, backbone: nn.Module, *, alpha: float = 1.0, scale: float = 1.0) -> None:
        super().__init__()
        self.correction, self.backbone, self.alpha, self.scale = correction, backbone, alpha, scale
        self.num_classes = correction.num_classes
        self.edge_probability = correction.edge_probability

    def forward(self, image: torch.Tensor, warped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        updated, edge_scores = self.correction(image, warped)  # (N, C, h, w), (N, 1, h, w): CoNet's own
        x = image if self.scale == 1.0 else F.interpolate(image, scale_factor=self.scale, mode="bilinear",
                                                          align_corners=False)  # (N, 3, sH, sW)
        key = self.backbone(x)  # (N, C, sh, sw) F^b_i
        if key.shape[-2:] != updated.shape[-2:]:
            key = F.interpolate(key, size=updated.shape[-2:], mode="bilinear", align_corners=False)  # (N, C, h, w)
        return self.alpha * key + (1 - self.alpha) * updated, edge_scores


def rows(model: EVSSNet, config, variants: list[str], oracles: list[str]) -> list[Method]:
    own = trained_flow(config, model)
    out = [Method(mode, model, mode, flow=own) for mode in ("per_frame", "warp_only", "evss")]
    for spec in variants:
        name, other, seg = variant(model, config, spec)
        out.append(Method(name, other, "evss", flow=own, segmenter_overrides=seg))
    for spec in oracles:  # "ALPHA" or "ALPHA@SCALE"
        alpha, _, scale = spec.partition("@")
        a, sc = float(alpha), float(scale or 1.0)
        oracle = EVSSNet(backbone=model.backbone, flow=model.flow, distortion=model.distortion,
                         correction=KeyframeNetUpdate(model.correction, model.backbone, alpha=a, scale=sc)).eval()
        name = "oracle F^u = keyframe net" if (a, sc) == (1.0, 1.0) else f"oracle mix {a:g} at scale {sc:g}"
        out.append(Method(name, oracle, "evss", flow=own))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="synthdrive_light")
    p.add_argument("--data", choices=("synthdrive", "camvid"), default="synthdrive")
    p.add_argument("--root", type=Path, default=None, help="CamVid root (default ../shared/data/camvid)")
    p.add_argument("--clips", type=int, default=8, help="SynthDrive clips per seed (256x512, 30 frames)")
    p.add_argument("--seeds", type=int, nargs="+", default=[500], help="SynthDrive seeds (500: validation, 1000: test)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE", help="as in evss eval")
    p.add_argument("--oracle", nargs="*", default=["1"], metavar="ALPHA[@SCALE]",
                   help="oracle rows: F^u := ALPHA * keyframe net on the frame at SCALE + (1 - ALPHA) * CoNet's F^u")
    p.add_argument("--intervals", type=int, nargs="*", default=[], help="also score mIoU at these distances")
    p.add_argument("--tc-interval", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.weights)
    model.eval()
    methods = rows(model, config, args.variant, args.oracle)
    per_clip: dict[str, list[float]] = {m.name: [] for m in methods}
    reports = []
    for seed in (args.seeds if args.data == "synthdrive" else [None]):
        data = EvalData(kind=args.data, root=args.root, split="val", clips=args.clips,
                        seed=1000 if seed is None else seed, size=(256, 512), frames=30)
        opened = eval_source(data)
        default = opened.tc_flow_default
        tc_flow = tc_flow_for(default, opened, model, torch.device("cpu"), kind=args.data)
        rep = evaluate(methods, opened.source, num_classes=config.num_classes, intervals=tuple(args.intervals),
                       tc_interval=args.tc_interval, tc_flow=tc_flow, tc_flow_name=default)
        reports.append(rep)
        for name, m in rep["methods"].items():
            per_clip[name] += m["tc_per_sequence"]
    where = f"SynthDrive seeds {args.seeds}, {args.clips} clips each" if args.data == "synthdrive" else "CamVid val"
    print(f"{args.weights} on {where}: TC (%) at interval {args.tc_interval}, {args.threads} threads")
    n = args.tc_interval
    print("| row | TC | " + " | ".join(f"place {k}" for k in range(n)) + " | minus per-frame (s.e.) | clips won |"
          + "".join(f" mIoU d={d} |" for d in args.intervals))
    print("|---|---:|" + "---:|" * n + "---:|---:|" + "---:|" * len(args.intervals))
    base = np.array(per_clip["per_frame"])
    for m in methods:
        vals = np.array(per_clip[m.name])
        diff = vals - base
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        # TC by place pooled over the seeds' reports: the mean of each report's value (equal clip counts)
        places = np.mean([[np.nan if v is None else v for v in r["methods"][m.name]["tc_by_position"]]
                          for r in reports], axis=0)
        acc = [np.mean([r["methods"][m.name]["intervals"][str(d)]["miou"] for r in reports]) for d in args.intervals]
        versus = ("-", "-") if m.name == "per_frame" else (
            f"{100 * diff.mean():+.2f}" + (f" ({100 * se:.2f})" if len(diff) > 1 else ""),
            f"{int((diff > 0).sum())} / {len(diff)}")
        print(f"| {m.name} | {100 * vals.mean():.2f} | " + " | ".join(f"{100 * v:.1f}" for v in places)
              + f" | {versus[0]} | {versus[1]} |"
              + "".join(f" {100 * a:.2f} |" for a in acc))


if __name__ == "__main__":
    main()
