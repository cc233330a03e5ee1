"""`evss.segment_video` and `evss.stream_video`: the pipeline of `evss segment` from Python."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import evss
from conftest import panning_clip
from evss.cli import main
from evss.errors import EvssError
from evss.media import read_video_frames, write_video_frames
from evss.pipeline import OutputOptions, SegmentOptions, load, segment_video, stream_video


@pytest.fixture
def source(tmp_path):
    return write_video_frames(tmp_path / "in.mp4", np.stack(panning_clip(8, 64, 96, step=2)), fps=15)


def _labels(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_segment_video_labels_equal_the_commands(tmp_path, source, tiny_weights, capsys):
    rc = main(["segment", str(source), "-o", str(tmp_path / "cli.mp4"), "--weights", str(tiny_weights),
               "--mode", "evss", "--keyframe-interval", "3", "--save-labels", str(tmp_path / "cli_labels"), "-q"])
    assert rc == 0
    report = evss.segment_video(source, tmp_path / "api.mp4",
                                SegmentOptions(weights=tiny_weights, mode="evss", keyframe_interval=3, progress=False),
                                OutputOptions(save_labels=tmp_path / "api_labels"), notice=lambda _: None)
    assert (report.frames, report.written, report.keyframes, report.interrupted) == (8, 8, 3, False)
    assert report.output == tmp_path / "api.mp4" and report.labels == tmp_path / "api_labels"
    np.testing.assert_array_equal(_labels(tmp_path / "api_labels"), _labels(tmp_path / "cli_labels"))
    assert len(read_video_frames(tmp_path / "api.mp4")[0]) == 8
    assert report.lines()[1] == f"wrote {tmp_path / 'api.mp4'}, labels in {tmp_path / 'api_labels'}"


def test_stream_video_yields_the_labels_segment_video_writes(tmp_path, source, tiny_weights):
    options = SegmentOptions(weights=tiny_weights, mode="evss", keyframe_interval=3, progress=False)
    segment_video(source, tmp_path / "out.mp4", options, OutputOptions(save_labels=tmp_path / "labels"),
                  notice=lambda _: None)
    frames = list(stream_video(source, options, return_maps=True, notice=lambda _: None))
    assert [f.index for f in frames] == list(range(8))
    assert [f.is_keyframe for f in frames] == [t % 3 == 0 for t in range(8)]
    np.testing.assert_array_equal(np.stack([f.labels for f in frames]), _labels(tmp_path / "labels"))
    assert frames[0].labels.shape == frames[0].image.shape[:2] == (64, 96)
    assert set(frames[1].maps) == {"coarse", "edge", "fine"} and frames[1].maps["fine"].shape == (64, 96)
    assert frames[1].seconds == pytest.approx(1 / 15)


def test_weights_loaded_once_serve_many_inputs_and_the_input_is_opened_once(tmp_path, source, tiny_weights,
                                                                            monkeypatch):
    import evss.pipeline.session as session
    opened = []
    real = session.open_video
    monkeypatch.setattr(session, "open_video", lambda *a, **k: opened.append(k) or real(*a, **k))
    weights = load(tiny_weights, notice=lambda _: None)
    options = SegmentOptions(mode="evss", flow="mv", progress=False)
    first = [f.labels for f in stream_video(source, options, weights=weights)]
    second = [f.labels for f in stream_video(source, options, weights=weights)]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    assert [k["motion_vectors"] for k in opened] == [True, True]  # once per input, with the vectors asked for


def test_breaking_out_of_a_stream_closes_the_input(source, tiny_weights, monkeypatch):
    import evss.pipeline.session as session
    readers = []
    real = session.open_video
    monkeypatch.setattr(session, "open_video", lambda *a, **k: readers.append(real(*a, **k)) or readers[-1])
    closed = []
    stream = stream_video(source, SegmentOptions(weights=tiny_weights, progress=False))
    next(stream)
    readers[0].close = lambda real_close=readers[0].close: closed.append(1) or real_close()
    stream.close()
    assert closed == [1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(keyframe_interval=0), "--keyframe-interval must be >= 1, got 0"),
    (dict(max_memory="lots"), "lots"),
    (dict(mode="fast"), "mode 'fast' is not one of"),
    (dict(share=1.5), "share must be in [0, 1], got 1.5"),
    (dict(on_error="ignore"), "on_error 'ignore' is not one of"),
])
def test_bad_segment_options_fail_when_made(kwargs, message):
    with pytest.raises(EvssError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SegmentOptions(**kwargs)


def test_bad_output_options_fail_when_made():
    with pytest.raises(EvssError, match="layout 'grid' is not one of"):
        OutputOptions(layout="grid")
    with pytest.raises(EvssError, match="maps takes names from fine, coarse, edge"):
        OutputOptions(maps=("fine", "blur"))
    assert OutputOptions(save_labels="labels").save_labels.name == "labels"  # str becomes a Path


def test_a_missing_input_is_named_before_the_weights_are_loaded(tmp_path):
    with pytest.raises(EvssError, match="nope.mp4: no such file"):
        segment_video(tmp_path / "nope.mp4", tmp_path / "out.mp4", SegmentOptions(weights=tmp_path / "missing"))
    assert not (tmp_path / "out.mp4").exists()


def test_stream_video_under_a_low_memory_budget_gives_labels_at_the_frames_size(tmp_path, tiny_weights):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(panning_clip(2, 600, 800, step=2)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    notes = []
    frames = list(stream_video(folder, SegmentOptions(weights=tiny_weights, max_memory="470M", progress=False),
                               return_maps=True, notice=notes.append))
    assert [f.labels.shape for f in frames] == [(600, 800)] * 2
    assert any("segmenting at" in n and "the labels upsampled to 800x600" in n for n in notes)
    assert frames[1].maps["fine"].shape == (600, 800)


def test_the_package_exports_the_pipeline_lazily():
    import subprocess
    import sys
    assert sorted(evss.__all__) == sorted(evss._EXPORTS)
    assert all(getattr(evss, name) is not None for name in evss.__all__)
    # `import evss` (and so `evss --help`) does not import torch
    code = "import sys, evss; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.fixture
def weights_at_64(tmp_path, tiny_model):
    """The tiny weights with an inference size of 64 (the longer side), as `set_deploy_config` writes it."""
    import dataclasses

    from evss.checkpoint import save_model
    from evss.config import preset
    return save_model(tmp_path / "at64.safetensors", tiny_model, dataclasses.replace(preset("tiny"), inference_size=64))


def test_the_weights_inference_size_segments_larger_frames_downscaled(tmp_path, source, tiny_weights, weights_at_64):
    """96x64 frames under weights whose inference size is 64: segmented at 64x42, labels upsampled to
    the frames' size, said once; inference_size=0 (--inference-size full) segments them as they are."""
    from evss.media import resize_image, resize_labels
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    notes = []
    options = SegmentOptions(weights=weights_at_64, mode="per_frame", progress=False)
    got = list(stream_video(source, options, notice=notes.append))
    assert [f.labels.shape for f in got] == [(64, 96)] * 8
    assert any("96x64 frames are segmented at 64x42 (longer side 64: the inference size of these weights" in n
               for n in notes), notes
    model = load(weights_at_64, notice=lambda _: None).model
    seg = VideoSegmenter(model, config=SegmenterConfig(mode="per_frame"))
    want = [resize_labels(seg.step(resize_image(f.image, 42, 64)).labels, 64, 96) for f in got]
    np.testing.assert_array_equal(np.stack([f.labels for f in got]), np.stack(want))
    full = [f.labels for f in stream_video(source, SegmentOptions(weights=weights_at_64, mode="per_frame",
                                                                   inference_size=0, progress=False),
                                           notice=notes.append)]
    plain = [f.labels for f in stream_video(source, SegmentOptions(weights=tiny_weights, mode="per_frame",
                                                                    progress=False), notice=lambda _: None)]
    np.testing.assert_array_equal(np.stack(full), np.stack(plain))
    assert not np.array_equal(np.stack(full), np.stack(want))


