"""Which files are frames, and in which order: the one frame-folder lister of evss.

Only the standard library (and :mod:`evss.errors`) is imported, so datasets and the video reader
can share it without pulling each other in.
"""

from __future__ import annotations

import glob as globlib
import re
from pathlib import Path

from evss.errors import EvssError

# every still-image format a frame folder or a dataset may hold (OpenCV and PIL read them all)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png`` (digits compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(path).name)]


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(directory: Path) -> list[Path]:
    """The image files directly inside ``directory``, in natural order (empty if there are none)."""
    return sorted((p for p in Path(directory).iterdir() if is_image(p) and p.is_file()), key=natural_key)


def is_glob(source: str) -> bool:
    """Whether ``source`` is a glob pattern rather than an existing path."""
    return any(ch in source for ch in "*?[") and not Path(source).exists()


def frame_files(source: str | Path) -> list[Path] | None:
    """The image files of a folder or a glob, in natural order; None if ``source`` is neither.

    A folder or a pattern without image files is an error that names it.
    """
    source = str(source)
    p = Path(source)
    if p.is_dir():
        files = list_images(p)
        if not files:
            raise EvssError(f"{source}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if is_glob(source):
        files = sorted((Path(f) for f in globlib.glob(source) if is_image(Path(f))), key=natural_key)
        if not files:
            raise EvssError(f"{source}: the pattern matches no image files")
        return files
    return None
