"""`evss segment INPUT -o OUTPUT`: segment a video file, a folder of frames or a glob.

    evss segment drive.mp4 -o drive_seg.mp4
    evss segment drive.mp4 -o side.mp4 --layout side --save-labels labels/ --save-maps maps/
    evss segment frames/ -o out.mp4 --fps 15 --flow dis --adaptive

Decode, segment and encode stream one frame at a time (a few frames in flight: memory does not
grow with the video). The output keeps the input's frame count and timing (variable frame rates
too); rotation metadata is applied so frames are segmented upright; audio is dropped. Outputs are
written under a hidden ``.NAME.partial`` name (label and map folders too) and renamed when
complete, so a crash never leaves an output that looks complete; Ctrl-C (SIGINT) stops after the
current frame and finishes a playable video of the frames done so far. ``--on-error skip`` keeps
going past undecodable frames, repeating the last good segmentation so the output keeps the frame
count, and names the frames.

Memory is budgeted before the first frame (:mod:`evss.memory`): the peak is estimated from the model
config and the frame size; over ``--max-memory`` (default: half the available memory, at most
3 GB) the model segments a downscaled copy and the labels are upsampled, so the video, label PNGs
and maps keep the input's size (``--no-downscale`` stops with the estimate instead). Frames over
8 MB travel through shorter queues, frames over 64 MB through none; a size H.264 cannot encode
(over 16384 pixels a side) gets a smaller video, said so, while the label PNGs keep the input's size.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The default model of `evss segment` (real footage: trained on CamVid) and of `evss demo`
# (SynthDrive): built-in weights by these names if shipped, else the untrained "light" preset.
DEFAULT_WEIGHTS = "camvid"
DEMO_WEIGHTS = "synthdrive_light"
MAP_NAMES = ("fine", "coarse", "edge")


def load_weights(weights: str | None, *, notice=print, default: str = DEFAULT_WEIGHTS):
    """(model, config, description, trained) for --weights; None means ``default``."""
    from evss.checkpoint import builtin_weights, load_model
    from evss.config import build_model, preset

    if weights is None:
        if default in builtin_weights():
            model, config = load_model(default)
            return model, config, f"built-in {default}", True
        notice(f"note: the built-in weights {default!r} are not shipped in this build; using the untrained "
               "'light' preset: timing is real, labels are not meaningful (pass --weights)")
        import torch
        torch.manual_seed(0)
        return build_model(preset("light")).eval(), preset("light"), "untrained light preset", False
    model, config = load_model(weights)
    return model, config, str(weights), True


def _map_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in MAP_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--maps takes a comma list of {', '.join(MAP_NAMES)}, got {text!r}")
    return names


def _unit_float(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return v


# Literal copies of evss.flow_sources.FLOW_SOURCES and evss.visualize.LAYOUTS (a test checks they
# agree): the parser is built for every `evss` command and must not import torch.
FLOW_SOURCES = ("learned", "dis", "mv")
LAYOUTS = ("overlay", "side")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file (anything FFmpeg reads), folder of frames, or a quoted glob")
    p.add_argument("-o", "--output", type=Path, required=True, help="output video (.mp4)")
    g = p.add_argument_group("output")
    g.add_argument("--layout", choices=LAYOUTS, default="overlay",
                   help="overlay: labels blended over the frame; side: frame and labels side by side")
    g.add_argument("--alpha", type=_unit_float, default=0.5, help="label opacity for --layout overlay (default 0.5)")
    g.add_argument("--save-labels", type=Path, metavar="DIR",
                   help="also write one palette PNG of class ids per frame (000000.png, ...); the folder is filled "
                        "as .DIR.partial and renamed when done, replacing an earlier output of evss there")
    g.add_argument("--save-maps", type=Path, metavar="DIR|VIDEO",
                   help="also write distortion maps: greyscale PNGs in DIR/<map>/, or videos if this ends in .mp4")
    g.add_argument("--maps", type=_map_list, default=("fine",),
                   help="which maps --save-maps writes: comma list of fine, coarse, edge (default fine)")
    g.add_argument("--pix-fmt", choices=("yuv420p", "yuv444p"), default="yuv420p",
                   help="yuv420p plays everywhere but pads odd sizes by a pixel; yuv444p keeps odd sizes exactly")
    g.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    m = p.add_argument_group("model")
    m.add_argument("--weights", default=None,
                   help=f"built-in name, evss checkpoint or the authors' .pth (default {DEFAULT_WEIGHTS})")
    m.add_argument("--keyframe-interval", type=int, default=5, help="a keyframe every N frames (default 5)")
    m.add_argument("--mode", choices=("evss", "warp_only", "per_frame"), default=None,
                   help="evss: Algorithm 1 (warp + CoNet rectification); warp_only: propagate the keyframe's "
                        "features along the flow; per_frame: the keyframe network on every frame; default: the "
                        "weights' default_mode (the built-in camvid: warp_only, see the README)")
    m.add_argument("--flow", choices=FLOW_SOURCES, default=None,
                   help="flow source: the learned FlowNet, OpenCV DIS, or the video's motion vectors (mv); "
                        "default: the one the weights' CoNet was trained with (their config's flow_source)")
    m.add_argument("--adaptive", action="store_true",
                   help="start keyframes when the fine distortion map says propagation degraded; "
                        "--keyframe-interval is then unused and --max-interval bounds the gap")
    m.add_argument("--max-interval", type=int, default=10,
                   help="--adaptive: longest run without a keyframe (default 10)")
    m.add_argument("--share", type=_unit_float, default=0.25,
                   help="--adaptive: keyframe when more than this share of pixels has M^f > 0.5 (default 0.25)")
    m.add_argument("--residual", type=_unit_float, default=0.08,
                   help="--adaptive: keyframe when the flow leaves more than this mean grey error (hard cuts; "
                        "default 0.08, 1 disables)")
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    r.add_argument("--half", action="store_true", help="float16 on CUDA")
    r.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    r.add_argument("--max-size", type=int, default=None, metavar="PIXELS",
                   help="downscale frames so the longer side is at most this (outputs at that size)")
    r.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G or 1500M (default: half the available memory, at most 3G); a frame "
                        "whose estimated peak is over it is segmented at a smaller size and its labels upsampled, "
                        "so the outputs keep the input's size")
    r.add_argument("--no-downscale", action="store_true",
                   help="stop with an error instead of segmenting at a smaller size when over --max-memory")
    r.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (default 25)")
    r.add_argument("--on-error", choices=("stop", "skip"), default="skip",
                   help="an undecodable or lost frame (damaged data): skip it (default), repeating the last good "
                        "segmentation so the output keeps the input's frame count and timing (the damaged frames "
                        "and times are reported), or stop with an error naming it")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


class _Stats:
    """Running totals for the closing summary (constant memory, whatever the video length)."""

    def __init__(self) -> None:
        self.frames = self.keyframes = self.redone = 0
        self.key_s = self.non_s = 0.0
        self.first_s: float | None = None  # frame 0 carries one-off allocations

    def add(self, is_keyframe: bool, redone: bool, seconds: float) -> None:
        if self.first_s is None:
            self.first_s = seconds
        elif is_keyframe:
            self.key_s += seconds
        else:
            self.non_s += seconds
        self.frames += 1
        self.keyframes += is_keyframe
        self.redone += redone

    def summary(self, wall: float) -> dict:
        n, k = self.frames, self.keyframes
        key_ms = 1000 * self.key_s / (k - 1) if k > 1 else (1000 * self.first_s if k else None)
        non_ms = 1000 * self.non_s / (n - k) if n > k else None
        model_s = self.key_s + self.non_s + (self.first_s or 0.0)
        return {"frames": n, "keyframes": k, "redone_keyframes": self.redone, "ms_per_keyframe": key_ms,
                "ms_per_non_keyframe": non_ms, "model_fps": n / model_s if n and model_s > 0 else None,
                "overall_fps": n / wall if n and wall > 0 else None, "seconds": wall}


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


class _MapSink:
    """Writes the chosen distortion maps per frame as PNGs (DIR/<map>/NNNNNN.png) or grey videos."""

    def __init__(self, target: Path, names: tuple[str, ...], *, info, height: int, width: int, pix_fmt: str,
                 crf: int) -> None:  # height, width: of the videos
        from evss.data.video import VIDEO_SUFFIXES, PartialFolder, VideoWriter, numbered_pngs, partial_path
        self.names, self.target = names, target
        self.as_video = target.suffix.lower() in VIDEO_SUFFIXES
        self.writers: dict = {}
        self.finals: dict = {}
        self.folder = None
        if self.as_video:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                for name in names:
                    final = target if name == names[0] else target.with_name(f"{target.stem}_{name}{target.suffix}")
                    self.finals[name] = final
                    self.writers[name] = VideoWriter(partial_path(final), info.fps, height, width,
                                                     time_base=info.time_base, pix_fmt=pix_fmt, crf=crf)
            except BaseException:
                self.close(keep=False)
                raise
        else:
            def owned(p: Path) -> bool:  # DIR/<map>/NNNNNN.png, as this sink writes them
                return (p.name in MAP_NAMES and p.is_dir() and not p.is_symlink()
                        and all(numbered_pngs(q) for q in p.iterdir()))
            self.folder = PartialFolder(target, owned=owned, what="--save-maps")
            for name in names:
                (self.folder.path / name).mkdir()

    def write(self, index: int, maps: dict, pts: int | None, *, size: tuple[int, int] | None = None,
              video_size: tuple[int, int] | None = None) -> None:
        """``size``: the PNGs' (H, W) when the maps come at another size; ``video_size``: the videos'."""
        from evss.data.video import resize_map, write_gray_png
        from evss.visualize import gray
        for name in self.names:
            m = maps[name]  # (h, w) float32 in [0, 1]
            if self.as_video:
                if video_size is not None:
                    m = resize_map(m, *video_size)
                self.writers[name].write(gray(m), pts)
            else:
                if size is not None:
                    m = resize_map(m, *size)
                write_gray_png(self.folder.path / name / f"{index:06d}.png", m)

    def close(self, keep: bool) -> list[Path]:
        """Finish the outputs; ``keep`` renames them to their final names, else they are deleted."""
        done = []
        for name, w in self.writers.items():
            w.close()
            if keep and w.frames_written:
                os.replace(w.path, self.finals[name])
                done.append(self.finals[name])
            else:
                Path(w.path).unlink(missing_ok=True)
        if self.folder is not None:
            self.folder.commit() if keep else self.folder.discard()
        return done


class _StopOnSigint:
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current frame.

    The frame loop checks ``requested`` between frames, so an interrupt never lands halfway
    through encoding a frame: the video is finished with exactly the frames reported. A second
    Ctrl-C raises KeyboardInterrupt at once (the outputs are still finished). Only the main thread
    can install signal handlers; elsewhere, and where SIGINT is ignored, nothing changes.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@dataclass(frozen=True)
class _MemoryPlan:
    plan: Any  # evss.memory.Plan: the size the model segments at
    video: tuple[int, int]  # (H, W) of the output video (twice as wide for --layout side)
    map_video: tuple[int, int]  # (H, W) of map videos
    depth: int  # frames decoded ahead and queued for the encoder (0: one thread, one frame at a time)


def _memory_plan(args: argparse.Namespace, info: Any, config: Any, device: Any, dtype: Any) -> _MemoryPlan:
    """The sizes to segment and encode at under the memory budget (see :mod:`evss.memory`)."""
    import torch

    from evss import memory
    from evss.data.video import VIDEO_SUFFIXES
    h, w = info.height, info.width
    factor = 2 if args.layout == "side" else 1
    video, map_video = memory.h264_size(h, w * factor), memory.h264_size(h, w)
    depth = memory.pipeline_depth(h, w)
    n_maps = len(args.maps) if args.save_maps else 0
    maps_as_video = bool(args.save_maps) and Path(args.save_maps).suffix.lower() in VIDEO_SUFFIXES
    model_px = memory.model_pixel_bytes(config, maps=n_maps > 0, dtype_bytes=torch.finfo(dtype).bits // 8)
    weights = memory.weights_bytes(config)
    buffers = memory.segment_buffers(h, w, video_height=video[0], video_width=video[1], depth=depth, weights=weights,
                                     labels=bool(args.save_labels), maps=n_maps,
                                     map_video=map_video if maps_as_video else None)
    remedy = "; --max-size N makes every output smaller too"
    budget = memory.resolve_budget(args.max_memory)
    on_host = device.type in ("cpu", "mps")  # MPS shares the host's memory
    plan = memory.plan(height=h, width=w, model_px=model_px if on_host else 4.0, buffers=buffers, budget=budget,
                       allow_downscale=not args.no_downscale, what=args.input, remedy=remedy)
    if device.type == "cuda":  # the activations live on the GPU: its free memory is the budget there
        free, _ = torch.cuda.mem_get_info(device)
        gpu = memory.plan(height=h, width=w, model_px=model_px, buffers=memory.Buffers(held=weights, writing=0),
                          budget=memory.Budget(int(free * 0.9), f"90% of the free memory of {device}"),
                          allow_downscale=not args.no_downscale, what=args.input, remedy=remedy)
        if gpu.height * gpu.width < plan.height * plan.width:
            plan = gpu
    return _MemoryPlan(plan=plan, video=video, map_video=map_video, depth=depth)


def _model_inputs(frames: Any, height: int, width: int) -> Any:
    """(frame, the image the model segments): the frame's image, or a copy downscaled to (height, width)."""
    import math

    from evss.data.video import resize_flow, resize_image
    for frame in frames:
        if frame.image is None:
            yield frame, None
            continue
        if frame.motion is not None and frame.image.shape[:2] != (height, width):
            frame.motion = resize_flow(frame.motion, math.ceil(height / 4), math.ceil(width / 4))
        yield frame, resize_image(frame.image, height, width)


