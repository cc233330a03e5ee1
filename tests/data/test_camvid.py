from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, need_path
from evss.data.camvid import (
    AUTHORS_FRAME_OFFSETS,
    CamVid,
    CamVidVideo,
    parse_camvid_name,
    read_camvid_label,
)
from evss.data.sources import SequenceSource
from evss.errors import DataError

CAMVID = DATA / "camvid"


@pytest.fixture
def shared_camvid():
    need_path(CAMVID / "val" / "labels", "shared CamVid data")  # a skip, or a failure in CI


needs_camvid = pytest.mark.usefixtures("shared_camvid")


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _rgb(value: int, h: int = 8, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), value % 256, np.uint8)


def _label(h: int = 8, w: int = 16, value: int = 3) -> np.ndarray:
    lab = np.full((h, w), value, np.uint8)
    lab[0, 0] = 11  # void
    return lab


# ---- the shared SegNet-layout data ------------------------------------------------------------

@needs_camvid
def test_real_split_sizes():
    assert len(CamVid(CAMVID, "train")) == 367
    assert len(CamVid(CAMVID, "val")) == 101


@needs_camvid
def test_real_void_is_mapped_to_255():
    val = CamVid(CAMVID, "val")
    sample = val[0]
    raw = np.asarray(Image.open(val.files[0].label))
    assert sample.image.shape == (360, 480, 3) and sample.image.dtype == np.uint8
    assert sample.label.shape == (360, 480)
    assert (raw == 11).any()
    np.testing.assert_array_equal(sample.label == 255, raw == 11)
    np.testing.assert_array_equal(sample.label[raw != 11], raw[raw != 11])
    assert sample.label[raw != 11].max() <= 10


@needs_camvid
def test_real_val_is_one_ordered_clip():
    val = CamVid(CAMVID, "val")
    assert isinstance(val, SequenceSource)
    assert val.num_sequences() == 1
    seq = val.sequences[0]
    assert seq.name == "0016E5" and len(seq) == 101 == val.sequence_length(0)
    numbers = [f.number for f in seq.frames]
    assert numbers[0] == 7959 and numbers[-1] == 8159
    assert set(np.diff(numbers)) == {2}  # 15 fps, every frame labelled
    assert list(val.labelled_indices(0)) == list(range(101))
    first = next(val.read_sequence(0))
    assert first.name == "0016E5_07959"


@needs_camvid
def test_real_train_groups_by_sequence_and_cuts_at_gaps():
    train = CamVid(CAMVID, "train")
    assert [(s.name, len(s)) for s in train.sequences] == [
        ("0001TP", 62), ("0006R0", 101), ("0016E5", 204)]
    cut = CamVid(CAMVID, "train", max_step=31)
    assert [(s.name, len(s)) for s in cut.sequences] == [
        ("0001TP", 62), ("0006R0", 101), ("0016E5", 68), ("0016E5@4350", 120), ("0016E5@8190", 16)]
    assert parse_camvid_name("0006R0_f00930") == ("0006R0", 930)


# ---- fake SegNet-layout trees -------------------------------------------------------------------

def _segnet_tree(root: Path, names=("SEQ_00010", "SEQ_00012", "SEQ_00014")) -> Path:
    for i, name in enumerate(names):
        _png(root / "val" / "images" / f"{name}.png", _rgb(i))
        _png(root / "val" / "labels" / f"{name}.png", _label())
    return root


def test_fake_split_reads_frames_and_labels(tmp_path):
    ds = CamVid(_segnet_tree(tmp_path), "val")
    assert len(ds) == 3 and ds.names == ("SEQ_00010", "SEQ_00012", "SEQ_00014")
    s = ds[1]
    assert s.image[0, 0, 0] == 1 and s.label[0, 0] == 255 and s.label[1, 1] == 3


def test_missing_label_names_the_file(tmp_path):
    root = _segnet_tree(tmp_path)
    (root / "val" / "labels" / "SEQ_00012.png").unlink()
    with pytest.raises(DataError, match="SEQ_00012.png"):
        CamVid(root, "val")


def test_label_without_image_names_the_file(tmp_path):
    root = _segnet_tree(tmp_path)
    (root / "val" / "images" / "SEQ_00014.png").unlink()
    with pytest.raises(DataError, match="SEQ_00014.png"):
        CamVid(root, "val")


def test_missing_split_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="train"):
        CamVid(_segnet_tree(tmp_path), "train")


def test_ids_outside_camvid11_raise_naming_the_file(tmp_path):
    root = _segnet_tree(tmp_path)
    bad = _label()
    bad[2, 2] = 12
    bad[3, 3] = 31
    _png(root / "val" / "labels" / "SEQ_00012.png", bad)
    ds = CamVid(root, "val")
    with pytest.raises(DataError, match=r"SEQ_00012\.png.*12, 31"):
        ds[1]
    ok = _label()
    ok[1, 1] = 255  # already-mapped ignore is accepted
    assert read_camvid_label(_png(tmp_path / "ok.png", ok))[1, 1] == 255


