"""A video damaged in the middle keeps its frame count and timing, and the note names the damage."""

from __future__ import annotations

import av
import cv2
import numpy as np

from evss.cli import main
from evss.media import open_video, read_video_frames, write_video_frames


def _clip(path, n=40, h=64, w=96):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (h // 4 + 2, (w + 2 * n) // 4 + 2, 3), dtype=np.uint8)
    big = cv2.resize(big, (big.shape[1] * 4, big.shape[0] * 4))
    return write_video_frames(path, np.stack([big[:h, 2 * (n - t):2 * (n - t) + w] for t in range(n)]), fps=25, crf=18)


def _damage(src, dst, frames: range):
    """Overwrite the packets of the given display positions with garbage (sizes and index intact)."""
    with av.open(str(src)) as c:
        packets = [(p.pts, p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    order = sorted(p[0] for p in packets)
    hit = {order[i] for i in frames}
    data = bytearray(src.read_bytes())
    for pts, pos, size in packets:
        if pts in hit:
            data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(bytes(data))
    return dst


def test_lost_frames_are_placed_at_their_times(tmp_path):
    bad = _damage(_clip(tmp_path / "a.mp4"), tmp_path / "bad.mp4", range(15, 19))
    with open_video(bad, on_error="skip") as video:
        frames = list(video)
    assert len(frames) == 40 and video.truncated is None
    assert [f.index for f in frames if f.image is None] == [15, 16, 17, 18]
    pts = [f.pts for f in frames]
    assert all(a < b for a, b in zip(pts, pts[1:]))  # every frame at its own time, none shifted


def test_segment_keeps_every_frame_and_names_the_damage(tmp_path, tiny_weights, capsys):
    bad = _damage(_clip(tmp_path / "a.mp4"), tmp_path / "bad.mp4", range(15, 19))
    out = tmp_path / "o.mp4"
    assert main(["segment", str(bad), "-o", str(out), "--weights", str(tiny_weights), "-q"]) == 0
    err = capsys.readouterr().err
    assert "is damaged in the middle: 4 undecodable frames skipped (frame 15-18; 0.60-0.72 s;" in err
    assert "looks truncated" not in err
    assert len(read_video_frames(out)[0]) == 40
    assert main(["segment", str(bad), "-o", str(tmp_path / "s.mp4"), "--weights", str(tiny_weights), "-q",
                 "--on-error", "stop"]) == 2
    assert "frame 15 at 0.60 s cannot be decoded" in capsys.readouterr().err
