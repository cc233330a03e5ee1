"""`evss segment` end to end on tiny videos the tests encode themselves."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from evss.cli import main
from evss.media import VideoWriter, open_video, read_video_frames, write_video_frames


@pytest.fixture
def weights(tiny_weights) -> str:
    return str(tiny_weights)  # the vivid tiny model (conftest)


def clip(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth texture panning 2 px per frame: (n, h, w, 3) uint8."""
    import cv2
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (h // 4 + 2, (w + 2 * n) // 4 + 2, 3), dtype=np.uint8)
    big = cv2.resize(big, (big.shape[1] * 4, big.shape[0] * 4), interpolation=cv2.INTER_LINEAR)
    return np.stack([big[:h, 2 * (n - t):2 * (n - t) + w] for t in range(n)])


def encode(path: Path, frames: np.ndarray, *, rotation: int = 0, audio: bool = False, rate: int = 25) -> Path:
    """Encode with PyAV directly, optionally with display rotation and a silent AAC track."""
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
    if rotation:
        s.set_display_rotation(rotation)
    packets = [p for f in frames for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))]
    if audio:
        a = c.add_stream("aac", rate=16000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        packets += [*a.encode(af), *a.encode(None)]
    for p in [*packets, *s.encode(None)]:
        c.mux(p)
    c.close()
    return path


def segment(*args) -> int:
    return main(["segment", *map(str, args), "-q"])


def test_mp4_keeps_frame_count_size_and_rate(tmp_path, weights, capsys):
    src = write_video_frames(tmp_path / "in.mp4", clip(9, 64, 96), fps=15)
    out = tmp_path / "out" / "seg.mp4"
    rc = segment(src, "-o", out, "--weights", weights, "--save-labels", tmp_path / "labels",
                 "--save-maps", tmp_path / "maps", "--maps", "fine,coarse")
    assert rc == 0
    frames, info = read_video_frames(out)
    assert frames.shape == (9, 64, 96, 3) and info.fps == 15
    labels = sorted((tmp_path / "labels").iterdir())
    assert [p.name for p in labels] == [f"{i:06d}.png" for i in range(9)]
    from PIL import Image
    first = Image.open(labels[0])
    assert first.mode == "P" and first.size == (96, 64) and np.asarray(first).max() < 11
    assert len(list((tmp_path / "maps" / "fine").glob("*.png"))) == 9
    assert len(list((tmp_path / "maps" / "coarse").glob("*.png"))) == 9
    assert not list(out.parent.glob(".*partial*"))  # the temporary name is gone
    printed = capsys.readouterr().out
    assert "9 frames, 2 keyframes" in printed and "ms per keyframe" in printed and "frames/s overall" in printed


@pytest.mark.parametrize("pix_fmt, coded", [("yuv420p", (98, 64)), ("yuv444p", (97, 63))])
def test_portrait_odd_size(tmp_path, weights, pix_fmt, coded, capsys):
    src = write_video_frames(tmp_path / "in.mp4", clip(4, 97, 63), pix_fmt="yuv444p")  # odd sizes need 4:4:4
    out = tmp_path / "out.mp4"
    assert segment(src, "-o", out, "--weights", weights, "--pix-fmt", pix_fmt, "--save-labels", tmp_path / "l") == 0
    frames, _ = read_video_frames(out)
    assert frames.shape == (4, *coded, 3)
    from PIL import Image
    assert Image.open(tmp_path / "l" / "000003.png").size == (63, 97)  # labels keep the exact size
    if pix_fmt == "yuv420p":
        assert "padded" in capsys.readouterr().err


def test_one_frame_video_and_side_layout(tmp_path, weights):
    src = encode(tmp_path / "one.mp4", clip(1, 64, 96))
    out = tmp_path / "side.mp4"
    assert segment(src, "-o", out, "--weights", weights, "--layout", "side") == 0
    frames, _ = read_video_frames(out)
    assert frames.shape == (1, 64, 192, 3)


def test_folder_of_pngs_and_map_videos(tmp_path, weights):
    import cv2
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(clip(6, 64, 96)):
        cv2.imwrite(str(d / f"{i}.png"), f[:, :, ::-1])
    out = tmp_path / "out.mp4"
    assert segment(d, "-o", out, "--weights", weights, "--fps", 10, "--save-maps", tmp_path / "maps.mp4",
                   "--maps", "fine,edge") == 0
    frames, info = read_video_frames(out)
    assert frames.shape == (6, 64, 96, 3) and info.fps == 10
    assert read_video_frames(tmp_path / "maps.mp4")[0].shape == (6, 64, 96, 3)
    assert read_video_frames(tmp_path / "maps_edge.mp4")[0].shape == (6, 64, 96, 3)


@pytest.mark.parametrize("flow", ["dis", "mv"])
def test_other_flow_sources_and_adaptive_keyframes(tmp_path, weights, flow, capsys):
    src = write_video_frames(tmp_path / "in.mp4", np.concatenate([clip(5, 64, 96, 1), clip(5, 64, 96, 2)]))
    out = tmp_path / "out.mp4"
    assert segment(src, "-o", out, "--weights", weights, "--flow", flow, "--adaptive", "--max-interval", 20,
                   "--share", 1) == 0
    assert read_video_frames(out)[0].shape == (10, 64, 96, 3)
    assert "started by the adaptive policy" in capsys.readouterr().out


def test_variable_frame_rate_is_kept(tmp_path, weights):
    src = tmp_path / "vfr.mp4"
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 200, 240, 500]
    with VideoWriter(src, Fraction(25), 64, 96, time_base=tb) as w:
        for p, f in zip(pts, clip(6, 64, 96)):
            w.write(f, p)
    out = tmp_path / "out.mp4"
    assert segment(src, "-o", out, "--weights", weights) == 0
    with open_video(out) as v:
        times = [float(f.pts * v.info.time_base) for f in v]
    assert [t - times[0] for t in times] == pytest.approx([p / 1000 for p in pts])


