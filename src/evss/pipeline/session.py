"""Opening one segmenting run: the input (once), the weights, the memory plan and the segmenter.

The input is opened first, so a bad input is reported before anything else is said or loaded.
Whether the reader must export the codec's motion vectors depends on the flow source, which by
default is the weights' own: it is read from the checkpoint's metadata before the input is
opened (cheap: the safetensors header), so the input is opened once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from evss import memory
from evss.backends import with_backend
from evss.checkpoint import DEFAULT_WEIGHTS, builtin_weights, load_weights, read_metadata, resolve_weights
from evss.config import EVSSConfig
from evss.device import resolve_device, resolve_dtype
from evss.errors import EvssError
from evss.flow_sources import MVFlow, make_flow_source
from evss.keyframes import AdaptiveKeyframes, FlowProbe
from evss.media import open_video
from evss.media.reader import VideoInfo, VideoReader
from evss.models.evss import EVSSNet
from evss.pipeline.options import OutputOptions, SegmentOptions
from evss.pipeline.outputs import maps_as_video
from evss.segmenter import SegmenterConfig, VideoSegmenter

Notice = Callable[[str], None]


@dataclass
class LoadedWeights:
    """A model loaded once, to segment any number of inputs with (:func:`load`)."""

    model: EVSSNet
    config: EVSSConfig
    described: str  # "built-in camvid", or the path given
    source: str | Path | None  # what was asked for (None: the default weights)


def load(weights: str | Path | None = None, *, notice: Notice = print) -> LoadedWeights:
    """Load a built-in name, an evss checkpoint or the authors' .pth (None: the default weights)."""
    model, config, described, _ = load_weights(weights, notice=notice)
    return LoadedWeights(model=model, config=config, described=described, source=weights)


def default_flow(weights: str | Path | LoadedWeights | None) -> str | None:
    """The flow source the weights' CoNet was trained with, read without loading the tensors;
    None where the metadata cannot say (a damaged file or the authors' .pth: reported when loaded)."""
    if isinstance(weights, LoadedWeights):
        return weights.config.flow_source
    try:
        if weights is None:
            if DEFAULT_WEIGHTS not in builtin_weights():
                return None
            weights = DEFAULT_WEIGHTS
        return json.loads(read_metadata(resolve_weights(weights))["config"]).get("flow_source")
    except (EvssError, OSError, KeyError, ValueError, TypeError):
        return None


@dataclass
class Run:
    """Everything one run reads from: the open input, the model and its segmenter, the plan."""

    reader: VideoReader
    info: VideoInfo
    weights: LoadedWeights
    segmenter: VideoSegmenter
    mv: MVFlow | None  # the motion-vector flow source, fed by the frame loop
    plan: memory.SegmentPlan
    mode: str
    flow_name: str
    device: torch.device
    inference_size: int | None = None  # the longest side the model segments at (None: the frames' own size)
    inference_from: str = ""  # where it was set: "these weights" or "--inference-size"

    def close(self) -> None:
        self.reader.close()


def open_run(source: str | Path, options: SegmentOptions, *, outputs: OutputOptions | None = None,
             weights: LoadedWeights | None = None, notice: Notice = print, return_maps: bool = False) -> Run:
    """Open ``source`` and make the segmenter for it; ``outputs`` (None: nothing but the results)
    sizes the memory plan; the segmenter returns distortion maps when ``outputs`` saves them or
    ``return_maps`` asks. The reader is closed again if anything after opening it fails."""
    memory.return_freed_memory()  # the measured peak follows the memory plan, whatever the thread timing
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    dtype = resolve_dtype(device, half=options.half)
    wanted = options.flow or default_flow(weights if weights is not None else options.weights)
    # The input first: a bad input is reported before anything else is said or loaded.
    reader = open_video(source, max_size=options.max_size, motion_vectors=wanted == "mv", fps=options.fps,
                        on_error=options.on_error)
    try:
        maps = return_maps or (outputs is not None and outputs.save_maps is not None)
        return _prepare(reader, source, options, outputs, weights, device, dtype, motion_vectors=wanted == "mv",
                        return_maps=maps, notice=notice)
    except BaseException:
        reader.close()
        raise


