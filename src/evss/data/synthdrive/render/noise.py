"""Procedural noise for SynthDrive textures: smooth value noise, its multi-scale sum, and
noise that tiles (for the wrapped ground and sky textures)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """(h, w) float32 smooth noise with blobs about ``cell`` texels wide, std about 1."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)  # (h, w)


def fractal_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[float, ...]) -> np.ndarray:
    """Sum of value noise at several scales, halving the amplitude per octave; std about 1."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for cell in cells:
        out += amp * value_noise(rng, h, w, cell)
        total += amp * amp
        amp *= 0.5
    return out / math.sqrt(total)


def tileable_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """(h, w) float32 noise that wraps around both axes, power spectrum ~ 1 / f**beta, std 1."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(fx * fx + fy * fy)
    k[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal((h, w))) * k ** (-beta / 2)
    spec[0, 0] = 0.0
    out = np.fft.irfft2(spec, s=(h, w))
    return (out / (out.std() + 1e-8)).astype(np.float32)
