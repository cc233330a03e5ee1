"""Video reading and writing: files through PyAV, frame folders, globs, timing, rotation, odd sizes."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, need_path, smooth_frames
from evss.errors import EvssError
from evss.media import (
    VideoWriter,
    open_video,
    output_size,
    prefetch,
    read_video_frames,
    resize_flow,
    rotate_flow,
    write_label_png,
    write_video_frames,
)

REAL_CLIP = DATA / "video" / "udacity_vehicle_test_video.mp4"


def encode_raw(path: Path, frames: np.ndarray, *, rate: int = 25, rotation: int = 0, pts: list[int] | None = None,
               time_base: Fraction | None = None, options: dict | None = None, audio: bool = False) -> Path:
    """Encode with PyAV directly (independent of evss's writer)."""
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.height, s.width = frames.shape[1:3]
    s.pix_fmt = "yuv420p" if frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0 else "yuv444p"
    s.options = options or {}
    if time_base:
        s.codec_context.time_base = time_base
    if rotation:
        s.set_display_rotation(rotation)
    a = c.add_stream("aac", rate=16000) if audio else None
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        if pts is not None:
            vf.pts, vf.time_base = pts[i], time_base
        for p in s.encode(vf):
            c.mux(p)
    if a is not None:
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for p in [*a.encode(af), *a.encode(None)]:
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    return path


def test_roundtrip_keeps_count_size_rate_and_content(tmp_path):
    frames = smooth_frames(7, 64, 96)
    frames = np.repeat(frames.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)  # grey: no 4:2:0 chroma loss
    path = write_video_frames(tmp_path / "a.mp4", frames, fps=15, crf=10)
    got, info = read_video_frames(path)
    assert got.shape == frames.shape and info.fps == 15 and info.frames == 7 and not info.has_audio
    assert np.abs(got.astype(int) - frames).mean() < 2  # H.264 is lossy, at crf 10 barely


def test_odd_sizes_pad_in_yuv420p_and_stay_exact_in_yuv444p(tmp_path):
    frames = smooth_frames(2, 63, 97)
    assert read_video_frames(write_video_frames(tmp_path / "a.mp4", frames))[0].shape == (2, 64, 98, 3)
    exact, _ = read_video_frames(write_video_frames(tmp_path / "b.mp4", frames, pix_fmt="yuv444p"))
    assert exact.shape == (2, 63, 97, 3)


def test_one_frame_video(tmp_path):
    got, info = read_video_frames(encode_raw(tmp_path / "one.mp4", smooth_frames(1, 32, 48)))
    assert got.shape == (1, 32, 48, 3) and info.frames == 1


def test_variable_frame_rate_timestamps_survive(tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 200, 240, 500]
    src = encode_raw(tmp_path / "vfr.mp4", smooth_frames(6, 32, 48), pts=pts, time_base=tb)
    with open_video(src) as v:
        info = v.info
        times = [f.pts * info.time_base for f in v]
    assert [float(t - times[0]) for t in times] == pytest.approx([p / 1000 for p in pts])
    out = VideoWriter(tmp_path / "copy.mp4", info.fps, 32, 48, time_base=info.time_base)
    with out, open_video(src) as v:
        for f in v:
            out.write(f.image, f.pts)
    with open_video(tmp_path / "copy.mp4") as v:
        copied = [f.pts * v.info.time_base for f in v]
    assert [float(t - copied[0]) for t in copied] == pytest.approx([p / 1000 for p in pts])


def test_missing_or_repeated_timestamps_continue_the_frame_period(tmp_path):
    w = VideoWriter(tmp_path / "a.mp4", Fraction(10), 32, 32)
    with w:
        for p in (None, None, 5, 5):  # in 1/10 s units: 0, 1, 5, then a repeat -> 6
            w.write(np.zeros((32, 32, 3), np.uint8), p)
    with open_video(tmp_path / "a.mp4") as v:
        assert [round(float(f.pts * v.info.time_base), 3) for f in v] == [0.0, 0.1, 0.5, 0.6]


def test_rotation_metadata_makes_frames_upright(tmp_path):
    frames = np.zeros((2, 32, 48, 3), np.uint8)
    frames[:, :8, :8] = 255  # a white corner, top-left as stored
    with open_video(encode_raw(tmp_path / "r.mp4", frames, rotation=90)) as v:
        assert (v.info.height, v.info.width, v.info.rotation) == (48, 32, 90)
        img = next(iter(v)).image
    # 90 degrees counter-clockwise (FFmpeg's display matrix): top-left goes to bottom-left.
    assert img[-8:, :8].mean() > 200 and img[:8, :8].mean() < 50


def test_max_size_downscales_keeping_aspect(tmp_path):
    assert output_size(540, 960, 480) == (270, 480) and output_size(100, 50, 480) == (100, 50)
    with open_video(encode_raw(tmp_path / "a.mp4", smooth_frames(2, 64, 96)), max_size=48) as v:
        assert (v.info.height, v.info.width) == (32, 48)
        assert next(iter(v)).image.shape == (32, 48, 3)


def test_audio_is_reported(tmp_path):
    with open_video(encode_raw(tmp_path / "a.mp4", smooth_frames(3, 32, 32), audio=True)) as v:
        assert v.info.has_audio and sum(1 for _ in v) == 3


def test_frame_folder_and_glob_in_natural_order(tmp_path):
    import cv2
    frames = smooth_frames(11, 24, 40)
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(d / f"f{i}.png"), f[:, :, ::-1])  # f10 must come after f9
    (d / "notes.txt").write_text("not a frame")
    with open_video(d, fps=12) as v:
        assert v.info.kind == "frames" and v.info.fps == 12 and v.info.frames == 11
        got = np.stack([f.image for f in v])
    assert np.array_equal(got, frames)
    with open_video(str(d / "f1*.png")) as v:
        assert [f.index for f in v] == [0, 1]  # f1, f10


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(EvssError, match="nope.mp4: no such file"):
        open_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EvssError, match="empty.mp4: the file is empty"):
        open_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("hello, not a video\n" * 50)
    with pytest.raises(EvssError, match="text.mp4: not a video"):
        open_video(tmp_path / "text.mp4")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(EvssError, match="nothing: a folder without image files"):
        open_video(tmp_path / "nothing")
    with pytest.raises(EvssError, match="matches no image files"):
        open_video(str(tmp_path / "*.png"))


