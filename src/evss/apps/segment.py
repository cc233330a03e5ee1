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

from evss.pipeline import OutputOptions, SegmentOptions, segment_video


def options(args: argparse.Namespace) -> tuple[SegmentOptions, OutputOptions]:
    """The typed options of the flags."""
    seg = SegmentOptions(weights=args.weights, keyframe_interval=args.keyframe_interval, mode=args.mode,
                         flow=args.flow, propagation=args.propagation, adaptive=args.adaptive,
                         max_interval=args.max_interval, share=args.share, residual=args.residual,
                         device=args.device, half=args.half, threads=args.threads, backend=args.backend,
                         max_size=args.max_size, max_memory=args.max_memory, allow_downscale=not args.no_downscale,
                         fps=args.fps, on_error=args.on_error, progress=not args.quiet)
    out = OutputOptions(layout=args.layout, alpha=args.alpha, save_labels=args.save_labels, save_maps=args.save_maps,
                        maps=tuple(args.maps), pix_fmt=args.pix_fmt, crf=args.crf)
    return seg, out


def run(args: argparse.Namespace) -> int:
    seg, out = options(args)
    report = segment_video(args.input, args.output, seg, out)
    for line in report.lines(adaptive=seg.adaptive):
        print(line)
    return 130 if report.interrupted else 0
