"""The outputs of `evss segment` (the video, a label folder, distortion maps as PNGs or videos),
behind one protocol: ``write`` a frame, then ``commit`` (move to the final name) or ``discard``.

Every sink writes under a hidden partial name (:mod:`evss.media.atomic`), so a run that fails
leaves nothing that looks complete. :class:`Outputs` holds the sinks of one run and commits or
discards them together: one place for the clean-up, whichever way the run ends.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np

from evss.media.atomic import PartialFolder, numbered_pngs, partial_path
from evss.media.encode import VideoWriter, write_gray_png, write_label_png
from evss.media.frames import VIDEO_SUFFIXES
from evss.media.resize import resize_labels, resize_map
from evss.visualize import gray

MAP_NAMES = ("fine", "coarse", "edge")  # the distortion maps a segmenter returns (Eqs. 3-4)


class Sink(Protocol):
    def write(self, index: int, pts: int | None, data: Any) -> None:
        """Add frame ``index`` (shown at ``pts``), ``data`` being what this sink stores."""

    def commit(self) -> list[Path]:
        """Finish and move the output to its final name; returns the final paths (none if empty)."""

    def discard(self) -> None:
        """Finish and delete the partial output."""


class Outputs:
    """The sinks of one run: ``add`` each as it opens; ``finish(keep)`` commits or discards them all.

    If a commit fails, the sinks after it are discarded and the first error is raised once every
    sink was handled, so an error never leaves a partial output behind.
    """

    def __init__(self) -> None:
        self.sinks: list[Sink] = []

    def add(self, sink: Sink) -> Sink:
        self.sinks.append(sink)
        return sink

    def finish(self, keep: bool) -> dict[Sink, list[Path]]:
        done: dict[Sink, list[Path]] = {}
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                if keep and error is None:
                    done[sink] = sink.commit()
                else:
                    sink.discard()
            except BaseException as exc:  # noqa: BLE001 - raised below, once every sink is handled
                error = error or exc
        if error is not None:
            raise error
        return done

    def discard(self) -> None:
        self.finish(keep=False)


class VideoSink:
    """An H.264 video at ``path``, encoded under :func:`partial_path` and renamed by ``commit``."""

    def __init__(self, path: Path, *, fps: Fraction, height: int, width: int, time_base: Fraction | None = None,
                 pix_fmt: str = "yuv420p", crf: int = 20) -> None:
        self.final = Path(path)
        self.writer = VideoWriter(partial_path(self.final), fps, height, width, time_base=time_base,
                                  pix_fmt=pix_fmt, crf=crf)

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

    def write(self, index: int, pts: int | None, image: np.ndarray) -> None:
        self.writer.write(image, pts)  # (height, width, 3) uint8 RGB

    def commit(self) -> list[Path]:
        try:
            self.writer.close()  # flush the encoder: the file is playable after this
        except BaseException:
            self.discard()
            raise
        if not self.writer.frames_written:
            self.discard()
            return []
        os.replace(self.writer.path, self.final)
        return [self.final]

    def discard(self) -> None:
        try:
            self.writer.close()
        finally:
            Path(self.writer.path).unlink(missing_ok=True)


class _FolderSink:
    """A folder filled as ``.NAME.partial`` (see :class:`PartialFolder`)."""

    folder: PartialFolder

    def commit(self) -> list[Path]:
        return [self.folder.commit()]

    def discard(self) -> None:
        self.folder.discard()


class LabelFolderSink(_FolderSink):
    """One palette PNG of class ids per frame (000000.png, ...) at ``size`` (H, W), nearest neighbour."""

    def __init__(self, folder: Path, *, palette: Iterable[tuple[int, int, int]], size: tuple[int, int],
                 what: str = "--save-labels") -> None:
        self.palette, self.size = list(palette), size
        self.folder = PartialFolder(folder, owned=numbered_pngs, what=what)

    def write(self, index: int, pts: int | None, labels: np.ndarray) -> None:
        write_label_png(self.folder.path / f"{index:06d}.png", resize_labels(labels, *self.size), self.palette)


def _map_folder_entry(path: Path) -> bool:
    """``owned`` of a map folder: DIR/<map>/NNNNNN.png, as :class:`MapFolderSink` writes them."""
    return (path.name in MAP_NAMES and path.is_dir() and not path.is_symlink()
            and all(numbered_pngs(q) for q in path.iterdir()))


class MapFolderSink(_FolderSink):
    """Greyscale PNGs of the chosen maps, DIR/<map>/NNNNNN.png, at ``size`` (H, W)."""

    def __init__(self, folder: Path, names: tuple[str, ...], *, size: tuple[int, int],
                 what: str = "--save-maps") -> None:
        self.names, self.size = names, size
        self.folder = PartialFolder(folder, owned=_map_folder_entry, what=what)
        for name in names:
            (self.folder.path / name).mkdir()

    def write(self, index: int, pts: int | None, maps: dict[str, np.ndarray]) -> None:
        for name in self.names:  # each (h, w) float32 in [0, 1]
            write_gray_png(self.folder.path / name / f"{index:06d}.png", resize_map(maps[name], *self.size))


class MapVideoSink:
    """Grey videos of the chosen maps at ``size`` (H, W): the first at ``target``, the others at
    ``target`` with ``_<map>`` added to the name."""

    def __init__(self, target: Path, names: tuple[str, ...], *, size: tuple[int, int], fps: Fraction,
                 time_base: Fraction | None = None, pix_fmt: str = "yuv420p", crf: int = 20) -> None:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.videos: dict[str, VideoSink] = {}
        self._outputs = Outputs()
        try:
            for name in names:
                final = target if name == names[0] else target.with_name(f"{target.stem}_{name}{target.suffix}")
                self.videos[name] = self._outputs.add(VideoSink(final, fps=fps, height=size[0], width=size[1],
                                                                time_base=time_base, pix_fmt=pix_fmt, crf=crf))
        except BaseException:
            self._outputs.discard()
            raise

    def write(self, index: int, pts: int | None, maps: dict[str, np.ndarray]) -> None:
        for name, video in self.videos.items():
            video.write(index, pts, gray(resize_map(maps[name], *self.size)))

    def commit(self) -> list[Path]:
        return [p for paths in self._outputs.finish(keep=True).values() for p in paths]

    def discard(self) -> None:
        self._outputs.discard()


def maps_as_video(target: Path) -> bool:
    """Whether ``--save-maps TARGET`` names videos (a video suffix) rather than a folder."""
    return Path(target).suffix.lower() in VIDEO_SUFFIXES


def map_sink(target: Path, names: tuple[str, ...], *, png_size: tuple[int, int], video_size: tuple[int, int],
             fps: Fraction, time_base: Fraction | None = None, pix_fmt: str = "yuv420p",
             crf: int = 20) -> MapFolderSink | MapVideoSink:
    """The sink ``--save-maps TARGET`` asks for: videos of ``video_size`` or PNGs of ``png_size``."""
    if maps_as_video(target):
        return MapVideoSink(target, names, size=video_size, fps=fps, time_base=time_base, pix_fmt=pix_fmt, crf=crf)
    return MapFolderSink(target, names, size=png_size)
