"""The SynthDrive world: procedural textures, the planar-quad rasteriser and the street layout.

Private to :mod:`evss.data.synthdrive`, which turns what is rendered here into clips, exact flow
and occlusion, files and datasets. Sections: noise; textures (facades, trees, poles, signs, cars,
people, bicyclists, fences, clutter, ground, sky); camera and rasteriser; scene layout (camera path,
buildings, street furniture, traffic).

Geometry (used by :mod:`evss.data.synthdrive`):

* World: X to the right of the road, Y up, Z along the road (metres). The ground is Y = 0.
* Camera: OpenCV axes (x right, y down, z forward), ``p_cam = rot @ (P_world - centre)``; a pixel
  centre sits on integer (u, v) with ``u = focal * x / z + cx`` and ``cx = (W - 1) / 2``, which is the
  ``align_corners=True`` grid of :func:`evss.models.warp.warp`.
* Every surface is a plane: the ground, and textured quads ``origin + s * u + t * v`` with
  (s, t) in [0, 1]^2 (facades, trees, poles, car faces, people, ...). For a plane the map from pixel
  to (s, t) is a homography and ``1 / depth`` is affine in the pixel, so a quad is drawn exactly
  and without per-pixel ray tracing: evaluate three affine maps over its screen box, divide, test.
* The frame keeps an inverse-depth buffer (0 = nothing, i.e. sky) and an object-id buffer;
  synthdrive.py turns them into exact flow and occlusion.

Textures carry a per-texel class id with :data:`TRANSPARENT` for see-through texels, so labels come
from the same nearest-texel lookup that decides coverage: labels and geometry cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from evss.classes import IGNORE_INDEX

if TYPE_CHECKING:  # only for annotations; synthdrive imports this module
    from evss.data.synthdrive import SynthDriveConfig

TRANSPARENT = 254  # texel class meaning "no surface here"; never reaches a label map
SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
VOID = IGNORE_INDEX
NEAR = 0.25  # metres; nearer surfaces are clipped away
SKY_OBJ, GROUND_OBJ = 0, 1  # object ids; every other object gets its own id from 2 on
_QUAD_ST = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # corner (s, t)


# ---------------------------------------------------------------------------------------------
# Noise


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


# ---------------------------------------------------------------------------------------------
# Textures


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


BUILDING_COLOURS = ((0.74, 0.68, 0.56), (0.56, 0.31, 0.24), (0.60, 0.60, 0.58), (0.84, 0.82, 0.77),
                    (0.45, 0.36, 0.30), (0.82, 0.74, 0.52), (0.78, 0.60, 0.56), (0.40, 0.42, 0.45),
                    (0.66, 0.52, 0.40))
CAR_COLOURS = ((0.85, 0.85, 0.85), (0.1, 0.1, 0.11), (0.55, 0.56, 0.58), (0.6, 0.08, 0.07),
               (0.1, 0.18, 0.45), (0.2, 0.3, 0.2), (0.75, 0.7, 0.6), (0.3, 0.3, 0.33),
               (0.9, 0.75, 0.1), (0.4, 0.15, 0.35))


def facade(rng: np.random.Generator, width: float, height: float, *, texel: float, shade: float,
           side_wall: bool = False) -> Texture:
    """A building front: wall colour, floors of windows, a shop front at street level, cornice."""
    cv = Canvas(width, height, texel)
    wall = jitter(rng, BUILDING_COLOURS[rng.integers(len(BUILDING_COLOURS))])
    cv.rect(0, 0, width, height, wall, BUILDING)
    # vertical dirt streaks and plaster blotches, so walls are not flat colour
    streak = cv2.resize(rng.standard_normal((4, max(2, cv.w // 3)), dtype=np.float32), (cv.w, cv.h),
                        interpolation=cv2.INTER_CUBIC)  # (h, w)
    cv.rgb *= (1.0 - 0.05 * streak)[..., None]
    ground = rng.uniform(3.2, 4.5)
    floor_h = rng.uniform(2.8, 3.5)
    frame_col = jitter(rng, (0.9, 0.9, 0.88) if rng.random() < 0.6 else (0.2, 0.2, 0.2))
    has_windows = (not side_wall) or rng.random() < 0.4
    if has_windows:
        spacing = rng.uniform(2.0, 3.6)
        ww = rng.uniform(0.8, min(1.8, spacing - 0.5))
        wh = rng.uniform(1.2, min(2.0, floor_h - 0.8))
        n_cols = max(1, int((width - 0.6) / spacing))
        x_off = (width - n_cols * spacing) / 2 + (spacing - ww) / 2
        y = height - ground - floor_h + 0.9  # sill height above the floor
        while y - wh > 0.6:
            for c in range(n_cols):
                x0 = x_off + c * spacing
                cv.rect(x0 - 0.08, y - wh - 0.08, x0 + ww + 0.08, y + 0.08, frame_col, BUILDING)
                g = rng.uniform(0.08, 0.35)
                glass = np.array([g, g * 1.05, g * 1.2 + 0.03])
                if rng.random() < 0.2:  # a curtain or lit room
                    glass = jitter(rng, (0.7, 0.6, 0.45), 0.1) * rng.uniform(0.4, 0.9)
                cv.rect(x0, y - wh, x0 + ww, y, glass, BUILDING)
                cv.rect(x0, y - wh * 0.55, x0 + ww, y - wh * 0.55 + 0.05, frame_col, BUILDING)
            y -= floor_h
    top = height - ground
    if not side_wall and rng.random() < 0.65:  # shop front: sign band, big windows, door
        band = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.1)
        cv.rect(0, top, width, top + 0.6, band, BUILDING)
        x = rng.uniform(0.2, 1.0)
        while x < width - 1.0:
            wlen = min(rng.uniform(1.5, 4.0), width - 0.3 - x)
            g = rng.uniform(0.1, 0.3)
            cv.rect(x, top + 0.8, x + wlen, height - 0.4, (g, g * 1.05, g * 1.15), BUILDING)
            if rng.random() < 0.4:
                cv.rect(x + wlen / 2 - 0.5, top + 1.0, x + wlen / 2 + 0.5, height,
                        jitter(rng, (0.35, 0.22, 0.15)), BUILDING)
            x += wlen + rng.uniform(0.4, 1.2)
    else:
        cv.rect(0, top, width, top + 0.12, wall * 0.8, BUILDING)  # string course
    cv.rect(0, height - 0.3, width, height, wall * 0.7, BUILDING)  # plinth
    cv.rect(0, 0, width, rng.uniform(0.25, 0.6), wall * rng.uniform(0.7, 1.15), BUILDING)  # cornice
    return cv.texture(rng, noise=0.07, shade=shade, cells=(40.0, 10.0, 3.0))


def tree(rng: np.random.Generator, *, height: float, radius: float, texel: float,
         autumn: bool) -> Texture:
    """A billboard tree: trunk with a few branches under a noisy, holey crown (all class Tree)."""
    width = 2 * radius + 0.4
    cv = Canvas(width, height, texel)
    bark = jitter(rng, (0.33, 0.26, 0.2))
    cx = width / 2
    trunk_w = rng.uniform(0.18, 0.35)
    ry = min(radius * rng.uniform(0.85, 1.15), (height - 2.0) / 2)
    crown_bottom = 2 * ry + 0.1  # the crown fills the top; the bare trunk shows below it
    cy = crown_bottom - ry
    cv.poly([(cx - trunk_w / 2, height), (cx + trunk_w / 2, height), (cx + trunk_w / 4, cy),
             (cx - trunk_w / 4, cy)], bark, TREE)
    for _ in range(3):
        y0 = rng.uniform(cy, crown_bottom)
        cv.line((cx, y0), (cx + rng.uniform(-radius, radius) * 0.8, y0 - rng.uniform(0.5, 1.5)),
                trunk_w * 0.35, bark, TREE)
    # Crown: an ellipse with a noisy boundary and holes, coloured by leaf clumps.
    ys, xs = np.mgrid[0:cv.h, 0:cv.w].astype(np.float32) * texel
    d = ((xs - cx) / radius) ** 2 + ((ys - cy) / ry) ** 2  # (h, w)
    n1 = value_noise(rng, cv.h, cv.w, 0.5 / texel)
    n2 = value_noise(rng, cv.h, cv.w, 0.18 / texel)
    crown = (d < 0.75 + 0.3 * n1) & (n2 > -1.3)
    leaf = np.array((0.22, 0.36, 0.12)) if not autumn else np.array((0.55, 0.4, 0.12))
    leaf = jitter(rng, leaf, 0.04)
    light = 1.0 + 0.25 * n2 + 0.15 * value_noise(rng, cv.h, cv.w, 0.08 / texel) - 0.25 * (ys - cy) / ry
    cv.rgb[crown] = (leaf[None, :] * light[crown][:, None]).astype(np.float32)
    cv.label[crown] = TREE
    return cv.texture(rng, noise=0.05)


def street_lamp(rng: np.random.Generator, *, height: float, arm: float, texel: float,
                arm_right: bool) -> Texture:
    """A lamp post: thin shaft (class Pole) with an arm and lamp head over the road."""
    width = arm + 0.5
    cv = Canvas(width, height, texel)
    col = jitter(rng, (0.3, 0.32, 0.33) if rng.random() < 0.7 else (0.16, 0.25, 0.2))
    x = 0.25
    w = rng.uniform(0.1, 0.18)
    cv.rect(x - w * 0.8, height - 0.6, x + w * 0.8, height, col * 0.8, POLE)  # base
    cv.poly([(x - w / 2, height), (x + w / 2, height), (x + w / 3, 0.1), (x - w / 3, 0.1)], col, POLE)
    cv.line((x, 0.15), (x + arm - 0.2, 0.1), 0.07, col, POLE)
    cv.rect(x + arm - 0.55, 0.02, x + arm, 0.2, col * 0.8, POLE)
    cv.rect(x + arm - 0.5, 0.2, x + arm - 0.05, 0.26, (0.9, 0.9, 0.8), POLE)
    tex = cv.texture(rng, noise=0.06)
    return tex if arm_right else _mirror(tex)


def sign_pole(rng: np.random.Generator, *, texel: float) -> tuple[Texture, float, float]:
    """A sign post: shaft (Pole) carrying one or two plates (SignSymbol). Returns (tex, w, h)."""
    plate = rng.uniform(0.5, 0.8)
    height = rng.uniform(2.4, 3.0) + plate
    width = plate + 0.1
    cv = Canvas(width, height, texel)
    x = width / 2
    cv.rect(x - 0.035, plate * 0.5, x + 0.035, height, jitter(rng, (0.5, 0.5, 0.52)), POLE)
    y = 0.02
    for _ in range(1 if rng.random() < 0.7 else 2):
        kind = rng.integers(4)
        r = plate / 2 - 0.02
        if kind == 0:  # prohibitory: red ring, white disc, dark bar
            cv.ellipse(x, y + r, r, r, (0.75, 0.08, 0.06), SIGN)
            cv.ellipse(x, y + r, r * 0.78, r * 0.78, (0.92, 0.92, 0.9), SIGN)
            cv.rect(x - r * 0.5, y + r - 0.05, x + r * 0.5, y + r + 0.05, (0.1, 0.1, 0.1), SIGN)
        elif kind == 1:  # warning triangle
            cv.poly([(x - r, y + 2 * r), (x + r, y + 2 * r), (x, y)], (0.8, 0.1, 0.08), SIGN)
            cv.poly([(x - r * 0.7, y + 1.85 * r), (x + r * 0.7, y + 1.85 * r), (x, y + 0.45 * r)],
                    (0.95, 0.95, 0.9), SIGN)
        elif kind == 2:  # blue mandatory disc with an arrow
            cv.ellipse(x, y + r, r, r, (0.1, 0.25, 0.65), SIGN)
            cv.line((x, y + 1.6 * r), (x, y + 0.5 * r), 0.06, (0.95, 0.95, 0.95), SIGN)
        else:  # rectangular information plate
            cv.rect(x - r, y, x + r, y + 1.4 * r, jitter(rng, (0.1, 0.3, 0.6)), SIGN)
            cv.rect(x - r * 0.6, y + 0.3 * r, x + r * 0.6, y + 0.9 * r, (0.95, 0.95, 0.95), SIGN)
        y += 2 * r + 0.08
    return cv.texture(rng, noise=0.04), width, height


def traffic_light(rng: np.random.Generator, *, texel: float) -> tuple[Texture, float, float]:
    """A signal post: shaft (Pole) with a lamp box (SignSymbol). Returns (tex, w, h)."""
    height = rng.uniform(3.0, 3.8)
    width = 0.4
    cv = Canvas(width, height, texel)
    x = width / 2
    cv.rect(x - 0.05, 0.5, x + 0.05, height, jitter(rng, (0.25, 0.25, 0.25)), POLE)
    cv.rect(x - 0.16, 0.0, x + 0.16, 0.9, (0.08, 0.08, 0.08), SIGN)
    lit = rng.integers(3)
    for i, c in enumerate(((0.9, 0.1, 0.05), (0.95, 0.6, 0.05), (0.1, 0.85, 0.3))):
        cv.ellipse(x, 0.16 + 0.29 * i, 0.1, 0.1, tuple(v * (1.0 if i == lit else 0.25) for v in c),
                   SIGN)
    return cv.texture(rng, noise=0.03), width, height


def _mirror(tex: Texture) -> Texture:
    return Texture.build(tex.mips[0][:, ::-1].copy(), tex.label[:, ::-1].copy())


def car_faces(rng: np.random.Generator, *, length: float, width: float, height: float,
              texel: float, oncoming: bool) -> tuple[Texture, Texture, Texture, Texture]:
    """(near end, left side, right side, roof) of a car box; the near end is the rear unless the
    car drives towards the camera. Side textures run along +Z (front at +Z unless oncoming)."""
    body = jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.03)
    glass = np.array((0.12, 0.14, 0.18)) * rng.uniform(0.8, 1.6)
    tyre = (0.05, 0.05, 0.05)
    belt = height * rng.uniform(0.52, 0.6)  # height of the window line above the ground
    clear = 0.18
    # Near end: body, bumper, lights, plate, trapezoid cabin with a window, wheels below.
    end = Canvas(width, height, texel)
    top_w = width * 0.78
    y_belt = height - belt
    end.poly([(0.02, height - clear), (width - 0.02, height - clear), (width, y_belt + 0.1),
              (width - 0.05, y_belt), (0.05, y_belt), (0, y_belt + 0.1)], body, CAR)
    end.poly([(0.1, y_belt), (width - 0.1, y_belt), ((width + top_w) / 2, 0.02),
              ((width - top_w) / 2, 0.02)], body * 0.95, CAR)
    end.poly([(0.2, y_belt - 0.04), (width - 0.2, y_belt - 0.04), ((width + top_w) / 2 - 0.08, 0.1),
              ((width - top_w) / 2 + 0.08, 0.1)], glass, CAR)
    for x in (0.08, width - 0.3):
        end.rect(x, height - 0.36, x + 0.22, height, tyre, CAR)
    end.rect(0.02, height - clear - 0.18, width - 0.02, height - clear, body * 0.45, CAR)  # bumper
    lamp = (0.95, 0.92, 0.8) if oncoming else (0.75, 0.06, 0.05)
    for x in (0.06, width - 0.34):
        end.rect(x, y_belt + 0.1, x + 0.28, y_belt + 0.22, lamp, CAR)
    end.rect(width / 2 - 0.26, height - clear - 0.3, width / 2 + 0.26, height - clear - 0.19,
             (0.9, 0.85, 0.3) if rng.random() < 0.5 else (0.92, 0.92, 0.92), CAR)
    # Side: wheels, body with rounded ends, cabin polygon with windows, door lines.
    side = Canvas(length, height, texel)
    side.poly([(0.05, height - clear), (length - 0.05, height - clear), (length, y_belt + 0.25),
               (length - 0.15, y_belt), (0.15, y_belt), (0, y_belt + 0.25)], body, CAR)
    f0, f1, r0, r1 = 0.22 * length, 0.35 * length, 0.72 * length, 0.82 * length  # cabin outline
    side.poly([(f0, y_belt), (r1, y_belt), (r0, 0.02), (f1, 0.02)], body * 0.95, CAR)
    side.poly([(f0 + 0.12, y_belt - 0.04), (r1 - 0.1, y_belt - 0.04), (r0 - 0.06, 0.1),
               (f1 + 0.06, 0.1)], glass, CAR)
    side.rect(0.5 * (f1 + r0) - 0.04, 0.08, 0.5 * (f1 + r0) + 0.04, y_belt, body * 0.9, CAR)
    for xw in (0.17 * length, 0.83 * length):
        side.ellipse(xw, height - 0.32, 0.32, 0.32, tyre, CAR)
        side.ellipse(xw, height - 0.32, 0.17, 0.17, (0.55, 0.55, 0.57), CAR)
    for xd in (0.5 * (f1 + r0), f0 + 0.1):
        side.line((xd, y_belt), (xd, height - clear - 0.1), 0.02, body * 0.5, CAR)
    roof = Canvas(width * 0.78, (r0 - f1), texel * 2)
    roof.rect(0, 0, width, length, body * 0.85, CAR)
    # Canvas x = 0 is the front (longer hood). Quad s runs along +Z, so a car driving towards +Z
    # (its rear towards the camera) needs the side mirrored to put its front at large Z.
    left = side.texture(rng, noise=0.04, shade=0.85)
    right = side.texture(rng, noise=0.04, shade=0.75)
    if not oncoming:
        left, right = _mirror(left), _mirror(right)
    return end.texture(rng, noise=0.04), left, right, roof.texture(rng, noise=0.05, shade=1.1)


def person(rng: np.random.Generator, *, height: float, texel: float, side_view: bool) -> Texture:
    """A pedestrian silhouette (front/back or side view, mid-stride); all class Pedestrian."""
    width = 0.8 if side_view else 0.66
    cv = Canvas(width, height, texel)
    skin = jitter(rng, ((0.85, 0.67, 0.55), (0.6, 0.42, 0.3), (0.35, 0.24, 0.18))[rng.integers(3)],
                  0.03)
    shirt = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    trousers = jitter(rng, ((0.12, 0.14, 0.25), (0.1, 0.1, 0.1), (0.4, 0.4, 0.42), (0.6, 0.52, 0.4))
                      [rng.integers(4)], 0.03)
    hair = jitter(rng, ((0.1, 0.07, 0.05), (0.35, 0.25, 0.12), (0.6, 0.5, 0.3))[rng.integers(3)], 0.03)
    h = height
    cx = width / 2
    hip, shoulder, coat = 0.48 * h, 0.81 * h, rng.random() < 0.35
    y = lambda z: h - z  # noqa: E731  (height above ground -> canvas y)
    if side_view:
        stride = rng.uniform(0.15, 0.3)
        for sx, col in ((stride, trousers * 0.8), (-stride, trousers)):
            cv.poly([(cx - 0.06, y(hip)), (cx + 0.06, y(hip)), (cx + sx + 0.06, y(0.04)),
                     (cx + sx - 0.06, y(0.04))], col, PEDESTRIAN)
            cv.rect(cx + sx - 0.07, y(0.06), cx + sx + 0.12, h, (0.08, 0.07, 0.07), PEDESTRIAN)
        low = hip - (0.15 if coat else 0.0)
        cv.poly([(cx - 0.12, y(low)), (cx + 0.12, y(low)), (cx + 0.1, y(shoulder)),
                 (cx - 0.12, y(shoulder))], shirt, PEDESTRIAN)
        cv.line((cx, y(shoulder - 0.03)), (cx + stride * 0.8, y(hip + 0.02)), 0.08, shirt * 0.85,
                PEDESTRIAN)
    else:
        for sx in (-0.08, 0.08):
            foot = cx + sx * 1.2
            cv.poly([(cx + sx - 0.065, y(hip)), (cx + sx + 0.065, y(hip)), (foot + 0.05, y(0.05)),
                     (foot - 0.05, y(0.05))], trousers, PEDESTRIAN)
            cv.rect(foot - 0.06, y(0.06), foot + 0.06, h, (0.08, 0.07, 0.07), PEDESTRIAN)
        low = hip - (0.2 if coat else 0.0)
        cv.poly([(cx - 0.17, y(low)), (cx + 0.17, y(low)), (cx + 0.21, y(shoulder)),
                 (cx - 0.21, y(shoulder))], shirt, PEDESTRIAN)
        for sx in (-1, 1):
            cv.line((cx + sx * 0.21, y(shoulder - 0.03)), (cx + sx * 0.26, y(hip + 0.02)), 0.08,
                    shirt * 0.85, PEDESTRIAN)
            cv.ellipse(cx + sx * 0.26, y(hip), 0.045, 0.05, skin, PEDESTRIAN)
    cv.rect(cx - 0.04, y(shoulder + 0.05), cx + 0.04, y(shoulder - 0.02), skin, PEDESTRIAN)  # neck
    cv.ellipse(cx, y(0.93 * h), 0.09, 0.115, skin, PEDESTRIAN)
    cv.ellipse(cx, y(0.96 * h), 0.095, 0.075, hair, PEDESTRIAN)
    return cv.texture(rng, noise=0.05, cells=(12.0, 4.0))


def bicyclist(rng: np.random.Generator, *, texel: float, side_view: bool) -> Texture:
    """A rider on a bicycle (side or rear view); rider and bicycle are both class Bicyclist."""
    h = rng.uniform(1.65, 1.85)
    frame = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    shirt = jitter(rng, (rng.random(), rng.random(), rng.random()), 0.05)
    dark, skin = (0.07, 0.07, 0.08), jitter(rng, (0.8, 0.62, 0.5), 0.04)
    trousers = jitter(rng, (0.15, 0.15, 0.22), 0.03)
    if side_view:
        width = 1.8
        cv = Canvas(width, h, texel)
        r = 0.34
        back, front = (0.38, h - r), (1.42, h - r)
        seat, bar, crank = (0.72, h - 0.9), (1.25, h - 1.0), (0.85, h - r)
        for c in (back, front):
            cv.ellipse(c[0], c[1], r, r, dark, BICYCLIST, thickness_m=0.05)
            cv.line((c[0], c[1] - r), (c[0], c[1] + r), 0.012, (0.6, 0.6, 0.6), BICYCLIST)
        tubes = ((back, crank), (crank, seat), (seat, back), (crank, bar), (seat, bar), (bar, front))
        for a, b in tubes:
            cv.line(a, b, 0.04, frame, BICYCLIST)
        shoulder = (1.0, h - 1.45)
        cv.line((seat[0] - 0.05, seat[1] - 0.05), shoulder, 0.3, shirt, BICYCLIST)
        cv.line(shoulder, (bar[0], bar[1] - 0.02), 0.07, shirt * 0.85, BICYCLIST)
        knee = (1.0, h - 0.75)
        cv.line(seat, knee, 0.13, trousers, BICYCLIST)
        cv.line(knee, (crank[0] + 0.1, crank[1] + 0.1), 0.1, trousers, BICYCLIST)
        cv.ellipse(shoulder[0] + 0.08, shoulder[1] - 0.16, 0.1, 0.11, skin, BICYCLIST)
        cv.ellipse(shoulder[0] + 0.07, shoulder[1] - 0.21, 0.12, 0.07, jitter(rng, (0.2, 0.2, 0.6)),
                   BICYCLIST)  # helmet
    else:
        width = 0.7
        cv = Canvas(width, h, texel)
        cx = width / 2
        cv.rect(cx - 0.022, h - 0.7, cx + 0.022, h, dark, BICYCLIST)  # rear wheel seen edge-on
        cv.line((cx - 0.3, h - 1.02), (cx + 0.3, h - 1.02), 0.03, frame, BICYCLIST)  # handlebar
        for sx in (-1, 1):
            cv.line((cx + sx * 0.07, h - 0.95), (cx + sx * 0.1, h - 0.35), 0.11, trousers, BICYCLIST)
            cv.line((cx + sx * 0.18, h - 1.42), (cx + sx * 0.28, h - 1.05), 0.07, shirt * 0.85,
                    BICYCLIST)
        cv.poly([(cx - 0.16, h - 0.95), (cx + 0.16, h - 0.95), (cx + 0.2, h - 1.45),
                 (cx - 0.2, h - 1.45)], shirt, BICYCLIST)
        cv.ellipse(cx, h - 1.58, 0.095, 0.11, jitter(rng, (0.25, 0.18, 0.12)), BICYCLIST)
    return cv.texture(rng, noise=0.05, cells=(12.0, 4.0))


def fence(rng: np.random.Generator, *, length: float, height: float, texel: float) -> Texture:
    """A railing of thin bars between rails, or a wooden board fence; class Fence."""
    cv = Canvas(length, height, texel)
    if rng.random() < 0.6:
        col = jitter(rng, ((0.12, 0.14, 0.12), (0.15, 0.25, 0.18), (0.5, 0.5, 0.5))[rng.integers(3)])
        pitch, bar = rng.uniform(0.1, 0.2), rng.uniform(0.02, 0.04)
        x = 0.02
        while x < length:
            cv.rect(x, 0.05, x + bar, height, col, FENCE)
            x += pitch
        for yy in (0.0, height - 0.2):
            cv.rect(0, yy, length, yy + 0.05, col, FENCE)
        for xx in np.arange(0.0, length, 2.0):
            cv.rect(xx, 0, xx + 0.07, height, col * 0.8, FENCE)
    else:
        wood = jitter(rng, (0.5, 0.38, 0.25))
        cv.rect(0, 0, length, height, wood, FENCE)
        x = 0.0
        while x < length:
            cv.rect(x, 0, x + 0.015, height, wood * 0.6, FENCE)
            x += rng.uniform(0.12, 0.2)
    return cv.texture(rng, noise=0.08)


def clutter(rng: np.random.Generator, *, texel: float) -> tuple[Texture, float, float]:
    """Street furniture nobody labels (bins, bollards, cabinets): class void. Returns (tex, w, h)."""
    kind = rng.integers(3)
    w, h = ((0.55, 1.0), (0.18, 0.9), (0.8, 1.3))[kind]
    cv = Canvas(w, h, texel)
    col = jitter(rng, ((0.15, 0.3, 0.2), (0.2, 0.2, 0.2), (0.55, 0.55, 0.5))[kind])
    cv.poly([(0.03, h), (w - 0.03, h), (w, 0.08), (0, 0.08)], col, VOID)
    cv.rect(0.0, 0.0, w, 0.1, col * 0.7, VOID)
    return cv.texture(rng, noise=0.08), w, h


# ---------------------------------------------------------------------------------------------
# Ground and sky looks


@dataclass
class GroundLook:
    """The ground as a texture tile in world (X, Z): road, markings, curbs, paving slabs."""

    mips: list[np.ndarray]  # level 0: (period / texel, 2 * half_width / texel, 3), wraps along Z
    label_lut: np.ndarray  # (tile width,) uint8 class per texel column: Road or Pavement
    half_width: float  # tile spans X in [-half_width, half_width]
    texel: float  # metres per texel at level 0
    mod: np.ndarray  # (256, 256, 2) float32: brightness variation and shadow factor, wraps
    mod_texel: float  # metres per texel of ``mod``


def ground_look(rng: np.random.Generator, *, road_half: float, lane_w: float, lanes: int,
                parking: float, facade_x: float, difficulty: float) -> GroundLook:
    texel, period_tx, width_tx = 0.05, 256, 2048  # 12.8 m period along Z, X in [-51.2, 51.2]
    half = width_tx * texel / 2
    xs = (np.arange(width_tx) + 0.5) * texel - half  # (W,) texel centres in X
    zs = (np.arange(period_tx) + 0.5) * texel  # (P,)
    ax = np.abs(xs)
    road = ax < road_half
    curb = (ax >= road_half) & (ax < road_half + 0.2)
    label_lut = np.where(road, ROAD, PAVEMENT).astype(np.uint8)
    fine = tileable_noise(rng, period_tx, width_tx, 0.6)  # (P, W) grain
    blotch = tileable_noise(rng, period_tx, width_tx, 2.5)
    asphalt = jitter(rng, (0.36, 0.36, 0.37), 0.06, tint=0.008)
    paving = ((0.58, 0.57, 0.55), (0.62, 0.56, 0.47), (0.55, 0.4, 0.35))[rng.integers(3)]
    paving = jitter(rng, paving, 0.05, tint=0.015)
    img = np.empty((period_tx, width_tx, 3), np.float32)
    img[:, :] = np.where(road[:, None], asphalt[None, :], paving[None, :])[None]
    # Paving slabs: per-slab brightness, dark joints (grid aligned with the curb).
    slab = period_tx * texel / rng.choice([16, 20, 24])
    px = np.floor(np.maximum(ax - road_half - 0.2, 0) / slab).astype(np.int64)
    px *= np.sign(xs).astype(np.int64)  # slab column index, mirrored across the road
    pz = np.floor(zs / slab).astype(np.int64)
    cell = rng.uniform(-0.06, 0.06, (8 * 1024,))[(px[None, :] * 131 + pz[:, None] * 7919) % (8 * 1024)]
    joint = ((np.abs(((ax - road_half - 0.2) / slab + 0.5) % 1 - 0.5) * slab < texel)[None, :]
             | (np.abs((zs / slab + 0.5) % 1 - 0.5) * slab < texel)[:, None])
    pav = ~road[None, :] & ~curb[None, :]
    shade = 1.0 + 0.05 * fine + 0.06 * blotch + np.where(pav, cell - 0.25 * joint, 0.0)
    # Tyre tracks darken the lane centres' wheel paths.
    track = np.zeros_like(xs)
    for k in range(-lanes, lanes):
        c = (k + 0.5) * lane_w
        track += np.exp(-((xs - c - 0.8) / 0.35) ** 2) + np.exp(-((xs - c + 0.8) / 0.35) ** 2)
    shade -= 0.07 * (track * road)[None, :]
    img *= shade[..., None]
    img[:, curb] = jitter(rng, (0.62, 0.62, 0.6), 0.03) * (1 + 0.04 * fine[:, curb, None])
    # Lane markings (road class: CamVid-11 merges markings into Road).
    white = np.array((0.85, 0.85, 0.82)) * (1 + 0.1 * blotch[..., None])  # (P, W, 3) worn paint
    dash = (zs % 6.4) < rng.uniform(2.0, 3.5)  # (P,)
    mark = np.zeros((period_tx, width_tx), bool)
    lw = rng.uniform(0.1, 0.16)
    for k in range(1, lanes):  # lane separators, dashed
        for sgn in (-1, 1):
            mark |= (np.abs(xs - sgn * k * lane_w) < lw / 2)[None, :] & dash[:, None]
    centre_solid = rng.random() < 0.4
    mark |= (np.abs(xs) < lw / 2)[None, :] & (dash[:, None] | centre_solid)
    if parking > 0:  # edge of the carriageway and parking bays
        for sgn in (-1, 1):
            mark |= (np.abs(xs - sgn * lanes * lane_w) < lw / 2)[None, :]
            bay = (np.abs(xs - sgn * (lanes * lane_w + parking / 2)) < parking / 2)[None, :]
            mark |= bay & (np.abs(zs - 3.2) < lw / 2)[:, None]
    img[mark] = white[mark]
    # Beyond the facade line (alleys between buildings): darker asphalt.
    alley = ax > facade_x + 0.2
    img[:, alley] = (asphalt * 0.85)[None, None, :] * shade[:, alley, None]
    mod = np.empty((256, 256, 2), np.float32)
    mod[..., 0] = 1.0 + 0.06 * tileable_noise(rng, 256, 256, 2.5)
    shadow = tileable_noise(rng, 256, 256, 3.0)
    amount = rng.uniform(0.0, 0.4) * min(1.0, difficulty) if rng.random() < 0.6 else 0.0
    mod[..., 1] = 1.0 - amount * np.clip((shadow - 0.6) * 3.0, 0.0, 1.0)
    mips = [np.clip(img, 0, 1)]
    while len(mips) < 7:
        mips.append(cv2.pyrDown(mips[-1]))
    return GroundLook(mips=mips, label_lut=label_lut, half_width=half, texel=texel, mod=mod,
                      mod_texel=0.25)


@dataclass
class SkyLook:
    """Sky colour as a function of direction only, so its flow is pure rotation."""

    top: np.ndarray  # (3,) colour high up
    horizon: np.ndarray  # (3,) colour at the horizon
    cloud: np.ndarray  # (3,) cloud colour
    cover: float  # 0 = clear, 1 = overcast
    tile: np.ndarray  # (256, 256) float32 wrapping noise
    scale: float  # tile texels per unit of tan(angle)


def sky_look(rng: np.random.Generator) -> SkyLook:
    kind = rng.choice(3, p=[0.4, 0.4, 0.2])
    if kind == 0:  # clear blue
        top, hor, cover = (0.3, 0.5, 0.85), (0.72, 0.82, 0.95), rng.uniform(0.0, 0.5)
    elif kind == 1:  # overcast, as in much of CamVid
        g = rng.uniform(0.7, 0.9)
        top, hor, cover = (g * 0.9, g * 0.92, g), (g, g, g), rng.uniform(0.5, 1.0)
    else:  # evening
        top, hor, cover = (0.35, 0.45, 0.7), (0.9, 0.78, 0.65), rng.uniform(0.1, 0.6)
    return SkyLook(top=jitter(rng, top, 0.03), horizon=jitter(rng, hor, 0.03),
                   cloud=jitter(rng, (0.93, 0.93, 0.93), 0.02), cover=cover,
                   tile=tileable_noise(rng, 256, 256, 3.2), scale=rng.uniform(150, 300))


# ---------------------------------------------------------------------------------------------
# Camera and rasteriser


@dataclass(frozen=True)
class Camera:
    rot: np.ndarray  # (3, 3) world -> camera
    centre: np.ndarray  # (3,) world position
    focal: float  # pixels
    width: int
    height: int

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1.0]])

    def plane_map(self, origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        """3x3 map from pixel (u, v, 1) to (s, t, 1) / depth for the plane origin + s u + t v.

        Row 2 of the result, applied to a pixel, is the inverse camera depth of the plane there.
        None when the camera lies in the plane (it is seen edge-on and covers no pixel centre).
        """
        m = self.k @ self.rot @ np.column_stack([u, v, origin - self.centre])  # (3, 3)
        if abs(np.linalg.det(m)) < 1e-9 * np.abs(m).max() ** 3:
            return None
        return np.linalg.inv(m)


@dataclass
class FrameBuffers:
    """What one rendered frame holds per pixel."""

    rgb: np.ndarray  # (H, W, 3) float32
    inv_depth: np.ndarray  # (H, W) float32, 1 / camera z; 0 where nothing was drawn (sky)
    obj: np.ndarray  # (H, W) int32 object id; 0 = sky
    label: np.ndarray  # (H, W) uint8 class id

    @staticmethod
    def empty(h: int, w: int) -> "FrameBuffers":
        return FrameBuffers(rgb=np.zeros((h, w, 3), np.float32), inv_depth=np.zeros((h, w), np.float32),
                            obj=np.zeros((h, w), np.int32), label=np.zeros((h, w), np.uint8))


def _affine(m: np.ndarray, row: int, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    return (m[row, 0] * us)[None, :] + (m[row, 1] * vs + m[row, 2])[:, None]  # (h, w)


def _sample(mips: list[np.ndarray], mx: np.ndarray, my: np.ndarray, level: np.ndarray | int,
            border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Bilinear colour at level-0 texel coordinates (mx, my) (texel centres on integers) with a
    per-pixel mip level; each level is sampled only over the box where it is used."""
    def at(lv: int, sl: tuple[slice, slice]) -> np.ndarray:
        img = mips[lv]
        if lv == 0:
            return cv2.remap(img, mx[sl], my[sl], cv2.INTER_LINEAR, borderMode=border)
        fx = img.shape[1] / mips[0].shape[1]
        fy = img.shape[0] / mips[0].shape[0]
        return cv2.remap(img, (mx[sl] + 0.5) * fx - 0.5, (my[sl] + 0.5) * fy - 0.5, cv2.INTER_LINEAR,
                         borderMode=border)

    full = (slice(None), slice(None))
    if np.isscalar(level):
        return at(int(level), full)
    lo, hi = int(level.min()), int(level.max())
    if lo == hi:
        return at(lo, full)
    out = np.empty(mx.shape + (3,), np.float32)
    for lv in range(lo, hi + 1):
        mask = level == lv
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            continue
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        np.copyto(out[sl], at(lv, sl), where=mask[sl][..., None])
    return out


