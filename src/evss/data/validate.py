"""Cheap checks of a training run's data before step one, so a long run does not stop at hour three.

:func:`check_files` reads every file's header (format, size, channels; PNG chunk checksums, so a
truncated or overwritten PNG is caught without decoding it; a JPEG must end with its end-of-image
marker), checks that a label has its frame's size and that a sequence keeps one frame size, and
decodes a seeded sample of frames and labels through the dataset's own readers (label ids
included). Every bad file is reported at once.

:func:`check_training_memory` refuses, before step one, a crop (times the batch) or a random
rescale whose estimated memory is over the budget (see :mod:`evss.memory`).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from evss.data.sources import read_rgb
from evss.data.synthdrive import read_label as read_synthdrive_label
from evss.errors import ConfigError, DataError, EvssError
from evss.memory import BASELINE, DEFAULT_CAP, Budget, available_memory, format_bytes, model_pixel_bytes, weights_bytes

LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")
SHOWN = 10  # bad files named in the error message; all of them are printed


@dataclass
class DataCheck:
    files: int = 0  # files whose headers were read
    decoded: int = 0  # frames and labels decoded in the sample
    bad: list[str] = field(default_factory=list)  # "path: why", one per bad file
    max_size: tuple[int, int] | None = None  # the largest frame (H, W)

    def add_size(self, h: int, w: int) -> None:
        if self.max_size is None or h * w > self.max_size[0] * self.max_size[1]:
            self.max_size = (h, w)


Sequence = tuple[str, list[tuple[Path, Path | None]], Callable[[Path], np.ndarray] | None]


def source_files(source: Any) -> Iterator[Sequence]:
    """(sequence name, [(frame file, label file or None)], label reader) of a file-backed source;
    nothing for sources held in memory (generated SynthDrive, decoded videos)."""
    sequences = getattr(source, "sequences", None)
    if sequences is not None and all(hasattr(s, "frames") for s in sequences):  # FileSequenceSource
        for seq in sequences:
            yield seq.name, [(f.image, f.label) for f in seq.frames], getattr(source, "read_label", None)
        return
    clips = getattr(source, "clips", None)
    if clips and all(isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], Path) for c in clips):
        for folder, n in clips:  # a folder written by `evss synth`
            yield folder.name, [(folder / "frames" / f"{t:06d}.png", folder / "labels" / f"{t:06d}.png")
                                for t in range(int(n))], read_synthdrive_label


def header(path: Path, what: str = "image") -> tuple[int, int, str]:
    """(height, width, PIL mode) of an image file, its bytes checked as far as is cheap; DataError
    naming the file otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # large images: PIL's decompression-bomb warning
            with Image.open(path) as im:
                w, h, mode, fmt = im.width, im.height, im.mode, im.format
                if fmt == "PNG":
                    im.verify()  # every chunk's CRC, up to IEND: truncation and overwritten bytes
    except FileNotFoundError:
        raise DataError(f"missing {what} file: {path}") from None
    except Exception as exc:  # noqa: BLE001 - a malformed file can fail deep inside any decoder plugin
        text = " ".join(str(exc).split())
        why = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise DataError(f"{path}: damaged or not an image ({why})") from None
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 1024))
            if b"\xff\xd9" not in f.read():
                raise DataError(f"{path}: a JPEG without its end-of-image marker (truncated)")
    if w < 1 or h < 1:
        raise DataError(f"{path}: an empty {w}x{h} image")
    return h, w, mode


