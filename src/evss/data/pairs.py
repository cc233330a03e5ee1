"""Training pairs (I_k, I_i) from labelled video (paper Sec. III-E and IV-A).

A *sequence source* is anything that exposes ordered frame sequences, some of whose frames carry a
label (the :class:`SequenceSource` protocol). :class:`PairDataset` turns a source into training
samples: for every labelled target frame ``t`` it draws a reference (key) frame ``k = t - d`` with
``d`` from the pair offsets (paper: ``d = i - k`` in [-4, 5]), applies the same flip and crop to
both frames, the label and its edge target, and returns tensors.

Sources provided here: :class:`FileSequenceSource` (the base of the CamVid and Cityscapes readers),
:class:`FolderSource` (users' own footage, no labels) and :class:`SynthDriveSource` (an adapter for
anything with ``clip(i)`` and ``len()``). Frame indices ``t`` count the frames a source stores, so
an offset of 1 is "the next stored frame" (for the CamVid val clip, stored at 15 fps, 2 video frames).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from evss.classes import IGNORE_INDEX
from evss.data.transforms import (
    choose_offset,
    edge_target,
    image_to_tensor,
    joint_flip_crop,
    label_to_tensor,
    pair_offsets,
)
from evss.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


# --------------------------------------------------------------------------------------------
# The protocol and the file index it is usually built on
# --------------------------------------------------------------------------------------------

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

    def index_of(self, number: int) -> int:
        """Position of the frame numbered ``number``; DataError when it is not stored."""
        for t, f in enumerate(self.frames):
            if f.number == number:
                return t
        raise DataError(f"sequence {self.name} has no frame numbered {number}")


_TRAILING_DIGITS = re.compile(r"(\d+)$")


def trailing_number(stem: str) -> int | None:
    """The number at the end of a file stem (``0006R0_f00930`` -> 930, ``0001TP.avi_000029`` -> 29)."""
    m = _TRAILING_DIGITS.search(stem)
    return int(m.group(1)) if m else None


def split_runs(name: str, frames: Sequence[FrameFile], *,
               max_step: int | None) -> list[FrameSequence]:
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


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside ``directory``, sorted by name."""
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


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

    # SequenceSource -----------------------------------------------------------------------
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
    """Users' own footage: ``root/<sequence>/*.png|jpg`` (or images directly in ``root``), no labels.

    Frames are ordered by the number at the end of their file name (by name when there is none).
    Every frame is a training target; its label is unknown (255) and only the pseudo-label losses
    apply to it.
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
                numbers = list(range(len(images)))  # images are sorted by name already
            frames = [FrameFile(number=n, image=p) for n, p in zip(numbers, images)]
            sequences.extend(split_runs(d.name, frames, max_step=None))
        if not sequences:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or its "
                            "sub-folders")
        super().__init__(sequences)

    def labelled_indices(self, s: int) -> Sequence[int]:
        return range(len(self.sequences[s]))


class SynthDriveSource:
    """Adapter from a clip dataset (``len(dataset)``, ``dataset.clip(i)``) to :class:`SequenceSource`.

    ``clip(i)`` may return ``(frames, labels, ...)``, a mapping or an object with ``frames`` and
    ``labels``: frames (T, H, W, 3) uint8, labels (T, H, W) uint8 (255 = ignore) or None. Every
    frame is a target. The last clip is cached because one sample reads three of its arrays.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._cache: tuple[int, np.ndarray, np.ndarray | None] | None = None
        self._lengths: dict[int, int] = {}

    def _clip(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._cache is None or self._cache[0] != s:
            clip = self.dataset.clip(s)
            if isinstance(clip, Mapping):
                frames, labels = clip["frames"], clip.get("labels")
            elif isinstance(clip, (tuple, list)):
                frames, labels = clip[0], clip[1] if len(clip) > 1 else None
            else:
                frames, labels = clip.frames, getattr(clip, "labels", None)
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise DataError(f"clip {s}: frames must be uint8 (T, H, W, 3), got {frames.dtype} "
                                f"{frames.shape}")
            if labels is not None:
                labels = np.asarray(labels)
                if labels.shape != frames.shape[:3]:
                    raise DataError(f"clip {s}: labels {labels.shape} do not match frames "
                                    f"{frames.shape[:3]}")
            self._cache = (s, frames, labels)
            self._lengths[s] = frames.shape[0]
        return self._cache[1], self._cache[2]

    def num_sequences(self) -> int:
        return len(self.dataset)

    def sequence_length(self, s: int) -> int:
        if s not in self._lengths:
            self._clip(s)
        return self._lengths[s]

    def labelled_indices(self, s: int) -> Sequence[int]:
        return range(self.sequence_length(s))

    def frame(self, s: int, t: int) -> np.ndarray:
        return self._clip(s)[0][t]

    def label(self, s: int, t: int) -> np.ndarray | None:
        labels = self._clip(s)[1]
        return None if labels is None else labels[t].astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The training-pair dataset
# --------------------------------------------------------------------------------------------

class TargetFrames(Dataset):
    """Base of the per-target training datasets: ``targets`` lists (sequence, frame) pairs, and the
    epoch (set by the loader) seeds each item's augmentation together with ``(seed, index)``."""

    targets: tuple[tuple[int, int], ...] = ()
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.targets)


