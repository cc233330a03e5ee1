"""mIoU cost of the fast label path (argmax at 1/4, exact interpolation only near label changes)
against the exact one (every class channel upsampled, then argmax), streamed over the CamVid val clip.

    python benchmarks/label_paths.py --weights camvid --root ../shared/data/camvid --threads 2

For each mode (per frame; warp-only and EVSS at interval 5 with the weights' flow source) it prints
the mIoU of both paths and the share of pixels whose label differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from evss.checkpoint import load_model
from evss.flow_sources import make_flow_source
from evss.metrics import confusion_matrix, mean_iou
from evss.segmenter import SegmenterConfig, VideoSegmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="camvid")
    p.add_argument("--root", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = sorted((args.root / "val" / "images").glob("*.png"))
    labels = [np.asarray(Image.open(args.root / "val" / "labels" / f.name)).copy() for f in images]
    frames = [np.asarray(Image.open(f).convert("RGB")) for f in images]
    model, config = load_model(args.weights)
    c = config.num_classes
    for label in labels:
        label[label >= c] = 255  # CamVid's void (11) is ignored
    print("| mode | mIoU fast | mIoU exact | fast - exact | pixels differing (%) |")
    print("|---|---:|---:|---:|---:|")
    for mode, k in (("per_frame", 1), ("warp_only", args.interval), ("evss", args.interval)):
        preds = {}
        for path in ("fast", "exact"):
            flow = make_flow_source(config.flow_source, model) if mode != "per_frame" else None
            seg = VideoSegmenter(model, config=SegmenterConfig(mode=mode, keyframe_interval=k, labels=path), flow=flow)
            preds[path] = [r.labels for r in tqdm(seg.segment(frames), total=len(frames), desc=f"{mode} {path}",
                                                  leave=False)]
        scores = {}
        for path, out in preds.items():
            cm = sum(confusion_matrix(pr, gt, c) for pr, gt in zip(out, labels))
            scores[path] = 100 * mean_iou(cm)
        differ = 100 * np.mean([np.mean(a != b) for a, b in zip(preds["fast"], preds["exact"])])
        print(f"| {mode} (k={k}) | {scores['fast']:.2f} | {scores['exact']:.2f} | "
              f"{scores['fast'] - scores['exact']:+.2f} | {differ:.3f} |")


if __name__ == "__main__":
    main()
