"""Where does the coarse map help? Pixel accuracy of F^w and F^u in the regions each map marks.

    python benchmarks/distortion_regions.py --weights synthdrive_light --data synthdrive --clips 8 --seed 1000
    python benchmarks/distortion_regions.py --weights camvid --data camvid --root ../shared/data/camvid

Table IV asks whether the fine map (Eq. 4) beats either map alone. Eq. (5) hands a pixel to the
updated features F^u in proportion to the map, so adding the coarse map M^c (Eq. 3) to the edge map
M^e can only pay where M^c marks pixels that M^e does not and F^u is right more often than the
warped features F^w there. For every scored frame (every frame with d frames of history, the
keyframe's features warped along the weights' flow source with the frame-to-frame flows composed,
as `evss segment` runs) the 1/4-grid pixels are split by M^c (0 / 1) and M^e (below / above 0.5),
and for each region the script prints its share of the labelled pixels and how often the argmax of
F^w, of F^u, and of the features fused (Eq. 5) under the fine map (the weights' own w_f), the edge
map alone and the coarse map alone equals the ground truth there, scored at full resolution; the last row
of each interval is the mIoU of each column over all pixels. Where
F^w beats F^u in "M^c only", the coarse map costs accuracy; where F^u beats F^w everywhere, the map
that hands most to F^u wins, whichever it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from evss.checkpoint import load_model
from evss.data.camvid import CamVid
from evss.data.sources import ClipSource
from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset
from evss.flow_sources import make_flow_source
from evss.metrics import confusion_matrix, mean_iou
from evss.models.distortion import coarse_map, fine_map, fuse
from evss.models.upsample import class_argmax, upsample4
from evss.models.warp import compose_flows, warp
from evss.tensors import pad_to_multiple, to_tensor

REGIONS = ("neither", "M^c only", "M^e only", "both")
COLUMNS = ("F^w", "F^u", "fine map", "edge map only", "coarse map only")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="synthdrive_light")
    p.add_argument("--data", choices=("synthdrive", "camvid"), default="synthdrive")
    p.add_argument("--root", type=Path, default=Path("../shared/data/camvid"), help="CamVid root (--data camvid)")
    p.add_argument("--clips", type=int, default=8, help="SynthDrive clips (seed --seed, 256x512, 30 frames)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--intervals", type=int, nargs="+", default=[5, 9])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.weights)
    model.eval().prepare_inference()  # as the segmenter: BN folded in the keyframe network and the update branch
    c = config.num_classes
    flow = make_flow_source(config.flow_source, model)
    if args.data == "synthdrive":
        source = ClipSource(SynthDriveDataset(None, clips=args.clips, seed=args.seed, config=SynthDriveConfig()))
    else:
        source = CamVid(args.root, "val", max_step=2)
    device = torch.device("cpu")
    # per interval: region -> [labelled pixels, then correct pixels of each of COLUMNS]
    counts = {d: {r: np.zeros(1 + len(COLUMNS), np.int64) for r in REGIONS} for d in args.intervals}
    cms = {d: [np.zeros((c, c), np.int64) for _ in COLUMNS] for d in args.intervals}  # for mIoU over all pixels
    with torch.inference_mode():
        for s in tqdm(range(source.num_sequences()), desc="sequences"):
            n = source.sequence_length(s)
            frames = [pad_to_multiple(to_tensor(source.frame(s, t), device, torch.float32), 32)
                      for t in range(n)]  # (1, 3, H', W')
            labels = [source.label(s, t) for t in range(n)]  # (H, W) uint8 or None
            h, w = source.frame(s, 0).shape[:2]
            feats = [model.backbone(x) for x in frames]  # (1, C, h4, w4) F^b of every frame
            steps = [None] + [flow(frames[t - 1], frames[t]) for t in range(1, n)]  # (1, 2, h4, w4) O_{t->t-1}
            for d in args.intervals:
                for t in range(d, n):
                    if labels[t] is None:
                        continue
                    acc = None  # O_{t->t-d}, composed as the segmenter propagates
                    for j in range(t - d + 1, t + 1):
                        acc = compose_flows(acc, steps[j])
                    fw = warp(feats[t - d], acc)  # (1, C, h4, w4) Eq. (1)
                    coarse = coarse_map(fw, class_argmax(feats[t - d]))  # (1, 1, h4, w4) Eq. (3), against the keyframe
                    updated, edge_scores = model.correction(frames[t], fw)  # (1, C, h4, w4) F^u
                    edge = model.correction.edge_probability(edge_scores)  # (1, 1, h4, w4) M^e
                    fused = [fuse(fw, updated, m, config.distortion)  # Eq. (5) under each map
                             for m in (fine_map(coarse, edge, config.distortion), edge, coarse)]
                    region = (coarse + 2 * (edge >= 0.5).float()).long()  # (1, 1, h4, w4) index into REGIONS
                    region = F.interpolate(region.float(), scale_factor=4, mode="nearest")[0, 0, :h, :w].numpy()
                    label = labels[t].astype(np.int64)
                    valid = label < c
                    preds = [class_argmax(upsample4(q, (h, w)))[0].numpy() for q in (fw, updated, *fused)]  # (H, W)
                    for cm, pred in zip(cms[d], preds):
                        cm += confusion_matrix(pred, labels[t], c)
                    preds = [pred == label for pred in preds]
                    for k, name in enumerate(REGIONS):
                        m = valid & (region == k)
                        counts[d][name] += [m.sum()] + [int((p_ & m).sum()) for p_ in preds]
    print(f"weights {args.weights} (w_f {config.distortion.w_f}, flow {config.flow_source}), {args.data}")
    print("| d | region | share of labelled pixels (%) | " + " | ".join(f"{k} correct (%)" for k in COLUMNS) + " |")
    print("|---:|---|---:|" + "---:|" * len(COLUMNS))
    for d in args.intervals:
        total = sum(v[0] for v in counts[d].values())
        for name in REGIONS:
            v = counts[d][name]
            rates = " | ".join(f"{100 * x / max(v[0], 1):.1f}" for x in v[1:])
            print(f"| {d} | {name} | {100 * v[0] / max(total, 1):.1f} | {rates} |")
        v = sum(counts[d].values())
        print(f"| {d} | all | 100.0 | " + " | ".join(f"{100 * x / max(v[0], 1):.1f}" for x in v[1:]) + " |")
        print(f"| {d} | all, mIoU | | " + " | ".join(f"{100 * mean_iou(cm):.1f}" for cm in cms[d]) + " |")


if __name__ == "__main__":
    main()
