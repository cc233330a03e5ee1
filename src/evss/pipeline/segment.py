"""`segment_video`: a video file, a folder of frames or a glob in; an overlay video (and labels, maps) out.

    import evss
    report = evss.segment_video("drive.mp4", "drive_seg.mp4")
    report = evss.segment_video("frames/", "out.mp4", evss.SegmentOptions(keyframe_interval=5, flow="dis"),
                                evss.OutputOptions(layout="side", save_labels="labels/"))

Decode, segment and encode stream one frame at a time (a few frames in flight: memory does not
grow with the video). The output keeps the input's frame count and timing (variable frame rates
too); rotation metadata is applied so frames are segmented upright; audio is dropped. Outputs are
written under a hidden ``.NAME.partial`` name (label and map folders too) and renamed when
complete (:mod:`evss.pipeline.outputs`), so a crash never leaves an output that looks complete;
Ctrl-C (SIGINT) stops after the current frame and finishes a playable video of the frames done so
far. ``on_error="skip"`` keeps going past undecodable frames, repeating the last good segmentation
so the output keeps the frame count, and names the frames.

Memory is budgeted before the first frame (:func:`evss.memory.segment_plan`): the peak is
estimated from the model config and the frame size; over ``max_memory`` (default: half the
available memory, at most 3 GB) the model segments a downscaled copy and the labels are
upsampled, so the video, label PNGs and maps keep the input's size (``allow_downscale=False``
stops with the estimate instead). Weights with an ``inference_size`` (or ``inference_size`` in the
options) have frames whose longer side is over it segmented downscaled to it the same way. Frames
over 8 MB travel through shorter queues, frames over 64 MB through none; a size H.264 cannot encode
(over 16384 pixels a side) gets a smaller video, said so, while the label PNGs keep the input's size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from evss.classes import LABEL_SPACES
from evss.errors import EvssError
from evss.media import BackgroundWriter, prefetch, resize_image, resize_labels
from evss.media.frames import is_glob
from evss.memory import H264_MAX_SIDE, format_bytes
from evss.pipeline.loop import SegmentedFrame, model_inputs, segment_frames
from evss.pipeline.options import OutputOptions, SegmentOptions
from evss.pipeline.outputs import LabelFolderSink, MapVideoSink, Outputs, VideoSink, map_sink, maps_as_video
from evss.pipeline.progress import Progress, StopOnSigint
from evss.pipeline.report import SegmentReport, report
from evss.pipeline.session import LoadedWeights, Notice, Run, describe, inference_note, open_run
from evss.visualize import render


def stderr_notice(msg: str) -> None:
    print(msg, file=sys.stderr)


def segment_video(source: str | Path, output: str | Path, options: SegmentOptions = SegmentOptions(),
                  outputs: OutputOptions = OutputOptions(), *, weights: LoadedWeights | None = None,
                  notice: Notice = stderr_notice, on_frame: Callable[[], None] | None = None) -> SegmentReport:
    """Segment ``source`` into the video ``output`` (and the label/map outputs ``outputs`` asks for).

    ``weights`` reuses a model from :func:`evss.pipeline.load` across calls (default: load
    ``options.weights``). Notes (audio dropped, downscaling, damaged frames) go to ``notice``.
    ``on_frame`` is called after each input frame (a caller's progress); an exception it raises
    stops the run and discards its outputs. Returns the run's :class:`SegmentReport`;
    ``report.interrupted`` says Ctrl-C stopped it early.
    """
    out = Path(output)
    if out.exists() and out.is_dir():
        raise EvssError(f"-o {out}: is a folder; give a video file name such as {out / 'segmented.mp4'}")
    if Path(source).exists() and out.resolve() == Path(source).resolve():
        raise EvssError(f"-o {out}: would overwrite the input")
    _check_output_folders(source, out, outputs)
    run = open_run(source, options, outputs=outputs, weights=weights, notice=notice)
    _size_notices(run, outputs, notice)
    for line in describe(run, options):
        notice(line)
    sinks, video = _open_sinks(run, out, outputs)
    progress = Progress()
    t0 = time.perf_counter()
    written, map_files = _encode(run, sinks, video, outputs, progress, quiet=not options.progress, on_frame=on_frame)
    return report(progress, run.reader, source, out, written=written, wall=time.perf_counter() - t0,
                  frames_announced=run.info.frames, map_files=map_files, outputs=outputs, notice=notice)


def _open_sinks(run: Run, out: Path, outputs: OutputOptions) -> tuple[Outputs, VideoSink]:
    """The video, label and map sinks, written under temporary names until the run completes."""
    sinks = Outputs()
    info, plan = run.info, run.plan
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        h, w = info.height, info.width  # the outputs' size: the input's (after max_size)
        video = sinks.add(VideoSink(out, fps=info.fps, height=plan.video[0], width=plan.video[1],
                                    time_base=info.time_base, pix_fmt=outputs.pix_fmt, crf=outputs.crf))
        if outputs.save_labels:
            palette = LABEL_SPACES[run.weights.config.label_space].palette
            sinks.add(LabelFolderSink(outputs.save_labels, palette=palette, size=(h, w)))
        if outputs.save_maps:
            sinks.add(map_sink(outputs.save_maps, outputs.maps, png_size=(h, w), video_size=plan.map_video,
                               fps=info.fps, time_base=info.time_base, pix_fmt=outputs.pix_fmt, crf=outputs.crf))
    except BaseException as exc:
        run.close()
        sinks.discard()
        if isinstance(exc, OSError):  # no permission, a file in the way, a full disk ...
            raise EvssError(f"cannot write the outputs: {exc}") from None
        raise
    return sinks, video


def _writer(run: Run, sinks: Outputs, video: VideoSink, outputs: OutputOptions):
    """Render and write one output frame (the video frame, its label PNG, its maps): runs in the
    encoder thread, so encoding overlaps with the model."""
    rh, rw = run.plan.video[0], run.plan.video[1] // outputs.layout_factor  # one half of a side-by-side video
    others = sinks.sinks[1:]  # the label and map sinks, in the order opened
    label_space = run.weights.config.label_space

    def write(item: SegmentedFrame) -> None:
        r = item.result
        # Labels come at the model's size: nearest-neighbour upsampling to the outputs' sizes.
        image = render(resize_image(item.image, rh, rw), resize_labels(r.labels, rh, rw), layout=outputs.layout,
                       label_space=label_space, alpha=outputs.alpha)  # (vh, vw, 3)
        video.write(item.index, item.pts, image)
        del image
        for sink in others:
            sink.write(item.index, item.pts, r.labels if isinstance(sink, LabelFolderSink) else r.maps)

    return write


def _encode(run: Run, sinks: Outputs, video: VideoSink, outputs: OutputOptions, progress: Progress, *,
            quiet: bool, on_frame: Callable[[], None] | None = None) -> tuple[int, list[Path]]:
    """Run the frame loop into the encoder; finish (or discard) the outputs. (frames written, map videos)."""
    encoder = BackgroundWriter(_writer(run, sinks, video, outputs), depth=run.plan.depth)
    # decoding runs ahead in a thread, at most plan.depth frames (none for huge frames)
    frames = prefetch(model_inputs(run.reader, run.plan.plan.height, run.plan.plan.width), depth=run.plan.depth)
    bar = tqdm(total=run.info.frames, unit="frame", desc="segment", disable=quiet, dynamic_ncols=True,
               file=sys.stderr)

    def tick() -> None:
        bar.update(1)
        bar.set_postfix(keyframes=progress.keyframes, refresh=False)
        if on_frame is not None:
            on_frame()

    try:
        with StopOnSigint() as stop:
            for item in segment_frames(frames, run.segmenter, mv=run.mv, progress=progress,
                                       time_base=run.info.time_base, tick=tick, stop=lambda: stop.requested):
                encoder.put(item)
    except KeyboardInterrupt:
        progress.interrupted = True
    except OSError as exc:  # a full disk, a folder removed under us ...: one line, outputs cleaned up below
        raise EvssError(f"stopped after {progress.frames + len(progress.bad)} frames: {exc}") from None
    finally:
        bar.close()
        frames.close()
        run.close()
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
            written = video.frames_written
            done = sinks.finish(keep and written > 0)
    maps = [s for s in sinks.sinks if isinstance(s, MapVideoSink)]
    return written, (done.get(maps[0], []) if maps else [])


def _size_notices(run: Run, outputs: OutputOptions, notice: Notice) -> None:
    """Say where the model, the video or the encoder work at another size than the outputs."""
    plan, (vh, vw) = run.plan.plan, run.plan.video
    h, w = run.info.height, run.info.width  # the outputs' size
    factor = outputs.layout_factor
    note = inference_note(run)  # frames over the weights' inference size
    if note:
        notice(note)
    if plan.downscaled:
        notice(f"note: {plan.out_width}x{plan.out_height} frames need about {format_bytes(plan.full_estimate)} "
               "with this model, over the "
               f"memory budget of {format_bytes(plan.budget.bytes)} ({plan.budget.source}); segmenting at "
               f"{plan.width}x{plan.height} and upsampling the labels to {w}x{h} (--max-memory raises the budget, "
               "--no-downscale stops instead)")
    if (vh, vw) != (h, w * factor):
        notice(f"note: H.264 cannot encode {w * factor}x{h} frames (libx264 takes at most {H264_MAX_SIDE} pixels a "
               f"side); the video is written at {vw}x{vh}"
               + (f", label PNGs keep {w}x{h}" if outputs.save_labels else "")
               + (", and so are the map videos" if outputs.save_maps and run.plan.map_video != (h, w) else ""))
    if outputs.pix_fmt == "yuv420p" and (vh % 2 or vw % 2):
        notice(f"note: {vw}x{vh} is odd and H.264 yuv420p needs even sizes: the video is padded by one "
               f"replicated pixel row/column (label PNGs keep {w}x{h}; --pix-fmt yuv444p keeps it exact)")


def _check_output_folders(source: str | Path, out: Path, outputs: OutputOptions) -> None:
    """Refuse output folders that would replace the input or another output.

    A label or map folder is replaced as a whole when the run completes, so it must not be (or
    hold) the input frames, the output video or the other folder.
    """
    source_path = Path(source)
    if is_glob(str(source)):
        source_path = source_path.parent  # a glob: its folder
    folders = [(flag, Path(value)) for flag, value in (("--save-labels", outputs.save_labels),
                                                       ("--save-maps", outputs.save_maps)) if value]
    folders = [(flag, path) for flag, path in folders if not (flag == "--save-maps" and maps_as_video(path))]
    for flag, folder in folders:
        real = folder.resolve()
        for what, other in (("the input", source_path), ("the output video", out)):
            other = other.resolve()
            if other == real or real in other.parents:
                raise EvssError(f"{flag} {folder}: the folder would hold {what} ({other}), which its "
                                "replacement at the end would remove; choose another folder")
    if len(folders) == 2 and folders[0][1].resolve() == folders[1][1].resolve():
        raise EvssError(f"--save-labels and --save-maps name the same folder {folders[0][1]}")
