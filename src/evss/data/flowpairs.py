"""FlyingChairs-like image pairs with exact flow, for pretraining FlowNet.

Each pair is a textured background plus random textured shapes (polygons, ellipses and
chair-like compounds with thin legs) layered on top of each other. Every layer k has its own
affine motion ``M_k`` (rotation, scale and translation about its centre; the background moves
too, more gently), so the flow is piecewise affine and exact.

Convention (that of :func:`evss.models.warp.warp`): ``image1`` is the earlier/reference image,
``image2`` the current one, and ``flow`` (2, H, W), channel 0 = dx, 1 = dy in pixels, says where each
pixel of image2 is in image1: ``flow(p) = M_k p - p`` for the layer k visible at p, so
``warp(image1, flow) ~= image2`` wherever that surface point is visible in image1 too (see
:func:`generate_pair_full` for the visibility mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from evss.errors import ConfigError


@dataclass(frozen=True)
class FlowPairsConfig:
    """Size and motion statistics of the pairs (sizes in pixels are relative to the width)."""

    height: int = 256
    width: int = 512
    min_shapes: int = 4  # shapes per pair, drawn uniformly from [min_shapes, max_shapes]
    max_shapes: int = 12
    max_translation: float = 0.05  # per-shape translation, fraction of the width (0.05 -> 26 px)
    max_rotation_deg: float = 10.0  # per-shape rotation about its centre
    max_scale: float = 0.1  # per-shape scale change in [1 - max_scale, 1 + max_scale]
    background_motion: float = 0.5  # background motion as a fraction of the shapes' limits
    noise_std: float = 1.0  # Gaussian sensor noise in 8-bit levels, independent per image


@dataclass
class FlowPair:
    """A pair with everything known about it."""

    image1: np.ndarray  # (H, W, 3) uint8, earlier / reference
    image2: np.ndarray  # (H, W, 3) uint8, current
    flow: np.ndarray  # (2, H, W) float32, image2 -> image1 (backward flow)
    visible: np.ndarray  # (H, W) bool, the surface at p in image2 is seen at p + flow in image1
    layers: np.ndarray  # (H, W) int16 layer id visible in image2 (0 = background)


def pair_seed(seed: int, index: int) -> int:
    """Seed of pair ``index`` in a FlowPairsDataset with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index), 7]).generate_state(1)[0])


