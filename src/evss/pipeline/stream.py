"""`stream_video`: segment a video and hand each frame's result to Python, writing nothing.

    import evss
    for frame in evss.stream_video("drive.mp4", evss.SegmentOptions(mode="evss")):
        frame.labels      # (H, W) uint8 class ids at the frame's size
        frame.maps        # {"fine": (H, W) float32, ...} with return_maps=True
        frame.is_keyframe

The same reading, memory plan, keyframe schedule and damaged-frame handling as
:func:`evss.segment_video` (one result per input frame, in display order); frames are decoded
ahead in a thread. Breaking out of the loop closes the input.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from evss.media import prefetch, resize_labels
from evss.memory import format_bytes
from evss.pipeline.loop import model_inputs, segment_frames
from evss.pipeline.options import SegmentOptions
from evss.pipeline.progress import Progress
from evss.pipeline.session import LoadedWeights, Notice, inference_note, open_run


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _at_size(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float map at (height, width), bilinear (the model may segment a downscaled copy)."""
    return m if m.shape[:2] == (height, width) else cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass
class StreamedFrame:
    """One segmented frame of :func:`stream_video`."""

    index: int  # 0-based position in the input
    seconds: float | None  # presentation time from the first frame (None: unknown)
    image: np.ndarray  # (H, W, 3) uint8 RGB as decoded (after max_size)
    labels: np.ndarray  # (H, W) uint8 class ids at the frame's size
    maps: dict[str, np.ndarray]  # coarse/edge/fine (H, W) float32 in [0, 1] (return_maps=True, EVSS mode)
    is_keyframe: bool
    model_seconds: float  # wall time of this frame's networks and fusion
    repeated: bool  # an undecodable frame showing the last good segmentation


def stream_video(source: str | Path, options: SegmentOptions = SegmentOptions(), *, return_maps: bool = False,
                 weights: LoadedWeights | None = None, notice: Notice = _stderr) -> Iterator[StreamedFrame]:
    """Yield a :class:`StreamedFrame` per input frame of ``source`` (a video file, a folder of
    frames or a glob). ``weights`` reuses a model from :func:`evss.pipeline.load`."""
    run = open_run(source, options, outputs=None, weights=weights, notice=notice, return_maps=return_maps)
    plan = run.plan.plan
    note = inference_note(run)  # frames over the weights' inference size
    if note:
        notice(note)
    if plan.downscaled:
        notice(f"note: {plan.out_width}x{plan.out_height} frames are over the memory budget of "
               f"{format_bytes(plan.budget.bytes)} ({plan.budget.source}) with this model; segmenting at "
               f"{plan.width}x{plan.height}, the labels upsampled to {run.info.width}x{run.info.height}")
    progress = Progress()
    frames = prefetch(model_inputs(run.reader, run.plan.plan.height, run.plan.plan.width), depth=run.plan.depth)
    bar = tqdm(total=run.info.frames, unit="frame", desc="segment", disable=not options.progress,
               dynamic_ncols=True, file=sys.stderr)
    time_base = run.info.time_base
    h, w = run.info.height, run.info.width
    try:
        for item in segment_frames(frames, run.segmenter, mv=run.mv, progress=progress, time_base=time_base,
                                   tick=lambda: bar.update(1)):
            r = item.result
            yield StreamedFrame(index=item.index, image=item.image, is_keyframe=r.is_keyframe,
                                seconds=None if item.pts is None or time_base is None else float(item.pts * time_base),
                                labels=resize_labels(r.labels, h, w),
                                maps={k: _at_size(m, h, w) for k, m in (r.maps or {}).items()},
                                model_seconds=r.seconds, repeated=item.repeated)
    finally:
        bar.close()
        frames.close()
        run.close()
