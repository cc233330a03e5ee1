"""Sequence sources: clips in memory, clip datasets read on demand, clip folders, several sources as
one, and frame folders listed like `evss segment` lists them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evss.data.pairs import LabelledFrames
from evss.data.sources import (
    ClipFolders,
    ClipSource,
    ConcatSource,
    FolderSource,
    MemoryClips,
    SequenceSource,
    footage,
    frame_name,
)
from evss.errors import DataError, EvssError
from evss.media import IMAGE_SUFFIXES, frame_files

H, W = 8, 12


def clip(t: int, value: int, labelled: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    frames = np.zeros((t, H, W, 3), np.uint8)
    frames[..., 0] = np.arange(t)[:, None, None]
    frames[..., 1] = value
    return frames, (np.full((t, H, W), value, np.uint8) if labelled else None)


def test_memory_clips_hold_frames_and_labels():
    source = MemoryClips([clip(3, 1), {"frames": clip(4, 2)[0], "labels": None}])
    assert isinstance(source, SequenceSource)
    assert source.num_sequences() == 2 and [source.sequence_length(s) for s in (0, 1)] == [3, 4]
    assert list(source.labelled_indices(1)) == [0, 1, 2, 3]  # every frame is a target
    assert source.frame(1, 3)[0, 0].tolist() == [3, 2, 0] and source.label(0, 2).dtype == np.uint8
    assert source.label(1, 0) is None
    with pytest.raises(DataError, match="clip 0: frames must be uint8"):
        MemoryClips([(np.zeros((2, H, W)), None)])
    with pytest.raises(DataError, match="clip 1: labels"):
        MemoryClips([clip(2, 0), (clip(2, 0)[0], np.zeros((3, H, W), np.uint8))])


def test_memory_clips_from_a_dataset_read_each_clip_once():
    class Dataset:
        calls = 0

        def __len__(self):
            return 2

        def clip(self, i):
            Dataset.calls += 1
            return clip(3 + i, i)

    source = MemoryClips.from_dataset(Dataset())
    assert Dataset.calls == 2
    frames = LabelledFrames(source, crop_size=None, flip=False, seed=0)
    assert len(frames) == 7 and frames[6]["label"].unique().tolist() == [1]
    assert Dataset.calls == 2  # random access never asks the dataset again


def test_clip_source_keeps_the_last_clip_whole():
    class Dataset:
        def __len__(self):
            return 2

        def clip(self, i):
            frames, labels = clip(3, i)
            return {"frames": frames, "labels": labels, "flow": np.full((3, 2, H, W), i, np.float32)}

    source = ClipSource(Dataset())
    assert source.clip(1)["flow"][0, 0, 0, 0] == 1.0  # what else the dataset gives (SynthDrive's flow)
    assert source.label(1, 2)[0, 0] == 1 and source.frame(0, 2)[0, 0, 0] == 2


def test_clip_folders_read_the_frames_asked_for(tmp_path):
    for t in range(3):
        for kind, image in (("frames", np.full((H, W, 3), t, np.uint8)), ("labels", np.full((H, W), 7, np.uint8))):
            (tmp_path / "c0" / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "c0" / kind / f"{t:06d}.png")
    read = []
    source = ClipFolders([(tmp_path / "c0", 3)], read_label=lambda p: read.append(p.name) or np.zeros((H, W), np.uint8))
    assert source.sequence_length(0) == 3 and source.frame(0, 2)[0, 0, 0] == 2
    source.label(0, 1)
    assert read == ["000001.png"]


def test_concat_source_chains_sequences_and_keeps_frame_names(tmp_path):
    for n in (3, 4):
        Image.fromarray(np.full((H, W, 3), n, np.uint8)).save(tmp_path / f"walk_{n:04d}.png")
    both = ConcatSource([MemoryClips([clip(2, 5)]), FolderSource(tmp_path)])
    assert both.num_sequences() == 2 and both.sequence_length(1) == 2
    assert both.frame(1, 1)[0, 0, 0] == 4 and both.label(1, 0) is None and both.label(0, 1)[0, 0] == 5
    assert frame_name(both, 0, 1) == "0_1" and frame_name(both, 1, 0) == "walk_0003"


@pytest.mark.parametrize("suffix", [".webp", ".tif", ".ppm"])
def test_training_takes_every_frame_format_that_segment_reads(tmp_path, suffix):
    """One frame lister (evss.media) for `evss segment` and `evss train --data videos`."""
    folder = tmp_path / "clip"
    folder.mkdir()
    for t in (2, 10, 1):
        Image.fromarray(np.full((H, W, 3), 20 * t, np.uint8)).save(folder / f"frame{t}{suffix}")
    assert suffix in IMAGE_SUFFIXES and len(frame_files(folder)) == 3  # what evss segment reads
    for root in (folder, tmp_path):  # frames in the folder, or one sub-folder per clip
        source = footage(root)
        assert isinstance(source, FolderSource) and source.num_sequences() == 1
        assert [source.frame(0, t)[0, 0, 0] for t in range(3)] == [20, 40, 200]  # by frame number
        assert len(LabelledFrames(source, crop_size=(8, 8), flip=True, seed=0)) == 3


def test_folder_without_frames_names_the_formats(tmp_path):
    (tmp_path / "notes.txt").write_text("no frames here")
    with pytest.raises(DataError, match=r"no images \(.*\.webp"):
        FolderSource(tmp_path)
    with pytest.raises(DataError, match="not found"):
        FolderSource(tmp_path / "missing")


def test_frames_without_numbers_keep_the_natural_name_order(tmp_path: Path):
    for name in ("b.png", "a10x.png", "a2x.png"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / name)
    source = FolderSource(tmp_path)
    assert [f.image.name for f in source.sequences[0].frames] == ["a2x.png", "a10x.png", "b.png"]


def test_video_files_are_decoded_into_memory(tmp_path):
    from evss.media import write_video_frames
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    frames[..., 0] = np.arange(4)[:, None, None] * 60
    write_video_frames(tmp_path / "a.mp4", frames)
    write_video_frames(tmp_path / "b.mkv", frames[:3])
    (tmp_path / "notes.txt").write_text("not a video")
    source = footage(tmp_path, max_size=24)
    assert isinstance(source, MemoryClips) and source.num_sequences() == 2
    assert [source.sequence_length(s) for s in (0, 1)] == [4, 3] and source.frame(0, 0).shape == (16, 24, 3)
    assert source.label(0, 0) is None
    single = write_video_frames(tmp_path / "single.mp4", frames[:1])
    with pytest.raises(EvssError, match="a training pair needs at least 2"):
        footage(single)
