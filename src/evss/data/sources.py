"""Sequence sources: ordered frame sequences, some frames labelled (the one clip protocol of evss).

A *sequence source* (:class:`SequenceSource`) gives frame ``t`` of sequence ``s`` as uint8 RGB and,
where it has one, its label; the training datasets, the teacher cache and the evaluation read all
data through it. ``t`` counts the frames a source stores, so an offset of 1 is "the next stored
frame" (for the CamVid val clip, stored at 15 fps, 2 video frames). Sources:

* on disk: :class:`FileSequenceSource` (files indexed as :class:`FrameSequence`; the base of the
  CamVid and Cityscapes readers), :class:`FolderSource` (folders of frames, no labels; listed by
  :func:`evss.media.list_images`, the lister ``evss segment`` uses) and :class:`ClipFolders`
  (one folder per clip, as ``evss synth`` writes them);
* in memory: :class:`MemoryClips` (frames and labels as numpy arrays: generated clips, decoded
  videos) and :class:`ClipSource` (reads the clips of any clip dataset on demand);
* :class:`ConcatSource`: several sources as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from evss.errors import DataError, EvssError
from evss.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_images, open_video


@runtime_checkable
class SequenceSource(Protocol):
    """Ordered frame sequences, some frames labelled. ``s`` indexes sequences, ``t`` frames in one."""

    def num_sequences(self) -> int: ...

    def sequence_length(self, s: int) -> int: ...

    def labelled_indices(self, s: int) -> Sequence[int]:
        """Frames of sequence ``s`` usable as training targets (every frame for unlabelled sources)."""
        ...

    def frame(self, s: int, t: int) -> np.ndarray:
        """uint8 RGB (H, W, 3)."""
        ...

    def label(self, s: int, t: int) -> np.ndarray | None:
        """(H, W) uint8 class ids with 255 = ignore, or None when frame ``t`` has no label."""
        ...


# ---- image files ---------------------------------------------------------------------------------

def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); DataError naming the file when it cannot.

    Greyscale, palette and RGBA files are converted (alpha is dropped); 16-bit files keep their
    high byte, as OpenCV and FFmpeg do (PIL alone would clip every value above 255 to white).
    """
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                ids = np.asarray(im)
                return np.repeat((np.clip(ids, 0, 65535) >> 8).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"missing image file: {path}") from None
    except Exception as e:  # noqa: BLE001 - a malformed file can fail deep inside any decoder plugin
        raise DataError(f"cannot read image {path}: {_reason(e)}") from None


