"""The frame loop: decoded frames in, one segmented output frame per input frame out.

An undecodable frame (``on_error="skip"``) repeats the last good output and restarts the
keyframe chain; undecodable frames before the first good one take its output, so the output
always keeps the input's frame count and timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from evss.flow_sources import MVFlow
from evss.media import resize_flow, resize_image
from evss.pipeline.progress import Progress
from evss.segmenter import FrameResult, VideoSegmenter


@dataclass
class SegmentedFrame:
    """One output frame of a run, in display order."""

    index: int  # 0-based position in the input
    pts: int | None  # presentation time from the first frame, in ``time_base`` units (None: unknown)
    image: np.ndarray  # (H, W, 3) uint8 RGB: the frame as decoded (after max_size)
    result: FrameResult  # the segmenter's output: labels (and maps) at the size the model segmented at
    repeated: bool = False  # an undecodable frame showing the last good segmentation


def model_inputs(frames: Any, height: int, width: int) -> Iterator:
    """(frame, the image the model segments): the frame's image, or a copy downscaled to (height, width)."""
    for frame in frames:
        if frame.image is None:
            yield frame, None
            continue
        if frame.motion is not None and frame.image.shape[:2] != (height, width):
            frame.motion = resize_flow(frame.motion, math.ceil(height / 4), math.ceil(width / 4))
        yield frame, resize_image(frame.image, height, width)


def segment_frames(frames: Iterator, seg: VideoSegmenter, *, mv: MVFlow | None, progress: Progress,
                   time_base: Any, tick: Callable[[], None] = lambda: None,
                   stop: Callable[[], bool] = lambda: False) -> Iterator[SegmentedFrame]:
    """Segment each decoded ``(frame, model image)`` and yield the output frames.

    ``tick`` is called once per input frame (a progress bar); ``stop`` is asked before and after
    each frame (a Ctrl-C request): when it says so the loop ends with ``progress.interrupted``. A
    loop that runs to the end sets ``progress.ok``.
    """
    first_pts = None
    last = None  # (frame image, result) of the last good frame: what a bad frame repeats
    waiting: list[tuple[int, int | None]] = []  # bad frames before the first good one
    for frame, model_image in frames:
        if stop():
            progress.interrupted = True
            return
        if frame.pts is not None and first_pts is None:
            first_pts = frame.pts
        pts = None if frame.pts is None else frame.pts - first_pts
        if frame.image is None:  # on_error="skip": keep the frame count with the last good output
            progress.add_bad(frame.index, None if pts is None else float(pts * time_base), frame.error)
            if last is None:
                waiting.append((frame.index, pts))
            else:
                yield SegmentedFrame(frame.index, pts, *last, repeated=True)
            seg.reset()  # the next good frame starts a fresh keyframe chain
            tick()
            continue
        if mv is not None:
            mv.feed(frame.motion)
            progress.no_vectors += frame.index > 0 and frame.motion_kind != "vectors"
        r = seg.step(model_image)
        for index, wait_pts in waiting:  # undecodable leading frames take the first good output
            yield SegmentedFrame(index, wait_pts, frame.image, r, repeated=True)
        waiting.clear()
        yield SegmentedFrame(frame.index, pts, frame.image, r)
        last = (frame.image, r)
        progress.add(r.is_keyframe, r.redone, r.seconds)
        tick()
        if stop():
            progress.interrupted = True
            return
    progress.ok = True
