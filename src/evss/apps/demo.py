"""`evss demo`: the main job on the built-in model, runnable on a fresh machine without downloads.

Generates a SynthDrive clip (so there is ground truth), streams it through Algorithm 1 at the
chosen keyframe interval, and runs the per-frame backbone on the same frames as the baseline.
Writes into ``-o DIR`` (default ``evss-demo/``):

* ``overlay.mp4``: the prediction blended over the frames;
* ``panel.mp4``: frame | ground truth / prediction | fine distortion map;
* ``summary.json``: mIoU against the ground truth (EVSS and per-frame), temporal consistency
  (Eq. 8, previous prediction warped by the true flow, occluded pixels not scored), and ms per
  keyframe, per non-keyframe and per frame of the per-frame baseline; also printed.

The overlay shows the model's own classes (a Cityscapes-19 model: 19 classes in the Cityscapes
palette). SynthDrive is labelled in CamVid-11, so a 19-class model is scored, and shown in the
panel beside the ground truth, collapsed to CamVid-11 by the label sets (:mod:`evss.label_sets`):
a second segmenter on the same frames gives those labels; the times are the first one's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from evss.backends import with_backend
from evss.checkpoint import DEMO_WEIGHTS, load_weights
from evss.classes import CAMVID
from evss.data.synthdrive import Clip, SynthDriveConfig, generate_clip
from evss.device import resolve_device
from evss.errors import EvssError
from evss.flow_sources import make_flow_source
from evss.label_sets import collapse_table
from evss.media import atomic_write
from evss.metrics import ConfusionMatrix, TemporalConsistency
from evss.pipeline.outputs import Outputs, VideoSink
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.visualize import overlay, panel


def _mean_ms(values: list[float]) -> float | None:
    return 1000 * sum(values) / len(values) if values else None


@dataclass
class _Streamed:
    """What the streaming run measured: mIoU against the ground truth, Eq. (8), step times."""

    cm: ConfusionMatrix
    tc: TemporalConsistency
    key_s: list[float] = field(default_factory=list)
    non_s: list[float] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise EvssError(f"--frames must be >= 1, got {args.frames}")
    if args.keyframe_interval < 1:
        raise EvssError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise EvssError(f"-o {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    model, config, described, trained = load_weights(args.weights, default=DEMO_WEIGHTS,
                                                     notice=lambda m: print(m, file=sys.stderr))
    with_backend(model, args.backend, device=device, dtype=torch.float32, threads=args.threads,
                 precision=args.precision)
    # The weights' own deployment defaults, as `evss segment` uses them (for the built-in SynthDrive
    # weights: warp-only propagation with DIS flow, the best point measured; see the README).
    mode, flow_name = config.default_mode, config.flow_source
    h, w = args.size
    t0 = time.perf_counter()
    synth = SynthDriveConfig(height=h, width=w, frames=args.frames)
    clip = generate_clip(synth, seed=args.seed)
    gen_s = time.perf_counter() - t0
    print(f"evss demo: SynthDrive clip of {args.frames} frames {w}x{h} (seed {args.seed}, {gen_s:.1f} s), "
          f"model {described} ({config.name}), mode {mode}, flow {flow_name}, keyframe interval "
          f"{args.keyframe_interval}, device {device}, "
          f"threads {torch.get_num_threads()}" + _backend_text(args))
    sets = collapse_table(config.label_space, "camvid")  # SynthDrive's labels are CamVid-11
    if sets is not None:
        print(f"note: the model predicts {config.num_classes} {config.label_space} classes and SynthDrive is labelled "
              "in CamVid-11: scored (and shown in the panel) collapsed to CamVid-11 by the label sets",
              file=sys.stderr)
    schedule = SegmenterConfig(keyframe_interval=args.keyframe_interval, mode=mode)
    seg = VideoSegmenter(model, config=schedule, device=device, flow=make_flow_source(flow_name, model),
                         return_maps=True)
    scorer = None if sets is None else VideoSegmenter(model, config=schedule, device=device, label_sets=sets,
                                                      flow=make_flow_source(flow_name, model))
    streamed = _stream(seg, clip, out, fps=Fraction(synth.fps).limit_denominator(1000), config=config, scorer=scorer)
    base_cm, base_s = _per_frame(model, clip, device, label_sets=sets, num_classes=config.num_classes)
    summary = _summary(args, streamed, base_cm, base_s, described=described, trained=trained, config=config,
                       mode=mode, flow_name=flow_name, device=device)
    if sets is not None:
        summary["scored_label_space"] = "camvid (collapsed by the label sets)"
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    _print_summary(summary, mode, trained)
    print(f"wrote {out / 'overlay.mp4'}, {out / 'panel.mp4'}, {out / 'summary.json'}")
    return 0


def _backend_text(args: argparse.Namespace) -> str:
    if args.backend == "torch":
        return ""
    return f", backend {args.backend}" + (f" {args.precision}" if args.precision != "fp32" else "")


def _stream(seg: VideoSegmenter, clip: Clip, out: Path, *, fps: Fraction, config: Any,
            scorer: VideoSegmenter | None = None) -> _Streamed:
    """Algorithm 1 over the clip, writing overlay.mp4 and panel.mp4 (under their names only when complete).
    ``scorer``: the same run in CamVid-11 (a model in another label space), whose labels are scored and
    shown beside the ground truth."""
    h, w = clip.frames[0].shape[:2]
    outputs = Outputs()  # both videos appear under their names only when complete
    try:
        overlay_mp4 = outputs.add(VideoSink(out / "overlay.mp4", fps=fps, height=h, width=w))
        panel_mp4 = outputs.add(VideoSink(out / "panel.mp4", fps=fps, height=2 * h, width=2 * w))
    except BaseException:
        outputs.discard()
        raise
    scored_space, n = (config.label_space, config.num_classes) if scorer is None else (CAMVID.name, CAMVID.num_classes)
    got = _Streamed(ConfusionMatrix(n), TemporalConsistency(n))
    complete, prev = False, None
    try:
        for t, (frame, gt) in enumerate(zip(clip.frames, clip.labels)):
            r = seg.step(frame)
            scored = r.labels if scorer is None else scorer.step(frame).labels  # (H, W) CamVid-11 ids
            got.cm.update(scored, gt)
            if prev is not None:  # Eq. (8): P_{t-1} warped to t by the true flow vs P_t, occlusions not scored
                got.tc.add_pair(prev, scored, clip.flow_bwd[t], ~clip.occlusion[t])
            prev = scored
            if t > 0:  # frame 0 carries one-off allocations
                (got.key_s if r.is_keyframe else got.non_s).append(r.seconds)
            overlay_mp4.write(t, None, overlay(frame, r.labels, label_space=config.label_space))
            panel_mp4.write(t, None, panel(frame, scored, ground_truth=gt, fine_map=r.maps.get("fine"),
                                           label_space=scored_space, is_keyframe=r.is_keyframe))
        complete = overlay_mp4.frames_written == len(clip.frames)
    finally:
        outputs.finish(keep=complete)
    return got


def _per_frame(model: Any, clip: Clip, device: torch.device, *, label_sets: torch.Tensor | None,
               num_classes: int) -> tuple[ConfusionMatrix, list[float]]:
    """The per-frame backbone on the same frames: its confusion matrix (in CamVid-11, through
    ``label_sets`` where the model has other classes) and step times (frames 1..T-1)."""
    base = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"), device=device, label_sets=label_sets)
    base_cm, base_s = ConfusionMatrix(num_classes if label_sets is None else len(label_sets)), []
    for t, (frame, gt) in enumerate(zip(clip.frames, clip.labels)):
        r = base.step(frame)
        base_cm.update(r.labels, gt)
        if t > 0:
            base_s.append(r.seconds)
    return base_cm, base_s


def _summary(args: argparse.Namespace, streamed: _Streamed, base_cm: ConfusionMatrix, base_s: list[float], *,
             described: str, trained: bool, config: Any, mode: str, flow_name: str,
             device: torch.device) -> dict[str, Any]:
    """summary.json's content."""
    h, w = args.size
    evss_frames = streamed.key_s + streamed.non_s
    summary = {
        "weights": described, "trained": trained, "preset": config.name, "label_space": config.label_space,
        "frames": args.frames, "height": h, "width": w, "seed": args.seed,
        "keyframe_interval": args.keyframe_interval, "mode": mode, "flow_source": flow_name, "device": str(device),
        "backend": args.backend, "precision": args.precision,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "miou": streamed.cm.compute()["miou"], "miou_per_frame": base_cm.compute()["miou"],
        "temporal_consistency": streamed.tc.compute() if args.frames > 1 else None,
        "ms_per_keyframe": _mean_ms(streamed.key_s), "ms_per_non_keyframe": _mean_ms(streamed.non_s),
        "ms_per_frame_evss": _mean_ms(evss_frames), "ms_per_frame_per_frame_baseline": _mean_ms(base_s),
        "timing_note": "means over frames 1..T-1 (frame 0 warms up), model time only",
        "files": ["overlay.mp4", "panel.mp4", "summary.json"],
    }
    if summary["ms_per_frame_evss"] and summary["ms_per_frame_per_frame_baseline"]:
        summary["speedup_vs_per_frame"] = summary["ms_per_frame_per_frame_baseline"] / summary["ms_per_frame_evss"]
    return summary


def _print_summary(summary: dict[str, Any], mode: str, trained: bool) -> None:
    def pct(v):
        return "n/a" if v is None or v != v else f"{100 * v:.1f}%"

    def ms(v):
        return "n/a" if v is None else f"{v:.1f} ms"

    name = {"evss": "EVSS", "warp_only": "warp-only"}.get(mode, mode)
    print(f"mIoU against the ground truth: {name} {pct(summary['miou'])}, per-frame backbone "
          f"{pct(summary['miou_per_frame'])}; temporal consistency {pct(summary['temporal_consistency'])}")
    print(f"time per keyframe {ms(summary['ms_per_keyframe'])}, per non-keyframe {ms(summary['ms_per_non_keyframe'])}, "
          f"per frame: {name} {ms(summary['ms_per_frame_evss'])} vs per-frame backbone "
          f"{ms(summary['ms_per_frame_per_frame_baseline'])}"
          + (f" ({summary['speedup_vs_per_frame']:.2f}x)" if "speedup_vs_per_frame" in summary else ""))
    if not trained:
        print(f"note: untrained weights ({DEMO_WEIGHTS!r} is not shipped yet): the labels and mIoU are "
              "not meaningful, the timing is", file=sys.stderr)