def _spans(indices: list[int]) -> list[str]:
    """[3, 4, 5, 9] -> ["3-5", "9"]: runs of consecutive frame numbers."""
    out: list[str] = []
    for i in indices:
        if out and i == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return out


def _frame_list(indices: list, limit: int = 20) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    return shown + (f" ... ({len(indices)} in all)" if len(indices) > limit else "")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from evss.classes import LABEL_SPACES
    from evss.data.video import (
        BackgroundWriter,
        PartialFolder,
        VideoWriter,
        numbered_pngs,
        open_video,
        partial_path,
        prefetch,
        resize_image,
        resize_labels,
        write_label_png,
    )
    from evss.device import resolve_device, resolve_dtype
    from evss.errors import EvssError
    from evss.flow_sources import MVFlow, make_flow_source
    from evss.keyframes import AdaptiveKeyframes, FlowProbe
    from evss.memory import H264_MAX_SIDE, format_bytes
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    from evss.visualize import render

    def notice(msg: str) -> None:
        print(msg, file=sys.stderr)

    if args.keyframe_interval < 1:
        raise EvssError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    if args.max_size is not None and args.max_size < 16:
        raise EvssError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    if args.max_memory is not None:
        from evss.memory import parse_bytes
        parse_bytes(args.max_memory)  # a bad value is reported before anything is opened
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
        flow_name = args.flow or config.flow_source  # the weights' own flow source unless told otherwise
        if flow_name == "mv" and args.flow is None:  # the reader must export the vectors: open it again
            reader.close()
            reader = open_video(args.input, max_size=args.max_size, motion_vectors=True, fps=args.fps,
                                on_error=args.on_error)
    except BaseException:
        reader.close()
        raise
    space = LABEL_SPACES[config.label_space]
    info = reader.info
    if info.has_audio:
        notice(f"note: {args.input} has an audio track; the output is video only")
    if (info.height, info.width) != ((info.source_width, info.source_height) if info.rotation in (90, 270)
                                     else (info.source_height, info.source_width)):
        notice(f"note: frames downscaled to {info.width}x{info.height} (--max-size {args.max_size}); "
               "outputs are at that size")
    factor = 2 if args.layout == "side" else 1
    h, w = info.height, info.width  # the outputs' size: the input's (after --max-size)
    try:
        mem = _memory_plan(args, info, config, device, dtype)
    except BaseException:
        reader.close()
        raise
    ph, pw = mem.plan.height, mem.plan.width  # the size the model segments at
    vh, vw = mem.video  # the video's size: the outputs' unless H.264 cannot take it
    rh, rw = vh, vw // factor  # the rendered frame (one half of a side-by-side video)
    if mem.plan.downscaled:
        notice(f"note: {w}x{h} frames need about {format_bytes(mem.plan.full_estimate)} with this model, over the "
               f"memory budget of {format_bytes(mem.plan.budget.bytes)} ({mem.plan.budget.source}); segmenting at "
               f"{pw}x{ph} and upsampling the labels to {w}x{h} (--max-memory raises the budget, --no-downscale stops "
               "instead)")
    if (vh, vw) != (h, w * factor):
        notice(f"note: H.264 cannot encode {w * factor}x{h} frames (libx264 takes at most {H264_MAX_SIDE} pixels a "
               f"side); the video is written at {vw}x{vh}"
               + (f", label PNGs keep {w}x{h}" if args.save_labels else "")
               + (", and so are the map videos" if args.save_maps and mem.map_video != (h, w) else ""))
    out_w = vw
    if args.pix_fmt == "yuv420p" and (vh % 2 or out_w % 2):
        notice(f"note: {out_w}x{vh} is odd and H.264 yuv420p needs even sizes: the video is padded by one "
               f"replicated pixel row/column (label PNGs keep {info.width}x{info.height}; --pix-fmt yuv444p keeps it "
               "exact)")

    flow_source = make_flow_source(flow_name, model)
    mv = flow_source if isinstance(flow_source, MVFlow) else None
    policy = None
    if args.adaptive:
        probe = FlowProbe(flow_source) if args.residual < 1 else None
        policy = AdaptiveKeyframes(max_interval=args.max_interval, share=args.share,
                                   residual=args.residual if probe else None, probe=probe)
        flow_source = probe or flow_source
    mode = args.mode or config.default_mode
    seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=args.keyframe_interval, mode=mode),
                         device=device, flow=flow_source, keyframe_policy=policy, return_maps=args.save_maps is not None, dtype=dtype)
    schedule = (f"adaptive (max {args.max_interval}, share {args.share}, residual {args.residual})" if args.adaptive
                else f"keyframe interval {args.keyframe_interval}")
    notice(f"evss segment: {info.describe()}")
    notice(f"  model {described} ({config.name}, {config.num_classes} classes), {schedule}, mode {mode}, "
           f"flow {flow_name}, "
           f"device {device}{' fp16' if args.half else ''}, threads {torch.get_num_threads()}")

    tmp = partial_path(out)
    writer = labels = maps = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(tmp, info.fps, vh, out_w, time_base=info.time_base, pix_fmt=args.pix_fmt,
                             crf=args.crf)
        if args.save_labels:
            labels = PartialFolder(args.save_labels, owned=numbered_pngs, what="--save-labels")
        maps = (_MapSink(args.save_maps, args.maps, info=info, height=mem.map_video[0], width=mem.map_video[1],
                         pix_fmt=args.pix_fmt, crf=args.crf) if args.save_maps else None)
    except BaseException as exc:
        reader.close()
        if writer is not None:
            writer.close()
            tmp.unlink(missing_ok=True)
        if labels is not None:
            labels.discard()
        if isinstance(exc, OSError):  # no permission, a file in the way, a full disk ...
            raise EvssError(f"cannot write the outputs: {exc}") from None
        raise

    def write(item) -> None:
        """Render and write one output frame (the video frame, its label PNG, its maps): runs in
        the encoder thread, so encoding overlaps with the model."""
        index, pts, frame_image, result = item
        # Labels come at the model's size (ph, pw): nearest-neighbour upsampling to the outputs' sizes.
        image = render(resize_image(frame_image, rh, rw), resize_labels(result.labels, rh, rw), layout=args.layout,
                       label_space=space.name, alpha=args.alpha)  # (vh, vw, 3)
        writer.write(image, pts)
        del image
        if labels is not None:
            write_label_png(labels.path / f"{index:06d}.png", resize_labels(result.labels, h, w), space.palette)
        if maps is not None:
            maps.write(index, result.maps, pts, size=(h, w), video_size=mem.map_video)

    encoder = BackgroundWriter(write, depth=mem.depth)

    def emit(index: int, pts: int | None, frame_image, result) -> None:
        encoder.put((index, pts, frame_image, result))

    stats = _Stats()
    no_vectors = 0
    ok = interrupted = False
    first_pts = None
    bad: list[int] = []  # undecodable frames (--on-error skip)
    bad_seconds: list[float] = []  # their times from the first frame, where the container gives them
    first_error = ""
    last = None  # (rendered frame, result) of the last good frame: what a bad frame repeats
    waiting: list[tuple[int, int | None]] = []  # bad frames before the first good one
    # decoding runs ahead in a thread, at most mem.depth frames (none for huge frames)
    frames = prefetch(_model_inputs(reader, ph, pw), depth=mem.depth)
    t0 = time.perf_counter()
    bar = tqdm(total=info.frames, unit="frame", desc="segment", disable=args.quiet, dynamic_ncols=True,
               file=sys.stderr)
    try:
        with _StopOnSigint() as stop:
            for frame, model_image in frames:
                if stop.requested:
                    interrupted = True
                    break
                if frame.pts is not None and first_pts is None:
                    first_pts = frame.pts
                pts = None if frame.pts is None else frame.pts - first_pts
                if frame.image is None:  # --on-error skip: keep the frame count with the last good output
                    bad.append(frame.index)
                    if pts is not None:
                        bad_seconds.append(float(pts * info.time_base))
                    first_error = first_error or frame.error
                    if last is None:
                        waiting.append((frame.index, pts))
                    else:
                        emit(frame.index, pts, *last)
                    seg.reset()  # the next good frame starts a fresh keyframe chain
                    bar.update(1)
                    continue
                if mv is not None:
                    mv.feed(frame.motion)
                    no_vectors += frame.index > 0 and frame.motion_kind != "vectors"
                r = seg.step(model_image)
                for index, wait_pts in waiting:  # undecodable leading frames take the first good output
                    emit(index, wait_pts, frame.image, r)
                waiting.clear()
                emit(frame.index, pts, frame.image, r)
                last = (frame.image, r)
                stats.add(r.is_keyframe, r.redone, r.seconds)
                bar.update(1)
                bar.set_postfix(keyframes=stats.keyframes, refresh=False)
                if stop.requested:
                    interrupted = True
                    break
            else:
                ok = True
    except KeyboardInterrupt:
        interrupted = True
    except OSError as exc:  # a full disk, a folder removed under us ...: one line, outputs cleaned up below
        raise EvssError(f"stopped after {stats.frames + len(bad)} frames: {exc}") from None
    finally:
        bar.close()
        frames.close()
        reader.close()
        keep = ok or interrupted  # an error leaves no half-written output under the final name
        try:
            try:
                encoder.close()  # the frames still queued are written (or the writer's error raised)
            except OSError as exc:
                keep = False
                raise EvssError(f"stopped after {stats.frames + len(bad)} frames: {exc}") from None
            except BaseException:
                keep = False
                raise
            finally:
                wall = time.perf_counter() - t0
                writer.close()
        finally:
            written = writer.frames_written
            keep = keep and written > 0
            if keep:
                os.replace(tmp, out)
            else:
                tmp.unlink(missing_ok=True)
            try:
                if labels is not None:
                    labels.commit() if keep else labels.discard()
            finally:
                map_files = maps.close(keep=keep) if maps is not None else []

    s = stats.summary(wall)
    if interrupted:
        notice(f"interrupted: wrote a playable {out} with the {written} frames done so far"
               + (f" of {info.frames}" if info.frames else ""))
    if bad:
        where = "damaged in the middle" if bad[-1] < written - 1 else "damaged at the end"
        lo, hi = (min(bad_seconds), max(bad_seconds)) if bad_seconds else (0.0, 0.0)
        span = "" if not bad_seconds else f"; {lo:.2f} s" if lo == hi else f"; {lo:.2f}-{hi:.2f} s"
        notice(f"note: {args.input} is {where}: {len(bad)} undecodable frame{'s' if len(bad) > 1 else ''} skipped "
               f"(frame {_frame_list(_spans(bad))}{span}; {first_error}): the output repeats the last good "
               "segmentation there, "
               f"so it keeps all {written} frames")
    if reader.truncated and not interrupted:
        notice(f"note: {args.input} looks truncated: {reader.truncated}; the output holds the {written} frames "
               "that could be read")
    if no_vectors:
        notice(f"note: {no_vectors} frames had no motion vectors (intra frames or a codec that exports none); "
               "mv reused the previous field or zero flow there")
    if not written:
        raise EvssError(f"{args.input}: no frames were segmented")
    print(f"{s['frames']} frames, {s['keyframes']} keyframes"
          + (f" ({s['redone_keyframes']} started by the adaptive policy)" if args.adaptive else "")
          + (f", {len(bad)} undecodable frame{'s' if len(bad) > 1 else ''} repeated" if bad else "")
          + f"; {_fmt(s['ms_per_keyframe'])} ms per keyframe, {_fmt(s['ms_per_non_keyframe'])} ms per non-keyframe; "
          f"{_fmt(s['overall_fps'])} frames/s overall ({_fmt(s['model_fps'])} in the model)")
    print(f"wrote {out}" + "".join(f", {p}" for p in map_files)
          + (f", labels in {args.save_labels}" if args.save_labels else "")
          + (f", maps in {args.save_maps}" if maps is not None and not maps.as_video else ""))
    return 130 if interrupted else 0


