"""Rendering of `evss segment`'s video: colours and blending."""

from __future__ import annotations

import numpy as np

from evss.classes import LABEL_SPACES
from evss.visualize import STRIP_PIXELS, overlay


def test_overlay_blends_the_palette_colour_over_the_frame():
    rng = np.random.default_rng(0)
    space = LABEL_SPACES["camvid"]
    h, w = 3 * STRIP_PIXELS // 1000 + 7, 1000  # several strips, the last one short
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 13, (h, w)).astype(np.uint8)
    labels[0, :10] = 255  # ignored: black
    lut = np.zeros((256, 3), np.float64)
    lut[: space.num_classes] = space.palette
    for alpha in (0.5, 0.3, 1.0):
        expected = frame * (1 - alpha) + lut[labels] * alpha  # (H, W, 3) the exact blend
        out = overlay(frame, labels, label_space="camvid", alpha=alpha)
        assert out.dtype == np.uint8 and out.shape == frame.shape
        assert np.abs(out - expected).max() <= 0.5 + 1e-6  # rounded to nearest
    assert np.array_equal(space.colorize(labels), lut[labels].astype(np.uint8))
