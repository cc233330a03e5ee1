"""`evss demo`: the main job on the built-in default, runnable on a fresh machine.

Generates a SynthDrive clip (no download needed), streams it through ``VideoSegmenter`` with the
built-in weights and prints per-frame timing, keyframe vs non-keyframe cost, and accuracy against
the generated ground truth.
"""

from __future__ import annotations

import argparse
import statistics
import sys

DEFAULT_WEIGHTS = "synthdrive_light"


def _load(weights: str | None):
    from evss.checkpoint import builtin_weights, load_model
    from evss.config import build_model, preset
    name = weights or DEFAULT_WEIGHTS
    if weights is None and name not in builtin_weights():
        print(f"note: built-in weights {name!r} are not shipped in this build; running the untrained "
              "'light' preset, so the timing is real but the labels are not meaningful.", file=sys.stderr)
        return build_model(preset("light")).eval(), preset("light")
    return load_model(name)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from evss.data.synthdrive import SynthDriveConfig, generate_clip
    from evss.device import resolve_device
    from evss.metrics import ConfusionMatrix
    from evss.segmenter import SegmenterConfig, VideoSegmenter

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    model, config = _load(args.weights)
    h, w = args.size
    clip = generate_clip(SynthDriveConfig(height=h, width=w, frames=args.frames), seed=args.seed)
    seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=args.keyframe_interval),
                         device=device, return_maps=args.output is not None)
    cm = ConfusionMatrix(config.num_classes)
    print(f"evss demo: {args.frames} frames {h}x{w}, preset {config.name}, keyframe interval "
          f"{args.keyframe_interval}, device {device}, threads {torch.get_num_threads()}")
    results = []
    for frame, label in zip(clip.frames, clip.labels):
        r = seg.step(frame)
        cm.update(r.labels.astype(np.int64), label.astype(np.int64))
        results.append(r)
        print(f"  frame {r.index:3d} {'key' if r.is_keyframe else 'non'} {r.seconds * 1000:8.1f} ms")
    # The first frame includes one-off allocation; leave it out of the medians.
    key = [r.seconds for r in results[1:] if r.is_keyframe] or [results[0].seconds]
    non = [r.seconds for r in results if not r.is_keyframe]
    km, nm = statistics.median(key) * 1000, (statistics.median(non) * 1000 if non else float("nan"))
    total = sum(r.seconds for r in results)
    print(f"keyframe median {km:.1f} ms, non-keyframe median {nm:.1f} ms, ratio {nm / km:.2f}; "
          f"overall {len(results) / total:.1f} frames/s")
    print(f"mIoU against the generated ground truth: {100 * cm.compute()['miou']:.1f}%")
    if args.output is not None:
        from evss.visualize import contact_sheet
        contact_sheet(args.output, clip.frames, results, clip.labels, label_space=config.label_space)
        print(f"wrote {args.output}")
    return 0