def check_files(source: Any, *, sample: int = 64, seed: int = 0,
                read_frame: Callable[[Path], np.ndarray] | None = None,
                only: set[tuple[int, int]] | None = None) -> DataCheck:
    """Check every file of ``source`` (see the module docstring), or only the frames ``only``
    ((sequence, frame) positions); ``sample`` frames (and their labels) are decoded in full,
    chosen with ``seed``."""
    read_frame = read_frame or read_rgb
    check = DataCheck()
    pairs: list[tuple[Path, Path | None, Callable | None]] = []
    for s, (name, files, read_label) in enumerate(source_files(source)):
        first: tuple[int, int, Path] | None = None
        for t, (image, label) in enumerate(files):
            if only is not None and (s, t) not in only:
                continue
            check.files += 1
            try:
                h, w, _ = header(image)
            except DataError as exc:
                check.bad.append(str(exc))
                continue
            check.add_size(h, w)
            if first is None:
                first = (h, w, image)
            elif (h, w) != first[:2]:
                check.bad.append(f"{image}: a {w}x{h} frame in sequence {name}, which started at "
                                 f"{first[1]}x{first[0]} ({first[2].name})")
                continue
            if label is not None:
                check.files += 1
                try:
                    lh, lw, mode = header(label, "label")
                except DataError as exc:
                    check.bad.append(str(exc))
                    continue
                if mode not in LABEL_MODES:
                    check.bad.append(f"{label}: a label with {mode} pixels; expected one channel of class ids")
                    continue
                if (lh, lw) != (h, w):
                    check.bad.append(f"{label}: a {lw}x{lh} label for the {w}x{h} frame {image.name}")
                    continue
            pairs.append((image, label, read_label))
    if pairs and sample > 0:
        rng = np.random.default_rng([seed, 4441])
        for i in sorted(rng.choice(len(pairs), size=min(sample, len(pairs)), replace=False)):
            image, label, read_label = pairs[int(i)]
            for path, read in ((image, read_frame), (label, read_label)):
                if path is None or read is None:
                    continue
                try:
                    read(path)
                    check.decoded += 1
                except EvssError as exc:
                    check.bad.append(str(exc))
    return check


def report_bad_files(check: DataCheck, *, where: str, print_line: Callable[[str], None]) -> None:
    """Print every bad file, then raise one DataError that counts them and names the first few."""
    if not check.bad:
        return
    for line in check.bad:
        print_line(f"  bad file: {line}")
    shown = "; ".join(check.bad[:SHOWN]) + (f"; ... ({len(check.bad) - SHOWN} more, listed above)"
                                            if len(check.bad) > SHOWN else "")
    raise DataError(f"{where}: {len(check.bad)} bad file{'s' if len(check.bad) > 1 else ''} of {check.files} checked "
                    f"(headers, sizes, {check.decoded} files decoded in full): {shown}. Fix or remove "
                    f"{'them' if len(check.bad) > 1 else 'it'} before training; nothing was trained")


# ---- files that fail mid-run -------------------------------------------------------------------

@dataclass(frozen=True)
class BadItems:
    """A batch that lost unreadable samples (``evss.train.ItemError``): ``errors`` says which,
    ``batch`` collates the rest (None when no sample was readable)."""

    errors: tuple[Any, ...]
    batch: Any


@dataclass(frozen=True)
class Replaced:
    """A sample standing in for unreadable ones (``errors``: their ``evss.train.ItemError``s)."""

    item: Any  # None when no replacement was readable either
    errors: tuple[Any, ...]


def skip_bad_items(bad: BadItems, seen: dict[str, int], *, step: int, max_bad_files: int, distributed: bool,
                   warn: Callable[..., None] | None, checkpoint: tuple[Path, int]) -> Any:
    """Count a step's unreadable samples (``seen``: message, which names the file -> times skipped),
    warn once per file, and stop with the error's own class once more than ``max_bad_files``
    files failed, naming the checkpoint that is kept; returns the readable rest of the batch
    (None when there is none)."""
    for error in bad.errors:
        new = error.message not in seen
        seen[error.message] = seen.get(error.message, 0) + 1
        if new and warn is not None:
            warn(f"evss train: step {step}: skipped an unreadable sample ({error.message}; the next readable one "
                 f"took its place); {len(seen)} bad "
                 f"file{'s' if len(seen) > 1 else ''} so far (--max-bad-files {max_bad_files})", file=sys.stderr)
    if len(seen) > max_bad_files:
        path, saved = checkpoint
        kept = f"the last checkpoint is {path} (step {saved})" if saved else "before the first checkpoint"
        names = "; ".join(list(seen)[:5]) + (f"; ... ({len(seen) - 5} more)" if len(seen) > 5 else "")
        raise type(bad.errors[-1].exception())(
            f"{len(seen)} file{'s' if len(seen) > 1 else ''} failed during training, more than --max-bad-files "
            f"{max_bad_files} (the last at step {step}): {names}; stopped, {kept}")
    if bad.batch is None and distributed:  # every rank must take part in each step's collectives
        raise EvssError(f"step {step}: no sample of this process's batch was readable ({bad.errors[0].message}); "
                        "stopped (with several processes a step cannot be skipped on one of them)")
    return bad.batch


# ---- memory ------------------------------------------------------------------------------------