def test_rotation_audio_and_max_size(tmp_path, weights, capsys):
    src = encode(tmp_path / "phone.mp4", clip(3, 64, 96), rotation=90, audio=True)
    out = tmp_path / "out.mp4"
    assert segment(src, "-o", out, "--weights", weights, "--max-size", 48) == 0
    frames, _ = read_video_frames(out)
    assert frames.shape == (3, 48, 32, 3)  # upright (portrait), then scaled to fit 48
    err = capsys.readouterr().err
    assert "audio track; the output is video only" in err and "downscaled to 32x48" in err


def test_ctrl_c_finishes_a_playable_video(tmp_path, weights, monkeypatch, capsys):
    from evss.segmenter import VideoSegmenter
    src = write_video_frames(tmp_path / "in.mp4", clip(8, 64, 96))
    step = VideoSegmenter.step

    def interrupted(self, frame):
        if self._index == 3:
            raise KeyboardInterrupt
        return step(self, frame)

    monkeypatch.setattr(VideoSegmenter, "step", interrupted)
    out = tmp_path / "out.mp4"
    assert segment(src, "-o", out, "--weights", weights) == 130
    assert read_video_frames(out)[0].shape == (3, 64, 96, 3)
    assert "with the 3 frames done so far of 8" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_inputs_are_one_line_errors(tmp_path, weights, capsys):
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases = [(tmp_path / "missing.mp4", "missing.mp4: no such file"),
             (tmp_path / "notes.mp4", "notes.mp4: not a video"),
             (tmp_path / "empty.mp4", "empty.mp4: the file is empty")]
    for src, message in cases:
        assert segment(src, "-o", tmp_path / "o.mp4", "--weights", weights) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    src = write_video_frames(tmp_path / "in.mp4", clip(2, 32, 32))
    assert segment(src, "-o", tmp_path, "--weights", weights) == 2
    assert "is a folder" in capsys.readouterr().err
    assert segment(src, "-o", tmp_path / "o.mp4", "--weights", weights, "--half", "--device", "cpu") == 2
    assert "--half needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_saved_labels_are_the_streaming_segmenters(tmp_path, weights):
    """Lossless frames in, --save-labels out: the label maps of Algorithm 1 with the chosen interval,
    frame for frame (not per-frame segmentation, not a segmenter reset between frames)."""
    import cv2
    from PIL import Image

    from evss.checkpoint import load_model
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    frames = clip(7, 64, 96)
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(d / f"{i}.png"), f[:, :, ::-1])
    labels = tmp_path / "labels"
    assert segment(d, "-o", tmp_path / "out.mp4", "--weights", weights, "--keyframe-interval", 3,
                   "--save-labels", labels) == 0
    model, _ = load_model(weights)
    want = [r.labels for r in VideoSegmenter(model, config=SegmenterConfig(keyframe_interval=3)).segment(frames)]
    per_frame = [r.labels for r in VideoSegmenter(model, config=SegmenterConfig(mode="per_frame")).segment(frames)]
    got = [np.asarray(Image.open(p)) for p in sorted(labels.iterdir())]
    assert len(got) == 7 and all(np.array_equal(g, w) for g, w in zip(got, want))
    assert any((w != p).mean() > 0.05 for w, p in zip(want, per_frame))  # propagation shows in the labels