def test_frame_folder_size_change_is_named(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((16, 20, 3), np.uint8))
    with pytest.raises(EvssError, match="1.png: frame 1 is 20x16, the sequence started at 16x16"):
        with open_video(tmp_path) as v:
            list(v)


def test_motion_vectors_need_a_video(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(EvssError, match="motion vectors"):
        open_video(tmp_path, motion_vectors=True)


def test_rotate_and_resize_flow_follow_the_frame():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(2, 5, 7)).astype(np.float32)
    r = rotate_flow(flow, 90)
    assert r.shape == (2, 7, 5)
    # pixel (x, y) -> (y, W-1-x); displacement (dx, dy) -> (dy, -dx)
    x, y = 3, 1
    assert np.allclose(r[:, 7 - 1 - x, y], [flow[1, y, x], -flow[0, y, x]])
    assert np.allclose(rotate_flow(rotate_flow(flow, 180), 180), flow)
    up = resize_flow(np.ones((2, 4, 6), np.float32), 8, 12)
    assert up.shape == (2, 8, 12) and np.allclose(up, 2.0)


def test_prefetch_is_bounded_and_reraises():
    made = []

    def items():
        for i in range(100):
            made.append(i)
            yield i

    it = prefetch(items(), depth=3)
    assert next(it) == 0
    # The producer fills the queue (3) and makes one more that waits to be put; then it stops. Poll
    # (generously bounded) until it reaches that count, then check that it stays there.
    deadline = time.monotonic() + 60
    while len(made) < 1 + 3 + 1:
        assert time.monotonic() < deadline, f"the producer made only {len(made)} items"
        time.sleep(0.01)
    settled = time.monotonic() + 0.3
    while time.monotonic() < settled:
        assert len(made) == 1 + 3 + 1  # consumed + queued + one waiting to be put
        time.sleep(0.01)
    it.close()

    def broken():
        yield 1
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"):
        list(prefetch(broken()))


def test_label_png_holds_class_ids_and_palette(tmp_path):
    from PIL import Image
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_label_png(tmp_path / "l.png", labels, [(1, 2, 3), (4, 5, 6)])
    img = Image.open(tmp_path / "l.png")
    assert img.mode == "P" and np.array_equal(np.asarray(img), labels)
    assert img.getpalette()[:6] == [1, 2, 3, 4, 5, 6]


def test_real_clip_streams_with_its_metadata():
    need_path(REAL_CLIP, "the shared test video")  # a skip, or a failure in CI
    with open_video(REAL_CLIP, max_size=320) as v:
        assert v.info.has_audio and v.info.fps == 25 and (v.info.height, v.info.width) == (180, 320)
        n = sum(1 for _ in v)
    assert n == 38
