"""How much of each class survives the 1/4 grid, and where a class's pixels go in a prediction.

    python benchmarks/quarter_grid_bound.py ../shared/data/camvid/val/labels [--pred LABELS_DIR] [--class Pole]

The keyframe network's logits live on the 1/4 grid and are upsampled x4 bilinearly before the
argmax (Algorithm 1, lines 16-17). The bound replaces the logits by the true labels box-averaged
onto that grid (the best any 1/4-grid prediction can hold) and scores what the same upsampling
gives back: if a thin class (Pole) stays high here, its low IoU is the network's, not the grid's.
With ``--pred`` (a folder of label PNGs, e.g. from ``evss segment --save-labels``), also prints the
confusion of one class: what its true pixels are labelled as, and what the pixels called it are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evss.classes import CAMVID, IGNORE_INDEX
from evss.metrics import confusion_matrix, iou_per_class
from evss.models.upsample import upsample4


def grid_labels(label: np.ndarray, num_classes: int) -> np.ndarray:
    """The labels (H, W) box-averaged onto the 1/4 grid as class shares, upsampled, argmaxed."""
    t = torch.from_numpy(label.astype(np.int64))
    t = torch.where(t < num_classes, t, torch.tensor(num_classes))  # ignore -> an extra class, dropped
    one_hot = F.one_hot(t, num_classes + 1).permute(2, 0, 1)[None, :num_classes].float()  # (1, C, H, W)
    shares = F.avg_pool2d(one_hot, 4, 4, ceil_mode=True)  # (1, C, H/4, W/4)
    return upsample4(shares, label.shape).argmax(1)[0].numpy()  # (H, W)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("labels", type=Path, help="folder of true label PNGs")
    p.add_argument("--pred", type=Path, default=None, help="folder of predicted label PNGs (same order)")
    names = list(CAMVID.names)
    p.add_argument("--class", dest="cls", default="Pole", choices=names, help="class whose confusion --pred prints")
    args = p.parse_args()
    c = len(names)
    truths = sorted(args.labels.glob("*.png"))
    if not truths:
        raise SystemExit(f"quarter_grid_bound: no label PNGs in {args.labels}")
    bound = np.zeros((c, c), np.int64)
    pred = np.zeros((c, c), np.int64)
    preds = sorted(args.pred.glob("*.png")) if args.pred else []
    if args.pred and len(preds) != len(truths):
        raise SystemExit(f"quarter_grid_bound: {len(preds)} predictions in {args.pred} for {len(truths)} labels")
    for i, path in enumerate(truths):
        gt = np.array(Image.open(path)).astype(np.int64)
        gt[gt >= c] = IGNORE_INDEX  # CamVid's void (11) and any other unlabelled id
        bound += confusion_matrix(grid_labels(gt, c), gt, c)
        if preds:
            pred += confusion_matrix(np.array(Image.open(preds[i])), gt, c)
    iou = iou_per_class(bound)
    print(f"labels on the 1/4 grid: mIoU {100 * np.nanmean(iou):.1f} | "
          + " ".join(f"{n} {100 * v:.0f}" for n, v in zip(names, iou)))
    if preds:
        k = names.index(args.cls)
        row, col = pred[k], pred[:, k]
        print(f"prediction: {args.cls} IoU {100 * iou_per_class(pred)[k]:.1f}")
        for what, counts in ((f"true {args.cls} pixels labelled as", row), (f"pixels labelled {args.cls}, truly", col)):
            if counts.sum() == 0:  # the class is absent from the labels (or never predicted)
                print(f"{what}: none")
                continue
            share = counts / counts.sum()
            print(f"{what}: " + ", ".join(f"{n} {100 * v:.0f} %" for n, v in zip(names, share) if v > 0.01))


if __name__ == "__main__":
    main()