# Training step bytes per pixel of one sample (forward activations kept for backward, gradients):
# measured peak RSS slopes, batch 1, one thread: CSRNet width 1/2 950-1200, SwiftNet-Lite0
# 2200-2450, FlowNet width 1/2 250-470.
TRAIN_CSRNET_PX = 2400.0  # per unit of width
TRAIN_SWIFTNET_PX = 2500.0
TRAIN_FLOWNET_PX = 950.0  # per unit of width
TRAIN_CONET_PX = 1000.0  # per unit of width (not measured: taken as FlowNet's)


def train_pixel_bytes(config: Any, stage: str) -> float:
    """Peak bytes per pixel of one training sample of ``stage`` for an EVSSConfig."""
    bb = config.backbone
    if stage == "backbone":
        return TRAIN_SWIFTNET_PX if bb.arch == "swiftnet" else TRAIN_CSRNET_PX * bb.width
    flow = TRAIN_FLOWNET_PX * config.flow.width
    if stage == "flow":
        return 2 * flow  # a pair
    # evss: FlowNet and CoNet trained on a pair, the frozen backbone run on both frames
    return 2 * (flow + TRAIN_CONET_PX * config.correction.width) + 2 * model_pixel_bytes(config)


def check_training_memory(*, stage: str, config: Any, crop: tuple[int, int] | None, frame: tuple[int, int] | None,
                          batch: int, scale_max: float | None, workers: int, budget: Any) -> int:
    """The estimated peak of a training step; ConfigError naming the crop, the rescale and the
    budget when over it (a crop or a rescale that cannot fit is refused before step one)."""
    h, w = crop if crop is not None else (frame or (0, 0))
    model = batch * h * w * train_pixel_bytes(config, stage)
    weights = 4 * weights_bytes(config)  # weights, gradients, Adam's two moments
    rescale = 0
    if scale_max and frame is not None:  # image + label at the largest scale, and the resize's source and output
        rescale = int(2 * 4 * scale_max ** 2 * frame[0] * frame[1]) * max(1, workers)
    total = int(BASELINE + weights + model + rescale)
    if total <= budget.bytes:
        return total
    what = f"crop {h}x{w} at batch {batch}" if crop is not None else f"full {h}x{w} frames at batch {batch}"
    parts = f"the {stage} step on a {what}: {format_bytes(model)}"
    if rescale:
        parts += (f"; --scale-range up to {scale_max:g}x of the {frame[1]}x{frame[0]} frames: "
                  f"{format_bytes(rescale)}")
    raise ConfigError(f"training needs about {format_bytes(total)} ({parts}), over the memory budget of "
                      f"{format_bytes(budget.bytes)} ({budget.source}); pass a smaller --crop or --batch-size"
                      + (" or --scale-range" if rescale else "") + ", or train on a machine with more memory")


def training_budget() -> Any:
    """Training's budget: 90% of the memory available now (a run that would surely be killed is refused)."""
    avail = available_memory()
    if avail is None:
        return Budget(8 * DEFAULT_CAP, "a default, the available memory is unknown")
    return Budget(int(0.9 * avail), f"90% of the available {format_bytes(avail)}")


def check_training_data(config: Any, dataset: Any, model_config: Any, *, device_type: str,
                        print_line: Callable[[str], None], sample: int = 64) -> DataCheck:
    """Before step one: every file of the dataset (headers, sizes, a decoded sample) and the
    memory of the crop and rescale (CPU runs). Raises DataError listing every bad file, or
    ConfigError for a crop or rescale over the memory budget."""
    source = getattr(dataset, "source", None)
    targets = getattr(dataset, "targets", None)  # the backbone stage reads only its labelled frames
    only = {(int(s), int(t)) for s, t in targets} if targets is not None else None
    check = check_files(source, sample=sample, seed=config.seed, only=only) if source is not None else DataCheck()
    report_bad_files(check, where=f"{config.data} data in {config.data_root}", print_line=print_line)
    frame = check.max_size or _memory_frame_size(source, config)
    if device_type in ("cpu", "mps"):  # on a GPU the step's activations are the GPU's concern
        check_training_memory(stage=config.stage, config=model_config, crop=config.crop_size, frame=frame,
                              batch=config.batch_size, scale_max=(config.scale_range or (None, None))[1]
                              if config.stage == "backbone" else None, workers=config.workers,
                              budget=training_budget())
    return check


def _memory_frame_size(source: Any, config: Any) -> tuple[int, int] | None:
    """The frame size of a source held in memory: generated SynthDrive or decoded videos."""
    if source is None:
        return None
    try:
        if source.num_sequences() and source.sequence_length(0):
            return tuple(source.frame(0, 0).shape[:2])
    except (EvssError, AttributeError, IndexError, TypeError):
        return None
    return None
