"""How should a keyframe's features travel to frame k + d? Chosen on footage that is not the val clip.

    python benchmarks/propagation.py --weights camvid --threads 2

Three ways to bring F^b_k to frame k + d with the weights' DIS flow, all warp-only:

* chained: warp the previous frame's warped features along the frame-to-frame flow (Algorithm 1
  line 18 as written; the features are resampled bilinearly d times);
* composed: compose the d frame-to-frame flows into O_{k+d -> k} and warp F^b_k once (the
  segmenter's default, ``SegmenterConfig.propagation``); same flows, same cost;
* direct: one DIS call between the keyframe and frame k + d (long displacements).

Selection (dash-cam clips in ../shared/data/video, no labels): agreement (mIoU) of the propagated
labels with the keyframe network's own per-frame labels at d = 5 and 9, as
``benchmarks/dis_presets.py`` chose the DIS preset. Check: the CamVid val clip against its labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dis_presets import camvid_val, dashcam_clips, tensors  # beside this script
from evss.checkpoint import load_model
from evss.flow_sources import DISFlow
from evss.metrics import confusion_matrix, mean_iou
from evss.models.backbone import prepare_inference
from evss.models.upsample import labels_from_quarter
from evss.models.warp import compose_flows, warp

WAYS = ("chained", "composed", "direct")


def scores(model, images: list[torch.Tensor], targets: list[np.ndarray], size: tuple[int, int],
           distances: tuple[int, ...], num_classes: int, desc: str) -> dict[int, dict[str, float]]:
    """mIoU of each way's warp-only labels at distance d against ``targets``: {d: {way: mIoU}}."""
    with torch.inference_mode():
        feats = [model.backbone(x) for x in tqdm(images, desc=f"{desc}: keyframe network", leave=False)]
        dis = DISFlow()
        steps = [None] + [dis(images[i - 1], images[i]) for i in range(1, len(images))]  # O_{i->i-1}
        out = {}
        for d in distances:
            cms = {w: np.zeros((num_classes, num_classes), np.int64) for w in WAYS}
            for t in tqdm(range(d, len(images)), desc=f"{desc}: d={d}", leave=False):
                chained, composed = feats[t - d], None
                for j in range(t - d + 1, t + 1):
                    chained = warp(chained, steps[j])  # (1, C, h, w)
                    composed = compose_flows(composed, steps[j])  # (1, 2, h, w)
                props = {"chained": chained, "composed": warp(feats[t - d], composed),
                         "direct": warp(feats[t - d], DISFlow()(images[t - d], images[t]))}
                for way, f in props.items():
                    cms[way] += confusion_matrix(labels_from_quarter(f, size).numpy(), targets[t], num_classes)
            out[d] = {w: 100 * mean_iou(cm) for w, cm in cms.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="camvid")
    p.add_argument("--videos", type=Path, default=Path("../shared/data/video"))
    p.add_argument("--camvid", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--frames", type=int, default=120, help="frames per dash-cam clip (default 120)")
    p.add_argument("--distances", type=int, nargs="+", default=[5, 9])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.weights)
    model.eval()
    prepare_inference(model.backbone)
    c = config.num_classes
    ds = tuple(args.distances)
    table = {}
    for clip, frames, images, own in dashcam_clips(model, args.videos, args.frames):
        table[f"{clip.stem} (agreement)"] = scores(model, images, own, frames[0].shape[:2], ds, c, clip.stem)
    frames, labels = camvid_val(args.camvid, c)
    table["CamVid val (mIoU)"] = scores(model, tensors(frames), labels, frames[0].shape[:2], ds, c, "val")
    print(f"weights {args.weights}, DIS flow, warp-only, {torch.get_num_threads()} threads")
    print("| propagation | " + " | ".join(f"{k} d={d}" for k in table for d in ds) + " |")
    print("|---|" + "---:|" * (len(table) * len(ds)))
    for way in WAYS:
        print(f"| {way} | " + " | ".join(f"{table[k][d][way]:.1f}" for k in table for d in ds) + " |")


if __name__ == "__main__":
    main()
