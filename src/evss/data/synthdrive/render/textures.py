"""Textures: a quad's colour mips plus per-texel class ids, and the canvas that paints them.

Textures carry a per-texel class id with :data:`TRANSPARENT` for see-through texels, so labels come
from the same nearest-texel lookup that decides coverage: labels and geometry cannot disagree.
Sprites are painted in metres on a :class:`Canvas` (see :mod:`.props` and :mod:`.agents`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from evss.classes import IGNORE_INDEX
from evss.data.synthdrive.render.noise import fractal_noise

TRANSPARENT = 254  # texel class meaning "no surface here"; never reaches a label map
SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
VOID = IGNORE_INDEX


@dataclass
class Texture:
    """A quad's appearance: colour mip pyramid and per-texel class ids (TRANSPARENT = see-through)."""

    mips: list[np.ndarray]  # level l: (~h / 2**l, ~w / 2**l, 3) float32 RGB in [0, 1]
    label: np.ndarray  # (h, w) uint8

    @staticmethod
    def build(rgb: np.ndarray, label: np.ndarray) -> "Texture":
        opaque = (label != TRANSPARENT).astype(np.float32)  # (h, w)
        if opaque.min() == 0.0:
            # Bilinear filtering reads see-through texels at sprite borders; give them the
            # colour of nearby opaque texels (normalised blur) so edges do not fade to black.
            k = max(3, (min(rgb.shape[:2]) // 8) | 1)
            num = cv2.blur(rgb * opaque[..., None], (k, k))
            den = cv2.blur(opaque, (k, k))[..., None]
            fill = num / np.maximum(den, 1e-4)
            rgb = np.where(opaque[..., None] > 0, rgb, fill)
        mips = [np.ascontiguousarray(rgb, dtype=np.float32)]
        while len(mips) < 6 and min(mips[-1].shape[:2]) >= 8:
            mips.append(cv2.pyrDown(mips[-1]))
        return Texture(mips=mips, label=np.ascontiguousarray(label))


class Canvas:
    """Draws a sprite in metres (x right, y down from the top-left corner) into colour + label."""

    def __init__(self, width_m: float, height_m: float, texel: float) -> None:
        self.texel = texel
        self.w = max(2, int(round(width_m / texel)))
        self.h = max(2, int(round(height_m / texel)))
        self.rgb = np.zeros((self.h, self.w, 3), np.float32)
        self.label = np.full((self.h, self.w), TRANSPARENT, np.uint8)

    def _p(self, pts) -> np.ndarray:
        # cv2's shift=4 gives 1/16-texel vertex precision
        return np.round(np.asarray(pts, np.float64) / self.texel * 16).astype(np.int32)

    def poly(self, pts, colour, label: int) -> None:
        p = [self._p(pts)]
        cv2.fillPoly(self.rgb, p, tuple(float(c) for c in colour), cv2.LINE_8, 4)
        cv2.fillPoly(self.label, p, int(label), cv2.LINE_8, 4)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour, label: int) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour, label)

    def line(self, p0, p1, width: float, colour, label: int) -> None:
        """A straight bar of exact width (a thin quad), so 2-texel poles stay 2 texels wide."""
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) + 1e-9
        ox, oy = -dy / n * width / 2, dx / n * width / 2
        self.poly([(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)],
                  colour, label)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour, label: int,
                thickness_m: float = 0.0) -> None:
        c, a = tuple(self._p((cx, cy))), tuple(self._p((rx, ry)))
        th = -1 if thickness_m <= 0 else max(1, int(round(thickness_m / self.texel)))
        cv2.ellipse(self.rgb, c, a, 0, 0, 360, tuple(float(x) for x in colour), th, cv2.LINE_8, 4)
        cv2.ellipse(self.label, c, a, 0, 0, 360, int(label), th, cv2.LINE_8, 4)

    def texture(self, rng: np.random.Generator, *, noise: float = 0.08, shade: float = 1.0,
                cells: tuple[float, ...] = (24.0, 6.0, 2.0)) -> Texture:
        """Finish: multiplicative multi-scale noise and a shading factor, then build mips."""
        n = fractal_noise(rng, self.h, self.w, cells)  # (h, w)
        rgb = self.rgb * (shade * (1.0 + noise * n))[..., None]
        return Texture.build(np.clip(rgb, 0.0, 1.0), self.label)


def jitter(rng: np.random.Generator, colour, amount: float = 0.06,
           tint: float | None = None) -> np.ndarray:
    """A colour with a random brightness change and a per-channel tint (default: ``amount``)."""
    c = np.asarray(colour, np.float64) * rng.uniform(1 - 2 * amount, 1 + 2 * amount)
    return np.clip(c + rng.normal(0, amount if tint is None else tint, 3), 0.02, 1.0)


def mirror(tex: Texture) -> Texture:
    """The texture flipped left to right."""
    return Texture.build(tex.mips[0][:, ::-1].copy(), tex.label[:, ::-1].copy())
