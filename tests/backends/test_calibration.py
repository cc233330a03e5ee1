"""int8 calibration frames: generated SynthDrive pairs by default, a folder's images with EVSS_CALIBRATION,
named in the IR's file name so that other frames make another int8 model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from evss.backends import calibration
from evss.errors import EvssError


@pytest.fixture
def few_pairs(monkeypatch):
    monkeypatch.setattr(calibration, "PAIRS", 4)
    monkeypatch.setattr(calibration, "CLIPS", 2)
    monkeypatch.delenv(calibration.ENV, raising=False)
    calibration._frames_at.cache_clear()
    yield
    calibration._frames_at.cache_clear()


def _folder(path, n: int, size=(40, 60)):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path / f"f{i}.png")
    return path


def test_synthdrive_pairs_by_default(few_pairs):
    assert calibration.calibration_id() == "synthdrive"
    frames = calibration.calibration_frames(32, 64)
    assert len(frames) == 8 and all(f.shape == (1, 3, 32, 64) and f.dtype == torch.float32 for f in frames)
    assert all(0 <= float(f.min()) and float(f.max()) <= 1 for f in frames)
    # consecutive frames of a drive: each pair is closer than frames of different clips
    pair = float((frames[0] - frames[1]).abs().mean())
    apart = float((frames[0] - frames[-1]).abs().mean())
    assert pair < apart
    again = calibration.calibration_frames(32, 64)
    assert all(torch.equal(a, b) for a, b in zip(frames, again))  # fixed seeds: the same frames every time


def test_a_folder_of_images_with_evss_calibration(tmp_path, few_pairs, monkeypatch):
    folder = _folder(tmp_path / "frames", 7)
    monkeypatch.setenv(calibration.ENV, str(folder))
    ident = calibration.calibration_id()
    assert ident.startswith("dir-")
    frames = calibration.calibration_frames(32, 64)  # resized to the compiled size
    assert len(frames) == 8 and frames[0].shape == (1, 3, 32, 64)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(folder / "f9.png")
    assert calibration.calibration_id() not in ("synthdrive", ident)  # other frames: another int8 model


def test_a_bad_calibration_folder_is_a_one_line_error(tmp_path, few_pairs, monkeypatch):
    monkeypatch.setenv(calibration.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(EvssError, match="EVSS_CALIBRATION=.*nowhere: not a folder of frames"):
        calibration.calibration_id()
    monkeypatch.setenv(calibration.ENV, str(_folder(tmp_path / "one", 1)))
    with pytest.raises(EvssError, match="needs at least 2 images to calibrate on, found 1"):
        calibration.calibration_frames(32, 64)