def _mip_level(inv_z: np.ndarray, per_texel: float, n: int) -> np.ndarray:
    """Mip level from a footprint of ``1 / (inv_z * per_texel)`` texels per pixel."""
    with np.errstate(divide="ignore"):
        lv = np.floor(-np.log2(np.maximum(inv_z, 1e-9) * per_texel))
    return np.clip(lv, 0, n - 1).astype(np.int8)


def screen_box(pc: np.ndarray, cam: Camera) -> tuple[int, int, int, int] | None:
    """Pixel box [x0, x1) x [y0, y1) of a polygon given in camera coordinates (N, 3), after
    clipping it at the near plane; None if nothing is in view."""
    z = pc[:, 2]
    if (z <= NEAR).all():
        return None
    if (z <= NEAR).any():  # Sutherland-Hodgman against z = NEAR
        pts = []
        for i in range(len(pc)):
            a, b = pc[i], pc[(i + 1) % len(pc)]
            if a[2] > NEAR:
                pts.append(a)
            if (a[2] > NEAR) != (b[2] > NEAR):
                pts.append(a + (b - a) * (NEAR - a[2]) / (b[2] - a[2]))
        pc = np.array(pts)
    u = cam.focal * pc[:, 0] / pc[:, 2] + cam.cx
    v = cam.focal * pc[:, 1] / pc[:, 2] + cam.cy
    x0, x1 = max(0, math.ceil(u.min())), min(cam.width, math.floor(u.max()) + 1)
    y0, y1 = max(0, math.ceil(v.min())), min(cam.height, math.floor(v.max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


def draw_quad(fb: FrameBuffers, m: np.ndarray, box: tuple[int, int, int, int], tex: Texture,
              obj: int, per_texel: float, max_inv: float) -> None:
    """Z-buffered draw of a textured quad inside screen ``box``.

    ``m`` is the quad's :meth:`Camera.plane_map`; ``per_texel`` is focal * |u| / texture width
    (pixels per texel at depth 1, for the mip level); ``max_inv`` bounds the quad's inverse
    depth, so a box already covered by nearer surfaces is skipped without per-pixel work.
    """
    x0, x1, y0, y1 = box
    zbuf = fb.inv_depth[y0:y1, x0:x1]
    if zbuf.min() >= max_inv:
        return
    us = np.arange(x0, x1, dtype=np.float64)
    vs = np.arange(y0, y1, dtype=np.float64)
    inv_z = _affine(m, 2, us, vs).astype(np.float32)  # (h, w) 1 / depth
    front = (inv_z > zbuf) & (inv_z < 1.0 / NEAR)
    if not front.any():
        return
    th, tw = tex.label.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        rz = 1.0 / inv_z
        mx = _affine(m * tw, 0, us, vs).astype(np.float32) * rz - 0.5  # (h, w) texel coordinates
        my = _affine(m * th, 1, us, vs).astype(np.float32) * rz - 0.5
    # The nearest texel decides coverage and class; outside the quad reads TRANSPARENT.
    lab = cv2.remap(tex.label, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=TRANSPARENT)  # (h, w)
    win = front & (lab != TRANSPARENT)
    if not win.any():
        return
    n = len(tex.mips)
    level = _mip_level(inv_z[win], per_texel, n)
    if level.min() == level.max():
        col = _sample(tex.mips, mx, my, int(level[0]))
    else:
        col = _sample(tex.mips, mx, my, _mip_level(inv_z, per_texel, n))
    np.copyto(zbuf, inv_z, where=win)
    np.copyto(fb.rgb[y0:y1, x0:x1], col, where=win[..., None])
    np.copyto(fb.label[y0:y1, x0:x1], lab, where=win)
    fb.obj[y0:y1, x0:x1][win] = obj


def draw_ground(fb: FrameBuffers, cam: Camera, look: GroundLook, obj: int) -> None:
    """The plane Y = 0 under everything else: class per X column, colour from the wrapped tile."""
    m = cam.plane_map(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]))  # (s, t) = (X, Z)
    if m is None:
        return
    w, h = cam.width, cam.height
    # inverse depth is affine in (u, v); find the first row where any column sees the ground
    a, b, c = m[2]
    if abs(b) < 1e-12:
        y0 = 0
    else:
        rows = [-(a * uu + c) / b for uu in (0.0, w - 1.0)]
        y0 = int(np.clip(math.floor(min(rows)) if b > 0 else 0, 0, h))
    if y0 >= h:
        return
    us, vs = np.arange(w, dtype=np.float64), np.arange(y0, h, dtype=np.float64)
    inv_z = _affine(m, 2, us, vs).astype(np.float32)  # (h', w)
    zbuf = fb.inv_depth[y0:]
    win = (inv_z > zbuf) & (inv_z < 1.0 / NEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        rz = 1.0 / inv_z
        gx = _affine(m, 0, us, vs).astype(np.float32) * rz  # (h', w) world X
        gz = _affine(m, 1, us, vs).astype(np.float32) * rz  # world Z
    gx = np.where(win, gx, 0.0).astype(np.float32)
    gz = np.where(win, gz, 0.0).astype(np.float32)
    th, tw = look.mips[0].shape[:2]
    mx = np.clip((gx + look.half_width) / look.texel, 0.0, tw - 1.0) - 0.5  # (h', w) texel coords
    my = (gz / look.texel) % th - 0.5  # wraps along Z
    # Ground is seen at a grazing angle: footprint ~ z / f across and z^2 / (f * height) along.
    cam_h = max(float(cam.centre[1]), 0.1)
    with np.errstate(divide="ignore"):
        foot = np.sqrt(np.maximum(rz, 0) ** 3 / cam_h) / (cam.focal * look.texel)  # texels / px
        lv = np.clip(np.floor(np.log2(np.maximum(foot, 1e-6))), 0, len(look.mips) - 1)
    lv = np.where(win, lv, 0).astype(np.int8)
    col = _sample(look.mips, mx.astype(np.float32), my.astype(np.float32), lv,
                  border=cv2.BORDER_WRAP)  # (h', w, 3)
    mh, mw = look.mod.shape[:2]
    mod = cv2.remap(look.mod, (gx / look.mod_texel) % mw, (gz / look.mod_texel) % mh,
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)  # (h', w, 2)
    col *= (mod[..., 0] * mod[..., 1])[..., None]
    lab = look.label_lut[np.clip((mx + 0.5).astype(np.int32), 0, tw - 1)]
    np.copyto(zbuf, inv_z, where=win)
    np.copyto(fb.rgb[y0:], col, where=win[..., None])
    np.copyto(fb.label[y0:], lab, where=win)
    fb.obj[y0:][win] = obj


def draw_sky(fb: FrameBuffers, cam: Camera, look: SkyLook) -> None:
    """Fill every pixel nothing else covered with the sky, coloured by world direction."""
    empty = fb.inv_depth == 0  # (H, W)
    rows = np.flatnonzero(empty.any(axis=1))
    if rows.size == 0:
        return
    y1 = rows[-1] + 1
    xn = (np.arange(cam.width) - cam.cx) / cam.focal
    yn = (np.arange(y1) - cam.cy) / cam.focal
    rt = cam.rot.T  # camera -> world
    d = [(rt[i, 0] * xn)[None, :] + (rt[i, 1] * yn + rt[i, 2])[:, None] for i in range(3)]  # world dir
    dz = np.maximum(d[2], 1e-3)
    a = (d[0] / dz).astype(np.float32)  # tan of azimuth-ish: a function of direction only
    b = (d[1] / dz).astype(np.float32)  # tan of elevation-ish
    mix = np.clip(b / 0.6, 0, 1)[..., None] ** 0.7  # (y1, W, 1) horizon -> top gradient
    col = look.horizon[None, None] * (1 - mix) + look.top[None, None] * mix
    n = cv2.remap(look.tile, (a * look.scale) % 256, (b * look.scale * 2) % 256, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_WRAP)  # (y1, W)
    cloud = np.clip((n + 1.2 * look.cover - 0.6) * 0.8, 0, 1)[..., None]
    col = (col * (1 - cloud) + look.cloud[None, None] * (0.85 + 0.15 * n[..., None]) * cloud)
    np.copyto(fb.rgb[:y1], col.astype(np.float32), where=empty[:y1, :, None])
    fb.label[:y1][empty[:y1]] = SKY


# ---------------------------------------------------------------------------------------------
# Scene: camera path, static street, moving agents (what synthdrive.generate_clip renders)


@dataclass
class Scene:
    """Everything needed to render any frame of a clip: cameras, textured quads, object tracks."""

    cams: list[Camera]  # one per frame
    textures: list[Texture]
    q_origin: np.ndarray  # (N, 3) quad origin relative to its object's position
    q_u: np.ndarray  # (N, 3)
    q_v: np.ndarray  # (N, 3)
    q_obj: np.ndarray  # (N,) int object id
    q_tex: np.ndarray  # (N,) int texture index
    q_texel: np.ndarray  # (N,) metres per texel along u (for the mip level)
    obj_pos: np.ndarray  # (n_obj, T, 3) world offset of every object per frame
    moving: np.ndarray  # (n_obj,) bool
    ground: GroundLook
    sky: SkyLook
    colour: np.ndarray  # (T, 3, 3) per-frame colour matrix (palette, hue, illumination)
    vignette: np.ndarray  # (H, W, 1) float32


class _Builder:
    """Collects textures, quads and object tracks while a scene is laid out."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.textures: list[Texture] = []
        self.quads: list[tuple] = []
        self.pos: list[np.ndarray] = [np.zeros((frames, 3)), np.zeros((frames, 3))]  # sky, ground
        self.moving: list[bool] = [False, False]

    def obj(self, start, velocity=(0.0, 0.0, 0.0), dt: float = 0.0) -> int:
        steps = np.arange(self.frames)[:, None] * dt  # (T, 1) seconds
        track = np.asarray(start, float)[None, :] + steps * np.asarray(velocity, float)[None, :]
        self.pos.append(track)  # (T, 3)
        self.moving.append(bool(np.any(np.asarray(velocity) != 0)))
        return len(self.pos) - 1

    def tex(self, texture: Texture) -> int:
        self.textures.append(texture)
        return len(self.textures) - 1

    def quad(self, obj: int, tex: int, origin, u, v) -> None:
        self.quads.append((np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float),
                           obj, tex))

    def billboard(self, obj: int, tex: int, width: float, height: float, mirror: bool = False) -> None:
        """An upright sprite facing -Z (towards the camera), bottom centre at the object position."""
        if mirror:
            self.quad(obj, tex, (width / 2, height, 0.0), (-width, 0, 0), (0, -height, 0))
        else:
            self.quad(obj, tex, (-width / 2, height, 0.0), (width, 0, 0), (0, -height, 0))


def _smooth_series(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """(n,) smooth zero-mean noise with std about 1 (Gaussian-filtered white noise)."""
    pad = int(3 * sigma_frames) + 1
    x = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / max(sigma_frames, 1e-3)) ** 2)
    y = np.convolve(x, k / np.sqrt((k * k).sum()), mode="same")[pad:pad + n]
    return y


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World (X right, Y up, Z forward) -> camera (x right, y down, z forward); pitch > 0 looks down."""
    b = np.diag([1.0, -1.0, 1.0])
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), \
        math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry @ b


