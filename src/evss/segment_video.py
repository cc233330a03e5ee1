"""`evss segment INPUT -o OUTPUT`: segment a video file, a folder of frames or a glob.

    evss segment drive.mp4 -o drive_seg.mp4
    evss segment drive.mp4 -o side.mp4 --layout side --save-labels labels/ --save-maps maps/
    evss segment frames/ -o out.mp4 --fps 15 --flow dis --adaptive

Decode, segment and encode stream one frame at a time (a few frames in flight: memory does not
grow with the video). The output keeps the input's frame count and timing (variable frame rates
too); rotation metadata is applied so frames are segmented upright; audio is dropped. Outputs are
written under a hidden ``.NAME.partial`` name and renamed when complete; Ctrl-C finishes a
playable video of the frames done so far.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The default model of `evss segment` and `evss demo`: built-in weights by this name if shipped,
# else the untrained "light" preset (with a notice).
DEFAULT_WEIGHTS = "synthdrive_light"
MAP_NAMES = ("fine", "coarse", "edge")


def load_weights(weights: str | None, *, notice=print):
    """(model, config, description, trained) for --weights; None means :data:`DEFAULT_WEIGHTS`."""
    from evss.checkpoint import builtin_weights, load_model
    from evss.config import build_model, preset

    if weights is None:
        if DEFAULT_WEIGHTS in builtin_weights():
            model, config = load_model(DEFAULT_WEIGHTS)
            return model, config, f"built-in {DEFAULT_WEIGHTS}", True
        notice(f"note: the built-in weights {DEFAULT_WEIGHTS!r} are not shipped in this build; using the untrained "
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
                   help="also write one palette PNG of class ids per frame (000000.png, ...)")
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
    m.add_argument("--flow", choices=FLOW_SOURCES, default="learned",
                   help="flow source: the learned FlowNet, OpenCV DIS, or the video's motion vectors (mv)")
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
    r.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (default 25)")
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
                 crf: int) -> None:
        from evss.data.video import VIDEO_SUFFIXES, VideoWriter, partial_path
        self.names, self.target = names, target
        self.as_video = target.suffix.lower() in VIDEO_SUFFIXES
        self.writers: dict = {}
        self.finals: dict = {}
        if self.as_video:
            target.parent.mkdir(parents=True, exist_ok=True)
            for name in names:
                final = target if name == names[0] else target.with_name(f"{target.stem}_{name}{target.suffix}")
                self.finals[name] = final
                self.writers[name] = VideoWriter(partial_path(final), info.fps, height, width, time_base=info.time_base,
                                                 pix_fmt=pix_fmt, crf=crf)
        else:
            for name in names:
                (target / name).mkdir(parents=True, exist_ok=True)

    def write(self, index: int, maps: dict, pts: int | None) -> None:
        from evss.data.video import write_gray_png
        from evss.visualize import gray
        for name in self.names:
            if self.as_video:
                self.writers[name].write(gray(maps[name]), pts)
            else:
                write_gray_png(self.target / name / f"{index:06d}.png", maps[name])

    def close(self, keep: bool) -> list[Path]:
        done = []
        for name, w in self.writers.items():
            w.close()
            if keep and w.frames_written:
                os.replace(w.path, self.finals[name])
                done.append(self.finals[name])
            else:
                Path(w.path).unlink(missing_ok=True)
        return done


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from evss.classes import LABEL_SPACES
    from evss.data.video import VideoWriter, open_video, partial_path, prefetch, write_label_png
    from evss.device import resolve_device
    from evss.errors import EvssError
    from evss.flow_sources import MVFlow, make_flow_source
    from evss.keyframes import AdaptiveKeyframes, FlowProbe
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    from evss.visualize import render

    def notice(msg: str) -> None:
        print(msg, file=sys.stderr)

    if args.keyframe_interval < 1:
        raise EvssError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    if args.max_size is not None and args.max_size < 16:
        raise EvssError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    out = Path(args.output)
    if out.exists() and out.is_dir():
        raise EvssError(f"-o {out}: is a folder; give a video file name such as {out / 'segmented.mp4'}")
    if Path(args.input).exists() and out.resolve() == Path(args.input).resolve():
        raise EvssError(f"-o {out}: would overwrite the input")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = torch.float32
    if args.half:
        if device.type != "cuda":
            raise EvssError(f"--half needs a CUDA device, the device is {device}")
        dtype = torch.float16

    model, config, described, _ = load_weights(args.weights, notice=notice)
    space = LABEL_SPACES[config.label_space]
    reader = open_video(args.input, max_size=args.max_size, motion_vectors=args.flow == "mv", fps=args.fps)
    info = reader.info
    if info.has_audio:
        notice(f"note: {args.input} has an audio track; the output is video only")
    if (info.height, info.width) != ((info.source_width, info.source_height) if info.rotation in (90, 270)
                                     else (info.source_height, info.source_width)):
        notice(f"note: frames downscaled to {info.width}x{info.height} (--max-size {args.max_size}); "
               "outputs are at that size")
    out_w = info.width * (2 if args.layout == "side" else 1)
    if args.pix_fmt == "yuv420p" and (info.height % 2 or out_w % 2):
        notice(f"note: {out_w}x{info.height} is odd and H.264 yuv420p needs even sizes: the video is padded by one "
               f"replicated pixel row/column (label PNGs keep {info.width}x{info.height}; --pix-fmt yuv444p keeps it "
               "exact)")

    flow_source = make_flow_source(args.flow, model)
    mv = flow_source if isinstance(flow_source, MVFlow) else None
    policy = None
    if args.adaptive:
        probe = FlowProbe(flow_source) if args.residual < 1 else None
        policy = AdaptiveKeyframes(max_interval=args.max_interval, share=args.share,
                                   residual=args.residual if probe else None, probe=probe)
        flow_source = probe or flow_source
    seg = VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=args.keyframe_interval), device=device,
                         flow=flow_source, keyframe_policy=policy, return_maps=args.save_maps is not None, dtype=dtype)
    schedule = (f"adaptive (max {args.max_interval}, share {args.share}, residual {args.residual})" if args.adaptive
                else f"keyframe interval {args.keyframe_interval}")
    notice(f"evss segment: {info.describe()}")
    notice(f"  model {described} ({config.name}, {config.num_classes} classes), {schedule}, flow {args.flow}, "
           f"device {device}{' fp16' if args.half else ''}, threads {torch.get_num_threads()}")

    tmp = partial_path(out)
    writer = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(tmp, info.fps, info.height, out_w, time_base=info.time_base, pix_fmt=args.pix_fmt,
                             crf=args.crf)
        if args.save_labels:
            args.save_labels.mkdir(parents=True, exist_ok=True)
        maps = (_MapSink(args.save_maps, args.maps, info=info, height=info.height, width=info.width,
                         pix_fmt=args.pix_fmt, crf=args.crf) if args.save_maps else None)
    except BaseException:
        reader.close()
        if writer is not None:
            writer.close()
            tmp.unlink(missing_ok=True)
        raise

    stats = _Stats()
    no_vectors = 0
    ok = interrupted = False
    first_pts = None
    frames = prefetch(reader, depth=4)  # decoding runs ahead in a thread, at most 4 frames
    t0 = time.perf_counter()
    bar = tqdm(total=info.frames, unit="frame", desc="segment", disable=args.quiet, dynamic_ncols=True,
               file=sys.stderr)
    try:
        for frame in frames:
            if mv is not None:
                mv.feed(frame.motion)
                no_vectors += frame.index > 0 and frame.motion_kind != "vectors"
            r = seg.step(frame.image)
            if frame.pts is not None and first_pts is None:
                first_pts = frame.pts
            pts = None if frame.pts is None else frame.pts - first_pts
            writer.write(render(frame.image, r.labels, layout=args.layout, label_space=space.name, alpha=args.alpha),
                         pts)
            if args.save_labels:
                write_label_png(args.save_labels / f"{frame.index:06d}.png", r.labels, space.palette)
            if maps is not None:
                maps.write(frame.index, r.maps, pts)
            stats.add(r.is_keyframe, r.redone, r.seconds)
            bar.update(1)
            bar.set_postfix(keyframes=stats.keyframes, refresh=False)
        ok = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        frames.close()
        reader.close()
        wall = time.perf_counter() - t0
        keep = ok or interrupted  # an error leaves no half-written output under the final name
        try:
            writer.close()
        finally:
            written = writer.frames_written
            if keep and written:
                os.replace(tmp, out)
            else:
                tmp.unlink(missing_ok=True)
            map_files = maps.close(keep=keep) if maps is not None else []

    s = stats.summary(wall)
    if interrupted:
        notice(f"interrupted: wrote a playable {out} with the {written} frames done so far"
               + (f" of {info.frames}" if info.frames else ""))
    if no_vectors:
        notice(f"note: {no_vectors} frames had no motion vectors (intra frames or a codec that exports none); "
               "mv reused the previous field or zero flow there")
    if not written:
        raise EvssError(f"{args.input}: no frames were segmented")
    print(f"{s['frames']} frames, {s['keyframes']} keyframes"
          + (f" ({s['redone_keyframes']} started by the adaptive policy)" if args.adaptive else "")
          + f"; {_fmt(s['ms_per_keyframe'])} ms per keyframe, {_fmt(s['ms_per_non_keyframe'])} ms per non-keyframe; "
          f"{_fmt(s['overall_fps'])} frames/s overall ({_fmt(s['model_fps'])} in the model)")
    print(f"wrote {out}" + "".join(f", {p}" for p in map_files)
          + (f", labels in {args.save_labels}" if args.save_labels else "")
          + (f", maps in {args.save_maps}" if maps is not None and not maps.as_video else ""))
    return 130 if interrupted else 0
