"""Textures of the static street: building facades, trees, lamp posts, sign posts, traffic
lights, fences and unlabelled clutter. Each is painted in metres on a :class:`~.textures.Canvas`
with its CamVid-11 class per texel."""

from __future__ import annotations

import cv2
import numpy as np

from evss.data.synthdrive.render.noise import value_noise
from evss.data.synthdrive.render.textures import (
    BUILDING,
    FENCE,
    POLE,
    SIGN,
    TREE,
    VOID,
    Canvas,
    Texture,
    jitter,
    mirror,
)

BUILDING_COLOURS = ((0.74, 0.68, 0.56), (0.56, 0.31, 0.24), (0.60, 0.60, 0.58), (0.84, 0.82, 0.77),
                    (0.45, 0.36, 0.30), (0.82, 0.74, 0.52), (0.78, 0.60, 0.56), (0.40, 0.42, 0.45),
                    (0.66, 0.52, 0.40))


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
    return tex if arm_right else mirror(tex)


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
