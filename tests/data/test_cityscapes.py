from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evss.classes import CITYSCAPES
from evss.data.cityscapes import CityscapesSequences
from evss.data.pairs import PairDataset
from evss.data.sources import SequenceSource
from evss.errors import DataError

H, W = 8, 16
# Two cities x two snippets x 30 frames. bonn's two snippets share sequence number 000000 (as in
# the real val split, e.g. frankfurt_000000_000294 / _000576).
SNIPPETS = {"aachen": [("000000", 19), ("000001", 19)], "bonn": [("000000", 19), ("000000", 119)]}


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    for city, snippets in SNIPPETS.items():
        for seq, last in snippets:
            for n in range(last - 19, last + 11):
                _png(tmp_path / "leftImg8bit_sequence" / "val" / city /
                     f"{city}_{seq}_{n:06d}_leftImg8bit.png", np.full((H, W, 3), n % 256, np.uint8))
            label = np.full((H, W), 5, np.uint8)  # pole: a thin class
            label[:, W // 2:] = 0
            label[0, 0] = 255
            _png(tmp_path / "gtFine" / "val" / city / f"{city}_{seq}_{last:06d}_gtFine_labelTrainIds.png",
                 label)
    return tmp_path


def test_indexes_snippets_with_the_20th_frame_labelled(cityscapes_root):
    ds = CityscapesSequences(cityscapes_root, "val")
    assert isinstance(ds, SequenceSource)
    assert [s.name for s in ds.sequences] == [
        "aachen_000000_000019", "aachen_000001_000019", "bonn_000000_000019", "bonn_000000_000119"]
    for s in range(4):
        assert ds.sequence_length(s) == 30
        assert list(ds.labelled_indices(s)) == [19]
    last = ds.sequences[3]
    assert [f.number for f in last.frames] == list(range(100, 130))
    assert ds.labelled_frame(3).number == 119
    assert ds.frame(3, 19)[0, 0, 0] == 119
    label = ds.label(3, 19)
    assert label.dtype == np.uint8 and label[0, 0] == 255 and label[1, 1] == 5
    assert ds.label(3, 18) is None
    assert len(CityscapesSequences(cityscapes_root, "val", cities=["bonn"]).sequences) == 2


def test_neighbours_of_the_labelled_frame(cityscapes_root):
    ds = CityscapesSequences(cityscapes_root, "val")
    assert ds.neighbour_path(3, -5).name == "bonn_000000_000114_leftImg8bit.png"
    assert ds.neighbour_path(0, 10).name == "aachen_000000_000029_leftImg8bit.png"
    with pytest.raises(DataError, match=r"\+11"):
        ds.neighbour_path(0, 11)


def test_missing_frame_names_the_file(cityscapes_root):
    missing = (cityscapes_root / "leftImg8bit_sequence" / "val" / "bonn" /
               "bonn_000000_000117_leftImg8bit.png")
    missing.unlink()
    with pytest.raises(DataError, match="bonn_000000_000117_leftImg8bit.png"):
        CityscapesSequences(cityscapes_root, "val")


def test_missing_label_names_the_file(cityscapes_root):
    (cityscapes_root / "gtFine" / "val" / "aachen" / "aachen_000001_000019_gtFine_labelTrainIds.png").unlink()
    with pytest.raises(DataError, match="aachen_000001_000019_gtFine_labelTrainIds.png"):
        CityscapesSequences(cityscapes_root, "val")


def test_missing_split_is_named(cityscapes_root):
    with pytest.raises(DataError, match="train"):
        CityscapesSequences(cityscapes_root, "train")


def test_label_ids_instead_of_train_ids_are_rejected(cityscapes_root):
    path = cityscapes_root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelTrainIds.png"
    _png(path, np.full((H, W), 26, np.uint8))  # a labelIds value (car)
    ds = CityscapesSequences(cityscapes_root, "val")
    with pytest.raises(DataError, match="aachen_000000_000019.*labelIds"):
        ds.label(0, 19)


def test_pairs_from_cityscapes(cityscapes_root):
    ds = PairDataset(CityscapesSequences(cityscapes_root, "val"), thin_classes=CITYSCAPES.thin,
                     seed=3)
    assert len(ds) == 4
    item = ds[3]
    k = 19 - item["offset"]
    assert 0 <= k < 30
    assert item["key_image"][0, 0, 0].item() == pytest.approx((100 + k) / 255)
    assert item["image"][0, 0, 0].item() == pytest.approx(119 / 255)
    assert item["label"].shape == (H, W)
    # Poles (thin) are edges wherever labelled; the ignored corner stays ignored.
    lab, edge = item["label"], item["edge"]
    assert (edge[lab == 5] == 1).all() and (edge[lab == 255] == 255).all()
