"""What every video reader yields: :class:`VideoInfo`, :class:`Frame`, and the :class:`VideoReader` base.

Readers (:mod:`evss.media.folder`, :mod:`evss.media.video_file`) are opened by
:func:`evss.media.decode.open_video`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

DEFAULT_FPS = Fraction(25)  # for folders of frames, which carry no rate
ON_ERROR = ("stop", "skip")  # what an undecodable frame does: raise, or a placeholder Frame and go on


@dataclass(frozen=True)
class VideoInfo:
    source: str  # what was opened: a path, a folder or a glob pattern
    kind: str  # "video" | "frames"
    height: int  # of the frames as yielded (upright, after max_size)
    width: int
    source_height: int  # as stored (before rotation and max_size)
    source_width: int
    fps: Fraction  # the average frame rate
    frames: int | None  # frame count the container announces (an estimate for some files), None if unknown
    time_base: Fraction  # unit of Frame.pts
    rotation: int  # degrees counter-clockwise applied to make frames upright (0, 90, 180, 270)
    has_audio: bool = False
    codec: str = ""

    def describe(self) -> str:
        n = f"{self.frames} frames" if self.frames else "unknown frame count"
        size = f"{self.width}x{self.height}"
        if (self.source_width, self.source_height) != (self.width, self.height):
            size += f" (stored {self.source_width}x{self.source_height})"
        rot = f", rotated {self.rotation} deg" if self.rotation else ""
        codec = f" {self.codec}" if self.codec else ""
        return f"{self.source}:{codec} {size}, {float(self.fps):.3g} fps, {n}{rot}"


@dataclass
class Frame:
    index: int  # 0-based position in display order
    image: np.ndarray | None  # (H, W, 3) uint8 RGB, upright; None for an undecodable frame (on_error="skip")
    pts: int | None = None  # presentation time in VideoInfo.time_base units (None: unknown)
    motion: np.ndarray | None = None  # (2, ceil(H/4), ceil(W/4)) float32 backward flow to frame index-1
    motion_kind: str = "none"  # "vectors" | "previous" (no vectors: the last field reused) | "none"
    pict_type: str = ""  # "I" | "P" | "B" for decoded video
    error: str = ""  # why the frame could not be decoded (image is None), e.g. "Invalid data found ..."


@dataclass(frozen=True)
class Undecoded:
    """A frame the decoder could not give: where it should have been (``pts``) and why."""

    pts: int | None
    reason: str


class VideoReader:
    """Base: a context manager and an iterator of :class:`Frame`; ``info`` describes the stream.

    ``truncated`` is set (a sentence) once iteration finds the stream shorter than announced.
    """

    info: VideoInfo
    truncated: str | None = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


def error_reason(exc: Exception) -> str:
    """The short reason of an FFmpeg/OS error, for messages."""
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__
