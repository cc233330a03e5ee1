"""Video in: video files through PyAV (FFmpeg), folders of frames and globs, streamed.

Reading streams one frame at a time, so memory does not grow with video length:

    with open_video("drive.mp4", max_size=1024) as video:
        print(video.info)
        for frame in video:           # Frame(index, image (H, W, 3) uint8 RGB, pts, motion)
            ...

Frames come out upright (the container's display rotation is applied), in display order, with
their presentation time stamps, so a writer can keep a variable frame rate as it was.

With ``motion_vectors=True`` the decoder exports the codec's block motion vectors
(``flags2=+export_mvs``) and each frame carries ``motion``: the backward flow of this frame to the
previous one, (2, ceil(H/4), ceil(W/4)) in pixels of the 1/4 grid, in the convention of
:mod:`evss.models.warp`, ready for :class:`evss.flow_sources.MVFlow`. See
:func:`evss.media.motion_vectors.vectors_to_flow` for how vectors become a dense field.
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from evss.errors import EvssError
from evss.media.folder import FrameFolderReader
from evss.media.frames import IMAGE_SUFFIXES, frame_files
from evss.media.reader import DEFAULT_FPS, ON_ERROR, Frame, VideoInfo, VideoReader
from evss.media.video_file import PyAVReader

__all__ = ["Frame", "FrameFolderReader", "PyAVReader", "VideoInfo", "VideoReader", "open_video", "prefetch",
           "read_video_frames"]


def open_video(source: str | Path, *, max_size: int | None = None, motion_vectors: bool = False,
               fps: float | Fraction | None = None, on_error: str = "stop") -> VideoReader:
    """Open a video file, a folder of frames or a glob of frames for streaming.

    ``max_size`` downscales frames so their longer side fits; ``fps`` sets the rate of a frame
    folder (default 25) and is ignored for video files, which carry their own timing.

    ``on_error`` decides what an undecodable frame in the middle does: ``"stop"`` raises an
    EvssError naming the frame; ``"skip"`` yields it as a :class:`Frame` whose ``image`` is None
    and whose ``error`` says why, and keeps decoding (the frame count is kept). For codecs with
    B-frames the placeholder sits where the decoder reported the error, which can be a few frames
    from its display position. A stream that ends early (a truncated file) is not an error:
    ``reader.truncated`` then says what was announced and what came.
    """
    if on_error not in ON_ERROR:
        raise EvssError(f"on_error {on_error!r} is not one of {ON_ERROR}")
    source = str(source)
    files = frame_files(source)
    if files is not None:
        if motion_vectors:
            raise EvssError(f"{source}: motion vectors come from a compressed video; a folder of frames has none "
                            "(use --flow learned or dis)")
        return FrameFolderReader(source, files, max_size=max_size, fps=Fraction(fps) if fps else DEFAULT_FPS,
                                 on_error=on_error)
    p = Path(source)
    if not p.exists():
        raise EvssError(f"{source}: no such file, folder or matching glob")
    if p.is_dir():
        raise EvssError(f"{source}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
    if p.is_file() and p.stat().st_size == 0:
        raise EvssError(f"{source}: the file is empty (0 bytes)")
    return PyAVReader(source, max_size=max_size, motion_vectors=motion_vectors, on_error=on_error)


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Produce ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Decoding overlaps with the model this way while memory stays bounded. Exceptions in the
    producer are re-raised in the consumer; closing the generator stops the producer.
    ``depth=0`` produces in the consumer's thread, one item at a time (huge frames).
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((None, done))
        except BaseException as exc:  # handed to the consumer
            q.put((exc, None))

    thread = threading.Thread(target=produce, name="evss-decode", daemon=True)
    thread.start()
    try:
        while True:
            exc, item = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def read_video_frames(path: str | Path) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole (short) video into (T, H, W, 3) uint8: for tests and small clips."""
    with open_video(path) as v:
        frames = [f.image for f in v]
        return np.stack(frames), v.info
