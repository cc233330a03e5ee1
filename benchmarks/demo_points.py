"""The speed/accuracy points `evss demo` can show: mode x flow x keyframe interval on SynthDrive clips
like the demo's (256x512, 20 frames), against the per-frame backbone, with the demo's weights.

    python benchmarks/demo_points.py --weights synthdrive_light --seeds 6 --threads 2

mIoU (%) is over all frames of each clip, averaged over the seeds; ms is the mean model time per
frame (frame 0 excluded), as the demo measures it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from evss.checkpoint import load_weights
from evss.data.synthdrive import SynthDriveConfig, generate_clip
from evss.flow_sources import make_flow_source
from evss.metrics import ConfusionMatrix
from evss.segmenter import SegmenterConfig, VideoSegmenter

POINTS = (("per_frame", None, 1), ("warp_only", "dis", 2), ("warp_only", "dis", 3), ("warp_only", "dis", 4),
          ("warp_only", "dis", 5), ("evss", "dis", 2), ("evss", "dis", 3), ("evss", "dis", 5), ("evss", "learned", 5))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="synthdrive_light")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config, described, _ = load_weights(args.weights)
    scores: dict[tuple, list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        clip = generate_clip(SynthDriveConfig(height=256, width=512, frames=20), seed=seed)
        for mode, flow, k in POINTS:
            seg = VideoSegmenter(model, config=SegmenterConfig(mode=mode, keyframe_interval=k),
                                 flow=make_flow_source(flow, model) if flow else None)
            cm, ms = ConfusionMatrix(config.num_classes), []
            for t, (frame, gt) in enumerate(zip(clip.frames, clip.labels)):
                r = seg.step(frame)
                cm.update(r.labels, gt)
                if t:
                    ms.append(1000 * r.seconds)
            scores.setdefault((mode, flow, k), []).append((100 * cm.compute()["miou"], float(np.mean(ms))))
    print(f"{described}, {args.seeds} clips (seeds 0-{args.seeds - 1}), 256x512, 20 frames, {args.threads} threads")
    print("| mode | flow | interval | mIoU seed 0 | mean mIoU | ms per frame |")
    print("|---|---|---:|---:|---:|---:|")
    for (mode, flow, k), v in scores.items():
        a = np.array(v)
        print(f"| {mode} | {flow or '-'} | {k} | {a[0, 0]:.1f} | {a[:, 0].mean():.1f} | {a[:, 1].mean():.1f} |")


if __name__ == "__main__":
    main()