def build_scene(cfg: SynthDriveConfig, seed: int) -> Scene:
    """Lay out one clip's street, traffic and camera path; deterministic in (cfg, seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    T, dt, d = cfg.frames, 1.0 / cfg.fps, cfg.difficulty
    b = _Builder(T)
    # Street cross-section.
    lanes = 1 if rng.random() < 0.55 else 2
    lane_w = rng.uniform(3.0, 3.6)
    parking = 2.2 if rng.random() < 0.5 else 0.0
    road_half = lanes * lane_w + parking
    facade_x = road_half + rng.uniform(2.5, 5.0)
    # Ego motion: forward with varying speed, lane wiggle, yaw sway, shake.
    vmax = cfg.max_speed * min(max(d, 0.15), 1.5)
    v = vmax * rng.uniform(0.3, 0.9) * (1 + 0.3 * min(d, 1.5) * _smooth_series(rng, T, 8))
    v = np.clip(v, 0.0, vmax)  # (T,) m/s
    z_cam = np.concatenate([[0.0], np.cumsum(v[1:] * dt)])
    lane_x = (rng.integers(lanes) + 0.5) * lane_w
    t_s = np.arange(T) * dt
    period = rng.uniform(1.5, 4.0)
    phase = rng.uniform(0, 2 * math.pi)
    x_cam = lane_x + 0.3 * d * np.sin(2 * math.pi * t_s / period + phase)
    yaw = math.radians(rng.normal(0, 1.5) * d) + math.radians(rng.uniform(0.5, 3.0) * d) * \
        np.sin(2 * math.pi * t_s / period + phase + 0.8)
    pitch = math.radians(rng.uniform(0.0, 3.0)) + math.radians(0.3 * d) * _smooth_series(rng, T, 1.5)
    roll = math.radians(0.3 * d) * _smooth_series(rng, T, 1.5)
    cam_h = rng.uniform(1.3, 1.7) + 0.02 * d * _smooth_series(rng, T, 1.0)
    focal = cfg.width / 2 / math.tan(math.radians(cfg.hfov_deg) / 2)
    cams = [Camera(rot=_rotation(yaw[t], pitch[t], roll[t]),
                   centre=np.array([x_cam[t], cam_h[t], z_cam[t]]), focal=focal,
                   width=cfg.width, height=cfg.height) for t in range(T)]
    z_end = z_cam[-1] + rng.uniform(90, 180)
    _buildings(b, rng, facade_x, z_end)
    _furniture(b, rng, cfg, road_half, facade_x, z_end)
    _traffic(b, rng, cfg, lanes, lane_w, parking, road_half, facade_x, z_cam, x_cam, v, dt, z_end)
    ground = ground_look(rng, road_half=road_half, lane_w=lane_w, lanes=lanes, parking=parking,
                         facade_x=facade_x, difficulty=d)
    # Colour: per-clip hue rotation, saturation and brightness; per-frame illumination drift.
    hue = math.radians(rng.normal(0, 5) * min(d, 1.5))
    sat = rng.uniform(1 - 0.25 * min(d, 1.5), 1 + 0.25 * min(d, 1.5))
    grey = np.full((3, 3), 1 / 3)
    axis = np.ones(3) / math.sqrt(3)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(hue) * kx + (1 - math.cos(hue)) * kx @ kx  # Rodrigues about grey
    base = (grey + sat * rot @ (np.eye(3) - grey)) * rng.uniform(0.8, 1.15)
    # Illumination drifts smoothly (clouds, exposure control): a global gain and a weaker tint.
    gain = 1 + cfg.illumination * d * _smooth_series(rng, T, 6)  # (T,)
    tint = 1 + 0.3 * cfg.illumination * d * np.stack([_smooth_series(rng, T, 8) for _ in range(3)], 1)
    drift = np.clip(gain[:, None] * tint, 0.3, 3.0)  # (T, 3)
    colour = drift[:, :, None] * base[None]  # (T, 3, 3)
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width]
    r2 = ((xx - (cfg.width - 1) / 2) ** 2 + (yy - (cfg.height - 1) / 2) ** 2) / ((cfg.width / 2) ** 2)
    vignette = (1 - rng.uniform(0.0, 0.2) * r2).astype(np.float32)[..., None]
    org, uu, vv, oo, tt = zip(*b.quads)
    texel = [np.linalg.norm(u) / b.textures[k].label.shape[1] for u, k in zip(uu, tt)]
    return Scene(cams=cams, textures=b.textures, q_origin=np.array(org), q_u=np.array(uu),
                 q_v=np.array(vv), q_obj=np.array(oo), q_tex=np.array(tt), q_texel=np.array(texel),
                 obj_pos=np.stack(b.pos), moving=np.array(b.moving), ground=ground,
                 sky=sky_look(rng), colour=colour.astype(np.float32), vignette=vignette)


def _buildings(b: _Builder, rng: np.random.Generator, facade_x: float, z_end: float) -> None:
    """Two rows of buildings per side (parallax through gaps) and a row closing the street."""
    shade = {-1: rng.uniform(0.7, 1.0), 1: rng.uniform(0.7, 1.0)}  # sun on one side
    tall = rng.uniform(0.5, 1.2)  # low suburb .. dense centre
    for s in (-1, 1):
        z = -rng.uniform(12, 20)
        while z < z_end:
            w, h = rng.uniform(6, 22), rng.uniform(5, 20) * tall
            x = s * (facade_x + rng.uniform(0, 0.6))
            o = b.obj((x, 0, z))
            front = b.tex(facade(rng, w, h, texel=0.06, shade=shade[s]))
            b.quad(o, front, (0, h, 0), (0, 0, w), (0, -h, 0))
            depth = rng.uniform(8, 14)
            b.quad(o, b.tex(facade(rng, depth, h, texel=0.1, shade=shade[s] * 0.8, side_wall=True)),
                   (0, h, 0), (s * depth, 0, 0), (0, -h, 0))
            if rng.random() < 0.3:  # a gap: an alley, maybe a tree in it
                gap = rng.uniform(3, 10)
                if rng.random() < 0.5:
                    _tree(b, rng, (s * (facade_x + rng.uniform(2, 6)), 0, z + w + gap / 2))
                z += gap
            z += w
        z = -rng.uniform(12, 25)
        x2 = s * (facade_x + rng.uniform(12, 25))
        while z < z_end:
            w, h = rng.uniform(10, 30), rng.uniform(8, 26) * tall
            o = b.obj((x2, 0, z))
            b.quad(o, b.tex(facade(rng, w, h, texel=0.12, shade=shade[s] * 0.9)), (0, h, 0), (0, 0, w),
                   (0, -h, 0))
            z += w
    x = -160.0
    while x < 160:
        w, h = rng.uniform(10, 30), rng.uniform(4, 14) * tall
        o = b.obj((x, 0, z_end + rng.uniform(0, 3)))
        b.quad(o, b.tex(facade(rng, w, h, texel=0.12, shade=0.9)), (0, h, 0), (w, 0, 0), (0, -h, 0))
        x += w


def _tree(b: _Builder, rng: np.random.Generator, pos, pool: list | None = None) -> None:
    if pool:
        tex, w, h = pool[rng.integers(len(pool))]
    else:
        h, r = rng.uniform(5, 10), rng.uniform(1.5, 3.2)
        tex = b.tex(tree(rng, height=h, radius=r, texel=0.04, autumn=rng.random() < 0.2))
        w = 2 * r + 0.4
    b.billboard(b.obj(pos), tex, w, h, mirror=rng.random() < 0.5)


def _furniture(b: _Builder, rng: np.random.Generator, cfg: SynthDriveConfig, road_half: float,
               facade_x: float, z_end: float) -> None:
    """Trees, lamp posts, sign posts, traffic lights, fences and unlabelled clutter."""
    pool = []
    for _ in range(4):
        h, r = rng.uniform(5, 10), rng.uniform(1.5, 3.2)
        pool.append((b.tex(tree(rng, height=h, radius=r, texel=0.04, autumn=rng.random() < 0.2)),
                     2 * r + 0.4, h))
    for s in (-1, 1):
        if rng.random() < 0.6:  # a row of street trees along the curb
            z = rng.uniform(-5, 5)
            while z < z_end:
                _tree(b, rng, (s * (road_half + rng.uniform(0.7, 1.3)), 0, z), pool)
                z += rng.uniform(8, 16)
        # Lamp posts: shaft on the pavement edge, arm over the road (the road is at -s).
        h, arm = rng.uniform(6, 9), rng.uniform(1.0, 2.0)
        tex = street_lamp(rng, height=h, arm=arm, texel=0.02, arm_right=s < 0)
        t_id, w = b.tex(tex), arm + 0.5
        z = rng.uniform(-5, 10)
        while z < z_end:
            x = s * (road_half + 0.35)
            o = b.obj((x, 0, z))
            x0 = -0.25 if s < 0 else -(w - 0.25)  # put the shaft, not the arm, at the post position
            b.quad(o, t_id, (x0, h, 0), (w, 0, 0), (0, -h, 0))
            z += rng.uniform(15, 30)
        for _ in range(rng.integers(1, 4)):  # fences along the curb or in front of buildings
            length, fh = rng.uniform(8, 30), rng.uniform(0.9, 1.4)
            x = s * (road_half + 0.2 if rng.random() < 0.5 else facade_x - 0.3)
            o = b.obj((x, 0, rng.uniform(0, z_end - 20)))
            b.quad(o, b.tex(fence(rng, length=length, height=fh, texel=0.02)), (0, fh, 0),
                   (0, 0, length), (0, -fh, 0))
    n_signs = max(2, int(rng.poisson(6 * z_end / 120)))
    for _ in range(n_signs):
        s = rng.choice([-1, 1])
        tex, w, h = sign_pole(rng, texel=0.02)
        o = b.obj((s * (road_half + rng.uniform(0.3, 0.7)), 0, rng.uniform(3, z_end - 10)))
        b.billboard(o, b.tex(tex), w, h)
    if rng.random() < 0.5:
        z = rng.uniform(15, z_end - 20)
        for s in (-1, 1):
            tex, w, h = traffic_light(rng, texel=0.02)
            b.billboard(b.obj((s * (road_half + 0.5), 0, z)), b.tex(tex), w, h)
    if cfg.clutter:
        for _ in range(rng.integers(3, 9)):
            s = rng.choice([-1, 1])
            tex, w, h = clutter(rng, texel=0.03)
            x = s * rng.uniform(road_half + 0.5, facade_x - 0.3)
            b.billboard(b.obj((x, 0, rng.uniform(2, z_end - 10))), b.tex(tex), w, h)


def _car(b: _Builder, rng: np.random.Generator, x: float, z: float, vz: float, dt: float,
         oncoming: bool) -> tuple[int, float, float]:
    """A car as a box of textured faces: near end (rear, or front if oncoming) and both sides."""
    length, width, height = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.38, 1.6)
    end, left, right = car_faces(rng, length=length, width=width, height=height, texel=0.03,
                                   oncoming=oncoming)[:3]
    o = b.obj((x, 0, z), (0, 0, vz), dt)
    z0 = -length / 2
    b.quad(o, b.tex(end), (-width / 2, height, z0), (width, 0, 0), (0, -height, 0))
    b.quad(o, b.tex(left), (-width / 2, height, z0), (0, 0, length), (0, -height, 0))
    b.quad(o, b.tex(right), (width / 2, height, z0), (0, 0, length), (0, -height, 0))
    return o, length, width


def _clear(b: _Builder, cars: list[tuple[int, float, float]], start, velocity, dt: float,
           half: float) -> bool:
    """True if an agent of half-width ``half`` on this straight track never touches a car."""
    track = np.asarray(start, float)[None] + np.arange(b.frames)[:, None] * dt * np.asarray(velocity)
    for o, length, width in cars:
        gap = np.abs(b.pos[o] - track)  # (T, 3)
        if ((gap[:, 0] < width / 2 + half + 0.2) & (gap[:, 2] < length / 2 + half + 0.2)).any():
            return False
    return True


def _traffic(b: _Builder, rng: np.random.Generator, cfg: SynthDriveConfig, lanes: int, lane_w: float,
             parking: float, road_half: float, facade_x: float, z_cam: np.ndarray, x_cam: np.ndarray,
             v: np.ndarray, dt: float, z_end: float) -> None:
    """Parked and moving cars, pedestrians (walking along or across), bicyclists."""
    d = cfg.difficulty
    dens = cfg.traffic * (0.5 + 0.5 * min(d, 2.0))
    T = len(z_cam)
    span = (T - 1) * dt
    cars: list[tuple[int, float, float]] = []
    if parking > 0:  # parked cars: right side faces away (rear visible), left side faces us
        for s in (-1, 1):
            z = rng.uniform(-4, 4)
            while z < z_end - 10:
                if rng.random() < 0.45:
                    cars.append(_car(b, rng, s * (lanes * lane_w + parking / 2), z, 0.0, dt,
                                     oncoming=s < 0))
                z += rng.uniform(5.5, 8.0)
    # Moving traffic drives in platoons, one per lane with a common speed, so cars never overlap.
    # The ego lane's platoon starts at least 8 m ahead of the camera in every frame, which keeps
    # moving pixels in every frame; other lanes may start behind the camera and overtake.
    # Cars in the kerb lanes keep 0.35 m left of centre to leave room for bicyclists.
    steps = np.arange(T) * dt
    for k in range(lanes):
        x = (k + 0.5) * lane_w - (0.35 if k == lanes - 1 else 0.0)
        speed = float(np.mean(v)) * rng.uniform(0.7, 1.3) + 0.5
        if abs(x - float(np.mean(x_cam))) < lane_w / 2:
            z = max(rng.uniform(12, 30), float((z_cam - speed * steps).max()) + 10.5)
            n = 1 + rng.poisson(1.0 * dens)
        else:
            z = rng.uniform(-15, 30)
            n = rng.poisson(2.0 * dens)
        for _ in range(n):
            cars.append(_car(b, rng, x + rng.normal(0, 0.1), z, speed, dt, oncoming=False))
            z += rng.uniform(9, 25)
    for k in range(lanes):  # oncoming traffic passes us on the left
        speed = -rng.uniform(5, 14) * min(1.5, 0.5 + d)
        z = rng.uniform(10, 40)
        x = -(k + 0.5) * lane_w + (0.35 if k == lanes - 1 else 0.0)
        for _ in range(1 + rng.poisson(2.5 * dens)):
            cars.append(_car(b, rng, x + rng.normal(0, 0.1), z, speed, dt, oncoming=True))
            z += rng.uniform(10, 40)
    # Pedestrians on both pavements, walking along the street (front/back view) or standing.
    for _ in range(rng.poisson(max(3.0, 16 * dens * z_end / 120))):
        s = rng.choice([-1, 1])
        x = s * rng.uniform(road_half + 0.6, facade_x - 0.4)
        speed = rng.choice([-1, 1]) * rng.uniform(0.9, 1.7) * min(1.5, d + 0.3)
        speed = 0.0 if rng.random() < 0.15 else speed  # some stand still
        h = rng.uniform(1.55, 1.9)
        o = b.obj((x, 0, rng.uniform(-5, z_end - 10)), (0, 0, speed), dt)
        b.billboard(o, b.tex(person(rng, height=h, texel=0.02, side_view=False)), 0.66, h)
    # Agents crossing the road ahead (side view) try a few places where no car runs them over.
    crossing = [("person", 1.0, 1.7)] * rng.poisson(1.2 * dens)
    if rng.random() < 0.3 * dens:
        crossing.append(("bicyclist", 3.0, 5.0))
    for kind, lo, hi in crossing:
        s = rng.choice([-1, 1])
        speed = rng.uniform(lo, hi) * (min(1.5, d + 0.3) if kind == "person" else 1.0)
        for _ in range(8):
            start = (s * rng.uniform(0.0, road_half + 1.0) + s * speed * span / 2, 0.0,
                     z_cam[-1] + rng.uniform(10, 40))  # mid-clip somewhere on the road
            if _clear(b, cars, start, (-s * speed, 0, 0), dt, 0.5):
                break
        else:
            continue
        o = b.obj(start, (-s * speed, 0, 0), dt)
        if kind == "person":
            h = rng.uniform(1.55, 1.9)
            tex = b.tex(person(rng, height=h, texel=0.02, side_view=True))
            b.billboard(o, tex, 0.8, h, mirror=s > 0)
        else:
            b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=True)), 1.8, 1.8, mirror=s > 0)
    # Bicyclists along the kerb: one ahead in our direction (always), maybe one oncoming.
    bx = lanes * lane_w - 0.4
    o = b.obj((bx, 0, rng.uniform(10, 35)), (0, 0, rng.uniform(3, 6)), dt)
    b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=False)), 0.7, 1.85)
    if rng.random() < 0.5 * dens:
        o = b.obj((-bx, 0, rng.uniform(15, z_end)), (0, 0, -rng.uniform(3, 6)), dt)
        b.billboard(o, b.tex(bicyclist(rng, texel=0.02, side_view=False)), 0.7, 1.85)


def render_frame(scene: Scene, t: int) -> FrameBuffers:
    """Draw frame t: quads front to back (z-buffered), then the ground, then the sky."""
    cam = scene.cams[t]
    fb = FrameBuffers.empty(cam.height, cam.width)
    origin = scene.q_origin + scene.obj_pos[scene.q_obj, t]  # (N, 3) world
    corners = origin[:, None, :] + _QUAD_ST[None, :, :1] * scene.q_u[:, None, :] \
        + _QUAD_ST[None, :, 1:] * scene.q_v[:, None, :]  # (N, 4, 3)
    pc = (corners - cam.centre) @ cam.rot.T  # (N, 4, 3) camera coordinates
    z = pc[..., 2]
    in_front = (z > NEAR).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pu = cam.focal * pc[..., 0] / z + cam.cx  # (N, 4)
        pv = cam.focal * pc[..., 1] / z + cam.cy
    x0 = np.ceil(pu.min(1)).clip(0, cam.width)
    x1 = (np.floor(pu.max(1)) + 1).clip(0, cam.width)
    y0 = np.ceil(pv.min(1)).clip(0, cam.height)
    y1 = (np.floor(pv.max(1)) + 1).clip(0, cam.height)
    simple = in_front & (x0 < x1) & (y0 < y1)
    clipped = ~in_front & (z > NEAR).any(axis=1)  # straddles the near plane
    todo = np.flatnonzero(simple | clipped)
    zmin = np.where(z > NEAR, z, np.inf).min(axis=1)  # (N,)
    todo = todo[np.argsort(zmin[todo], kind="stable")]  # front to back: far quads fail early
    # Plane maps of all candidate quads at once: inv(K R [u | v | origin - C]).
    cols = np.stack([scene.q_u[todo], scene.q_v[todo], origin[todo] - cam.centre], axis=2)  # (n, 3, 3)
    mats = (cam.k @ cam.rot) @ cols
    scale = np.abs(mats).max(axis=(1, 2)) ** 3
    ok = np.abs(np.linalg.det(mats)) > 1e-9 * scale  # edge-on planes cover no pixel centre
    inv = np.zeros_like(mats)
    inv[ok] = np.linalg.inv(mats[ok])
    for j, i in enumerate(todo):
        if not ok[j]:
            continue
        if simple[i]:
            box = (int(x0[i]), int(x1[i]), int(y0[i]), int(y1[i]))
            max_inv = 1.0 / zmin[i]
        else:
            box = screen_box(pc[i], cam)
            if box is None:
                continue
            max_inv = 1.0 / NEAR
        draw_quad(fb, inv[j], box, scene.textures[scene.q_tex[i]], int(scene.q_obj[i]),
                  cam.focal * scene.q_texel[i], max_inv)
    draw_ground(fb, cam, scene.ground, GROUND_OBJ)
    draw_sky(fb, cam, scene.sky)
    return fb