def read_label_ids(path: Path) -> np.ndarray:
    """Read a single-channel label PNG as its raw ids (H, W); DataError naming the file otherwise."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DataError(f"label {path} has {im.mode} pixels; expected one channel of "
                                "class ids (a colour-coded label must be converted to ids first)")
            ids = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"missing label file: {path}") from None
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed file can fail deep inside any decoder plugin
        raise DataError(f"cannot read label {path}: {_reason(e)}") from None
    if ids.ndim != 2:
        raise DataError(f"label {path} has shape {ids.shape}; expected (H, W)")
    return ids


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())  # one line
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---- sources over files --------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameFile:
    """One stored frame: its number in the source video (from the file name) and its files."""

    number: int
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class FrameSequence:
    """Frames of one video sequence, ordered by frame number."""

    name: str
    frames: tuple[FrameFile, ...]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def labelled_indices(self) -> tuple[int, ...]:
        return tuple(t for t, f in enumerate(self.frames) if f.label is not None)


_TRAILING_DIGITS = re.compile(r"(\d+)$")


def trailing_number(stem: str) -> int | None:
    """The number at the end of a file stem (``0006R0_f00930`` -> 930, ``0001TP.avi_000029`` -> 29)."""
    m = _TRAILING_DIGITS.search(stem)
    return int(m.group(1)) if m else None


def split_runs(name: str, frames: Sequence[FrameFile], *, max_step: int | None) -> list[FrameSequence]:
    """Order ``frames`` by number and cut them where the number jumps by more than ``max_step``.

    Runs after the first are named ``"{name}@{first frame number}"``. ``max_step=None`` keeps one run.
    """
    ordered = sorted(frames, key=lambda f: f.number)
    for a, b in zip(ordered, ordered[1:]):
        if a.number == b.number:
            raise DataError(f"two files share frame number {a.number} in sequence {name}: "
                            f"{a.image} and {b.image}")
    runs: list[list[FrameFile]] = []
    for f in ordered:
        if runs and (max_step is None or f.number - runs[-1][-1].number <= max_step):
            runs[-1].append(f)
        else:
            runs.append([f])
    return [FrameSequence(name=name if i == 0 else f"{name}@{run[0].number}", frames=tuple(run))
            for i, run in enumerate(runs)]


class FileSequenceSource:
    """A :class:`SequenceSource` over image files indexed as :class:`FrameSequence` objects.

    Subclasses fill ``sequences`` and override :meth:`read_label` to check and map label ids.
    """

    sequences: tuple[FrameSequence, ...]

    def __init__(self, sequences: Iterable[FrameSequence]) -> None:
        self.sequences = tuple(sequences)

    def read_label(self, path: Path) -> np.ndarray:
        """(H, W) uint8 ids with 255 = ignore. The base class reads the ids as they are."""
        ids = read_label_ids(path)
        if ids.max(initial=0) > 255:
            raise DataError(f"label {path} has ids up to {int(ids.max())}; expected 0..255")
        return ids.astype(np.uint8)

    def num_sequences(self) -> int:
        return len(self.sequences)

    def sequence_length(self, s: int) -> int:
        return len(self.sequences[s])

    def labelled_indices(self, s: int) -> Sequence[int]:
        return self.sequences[s].labelled_indices

    def frame(self, s: int, t: int) -> np.ndarray:
        return read_rgb(self.sequences[s].frames[t].image)

    def label(self, s: int, t: int) -> np.ndarray | None:
        path = self.sequences[s].frames[t].label
        return None if path is None else self.read_label(path)


class FolderSource(FileSequenceSource):
    """Users' own footage: ``root/<sequence>/<frames>`` (or frames directly in ``root``), no labels.

    Frames are the files :func:`evss.media.list_images` lists (``IMAGE_SUFFIXES``), ordered by
    the number at the end of their file name (in natural name order when there is none). Every
    frame is a training target; its label is unknown (255) and only the pseudo-label losses apply.
    """

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"frame folder not found: {root}")
        dirs = [root] if list_images(root) else sorted(p for p in root.iterdir() if p.is_dir())
        sequences = []
        for d in dirs:
            images = list_images(d)
            if not images:
                continue
            numbers = [trailing_number(p.stem) for p in images]
            if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
                numbers = list(range(len(images)))  # images are in name order already
            frames = [FrameFile(number=n, image=p) for n, p in zip(numbers, images)]
            sequences.extend(split_runs(d.name, frames, max_step=None))
        if not sequences:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or its sub-folders")
        super().__init__(sequences)

    def labelled_indices(self, s: int) -> Sequence[int]:
        return range(len(self.sequences[s]))


class ClipFolders:
    """Clips stored one folder each, as ``evss synth`` writes them: ``<clip>/frames/tttttt.png`` and
    ``<clip>/labels/tttttt.png`` (``tttttt`` = frame index). Reads only the frames and labels asked for.

    ``clips`` lists (clip folder, frame count) (:mod:`evss.data.validate` checks those files);
    ``read_label`` reads and checks one label file.
    """

    def __init__(self, clips: Iterable[tuple[Path, int]], *, read_label: Callable[[Path], np.ndarray]) -> None:
        self.clips = [(Path(folder), int(n)) for folder, n in clips]
        self.read_label = read_label

    def num_sequences(self) -> int:
        return len(self.clips)

    def sequence_length(self, s: int) -> int:
        return self.clips[s][1]

    def labelled_indices(self, s: int) -> range:
        return range(self.clips[s][1])

    def frame(self, s: int, t: int) -> np.ndarray:
        return read_rgb(self.clips[s][0] / "frames" / f"{t:06d}.png")

    def label(self, s: int, t: int) -> np.ndarray:
        return self.read_label(self.clips[s][0] / "labels" / f"{t:06d}.png")


# ---- sources in memory ---------------------------------------------------------------------------

def clip_arrays(s: int, clip: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(frames (T, H, W, 3) uint8, labels (T, H, W) or None) of a clip given as ``(frames, labels,
    ...)``, a mapping or an object with ``frames`` and ``labels``; DataError naming clip ``s``."""
    if isinstance(clip, Mapping):
        frames, labels = clip["frames"], clip.get("labels")
    elif isinstance(clip, (tuple, list)):
        frames, labels = clip[0], clip[1] if len(clip) > 1 else None
    else:
        frames, labels = clip.frames, getattr(clip, "labels", None)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DataError(f"clip {s}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != frames.shape[:3]:
            raise DataError(f"clip {s}: labels {labels.shape} do not match frames {frames.shape[:3]}")
    return frames, labels


class _ClipArrays:
    """A source whose clip ``s`` is a pair of arrays (:meth:`arrays`); every frame is a target."""

    def arrays(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def sequence_length(self, s: int) -> int:
        return self.arrays(s)[0].shape[0]

    def labelled_indices(self, s: int) -> Sequence[int]:
        return range(self.sequence_length(s))

    def frame(self, s: int, t: int) -> np.ndarray:
        return self.arrays(s)[0][t]

    def label(self, s: int, t: int) -> np.ndarray | None:
        labels = self.arrays(s)[1]
        return None if labels is None else labels[t].astype(np.uint8)


class MemoryClips(_ClipArrays):
    """Clips held in memory as numpy arrays, so random access never regenerates or decodes them.

    ``clips``: (frames (T, H, W, 3) uint8, labels (T, H, W) uint8 with 255 = ignore, or None), or
    anything :func:`clip_arrays` reads.
    """

    def __init__(self, clips: Iterable[Any]) -> None:
        self._clips = [clip_arrays(s, clip) for s, clip in enumerate(clips)]

    @classmethod
    def from_dataset(cls, dataset: Any) -> "MemoryClips":
        """Every clip of a clip dataset (``len(dataset)``, ``dataset.clip(i)``), read once; flows are dropped."""
        return cls(clip_arrays(i, dataset.clip(i)) for i in range(len(dataset)))

    def num_sequences(self) -> int:
        return len(self._clips)

    def arrays(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self._clips[s]


class ClipSource(_ClipArrays):
    """A clip dataset (``len(dataset)``, ``dataset.clip(i)``) read on demand as a :class:`SequenceSource`.

    The last clip read is kept (one sample reads three of its arrays); :meth:`clip` returns it
    whole, with whatever else the dataset gives (a SynthDrive clip's flow and occlusion).
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._last: tuple[int, Any, tuple[np.ndarray, np.ndarray | None]] | None = None
        self._lengths: dict[int, int] = {}

    def clip(self, s: int) -> Any:
        self.arrays(s)
        return self._last[1]

    def arrays(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._last is None or self._last[0] != s:
            clip = self.dataset.clip(s)
            self._last = (s, clip, clip_arrays(s, clip))
            self._lengths[s] = self._last[2][0].shape[0]
        return self._last[2]

    def num_sequences(self) -> int:
        return len(self.dataset)

    def sequence_length(self, s: int) -> int:
        if s not in self._lengths:
            self.arrays(s)
        return self._lengths[s]


def decode_videos(paths: Iterable[Path], *, max_size: int | None) -> MemoryClips:
    """Video files decoded into memory, one unlabelled clip each (a training pair needs 2 frames)."""
    clips = []
    for path in paths:
        with open_video(path, max_size=max_size) as video:
            frames = np.stack([f.image for f in video])  # (T, H, W, 3) uint8
        if len(frames) < 2:
            raise EvssError(f"{path}: {len(frames)} frame(s); a training pair needs at least 2")
        clips.append((frames, None))
    return MemoryClips(clips)


def footage(root: Path, *, max_size: int | None = None) -> MemoryClips | FolderSource:
    """Unlabelled footage: a video file, a folder of video files, or folders of frames."""
    root = Path(root)
    videos = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return decode_videos(videos, max_size=max_size) if videos else FolderSource(root)


# ---- several sources as one ----------------------------------------------------------------------

class ConcatSource:
    """Several sequence sources as one: their sequences one after the other."""

    def __init__(self, sources: list[Any]) -> None:
        self.parts = [(source, s) for source in sources for s in range(source.num_sequences())]

    def num_sequences(self) -> int:
        return len(self.parts)

    def sequence_length(self, s: int) -> int:
        source, i = self.parts[s]
        return source.sequence_length(i)

    def labelled_indices(self, s: int) -> Any:
        source, i = self.parts[s]
        return source.labelled_indices(i)

    def frame(self, s: int, t: int) -> np.ndarray:
        source, i = self.parts[s]
        return source.frame(i, t)

    def label(self, s: int, t: int) -> np.ndarray | None:
        source, i = self.parts[s]
        return source.label(i, t)


def frame_name(source: Any, s: int, t: int) -> str:
    """A frame's name (for held-out patterns): its file stem, or ``<sequence index>_<frame index>``."""
    if isinstance(source, ConcatSource):
        inner, i = source.parts[s]
        return frame_name(inner, i, t)
    sequences = getattr(source, "sequences", None)
    if sequences is not None:
        return Path(sequences[s].frames[t].image).stem
    return f"{s}_{t}"
