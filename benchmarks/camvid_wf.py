"""Eq. (4)'s w_f for the `camvid` weights, chosen on the dash-cam clips (no labels), not the val clip.

    python benchmarks/camvid_wf.py --weights camvid --threads 2   # from the project root

Each clip streams through ``VideoSegmenter`` (EVSS, the weights' flow, fixed keyframe interval) once
per w_f (and per ``--modes``, ``--coarse-references`` and ``--combines``); every non-keyframe's labels
are scored against the keyframe network's own per-frame labels (agreement mIoU, as
``benchmarks/dis_presets.py`` and ``benchmarks/propagation.py`` do).
Warp-only is printed for reference. Also: the same on the CamVid val clip against its labels (a
check, looked at after the choice).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dis_presets import camvid_val  # beside this script
from evss.checkpoint import load_model
from evss.config import EVSSConfig, apply_overrides
from evss.flow_sources import make_flow_source
from evss.media import read_video_frames
from evss.metrics import ConfusionMatrix
from evss.models.distortion import COARSE_REFERENCES, COMBINES, MODES
from evss.segmenter import SegmenterConfig, VideoSegmenter


def stream_score(model, config, frames, targets, mode: str, interval: int) -> float:
    """mIoU of the non-keyframes of one streaming run against ``targets``."""
    seg = VideoSegmenter(model, config=SegmenterConfig(mode=mode, keyframe_interval=interval),
                         flow=make_flow_source(config.flow_source, model))
    cm = ConfusionMatrix(config.num_classes)
    for frame, target in zip(frames, targets):
        r = seg.step(frame)
        if not r.is_keyframe:
            cm.update(r.labels, target)
    return 100 * cm.compute()["miou"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="camvid")
    p.add_argument("--videos", type=Path, default=Path("../shared/data/video"))
    p.add_argument("--camvid", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--intervals", type=int, nargs="+", default=[5, 9])
    p.add_argument("--w-f", type=float, nargs="*", default=[0.1, 0.2, 0.35, 0.5, 0.8],
                   help="Eq. (4) weights to score, each with the weighted fine map (combine=weighted)")
    p.add_argument("--modes", nargs="*", default=[], choices=MODES,
                   help="distortion modes to score as well, at the weights' own w_f (e.g. update: F^u everywhere)")
    p.add_argument("--coarse-references", nargs="*", default=[], choices=COARSE_REFERENCES,
                   help="what Eq. (3) compares with, scored as well at the weights' own w_f and mode")
    p.add_argument("--combines", nargs="*", default=[], choices=COMBINES,
                   help="how the fine map joins the two maps, scored as well at the weights' other settings")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.weights)
    clips = {}
    if not sorted(args.videos.glob("*.mp4")):
        raise SystemExit(f"camvid_wf: no .mp4 clips in {args.videos} (--videos; paths are relative to the current "
                         "directory)")
    for clip in sorted(args.videos.glob("*.mp4")):
        frames = list(read_video_frames(clip)[0][: args.frames])
        per_frame = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"))
        clips[clip.stem] = (frames, [per_frame.step(f).labels for f in tqdm(frames, desc=clip.stem, leave=False)])
    val_frames, val_labels = camvid_val(args.camvid, config.num_classes)
    def evss(key: str, value, **more) -> EVSSConfig:  # the weights' config with distortion.* settings changed
        return apply_overrides(config, {f"distortion.{k}": v for k, v in {key: value, **more}.items()})

    shipped = (config.distortion.w_f, config.distortion.combine)
    rows = [("warp-only", "warp_only", config)] + [  # w_f only weighs the maps in Eq. (4)'s weighted sum
        (f"EVSS, Eq. (4) w_f {w:g}" + (" (shipped)" if (w, "weighted") == shipped else ""), "evss",
         evss("w_f", w, combine="weighted")) for w in args.w_f] + [
        (f"EVSS, distortion mode {m}", "evss", evss("mode", m)) for m in args.modes] + [
        (f"EVSS, coarse map against the {r} prediction", "evss", evss("coarse_reference", r))
        for r in args.coarse_references] + [
        (f"EVSS, maps joined by {c}", "evss", evss("combine", c)) for c in args.combines]
    heads = [f"{c} k={k}" for c in clips for k in args.intervals]
    print(f"weights {args.weights}, flow {config.flow_source}, agreement with the per-frame labels on the dash-cam "
          f"clips ({args.frames} frames), streaming at fixed keyframe intervals; non-keyframes scored")
    val_heads = " | ".join(f"CamVid val k={k}" for k in args.intervals)
    print("| row | " + " | ".join(heads) + " | mean | " + val_heads + " |")
    print("|---|" + "---:|" * (len(heads) + 1 + len(args.intervals)))
    for name, mode, cfg in rows:
        model.distortion = cfg.distortion
        cells = [stream_score(model, cfg, frames, targets, mode, k) for frames, targets in clips.values()
                 for k in args.intervals]
        val = [stream_score(model, cfg, val_frames, val_labels, mode, k) for k in args.intervals]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {np.mean(cells):.2f} | "
              + " | ".join(f"{v:.2f}" for v in val) + " |", flush=True)


if __name__ == "__main__":
    main()