def labelled_targets(source: SequenceSource) -> tuple[tuple[int, int], ...]:
    """Every labelled frame of ``source`` as (sequence, frame)."""
    return tuple((s, int(t)) for s in range(source.num_sequences()) for t in source.labelled_indices(s))


class PairDataset(TargetFrames):
    """Training pairs (I_k, I_i) around every labelled frame I_i of a :class:`SequenceSource`.

    Each item is a dict:

    * ``key_image`` (3, H, W) float in [0, 1]: the reference/key frame I_k, ``k = i - offset``;
    * ``image`` (3, H, W) float: the labelled target frame I_i;
    * ``label`` (H, W) int64: ground truth of I_i, 255 where unknown (void, padding, unlabelled);
    * ``edge`` (H, W) int64: edge & thin-object target (``transforms.edge_target``), 255 = ignore;
    * ``offset`` int: ``i - k`` actually used.

    ``offsets`` are the candidate ``i - k`` (default: the paper's [-4, 5] without 0; the authors'
    set is ``transforms.pair_offsets(official=True)``); near the ends of a sequence only the offsets
    that keep ``k`` inside it are drawn from. The random draws depend on ``(seed, epoch, index)``
    only, so they do not depend on the number of DataLoader workers; call :meth:`set_epoch` before
    each epoch (with ``persistent_workers=True`` the workers keep the epoch they were started with).
    """

    def __init__(self, source: SequenceSource, *, thin_classes: Sequence[int],
                 crop_size: tuple[int, int] | None = None, flip: bool = True, seed: int = 0,
                 offsets: Sequence[int] | None = None, edge_dilation: int = 1,
                 edge_void_value: int = IGNORE_INDEX) -> None:
        self.source = source
        self.thin_classes = tuple(thin_classes)
        self.crop_size = crop_size
        self.flip = flip
        self.seed = seed
        self.offsets = tuple(offsets) if offsets is not None else pair_offsets()
        if not self.offsets:
            raise ValueError("offsets must not be empty")
        self.edge_dilation = edge_dilation
        self.edge_void_value = edge_void_value
        self.targets = labelled_targets(source)
        if not self.targets:
            raise DataError("the source has no labelled frames to train on")

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, t = self.targets[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        d = choose_offset(rng, self.offsets, target=t, length=self.source.sequence_length(s))
        key = self.source.frame(s, t - d)      # (H, W, 3) uint8, I_k
        image = self.source.frame(s, t)        # (H, W, 3) uint8, I_i
        if key.shape != image.shape:
            raise DataError(f"sequence {s}: frame {t - d} is {key.shape[0]}x{key.shape[1]} but "
                            f"frame {t} is {image.shape[0]}x{image.shape[1]}")
        label = self.source.label(s, t)
        if label is None:
            label = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        elif label.shape != image.shape[:2]:
            raise DataError(f"sequence {s}: the label of frame {t} is {label.shape[0]}x"
                            f"{label.shape[1]} but the frame is {image.shape[0]}x{image.shape[1]}")
        # Edge target from the full label (as the authors do), then augmented with it.
        edge = edge_target(label, thin_classes=self.thin_classes, dilation=self.edge_dilation,
                           void_value=self.edge_void_value)  # (H, W) uint8
        (key, image), (label, edge), _ = joint_flip_crop(
            rng, images=[key, image], labels=[label, edge], crop_size=self.crop_size,
            flip_prob=0.5 if self.flip else 0.0)
        return {
            "key_image": image_to_tensor(key),     # (3, h, w)
            "image": image_to_tensor(image),       # (3, h, w)
            "label": label_to_tensor(label),       # (h, w)
            "edge": label_to_tensor(edge),         # (h, w)
            "offset": d,
        }