def test_colour_labels_are_rejected(tmp_path):
    path = _png(tmp_path / "rgb.png", _rgb(3))
    with pytest.raises(DataError, match="rgb.png"):
        read_camvid_label(path)


def test_size_mismatch_names_both_files(tmp_path):
    root = _segnet_tree(tmp_path)
    _png(root / "val" / "labels" / "SEQ_00010.png", _label(h=4))
    with pytest.raises(DataError, match="SEQ_00010.png"):
        CamVid(root, "val")[0]


# ---- the authors' video layout --------------------------------------------------------------------

def _video_tree(root: Path) -> Path:
    """SEQA frames 100..119 (labels at 105 and 115); 0001TP frames 20..39 with the authors' offset."""
    for n in range(100, 120):
        _png(root / "video_image" / "SEQA" / f"SEQA.MXF_{n:06d}.png", _rgb(n))
    for n in range(20, 40):
        _png(root / "video_image" / "0001TP" / f"0001TP.avi_{n:06d}.png", _rgb(n))
    _png(root / "11labels" / "SEQA_00105.png", _label(value=2))
    _png(root / "11labels" / "SEQA_00115.png", _label(value=4))
    _png(root / "11labels" / "0001TP_006690.png", _label(value=9))  # frame 29 of the video
    return root


def test_video_layout_indexes_sequence_and_frame(tmp_path):
    video = CamVidVideo(_video_tree(tmp_path), frame_offsets=AUTHORS_FRAME_OFFSETS)
    assert isinstance(video, SequenceSource)
    assert video.labelled == (("0001TP", 29), ("SEQA", 105), ("SEQA", 115))
    names = [s.name for s in video.sequences]
    assert sorted(names) == ["0001TP", "SEQA"]
    s = names.index("SEQA")
    assert video.sequence_length(s) == 20
    assert list(video.labelled_indices(s)) == [5, 15]
    assert video.frame(s, 5)[0, 0, 0] == 105
    assert video.label(s, 5)[1, 1] == 2 and video.label(s, 5)[0, 0] == 255
    assert video.label(s, 6) is None
    assert video.neighbour_path("SEQA", 105, -3).name == "SEQA.MXF_000102.png"
    assert video.label_path("0001TP", 29).name == "0001TP_006690.png"
    with pytest.raises(DataError, match="121"):
        video.neighbour_path("SEQA", 115, 6)


def test_video_layout_cuts_runs_at_missing_frames(tmp_path):
    root = _video_tree(tmp_path)
    (root / "video_image" / "SEQA" / "SEQA.MXF_000110.png").unlink()
    video = CamVidVideo(root, frame_offsets=AUTHORS_FRAME_OFFSETS)
    runs = {s.name: len(s) for s in video.sequences}
    assert runs == {"0001TP": 20, "SEQA": 10, "SEQA@111": 9}


def test_video_label_without_frame_names_the_label(tmp_path):
    root = _video_tree(tmp_path)
    with pytest.raises(DataError, match="0001TP_006690.png"):
        CamVidVideo(root)  # without the authors' offset, frame 6690 does not exist
    video = CamVidVideo(root, sequences=["SEQA"])  # or leave that sequence out
    assert video.labelled == (("SEQA", 105), ("SEQA", 115))


def test_video_layout_from_the_authors_list_file(tmp_path):
    root = _video_tree(tmp_path)
    listing = tmp_path / "trainval.txt"
    listing.write_text("video_image/0001TP/0001TP.avi_000029.png 11labels/0001TP_006690.png\n"
                       "video_image/SEQA/SEQA.MXF_000115.png 11labels/SEQA_00115.png\n\n")
    video = CamVidVideo(root, list_file=listing)
    assert video.labelled == (("0001TP", 29), ("SEQA", 115))
    listing.write_text("video_image/SEQA/SEQA.MXF_000115.png 11labels/SEQA_00999.png\n")
    with pytest.raises(DataError, match="SEQA_00999.png"):
        CamVidVideo(root, list_file=listing)


def test_video_layout_feeds_training_pairs(tmp_path):
    from evss.classes import CAMVID as SPACE
    from evss.data.pairs import PairDataset

    video = CamVidVideo(_video_tree(tmp_path), frame_offsets=AUTHORS_FRAME_OFFSETS)
    ds = PairDataset(video, thin_classes=SPACE.thin, seed=0)
    assert len(ds) == 3
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i, (s, t) in enumerate(ds.targets):
            item = ds[i]
            number = video.sequences[s].frames[t].number
            key_value = round(item["key_image"][0, 0, 0].item() * 255)
            assert key_value == (number - item["offset"]) % 256  # d video frames away
