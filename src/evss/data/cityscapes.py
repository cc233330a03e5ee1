"""Cityscapes video snippets with their one fine label (paper Sec. IV-A).

Layout (the official download, labels converted to train ids by ``cityscapesscripts``)::

    root/leftImg8bit_sequence/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

Each snippet is 30 consecutive frames and only its 20th (index 19, 0-based) is labelled, so the
snippet of label frame ``L`` is frames ``L - 19 .. L + 10``. Several snippets can share one
``<seq>`` number (e.g. frankfurt_000000_000294 and frankfurt_000000_000576), which is why snippets
are indexed from the labels. Label values are train ids 0..18 with 255 = ignore; any other id
raises a DataError naming the file (usually a ``labelIds`` file given instead of ``labelTrainIds``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from evss.classes import CITYSCAPES, IGNORE_INDEX
from evss.data.sources import FileSequenceSource, FrameFile, FrameSequence, read_label_ids
from evss.errors import DataError

SNIPPET_LENGTH = 30
LABELLED_INDEX = 19  # the 20th frame of a snippet carries the label

_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_(?P<kind>leftImg8bit|"
                   r"gtFine_labelTrainIds)\.png$")


def read_cityscapes_label(path: Path) -> np.ndarray:
    """(H, W) uint8 train ids 0..18, 255 = ignore; DataError naming the file for other ids."""
    ids = read_label_ids(path)
    bad = (ids >= CITYSCAPES.num_classes) & (ids != IGNORE_INDEX)
    if bad.any():
        values = ", ".join(str(int(v)) for v in np.unique(ids[bad])[:8])
        raise DataError(f"label {path} has ids {values} outside the 19 Cityscapes train ids "
                        "(0..18, 255 = ignore); is it a labelIds file instead of labelTrainIds?")
    return ids.astype(np.uint8)


class CityscapesSequences(FileSequenceSource):
    """Labelled Cityscapes snippets; ``sequences[s]`` is one 30-frame snippet.

    ``sequences[s].name`` is ``<city>_<seq>_<label frame>``; its labelled frame is at index
    ``labelled_index`` (19). ``cities`` restricts the index to some cities. Every frame of every
    labelled snippet must exist, and every stored frame must belong to a labelled snippet: a missing
    frame or label raises a DataError naming the file.
    """

    def __init__(self, root: str | Path, split: str = "train", *,
                 cities: Iterable[str] | None = None, snippet_length: int = SNIPPET_LENGTH,
                 labelled_index: int = LABELLED_INDEX) -> None:
        if not 0 <= labelled_index < snippet_length:
            raise ValueError(f"labelled_index {labelled_index} is outside a snippet of "
                             f"{snippet_length} frames")
        self.root = Path(root)
        self.split = split
        self.snippet_length = snippet_length
        self.labelled_index = labelled_index
        images_root = self.root / "leftImg8bit_sequence" / split
        labels_root = self.root / "gtFine" / split
        for d, what in ((images_root, "Cityscapes sequence frames"), (labels_root, "Cityscapes labels")):
            if not d.is_dir():
                raise DataError(f"{what} folder not found: {d}")
        city_dirs = sorted(p.name for p in labels_root.iterdir() if p.is_dir())
        if cities is not None:
            wanted = set(cities)
            unknown = wanted - set(city_dirs)
            if unknown:
                raise DataError(f"no city {sorted(unknown)[0]!r} in {labels_root}")
            city_dirs = [c for c in city_dirs if c in wanted]
        else:
            frame_only = sorted({p.name for p in images_root.iterdir() if p.is_dir()} - set(city_dirs))
            if frame_only:
                raise DataError(f"frames of city {frame_only[0]!r} in {images_root} have no labels: "
                                f"missing folder {labels_root / frame_only[0]}")
        snippets: list[FrameSequence] = []
        for city in city_dirs:
            snippets.extend(self._index_city(images_root / city, labels_root / city))
        if not snippets:
            raise DataError(f"no *_gtFine_labelTrainIds.png labels in {labels_root}/<city>/ "
                            "(create them with cityscapesscripts' createTrainIdLabelImgs)")
        super().__init__(snippets)

    def _index_city(self, frames_dir: Path, labels_dir: Path) -> list[FrameSequence]:
        if not frames_dir.is_dir():
            raise DataError(f"missing frame folder {frames_dir} for the labels in {labels_dir}")
        stored: dict[str, tuple[str, int, int]] = {}  # file name -> (seq, frame, digits)
        for p in frames_dir.iterdir():
            m = _NAME.match(p.name)
            if m and m["kind"] == "leftImg8bit":
                stored[p.name] = (m["seq"], int(m["frame"]), len(m["frame"]))
        snippets = []
        covered: set[str] = set()
        for label in sorted(labels_dir.glob("*_gtFine_labelTrainIds.png")):
            m = _NAME.match(label.name)
            if m is None:
                raise DataError(f"label file name {label.name} is not "
                                "<city>_<seq>_<frame>_gtFine_labelTrainIds.png")
            city, seq, last = m["city"], m["seq"], int(m["frame"])
            digits = len(m["frame"])
            start = last - self.labelled_index
            if start < 0:
                raise DataError(f"label {label} is frame {last}, but a snippet labels its frame "
                                f"{self.labelled_index}: the snippet would start before frame 0")
            frames = []
            for n in range(start, start + self.snippet_length):
                image = frames_dir / f"{city}_{seq}_{n:0{digits}d}_leftImg8bit.png"
                if image.name not in stored:
                    raise DataError(f"missing frame {image} of the snippet labelled by {label}")
                covered.add(image.name)
                frames.append(FrameFile(n, image, label if n == last else None))
            snippets.append(FrameSequence(name=f"{city}_{seq}_{last:0{digits}d}", frames=tuple(frames)))
        # Frames that no label covers: their snippet's label is missing.
        leftover: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for name, (seq, n, digits) in stored.items():
            if name not in covered:
                leftover[seq].append((n, digits))
        if leftover:
            seq = sorted(leftover)[0]
            first, digits = min(leftover[seq])
            city = frames_dir.name
            expected = labels_dir / (f"{city}_{seq}_{first + self.labelled_index:0{digits}d}"
                                     "_gtFine_labelTrainIds.png")
            raise DataError(f"missing label {expected} for frame "
                            f"{frames_dir / f'{city}_{seq}_{first:0{digits}d}_leftImg8bit.png'}")
        return snippets

    def read_label(self, path: Path) -> np.ndarray:
        return read_cityscapes_label(path)

    def labelled_frame(self, s: int) -> FrameFile:
        return self.sequences[s].frames[self.labelled_index]

    def neighbour_path(self, s: int, delta: int) -> Path:
        """The frame ``delta`` frames after the labelled frame of snippet ``s`` (before if < 0)."""
        t = self.labelled_index + delta
        if not 0 <= t < len(self.sequences[s]):
            raise DataError(f"snippet {self.sequences[s].name} has no frame {delta:+d} from its "
                            f"labelled frame (it holds {-self.labelled_index:+d} .. "
                            f"{len(self.sequences[s]) - 1 - self.labelled_index:+d})")
        return self.sequences[s].frames[t].image
