"""The one frame lister: which files are frames (the union of the readers' and the datasets' formats)
and their natural order, for folders and globs alike."""

from __future__ import annotations

import pytest

from evss.errors import EvssError
from evss.media.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files, is_glob, list_images, natural_key


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_image_suffixes_cover_the_video_readers_and_the_datasets_formats():
    video_reader = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # data/video.py had these
    datasets = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")  # data/pairs.py had these
    assert set(video_reader) | set(datasets) == set(IMAGE_SUFFIXES)
    assert len(set(IMAGE_SUFFIXES)) == len(IMAGE_SUFFIXES)
    assert not set(IMAGE_SUFFIXES) & set(VIDEO_SUFFIXES)


def test_list_images_natural_order_images_only(tmp_path):
    for name in ("frame10.png", "frame2.PNG", "frame1.ppm", "notes.txt", "clip.mp4", "b.webp"):
        touch(tmp_path / name)
    (tmp_path / "sub.png").mkdir()  # a folder with an image's name is not a frame
    assert [p.name for p in list_images(tmp_path)] == ["b.webp", "frame1.ppm", "frame2.PNG", "frame10.png"]
    assert list_images(tmp_path / "sub.png") == []
    assert natural_key(tmp_path / "x9.png") < natural_key(tmp_path / "x10.png")


def test_frame_files_reads_folders_and_globs_and_names_empty_ones(tmp_path):
    for i in (1, 2, 10):
        touch(tmp_path / "f" / f"{i}.jpg")
    assert [p.name for p in frame_files(tmp_path / "f")] == ["1.jpg", "2.jpg", "10.jpg"]
    assert [p.name for p in frame_files(str(tmp_path / "f" / "*.jpg"))] == ["1.jpg", "2.jpg", "10.jpg"]
    assert is_glob(str(tmp_path / "f" / "*.jpg")) and not is_glob(str(tmp_path / "f"))
    assert frame_files(tmp_path / "f" / "1.jpg") is None  # a file: not a frame folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvssError, match="a folder without image files"):
        frame_files(tmp_path / "empty")
    with pytest.raises(EvssError, match="matches no image files"):
        frame_files(str(tmp_path / "f" / "*.png"))
