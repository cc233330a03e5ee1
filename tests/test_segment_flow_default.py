"""`evss segment` runs with the flow source the weights' CoNet was trained with and the weights'
default mode, unless told otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from evss.checkpoint import load_model, save_model
from evss.cli import main


def _frames(folder):
    """Three random 64x96 frames as PNGs."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_the_checkpoints_flow_source_is_the_default(tmp_path, tiny_weights, capsys):
    model, config = load_model(tiny_weights)
    dis = save_model(tmp_path / "dis.safetensors", model, dataclasses.replace(config, flow_source="dis"))
    frames = _frames(tmp_path / "frames")
    assert main(["segment", str(frames), "-o", str(tmp_path / "a.mp4"), "--weights", str(dis)]) == 0
    assert "flow dis," in capsys.readouterr().err
    assert main(["segment", str(frames), "-o", str(tmp_path / "b.mp4"), "--weights", str(dis), "--flow", "learned"]) == 0
    assert "flow learned," in capsys.readouterr().err
    assert main(["segment", str(frames), "-o", str(tmp_path / "c.mp4"), "--weights", str(tiny_weights)]) == 0
    assert "flow learned," in capsys.readouterr().err  # older checkpoints: the learned FlowNet


def test_the_checkpoints_default_mode_is_the_default(tmp_path, tiny_weights, capsys):
    model, config = load_model(tiny_weights)
    warp_only = save_model(tmp_path / "w.safetensors", model, dataclasses.replace(config, default_mode="warp_only"))
    frames = _frames(tmp_path / "frames")
    assert main(["segment", str(frames), "-o", str(tmp_path / "a.mp4"), "--weights", str(warp_only)]) == 0
    assert "mode warp_only," in capsys.readouterr().err
    assert main(["segment", str(frames), "-o", str(tmp_path / "b.mp4"), "--weights", str(warp_only),
                 "--mode", "evss"]) == 0
    assert "mode evss," in capsys.readouterr().err
    assert main(["segment", str(frames), "-o", str(tmp_path / "c.mp4"), "--weights", str(tiny_weights)]) == 0
    assert "mode evss," in capsys.readouterr().err
