"""`evss segment INPUT -o OUTPUT`: segment a video file, a folder of frames or a glob.

    evss segment drive.mp4 -o drive_seg.mp4
    evss segment drive.mp4 -o side.mp4 --layout side --save-labels labels/ --save-maps maps/
    evss segment frames/ -o out.mp4 --fps 15 --flow dis --adaptive

The flags become :class:`evss.pipeline.SegmentOptions` and :class:`evss.pipeline.OutputOptions`;
:func:`evss.pipeline.segment_video` does the work (see there for streaming, memory and outputs).
Notes go to stderr, the closing summary to stdout; Ctrl-C exits with 130 after finishing a
playable video of the frames done so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from evss.errors import EvssError
from evss.pipeline import OutputOptions, SegmentOptions, segment_video
from evss.pipeline.batch import is_batch, read_list
from evss.pipeline.batch_run import BatchOptions, segment_batch


def options(args: argparse.Namespace) -> tuple[SegmentOptions, OutputOptions]:
    """The typed options of the flags."""
    seg = SegmentOptions(weights=args.weights, keyframe_interval=args.keyframe_interval, mode=args.mode,
                         flow=args.flow, propagation=args.propagation, adaptive=args.adaptive,
                         max_interval=args.max_interval, share=args.share, residual=args.residual,
                         device=args.device, half=args.half, threads=args.threads, backend=args.backend,
                         precision=args.precision, max_size=args.max_size, max_memory=args.max_memory,
                         allow_downscale=not args.no_downscale, inference_size=args.inference_size,
                         fps=args.fps, on_error=args.on_error, progress=not args.quiet)
    out = OutputOptions(layout=args.layout, alpha=args.alpha, save_labels=args.save_labels, save_maps=args.save_maps,
                        maps=tuple(args.maps), pix_fmt=args.pix_fmt, crf=args.crf)
    return seg, out


def run(args: argparse.Namespace) -> int:
    if not args.input and args.list_file is None:
        raise EvssError("no input: give a video, a folder of frames, a glob, or --list FILE")
    seg, out = options(args)
    if is_batch(args.input, args.list_file) or args.ray is not None:
        return _batch(args, seg, out)
    if args.workers is not None:
        raise EvssError("--workers: one input is segmented by one process; --threads sets its threads")
    report = segment_video(args.input[0], args.output, seg, out)
    for line in report.lines(adaptive=seg.adaptive):
        print(line)
    return 130 if report.interrupted else 0


def _batch(args: argparse.Namespace, seg: SegmentOptions, out: OutputOptions) -> int:
    """Many inputs into the folder -o: exit 1 if any failed, 130 if interrupted."""
    entries = list(args.input) + (read_list(args.list_file) if args.list_file else [])
    if seg.threads is None:  # a worker per core with one thread each, unless told otherwise
        seg = dataclasses.replace(seg, threads=1)
    batch = BatchOptions(workers=args.workers, ray=args.ray is not None, ray_address=args.ray or None)
    summary = segment_batch(entries, args.output, seg, out, batch=batch)
    for line in summary.lines():
        print(line)
    if summary.interrupted:
        print(f"interrupted: the inputs in flight were discarded; run the same command again to resume "
              f"(inputs done are skipped, see {summary.manifest})", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0
