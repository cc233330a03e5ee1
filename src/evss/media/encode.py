"""Video and images out: H.264 through PyAV, label and map PNGs, and a background writer thread.

:class:`VideoWriter` encodes H.264 into mp4 (or any container FFmpeg writes). H.264 in yuv420p,
the pixel format every player reads, needs even sizes: odd frames are padded by one replicated
row/column; ``pix_fmt="yuv444p"`` keeps odd sizes exactly (fewer players read it).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np
from PIL import Image

from evss.errors import EvssError
from evss.media.frames import VIDEO_SUFFIXES
from evss.media.reader import error_reason
from evss.media.resize import gray_u8
from evss.memory import H264_MAX_SIDE, h264_fits, h264_size


@dataclass
class VideoWriter:
    """Encode RGB frames into a video file (H.264 in mp4 by default).

    ``time_base`` and per-frame ``pts`` keep the input's timing (variable frame rate included);
    without them frames are spaced 1/fps apart. Frames are padded to even sizes for yuv420p.
    """

    path: Path
    fps: Fraction
    height: int
    width: int
    time_base: Fraction | None = None
    pix_fmt: str = "yuv420p"
    codec: str = "libx264"
    crf: int = 20
    format: str | None = None  # container format; default from the file suffix, mp4 without one
    options: dict[str, str] | None = None  # extra encoder options, e.g. {"x264-params": "bframes=0"}
    frames_written: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        fmt = self.format or (None if self.path.suffix.lower() in VIDEO_SUFFIXES else "mp4")
        sub = self.pix_fmt == "yuv420p"
        self.coded_height = self.height + (self.height % 2 if sub else 0)
        self.coded_width = self.width + (self.width % 2 if sub else 0)
        if self.codec == "libx264" and not h264_fits(self.coded_height, self.coded_width):
            h, w = h264_size(self.height, self.width)
            raise EvssError(f"{self.path}: H.264 cannot encode {self.width}x{self.height} frames (libx264 takes at "
                            f"most {H264_MAX_SIDE} pixels a side and about 268 Mpx); {w}x{h} would fit")
        try:
            self.container = av.open(str(self.path), mode="w", format=fmt)
        except av.error.FFmpegError as exc:
            raise EvssError(f"{self.path}: cannot write a video here ({error_reason(exc)})") from None
        rate = Fraction(self.fps).limit_denominator(1_000_000)
        stream = self.container.add_stream(self.codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.coded_width, self.coded_height, self.pix_fmt
        self.tb = Fraction(self.time_base) if self.time_base else 1 / rate
        stream.time_base = self.tb
        stream.codec_context.time_base = self.tb
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast", **(self.options or {})}
        elif self.options:
            stream.options = dict(self.options)
        self.stream = stream
        self._last_pts: int | None = None
        self._step = max(1, round(1 / (rate * self.tb)))  # one frame period in time_base units

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Append one (height, width, 3) uint8 RGB frame shown at ``pts`` (time_base units)."""
        if image.shape != (self.height, self.width, 3):
            raise EvssError(f"{self.path}: frame {self.frames_written} is {image.shape}, the video is "
                            f"({self.height}, {self.width}, 3)")
        if (self.coded_height, self.coded_width) != (self.height, self.width):
            image = np.pad(image, ((0, self.coded_height - self.height), (0, self.coded_width - self.width), (0, 0)),
                           mode="edge")
        # Presentation times must rise strictly; missing or repeated ones continue the frame period.
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, self.tb
        self._last_pts = pts
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):  # a full disk, no permission ...: handled as such by the callers
                raise
            raise EvssError(f"{self.path}: the {self.codec} encoder refused frame {self.frames_written} of "
                            f"{self.width}x{self.height} ({error_reason(exc)})") from None
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (playable afterwards)."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWriter:
    """Run ``write(item)`` for each ``put(item)`` in one background thread, in order, at most
    ``depth`` items behind: encoding overlaps with the model while memory stays bounded.

    An exception raised by ``write`` is re-raised in the caller by the next ``put`` or by
    ``close``; after it, the remaining items are dropped. ``close`` waits for the queue to drain.
    ``depth=0`` writes in the caller's thread inside ``put`` (huge frames: nothing queued).
    """

    def __init__(self, write, depth: int = 4) -> None:
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._error: BaseException | None = None
        self._done = object()
        self._thread = threading.Thread(target=self._run, name="evss-encode", daemon=True)
        self._inline = depth <= 0
        if not self._inline:
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is self._done:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item) -> None:
        self._raise()
        if self._inline:
            self._write(item)
            return
        self._q.put(item)

    def close(self) -> None:
        """Wait until every item is written; re-raise the first error of the writer."""
        if self._thread.is_alive():
            self._q.put(self._done)
            self._thread.join()
        self._raise()


def write_label_png(path: Path, labels: np.ndarray, palette: Iterable[tuple[int, int, int]]) -> None:
    """(H, W) uint8 class ids -> an 8-bit palette PNG: pixel values are the ids, colours the palette."""
    img = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8, copy=False)), mode="P")
    flat = [c for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path, optimize=False, compress_level=1)


def write_gray_png(path: Path, m: np.ndarray) -> None:
    """(H, W) float map in [0, 1] (or already quantised: uint8 0-255) -> 8-bit greyscale PNG."""
    Image.fromarray(np.ascontiguousarray(gray_u8(m)), mode="L").save(path, compress_level=1)


def write_video_frames(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], *, fps: float | Fraction = 25,
                       **kwargs) -> Path:
    """Encode RGB frames (T, H, W, 3) uint8 into ``path``: for tests and small clips."""
    frames = iter(frames)
    first = next(frames)
    w = VideoWriter(Path(path), Fraction(fps).limit_denominator(1_000_000), first.shape[0], first.shape[1], **kwargs)
    with w:
        w.write(first)
        for f in frames:
            w.write(f)
    return Path(path)

