"""What the loop reads: the run's data source and dataset, and the order its samples are drawn in.

Determinism and resuming: the sample drawn at every position of the run is a function of
``(seed, step)`` only (:class:`StepPositions` / :class:`ByPosition`), and the augmentations are
drawn from ``(seed, epoch, index)``; so ``--resume`` continues the exact sample stream, in any
number of DataLoader workers. With several processes each rank takes its own slice of the global
sample stream (so a run resumes with the same number of processes).

A sample whose file cannot be read travels to the loop as data (:class:`ItemError`), so the loop
reports the product's own one-line error naming the file, with or without workers.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

import evss.errors
from evss.classes import LABEL_SPACES
from evss.config import EVSSConfig
from evss.data import synthdrive
from evss.data._paths import safe_join
from evss.data.camvid import CamVid, CamVidVideo
from evss.data.cityscapes import CityscapesSequences
from evss.data.flowpairs import FlowPairsConfig, FlowPairsDataset
from evss.data.pairs import LabelledFrames, PairDataset
from evss.data.sources import ClipFolders, ConcatSource, MemoryClips, footage
from evss.data.still_motion import StillMotionClips, StillMotionConfig
from evss.data.transforms import pair_offsets
from evss.data.validate import BadItems, Replaced
from evss.errors import ConfigError, EvssError
from evss.train.config import TrainConfig
from evss.train.teacher_cache import CachedPairDataset, TeacherCache

# ---- the data of a run -------------------------------------------------------------------------


def synthdrive_folder(root: Path) -> ClipFolders:
    """A folder written by ``evss synth`` as a source: the clips of its manifest."""
    root = Path(root)
    # read_manifest refuses clip names that leave root; safe_join keeps that promise here too
    clips = [(safe_join(root, c["name"], source=root / "manifest.json"), int(c["frames"]))
             for c in synthdrive.read_manifest(root)["clips"]]
    return ClipFolders(clips, read_label=synthdrive.read_label)


def build_source(config: TrainConfig) -> Any:
    """The sequence source of ``config.data`` and ``config.extra_data`` (see
    :class:`evss.data.sources.SequenceSource`)."""
    if not config.extra_data:
        return _one_source(config)
    sources = [_one_source(config)]
    for spec in config.extra_data:
        kind, _, root = spec.partition(":")
        sources.append(_one_source(dataclasses.replace(config, data=kind, data_root=root or None, extra_data=())))
    return ConcatSource(sources)


def _one_source(config: TrainConfig) -> Any:
    root = Path(config.data_root) if config.data_root else None
    if config.data == "synthdrive":
        if root is not None:
            return synthdrive_folder(root)
        h, w = config.synth_size
        generated = synthdrive.SynthDriveDataset(root=None, clips=config.synth_clips, seed=config.seed,
                                                 config=synthdrive.SynthDriveConfig(height=h, width=w,
                                                                                    frames=config.synth_frames))
        return MemoryClips.from_dataset(generated)
    if root is None:
        raise ConfigError(f"data {config.data!r} needs data_root (--data-root)")
    if config.data == "camvid-stills":  # 1 Hz labels: pairs come from simulated drives through each still
        return StillMotionClips(CamVid(root, config.data_split), seed=config.seed,
                                config=StillMotionConfig(frames=config.still_frames, zoom=config.still_zoom))
    if config.data == "camvid":
        if (root / "video_image").is_dir():  # the authors' decoded-video layout
            return CamVidVideo(root)
        return CamVid(root, config.data_split)
    if config.data == "cityscapes":
        return CityscapesSequences(root, config.data_split)
    return footage(root, max_size=config.video_max_size)  # videos: video files or folders of frames


def build_dataset(config: TrainConfig, model_config: EVSSConfig, cache: TeacherCache | None = None) -> Any:
    """The stage's map-style dataset (before :class:`ByPosition`)."""
    if config.stage == "flow":
        h, w = config.crop_size
        return FlowPairsDataset(pairs=config.flow_pairs, seed=config.seed, config=FlowPairsConfig(height=h, width=w))
    source = build_source(config)
    if config.stage == "backbone":
        return LabelledFrames(source, crop_size=config.crop_size, flip=config.flip, seed=config.seed,
                              scale_range=config.scale_range, color_jitter=config.color_jitter,
                              exclude=config.holdout)
    thin = LABEL_SPACES[model_config.label_space].thin
    offsets = pair_offsets(official=config.offsets == "official")
    if cache is not None:
        return CachedPairDataset(source, cache, thin_classes=thin, crop_size=config.crop_size, flip=config.flip,
                                 seed=config.seed, offsets=offsets, use_flow=config.flow_source != "learned")
    return PairDataset(source, thin_classes=thin, crop_size=config.crop_size, flip=config.flip,
                       seed=config.seed, offsets=offsets)


