import numpy as np
import pytest

from evss.classes import IGNORE_INDEX
from evss.data.pairs import PairDataset
from evss.data.sources import SequenceSource
from evss.data.still_motion import StillMotionClips, StillMotionConfig, view_matrix


class Stills:
    """Two labelled stills in one sequence plus an unlabelled frame between them."""

    def __init__(self, h=48, w=64):
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3)]
        cols = np.arange(w) // 8  # vertical stripes, 8 px wide, ids 0..7
        self.labels = [np.repeat(cols[None, :], h, axis=0).astype(np.uint8), None, np.full((h, w), 3, np.uint8)]

    def num_sequences(self):
        return 1

    def sequence_length(self, s):
        return 3

    def labelled_indices(self, s):
        return (0, 2)

    def frame(self, s, t):
        return self.images[t]

    def label(self, s, t):
        return self.labels[t]


def test_one_clip_per_labelled_still_and_frame_zero_is_the_still():
    clips = StillMotionClips(Stills(), config=StillMotionConfig(frames=4))
    assert isinstance(clips, SequenceSource)
    assert clips.num_sequences() == 2 and clips.sequence_length(0) == 4
    assert list(clips.labelled_indices(1)) == [0, 1, 2, 3]
    stills = Stills()
    assert np.array_equal(clips.frame(0, 0), stills.images[0]) and np.array_equal(clips.label(0, 0), stills.labels[0])
    assert np.array_equal(clips.frame(1, 0), stills.images[2])
    with pytest.raises(IndexError, match="frame 4"):
        clips.frame(0, 4)


def test_forward_motion_magnifies_by_the_zoom_per_frame_and_never_leaves_the_still():
    cfg = StillMotionConfig(frames=6, zoom=0.1, pan=0.0)
    clips = StillMotionClips(Stills(), config=cfg)
    for t in range(6):
        label = clips.label(0, t)
        assert not (label == IGNORE_INDEX).any()  # the view stays inside the still
        # stripes 8 px wide in the still are 8 * 1.1^t wide in frame t (interior stripes only)
        widths = np.diff(np.flatnonzero(np.diff(label[24].astype(int)) != 0))
        if len(widths):
            assert np.median(widths) == pytest.approx(8 * 1.1 ** t, abs=1.0)
    # the focus point is fixed without pan: the still pixel under it stays under it
    m = view_matrix(48, 64, 3, focus=(20.0, 30.0), direction=1.0, config=cfg)
    assert m @ np.array([20.0, 30.0, 1.0]) == pytest.approx([20.0, 30.0])
    # pan moves the focus sideways by pan * width per frame
    panned = view_matrix(48, 64, 2, focus=(32.0, 24.0), direction=-1.0,
                         config=StillMotionConfig(zoom=0.0, pan=0.05))
    assert panned[0, 2] == pytest.approx(0.0)  # zoom 0: the whole still, wherever the focus went


def test_pairs_from_still_motion_clips_carry_labels_and_an_offset():
    clips = StillMotionClips(Stills(), config=StillMotionConfig(frames=6))
    pairs = PairDataset(clips, thin_classes=(2,), crop_size=(32, 48), flip=True, seed=0)
    sample = pairs[0]
    assert sample["key_image"].shape == (3, 32, 48) and sample["image"].shape == (3, 32, 48)
    assert sample["offset"] != 0 and (sample["label"] != IGNORE_INDEX).any()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="at least 2 frames"):
        StillMotionConfig(frames=1)
    with pytest.raises(ValueError, match="zoom"):
        StillMotionConfig(zoom=0.5)
    with pytest.raises(ValueError, match="no label|labelled"):
        empty = Stills()
        empty.labelled_indices = lambda s: ()
        StillMotionClips(empty)


def test_the_training_source_camvid_stills_makes_one_drive_per_labelled_frame(tmp_path):
    from PIL import Image

    from evss.train import TrainConfig
    from evss.train.sampling import build_source
    rng = np.random.default_rng(1)
    for name in ("0001TP_006690", "0001TP_006720", "0006R0_f00930"):
        for kind, array in (("images", rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)),
                            ("labels", rng.integers(0, 12, (36, 48), dtype=np.uint8))):
            (tmp_path / "train" / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(tmp_path / "train" / kind / f"{name}.png")
    source = build_source(TrainConfig(stage="evss", data="camvid-stills", data_root=str(tmp_path), still_frames=4,
                                      still_zoom=0.05))
    assert isinstance(source, StillMotionClips)
    assert source.num_sequences() == 3 and source.sequence_length(0) == 4
    ids = set(np.unique(source.label(2, 3)).tolist())
    assert ids <= {*range(11), IGNORE_INDEX} and IGNORE_INDEX in ids  # CamVid's void (11) read as ignore
    with pytest.raises(Exception, match="still_zoom"):
        TrainConfig(stage="evss", data="camvid-stills", still_zoom=0.5)


def test_a_pair_reads_its_still_once():
    stills = Stills()
    reads = []
    frame = stills.frame
    stills.frame = lambda s, t: reads.append(t) or frame(s, t)
    clips = StillMotionClips(stills, config=StillMotionConfig(frames=4))
    for t in (1, 3):
        clips.frame(0, t)
    clips.label(0, 3)
    clips.frame(1, 2)
    assert reads == [0, 2]  # one read per still, not per frame or label
