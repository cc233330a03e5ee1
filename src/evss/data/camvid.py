"""CamVid readers: the SegNet split layout and the authors' decoded-video layout.

Label ids follow SegNet's CamVid-11 (``evss.classes.CAMVID``): 0..10 are classes, 11 is void and
becomes ``IGNORE_INDEX`` (255) on reading. A label PNG with any other id (12..254) raises a
:class:`DataError` naming the file and the ids: such a file comes from another label set (the
32-class CamVid, colour-coded labels, ...) and silently ignoring those pixels would hide it. Ids
already equal to 255 are accepted as ignore.

* :class:`CamVid` -- ``root/{split}/images/*.png`` + ``root/{split}/labels/*.png``, matched by
  file name (the layout of ``shared/data/camvid``). Files are named ``<sequence>_<frame>.png``, so
  the split is also readable as ordered sequences (``sequences``); the val split is one 15 fps
  clip of 101 frames, all labelled.
* :class:`CamVidVideo` -- the authors' layout: ``root/11labels/<sequence>_<frame>.png`` and every
  decoded frame at ``root/video_image/<sequence>/<anything><frame>.png``, indexed by
  (sequence, frame number) so a pair sampler can reach the neighbours of each labelled frame.

Both implement :class:`evss.data.sources.SequenceSource`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from evss.classes import CAMVID, IGNORE_INDEX
from evss.data._paths import safe_join
from evss.data.sources import (
    FileSequenceSource,
    FrameFile,
    read_label_ids,
    read_rgb,
    split_runs,
    trailing_number,
)
from evss.errors import DataError
from evss.media import list_images

CAMVID_VOID_ID = 11

# Label frame number + offset = decoded video frame number, per sequence, as in the authors' list
# ``data/list/camvid/trainval3.txt``: ``0001TP_006690`` is ``0001TP.avi_000029``. Their 0006R0 and
# 0016E5 frames share the labels' numbers.
AUTHORS_FRAME_OFFSETS: Mapping[str, int] = MappingProxyType({"0001TP": -6661})


def parse_camvid_name(stem: str) -> tuple[str, int]:
    """``"0016E5_07959"`` -> ``("0016E5", 7959)``; ``"0006R0_f00930"`` -> ``("0006R0", 930)``."""
    sequence, sep, frame = stem.rpartition("_")
    number = trailing_number(frame)
    if not sep or not sequence or number is None:
        raise DataError(f"CamVid file name {stem!r} is not <sequence>_<frame number>")
    return sequence, number


def read_camvid_label(path: Path) -> np.ndarray:
    """(H, W) uint8 ids 0..10 with void (11) mapped to 255; DataError for ids outside that set."""
    ids = read_label_ids(path)
    bad = (ids > CAMVID_VOID_ID) & (ids != IGNORE_INDEX)
    if bad.any():
        values = np.unique(ids[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(f"label {path} has ids {shown} outside CamVid-11 (0..{CAMVID.num_classes - 1}"
                        f", {CAMVID_VOID_ID} = void)")
    out = ids.astype(np.uint8)
    out[out == CAMVID_VOID_ID] = IGNORE_INDEX
    return out


@dataclass(frozen=True)
class LabelledFrame:
    name: str            # file stem, e.g. "0016E5_07959"
    image: np.ndarray    # (H, W, 3) uint8 RGB
    label: np.ndarray    # (H, W) uint8, 255 = ignore


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DataError(f"{what} not found: {path}")


class CamVid(FileSequenceSource):
    """SegNet-layout CamVid split: ``root/{split}/images`` and ``root/{split}/labels``.

    ``dataset[i]`` reads the i-th frame in file-name order. ``sequences`` groups the split by the
    sequence prefix of the file names and orders each group by frame number; ``max_step`` cuts a
    group where the frame number jumps by more than that (``None``: one group per prefix).
    """

    def __init__(self, root: str | Path, split: str = "train", *,
                 max_step: int | None = None) -> None:
        self.root = Path(root)
        self.split = split
        images_dir, labels_dir = self.root / split / "images", self.root / split / "labels"
        _require_dir(images_dir, f"CamVid {split} images folder")
        _require_dir(labels_dir, f"CamVid {split} labels folder")
        labels = {p.stem: p for p in list_images(labels_dir)}
        files = []
        for image in list_images(images_dir):
            label = labels.pop(image.stem, None)
            if label is None:
                raise DataError(f"missing label for {image}: expected {labels_dir / image.name}")
            files.append((image.stem, FrameFile(parse_camvid_name(image.stem)[1], image, label)))
        if labels:
            extra = sorted(labels.values())
            raise DataError(f"label {extra[0]} has no image in {images_dir}"
                            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        if not files:
            raise DataError(f"no images in {images_dir}")
        self.names: tuple[str, ...] = tuple(name for name, _ in files)
        self.files: tuple[FrameFile, ...] = tuple(f for _, f in files)
        groups: dict[str, list[FrameFile]] = defaultdict(list)
        for name, f in files:
            groups[parse_camvid_name(name)[0]].append(f)
        super().__init__(run for seq in sorted(groups)
                         for run in split_runs(seq, groups[seq], max_step=max_step))

    def read_label(self, path: Path) -> np.ndarray:
        return read_camvid_label(path)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> LabelledFrame:
        f = self.files[i]
        return self._read(f)

    def read_sequence(self, s: int) -> Iterator[LabelledFrame]:
        """The frames of ``sequences[s]`` in frame-number order."""
        for f in self.sequences[s].frames:
            yield self._read(f)

    def _read(self, f: FrameFile) -> LabelledFrame:
        assert f.label is not None  # every split image has a label (checked in __init__)
        image, label = read_rgb(f.image), read_camvid_label(f.label)
        if image.shape[:2] != label.shape:
            raise DataError(f"{f.image} is {image.shape[0]}x{image.shape[1]} but its label "
                            f"{f.label} is {label.shape[0]}x{label.shape[1]}")
        return LabelledFrame(name=f.image.stem, image=image, label=label)


class CamVidVideo(FileSequenceSource):
    """The authors' CamVid video layout: ``11labels/`` label PNGs and ``video_image/<seq>/`` frames.

    Decoded frames are indexed by the number at the end of their file name
    (``0016E5.MXF_008159.png`` -> 8159). A label ``<seq>_<n>.png`` belongs to frame
    ``n + frame_offsets.get(seq, 0)`` of ``video_image/<seq>``; pass
    ``frame_offsets=AUTHORS_FRAME_OFFSETS`` for frames decoded the way the authors did, or give the
    authors' list file (lines ``video_image/... 11labels/...``) to take the pairs from it (and only
    the listed labels). ``sequences`` restricts the labels to some sequences. Every label must have
    its decoded frame; a DataError names the label otherwise.

    ``self.sequences`` holds runs of consecutive decoded frames (cut where the number jumps by more
    than ``max_step``), so a neighbour at offset ``d`` is always ``d`` video frames away.
    """

    def __init__(self, root: str | Path, *, list_file: str | Path | None = None,
                 frame_offsets: Mapping[str, int] | None = None,
                 sequences: Iterable[str] | None = None, max_step: int | None = 1) -> None:
        self.root = Path(root)
        video_dir, labels_dir = self.root / "video_image", self.root / "11labels"
        _require_dir(video_dir, "CamVid decoded video folder")
        self._frames: dict[str, dict[int, Path]] = {}
        for d in sorted(p for p in video_dir.iterdir() if p.is_dir()):
            numbered: dict[int, Path] = {}
            for p in list_images(d):
                n = trailing_number(p.stem)
                if n is None:
                    raise DataError(f"decoded frame {p} has no frame number at the end of its name")
                if n in numbered:
                    raise DataError(f"{numbered[n]} and {p} are both frame {n}")
                numbered[n] = p
            if numbered:
                self._frames[d.name] = numbered
        if not self._frames:
            raise DataError(f"no decoded frames in {video_dir}/<sequence>/")
        wanted = None if sequences is None else set(sequences)

        labelled: dict[tuple[str, int], Path] = {}
        for seq, number, label in self._label_pairs(labels_dir, list_file, frame_offsets or {}):
            if wanted is not None and seq not in wanted:
                continue
            if not label.is_file():
                raise DataError(f"missing label file: {label}")
            if seq not in self._frames:
                raise DataError(f"label {label}: no decoded frames in {video_dir / seq}")
            if number not in self._frames[seq]:
                raise DataError(f"label {label}: frame {number} of {video_dir / seq} is missing "
                                "(check frame_offsets or pass the authors' list_file)")
            if (seq, number) in labelled:
                raise DataError(f"labels {labelled[seq, number]} and {label} are both for frame "
                                f"{number} of {seq}")
            labelled[seq, number] = label
        if not labelled:
            raise DataError(f"no labels found for the decoded sequences in {labels_dir}")
        self._labels = labelled
        self.labelled: tuple[tuple[str, int], ...] = tuple(sorted(labelled))
        runs = []
        for seq, numbered in self._frames.items():
            frames = [FrameFile(n, p, labelled.get((seq, n))) for n, p in numbered.items()]
            runs.extend(split_runs(seq, frames, max_step=max_step))
        super().__init__(runs)

    def _label_pairs(self, labels_dir: Path, list_file: str | Path | None,
                     frame_offsets: Mapping[str, int]) -> Iterator[tuple[str, int, Path]]:
        """(sequence, decoded frame number, label path) for every label to use."""
        if list_file is not None:
            list_file = Path(list_file)
            try:
                lines = list_file.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise DataError(f"cannot read CamVid list {list_file}: {e}") from None
            for i, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise DataError(f"{list_file}:{i}: expected '<frame path> <label path>', "
                                    f"got {line!r}")
                # Entries are joined with the root only when they stay inside it (no absolute
                # paths, '..' escapes or links leading out): the list file is data, not trusted.
                image = safe_join(self.root, parts[0], source=f"{list_file}:{i}")
                label = safe_join(self.root, parts[1], source=f"{list_file}:{i}")
                number = trailing_number(image.stem)
                if number is None:
                    raise DataError(f"{list_file}:{i}: no frame number in {parts[0]}")
                yield image.parent.name, number, label
            return
        _require_dir(labels_dir, "CamVid label folder")
        for label in list_images(labels_dir):
            seq, number = parse_camvid_name(label.stem)
            yield seq, number + frame_offsets.get(seq, 0), label

    def read_label(self, path: Path) -> np.ndarray:
        return read_camvid_label(path)

    def frame_path(self, sequence: str, number: int) -> Path:
        """Decoded frame ``number`` of ``sequence``; DataError when it is not there."""
        try:
            return self._frames[sequence][number]
        except KeyError:
            raise DataError(f"no decoded frame {number} of sequence {sequence} in "
                            f"{self.root / 'video_image' / sequence}") from None

    def neighbour_path(self, sequence: str, number: int, delta: int) -> Path:
        """The frame ``delta`` frames after frame ``number`` (before it when negative)."""
        return self.frame_path(sequence, number + delta)

    def label_path(self, sequence: str, number: int) -> Path | None:
        """The label of frame ``number`` of ``sequence``, or None when it has none."""
        return self._labels.get((sequence, number))