# ---- the order of the samples --------------------------------------------------------------------

class StepPositions:
    """Sampler of global sample positions: step ``s``, rank ``r`` takes ``s*B*W + r*B + j``.

    Iterates steps ``[start, stop)``. With ``fixed=True`` every step repeats the positions of step
    0 (a fixed batch). Pair it with :class:`ByPosition`, which maps a position to a sample.
    """

    def __init__(self, *, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 fixed: bool = False) -> None:
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.rank, self.world_size, self.fixed = rank, world_size, fixed

    def positions(self, step: int) -> list[int]:
        s = 0 if self.fixed else step
        base = (s * self.world_size + self.rank) * self.batch_size
        return list(range(base, base + self.batch_size))

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            yield from self.positions(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch_size


class ByPosition:
    """Dataset view: global position ``p`` -> item ``perm(seed, epoch)[p % N]`` of epoch ``p // N``.

    Each epoch is a fresh seeded permutation of the ``N`` items; the wrapped dataset's ``set_epoch``
    (when it has one) is set to the position's epoch before the item is read, so augmentations
    drawn from ``(seed, epoch, index)`` follow the position too, in any worker.
    """

    def __init__(self, dataset: Any, *, seed: int) -> None:
        self.dataset, self.seed = dataset, seed
        self.n = len(dataset)
        if self.n == 0:
            raise EvssError("the training dataset is empty")
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n

    def index(self, position: int) -> tuple[int, int]:
        epoch, i = divmod(int(position), self.n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n))
        return epoch, int(self._perm[1][i])

    def __getitem__(self, position: int) -> Any:
        epoch, index = self.index(position)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        try:
            return self.dataset[index]
        except EvssError as exc:  # carried to the loop as data: see ItemError
            errors = [ItemError(type(exc).__name__, str(exc))]
        # A bad sample is skipped: the next readable items of this epoch's order take its place (the
        # batch keeps its size), and its error still reaches the loop, which counts it.
        i = int(position) % self.n
        for k in range(1, min(self.n, 4)):
            try:
                return Replaced(item=self.dataset[int(self._perm[1][(i + k) % self.n])], errors=tuple(errors))
            except EvssError as exc:
                errors.append(ItemError(type(exc).__name__, str(exc)))
        return errors[0] if len(errors) == 1 else Replaced(item=None, errors=tuple(errors))


@dataclass(frozen=True)
class ItemError:
    """A sample that could not be read (a bad file), carried through the DataLoader as data.

    A DataLoader worker re-raises an item's exception in the main process with the worker's whole
    traceback in its message; carried as data, the loop raises the product's own one-line error
    (naming the file) in every case, with or without workers.
    """

    kind: str  # the EvssError subclass name, e.g. "DataError"
    message: str

    def exception(self) -> EvssError:
        cls = getattr(evss.errors, self.kind, EvssError)
        return (cls if isinstance(cls, type) and issubclass(cls, EvssError) else EvssError)(self.message)


def collate(items: list[Any]) -> Any:
    """``default_collate``, except that unreadable samples (:class:`ItemError`, or replaced by
    :class:`ByPosition`) make the batch a ``BadItems`` holding their errors and the readable rest."""
    errors: list[ItemError] = []
    good = []
    for item in items:
        if isinstance(item, Replaced):  # a bad sample and the readable one that took its place
            errors.extend(item.errors)
            item = item.item
        if isinstance(item, ItemError):
            errors.append(item)
        elif item is not None:
            good.append(item)
    if not errors:
        return default_collate(good)
    return BadItems(errors=tuple(errors), batch=default_collate(good) if good else None)


def seed_worker(worker_id: int) -> None:
    """Workers seed numpy and random from torch's per-worker seed (which follows the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(config: TrainConfig, dataset: Any, *, start: int, stop: int, rank: int = 0,
                     world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """Batches for steps ``[start, stop)`` of this rank; the order is a function of (seed, step)."""
    sampler = StepPositions(start=start, stop=stop, batch_size=config.batch_size, rank=rank,
                            world_size=world_size, fixed=config.overfit_batch)
    return DataLoader(ByPosition(dataset, seed=config.seed), batch_size=config.batch_size, sampler=sampler,
                      num_workers=config.workers, worker_init_fn=seed_worker, pin_memory=pin_memory,
                      collate_fn=collate,  # an unreadable sample arrives as an ItemError, see fit()
                      # its own generator, so that the loader never draws from the global torch RNG
                      generator=torch.Generator().manual_seed(config.seed), drop_last=False)
