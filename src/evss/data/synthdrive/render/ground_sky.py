"""Ground and sky looks: the two surfaces under and behind every object.

The ground is one texture tile in world (X, Z) (road, markings, curbs, paving slabs) with a
brightness and shadow modulation; the sky's colour depends on the viewing direction only, so its
flow is the pure camera rotation. :mod:`.raster` draws both."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from evss.data.synthdrive.render.noise import tileable_noise
from evss.data.synthdrive.render.textures import PAVEMENT, ROAD, jitter


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