def test_the_inference_size_flag_overrides_the_weights(tmp_path, source, weights_at_64, capsys):
    rc = main(["segment", str(source), "-o", str(tmp_path / "a.mp4"), "--weights", str(weights_at_64), "--mode",
               "per_frame", "--inference-size", "80", "--save-labels", str(tmp_path / "a"), "-q"])
    assert rc == 0 and "segmented at 80x53 (longer side 80: --inference-size 80)" in capsys.readouterr().err
    assert _labels(tmp_path / "a").shape == (8, 64, 96)
    with pytest.raises(SystemExit):
        main(["segment", str(source), "-o", str(tmp_path / "b.mp4"), "--weights", str(weights_at_64),
              "--inference-size", "12", "-q"])
    assert "--inference-size: '12': the longer side must be at least 64 pixels (or full)" in capsys.readouterr().err
    with pytest.raises(EvssError, match="--inference-size must be at least 64 pixels"):
        SegmentOptions(inference_size=10)


def test_a_19_class_model_writes_cityscapes_palette_labels(tmp_path, source, tiny_streets_weights, capsys):
    """The label PNGs carry the Cityscapes palette and the run says 19 classes."""
    from evss.classes import CITYSCAPES
    assert main(["segment", str(source), "-o", str(tmp_path / "c.mp4"), "--weights", str(tiny_streets_weights),
                 "--save-labels", str(tmp_path / "c"), "-q"]) == 0
    assert "19 classes" in capsys.readouterr().err
    png = Image.open(sorted((tmp_path / "c").glob("*.png"))[0])
    palette = np.asarray(png.getpalette()[: 3 * 19]).reshape(19, 3)
    assert png.mode == "P" and np.array_equal(palette, np.asarray(CITYSCAPES.palette))
    assert np.asarray(png).max() < 19