def _prepare(reader: VideoReader, source: str | Path, options: SegmentOptions, outputs: OutputOptions | None,
             weights: LoadedWeights | None, device: torch.device, dtype: torch.dtype, *, motion_vectors: bool,
             return_maps: bool, notice: Notice) -> Run:
    weights = weights or load(options.weights, notice=notice)
    with_backend(weights.model, options.backend, device=device, dtype=dtype, threads=options.threads,
                 precision=options.precision, notice=notice)
    flow_name = options.flow or weights.config.flow_source  # the weights' own flow source unless told otherwise
    mode = options.mode or weights.config.default_mode
    if outputs is not None and outputs.save_maps and mode == "warp_only":
        raise EvssError(f"--save-maps: mode warp_only propagates the keyframe's features without CoNet, so "
                        f"there are no distortion maps{'' if options.mode else ' (the default mode of these weights)'}"
                        "; pass --mode evss")
    if flow_name == "mv" and not motion_vectors:
        raise EvssError(f"--weights {weights.described}: these weights use the video's motion vectors, which their "
                        "metadata did not say before the input was opened; pass --flow mv")
    info = reader.info
    if info.has_audio:
        notice(f"note: {source} has an audio track; the output is video only")
    if (info.height, info.width) != ((info.source_width, info.source_height) if info.rotation in (90, 270)
                                     else (info.source_height, info.source_width)):
        notice(f"note: frames downscaled to {info.width}x{info.height} (--max-size {options.max_size}); "
               "outputs are at that size")
    inference, inference_from = inference_size(options, weights.config)
    plan = _plan(info, weights.config, options, outputs or OutputOptions(), device, dtype, source,
                 results_only=outputs is None, maps=return_maps, max_side=inference)
    flow_source = make_flow_source(flow_name, weights.model)
    mv = flow_source if isinstance(flow_source, MVFlow) else None
    policy = None
    if options.adaptive:
        probe = FlowProbe(flow_source) if options.residual < 1 else None
        policy = AdaptiveKeyframes(max_interval=options.max_interval, share=options.share,
                                   residual=options.residual if probe else None, probe=probe)
        flow_source = probe or flow_source
    seg = VideoSegmenter(weights.model, config=SegmenterConfig(keyframe_interval=options.keyframe_interval, mode=mode,
                                                               propagation=options.propagation),
                         device=device, flow=flow_source, keyframe_policy=policy,
                         return_maps=return_maps, dtype=dtype)
    return Run(reader=reader, info=info, weights=weights, segmenter=seg, mv=mv, plan=plan, mode=mode,
               flow_name=flow_name, device=device, inference_size=inference, inference_from=inference_from)


def inference_size(options: SegmentOptions, config: EVSSConfig) -> tuple[int | None, str]:
    """(the longest side the model segments at, who set it): ``options.inference_size`` when given
    (0: the frames' own size), else the weights' ``inference_size`` (None: the frames' own size)."""
    if options.inference_size is not None:
        return options.inference_size or None, "--inference-size"
    return config.inference_size, "these weights"


def inference_note(run: Run) -> str | None:
    """The note of a run whose frames are over the inference size: where they are segmented, and why."""
    if run.plan.inference is None:
        return None
    (ih, iw), (h, w) = run.plan.inference, (run.info.height, run.info.width)
    how = ("the inference size of these weights; --inference-size N or full overrides it" if
           run.inference_from == "these weights" else f"--inference-size {run.inference_size}")
    return (f"note: {w}x{h} frames are segmented at {iw}x{ih} (longer side {run.inference_size}: {how}) and "
            f"the labels upsampled to {w}x{h}")


def _plan(info: VideoInfo, config: EVSSConfig, options: SegmentOptions, outputs: OutputOptions,
          device: torch.device, dtype: torch.dtype, source: str | Path, *, results_only: bool,
          maps: bool, max_side: int | None = None) -> memory.SegmentPlan:
    """The memory plan: the outputs' buffers as written (a streaming run keeps the results instead)."""
    n_maps = len(outputs.maps) if outputs.save_maps else (3 if maps and results_only else 0)
    return memory.segment_plan(info.height, info.width, config=config, device=device,
                               dtype_bytes=torch.finfo(dtype).bits // 8, layout_factor=outputs.layout_factor,
                               maps=n_maps, map_videos=bool(outputs.save_maps) and maps_as_video(outputs.save_maps),
                               labels=bool(outputs.save_labels) or results_only, max_memory=options.max_memory,
                               allow_downscale=options.allow_downscale, what=str(source), max_side=max_side)


def describe(run: Run, options: SegmentOptions) -> list[str]:
    """The two lines a run announces: the input, then the model and its schedule."""
    schedule = (f"adaptive (max {options.max_interval}, share {options.share}, residual {options.residual})"
                if options.adaptive else f"keyframe interval {options.keyframe_interval}")
    w, config = run.weights, run.weights.config
    model = (f"  model {w.described} ({config.name}, {config.num_classes} classes), {schedule}, mode {run.mode}, "
             f"flow {run.flow_name}, " + (f"{options.propagation} propagation, " if run.mode != "per_frame" else "")
             + f"device {run.device}{' fp16' if options.half else ''}, threads {torch.get_num_threads()}"
             + (f", backend {options.backend}" if options.backend != "torch" else "")
             + (f" {options.precision}" if options.precision != "fp32" else ""))
    return [f"evss segment: {run.info.describe()}", model]
