"""The pix2pix copy of Cityscapes (evss.data.cityscapes_pix2pix), on the real files and on made-up ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, ROOT, need_path
from evss.classes import CITYSCAPES, IGNORE_INDEX
from evss.data.cityscapes_pix2pix import (
    SNAP_DISTANCE,
    VOID_COLOURS,
    CityscapesPix2Pix,
    read_number_list,
    read_pix2pix,
    snap_colours,
)
from evss.errors import DataError

PIX2PIX = DATA / "cityscapes_pix2pix"
HELDOUT = ROOT / "recipes" / "cityscapes_heldout.txt"


@pytest.fixture
def shared_pix2pix():
    need_path(PIX2PIX / "train" / "1.jpg", "shared Cityscapes pix2pix data")  # a skip, or a failure in CI


needs_pix2pix = pytest.mark.usefixtures("shared_pix2pix")


def test_palette_colours_snap_to_their_train_ids_and_void_or_far_colours_to_ignore():
    colours = np.asarray([CITYSCAPES.palette + VOID_COLOURS], np.uint8)  # (1, 29, 3)
    ids = snap_colours(colours)[0]
    assert ids.tolist() == list(range(19)) + [IGNORE_INDEX] * len(VOID_COLOURS)
    near = np.asarray([[[128 + 10, 64 - 10, 128 + 10]]], np.uint8)  # road, 17 away
    far = np.asarray([[[60, 200, 60]]], np.uint8)  # nearest vegetation, 79 away
    assert snap_colours(near)[0, 0] == 0 and snap_colours(far)[0, 0] == IGNORE_INDEX
    assert snap_colours(far, max_distance=1e3)[0, 0] == 8


@needs_pix2pix
def test_a_real_file_is_unsquashed_to_two_to_one_with_train_ids():
    image, label = read_pix2pix(PIX2PIX / "train" / "1.jpg")
    assert image.shape == (256, 512, 3) and image.dtype == np.uint8
    assert label.shape == (256, 512) and label.dtype == np.uint8
    assert set(np.unique(label).tolist()) <= set(range(19)) | {IGNORE_INDEX}
    assert label[200, 256] == 0  # the road ahead
    assert label[-1, 256] == IGNORE_INDEX  # the ego vehicle's bonnet (a void class)
    # nearest-neighbour un-squashing: every label column is doubled
    assert np.array_equal(label[:, 0::2], label[:, 1::2])


@needs_pix2pix
def test_the_ignore_band_is_about_ten_percent_of_the_pixels():
    far = []
    for n in (1, 700, 1400, 2100, 2975):
        colour = np.asarray(Image.open(PIX2PIX / "train" / f"{n}.jpg").convert("RGB"))[:, 256:]
        far.append(np.mean(snap_colours(colour) != snap_colours(colour, max_distance=1e9)))
    assert 0.02 < float(np.mean(far)) < 0.15, far  # pixels farther than SNAP_DISTANCE from the palette
    assert SNAP_DISTANCE == 30.0


@needs_pix2pix
def test_the_source_leaves_out_or_keeps_only_listed_numbers():
    held = read_number_list(HELDOUT)
    assert len(held) >= 300 and set(held) <= set(range(1, 2976))
    train = CityscapesPix2Pix(PIX2PIX, exclude=held)
    assert len(train.numbers) == 2975 - len(held) and not set(train.numbers) & set(held)
    only = CityscapesPix2Pix(PIX2PIX, only=held[:3])
    assert only.numbers == held[:3] and only.name(1) == str(held[1])
    assert only.num_sequences() == 3 and only.labelled_indices(0) == (0,) and only.sequence_length(0) == 1
    assert only.frame(0, 0).shape == (256, 512, 3) and only.label(0, 0).shape == (256, 512)
    assert only.check_files() == []


def test_bad_files_and_lists_are_named(tmp_path: Path):
    (tmp_path / "train").mkdir()
    Image.fromarray(np.zeros((256, 512, 3), np.uint8)).save(tmp_path / "train" / "1.jpg")
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "train" / "2.jpg")
    source = CityscapesPix2Pix(tmp_path)
    bad = source.check_files()
    assert len(bad) == 1 and "2.jpg" in bad[0]
    with pytest.raises(DataError, match="2.jpg is 100x100"):
        read_pix2pix(tmp_path / "train" / "2.jpg")
    with pytest.raises(DataError, match="3.jpg is missing"):
        CityscapesPix2Pix(tmp_path, only=[1, 3])
    listing = tmp_path / "list.txt"
    listing.write_text("# a comment\n1\n\nx2\n")
    with pytest.raises(DataError, match=r"list.txt:4: 'x2' is not a file number"):
        read_number_list(listing)
    listing.write_text("1  # first\n2\n")
    assert read_number_list(listing) == (1, 2)