def test_maps_of_a_mode_without_them_are_refused_up_front(tmp_path, weights, capsys):
    src = write_video_frames(tmp_path / "in.mp4", clip(3, 32, 48))
    assert segment(src, "-o", tmp_path / "o.mp4", "--weights", weights, "--mode", "warp_only",
                   "--save-maps", tmp_path / "maps") == 2
    err = capsys.readouterr().err
    assert "--save-maps: mode warp_only" in err and "pass --mode evss" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing written


def test_propagation_flag_reaches_the_segmenter(tmp_path, weights):
    """--propagation chained and the default (composed) agree up to the first non-keyframe and
    differ after it: the 2-pixel pan is half a 1/4-grid pixel per frame, which re-warping blurs."""
    src = write_video_frames(tmp_path / "in.mp4", clip(5, 64, 96), fps=15)
    labels = {}
    for prop in ("composed", "chained"):
        out = tmp_path / prop
        assert segment(src, "-o", out / "seg.mp4", "--weights", weights, "--mode", "warp_only", "--flow", "dis",
                       "--keyframe-interval", "5", "--propagation", prop, "--save-labels", out / "labels") == 0
        labels[prop] = [np.asarray(Image.open(p)) for p in sorted((out / "labels").glob("*.png"))]
    assert len(labels["composed"]) == len(labels["chained"]) == 5
    for t in (0, 1):
        assert np.array_equal(labels["composed"][t], labels["chained"][t]), t
    assert any(not np.array_equal(labels["composed"][t], labels["chained"][t]) for t in (2, 3, 4))


def test_the_openvino_backend_gives_torchs_labels(tmp_path, weights, openvino_cache, monkeypatch, capsys):
    """--backend openvino: the keyframe network, FlowNet and CoNet compiled (cached under EVSS_CACHE)."""
    import cv2

    from conftest import need_module
    need_module("openvino")
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(clip(5, 64, 96)):
        cv2.imwrite(str(d / f"{i}.png"), f[:, :, ::-1])
    monkeypatch.setenv("EVSS_CACHE", str(openvino_cache))
    labels = {}
    for backend in ("torch", "openvino"):
        assert main(["segment", str(d), "-o", str(tmp_path / f"{backend}.mp4"), "--weights", weights, "--backend",
                     backend, "--keyframe-interval", "3", "--save-labels", str(tmp_path / backend)]) == 0
        labels[backend] = [np.asarray(Image.open(p)) for p in sorted((tmp_path / backend).glob("*.png"))]
    assert "backend openvino" in capsys.readouterr().err
    assert {p.name.split("-")[0] for p in openvino_cache.rglob("*.xml")} >= {"keyframe", "flow", "correction"}
    assert len(labels["openvino"]) == 5
    assert np.mean([(a == b).mean() for a, b in zip(labels["torch"], labels["openvino"])]) >= 0.995


def test_backend_errors_are_one_line(tmp_path, weights, monkeypatch, capsys):
    import sys
    src = write_video_frames(tmp_path / "in.mp4", clip(2, 32, 48))
    assert segment(src, "-o", tmp_path / "o.mp4", "--weights", weights, "--precision", "int8") == 2
    err = capsys.readouterr().err
    assert "--precision int8 needs --backend openvino" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the package were not installed
    assert segment(src, "-o", tmp_path / "o.mp4", "--weights", weights, "--backend", "openvino") == 2
    err = capsys.readouterr().err
    assert "--backend openvino needs the openvino package: pip install 'evss[openvino]'" in err
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()
