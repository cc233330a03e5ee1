from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from evss.classes import CAMVID
from evss.data.pairs import PairDataset
from evss.data.sources import ClipSource, FolderSource, SequenceSource
from evss.data.transforms import OFFICIAL_OFFSETS, pair_offsets
from evss.errors import DataError

H, W = 6, 10


class FakeSource:
    """Sequences of 12 and 3 frames; pixel (y, x) of frame t in sequence s is (t, x, 10 * s).
    Labels (class = x % 3, thin class 2) on frames 0, 5 and 11 of sequence 0 and frame 1 of 1."""

    lengths = (12, 3)
    labelled = ((0, 5, 11), (1,))

    def num_sequences(self) -> int:
        return len(self.lengths)

    def sequence_length(self, s: int) -> int:
        return self.lengths[s]

    def labelled_indices(self, s: int):
        return self.labelled[s]

    def frame(self, s: int, t: int) -> np.ndarray:
        xs = np.broadcast_to(np.arange(W), (H, W))
        return np.stack([np.full((H, W), t), xs, np.full((H, W), 10 * s)], -1).astype(np.uint8)

    def label(self, s: int, t: int):
        if t not in self.labelled[s]:
            return None
        lab = np.broadcast_to(np.arange(W) % 3, (H, W)).astype(np.uint8).copy()
        lab[0, :] = 255
        return lab


def _pixels(x: torch.Tensor) -> np.ndarray:
    return np.rint(x.numpy() * 255).astype(int)  # (3, H, W) floats back to uint8 values


def test_fake_source_follows_the_protocol():
    assert isinstance(FakeSource(), SequenceSource)


def test_items_pair_the_target_with_a_valid_neighbour():
    ds = PairDataset(FakeSource(), thin_classes=CAMVID.thin, flip=False)
    assert ds.targets == ((0, 0), (0, 5), (0, 11), (1, 1))
    assert len(ds) == 4
    for epoch in range(20):
        ds.set_epoch(epoch)
        for i, (s, t) in enumerate(ds.targets):
            item = ds[i]
            assert set(item) == {"key_image", "image", "label", "edge", "offset"}
            assert item["key_image"].shape == item["image"].shape == (3, H, W)
            assert item["image"].dtype == torch.float32 and item["label"].dtype == torch.int64
            assert item["edge"].dtype == torch.int64 and item["label"].shape == (H, W)
            d = item["offset"]
            assert d in pair_offsets()
            k = t - d
            assert 0 <= k < FakeSource.lengths[s]
            assert (_pixels(item["key_image"])[0] == k).all()
            assert (_pixels(item["image"])[0] == t).all()
            assert (_pixels(item["image"])[2] == 10 * s).all()


def test_label_and_edge_follow_the_flip_and_crop():
    ds = PairDataset(FakeSource(), thin_classes=(2,), crop_size=(4, 7), seed=5)
    flips = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[1]
        xs = _pixels(item["image"])[1]            # source column of every output pixel
        assert (_pixels(item["key_image"])[1] == xs).all()
        lab, edge = item["label"].numpy(), item["edge"].numpy()
        labelled = lab != 255
        assert (lab[labelled] == (xs % 3)[labelled]).all()
        assert (edge[lab == 255] == 255).all()   # ignore stays ignored
        assert (edge[lab == 2] == 1).all()       # the thin class is all edge
        assert lab.shape == (4, 7)
        flips.add(bool(xs[0, 0] > xs[0, -1]))
    assert flips == {True, False}


def test_draws_depend_on_seed_epoch_and_index_only():
    a = PairDataset(FakeSource(), thin_classes=(2,), crop_size=(4, 7), seed=1)
    b = PairDataset(FakeSource(), thin_classes=(2,), crop_size=(4, 7), seed=1)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["offset"] == y["offset"]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["edge"], y["edge"])
    offsets = []
    for epoch in range(10):
        a.set_epoch(epoch)
        offsets.append(a[1]["offset"])
    assert len(set(offsets)) > 1


