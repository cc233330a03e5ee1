"""Segment's outputs behind one protocol: written under partial names, committed or discarded together."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from evss.classes import CAMVID
from evss.errors import EvssError
from evss.media import read_video_frames
from evss.pipeline.outputs import (
    MAP_NAMES,
    LabelFolderSink,
    MapFolderSink,
    MapVideoSink,
    Outputs,
    VideoSink,
    map_sink,
    maps_as_video,
)


def frame(h=32, w=48, value=128):
    return np.full((h, w, 3), value, np.uint8)


def maps(h=16, w=24):
    return {name: np.full((h, w), 0.5, np.float32) for name in MAP_NAMES}


def open_all(tmp_path):
    outputs = Outputs()
    video = outputs.add(VideoSink(tmp_path / "out.mp4", fps=Fraction(10), height=32, width=48))
    labels = outputs.add(LabelFolderSink(tmp_path / "labels", palette=CAMVID.palette, size=(32, 48)))
    folder = outputs.add(MapFolderSink(tmp_path / "maps", ("fine", "edge"), size=(32, 48)))
    videos = outputs.add(MapVideoSink(tmp_path / "m.mp4", ("fine", "coarse"), size=(32, 48), fps=Fraction(10)))
    for i in range(3):
        video.write(i, None, frame())
        labels.write(i, None, np.full((16, 24), 2, np.uint8))  # at the model's size: upsampled to (32, 48)
        folder.write(i, None, maps())
        videos.write(i, None, maps())
    return outputs, (video, labels, folder, videos)


def test_commit_moves_every_output_into_place_at_the_outputs_size(tmp_path):
    outputs, (video, labels, folder, videos) = open_all(tmp_path)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "labels").exists()  # partial until committed
    done = outputs.finish(keep=True)
    assert done[video] == [tmp_path / "out.mp4"] and done[videos] == [tmp_path / "m.mp4", tmp_path / "m_coarse.mp4"]
    assert read_video_frames(tmp_path / "out.mp4")[0].shape == (3, 32, 48, 3)
    assert read_video_frames(tmp_path / "m_coarse.mp4")[0].shape == (3, 32, 48, 3)
    label = np.asarray(Image.open(tmp_path / "labels" / "000002.png"))
    assert label.shape == (32, 48) and (label == 2).all()
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["edge", "fine"]
    assert np.asarray(Image.open(tmp_path / "maps" / "fine" / "000000.png")).max() == 128
    assert not list(tmp_path.glob(".*"))  # no partial names left


def test_discard_leaves_nothing(tmp_path):
    outputs, _ = open_all(tmp_path)
    outputs.finish(keep=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_commit_discards_the_rest_and_raises(tmp_path):
    class Broken:
        def write(self, index, pts, data):
            pass

        def commit(self):
            raise OSError("disk full")

        def discard(self):
            pass

    outputs = Outputs()
    outputs.add(Broken())
    labels = outputs.add(LabelFolderSink(tmp_path / "labels", palette=CAMVID.palette, size=(8, 8)))
    labels.write(0, None, np.zeros((8, 8), np.uint8))
    with pytest.raises(OSError, match="disk full"):
        outputs.finish(keep=True)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_video_is_not_committed(tmp_path):
    outputs = Outputs()
    outputs.add(VideoSink(tmp_path / "out.mp4", fps=Fraction(10), height=8, width=8))
    assert outputs.finish(keep=True) == {outputs.sinks[0]: []}
    assert list(tmp_path.iterdir()) == []


def test_map_sink_kind_and_folders_of_foreign_files(tmp_path):
    assert maps_as_video(tmp_path / "m.MP4") and not maps_as_video(tmp_path / "maps")
    sink = map_sink(tmp_path / "maps", ("fine",), png_size=(8, 8), video_size=(8, 8), fps=Fraction(10))
    assert isinstance(sink, MapFolderSink)
    sink.discard()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(EvssError, match="--save-maps .*notes.txt"):
        MapFolderSink(tmp_path / "mine", ("fine",), size=(8, 8))
    with pytest.raises(EvssError, match="--save-labels .*notes.txt"):
        LabelFolderSink(tmp_path / "mine", palette=CAMVID.palette, size=(8, 8))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
