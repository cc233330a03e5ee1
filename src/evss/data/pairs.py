"""Training samples from sequence sources (paper Sec. III-E and IV-A).

:class:`PairDataset` turns a :class:`~evss.data.sources.SequenceSource` into the EVSS stage's
samples: for every labelled target frame ``t`` it draws a reference (key) frame ``k = t - d`` with
``d`` from the pair offsets (paper: ``d = i - k`` in [-4, 5]), applies the same flip and crop to
both frames, the label and its edge target, and returns tensors. :class:`LabelledFrames` gives the
backbone stage's samples: every labelled frame alone, with the same flip and crop (and optionally
a random rescale and colour jitter).

The sources themselves live in :mod:`evss.data.sources`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from evss.classes import IGNORE_INDEX

# Moved to evss.data.sources; re-exported until tests/reliability/test_fuzz.py imports them from there.
from evss.data.sources import FileSequenceSource, FrameFile, FrameSequence, SequenceSource, frame_name  # noqa: F401
from evss.data.transforms import choose_offset, color_jitter, edge_target, joint_flip_crop, pair_offsets, random_scale
from evss.errors import DataError
from evss.tensors import image_to_tensor, label_to_tensor

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

    def list_targets(self, source: SequenceSource, *, exclude: Sequence[str] = (), what: str = "train on") -> None:
        """``targets``: every labelled frame of ``source`` except those whose name matches ``exclude``
        (the held-out frames); none left is a DataError."""
        self.targets = tuple((s, t) for s, t in labelled_targets(source)
                             if not exclude or not matches(frame_name(source, s, t), exclude))
        if not self.targets:
            raise DataError(f"the source has no labelled frames to {what}"
                            + (f" outside the held-out patterns {list(exclude)}" if exclude else ""))


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
        self.list_targets(source)

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


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a frame name matches any of the (fnmatch) ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class LabelledFrames(TargetFrames):
    """Per-frame samples for the backbone stage: every labelled frame of a sequence source.

    Items: ``image`` (3, h, w) float in [0, 1] and ``label`` (h, w) int64, 255 = ignore, after the
    same random flip + crop as :class:`PairDataset` (drawn from ``(seed, epoch, index)``), preceded
    by a random rescale (``scale_range``) and followed by a colour jitter (``color_jitter``) when
    asked for. Frames whose :func:`~evss.data.sources.frame_name` matches ``exclude`` are left out
    (the held-out frames).
    """

    def __init__(self, source: SequenceSource, *, crop_size: tuple[int, int] | None, flip: bool, seed: int,
                 scale_range: tuple[float, float] | None = None, color_jitter: float = 0.0,
                 exclude: Sequence[str] = ()) -> None:
        self.source, self.crop_size, self.flip, self.seed = source, crop_size, flip, seed
        self.scale_range, self.color_jitter = scale_range, color_jitter
        self.list_targets(source, exclude=exclude, what="train the backbone on")

    def class_counts(self, num_classes: int) -> torch.Tensor:
        """Pixel count per class over the training labels (ignored pixels and ids >= C left out), (C,)."""
        counts = np.zeros(num_classes, np.int64)
        for s, t in self.targets:
            label = np.asarray(self.source.label(s, t)).ravel()
            counts += np.bincount(label[label < num_classes], minlength=num_classes)[:num_classes]
        return torch.from_numpy(counts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, t = self.targets[index]
        image = self.source.frame(s, t)  # (H, W, 3) uint8
        label = self.source.label(s, t)
        if label is None:
            label = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.scale_range is not None:
            image, label = random_scale(rng, image, label, scale_range=self.scale_range)
        (image,), (label,), _ = joint_flip_crop(rng, images=[image], labels=[label], crop_size=self.crop_size,
                                                flip_prob=0.5 if self.flip else 0.0)
        if self.color_jitter:
            image = color_jitter(rng, image, strength=self.color_jitter)
        return {"image": image_to_tensor(image), "label": label_to_tensor(label)}  # (3, h, w), (h, w)
