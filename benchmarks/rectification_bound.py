"""How much can rectification recover at most? F^u replaced by an oracle, the CamVid val clip.

    python benchmarks/rectification_bound.py --weights camvid --root ../shared/data/camvid --intervals 5 9

For each scored frame t (every frame with d frames of history), the keyframe features F^b_{t-d}
are warped to t along the weights' flow source, frame-to-frame flows composed (F^w, as `evss
segment` does by default). The oracle correction F^u is the keyframe network run on frame t
itself: no CoNet can do better than the network it is trained to imitate. Two rows use the model's
own CoNet for comparison: its F^u everywhere (no fusion), and fused under the fine map (EVSS as it
runs, coarse map against the keyframe). Three rows ask whether CoNet earns its cost: the keyframe
network itself on the frame scaled by --low-scale (0.625: 0.39 of a keyframe's pixels, about what
CoNet costs), alone, as F^u, and averaged with F^w (softmax probabilities, no map).
The oracle rows fuse F^w and the oracle under one map:

* Eq. (3) coarse map M^c (warped argmax != keyframe prediction), and M^c dilated by 3x3 / 5x5;
* Eq. (4) fine map 0.5 M^c + 0.5 M^e with the model's own CoNet edge map M^e, and with the edges
  of the true labels (a perfect N_edge);
* softmax confidence of F^w below 0.9 (a map that needs no CoNet at all).

It prints mIoU per interval and the share of pixels each map hands to F^u. Rows that stay below a
target show that the target is out of reach for any CoNet under that map.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from evss.checkpoint import load_model
from evss.flow_sources import make_flow_source
from evss.metrics import confusion_matrix, mean_iou
from evss.models.distortion import coarse_map, fine_map, fuse
from evss.models.upsample import class_argmax, upsample4
from evss.models.warp import compose_flows, warp
from evss.tensors import pad_to_multiple


def downscaled_logits(backbone: torch.nn.Module, frame: torch.Tensor, scale: float,
                      grid: tuple[int, int]) -> torch.Tensor:
    """The keyframe network on ``frame`` (1, 3, H, W) scaled by ``scale``, its logits resized onto
    the full-size 1/4 grid ``grid`` (valid h/4 x w/4 corner, zero padding as the padded frame's)."""
    h, w = frame.shape[-2:]
    small = F.interpolate(frame, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)
    hs, ws = small.shape[-2:]
    q = backbone(pad_to_multiple(small, 32))[..., : (hs + 3) // 4, : (ws + 3) // 4]  # (1, C, hs/4, ws/4)
    q = F.interpolate(q, size=((h + 3) // 4, (w + 3) // 4), mode="bilinear", align_corners=False)
    return F.pad(q, (0, grid[1] - q.shape[-1], 0, grid[0] - q.shape[-2]))  # (1, C, h4, w4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="camvid")
    p.add_argument("--root", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--intervals", type=int, nargs="+", default=[5, 9])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--low-scale", type=float, default=0.625,
                   help="a cheap F^u for comparison: the keyframe network on the frame scaled by this (0.625: "
                        "about 0.39 of a keyframe's pixels, CoNet's cost)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = sorted((args.root / "val" / "images").glob("*.png"))
    model, config = load_model(args.weights)
    model.eval().prepare_inference()  # as the segmenter: BN folded in the keyframe network and the update branch
    c = config.num_classes
    flow = make_flow_source(config.flow_source, model)
    frames = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
              for f in names]  # (1, 3, H, W) each
    labels = [np.asarray(Image.open(args.root / "val" / "labels" / f.name)).copy() for f in names]
    for label in labels:
        label[label >= c] = 255  # CamVid's void is ignored
    h, w = frames[0].shape[-2:]
    padded = [pad_to_multiple(f, 32) for f in frames]  # (1, 3, H', W')
    low = f"keyframe net at {args.low_scale:g}x"
    rows = ("per-frame", "warp-only", "CoNet F^u alone (no fusion)", "EVSS: CoNet F^u, fine map", f"{low}, alone",
            f"{low} as F^u, fine map", f"{low} and F^w, probabilities averaged", "oracle, coarse M^c",
            "oracle, M^c dilated 3x3", "oracle, M^c dilated 5x5", "oracle, fine map (CoNet M^e)",
            "oracle, fine map (true edges)", "oracle, confidence < 0.9")
    with torch.inference_mode():
        own = [model.backbone(x) for x in tqdm(padded, desc="keyframe network", leave=False)]  # (1, C, h4, w4)
        small = [downscaled_logits(model.backbone, f, args.low_scale, own[0].shape[-2:])
                 for f in tqdm(frames, desc=f"keyframe network at {args.low_scale:g}x", leave=False)]
        # O_{t->t-1} of every frame pair, once: each is composed into d of the O_{t->t-d} below
        steps = [None] + [flow(padded[t - 1], padded[t]) for t in tqdm(range(1, len(frames)), desc="flow",
                                                                          leave=False)]  # (1, 2, h4, w4)
        results = {}
        for d in args.intervals:
            cms = {r: np.zeros((c, c), np.int64) for r in rows}
            share = {r: [] for r in rows}
            for t in tqdm(range(d, len(frames)), desc=f"d={d}", leave=False):
                key = own[t - d]
                key_pred = class_argmax(key)  # (1, h4, w4) P_k
                acc = None  # O_{t->t-d}: the frame-to-frame flows composed, as the segmenter propagates
                for j in range(t - d + 1, t + 1):
                    acc = compose_flows(acc, steps[j])
                fw = warp(key, acc)  # (1, C, h4, w4) Eq. (1)
                oracle = own[t]
                coarse = coarse_map(fw, key_pred)  # (1, 1, h4, w4) Eq. (3)
                updated, edge_scores = model.correction(padded[t], fw)  # (1, C, h4, w4) F^u
                edge = model.correction.edge_probability(edge_scores)  # (1, 1, h4, w4) M^e
                gt = torch.from_numpy(labels[t]).float()[None, None]
                gt = F.pad(gt, (0, padded[t].shape[-1] - w, 0, padded[t].shape[-2] - h), value=255)
                gq = F.interpolate(gt, size=fw.shape[-2:], mode="nearest")  # (1, 1, h4, w4)
                true_edge = (F.max_pool2d(gq, 3, 1, 1) != -F.max_pool2d(-gq, 3, 1, 1)).float()
                confident = fw.softmax(1).amax(1, keepdim=True)  # (1, 1, h4, w4)
                maps = {"oracle, coarse M^c": coarse,
                        "oracle, M^c dilated 3x3": F.max_pool2d(coarse, 3, 1, 1),
                        "oracle, M^c dilated 5x5": F.max_pool2d(coarse, 5, 1, 2),
                        "oracle, fine map (CoNet M^e)": 0.5 * coarse + 0.5 * edge,
                        "oracle, fine map (true edges)": 0.5 * coarse + 0.5 * true_edge,
                        "oracle, confidence < 0.9": (confident < 0.9).float()}
                outs = {"per-frame": oracle, "warp-only": fw, "CoNet F^u alone (no fusion)": updated,
                        # Eqs. (4)-(5) with the model's own w_f and mode
                        "EVSS: CoNet F^u, fine map": fuse(fw, updated, fine_map(coarse, edge, config.distortion),
                                                          config.distortion),
                        f"{low}, alone": small[t],
                        f"{low} as F^u, fine map": fuse(fw, small[t], fine_map(coarse, edge, config.distortion),
                                                        config.distortion),
                        # no map at all: an ensemble of the propagated and the small current prediction
                        f"{low} and F^w, probabilities averaged": (fw.softmax(1) + small[t].softmax(1)).log()}
                for name, m in maps.items():
                    outs[name] = (1 - m) * fw + m * oracle  # Eq. (5) with F^u = the oracle
                    share[name].append(float(m.mean()))
                for name, q in outs.items():
                    pred = class_argmax(upsample4(q, (h, w)))[0].numpy()  # (H, W)
                    cms[name] += confusion_matrix(pred, labels[t], c)
            results[d] = {r: (100 * mean_iou(cms[r]), 100 * np.mean(share[r]) if share[r] else None) for r in rows}
    print(f"weights {args.weights}, flow {config.flow_source}, CamVid val ({len(frames)} frames, {h}x{w})")
    cols = " | ".join(f"d={d} mIoU (share to F^u %)" for d in args.intervals)
    print("| F^u and the map that fuses it | " + cols + " |")
    print("|---|" + "---:|" * len(args.intervals))
    for r in rows:
        cells = []
        for d in args.intervals:
            m, s = results[d][r]
            cells.append(f"{m:.1f}" + (f" ({s:.0f})" if s is not None else ""))
        print(f"| {r} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
