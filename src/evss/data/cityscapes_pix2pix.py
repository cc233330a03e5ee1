"""The pix2pix copy of Cityscapes: ``root/{split}/<n>.jpg``, photo | colour label side by side.

Each file (512x256 JPEG, ``../shared/data/README.md``) holds a 2048x1024 Cityscapes frame squashed
to 256x256 on the left and its gtFine *colour* label, squashed the same way, on the right. Reading
one:

* the halves are split and un-squashed to 2:1 (256x512, as the streets look to the model): the
  photo bilinear, the label by nearest neighbour (after snapping, so no colours are invented);
* the label's colours, blurred by JPEG, are snapped to the nearest colour of the Cityscapes palette
  (the 19 train classes and the void classes' colours). A pixel farther than ``SNAP_DISTANCE`` (RGB
  Euclidean) from every palette colour, or nearest to a void class's colour (ego vehicle, ground,
  parking, guard rail, ...), is ``IGNORE_INDEX``. At 30, 9.5 % of the pixels are farther than that
  from every palette colour, 99 % of them on class boundaries (10 files spread over the range; the
  data README expects 8-10 %); with the void classes 20 % are ignored (every 5th file: 13 % nearest
  a void colour, 7 % far from every colour but nearest a class's).

:class:`CityscapesPix2Pix` is a :class:`~evss.data.sources.SequenceSource` of one-frame sequences,
one per file, in file-number order; held-out numbers can be left out (``exclude``) or taken alone
(``only``). Frame names are the file numbers (``"1234"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from evss.classes import CITYSCAPES, IGNORE_INDEX
from evss.data.sources import read_rgb
from evss.data.validate import header
from evss.errors import DataError

SNAP_DISTANCE = 30.0  # RGB distance beyond which a label pixel is ignored (JPEG blur at boundaries)
SIZE = (256, 512)  # (H, W) of a frame after un-squashing
FILE_SIZE = (256, 512)  # (H, W) of a stored file: two 256x256 halves

# Colours of Cityscapes' classes outside the 19 train classes (trainId 255) in gtFine colour images:
# unlabelled / ego vehicle / rectification border / out of roi / static, dynamic, ground, parking,
# rail track, guard rail, bridge, tunnel, caravan, trailer. (polegroup and license plate share the
# colours of pole and car, and are read as those.)
VOID_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140), (180, 165, 180),
    (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110),
)


def _palette() -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) float32 colours and (P,) uint8 train ids (255 for the void colours)."""
    colours = np.asarray(CITYSCAPES.palette + VOID_COLOURS, dtype=np.float32)
    ids = np.asarray(list(range(CITYSCAPES.num_classes)) + [IGNORE_INDEX] * len(VOID_COLOURS), dtype=np.uint8)
    return colours, ids


PALETTE, PALETTE_IDS = _palette()


_UNKNOWN = 254  # a colour not measured yet in a snapping table (train ids are 0..18 and 255)
_TABLES: dict[float, np.ndarray] = {}  # max_distance -> (2**24,) uint8 id of every RGB colour met so far


def snap_colours(colour: np.ndarray, *, max_distance: float = SNAP_DISTANCE) -> np.ndarray:
    """(H, W, 3) uint8 RGB colour label -> (H, W) uint8 train ids: the nearest palette colour's id,
    ``IGNORE_INDEX`` where that colour is a void class's or farther than ``max_distance``.

    Each distinct colour is measured once per process and remembered in a 16 MB table (labels
    share most of their colours), so a label costs one table lookup after the first few hundred.
    """
    if colour.ndim != 3 or colour.shape[2] != 3:
        raise ValueError(f"a colour label must be (H, W, 3), got {colour.shape}")
    table = _TABLES.get(max_distance)
    if table is None:
        table = _TABLES.setdefault(max_distance, np.full(1 << 24, _UNKNOWN, np.uint8))
    rgb = colour.reshape(-1, 3).astype(np.int32)  # (HW, 3)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]  # (HW,)
    ids = table[packed]  # (HW,)
    new = np.unique(packed[ids == _UNKNOWN])  # (U,) colours not measured yet
    if new.size:
        x = np.stack([(new >> 16) & 255, (new >> 8) & 255, new & 255], axis=1).astype(np.float32)  # (U, 3)
        d2 = (x * x).sum(1, keepdims=True) - 2.0 * x @ PALETTE.T + (PALETTE * PALETTE).sum(1)  # (U, P)
        nearest = d2.argmin(axis=1)  # (U,)
        far = d2[np.arange(len(new)), nearest] > max_distance ** 2
        table[new] = np.where(far, np.uint8(IGNORE_INDEX), PALETTE_IDS[nearest])
        ids = table[packed]
    return ids.reshape(colour.shape[:2])