def _check_output_folders(args: argparse.Namespace, out: Path) -> None:
    """Refuse output folders that would replace the input or another output.

    A label or map folder is replaced as a whole when the run completes, so it must not be (or
    hold) the input frames, the output video or the other folder.
    """
    from evss.data.video import VIDEO_SUFFIXES
    from evss.errors import EvssError
    source = Path(args.input)
    if not source.exists() and any(ch in args.input for ch in "*?["):
        source = source.parent  # a glob: its folder
    folders = [(flag, Path(value)) for flag, value in (("--save-labels", args.save_labels),
                                                       ("--save-maps", args.save_maps)) if value]
    folders = [(flag, path) for flag, path in folders
               if not (flag == "--save-maps" and path.suffix.lower() in VIDEO_SUFFIXES)]
    for flag, folder in folders:
        real = folder.resolve()
        for what, other in (("the input", source), ("the output video", out)):
            other = other.resolve()
            if other == real or real in other.parents:
                raise EvssError(f"{flag} {folder}: the folder would hold {what} ({other}), which its "
                                "replacement at the end would remove; choose another folder")
    if len(folders) == 2 and folders[0][1].resolve() == folders[1][1].resolve():
        raise EvssError(f"--save-labels and --save-maps name the same folder {folders[0][1]}")
