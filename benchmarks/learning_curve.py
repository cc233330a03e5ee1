"""Learning curve of a training run: held-out mIoU (backbone stage with --holdout) and the loss.

    python benchmarks/learning_curve.py runs/camvid_lite0 runs/camvid_lite0_cb --labels OHEM "OHEM + class weights" \
        --out docs/results/keyframe_net/learning_curve.png

Reads ``RUN/metrics.jsonl``; prints the held-out evaluations as a table and the wall time per 100
steps (median step time, data loading included).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders; with several, their held-out curves side by side")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per run (default: folder names)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        p.error("--labels needs one label per run")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax2 = ax.twinx()
    for i, (run, label) in enumerate(zip(args.runs, labels)):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        evals = [r for r in records if "miou" in r]
        steps = [r for r in records if "total" in r]
        print(f"{label}\n| step | held-out mIoU |\n|---:|---:|")
        for r in evals:
            print(f"| {r['step']} | {100 * r['miou']:.1f} |")
        if steps and any("seconds" in r for r in steps):
            per_step = statistics.median(r["seconds"] for r in steps if "seconds" in r)
            print(f"median step {per_step:.2f} s: {100 * per_step / 60:.1f} min per 100 steps (logged steps)")
        ax.plot([r["step"] for r in steps], [r["total"] for r in steps], color=f"C{i}", alpha=0.35, lw=0.8,
                label=f"{label}: training loss")
        ax2.plot([r["step"] for r in evals], [100 * r["miou"] for r in evals], "o-", color=f"C{i}",
                 label=f"{label}: held-out mIoU")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2.set_ylabel("held-out mIoU (%)")
    fig.legend(loc="lower right", bbox_to_anchor=(0.88, 0.18), frameon=False, fontsize=8)
    fig.tight_layout()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=110)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
