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


def test_the_legend_names_every_class_of_the_label_space_inside_the_frame():
    """Cityscapes' 19 classes: every swatch drawn, the legend inside the frame and under 60 % of its
    height where columns allow; CamVid's 11 stay in one column on a 512x256 frame."""
    from evss.visualize import draw_legend, render
    for name, (h, w) in [("cityscapes", (256, 512)), ("cityscapes", (160, 240)), ("cityscapes", (720, 1280)),
                         ("camvid", (256, 512))]:
        space = LABEL_SPACES[name]
        out = draw_legend(np.full((h, w, 3), 255, np.uint8), name)
        drawn = np.argwhere((out != 255).any(axis=2))  # (N, 2) rows and columns the legend covers
        assert drawn[:, 0].min() >= 0.4 * h - 1 and drawn[:, 1].max() < w, (name, h, w)
        pixels = {tuple(p) for p in out.reshape(-1, 3)}
        assert all(tuple(c) in pixels for c in space.palette), (name, h, w)  # a swatch of every class
    camvid = np.argwhere((draw_legend(np.full((256, 512, 3), 255, np.uint8), "camvid") != 255).any(axis=2))
    assert camvid[:, 1].max() < 100  # one column
    labels = np.tile(np.arange(19, dtype=np.uint8), (64, 8))[:, :128]  # (64, 128) every class
    frame = np.zeros((64, 128, 3), np.uint8)
    assert np.array_equal(render(frame, labels, label_space="cityscapes", alpha=1.0, legend=False),
                          LABEL_SPACES["cityscapes"].colorize(labels))
