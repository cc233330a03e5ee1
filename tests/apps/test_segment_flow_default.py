"""`evss segment` runs with the flow source the weights' CoNet was trained with and the weights'
default mode, unless told otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
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


@pytest.mark.parametrize("field, value, flag, other, old", [
    ("flow_source", "dis", "--flow", "learned", "flow learned,"),  # older checkpoints: the learned FlowNet
    ("default_mode", "warp_only", "--mode", "evss", "mode evss,"),  # older checkpoints: Algorithm 1
])
def test_the_checkpoints_choice_is_the_default(tmp_path, tiny_weights, capsys, field, value, flag, other, old):
    model, config = load_model(tiny_weights)
    weights = save_model(tmp_path / "w.safetensors", model, dataclasses.replace(config, **{field: value}))
    frames = _frames(tmp_path / "frames")
    word = flag.removeprefix("--")
    runs = [(["--weights", str(weights)], f"{word} {value},"),
            (["--weights", str(weights), flag, other], f"{word} {other},"),
            (["--weights", str(tiny_weights)], old)]
    for i, (args, needle) in enumerate(runs):
        assert main(["segment", str(frames), "-o", str(tmp_path / f"{i}.mp4"), *args]) == 0
        assert needle in capsys.readouterr().err
