"""`evss segment INPUT -o OUTPUT`: segment a video file, a folder of frames or a glob.

    evss segment drive.mp4 -o drive_seg.mp4
    evss segment drive.mp4 -o side.mp4 --layout side --save-labels labels/ --save-maps maps/
    evss segment frames/ -o out.mp4 --fps 15 --flow dis --adaptive

Decode, segment and encode stream one frame at a time (a few frames in flight: memory does not
grow with the video). The output keeps the input's frame count and timing (variable frame rates
too); rotation metadata is applied so frames are segmented upright; audio is dropped. Outputs are
written under a hidden ``.NAME.partial`` name (label and map folders too) and renamed when
complete (:mod:`evss.pipeline.outputs`), so a crash never leaves an output that looks complete; Ctrl-C
(SIGINT) stops after the current frame and finishes a playable video of the frames done so far.
``--on-error skip`` keeps going past undecodable frames, repeating the last good segmentation so
the output keeps the frame count, and names the frames.

Memory is budgeted before the first frame (:mod:`evss.memory`): the peak is estimated from the model
config and the frame size; over ``--max-memory`` (default: half the available memory, at most
3 GB) the model segments a downscaled copy and the labels are upsampled, so the video, label PNGs
and maps keep the input's size (``--no-downscale`` stops with the estimate instead). Frames over
8 MB travel through shorter queues, frames over 64 MB through none; a size H.264 cannot encode
(over 16384 pixels a side) gets a smaller video, said so, while the label PNGs keep the input's size.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from tqdm import tqdm

from evss.apps._segment_run import MemoryPlan, Progress, StopOnSigint, frame_list, spans
from evss.backends import with_backend
from evss.checkpoint import load_weights
from evss.classes import LABEL_SPACES
from evss.device import resolve_device, resolve_dtype
from evss.errors import EvssError
from evss.flow_sources import MVFlow, make_flow_source
from evss.keyframes import AdaptiveKeyframes, FlowProbe
from evss.media import BackgroundWriter, open_video, prefetch, resize_flow, resize_image, resize_labels
from evss.media.frames import is_glob
from evss.pipeline.outputs import LabelFolderSink, MapVideoSink, Outputs, VideoSink, map_sink, maps_as_video
from evss.memory import H264_MAX_SIDE, format_bytes, parse_bytes, return_freed_memory
from evss.segmenter import SegmenterConfig, VideoSegmenter
from evss.visualize import render


def notice(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.keyframe_interval < 1:
        raise EvssError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    if args.max_size is not None and args.max_size < 16:
        raise EvssError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    if args.max_memory is not None:
        parse_bytes(args.max_memory)  # a bad value is reported before anything is opened
    return_freed_memory()  # the measured peak follows the memory plan, whatever the thread timing
    out = Path(args.output)
    if out.exists() and out.is_dir():
        raise EvssError(f"-o {out}: is a folder; give a video file name such as {out / 'segmented.mp4'}")
    if Path(args.input).exists() and out.resolve() == Path(args.input).resolve():
        raise EvssError(f"-o {out}: would overwrite the input")
    _check_output_folders(args, out)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(device, half=args.half)

    # The input first: a bad input is reported before anything else is said or loaded.
    reader = open_video(args.input, max_size=args.max_size, motion_vectors=args.flow == "mv", fps=args.fps,
                        on_error=args.on_error)
    try:
        model, config, described, _ = load_weights(args.weights, notice=notice)
        with_backend(model, args.backend, device=device, dtype=dtype, threads=args.threads)
        flow_name = args.flow or config.flow_source  # the weights' own flow source unless told otherwise
        mode = args.mode or config.default_mode
        if args.save_maps and mode == "warp_only":
            raise EvssError(f"--save-maps: mode warp_only propagates the keyframe's features without CoNet, so "
                            f"there are no distortion maps{'' if args.mode else ' (the default mode of these weights)'}"
                            "; pass --mode evss")
        if flow_name == "mv" and args.flow is None:  # the reader must export the vectors: open it again
            reader.close()
            reader = open_video(args.input, max_size=args.max_size, motion_vectors=True, fps=args.fps,
                                on_error=args.on_error)
        info = reader.info
        if info.has_audio:
            notice(f"note: {args.input} has an audio track; the output is video only")
        if (info.height, info.width) != ((info.source_width, info.source_height) if info.rotation in (90, 270)
                                         else (info.source_height, info.source_width)):
            notice(f"note: frames downscaled to {info.width}x{info.height} (--max-size {args.max_size}); "
                   "outputs are at that size")
        mem = MemoryPlan.of(args, info, config, device, dtype)
    except BaseException:
        reader.close()
        raise
    _size_notices(args, mem)

    flow_source = make_flow_source(flow_name, model)
    mv = flow_source if isinstance(flow_source, MVFlow) else None
    policy = None
    if args.adaptive:
        probe = FlowProbe(flow_source) if args.residual < 1 else None
        policy = AdaptiveKeyframes(max_interval=args.max_interval, share=args.share,
                                   residual=args.residual if probe else None, probe=probe)
        flow_source = probe or flow_source
    seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=args.keyframe_interval, mode=mode,
                                                       propagation=args.propagation),
                         device=device, flow=flow_source, keyframe_policy=policy,
                         return_maps=args.save_maps is not None, dtype=dtype)
    schedule = (f"adaptive (max {args.max_interval}, share {args.share}, residual {args.residual})" if args.adaptive
                else f"keyframe interval {args.keyframe_interval}")
    notice(f"evss segment: {info.describe()}")
    notice(f"  model {described} ({config.name}, {config.num_classes} classes), {schedule}, mode {mode}, "
           f"flow {flow_name}, " + (f"{args.propagation} propagation, " if mode != "per_frame" else "") +
           f"device {device}{' fp16' if args.half else ''}, threads {torch.get_num_threads()}"
           + (f", backend {args.backend}" if args.backend != "torch" else ""))

    outputs = Outputs()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        h, w = info.height, info.width  # the outputs' size: the input's (after --max-size)
        video = outputs.add(VideoSink(out, fps=info.fps, height=mem.video[0], width=mem.video[1],
                                      time_base=info.time_base, pix_fmt=args.pix_fmt, crf=args.crf))
        labels = (outputs.add(LabelFolderSink(args.save_labels, palette=LABEL_SPACES[config.label_space].palette,
                                              size=(h, w))) if args.save_labels else None)
        maps = (outputs.add(map_sink(args.save_maps, args.maps, png_size=(h, w), video_size=mem.map_video,
                                     fps=info.fps, time_base=info.time_base, pix_fmt=args.pix_fmt, crf=args.crf))
                if args.save_maps else None)
    except BaseException as exc:
        reader.close()
        outputs.discard()
        if isinstance(exc, OSError):  # no permission, a file in the way, a full disk ...
            raise EvssError(f"cannot write the outputs: {exc}") from None
        raise

    factor = 2 if args.layout == "side" else 1
    rh, rw = mem.video[0], mem.video[1] // factor  # the rendered frame (one half of a side-by-side video)

    def write(item) -> None:
        """Render and write one output frame (the video frame, its label PNG, its maps): runs in
        the encoder thread, so encoding overlaps with the model."""
        index, pts, frame_image, result = item
        # Labels come at the model's size: nearest-neighbour upsampling to the outputs' sizes.
        image = render(resize_image(frame_image, rh, rw), resize_labels(result.labels, rh, rw), layout=args.layout,
                       label_space=config.label_space, alpha=args.alpha)  # (vh, vw, 3)
        video.write(index, pts, image)
        del image
        if labels is not None:
            labels.write(index, pts, result.labels)
        if maps is not None:
            maps.write(index, pts, result.maps)

    encoder = BackgroundWriter(write, depth=mem.depth)
    progress = Progress()
    # decoding runs ahead in a thread, at most mem.depth frames (none for huge frames)
    frames = prefetch(_model_inputs(reader, mem.plan.height, mem.plan.width), depth=mem.depth)
    t0 = time.perf_counter()
    bar = tqdm(total=info.frames, unit="frame", desc="segment", disable=args.quiet, dynamic_ncols=True,
               file=sys.stderr)
    try:
        _segment_frames(frames, seg, mv=mv, progress=progress, bar=bar, time_base=info.time_base,
                        emit=lambda *item: encoder.put(item))
    except KeyboardInterrupt:
        progress.interrupted = True
    except OSError as exc:  # a full disk, a folder removed under us ...: one line, outputs cleaned up below
        raise EvssError(f"stopped after {progress.frames + len(progress.bad)} frames: {exc}") from None
    finally:
        bar.close()
        frames.close()
        reader.close()
        keep = progress.ok or progress.interrupted  # an error leaves no half-written output under the final name
        try:
            encoder.close()  # the frames still queued are written (or the writer's error raised)
        except OSError as exc:
            keep = False
            raise EvssError(f"stopped after {progress.frames + len(progress.bad)} frames: {exc}") from None
        except BaseException:
            keep = False
            raise
        finally:
            wall = time.perf_counter() - t0
            written = video.frames_written
            done = outputs.finish(keep and written > 0)
    _report(args, progress, reader, out, written=written, wall=wall, frames_announced=info.frames,
            map_files=done.get(maps, []) if isinstance(maps, MapVideoSink) else [])
    return 130 if progress.interrupted else 0


def _size_notices(args: argparse.Namespace, mem: MemoryPlan) -> None:
    """Say where the model, the video or the encoder work at another size than the outputs."""
    plan, (vh, vw) = mem.plan, mem.video
    h, w = plan.out_height, plan.out_width
    factor = 2 if args.layout == "side" else 1
    if plan.downscaled:
        notice(f"note: {w}x{h} frames need about {format_bytes(plan.full_estimate)} with this model, over the "
               f"memory budget of {format_bytes(plan.budget.bytes)} ({plan.budget.source}); segmenting at "
               f"{plan.width}x{plan.height} and upsampling the labels to {w}x{h} (--max-memory raises the budget, "
               "--no-downscale stops instead)")
    if (vh, vw) != (h, w * factor):
        notice(f"note: H.264 cannot encode {w * factor}x{h} frames (libx264 takes at most {H264_MAX_SIDE} pixels a "
               f"side); the video is written at {vw}x{vh}"
               + (f", label PNGs keep {w}x{h}" if args.save_labels else "")
               + (", and so are the map videos" if args.save_maps and mem.map_video != (h, w) else ""))
    if args.pix_fmt == "yuv420p" and (vh % 2 or vw % 2):
        notice(f"note: {vw}x{vh} is odd and H.264 yuv420p needs even sizes: the video is padded by one "
               f"replicated pixel row/column (label PNGs keep {w}x{h}; --pix-fmt yuv444p keeps it exact)")


def _segment_frames(frames: Iterator, seg: VideoSegmenter, *, mv: MVFlow | None, progress: Progress, bar: Any,
                    time_base: Any, emit) -> None:
    """The frame loop: segment each decoded frame and ``emit(index, pts, image, result)`` it.

    An undecodable frame (``--on-error skip``) repeats the last good output and restarts the
    keyframe chain; undecodable frames before the first good one take its output. The first
    Ctrl-C stops after the current frame (``progress.interrupted``); a loop that runs to the end
    sets ``progress.ok``.
    """
    first_pts = None
    last = None  # (frame image, result) of the last good frame: what a bad frame repeats
    waiting: list[tuple[int, int | None]] = []  # bad frames before the first good one
    with StopOnSigint() as stop:
        for frame, model_image in frames:
            if stop.requested:
                progress.interrupted = True
                return
            if frame.pts is not None and first_pts is None:
                first_pts = frame.pts
            pts = None if frame.pts is None else frame.pts - first_pts
            if frame.image is None:  # --on-error skip: keep the frame count with the last good output
                progress.add_bad(frame.index, None if pts is None else float(pts * time_base), frame.error)
                if last is None:
                    waiting.append((frame.index, pts))
                else:
                    emit(frame.index, pts, *last)
                seg.reset()  # the next good frame starts a fresh keyframe chain
                bar.update(1)
                continue
            if mv is not None:
                mv.feed(frame.motion)
                progress.no_vectors += frame.index > 0 and frame.motion_kind != "vectors"
            r = seg.step(model_image)
            for index, wait_pts in waiting:  # undecodable leading frames take the first good output
                emit(index, wait_pts, frame.image, r)
            waiting.clear()
            emit(frame.index, pts, frame.image, r)
            last = (frame.image, r)
            progress.add(r.is_keyframe, r.redone, r.seconds)
            bar.update(1)
            bar.set_postfix(keyframes=progress.keyframes, refresh=False)
            if stop.requested:
                progress.interrupted = True
                return
    progress.ok = True


def _report(args: argparse.Namespace, progress: Progress, reader: Any, out: Path, *, written: int, wall: float,
            frames_announced: int | None, map_files: list[Path]) -> None:
    """The notes (interrupted, damaged, truncated, no vectors) on stderr and the summary on stdout."""
    s = progress.summary(wall)
    bad = progress.bad
    if progress.interrupted:
        notice(f"interrupted: wrote a playable {out} with the {written} frames done so far"
               + (f" of {frames_announced}" if frames_announced else ""))
    if bad:
        where = "damaged in the middle" if bad[-1] < written - 1 else "damaged at the end"
        secs = progress.bad_seconds
        lo, hi = (min(secs), max(secs)) if secs else (0.0, 0.0)
        span = "" if not secs else f"; {lo:.2f} s" if lo == hi else f"; {lo:.2f}-{hi:.2f} s"
        notice(f"note: {args.input} is {where}: {len(bad)} undecodable frame{'s' if len(bad) > 1 else ''} skipped "
               f"(frame {frame_list(spans(bad))}{span}; {progress.first_error}): the output repeats the last good "
               "segmentation there, "
               f"so it keeps all {written} frames")
    if reader.truncated and not progress.interrupted:
        notice(f"note: {args.input} looks truncated: {reader.truncated}; the output holds the {written} frames "
               "that could be read")
    if progress.no_vectors:
        notice(f"note: {progress.no_vectors} frames had no motion vectors (intra frames or a codec that exports "
               "none); mv reused the previous field or zero flow there")
    if not written:
        raise EvssError(f"{args.input}: no frames were segmented")

    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    print(f"{s['frames']} frames, {s['keyframes']} keyframes"
          + (f" ({s['redone_keyframes']} started by the adaptive policy)" if args.adaptive else "")
          + (f", {len(bad)} undecodable frame{'s' if len(bad) > 1 else ''} repeated" if bad else "")
          + f"; {fmt(s['ms_per_keyframe'])} ms per keyframe, {fmt(s['ms_per_non_keyframe'])} ms per non-keyframe; "
          f"{fmt(s['overall_fps'])} frames/s overall ({fmt(s['model_fps'])} in the model)")
    print(f"wrote {out}" + "".join(f", {p}" for p in map_files)
          + (f", labels in {args.save_labels}" if args.save_labels else "")
          + (f", maps in {args.save_maps}" if args.save_maps and not maps_as_video(args.save_maps) else ""))


def _model_inputs(frames: Any, height: int, width: int) -> Iterator:
    """(frame, the image the model segments): the frame's image, or a copy downscaled to (height, width)."""
    for frame in frames:
        if frame.image is None:
            yield frame, None
            continue
        if frame.motion is not None and frame.image.shape[:2] != (height, width):
            frame.motion = resize_flow(frame.motion, math.ceil(height / 4), math.ceil(width / 4))
        yield frame, resize_image(frame.image, height, width)


def _check_output_folders(args: argparse.Namespace, out: Path) -> None:
    """Refuse output folders that would replace the input or another output.

    A label or map folder is replaced as a whole when the run completes, so it must not be (or
    hold) the input frames, the output video or the other folder.
    """
    source = Path(args.input)
    if is_glob(args.input):
        source = source.parent  # a glob: its folder
    folders = [(flag, Path(value)) for flag, value in (("--save-labels", args.save_labels),
                                                       ("--save-maps", args.save_maps)) if value]
    folders = [(flag, path) for flag, path in folders if not (flag == "--save-maps" and maps_as_video(path))]
    for flag, folder in folders:
        real = folder.resolve()
        for what, other in (("the input", source), ("the output video", out)):
            other = other.resolve()
            if other == real or real in other.parents:
                raise EvssError(f"{flag} {folder}: the folder would hold {what} ({other}), which its "
                                "replacement at the end would remove; choose another folder")
    if len(folders) == 2 and folders[0][1].resolve() == folders[1][1].resolve():
        raise EvssError(f"--save-labels and --save-maps name the same folder {folders[0][1]}")
