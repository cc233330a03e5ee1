"""Adaptive vs fixed keyframes on SynthDrive: mIoU against the share of keyframes.

    python benchmarks/adaptive_keyframes.py --weights synthdrive_light --clips 6 --frames 40 \
        --threads 2 --png docs/adaptive_keyframes.png

Fixed intervals trace one curve. The adaptive policy (``evss.keyframes.AdaptiveKeyframes``, a new
keyframe when the share of pixels with M^f > 0.5, or the mean of M^f, on the frame just segmented
exceeds a bound, or after ``--max-interval`` frames) traces one curve per statistic as its bound
moves. Bounds are the quantiles of the statistic seen on a calibration pass at the maximum
interval, so the sweep covers the keyframe-share range whatever the weights. ``--cuts`` joins
clips pairwise into videos with a hard cut and adds the photometric-residual trigger.

Adaptive "gives the same mIoU with fewer keyframes" where its curve lies above the fixed one;
the script prints, for every adaptive point, the fixed-interval mIoU interpolated at the same
keyframe share.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from evss.checkpoint import load_weights
from evss.cli.args import size
from evss.data.synthdrive import SynthDriveConfig, generate_clip
from evss.keyframes import AdaptiveKeyframes, FixedInterval, FlowProbe
from evss.metrics import ConfusionMatrix
from evss.segmenter import SegmenterConfig, VideoSegmenter

QUANTILES = (0.5, 0.7, 0.8, 0.9, 0.95)


class StatsFixed:
    """A fixed interval the segmenter does not take for :class:`FixedInterval`: it then computes the
    fine-map statistics of every non-keyframe (two host syncs it skips for a plain fixed interval),
    which the calibration pass and the per-frame statistics need."""

    def __init__(self, inner: FixedInterval) -> None:
        self.inner = inner

    def __call__(self, **kwargs) -> bool:
        return self.inner(**kwargs)


def run_policy(model, videos, labels, num_classes: int, make_policy, *, probe: bool = False) -> dict:
    cm, keys, frames, secs, stats = ConfusionMatrix(num_classes), 0, 0, 0.0, {"share": [], "mean": []}
    for video, label in zip(videos, labels):
        flow = FlowProbe(model.flow) if probe else None
        policy = make_policy(flow)
        if isinstance(policy, FixedInterval):
            policy = StatsFixed(policy)
        seg = VideoSegmenter(model, config=SegmenterConfig(), flow=flow, keyframe_policy=policy)
        for f, gt in zip(video, label):
            r = seg.step(f)
            cm.update(r.labels, gt)
            keys += r.is_keyframe
            frames += 1
            secs += r.seconds
            if not r.is_keyframe:
                stats["share"].append(r.fine_share)
                stats["mean"].append(r.fine_mean)
    return {"miou": cm.compute()["miou"], "keyframe_share": keys / frames, "ms_per_frame": 1000 * secs / frames,
            "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="built-in name or checkpoint (default: the segment default)")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=size, default="256x512")
    ap.add_argument("--intervals", default="1,2,3,5,8,12,20")
    ap.add_argument("--max-interval", type=int, default=20)
    ap.add_argument("--cuts", action="store_true", help="join clips pairwise: videos with a hard cut")
    ap.add_argument("--residual", type=float, default=0.08, help="residual bound with --cuts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=200)
    ap.add_argument("--png", type=Path, default=Path("docs/adaptive_keyframes.png"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    h, w = a.size
    model, config, described, trained = load_weights(a.weights)
    clips = [generate_clip(SynthDriveConfig(height=h, width=w, frames=a.frames), seed=a.seed + i)
             for i in range(a.clips)]
    videos, labels = [c.frames for c in clips], [c.labels for c in clips]
    if a.cuts:
        videos = [np.concatenate(videos[i:i + 2]) for i in range(0, len(videos) - 1, 2)]
        labels = [np.concatenate(labels[i:i + 2]) for i in range(0, len(labels) - 1, 2)]
    n = config.num_classes
    t0 = time.perf_counter()
    fixed = []
    for k in (int(v) for v in a.intervals.split(",")):
        r = run_policy(model, videos, labels, n, lambda _, k=k: FixedInterval(k))
        fixed.append({"interval": k, **{x: r[x] for x in ("miou", "keyframe_share", "ms_per_frame")}})
        print(f"fixed {k:3d}: keyframes {100 * r['keyframe_share']:5.1f}%  mIoU {100 * r['miou']:.2f}%")
        if k == a.max_interval:
            calib = r["stats"]
    if a.max_interval not in [f["interval"] for f in fixed]:
        calib = run_policy(model, videos, labels, n, lambda _: FixedInterval(a.max_interval))["stats"]

    adaptive = {}
    for stat in ("share", "mean"):
        values = np.asarray(calib[stat], dtype=np.float64)
        bounds = sorted({float(np.quantile(values, q)) for q in QUANTILES})
        rows = []
        for b in bounds:
            def make(probe, b=b, stat=stat):
                return AdaptiveKeyframes(max_interval=a.max_interval, share=b if stat == "share" else None,
                                         mean=b if stat == "mean" else None,
                                         residual=a.residual if a.cuts else None, probe=probe)
            r = run_policy(model, videos, labels, n, make, probe=a.cuts)
            fx = sorted(fixed, key=lambda f: f["keyframe_share"])
            at = float(np.interp(r["keyframe_share"], [f["keyframe_share"] for f in fx], [f["miou"] for f in fx]))
            rows.append({"bound": b, "miou": r["miou"], "keyframe_share": r["keyframe_share"],
                         "ms_per_frame": r["ms_per_frame"], "fixed_miou_at_same_share": at})
            print(f"adaptive {stat} > {b:.4f}: keyframes {100 * r['keyframe_share']:5.1f}%  mIoU {100 * r['miou']:.2f}%"
                  f"  (fixed at that share {100 * at:.2f}%, diff {100 * (r['miou'] - at):+.2f})")
        adaptive[stat] = rows
    wall = time.perf_counter() - t0

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evss.media import atomic_write
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    fx = sorted(fixed, key=lambda f: f["keyframe_share"])
    ax.plot([100 * f["keyframe_share"] for f in fx], [100 * f["miou"] for f in fx], "o-", color="k",
            label="fixed interval")
    for f in fx:
        ax.annotate(f"n={f['interval']}", (100 * f["keyframe_share"], 100 * f["miou"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)
    for stat, color in (("share", "tab:red"), ("mean", "tab:blue")):
        rows = sorted(adaptive[stat], key=lambda r: r["keyframe_share"])
        ax.plot([100 * r["keyframe_share"] for r in rows], [100 * r["miou"] for r in rows], "s--", color=color,
                label=f"adaptive: {'share of M^f > 0.5' if stat == 'share' else 'mean M^f'} (max {a.max_interval})")
    ax.set_xlabel("keyframes (% of frames)")
    ax.set_ylabel("mIoU (%)")
    title = f"SynthDrive {len(videos)} videos{' with a hard cut' if a.cuts else ''}, {w}x{h}"
    ax.set_title(title + ("" if trained else "\nUNTRAINED weights: illustrative only"), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_write(a.png, lambda p: fig.savefig(p, format="png", dpi=120, bbox_inches="tight"))
    result = {"date": str(datetime.date.today()), "machine": platform.processor() or platform.machine(),
              "threads": a.threads, "weights": described, "trained": trained, "size": [h, w], "clips": a.clips,
              "frames": a.frames, "cuts": a.cuts, "max_interval": a.max_interval, "fixed": fixed,
              "adaptive": adaptive, "seconds": wall}
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {a.png} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
