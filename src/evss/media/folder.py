"""A folder (or a glob) of image files read as a video, one frame at a time."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image

from evss.errors import EvssError
from evss.media.reader import Frame, VideoInfo, VideoReader
from evss.media.resize import output_size, resize_image


class FrameFolderReader(VideoReader):
    """The image files of a folder or a glob (see :func:`evss.media.frames.frame_files`) as a video."""

    def __init__(self, source: str, files: list[Path], *, max_size: int | None, fps: Fraction,
                 on_error: str = "stop") -> None:
        self.files = files
        self.on_error = on_error
        first = None
        for path in files:  # with on_error="skip" the size comes from the first readable frame
            try:
                first = self._read(path)
                break
            except EvssError:
                if on_error == "stop":
                    raise
        if first is None:
            raise EvssError(f"{source}: none of its {len(files)} image files is readable")
        h0, w0 = first.shape[:2]
        h, w = output_size(h0, w0, max_size)
        self.info = VideoInfo(source=source, kind="frames", height=h, width=w, source_height=h0, source_width=w0,
                              fps=fps, frames=len(files), time_base=1 / fps, rotation=0, codec="images")

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        """uint8 RGB (H, W, 3): greyscale and palette files are expanded, alpha dropped, 16 bits cut to 8."""
        try:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise EvssError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None
        if img is None:
            raise EvssError(f"{path}: not a readable image{_too_large_hint(path)}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second full-size copy

    def __iter__(self) -> Iterator[Frame]:
        info = self.info
        for i, path in enumerate(self.files):
            try:
                img = self._read(path)
            except EvssError as exc:
                if self.on_error == "stop":
                    raise EvssError(f"{exc} (frame {i} of {info.source}; --on-error skip keeps going)") from None
                yield Frame(index=i, image=None, pts=i, error=str(exc))
                continue
            if img.shape[:2] != (info.source_height, info.source_width):
                raise EvssError(f"{path}: frame {i} is {img.shape[1]}x{img.shape[0]}, the sequence started at "
                                f"{info.source_width}x{info.source_height} ({self.files[0].name})")
            yield Frame(index=i, image=resize_image(img, info.height, info.width), pts=i)


OPENCV_MAX_PIXELS = 1 << 30  # cv2.imread refuses larger images (CV_IO_MAX_IMAGE_PIXELS)


def _too_large_hint(path: Path) -> str:
    """Why OpenCV refused a readable image: its header's size is over OpenCV's pixel limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        return f" (over {OPENCV_MAX_PIXELS // 10 ** 6} Mpx, more than OpenCV decodes; split or downscale it first)"
    except Exception:  # noqa: BLE001 - any failure here means the header is unreadable too
        return ""
    if w * h > OPENCV_MAX_PIXELS:
        return (f" (a {w}x{h} image, {w * h // 10 ** 6} Mpx, over the {OPENCV_MAX_PIXELS // 10 ** 6} Mpx OpenCV "
                "decodes; split or downscale it first)")
    return ""