def _check(config: FlowPairsConfig) -> None:
    if config.height < 16 or config.width < 16:
        raise ConfigError(f"flow pairs must be at least 16x16, got {config.height}x{config.width}")
    if not 0 <= config.min_shapes <= config.max_shapes:
        raise ConfigError(f"need 0 <= min_shapes <= max_shapes, got {config.min_shapes}, "
                          f"{config.max_shapes}")


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: noise at several scales mixing 2-3 random colours, sometimes
    with stripes or checks, so every region has texture for the flow to latch onto."""
    cols = rng.uniform(0.05, 0.95, (3, 3)).astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    weights = np.zeros((h, w, 1), np.float32)
    for c in cols:
        cell = rng.uniform(4, 40)
        grid = (max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))
        g = rng.standard_normal(grid, dtype=np.float32)
        wgt = np.exp(2.0 * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC))[..., None]
        img += wgt * c
        weights += wgt
    img /= weights
    kind = rng.integers(3)
    if kind > 0:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(4, 24)
        u = (xs * math.cos(ang) + ys * math.sin(ang)) / period
        if kind == 1:
            pattern = np.sin(2 * math.pi * u)
        else:
            v = (-xs * math.sin(ang) + ys * math.cos(ang)) / period
            pattern = np.sign(np.sin(math.pi * u) * np.sin(math.pi * v))
        img *= (1 + 0.25 * pattern)[..., None]
    fine = rng.standard_normal((h, w), dtype=np.float32)
    img *= (1 + 0.06 * cv2.GaussianBlur(fine, (0, 0), 0.8))[..., None]
    return np.clip(img, 0, 1)


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) uint8 0/1 mask: a star-shaped polygon, an ellipse or a chair."""
    m = np.zeros((size, size), np.uint8)
    c = size / 2
    kind = rng.integers(3)
    if kind == 0:
        n = rng.integers(3, 10)
        ang = np.sort(rng.uniform(0, 2 * math.pi, n))
        rad = rng.uniform(0.3, 0.5, n) * size
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    elif kind == 1:
        axes = (int(size * rng.uniform(0.2, 0.48)), int(size * rng.uniform(0.15, 0.48)))
        cv2.ellipse(m, (int(c), int(c)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    else:  # seat, back rest and thin legs, like the chairs in FlyingChairs
        s = size
        leg = max(1, int(s * rng.uniform(0.03, 0.07)))
        seat_y = int(s * rng.uniform(0.45, 0.6))
        x0 = int(0.15 * s)
        cv2.rectangle(m, (x0, seat_y), (int(0.85 * s), seat_y + max(2, int(0.08 * s))), 1, -1)
        cv2.rectangle(m, (x0, int(0.05 * s)), (x0 + max(2, int(0.1 * s)), seat_y), 1, -1)
        for x in (0.17, 0.8):
            cv2.rectangle(m, (int(x * s), seat_y), (int(x * s) + leg, int(0.95 * s)), 1, -1)
        if rng.random() < 0.5:
            m = np.ascontiguousarray(m[:, ::-1])
    return m


def _affine_about(cx: float, cy: float, angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """3x3 similarity: rotate by ``angle`` and scale about (cx, cy), then translate by (tx, ty)."""
    a, b = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[a, -b, cx - a * cx + b * cy + tx],
                     [b, a, cy - b * cx - a * cy + ty],
                     [0, 0, 1.0]])


def generate_pair_full(config: FlowPairsConfig, seed: int) -> FlowPair:
    """One pair with its flow, visibility mask and layer ids; deterministic in (config, seed)."""
    _check(config)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    h, w = config.height, config.width
    # Layer 0: a background larger than the frame, so its motion never exposes an empty border.
    bh, bw = int(h * 1.4) + 8, int(w * 1.4) + 8
    layers = [(_texture(rng, bh, bw), np.ones((bh, bw), np.uint8),
               np.array([[1.0, 0, -(bw - w) / 2], [0, 1.0, -(bh - h) / 2], [0, 0, 1]]))]
    motions = []
    k = config.background_motion
    motions.append(_affine_about(w / 2, h / 2,
                                 math.radians(rng.uniform(-1, 1) * config.max_rotation_deg * k),
                                 1 + rng.uniform(-1, 1) * config.max_scale * k,
                                 *(rng.uniform(-1, 1, 2) * config.max_translation * w * k)))
    for _ in range(rng.integers(config.min_shapes, config.max_shapes + 1)):
        size = int(min(h, w) * rng.uniform(0.15, 0.6)) + 4
        place = _affine_about(size / 2, size / 2, rng.uniform(0, 2 * math.pi), 1.0,
                              rng.uniform(0, w) - size / 2, rng.uniform(0, h) - size / 2)
        layers.append((_texture(rng, size, size), _shape_mask(rng, size), place))
        cx, cy = place[0, 2] + size / 2, place[1, 2] + size / 2
        motions.append(_affine_about(cx, cy, math.radians(rng.uniform(-1, 1) * config.max_rotation_deg),
                                     1 + rng.uniform(-1, 1) * config.max_scale,
                                     *(rng.uniform(-1, 1, 2) * config.max_translation * w)))
    images, ids = [], []
    for frame in (0, 1):  # 0 = image1 (layers moved by M_k), 1 = image2 (layers at their place)
        img = np.zeros((h, w, 3), np.float32)
        lid = np.zeros((h, w), np.int16)
        for n, ((tex, mask, place), motion) in enumerate(zip(layers, motions)):
            a = (place if frame == 1 else motion @ place)[:2]  # canonical -> image
            col = cv2.warpAffine(tex, a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            cover = cv2.warpAffine(mask, a, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
            img[cover] = col[cover]
            lid[cover] = n
        images.append(img)
        ids.append(lid)
    mats = np.stack(motions)  # (L, 3, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m = mats[ids[1]]  # (H, W, 3, 3) motion of the layer seen at each pixel of image2
    qx = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    qy = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    flow = np.stack([qx - xs, qy - ys]).astype(np.float32)  # (2, H, W)
    inside = (qx >= -0.5) & (qx <= w - 0.5) & (qy >= -0.5) & (qy <= h - 0.5)
    ni = np.clip(np.rint(qy), 0, h - 1).astype(np.int64)
    nj = np.clip(np.rint(qx), 0, w - 1).astype(np.int64)
    visible = inside & (ids[0][ni, nj] == ids[1])
    out = []
    for img in images:
        if config.noise_std > 0:
            noise = rng.standard_normal(img.shape, dtype=np.float32)  # (H, W, 3)
            img = img + noise * np.float32(config.noise_std / 255)
        out.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return FlowPair(image1=out[0], image2=out[1], flow=flow, visible=visible, layers=ids[1])


def generate_pair(config: FlowPairsConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image1 (H, W, 3) uint8 earlier, image2 (H, W, 3) uint8 current, flow (2, H, W) float32 from
    image2 to image1) with ``warp(image1, flow) ~= image2`` on visible pixels."""
    p = generate_pair_full(config, seed)
    return p.image1, p.image2, p.flow


class FlowPairsDataset(torch.utils.data.Dataset):
    """``pairs`` generated pairs; item i uses ``pair_seed(seed, i)``. Items are dicts with image1 and
    image2 (3, H, W) float32 in [0, 1] and flow (2, H, W) float32 (image2 -> image1)."""

    def __init__(self, *, pairs: int, seed: int, config: FlowPairsConfig = FlowPairsConfig()) -> None:
        _check(config)
        if pairs < 0:
            raise ConfigError(f"pairs must be >= 0, got {pairs}")
        self.pairs, self.seed, self.config = pairs, seed, config

    def __len__(self) -> int:
        return self.pairs

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -self.pairs <= i < self.pairs:
            raise IndexError(f"pair {i} out of range for {self.pairs} pairs")
        img1, img2, flow = generate_pair(self.config, pair_seed(self.seed, i % self.pairs))
        return {"image1": torch.from_numpy(img1).permute(2, 0, 1).float().div_(255),  # (3, H, W)
                "image2": torch.from_numpy(img2).permute(2, 0, 1).float().div_(255),
                "flow": torch.from_numpy(flow)}