def split_file(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, 2W, 3) photo | colour label -> the two (H, W, 3) halves."""
    h, w2 = pair.shape[:2]
    if w2 % 2:
        raise ValueError(f"a pix2pix file must have an even width, got {w2}")
    return pair[:, : w2 // 2], pair[:, w2 // 2:]


def unsquash(photo: np.ndarray, ids: np.ndarray, size: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The photo (bilinear) and its label ids (nearest) resized to ``size`` (H, W): back to 2:1."""
    h, w = size
    return (cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR),
            cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST))


def read_pix2pix(path: Path, *, max_distance: float = SNAP_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """One file -> (image (256, 512, 3) uint8 RGB, label (256, 512) uint8 train ids, 255 = ignore)."""
    pair = read_rgb(path)  # DataError naming the file when unreadable
    if pair.shape[:2] != FILE_SIZE:
        raise DataError(f"{path} is {pair.shape[1]}x{pair.shape[0]}, expected a {FILE_SIZE[1]}x{FILE_SIZE[0]} "
                        "pix2pix file (photo | colour label)")
    photo, colour = split_file(pair)
    return unsquash(photo, snap_colours(colour, max_distance=max_distance))


def read_number_list(path: str | Path) -> tuple[int, ...]:
    """File numbers, one per line (``#`` starts a comment); DataError naming the file and line otherwise."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the number list {path}: {exc}") from None
    numbers = []
    for i, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit():
            raise DataError(f"{path}:{i}: {text!r} is not a file number")
        numbers.append(int(text))
    if len(set(numbers)) != len(numbers):
        raise DataError(f"{path}: a file number is listed twice")
    return tuple(numbers)


class CityscapesPix2Pix:
    """``root/{split}/<n>.jpg`` as a source of one-frame labelled sequences (see the module docstring).

    ``only``: just these numbers (e.g. the held-out frames); ``exclude``: all but these. A listed
    number without its file is a DataError.
    """

    def __init__(self, root: str | Path, split: str = "train", *, only: Iterable[int] | None = None,
                 exclude: Iterable[int] = (), max_distance: float = SNAP_DISTANCE) -> None:
        self.folder = Path(root) / split
        if not self.folder.is_dir():
            raise DataError(f"Cityscapes pix2pix folder not found: {self.folder}")
        stored = {int(p.stem): p for p in self.folder.glob("*.jpg") if p.stem.isdigit()}
        if not stored:
            raise DataError(f"no <number>.jpg files in {self.folder}")
        wanted = set(stored) if only is None else set(only)
        missing = sorted(set(wanted | set(exclude)) - set(stored))
        if missing:
            raise DataError(f"Cityscapes pix2pix file {self.folder / f'{missing[0]}.jpg'} is missing"
                            + (f" (and {len(missing) - 1} more listed numbers)" if len(missing) > 1 else ""))
        self.numbers: tuple[int, ...] = tuple(sorted(wanted - set(exclude)))
        if not self.numbers:
            raise DataError(f"no Cityscapes pix2pix files left in {self.folder} after the held-out numbers")
        self.paths: tuple[Path, ...] = tuple(stored[n] for n in self.numbers)
        self.max_distance = max_distance
        self._last: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None  # frame() then label() decode once

    def check_files(self) -> list[str]:
        """Every file's header and size (cheap, before step one): "path: why" for each bad one."""
        bad = []
        for path in self.paths:
            try:
                h, w, _ = header(path)
            except DataError as exc:
                bad.append(str(exc))
                continue
            if (h, w) != FILE_SIZE:
                bad.append(f"{path}: {w}x{h}, expected {FILE_SIZE[1]}x{FILE_SIZE[0]} (photo | colour label)")
        return bad

    def read(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, label) of file ``s`` (see :func:`read_pix2pix`)."""
        if self._last is None or self._last[0] != s:
            self._last = (s, read_pix2pix(self.paths[s], max_distance=self.max_distance))
        return self._last[1]

    def num_sequences(self) -> int:
        return len(self.paths)

    def sequence_length(self, s: int) -> int:
        return 1

    def labelled_indices(self, s: int) -> tuple[int, ...]:
        return (0,)

    def frame(self, s: int, t: int) -> np.ndarray:
        return self.read(s)[0]

    def label(self, s: int, t: int) -> np.ndarray:
        return self.read(s)[1]

    def name(self, s: int) -> str:
        return str(self.numbers[s])
