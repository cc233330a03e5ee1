"""SynthDrive on disk: write_dataset's layout and manifest, broken files, crashes, foreign folders
(evss.data.synthdrive.storage)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from evss.classes import CAMVID
from evss.data.synthdrive import (
    GENERATOR_VERSION,
    SynthDriveConfig,
    SynthDriveDataset,
    read_manifest,
    storage,
    write_dataset,
)
from evss.errors import ConfigError, DataError

SMALL = SynthDriveConfig(height=64, width=128, frames=4)


def test_write_dataset_layout_and_manifest(tmp_path) -> None:
    cfg = replace(SMALL, frames=3)
    manifest_path = write_dataset(tmp_path / "sd", clips=2, seed=5, config=cfg, preview=True,
                                  progress=False)
    root = tmp_path / "sd"
    assert manifest_path == root / "manifest.json" and (root / "preview.png").is_file()
    for kind, ext in (("frames", "png"), ("labels", "png"), ("flow_bwd", "npy"), ("flow_fwd", "npy"),
                      ("occlusion", "png"), ("instances", "png")):
        assert (root / "clip_0001" / kind / f"000002.{ext}").is_file()
    manifest = json.loads(manifest_path.read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["seed"] == 5
    assert manifest["config"]["height"] == 64 and len(manifest["clips"]) == 2
    for key in ("thin_fraction", "occluded_fraction", "moving_fraction", "photometric_error",
                "label_agreement"):
        assert manifest["frame_stats"][key]["mean"] is not None
    assert set(manifest["class_stats"]["pixels_per_class"]) == set(CAMVID.names) | {"void"}


def test_zero_clips_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="clips"):
        write_dataset("unused", clips=0, seed=0, config=SMALL, progress=False)


def test_missing_or_broken_files_name_the_culprit(tmp_path) -> None:
    root = tmp_path / "sd"
    write_dataset(root, clips=1, seed=0, config=replace(SMALL, frames=2), progress=False)
    gone = root / "clip_0000" / "labels" / "000001.png"
    gone.unlink()
    with pytest.raises(DataError, match="000001.png"):
        SynthDriveDataset(root).clip(0)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(root)
    (root / "manifest.json").unlink()
    with pytest.raises(DataError, match="no manifest.json"):
        SynthDriveDataset(root)


def test_crash_leaves_no_manifest(tmp_path, monkeypatch) -> None:
    root = tmp_path / "sd"
    write_dataset(root, clips=1, seed=0, config=replace(SMALL, frames=1), progress=False)
    real = storage.generate_clip
    calls = []

    def flaky(config, seed):
        calls.append(seed)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(config, seed)

    monkeypatch.setattr(storage, "generate_clip", flaky)  # the name write_dataset calls
    with pytest.raises(RuntimeError):
        write_dataset(root, clips=3, seed=1, config=replace(SMALL, frames=1), progress=False)
    assert not (root / "manifest.json").exists()  # the old manifest went first, no new one came


def test_refuses_to_write_into_a_foreign_folder(tmp_path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a SynthDrive folder"):
        write_dataset(tmp_path, clips=1, seed=0, config=SMALL, progress=False)
