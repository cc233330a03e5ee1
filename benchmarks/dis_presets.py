"""Which OpenCV DIS setting should the `dis` flow source use? Chosen on footage that is not the val clip.

    python benchmarks/dis_presets.py --weights camvid --threads 1

Selection (dash-cam clips in ../shared/data/video, no labels): the warp-only prediction at keyframe
distance 5 (frame-to-frame flows composed, as the segmenter propagates) is scored against the
keyframe network's own per-frame labels (mIoU of agreement): the flow that keeps the propagated
labels closest to what the network would say. Check (CamVid val clip, labelled): warp-only mIoU at
d = 5 and 9. Also prints ms per flow call at each clip's size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evss.checkpoint import load_model
from evss.flow_sources import DISFlow
from evss.media import read_video_frames
from evss.metrics import confusion_matrix, mean_iou
from evss.models.backbone import prepare_inference
from evss.models.upsample import labels_from_quarter
from evss.models.warp import compose_flows, warp
from evss.tensors import pad_to_multiple

VARIANTS = (("fast", 1.0), ("ultrafast", 1.0), ("medium", 0.5), ("ultrafast", 0.5), ("fast", 0.5))


def tensors(frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [pad_to_multiple(torch.from_numpy(f.copy()).permute(2, 0, 1)[None].float() / 255, 32) for f in frames]


def camvid_val(root: Path, num_classes: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The CamVid val clip: RGB frames and labels (void and ids >= num_classes ignored as 255)."""
    names = sorted((root / "val" / "images").glob("*.png"))
    if not names:
        raise SystemExit(f"no CamVid val frames in {root / 'val' / 'images'} (--camvid; paths are relative to the "
                         "current directory)")
    frames = [np.asarray(Image.open(f).convert("RGB")) for f in names]
    labels = [np.asarray(Image.open(root / "val" / "labels" / f.name)).copy() for f in names]
    for label in labels:
        label[label >= num_classes] = 255  # void
    return frames, labels


def dashcam_clips(model, videos: Path, frames: int):
    """(name, frames, padded tensors, the keyframe network's own per-frame labels) per dash-cam clip."""
    for clip in sorted(videos.glob("*.mp4")):
        rgb = list(read_video_frames(clip)[0][:frames])
        images = tensors(rgb)
        with torch.inference_mode():
            own = [labels_from_quarter(model.backbone(x), rgb[0].shape[:2]).numpy() for x in images]
        yield clip, rgb, images, own


def warp_only_scores(model, images: list[torch.Tensor], targets: list[np.ndarray], size, flow, distances,
                     num_classes: int) -> tuple[list[float], float]:
    """mIoU of warp-only labels (keyframe d frames back) against ``targets``; ms per flow call."""
    with torch.inference_mode():
        feats = [model.backbone(x) for x in images]
        t0 = time.perf_counter()
        flows = [None] + [flow(images[i - 1], images[i]) for i in range(1, len(images))]
        ms = 1000 * (time.perf_counter() - t0) / (len(images) - 1)
        scores = []
        for d in distances:
            cm = np.zeros((num_classes, num_classes), np.int64)
            for t in range(d, len(images)):
                acc = None  # O_{t->t-d}: the frame-to-frame flows composed, as the segmenter propagates
                for j in range(t - d + 1, t + 1):
                    acc = compose_flows(acc, flows[j])  # (1, 2, h, w)
                f = warp(feats[t - d], acc)  # (1, C, h, w)
                cm += confusion_matrix(labels_from_quarter(f, size).numpy(), targets[t], num_classes)
            scores.append(100 * mean_iou(cm))
    return scores, ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="camvid")
    p.add_argument("--videos", type=Path, default=Path("../shared/data/video"))
    p.add_argument("--camvid", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--frames", type=int, default=120, help="frames per dash-cam clip (default 120)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.weights)
    prepare_inference(model.backbone)
    c = config.num_classes
    rows = {v: {} for v in VARIANTS}
    for clip, frames, images, own in dashcam_clips(model, args.videos, args.frames):
        for v in VARIANTS:
            (score,), ms = warp_only_scores(model, images, own, frames[0].shape[:2],
                                            DISFlow(preset=v[0], scale=v[1]), (5,), c)
            rows[v][clip.name] = (score, ms)
    frames, labels = camvid_val(args.camvid, c)
    images = tensors(frames)
    clips = sorted({k for r in rows.values() for k in r})
    print("| DIS preset, scale | " + " | ".join(f"{k}: agreement @5 (ms)" for k in clips)
          + " | mean agreement | CamVid val warp-only @5 | @9 |")
    print("|---|" + "---:|" * (len(clips) + 3))
    for v in VARIANTS:
        (d5, d9), _ = warp_only_scores(model, images, labels, frames[0].shape[:2], DISFlow(preset=v[0], scale=v[1]),
                                       (5, 9), c)
        cells = [f"{rows[v][k][0]:.2f} ({rows[v][k][1]:.1f})" for k in clips]
        mean = np.mean([rows[v][k][0] for k in clips])
        print(f"| {v[0]}, {v[1]} | " + " | ".join(cells) + f" | {mean:.2f} | {d5:.2f} | {d9:.2f} |")


if __name__ == "__main__":
    main()