def test_official_offsets_and_short_sequences():
    ds = PairDataset(FakeSource(), thin_classes=(2,), offsets=pair_offsets(official=True))
    seen = set()
    for epoch in range(60):
        ds.set_epoch(epoch)
        seen.add(ds[1]["offset"])
        # Sequence 1 has 3 frames: the target at t=1 can only use d = 1 (k=0) or d = -1 (k=2),
        # and -1 is not an official offset.
        assert ds[3]["offset"] == 1
    assert seen == set(OFFICIAL_OFFSETS)


def test_batches_collate():
    ds = PairDataset(FakeSource(), thin_classes=(2,), crop_size=(4, 8))
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 4, 8) and batch["label"].shape == (3, 4, 8)
    assert batch["offset"].shape == (3,)


def test_unlabelled_sources_give_ignore_labels(tmp_path: Path):
    for seq, numbers in (("clipA", (2, 10, 1)), ("clipB", (0, 1))):
        for n in numbers:
            path = tmp_path / seq / f"frame_{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((H, W, 3), n, np.uint8)).save(path)
    source = FolderSource(tmp_path)
    assert [s.name for s in source.sequences] == ["clipA", "clipB"]
    assert [f.number for f in source.sequences[0].frames] == [1, 2, 10]  # numeric, not by name
    assert source.label(0, 0) is None and list(source.labelled_indices(0)) == [0, 1, 2]
    ds = PairDataset(source, thin_classes=CAMVID.thin)
    assert len(ds) == 5
    item = ds[0]
    assert (item["label"] == 255).all() and (item["edge"] == 255).all()
    single = FolderSource(tmp_path / "clipB")  # images directly in the folder: one sequence
    assert single.num_sequences() == 1 and single.sequence_length(0) == 2
    with pytest.raises(DataError, match="empty"):
        (tmp_path / "empty").mkdir()
        FolderSource(tmp_path / "empty")


class FakeSynthDrive:
    """Duck-types evss.data.synthdrive.SynthDriveDataset: len() and clip(i)."""

    def __init__(self, as_mapping: bool = False) -> None:
        self.as_mapping = as_mapping
        self.calls = 0

    def __len__(self) -> int:
        return 2

    def clip(self, i: int):
        self.calls += 1
        t = 4 + i
        frames = np.zeros((t, H, W, 3), np.uint8)
        frames[..., 0] = np.arange(t)[:, None, None]
        labels = np.full((t, H, W), i, np.uint8)
        return {"frames": frames, "labels": labels} if self.as_mapping else (frames, labels)


@pytest.mark.parametrize("as_mapping", [False, True])
def test_clip_dataset_adapter(as_mapping):
    fake = FakeSynthDrive(as_mapping)
    source = ClipSource(fake)
    assert isinstance(source, SequenceSource)
    assert source.num_sequences() == 2
    assert source.sequence_length(1) == 5 and list(source.labelled_indices(1)) == list(range(5))
    assert source.frame(1, 3)[0, 0, 0] == 3 and source.label(1, 3)[0, 0] == 1
    assert fake.calls == 1  # cached
    ds = PairDataset(source, thin_classes=CAMVID.thin, seed=0)
    assert len(ds) == 9
    item = ds[8]
    assert (_pixels(item["key_image"])[0] == 4 - item["offset"]).all()


def test_clip_dataset_adapter_checks_shapes():
    class Bad:
        def __len__(self):
            return 1

        def clip(self, i):
            return np.zeros((2, H, W), np.uint8), None

    with pytest.raises(DataError, match="clip 0"):
        ClipSource(Bad()).sequence_length(0)


def test_source_without_targets_is_an_error():
    class Empty(FakeSource):
        labelled = ((), ())

    with pytest.raises(DataError, match="no labelled frames"):
        PairDataset(Empty(), thin_classes=(2,))
